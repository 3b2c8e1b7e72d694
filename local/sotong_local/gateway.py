"""The local API Gateway: HTTP requests in, REST (v1) proxy events to the route's function, its
answer back out; the Cognito authorizer for staff routes; and the stack's `/_local/` endpoints."""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from sotong.masking import mask_url
from sotong.resources import Route
from sotong.staff import NEEDS_DEPARTMENT, NEEDS_ORGANISATION, ROLES
from sotong.web.headers import add_missing
from sotong_local import routing
from sotong_local.events import STAGE, proxy_event
from sotong_local.lambdas import Runtime
from sotong_local.tokens import TokenError, TokenIssuer, bearer_token, claims_for_authorizer

log = logging.getLogger("sotong_local.gateway")

MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
_RUN_SCHEDULE = re.compile(r"^/_local/schedules/([A-Za-z0-9_]+)/run$")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    function: str | None = None

    @classmethod
    def json(cls, status: int, data: Any, **kwargs: Any) -> Reply:
        body = json.dumps(data, ensure_ascii=False, indent=None, default=str).encode()
        return cls(status, body, [("Content-Type", "application/json")], **kwargs)

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        return cls(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])


def _apigw_error(status: int, message: str, error_type: str) -> Reply:
    reply = Reply.json(status, {"message": message})
    reply.headers.append(("x-amzn-ErrorType", error_type))
    return reply


