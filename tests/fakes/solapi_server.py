"""A fake Solapi on 127.0.0.1: checks requests the way Solapi documents, answers as scripted.

It is written from Solapi's published docs and the shapes of its official Python SDK (`solapi`
5.0.3, pydantic models under `solapi/model/`), independently of
`sotong.notify.providers.solapi`, so a mistake in the client is not mirrored here:

- `Authorization: HMAC-SHA256 apiKey=.., date=.., salt=.., signature=..` is checked like Solapi
  ("API Key 인증 방식"): unknown key -> 403 `InvalidAPIKey`, date more than 15 minutes off ->
  403 `RequestTimeTooSkewed`, wrong HMAC-SHA256(date + salt, secret) -> 403
  `SignatureDoesNotMatch`, a signature seen before -> 403 `DuplicatedSignature`. A missing or
  malformed header -> 401 `InvalidAuthorization` (Solapi does not publish that case).
- `POST /messages/v4/send-many/detail`: the body must be `{"messages": [...]}` (else 400
  `ValidationError`); each message is checked like Solapi's intake and refused ones go to
  `failedMessageList` with Solapi's 1xxx codes (1010 missing value, 1011 format, 1013 subject on
  SMS, 1025 type, 1026 duplicate recipient, 1029 not EUC-KR, 1031 too long, 1032 custom field,
  1033 kakaoOptions on a non-Kakao type, 1041 pfId, 1042 template id, 1043 text differs from a
  registered template). A message without `type` is typed as Solapi's `autoTypeDetect` does:
  `kakaoOptions` with a `templateId` -> ATA (without -> CTA), an `imageId` -> MMS, otherwise SMS,
  or LMS when the text is over 90 EUC-KR bytes. The answer carries every field the SDK's
  `SendMessageResponse` requires (`groupInfo` as `GroupMessageResponse`, `failedMessageList` as
  `FailedMessage`, `messageList` as `MessageItem`; the lists are written down and checked in
  `tests/integration/test_solapi_fake_server.py`).
- `GET /messages/v4/list-old` (what the SDK's `get_messages` calls; `/messages/v4/list` too):
  the accepted messages, newest first, filtered by `to`, `from`, `type`, `statusCode`,
  `messageId`, `messageIds`, `groupId` and `startDate`/`endDate` (on `dateCreated`, or
  `dateUpdated` with `dateType=UPDATED`), `limit` per page (default 20, at most 500) from
  `startKey`; the answer is `{startKey, nextKey, limit, messageList: {<messageId>: {...}}}`,
  `nextKey` the id the next page starts at, null on the last page.

Scripting the send endpoint: `script(...)` queues one behaviour per send request (then
`default`, normally `accept()`):
- before intake (nothing stored): `rate_limited(retry_after)`, `server_error(status)`,
  `http_error(status, code)`, `hang(seconds, then=...)` (wait, then behave as `then`: the intake
  happens after the client gave up), `drop()` (close the connection without an answer);
- intake (messages stored): `accept()`, `fail(status_code, only=...)` (every message, or only
  those whose `sotongMessageId` is in `only`, in `failedMessageList`), `fallback()` (accepted;
  the later report says the AlimTalk went out as its SMS/LMS substitute);
- intake, then no usable answer: `accept_then_hang(seconds)` (stored at once, answered after
  `seconds`, longer than a client timeout), `accept_then_drop()` (stored, connection closed
  without an answer), `accept_then_error(status)` (stored, then a 5xx).
`GET /cash/v1/balance` (solapi/documents `api-reference/cash/getBalance.md`, SDK
`model/response/balance/get_balance.py`) answers the docs' sample shape with `balance` = `cash`
(원, 1,000,000 at start, less the `_PRICE` of every accepted message) and `point`; its queue is
`script_balance(...)` (then `balance_default`), taking the list endpoint's behaviours.
The list endpoint has its own queue, `script_list(...)` (then `list_default`): `accept()` (answer
normally), `server_error`, `rate_limited`, `http_error`, `hang(seconds)`, `drop()`, and
`garbage()` (a 200 that is not JSON).
`refuse_connections()` closes the listening socket (and open keep-alive connections) so a new
connection is refused; `accept_connections()` listens again on the same port; `offline()` is
both as a context manager.

Every request is kept in `requests` (`method`, `path`, `query`, `headers`, `body`, `status`);
every accepted message in `accepted`. `accepted_copies(id)` counts accepted messages carrying our
`customFields.sotongMessageId` (`sends_for` is the old name), `accepted_total()` all of them;
`set_status(id, code)` moves a stored message on (e.g. "4000" delivered). Delivery-report and
inbound webhook bodies Solapi would POST come from `report_body`, `reports_body`,
`inbound_body`, signed with `signed_headers` (our scheme: HMAC-SHA256 over "<timestamp>." + body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SEND_PATH = "/messages/v4/send-many/detail"
LIST_PATHS = ("/messages/v4/list-old", "/messages/v4/list")
BALANCE_PATH = "/cash/v1/balance"
CUSTOM_FIELD = "sotongMessageId"
ACCOUNT_ID = "12925149"
MAX_SKEW = timedelta(minutes=15)
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 500
_TYPES = {"SMS", "LMS", "MMS", "ATA", "CTA"}
_NUMBER = re.compile(r"^(0\d{8,10}|1[5-9]\d{6})$")
_VARIABLE = re.compile(r"^#\{[^{}]+\}$")
_PRICE = {"sms": 8.4, "lms": 27.6, "mms": 80.0, "ata": 6.5, "cta": 10.5}


@dataclass(frozen=True)
class Behaviour:
    kind: str
    status: int = 200
    retry_after: str | None = None
    seconds: float = 0.0
    status_code: str = ""
    status_message: str = ""
    error_code: str = ""
    then: Behaviour | None = None
    only: frozenset[str] | None = None


def accept() -> Behaviour:
    return Behaviour("accept")


def rate_limited(retry_after: str | None = "2") -> Behaviour:
    return Behaviour("rate_limited", status=429, retry_after=retry_after)


def server_error(status: int = 500) -> Behaviour:
    return Behaviour("server_error", status=status)


def hang(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Wait `seconds` before the intake (`then`, default accept): longer than a client timeout,
    the message is stored only after the client gave up."""
    return Behaviour("hang", seconds=seconds, then=then or accept())


