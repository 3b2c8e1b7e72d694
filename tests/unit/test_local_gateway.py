"""The local API Gateway: routing, the proxy event a function receives, the Cognito authorizer,
and how a function's answer becomes the HTTP response."""

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from sotong.resources import ROUTES, Function, Route, function
from sotong_local import routing
from sotong_local.gateway import Gateway, GatewayServer
from sotong_local.lambdas import Runtime
from sotong_local.tokens import TokenError, TokenIssuer, bearer_token, claims_for_authorizer

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
ECHO = Function(name="echo", handler="echo.handler", description="test only")
TEST_ROUTES = (
    Route("GET", "/things", "echo", "public"),
    Route("POST", "/things", "echo", "public"),
    Route("GET", "/things/{thing_id}", "echo", "public"),
    Route("GET", "/things/special", "echo", "public"),
    Route("GET", "/staff/things/{thing_id}", "echo", "staff"),
    Route("GET", "/files/{path+}", "echo", "public"),
)
# API Gateway's sample `apigateway-aws-proxy` event has exactly these keys.
PROXY_KEYS = {
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
}


class Echo:
    """A test-only function: records each event and answers what the test asks."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.answer: Any = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return self.answer
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def gateway(echo: Echo) -> Gateway:
    runtime = Runtime([ECHO], handlers={"echo": echo})
    return Gateway(TEST_ROUTES, runtime, issuer=TokenIssuer(b"k" * 32))


def call(gateway: Gateway, method: str, target: str, body: bytes = b"", /, **headers: str) -> Any:
    return gateway.handle(method, target, [("Host", "127.0.0.1:8000"), *headers.items()], body)


# -- routing ------------------------------------------------------------------------------------


def test_literal_segments_beat_parameters() -> None:
    found = routing.match(TEST_ROUTES, "GET", "/things/special")
    assert isinstance(found, routing.Match)
    assert found.route.path == "/things/special"
    found = routing.match(TEST_ROUTES, "GET", "/things/42")
    assert isinstance(found, routing.Match)
    assert (found.route.path, found.path_parameters) == ("/things/{thing_id}", {"thing_id": "42"})


def test_greedy_parameters_and_decoding() -> None:
    found = routing.match(TEST_ROUTES, "GET", "/files/a/b%20c")
    assert isinstance(found, routing.Match)
    assert found.path_parameters == {"path": "a/b c"}


def test_unknown_paths_and_methods() -> None:
    assert routing.match(TEST_ROUTES, "GET", "/nothing") == routing.NoMatch()
    assert routing.match(TEST_ROUTES, "GET", "/things/1/2") == routing.NoMatch()
    assert routing.match(TEST_ROUTES, "DELETE", "/things") == routing.NoMatch(("GET", "POST"))


def test_every_product_route_matches_itself() -> None:
    for route in ROUTES:
        concrete = "/".join("x" if s.startswith("{") else s for s in route.path.split("/"))
        found = routing.match(ROUTES, route.method, concrete or "/")
        assert isinstance(found, routing.Match), route
        assert found.route == route


def test_unknown_path_gets_api_gateways_answer(gateway: Gateway, echo: Echo) -> None:
    for method, target in (("GET", "/nope"), ("DELETE", "/things")):
        reply = call(gateway, method, target)
        assert reply.status == 403
        assert json.loads(reply.body) == {"message": "Missing Authentication Token"}
    assert echo.events == []


# -- the proxy event ------------------------------------------------------------------------------


def test_proxy_event_has_api_gateways_shape(gateway: Gateway, echo: Echo) -> None:
    reply = call(
        gateway,
        "POST",
        "/v1/things/?a=1&a=2&b=",
        '{"x": "한글"}'.encode(),
        **{"Content-Type": "application/json", "X-Multi": "one", "User-Agent": "ua"},
    )
    assert reply.status == 200
    event = echo.events[0]
    assert set(event) == PROXY_KEYS
    assert event["resource"] == "/things"
    assert event["path"] == "/things/"  # the route matches without it; the event keeps it
    assert event["httpMethod"] == "POST"
    assert event["body"] == '{"x": "한글"}'
    assert event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["multiValueHeaders"]["X-Multi"] == ["one"]
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    context = event["requestContext"]
    assert context["resourcePath"] == "/things"
    assert context["httpMethod"] == "POST"
    assert context["path"] == "/v1/things/"
    assert context["stage"] == "v1"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "ua"
    assert isinstance(context["requestTimeEpoch"], int)
    assert context["requestId"]
    assert "authorizer" not in context
    lambda_context = echo.contexts[0]
    assert lambda_context.function_name.endswith("-echo")
    assert lambda_context.memory_limit_in_mb == ECHO.memory_mb
    assert lambda_context.invoked_function_arn.startswith("arn:aws:lambda:ap-northeast-2:")
    assert 0 < lambda_context.get_remaining_time_in_millis() <= ECHO.timeout_s * 1000


def test_path_parameters_and_binary_bodies(gateway: Gateway, echo: Echo) -> None:
    call(gateway, "GET", "/things/a%2Fb")
    assert echo.events[-1]["pathParameters"] == {"thing_id": "a/b"}
    assert echo.events[-1]["resource"] == "/things/{thing_id}"
    call(gateway, "POST", "/things", b"\xff\x00")
    assert echo.events[-1]["isBase64Encoded"] is True
    assert base64.b64decode(echo.events[-1]["body"]) == b"\xff\x00"
    call(gateway, "GET", "/things")
    assert echo.events[-1]["body"] is None
    assert echo.events[-1]["queryStringParameters"] is None


# -- the authorizer -------------------------------------------------------------------------------


def test_staff_routes_need_a_valid_token(gateway: Gateway, echo: Echo) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Bearer a.b.c"}):
        reply = call(gateway, "GET", "/staff/things/1", **headers)
        assert reply.status == 401
        assert json.loads(reply.body) == {"message": "Unauthorized"}
    other, _ = TokenIssuer(b"x" * 32).issue("mallory", "cs_admin")
    assert call(gateway, "GET", "/staff/things/1", Authorization=f"Bearer {other}").status == 401
    assert echo.events == []


def test_claims_arrive_as_the_cognito_authorizer_sends_them(gateway: Gateway, echo: Echo) -> None:
    reply = call(gateway, "POST", "/_local/token", b'{"role": "department_staff"}')
    assert reply.status == 400  # a department member needs a department
    reply = call(
        gateway,
        "POST",
        "/_local/token",
        b'{"role": "department_staff", "department": "dental", "username": "kim"}',
    )
    token = json.loads(reply.body)["token"]
    assert call(gateway, "GET", "/staff/things/1", Authorization=f"Bearer {token}").status == 200
    claims = echo.events[-1]["requestContext"]["authorizer"]["claims"]
    assert all(isinstance(v, str) for v in claims.values())
    assert claims["cognito:username"] == "kim"
    # The department is a group (only an administrator sets groups), not a user attribute.
    assert claims["cognito:groups"] == "department_staff,dept-dental"
    assert "custom:department" not in claims
    assert claims["token_use"] == "id"
    assert claims["exp"].endswith(" UTC " + claims["exp"][-4:])  # e.g. Wed Nov 22 08:20:00 UTC 2023
    # Cognito authorizers also take the bare token.
    assert call(gateway, "GET", "/staff/things/1", Authorization=token).status == 200


def test_tokens_expire_and_resist_tampering() -> None:
    issuer = TokenIssuer(b"k" * 32)
    token, _ = issuer.issue("kim", "cs_admin", now=1_000_000, lifetime_s=60)
    assert issuer.verify(token, now=1_000_030)["cognito:username"] == "kim"
    with pytest.raises(TokenError, match="expired"):
        issuer.verify(token, now=1_000_060)
    header, payload, signature = token.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    with pytest.raises(TokenError):
        issuer.verify(f"{header}.{forged}.{signature}", now=1_000_030)
    assert claims_for_authorizer({"cognito:groups": ["a", "b"], "exp": 0, "ok": True}) == {
        "cognito:groups": "a,b",
        "exp": "Thu Jan 01 00:00:00 UTC 1970",
        "ok": "true",
    }
    assert bearer_token("Bearer  abc ") == "abc"
    assert bearer_token("abc") == "abc"
    assert bearer_token("") is None


# -- the answer -----------------------------------------------------------------------------------


def test_handler_answer_becomes_the_response(gateway: Gateway, echo: Echo) -> None:
    echo.answer = {
        "statusCode": 201,
        "headers": {"X-One": "1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"\x89PNG").decode(),
        "isBase64Encoded": True,
    }
    reply = call(gateway, "GET", "/things")
    assert reply.status == 201
    assert reply.body == b"\x89PNG"
    assert ("X-One", "1") in reply.headers
    assert [v for k, v in reply.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert ("Content-Type", "application/json") in reply.headers  # API Gateway's default


@pytest.mark.parametrize(
    "answer",
    [
        RuntimeError("boom"),
        {"body": "no status"},
        {"statusCode": 200, "body": {"not": "a str"}},
        "x",
    ],
)
def test_errors_and_malformed_answers_are_502(gateway: Gateway, echo: Echo, answer: Any) -> None:
    echo.answer = answer
    reply = call(gateway, "GET", "/things")
    assert reply.status == 502
    assert json.loads(reply.body) == {"message": "Internal server error"}


def test_functions_are_imported_from_their_folder(tmp_path: Path) -> None:
    (tmp_path / "local_test_fn.py").write_text(
        "CALLS = []\n"
        "def handler(event, context):\n"
        "    CALLS.append(event)\n"
        "    return {'statusCode': 204, 'body': ''}\n"
    )
    definition = Function("tiny", "local_test_fn.handler", "test only")
    runtime = Runtime([definition], functions_dir=tmp_path)
    runtime.load()
    assert runtime.available("tiny"), runtime.unavailable
    gateway = Gateway((Route("DELETE", "/tiny/{id}", "tiny", "public"),), runtime)
    assert call(gateway, "DELETE", "/tiny/7").status == 204
    import local_test_fn  # type: ignore[import-not-found]

    assert local_test_fn.CALLS[0]["pathParameters"] == {"id": "7"}


def test_missing_function_module_is_502_not_a_crash() -> None:
    runtime = Runtime(
        [Function("ghost", "ghost_module.handler", "absent")], functions_dir=FUNCTIONS_DIR
    )
    runtime.load()
    assert "ghost_module" in runtime.unavailable["ghost"].reason
    gateway = Gateway((Route("GET", "/ghost", "ghost", "public"),), runtime)
    assert call(gateway, "GET", "/ghost").status == 502


# -- over real HTTP, with the real public_api ------------------------------------------------------


def test_real_http_round_trip_to_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    # what the handler checks at import (no table or key is reached on these routes)
    for name in function("public_api").required_env:
        monkeypatch.setenv(name, "unused-here")
    runtime = Runtime(
        [Function("public_api", "public_api.handler", "x")], functions_dir=FUNCTIONS_DIR
    )
    runtime.load()
    assert runtime.available("public_api"), runtime.unavailable
    server = GatewayServer(("127.0.0.1", 0), Gateway(ROUTES, runtime))
    server.start()
    try:
        response = requests.get(f"{server.url}/health", timeout=10)
        assert response.status_code == 200
        assert response.json()["hospital_id"] == "demo"
        assert response.headers["x-amzn-RequestId"]
        assert requests.get(f"{server.url}/nope", timeout=10).status_code == 403
        assert requests.get(f"{server.url}/messages/m1", timeout=10).status_code == 401
    finally:
        server.stop()


def test_web_folder_is_served_under_form(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>의견</h1>", encoding="utf-8")
    (tmp_path / "app.js").write_text("1", encoding="utf-8")
    gateway = Gateway((), Runtime([]), web_dir=tmp_path)
    page = call(gateway, "GET", "/form/")
    assert page.status == 200
    assert page.body.decode() == "<h1>의견</h1>"
    assert ("Content-Type", "text/html; charset=utf-8") in page.headers
    assert call(gateway, "GET", "/form/app.js").status == 200
    assert call(gateway, "GET", "/form").status == 301
    assert call(gateway, "GET", "/form/../test_local_gateway.py").status == 404
    assert call(gateway, "GET", "/form/%2e%2e/secret").status == 404
    assert call(gateway, "GET", "/form/missing.html").status == 404


def test_route_to_an_undefined_function_is_502() -> None:
    gateway = Gateway((Route("GET", "/orphan", "nobody", "public"),), Runtime([]))
    assert call(gateway, "GET", "/orphan").status == 502
