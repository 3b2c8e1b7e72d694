"""A fake Solapi on 127.0.0.1: checks requests the way Solapi documents, answers as scripted.

It is written from Solapi's published docs, independently of `sotong.notify.providers.solapi`, so
a mistake in the client is not mirrored here:

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
  registered template).

Scripting: `script(...)` queues one behaviour per request (then `default`, normally `accept()`):
`accept()`, `rate_limited(retry_after)`, `server_error(status)`, `hang(seconds, then=...)`,
`fail(status_code)` (each message in `failedMessageList`), `fallback()` (accepted; the later
report says the AlimTalk went out as its SMS/LMS substitute) and `http_error(status, code)`.

Every request is kept in `requests`; every accepted message in `accepted`; `sends_for(id)` counts
accepted messages carrying our `customFields.sotongMessageId`. Delivery-report and inbound
webhook bodies Solapi would POST come from `report_body`, `reports_body`, `inbound_body`, signed
with `signed_headers` (our scheme: HMAC-SHA256 over "<timestamp>." + body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEND_PATH = "/messages/v4/send-many/detail"
CUSTOM_FIELD = "sotongMessageId"
MAX_SKEW = timedelta(minutes=15)
_TYPES = {"SMS", "LMS", "MMS", "ATA", "CTA"}
_NUMBER = re.compile(r"^(0\d{8,10}|1[5-9]\d{6})$")
_VARIABLE = re.compile(r"^#\{[^{}]+\}$")


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


def accept() -> Behaviour:
    return Behaviour("accept")


def rate_limited(retry_after: str | None = "2") -> Behaviour:
    return Behaviour("rate_limited", status=429, retry_after=retry_after)


def server_error(status: int = 500) -> Behaviour:
    return Behaviour("server_error", status=status)


def hang(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Wait `seconds` before answering (`then`, default accept): longer than a client timeout."""
    return Behaviour("hang", seconds=seconds, then=then or accept())


def fail(
    status_code: str = "1043", status_message: str = "등록한 템플릿과 내용이 다릅니다."
) -> Behaviour:
    return Behaviour("fail", status_code=status_code, status_message=status_message)


def fallback() -> Behaviour:
    return Behaviour("fallback")


def http_error(status: int, error_code: str, message: str = "") -> Behaviour:
    return Behaviour("http_error", status=status, error_code=error_code, status_message=message)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Accepted:
    provider_message_id: str
    group_id: str
    message: dict[str, Any]
    fallback: bool = False
    accepted_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def our_id(self) -> str | None:
        custom = self.message.get("customFields")
        return custom.get(CUSTOM_FIELD) if isinstance(custom, dict) else None


