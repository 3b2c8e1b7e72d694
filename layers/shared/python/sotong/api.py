"""The HTTP edge shared by the API functions: a validating Powertools resolver whose errors are
4xx answers that name the field, and each staff route's roles checked against the authorizer's
claims before its handler runs."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.request import Request

from sotong import resources
from sotong.errors import Forbidden, SotongError, Unauthorized
from sotong.staff import Staff, staff_from_claims
from sotong.web.headers import secured

JSON = "application/json"
# The routes (API Gateway resource paths) whose body is not JSON, and the content types they take
# instead; every other route takes JSON only.
OTHER_BODIES: dict[str, tuple[str, ...]] = {"/imports/treatments": ("text/csv",)}
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _error(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(
        status_code=status, content_type=JSON, body=json.dumps(body, ensure_ascii=False)
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return f"{where}.{'.'.join(rest)}" if rest else where
    return ".".join(parts)


def _validation(fields: list[dict[str, Any]]) -> dict[str, Any]:
    first = fields[0] if fields else {"field": "body", "problem": "invalid"}
    return {
        "error": "validation",
        "message": f"{first['field']}: {first['problem']}",
        "fields": fields,
    }


def _nested_deeper_than(text: str, limit: int) -> bool:
    """Arrays and objects nested deeper than `limit` (json.loads would hit Python's recursion
    limit near 1,000 levels: a RecursionError, not a JSON error, so a 500)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _bad_body(problem: str) -> dict[str, Any]:
    body = _validation([{"field": "body", "problem": problem, "type": "json_invalid"}])
    return {
        "statusCode": 422,
        "headers": {"Content-Type": JSON},
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }


def create_resolver(title: str, description: str = "") -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    app.configure_openapi(title=title, version="1.0.0", description=description)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        fields = []
        for item in error.errors():
            problem = str(item.get("msg") or item.get("type", "invalid"))
            problem = problem.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            loc = item.get("loc", ())
            if item.get("type") == "json_invalid":
                # its location is the character offset (`body.9`): the body is what is wrong
                problem, loc = "the body is not valid JSON", ("body",)
            fields.append(
                {
                    "field": _field(loc),
                    "problem": problem,
                    "type": item.get("type", "invalid"),
                }
            )
        return _error(422, _validation(fields))

    @app.exception_handler(SotongError)
    def _domain(error: SotongError) -> Response[str]:
        answer = _error(error.status, error.body())
        wait = error.details.get("retry_after_s")
        if isinstance(wait, int | float) and wait > 0:
            answer.headers["Retry-After"] = str(math.ceil(wait))
        return answer

    return app


@secured  # security headers on every answer, 4xx included (sotong/web/headers.py)
def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Resolve an API Gateway proxy event; content types the route does not take are a 415."""
    refused, staff = _refused(event)
    if refused is not None:
        return refused
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type", "")).lower()
    accepted = OTHER_BODIES.get(str(event.get("resource") or ""), (JSON,))
    unparseable = content_type and not content_type.startswith(accepted)
    writes = event.get("httpMethod") in ("POST", "PUT", "PATCH")
    # Powertools fails (500) on a multipart content type without a boundary, even with no body.
    if unparseable and writes and (event.get("body") or content_type.startswith("multipart/")):
        return {
            "statusCode": 415,
            "headers": {"Content-Type": JSON},
            "body": json.dumps(
                {
                    "error": "unsupported_media_type",
                    "message": f"header.content-type: send {' or '.join(accepted)}",
                    "field": "header.content-type",
                }
            ),
            "isBase64Encoded": False,
        }
    body = event.get("body")
    if body and accepted == (JSON,) and writes:
        # What Powertools cannot parse without failing (a 500) is invalid JSON: a body that is
        # not UTF-8 (API Gateway passes it base64-encoded), or one nested too deeply.
        text = str(body)
        if event.get("isBase64Encoded"):
            try:
                text = base64.b64decode(text, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _bad_body("the body is not UTF-8")
        if _nested_deeper_than(text, MAX_JSON_DEPTH):
            return _bad_body(f"nested more than {MAX_JSON_DEPTH} levels deep")
    if staff is not None:  # only here: app.resolve clears the context when it is done
        app.append_context(staff=staff)
    return app.resolve(event, context)


def signed_in_staff(request: Request) -> Staff:
    """The signed-in staff member `resolve` checked against the route's roles (and put in the
    resolver's context); a staff route takes it as a `SignedIn` parameter."""
    staff = request.context.get("staff")
    if not isinstance(staff, Staff):
        raise Unauthorized("a staff sign-in with a role is required")
    return staff


SignedIn = Annotated[Staff, Depends(signed_in_staff)]
"""A route parameter Powertools fills with `signed_in_staff` (its dependency injection)."""


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON},
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }


def _refused(event: dict[str, Any]) -> tuple[dict[str, Any] | None, Staff | None]:
    """A 401 or 403 for a staff route the caller's groups do not allow; otherwise no answer, and
    the staff member a staff route's handler is for."""
    found = resources.route(str(event.get("httpMethod")), str(event.get("resource")))
    if found is None or found.auth != "staff":
        return None, None
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    staff = staff_from_claims(authorizer.get("claims") or {})
    if staff is None:
        return _answer(
            401,
            Unauthorized(
                "a staff sign-in with a role group (and, for department staff and reception, "
                "one department group) is required"
            ).body(),
        ), None
    if staff.role not in found.roles:
        allowed = ", ".join(found.roles)
        return _answer(
            403,
            Forbidden(
                f"{found.method} {found.path} is for {allowed}; you are {staff.role}",
                role=staff.role,
                allowed_roles=list(found.roles),
            ).body(),
        ), None
    return None, staff


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