def drop() -> Behaviour:
    """Close the connection without an answer, before any intake."""
    return Behaviour("drop")


def fail(
    status_code: str = "1043",
    status_message: str = "등록한 템플릿과 내용이 다릅니다.",
    only: Collection[str] | None = None,
) -> Behaviour:
    """Refuse every message (or those whose `sotongMessageId` is in `only`) with the code."""
    chosen = frozenset(only) if only is not None else None
    return Behaviour("fail", status_code=status_code, status_message=status_message, only=chosen)


def fallback() -> Behaviour:
    return Behaviour("fallback")


def http_error(status: int, error_code: str, message: str = "") -> Behaviour:
    return Behaviour("http_error", status=status, error_code=error_code, status_message=message)


def accept_then_hang(seconds: float) -> Behaviour:
    """Store the messages at once, answer only after `seconds` (the duplicate-prone case)."""
    return Behaviour("accept_then_hang", seconds=seconds)


def accept_then_drop() -> Behaviour:
    """Store the messages, then close the connection without an answer."""
    return Behaviour("accept_then_drop")


def accept_then_error(status: int = 500) -> Behaviour:
    """Store the messages, then answer a 5xx."""
    return Behaviour("accept_then_error", status=status)


def garbage() -> Behaviour:
    """A 200 whose body is not JSON."""
    return Behaviour("garbage")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Accepted:
    provider_message_id: str
    group_id: str
    message: dict[str, Any]
    fallback: bool = False
    accepted_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status_code: str = "2000"
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    type_detected: bool = False
    """Sent without `type`; `message["type"]` holds what the fake detected."""

    @property
    def our_id(self) -> str | None:
        custom = self.message.get("customFields")
        return custom.get(CUSTOM_FIELD) if isinstance(custom, dict) else None


