"""Calling a function's handler the way API Gateway does, routed by sotong.resources.ROUTES."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from sotong.resources import ROUTES, function
from sotong_local.events import proxy_event
from sotong_local.lambdas import LambdaContext
from sotong_local.routing import Match, match

ADMIN = {"cognito:username": "cs.kim", "cognito:groups": "cs_admin,dept-customer_service"}
DENTAL = {"cognito:username": "dental.lee", "cognito:groups": "department_staff,dept-dental"}
DERMATOLOGY = {
    "cognito:username": "derm.park",
    "cognito:groups": "department_staff,dept-dermatology",
}
DESK = {"cognito:username": "desk.choi", "cognito:groups": "reception,dept-front_desk"}
QI = {"cognito:username": "qi.han", "cognito:groups": "qi,dept-qi"}


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, Any]


def call(
    method: str,
    path: str,
    body: Any = None,
    *,
    claims: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw: bytes | None = None,
    source_ip: str = "203.0.113.7",
) -> Answer:
    found = match(ROUTES, method, path)
    assert isinstance(found, Match), f"no route for {method} {path}"
    route = found.route
    sent = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    event = proxy_event(
        method=method,
        path=path,
        resource=route.path,
        path_parameters=found.path_parameters,
        headers=list(all_headers.items()),
        query=list((query or {}).items()),
        body=sent,
        source_ip=source_ip,
        claims=claims if route.auth == "staff" else None,
    )
    module = importlib.import_module(function(route.function).module)
    result = module.handler(event, LambdaContext(function(route.function)))
    text = result.get("body") or ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return Answer(int(result["statusCode"]), parsed, result.get("headers") or {})