def _solapi_id(prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{prefix}4V{stamp}{secrets.token_hex(8).upper()}"


def _euc_kr_len(text: str) -> int | None:
    try:
        return len(text.encode("euc-kr"))
    except UnicodeEncodeError:
        return None


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
        self.requests: list[Recorded] = []
        self.accepted: list[Accepted] = []
        self.templates: dict[tuple[str, str], str] = {}
        self._script: deque[Behaviour] = deque()
        self._seen_signatures: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSolapi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as real servers do: no delayed-ACK stall per reply

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSolapi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ scripting

    def script(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def register_template(self, pf_id: str, template_id: str, content: str) -> None:
        """Intake then refuses (1043) an ATA whose text differs from `content` with variables."""
        self.templates[(pf_id, template_id)] = content

    def sends_for(self, message_id: str) -> int:
        with self._lock:
            return sum(1 for a in self.accepted if a.our_id == message_id)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

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

    def _refusal(self, message: Any, recipients: set[str], allow_duplicates: bool) -> str | None:
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
        kind = str(message.get("type") or "").upper()
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
        record = Recorded(request.path, dict(request.headers.items()), body)
        with self._lock:
            self.requests.append(record)
        if request.path != SEND_PATH:
            self._reply(request, record, 404, {"errorCode": "NotFound", "errorMessage": "none"})
            return
        refused = self.check_authorization(request.headers.get("Authorization"))
        if refused:
            status, code = refused
            self._reply(request, record, status, {"errorCode": code, "errorMessage": code})
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
        self._behave(request, record, body, self._next())

    def _behave(
        self, request: BaseHTTPRequestHandler, record: Recorded, body: Any, act: Behaviour
    ) -> None:
        if act.kind == "hang":
            self._stopping.wait(act.seconds)
            self._behave(request, record, body, act.then or accept())
            return
        if act.kind == "rate_limited":
            headers = {"Retry-After": act.retry_after} if act.retry_after is not None else {}
            payload = {"errorCode": "TooManyRequests", "errorMessage": "slow down"}
            self._reply(request, record, 429, payload, headers)
            return
        if act.kind == "server_error":
            self._reply(request, record, act.status, {"errorCode": "InternalError"})
            return
        if act.kind == "http_error":
            payload = {"errorCode": act.error_code, "errorMessage": act.status_message}
            self._reply(request, record, act.status, payload)
            return
        self._reply(request, record, 200, self._intake(body, act))

    def _intake(self, body: dict[str, Any], act: Behaviour) -> dict[str, Any]:
        group_id = _solapi_id("G")
        allow_duplicates = bool(body.get("allowDuplicates", False))
        failed: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        recipients: set[str] = set()
        for message in body["messages"]:
            provider_id = _solapi_id("M")
            code = act.status_code if act.kind == "fail" else None
            code = code or self._refusal(message, recipients, allow_duplicates)
            fields = message.get("customFields") if isinstance(message, dict) else None
            if code:
                failed.append(
                    {
                        "to": message.get("to") if isinstance(message, dict) else None,
                        "from": message.get("from") if isinstance(message, dict) else None,
                        "type": message.get("type") if isinstance(message, dict) else None,
                        "statusMessage": act.status_message or f"refused ({code})",
                        "country": "82",
                        "messageId": provider_id,
                        "statusCode": code,
                        "accountId": "12925149",
                        "customFields": fields or {},
                    }
                )
                continue
            recipients.add(message["to"])
            with self._lock:
                self.accepted.append(
                    Accepted(provider_id, group_id, message, fallback=act.kind == "fallback")
                )
            listed.append(
                {
                    "messageId": provider_id,
                    "statusCode": "2000",
                    "statusMessage": "정상 접수(이통사로 접수 예정) ",
                    "customFields": fields or {},
                }
            )
        total = len(body["messages"])
        response: dict[str, Any] = {
            "failedMessageList": failed,
            "groupInfo": {
                "count": {
                    "total": total,
                    "sentTotal": 0,
                    "sentFailed": 0,
                    "sentSuccess": 0,
                    "sentPending": 0,
                    "sentReplacement": 0,
                    "refund": 0,
                    "registeredFailed": len(failed),
                    "registeredSuccess": total - len(failed),
                },
                "status": "SENDING",
                "allowDuplicates": allow_duplicates,
                "isRefunded": False,
                "accountId": "12925149",
                "apiVersion": "4",
                "groupId": group_id,
                "_id": group_id,
                "dateCreated": datetime.now(UTC).isoformat(),
            },
        }
        if body.get("showMessageList"):
            response["messageList"] = listed
        return response

    def _reply(
        self,
        request: BaseHTTPRequestHandler,
        record: Recorded,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        record.status = status
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
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
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {
            "eventDataId": secrets.token_hex(12),
            "retryCount": 0,
            "data": {
                "messageId": accepted.provider_message_id,
                "groupId": accepted.group_id,
                "type": kind,
                "to": message.get("to"),
                "from": message.get("from"),
                "statusCode": status_code or "4000",
                "statusMessage": "수신 완료" if (status_code or "4000") == "4000" else "실패",
                "dateProcessed": now,
                "dateReported": now,
                "dateReceived": now,
                "networkCode": "SKT",
                "replacement": replaced,
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
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        event = {
            "eventDataId": secrets.token_hex(12),
            "retryCount": 0,
            "data": {
                "messageId": _solapi_id("M"),
                "type": "SMS",
                "from": from_number,
                "to": to_number,
                "text": text,
                "dateReceived": now,
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
