"""Every answer of every route carries the security headers: 2xx, 4xx, the resolver's own 404 and
415, the access check's 401/403, and the local gateway's own answers over HTTP."""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from sotong import clock, keys
from sotong.resources import ROUTES, Function, Route, function
from sotong.web.headers import API_CSP, HSTS, page_csp, secure
from sotong_local.events import proxy_event
from sotong_local.gateway import Gateway, GatewayServer
from sotong_local.lambdas import LambdaContext, Runtime
from sotong_local.tokens import TokenIssuer
from tests.integration.api import ADMIN

KST = ZoneInfo("Asia/Seoul")
FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "strict-transport-security": HSTS,
}
PUBLIC_PAGES = {"/pages/{page}"}


@pytest.fixture
def env(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import boto3

    from sotong.config import load_hospital
    from sotong_local.aws import placeholder_secrets

    client = boto3.client("secretsmanager")
    for name, value in placeholder_secrets(load_hospital()).items():
        client.create_secret(Name=name, SecretString=json.dumps(value))
    keys.use_key(b"k" * 32)
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    return aws


def invoke(
    route: Route,
    *,
    claims: dict[str, str] | None = ADMIN,
    body: bytes = b"",
    content_type: str = "application/json",
    page: str = "complaint.html",
) -> tuple[int, dict[str, str], str]:
    """One call as API Gateway makes it; the status, every header by lower-case name, body."""
    params = {name[1:-1]: "x" for name in route.path.split("/") if name.startswith("{")}
    if "page" in params:
        params["page"] = page
    path = "/".join(
        params.get(s[1:-1], s) if s.startswith("{") else s for s in route.path.split("/")
    )
    event = proxy_event(
        method=route.method,
        path=path,
        resource=route.path,
        path_parameters=params,
        headers=[("Content-Type", content_type)],
        query=[],
        body=body,
        source_ip="203.0.113.7",
        claims=claims if route.auth == "staff" else None,
    )
    module = importlib.import_module(function(route.function).module)
    answer = module.handler(event, LambdaContext(function(route.function)))
    found = {k.lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        found.setdefault(name.lower(), str(values[0]))
    return int(answer["statusCode"]), found, answer.get("body") or ""


def assert_secured(headers: dict[str, str], *, page: bool = False, cached: bool = False) -> None:
    for name, value in COMMON.items():
        assert headers.get(name) == value, (name, headers)
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    if not page:
        assert csp == API_CSP
    assert headers["cache-control"] == ("public, max-age=300" if cached else "no-store")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_answers_with_the_security_headers(env: dict[str, str], route: Route) -> None:
    status, headers, _ = invoke(route)
    assert status < 500, (route, status)
    page = route.path in PUBLIC_PAGES
    assert_secured(headers, page=page, cached=page)


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.auth == "staff"],
    ids=lambda r: f"{r.method} {r.path}",
)
def test_refused_staff_calls_carry_them_too(env: dict[str, str], route: Route) -> None:
    status, headers, _ = invoke(route, claims={})
    assert status == 401
    assert_secured(headers)


def test_415_404_and_422_answers_carry_them(env: dict[str, str]) -> None:
    complaints = next(r for r in ROUTES if r.path == "/complaints" and r.method == "POST")
    status, headers, _ = invoke(complaints, body=b"a=b", content_type="text/plain")
    assert status == 415
    assert_secured(headers)
    status, headers, _ = invoke(complaints, body=b"{broken")
    assert status == 422
    assert_secured(headers)
    pages = next(r for r in ROUTES if r.path == "/pages/{page}")
    status, headers, _ = invoke(pages, page="secret.html")
    assert status == 404
    assert_secured(headers)  # an error is not cached, and is JSON


def test_each_page_allows_exactly_its_own_inline_code(env: dict[str, str]) -> None:
    pages = next(r for r in ROUTES if r.path == "/pages/{page}")
    for name in ("complaint.html", "track.html", "survey.html"):
        status, headers, body = invoke(pages, page=name)
        assert status == 200
        assert headers["content-type"].startswith("text/html")
        csp = headers["content-security-policy"]
        assert csp == page_csp(body)
        directives = dict(d.split(" ", 1) for d in csp.split("; "))
        assert directives["default-src"] == "'none'"
        assert directives["connect-src"] == "'self'"
        assert directives["script-src"].count("'sha256-") == body.count("<script>")
        assert directives["style-src"].count("'sha256-") == body.count("<style>")
    status, headers, _ = invoke(pages, page="style.css")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=300"


def test_a_header_the_handler_set_is_kept() -> None:
    answer = {
        "statusCode": 200,
        "multiValueHeaders": {"Content-Type": ["text/csv"], "Cache-Control": ["private"]},
        "body": "a,b",
    }
    secured = secure(answer, "/x")
    assert secured["multiValueHeaders"]["Cache-Control"] == ["private"]
    assert secured["multiValueHeaders"]["X-Frame-Options"] == ["DENY"]
    plain = secure({"statusCode": 204, "body": ""})
    assert plain["headers"]["Cache-Control"] == "no-store"


def test_the_local_gateways_own_answers_carry_them(tmp_path: Path) -> None:
    runtime = Runtime(
        [Function("public_api", "public_api.handler", "x")], functions_dir=FUNCTIONS_DIR
    )
    (tmp_path / "index.html").write_text("<script>1</script><p>x</p>", encoding="utf-8")
    gateway = Gateway(ROUTES, runtime, issuer=TokenIssuer(b"k" * 32), web_dir=tmp_path)
    server = GatewayServer(("127.0.0.1", 0), gateway)
    server.start()
    http = requests.Session()
    http.trust_env = False
    try:
        for target, status in (
            ("/nope", 403),  # Missing Authentication Token
            ("/inbox", 401),  # the authorizer
            ("/_local", 404),  # no stack behind this gateway
        ):
            answer = http.get(f"{server.url}{target}", timeout=10)
            assert answer.status_code == status, target
            assert_secured({k.lower(): v for k, v in answer.headers.items()})
        page = http.get(f"{server.url}/form/", timeout=10)
        csp = page.headers["Content-Security-Policy"]
        assert csp == page_csp("<script>1</script><p>x</p>")
        assert page.headers["X-Frame-Options"] == "DENY"
    finally:
        server.stop()