class Control(Protocol):
    """What the `/_local/` endpoints ask of the running stack."""

    @property
    def timezone(self) -> str: ...

    @property
    def departments(self) -> tuple[str, ...]: ...

    def outbox(self, limit: int) -> list[dict[str, Any]]: ...

    def schedules(self) -> list[dict[str, Any]]: ...

    def run_schedule(
        self, name: str, clock_offset_seconds: float
    ) -> tuple[int, dict[str, Any]]: ...

    def queues(self) -> list[dict[str, Any]]: ...

    def sandbox(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...

    def webhook(self) -> dict[str, Any]: ...

    def environment(self) -> dict[str, Any]: ...


@dataclass
class Gateway:
    routes: Iterable[Route]
    runtime: Runtime
    issuer: TokenIssuer = field(default_factory=TokenIssuer)
    control: Control | None = None
    web_dir: Path | None = None

    def __post_init__(self) -> None:
        self.routes = tuple(self.routes)
        self._openapi_doc: dict[str, Any] | None = None

    # -- the API -----------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client_ip: str = "127.0.0.1",
    ) -> Reply:
        parts = urlsplit(target)
        path = parts.path or "/"
        if path == f"/{STAGE}" or path.startswith(f"/{STAGE}/"):
            path = path[len(STAGE) + 1 :] or "/"
        if path == "/_local" or path.startswith("/_local/"):
            return self._local(method, path, parts.query, body)
        if path == "/form" or path.startswith("/form/"):
            return self._static(method, path)
        requested = path  # as API Gateway, the event keeps a trailing slash (`/console/`)
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        found = routing.match(self.routes, method, path)
        if isinstance(found, routing.NoMatch):
            return _apigw_error(
                403, "Missing Authentication Token", "MissingAuthenticationTokenException"
            )
        route = found.route
        claims: dict[str, str] | None = None
        if route.auth == "staff":
            header = next((v for k, v in headers if k.lower() == "authorization"), None)
            token = bearer_token(header)
            if token is None:
                return _apigw_error(401, "Unauthorized", "UnauthorizedException")
            try:
                claims = claims_for_authorizer(self.issuer.verify(token))
            except TokenError as error:
                return _apigw_error(401, error.message, "UnauthorizedException")
        if len(body) > MAX_BODY_BYTES:
            return _apigw_error(413, "Request Too Long", "RequestTooLongException")
        host = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
        forwarded = [
            ("X-Forwarded-For", client_ip),
            ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
            ("X-Forwarded-Proto", "http"),
        ]
        present = {k.lower() for k, _ in headers}
        event = proxy_event(
            method=method,
            path=unquote(requested),
            resource=route.path,
            path_parameters=found.path_parameters,
            headers=headers + [(k, v) for k, v in forwarded if k.lower() not in present],
            query=parse_qsl(parts.query, keep_blank_values=True),
            body=body,
            source_ip=client_ip,
            claims=claims,
        )
        invocation = self.runtime.invoke(route.function, event)
        if not invocation.ok:
            if invocation.error_type in ("Runtime.ImportModuleError", "ResourceNotFoundException"):
                log.error("%s is not available: %s", route.function, invocation.error)
            reply = _apigw_error(502, "Internal server error", "InternalServerErrorException")
        else:
            reply = _proxy_reply(invocation.value, route.function)
        reply.function = route.function
        reply.headers.append(("x-amzn-RequestId", event["requestContext"]["requestId"]))
        return reply

    # -- /_local -----------------------------------------------------------------------------

    def _local(self, method: str, path: str, query: str, body: bytes) -> Reply:
        params = dict(parse_qsl(query))
        if path == "/_local/token":
            if method != "POST":
                return Reply.json(405, {"message": "POST a JSON body: username, role, department"})
            return self._issue_token(body)
        control = self.control
        if control is None:
            return Reply.json(404, {"message": "no local stack behind this gateway"})
        run = _RUN_SCHEDULE.match(path)
        if run:
            if method != "POST":
                return Reply.json(405, {"message": "POST to run the schedule now"})
            try:
                data = json.loads(body or b"{}")
                offset = float(data.get("clock_offset_seconds") or 0)
            except (ValueError, TypeError, AttributeError):
                return Reply.json(400, {"message": 'body: {"clock_offset_seconds": number}'})
            status, result = control.run_schedule(run.group(1), offset)
            return Reply.json(status, result)
        if path == "/_local/sandbox":  # the sandbox provider's fault modes (local only)
            if method not in ("GET", "POST", "DELETE"):
                return Reply.json(405, {"message": "GET, POST {mode, count, ...} or DELETE"})
            try:
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError
            except ValueError:
                return Reply.json(400, {"message": "the body must be a JSON object"})
            status, result = control.sandbox(method, data)
            return Reply.json(status, result)
        if method != "GET":
            return Reply.json(405, {"message": f"{method} is not allowed on {path}"})
        if path in ("/_local", "/_local/"):
            return Reply.json(200, self._index())
        if path == "/_local/outbox":
            try:
                limit = int(params.get("limit", "50"))
            except ValueError:
                return Reply.json(400, {"message": "limit must be a whole number"})
            entries = control.outbox(limit)
            if params.get("format") == "text":
                from sotong_local.outbox_view import render

                return Reply.text(200, render(entries, control.timezone))
            return Reply.json(200, entries)
        if path == "/_local/schedules":
            return Reply.json(200, control.schedules())
        if path == "/_local/queues":
            return Reply.json(200, control.queues())
        if path == "/_local/webhook":
            return Reply.json(200, control.webhook())
        if path == "/_local/env":
            return Reply.json(200, control.environment())
        if path == "/_local/openapi.json":
            return self._openapi()
        return Reply.json(404, {"message": f"no local endpoint {path}", "see": "/_local"})

    def _index(self) -> dict[str, Any]:
        return {
            "routes": [
                {"method": r.method, "path": r.path, "function": r.function, "auth": r.auth}
                for r in self.routes
            ],
            "functions": {
                name: "ok"
                if self.runtime.available(name)
                else self.runtime.unavailable[name].reason
                for name in self.runtime.definitions
            },
            "local": [
                "POST /_local/token {username, role, department, organisation}",
                "GET /_local/outbox[?limit=N&format=text]",
                "GET /_local/schedules",
                "POST /_local/schedules/<function>/run {clock_offset_seconds}",
                "GET /_local/queues",
                "GET /_local/sandbox; POST /_local/sandbox {mode, count, code, retry_after_s, "
                "http_status}; DELETE /_local/sandbox",
                "GET /_local/webhook (the local webhook signing key and how to sign)",
                "GET /_local/env (the AWS endpoint, tables and queues, for sotong replay-dlq)",
                "GET /_local/openapi.json",
            ],
        }

    def _openapi(self) -> Reply:
        """The whole API's OpenAPI document, built from the functions this stack runs."""
        from sotong_local import openapi

        if self._openapi_doc is None:
            try:
                doc = openapi.document(
                    self.routes, self.runtime.definitions.values(), self.runtime.functions_dir
                )
            except Exception as error:  # a broken function or a route without a handler
                log.warning("no OpenAPI document: %s", error)
                return Reply.json(503, {"message": f"no OpenAPI document: {error}"})
            doc["servers"] = [{"url": "/", "description": "this local stack"}]
            self._openapi_doc = doc
        return Reply.json(200, self._openapi_doc)

    def _issue_token(self, body: bytes) -> Reply:
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return Reply.json(400, {"message": "the body must be a JSON object"})
        role = data.get("role") or "cs_admin"
        if role not in ROLES:
            return Reply.json(400, {"message": f"role must be one of {', '.join(ROLES)}"})
        department = data.get("department") or None
        known = self.control.departments if self.control else ()
        if department and known and department not in known:
            return Reply.json(
                400, {"message": f"unknown department '{department}'; known: {', '.join(known)}"}
            )
        if role in NEEDS_DEPARTMENT and not department:
            return Reply.json(400, {"message": f"{role} needs a department"})
        organisation = data.get("organisation") or None
        if role in NEEDS_ORGANISATION and not organisation:
            return Reply.json(400, {"message": f"{role} needs an organisation"})
        if organisation is not None and not str(organisation).replace("-", "").isalnum():
            return Reply.json(400, {"message": "organisation: letters, digits and '-' only"})
        unit = department or organisation
        username = data.get("username") or (f"local-{role}-{unit}" if unit else f"local-{role}")
        token, claims = self.issuer.issue(
            str(username),
            role,
            department,
            organisation=str(organisation) if organisation else None,
        )
        return Reply.json(
            200,
            {"token": token, "claims": claims, "authorization": f"Bearer {token}"},
        )

    # -- /form -------------------------------------------------------------------------------

    def _static(self, method: str, path: str) -> Reply:
        if self.web_dir is None or not self.web_dir.is_dir():
            return Reply.json(404, {"message": "no web/ folder to serve"})
        if method not in ("GET", "HEAD"):
            return Reply.json(405, {"message": "GET only"})
        if path == "/form":
            return Reply(301, headers=[("Location", "/form/")])
        root = self.web_dir.resolve()
        relative = unquote(path[len("/form/") :]) or "index.html"
        file = (root / relative).resolve()
        if file.is_dir():
            file = file / "index.html"
        if not file.is_relative_to(root) or not file.is_file():
            return Reply.json(404, {"message": f"not found: {path}"})
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        return Reply(200, file.read_bytes(), [("Content-Type", kind)])