_counter = iter(range(1, 1 << 62))
_counter_lock = threading.Lock()


def _solapi_id(prefix: str) -> str:
    """Solapi-like ids (`M4V<timestamp><random>`), unique within the process."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    with _counter_lock:
        number = next(_counter)
    return f"{prefix}4V{stamp}{number:06X}{secrets.token_hex(5).upper()}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _euc_kr_len(text: str) -> int | None:
    try:
        return len(text.encode("euc-kr"))
    except UnicodeEncodeError:
        return None


def detect_type(message: dict[str, Any]) -> str | None:
    """The type Solapi gives a message sent without one (None when the text is not EUC-KR)."""
    kakao = message.get("kakaoOptions")
    if isinstance(kakao, dict):
        return "ATA" if kakao.get("templateId") else "CTA"
    if message.get("imageId"):
        return "MMS"
    size = _euc_kr_len(str(message.get("text") or ""))
    if size is None:
        return None
    return "SMS" if size <= 90 else "LMS"


def _parse_date(raw: str) -> datetime | None:
    raw = raw.strip()
    for candidate in (raw.replace("Z", "+00:00").replace(" ", "+", 1 if "T" in raw else 0), raw):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do: no delayed-ACK stall per reply
    fake: FakeSolapi

    def setup(self) -> None:
        super().setup()
        self.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._closed(self.connection)

    def do_POST(self) -> None:
        self.fake._handle(self)

    def do_GET(self) -> None:
        self.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # hundreds of concurrent senders, as a real API takes them


class FakeSolapi:
    def __init__(
        self,
        api_key: str = "NCSTESTKEY000001",
        api_secret: str = "TESTSECRET0000000000000000000001",  # noqa: S107 - test credential
        webhook_secret: str = "hospital-webhook-secret",  # noqa: S107 - test credential
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.webhook_secret = webhook_secret
        self.default = accept()
        self.list_default = accept()
        self.balance_default = accept()
        self.cash = 1_000_000.0
        self.point = 0.0
        self._balance_script: deque[Behaviour] = deque()
        self.requests: list[Recorded] = []
        self.accepted: list[Accepted] = []
        self.templates: dict[tuple[str, str], str] = {}
        self._script: deque[Behaviour] = deque()
        self._list_script: deque[Behaviour] = deque()
        self._seen_signatures: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._connections: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSolapi:
        self._stopping.clear()
        self._listen(self._port)
        return self

    def _listen(self, port: int) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _unlisten(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # keep-alive connections would still be served
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopping.set()
        self._unlisten()

    def __enter__(self) -> FakeSolapi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._port, "start() the fake first"
        return f"http://127.0.0.1:{self._port}"

    def refuse_connections(self) -> None:
        """Stop listening (a connect is refused) and close open connections; port kept."""
        self._unlisten()

    def accept_connections(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._listen(self._port)

    @contextmanager
    def offline(self) -> Iterator[None]:
        self.refuse_connections()
        try:
            yield
        finally:
            self.accept_connections()

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    # ------------------------------------------------------------------ scripting

    def script(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next send requests, one each."""
        with self._lock:
            self._script.extend(behaviours)

    def script_list(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next message-list requests, one each."""
        with self._lock:
            self._list_script.extend(behaviours)

    def script_balance(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next balance requests, one each."""
        with self._lock:
            self._balance_script.extend(behaviours)

    def balance_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == BALANCE_PATH]

    def register_template(self, pf_id: str, template_id: str, content: str) -> None:
        """Intake then refuses (1043) an ATA whose text differs from `content` with variables."""
        self.templates[(pf_id, template_id)] = content

    def accepted_copies(self, message_id: str) -> int:
        """How many accepted messages carry `customFields.sotongMessageId == message_id`."""
        with self._lock:
            return sum(1 for a in self.accepted if a.our_id == message_id)

    def sends_for(self, message_id: str) -> int:
        return self.accepted_copies(message_id)

    def accepted_total(self) -> int:
        with self._lock:
            return len(self.accepted)

    def set_status(self, message_id: str, status_code: str) -> None:
        """Move every stored copy of a message (ours or Solapi's id) to `status_code`."""
        now = datetime.now(UTC)
        with self._lock:
            for accepted in self.accepted:
                if message_id in (accepted.our_id, accepted.provider_message_id):
                    accepted.status_code = status_code
                    accepted.updated_at = now

    def send_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == SEND_PATH]

    def list_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path in LIST_PATHS]

    def _next(self, queue: deque[Behaviour], default: Behaviour) -> Behaviour:
        with self._lock:
            return queue.popleft() if queue else default

    # ------------------------------------------------------------------ auth

    def check_authorization(self, header: str | None) -> tuple[int, str] | None:
        """None when Solapi would accept `header`, else (HTTP status, errorCode)."""
        if not header or " " not in header:
            return 401, "InvalidAuthorization"
        method, _, rest = header.partition(" ")
        if method not in ("HMAC-SHA256", "HMAC-MD5"):
            return 401, "InvalidAuthorization"
        parts: dict[str, str] = {}
        for item in rest.split(","):
            key, sep, value = item.strip().partition("=")
            if sep:
                parts[key.strip().lower()] = value.strip()
        if not {"apikey", "date", "salt", "signature"} <= parts.keys():
            return 401, "InvalidAuthorization"
        if not hmac.compare_digest(parts["apikey"], self.api_key):
            return 403, "InvalidAPIKey"
        try:
            date = datetime.fromisoformat(parts["date"].replace("Z", "+00:00"))
        except ValueError:
            return 403, "RequestTimeTooSkewed"
        if date.tzinfo is None or abs(datetime.now(UTC) - date) > MAX_SKEW:
            return 403, "RequestTimeTooSkewed"
        if not 12 <= len(parts["salt"].encode()) <= 64:
            return 403, "SignatureDoesNotMatch"
        digest = hashlib.sha256 if method == "HMAC-SHA256" else hashlib.md5
        expected = hmac.new(
            self.api_secret.encode(), (parts["date"] + parts["salt"]).encode(), digest
        ).hexdigest()
        if not hmac.compare_digest(expected, parts["signature"]):
            return 403, "SignatureDoesNotMatch"
        with self._lock:
            if parts["signature"] in self._seen_signatures:
                return 403, "DuplicatedSignature"
            self._seen_signatures.add(parts["signature"])
        return None

    # ------------------------------------------------------------------ intake

    def _refusal(
        self, message: Any, kind: str, recipients: set[str], allow_duplicates: bool
    ) -> str | None:
        """Solapi's intake code for a message it would refuse, None if it would take it."""
        if not isinstance(message, dict):
            return "1011"
        to, sender, text = message.get("to"), message.get("from"), message.get("text")
        if not to or not sender or not isinstance(text, str) or not text:
            return "1010"
        if not isinstance(to, str) or not isinstance(sender, str):
            return "1011"
        if not _NUMBER.match(to) or not _NUMBER.match(sender):
            return "1011"
        if not kind:
            return "1029"  # autoTypeDetect failed: the text is not EUC-KR
        if kind not in _TYPES:
            return "1025"
        if not allow_duplicates and to in recipients:
            return "1026"
        custom = message.get("customFields")
        if custom is not None:
            if not isinstance(custom, dict):
                return "1032"
            for key, value in custom.items():
                if not isinstance(value, str) or len(key) > 30 or len(value) > 100:
                    return "1032"
        kakao = message.get("kakaoOptions")
        if kind in ("SMS", "LMS", "MMS"):
            if kakao is not None:
                return "1033"
            if kind == "SMS" and message.get("subject"):
                return "1013"
            size = _euc_kr_len(text)
            if size is None:
                return "1029"
            if size > (90 if kind == "SMS" else 2000):
                return "1031"
            return None
        if not isinstance(kakao, dict):
            return "1041"
        if not kakao.get("pfId"):
            return "1041"
        if kind == "ATA" and not kakao.get("templateId"):
            return "1042"
        variables = kakao.get("variables") or {}
        if not isinstance(variables, dict) or not all(_VARIABLE.match(k) for k in variables):
            return "1011"
        if "disableSms" in kakao and not isinstance(kakao["disableSms"], bool):
            return "1011"
        template = self.templates.get((kakao["pfId"], str(kakao.get("templateId"))))
        if self.templates and kind == "ATA":
            if template is None:
                return "1042"
            rendered = template
            for key, value in variables.items():
                rendered = rendered.replace(key, str(value))
            if rendered != text:
                return "1043"
        return None

    # ------------------------------------------------------------------ HTTP

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        record = Recorded(
            url.path, dict(request.headers.items()), body, method=request.command, query=query
        )
        with self._lock:
            self.requests.append(record)
        route = (request.command, url.path)
        if route != ("POST", SEND_PATH) and not (
            request.command == "GET" and url.path in (*LIST_PATHS, BALANCE_PATH)
        ):
            self._reply(request, record, 404, {"errorCode": "NotFound", "errorMessage": "none"})
            return
        refused = self.check_authorization(request.headers.get("Authorization"))
        if refused:
            status, code = refused
            self._reply(request, record, status, {"errorCode": code, "errorMessage": code})
            return
        if route == ("GET", BALANCE_PATH):
            self._behave_balance(
                request, record, self._next(self._balance_script, self.balance_default)
            )
            return
        if request.command == "GET":
            self._behave_list(request, record, self._next(self._list_script, self.list_default))
            return
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("messages"), list)
            or not body["messages"]
            or not isinstance(body.get("allowDuplicates", False), bool)
        ):
            self._reply(
                request,
                record,
                400,
                {"errorCode": "ValidationError", "errorMessage": "messages is required"},
            )
            return
        self._behave(request, record, body, self._next(self._script, self.default))

    def _fault(self, request: BaseHTTPRequestHandler, record: Recorded, act: Behaviour) -> bool:
        """Answer a request-level fault; False when `act` is not one."""
        if act.kind == "rate_limited":
            headers = {"Retry-After": act.retry_after} if act.retry_after is not None else {}
            payload = {"errorCode": "TooManyRequests", "errorMessage": "slow down"}
            self._reply(request, record, 429, payload, headers)
        elif act.kind == "server_error":
            self._reply(request, record, act.status, {"errorCode": "InternalError"})
        elif act.kind == "http_error":
            payload = {"errorCode": act.error_code, "errorMessage": act.status_message}
            self._reply(request, record, act.status, payload)
        elif act.kind == "drop":
            self._drop(request, record)
        elif act.kind == "garbage":
            self._reply_raw(request, record, 200, b"<html>upstream error</html>")
        else:
            return False
        return True

    def _behave(
        self, request: BaseHTTPRequestHandler, record: Recorded, body: Any, act: Behaviour
    ) -> None:
        if act.kind == "hang":
            self._stopping.wait(act.seconds)
            self._behave(request, record, body, act.then or accept())
            return
        if self._fault(request, record, act):
            return
        answer = self._intake(body, act)
        if act.kind == "accept_then_hang":
            self._stopping.wait(act.seconds)
        elif act.kind == "accept_then_drop":
            self._drop(request, record)
            return
        elif act.kind == "accept_then_error":
            self._reply(request, record, act.status, {"errorCode": "InternalError"})
            return
        self._reply(request, record, 200, answer)

    def _intake(self, body: dict[str, Any], act: Behaviour) -> dict[str, Any]:
        group_id = _solapi_id("G")
        now = datetime.now(UTC)
        allow_duplicates = bool(body.get("allowDuplicates", False))
        failed: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        taken: list[Accepted] = []
        recipients: set[str] = set()
        for message in body["messages"]:
            provider_id = _solapi_id("M")
            is_dict = isinstance(message, dict)
            kind = ""
            if is_dict:
                kind = str(message.get("type") or "").upper() or (detect_type(message) or "")
            fields = message.get("customFields") if is_dict else None
            fields = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
            code: str | None = None
            if act.kind == "fail" and (act.only is None or fields.get(CUSTOM_FIELD) in act.only):
                code = act.status_code
            code = code or self._refusal(message, kind, recipients, allow_duplicates)
            if code:
                failed.append(
                    {
                        "to": message.get("to") if is_dict else None,
                        "from": message.get("from") if is_dict else None,
                        "type": kind or "SMS",
                        "statusMessage": act.status_message or f"refused ({code})",
                        "country": "82",
                        "messageId": provider_id,
                        "statusCode": code,
                        "accountId": ACCOUNT_ID,
                        "customFields": fields,
                    }
                )
                continue
            recipients.add(message["to"])
            stored = {**message, "type": kind}
            taken.append(
                Accepted(
                    provider_id,
                    group_id,
                    stored,
                    fallback=act.kind == "fallback",
                    accepted_at=now,
                    updated_at=now,
                    type_detected=not message.get("type"),
                )
            )
            listed.append(
                {
                    "messageId": provider_id,
                    "statusCode": "2000",
                    "statusMessage": "정상 접수(이통사로 접수 예정) ",
                    "customFields": fields,
                }
            )
        with self._lock:
            self.accepted.extend(taken)
            self.cash -= sum(_PRICE.get(str(a.message.get("type")).lower(), 0.0) for a in taken)
        response: dict[str, Any] = {
            "failedMessageList": failed,
            "groupInfo": self._group_info(group_id, now, taken, len(failed), allow_duplicates),
        }
        if body.get("showMessageList"):
            response["messageList"] = listed
        return response

    def _group_info(
        self,
        group_id: str,
        now: datetime,
        taken: list[Accepted],
        failed: int,
        allow_duplicates: bool,
    ) -> dict[str, Any]:
        by_type: dict[str, int] = {}
        for accepted in taken:
            kind = str(accepted.message.get("type")).lower()
            by_type[kind] = by_type.get(kind, 0) + 1
        cost = float(sum(_PRICE.get(k, 0.0) * n for k, n in by_type.items()))
        stamp = _iso(now)
        return {
            "count": {
                "total": len(taken) + failed,
                "sentTotal": 0,
                "sentFailed": 0,
                "sentSuccess": 0,
                "sentPending": 0,
                "sentReplacement": 0,
                "refund": 0,
                "registeredFailed": failed,
                "registeredSuccess": len(taken),
            },
            "countForCharge": {k: {"82": n} for k, n in by_type.items()},
            "balance": {"requested": cost, "replacement": 0.0, "refund": 0.0, "sum": cost},
            "point": {"requested": 0.0, "replacement": 0.0, "refund": 0.0, "sum": 0.0},
            "app": {"profit": dict.fromkeys(_PRICE, 0.0), "appId": None},
            "log": [{"createAt": stamp, "message": "메시지 그룹이 생성되었습니다."}],
            "status": "SENDING",
            "allowDuplicates": allow_duplicates,
            "isRefunded": False,
            "accountId": ACCOUNT_ID,
            "masterAccountId": None,
            "apiVersion": "4",
            "groupId": group_id,
            "_id": group_id,
            "price": {"82": dict(_PRICE)},
            "dateCreated": stamp,
            "dateUpdated": stamp,
            "scheduledDate": None,
            "dateSent": stamp,
            "dateCompleted": None,
        }

    # ------------------------------------------------------------------ balance

    def _behave_balance(
        self, request: BaseHTTPRequestHandler, record: Recorded, act: Behaviour
    ) -> None:
        if act.kind == "hang":
            self._stopping.wait(act.seconds)
            act = act.then or accept()
        if self._fault(request, record, act):
            return
        with self._lock:
            cash, point = self.cash, self.point
        self._reply(
            request,
            record,
            200,
            {  # the shape of the docs' sample answer
                "lowBalanceAlert": {
                    "notificationBalance": "0",
                    "currentBalance": None,
                    "balances": [200],
                    "channels": ["SMS"],
                    "enabled": True,
                },
                "point": point,
                "minimumCash": 0,
                "rechargeTo": 0,
                "autoRecharge": 0,
                "accountId": ACCOUNT_ID,
                "balance": cash,
            },
        )

    # ------------------------------------------------------------------ message list

    def _behave_list(
        self, request: BaseHTTPRequestHandler, record: Recorded, act: Behaviour
    ) -> None:
        if act.kind == "hang":
            self._stopping.wait(act.seconds)
            act = act.then or accept()
        if self._fault(request, record, act):
            return
        status, payload = self.message_list(record.query)
        self._reply(request, record, status, payload)

    def message_list(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, answer) of the message list for these query parameters."""

        def invalid(what: str) -> tuple[int, dict[str, Any]]:
            return 400, {"errorCode": "ValidationError", "errorMessage": what}

        raw_limit = query.get("limit") or str(DEFAULT_LIST_LIMIT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
            return invalid("limit")
        limit = int(raw_limit)
        bounds: dict[str, datetime] = {}
        for name in ("startDate", "endDate"):
            if query.get(name):
                parsed = _parse_date(query[name])
                if parsed is None:
                    return invalid(name)
                bounds[name] = parsed
        date_type = (query.get("dateType") or "CREATED").upper()
        if date_type not in ("CREATED", "UPDATED"):
            return invalid("dateType")
        ids: set[str] | None = None
        if query.get("messageIds"):
            raw = query["messageIds"]
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = raw.split(",")
            ids = {str(i).strip() for i in (decoded if isinstance(decoded, list) else [decoded])}
        with self._lock:
            stored = list(reversed(self.accepted))  # newest first
        matches: list[Accepted] = []
        for accepted in stored:
            message = accepted.message
            when = accepted.accepted_at if date_type == "CREATED" else accepted.updated_at
            if "startDate" in bounds and when < bounds["startDate"]:
                continue
            if "endDate" in bounds and when > bounds["endDate"]:
                continue
            checks = (
                ("to", message.get("to")),
                ("from", message.get("from")),
                ("type", message.get("type")),
                ("statusCode", accepted.status_code),
                ("messageId", accepted.provider_message_id),
                ("groupId", accepted.group_id),
            )
            if any(query.get(name) and query[name] != value for name, value in checks):
                continue
            if ids is not None and accepted.provider_message_id not in ids:
                continue
            matches.append(accepted)
        start = 0
        start_key = query.get("startKey") or None
        if start_key:
            positions = [i for i, a in enumerate(matches) if a.provider_message_id == start_key]
            if not positions:
                return 200, {
                    "startKey": start_key,
                    "nextKey": None,
                    "limit": limit,
                    "messageList": {},
                }
            start = positions[0]
        page = matches[start : start + limit]
        rest = matches[start + limit :]
        return 200, {
            "startKey": start_key,
            "nextKey": rest[0].provider_message_id if rest else None,
            "limit": limit,
            "messageList": {a.provider_message_id: self._stored(a) for a in page},
        }

    def _stored(self, accepted: Accepted) -> dict[str, Any]:
        message = accepted.message
        code = accepted.status_code
        done = code not in ("2000", "3000")
        return {
            "_id": accepted.provider_message_id,
            "messageId": accepted.provider_message_id,
            "groupId": accepted.group_id,
            "accountId": ACCOUNT_ID,
            "to": message.get("to"),
            "from": message.get("from"),
            "text": message.get("text"),
            "type": message.get("type"),
            "country": "82",
            "subject": message.get("subject"),
            "imageId": message.get("imageId"),
            "customFields": message.get("customFields") or {},
            "kakaoOptions": message.get("kakaoOptions"),
            "status": "COMPLETE" if done else "PENDING",
            "statusCode": code,
            "reason": None,
            "networkCode": "10001" if done else None,
            "networkName": "SKT" if done else None,
            "replacement": accepted.fallback,
            "autoTypeDetect": accepted.type_detected,
            "log": [
                {"createAt": _iso(accepted.accepted_at), "message": "메시지가 생성되었습니다."}
            ],
            "dateProcessed": _iso(accepted.updated_at) if done else None,
            "dateReported": _iso(accepted.updated_at) if done else None,
            "dateReceived": _iso(accepted.updated_at) if code == "4000" else None,
            "dateCreated": _iso(accepted.accepted_at),
            "dateUpdated": _iso(accepted.updated_at),
        }

    # ------------------------------------------------------------------ replies

    def _reply(
        self,
        request: BaseHTTPRequestHandler,
        record: Recorded,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._reply_raw(request, record, status, data, headers)

    def _reply_raw(
        self,
        request: BaseHTTPRequestHandler,
        record: Recorded,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        record.status = status
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json; charset=utf-8")
            request.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(data)
        except OSError:  # the client gave up (timeout) before we answered
            pass

    def _drop(self, request: BaseHTTPRequestHandler, record: Recorded) -> None:
        """Close the connection with no answer at all (status recorded as 0)."""
        record.status = 0
        request.close_connection = True
        with suppress(OSError):
            request.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ webhooks

    def _find(self, message_id: str) -> Accepted:
        with self._lock:
            for accepted in self.accepted:
                if message_id in (accepted.our_id, accepted.provider_message_id):
                    return accepted
        raise KeyError(message_id)

    def _report_event(self, accepted: Accepted, status_code: str | None) -> dict[str, Any]:
        message = accepted.message
        kind = str(message.get("type"))
        replaced = False
        if accepted.fallback and kind == "ATA":
            size = _euc_kr_len(str(message.get("text"))) or 0
            kind, replaced = ("SMS" if size <= 90 else "LMS"), True
        now = _iso(datetime.now(UTC))
        code = status_code or "4000"
        return {
            "eventDataId": secrets.token_hex(12),
            "retryCount": 0,
            "data": {
                "messageId": accepted.provider_message_id,
                "groupId": accepted.group_id,
                "type": kind,
                "to": message.get("to"),
                "from": message.get("from"),
                "statusCode": code,
                "statusMessage": "수신 완료" if code == "4000" else "실패",
                "dateProcessed": now,
                "dateReported": now,
                "dateReceived": now,
                "networkCode": "SKT",
                "replacement": replaced,  # not in the Python SDK's model; the Node SDK has it
                "kakaoOptions": message.get("kakaoOptions"),
                "customFields": message.get("customFields") or {},
            },
        }

    def report_body(self, message_id: str, status_code: str | None = None) -> bytes:
        """The MessageReport body Solapi would POST for one accepted message (ours or theirs)."""
        event = self._report_event(self._find(message_id), status_code)
        return json.dumps([event], ensure_ascii=False).encode("utf-8")

    def reports_body(self) -> bytes:
        """Final reports for every accepted message (fallback ones as their SMS/LMS substitute)."""
        with self._lock:
            accepted = list(self.accepted)
        events = [self._report_event(a, None) for a in accepted]
        return json.dumps(events, ensure_ascii=False).encode("utf-8")

    def inbound_body(self, from_number: str, text: str, to_number: str = "0215881234") -> bytes:
        event = {
            "eventDataId": secrets.token_hex(12),
            "retryCount": 0,
            "data": {
                "messageId": _solapi_id("M"),
                "type": "SMS",
                "from": from_number,
                "to": to_number,
                "text": text,
                "dateReceived": _iso(datetime.now(UTC)),
            },
        }
        return json.dumps([event], ensure_ascii=False).encode("utf-8")

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Our webhook scheme: X-Solapi-Timestamp and HMAC-SHA256 over '<timestamp>.' + body."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = hmac.new(
            self.webhook_secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-Solapi-Timestamp": stamp,
            "X-Solapi-Signature": signature,
        }