def _proxy_reply(answer: Any, function: str) -> Reply:
    """A Lambda proxy answer -> HTTP, or API Gateway's 502 for an answer it cannot use."""
    malformed = _apigw_error(502, "Internal server error", "InternalServerErrorException")
    if not isinstance(answer, dict):
        log.error(
            "%s answered %s, not a proxy response dict: API Gateway returns 502",
            function,
            type(answer).__name__,
        )
        return malformed
    try:
        status = int(answer.get("statusCode", 0))
    except (TypeError, ValueError):
        status = 0
    body = answer.get("body")
    if not 100 <= status <= 599 or not isinstance(body, str | None):
        log.error(
            "%s answered a malformed proxy response (statusCode %r, body %s): "
            "API Gateway returns 502",
            function,
            answer.get("statusCode"),
            type(body).__name__,
        )
        return malformed
    if answer.get("isBase64Encoded") and body:
        data = base64.b64decode(body)
    else:
        data = (body or "").encode()
    headers: list[tuple[str, str]] = []
    multi = answer.get("multiValueHeaders") or {}
    names = {name.lower() for name in multi}
    for name, value in (answer.get("headers") or {}).items():
        if name.lower() not in names:
            headers.append((name, str(value)))
    for name, values in multi.items():
        headers += [(name, str(value)) for value in values or []]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Reply(status, data, headers)


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "sotong-local"

    timeout = 30

    def _serve(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in self.headers.items()]
        try:
            reply = self.server.gateway.handle(
                self.command, self.path, headers, body, self.client_address[0]
            )
        except Exception:
            log.exception("the local gateway failed on %s %s", self.command, mask_url(self.path))
            reply = _apigw_error(500, "Internal server error", "InternalServerErrorException")
        reply.headers = add_missing(reply.headers, reply.body)  # as API Gateway's own answers
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.server.on_request(
            self.command, self.path, reply, (time.perf_counter() - started) * 1000
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are logged by on_request, in one readable line


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up a stop

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        on_request: Callable[[str, str, Reply, float], None] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway
        self.on_request = on_request or (lambda *args: None)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(2.0)
