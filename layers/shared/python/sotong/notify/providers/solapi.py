"""Solapi (솔라피): KakaoTalk AlimTalk and SMS/LMS over Solapi's REST API v4, with no SDK.

What Solapi publishes, and this module follows
----------------------------------------------
- Authentication (docs.solapi.com "API Key 인증 방식", solapi/documents
  `authentication/api-key.md`): header
  `Authorization: HMAC-SHA256 apiKey=<key>, date=<ISO 8601>, salt=<random>, signature=<hex>`
  where the signature is HMAC-SHA256 over `date + salt` keyed with the API secret, the salt is a
  random 12–64 byte string, the date may be at most 15 minutes off Solapi's clock, and a signature
  may not be reused within 15 minutes. Failures are HTTP 403 with `errorCode` `InvalidAPIKey`,
  `SignatureDoesNotMatch`, `RequestTimeTooSkewed` or `DuplicatedSignature`.
- Sending: `POST /messages/v4/send-many/detail` (what Solapi's own Python and Node SDKs call),
  body `{"messages": [...], "allowDuplicates": false, "showMessageList": true}`; each message has
  `to`, `from` (digits only), `text`, `type` (`SMS`, `LMS`, `MMS`, `ATA`, `CTA`), `subject`
  (not for SMS), `kakaoOptions {pfId, templateId, variables {"#{name}": value}, disableSms}` and
  `customFields` (keys ≤ 30 chars, values ≤ 100 chars). The answer is
  `{"groupInfo": {...}, "failedMessageList": [{messageId, statusCode, statusMessage, ...}],
  "messageList": [{messageId, statusCode, statusMessage, customFields}]}`. Request-level errors
  are 4xx/5xx with `{"errorCode", "errorMessage"}`.
- Message status codes (`api-reference/message-status-codes.md`): 1xxx refused at intake, 2000
  accepted, 2xxx refused inside Solapi, 3000 handed to the carrier, 3xxx failed at the carrier
  or at Kakao (3103 text does not match the template, 3104 not a KakaoTalk user, 3105 template
  not registered, 3107 not used KakaoTalk for 72 h or blocked AlimTalk), 4000 received.
  `_STATUS_REASONS` below is that table mapped to our reasons.
- Delivery reports (Solapi's Python SDK `solapi/model/webhook/single_report.py`): the
  `MessageReport` webhook POSTs a JSON list of `{eventDataId, retryCount, data: {messageId,
  groupId, type, to, from, statusCode, statusMessage, dateProcessed, dateReported, dateReceived,
  networkCode, kakaoOptions, customFields}}`. Stored messages also carry `replacement` (true when
  the AlimTalk went out as its SMS/LMS substitute) — see the Node SDK's `storedMessage.ts`.

What Solapi does not publish, and what we chose
-----------------------------------------------
- **Webhook authentication.** `POST /webhook/v1/outgoing` accepts an optional `secret`, but the
  docs do not say how a delivery presents it. We define the scheme and fail closed:
  `X-Solapi-Timestamp: <unix seconds>` and
  `X-Solapi-Signature: <hex HMAC-SHA256(secret, "<timestamp>." + raw body)>`; a missing or
  wrong signature, or a timestamp more than 5 minutes away, is rejected. Confirm the scheme with
  Solapi before switching a hospital to live webhooks; only `verify_webhook`/`sign_webhook`
  change if it differs.
- **Idempotency.** Solapi documents no idempotency key. `allowDuplicates: false` only refuses a
  repeated recipient inside one request. So we put our message id in
  `customFields.sotongMessageId` (it comes back in reports and in Solapi's message log), send
  one message per request, and tell apart a failure where the request never reached Solapi
  (`provider_unreachable`, safe to resend) from one where it may have been accepted
  (`provider_timeout`, `provider_connection_lost`): a resend after those can duplicate the text,
  and the sender should look for the report of the first attempt before resending.
- **A separate fallback text.** Solapi's substitution (`disableSms: false`) re-sends the AlimTalk
  `text` as SMS/LMS; the published request has no field for different fallback wording. We turn
  substitution on when `fallback_text` is set and off when it is None; different wording is not
  sent (logged, without the text).
- **Inbound messages.** No inbound (MO) webhook is in the published v4 reference. `parse_inbound`
  reads the same envelope as reports (`[{eventDataId, data: {messageId, from, to, text, type,
  dateReceived}}]`); treat it as provisional until Solapi confirms the shape.

Error mapping of `send`: connection refused/DNS → retryable `provider_unreachable`; read timeout →
retryable `provider_timeout`; connection dropped → retryable `provider_connection_lost`; 5xx →
retryable `provider_http_<status>`; 429 → retryable `rate_limited` with `Retry-After` (default 1 s);
401/403 → permanent `provider_auth` (ops must fix the key; logged with Solapi's code); other 4xx →
permanent with Solapi's `errorCode`; a message in `failedMessageList` → its mapped reason,
retryable only for Solapi's own server errors (1024, 2024).

Nothing here logs a phone number or message text. The HTTP client (urllib3, already loaded with
botocore) is imported on the first send, not at import, to keep Lambda cold starts short.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sotong.masking import mask
from sotong.notify.providers.base import DeliveryReport, OutgoingMessage, SendResult, sms_kind
from sotong.phone import national_format, normalize_korean_phone

DEFAULT_BASE_URL = "https://api.solapi.com"
SEND_PATH = "/messages/v4/send-many/detail"
CUSTOM_FIELD_MESSAGE_ID = "sotongMessageId"
SIGNATURE_HEADER = "X-Solapi-Signature"
TIMESTAMP_HEADER = "X-Solapi-Timestamp"
WEBHOOK_TOLERANCE_S = 300
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 3600.0

_log = logging.getLogger("sotong.notify.solapi")

# Solapi status code -> our reason. Source: Solapi's published "메시지 상태 코드" table.
_STATUS_REASONS: dict[str, str] = {
    "1010": "invalid_message",  # required value missing
    "1011": "invalid_message",  # format error
    "1013": "invalid_message",  # subject not allowed for SMS
    "1014": "invalid_message",  # subject over 40 bytes
    "1020": "provider_auth",  # account unknown or wrong password
    "1021": "invalid_message",
    "1022": "invalid_message",
    "1023": "invalid_message",
    "1024": "provider_error",  # Solapi server error
    "1025": "invalid_message",  # wrong message type
    "1026": "duplicate_recipient",
    "1027": "invalid_message",  # not UTF-8
    "1028": "invalid_message",  # non-printable characters
    "1029": "invalid_message",  # outside EUC-KR for a text message
    "1030": "insufficient_balance",
    "1031": "message_too_long",
    "1032": "invalid_message",  # custom field too long
    "1033": "invalid_message",  # kakaoOptions on a non-Kakao type
    "1034": "invalid_message",
    "1041": "invalid_sender_key",  # pfId not valid
    "1042": "template_not_found",  # templateId not valid
    "1043": "template_mismatch",  # text differs from the registered template
    "1044": "template_mismatch",  # buttons
    "1045": "template_mismatch",
    "1046": "template_mismatch",
    "1047": "template_mismatch",
    "1048": "template_mismatch",
    "1049": "template_mismatch",
    "1050": "template_mismatch",
    "1051": "template_mismatch",
    "1052": "template_mismatch",
    "1053": "template_mismatch",
    "1058": "no_route",
    "1060": "blocked_recipient",
    "1061": "opted_out",  # 080 free opt-out
    "1062": "sender_not_registered",
    "1064": "blocked_recipient",  # blocked after a KISA report
    "2011": "invalid_message",
    "2024": "provider_error",
    "2060": "blocked_recipient",
    "2061": "opted_out",
    "2062": "sender_not_registered",
    "2063": "account_blocked",
    "2064": "blocked_recipient",
    "2230": "insufficient_balance",
    "2254": "spam_blocked",
    "3010": "invalid_recipient",  # recipient number format
    "3011": "invalid_message",
    "3012": "carrier_error",
    "3013": "invalid_sender",
    "3014": "unknown_status",
    "3024": "carrier_error",
    "3031": "undeliverable",
    "3032": "invalid_recipient",  # not a subscriber
    "3040": "expired",
    "3041": "handset_unavailable",
    "3042": "handset_unavailable",
    "3043": "handset_unavailable",
    "3044": "handset_unavailable",
    "3045": "handset_unavailable",
    "3046": "handset_unavailable",
    "3047": "recipient_refused",
    "3048": "unknown_status",
    "3050": "handset_unsupported",
    "3051": "handset_unavailable",
    "3052": "carrier_error",
    "3053": "carrier_error",
    "3054": "spam_blocked",
    "3055": "spam_blocked",
    "3056": "undeliverable",
    "3057": "undeliverable",
    "3058": "no_route",
    "3059": "invalid_sender",  # spoofed sender number
    "3060": "undeliverable",
    "3101": "invalid_sender_key",
    "3102": "not_channel_friend",
    "3103": "template_mismatch",
    "3104": "not_kakao_user",
    "3105": "template_not_found",
    "3106": "invalid_sender_key",
    "3107": "kakao_blocked_or_inactive",
    "3108": "outside_send_hours",
}
_TRANSIENT_STATUS = frozenset({"1024", "2024"})
_PENDING_STATUS = frozenset({"2000", "3000"})
_DELIVERED_STATUS = "4000"
_TEXT_TYPES = frozenset({"SMS", "LMS", "MMS"})


def reason_for_status(code: str) -> str:
    """Our reason for a Solapi message status code (`solapi_<code>` when unknown)."""
    return _STATUS_REASONS.get(code, f"solapi_{code}")


# --------------------------------------------------------------------------- HTTP client


class HttpResponse(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def data(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


class HttpClient(Protocol):
    """What `send` needs from an HTTP client; `urllib3.PoolManager` fits."""

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        timeout: Any,
        retries: Any,
        redirect: bool,
    ) -> HttpResponse: ...


class _InvalidMessage(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- auth


def authorization_header(
    api_key: str, api_secret: str, *, at: datetime | None = None, salt: str | None = None
) -> str:
    """Solapi's `HMAC-SHA256` Authorization value; uses the real clock (Solapi allows ±15 min)."""
    date = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    salt = salt or secrets.token_hex(16)
    signature = hmac.new(
        api_secret.encode("utf-8"), (date + salt).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={signature}"


# --------------------------------------------------------------------------- request body


def _national_digits(raw: str) -> str:
    """`+821012345678` or `010-1234-5678` -> `01012345678`; ValueError if not Korean."""
    return national_format(normalize_korean_phone(raw)).replace("-", "")


def _variables(variables: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in variables.items():
        name = key if key.startswith("#{") and key.endswith("}") else f"#{{{key}}}"
        out[name] = str(value)
    return out


def build_message(message: OutgoingMessage) -> dict[str, Any]:
    """The Solapi message object for one of ours; raises `_InvalidMessage` for what can't go."""
    if message.channel == "email":
        raise _InvalidMessage("unsupported_channel")
    if not message.to_phone:
        raise _InvalidMessage("invalid_recipient")
    try:
        to = _national_digits(message.to_phone)
    except ValueError:
        raise _InvalidMessage("invalid_recipient") from None
    try:
        sender = _national_digits(message.sender_number)
    except ValueError:
        raise _InvalidMessage("invalid_sender") from None
    if not message.text:
        raise _InvalidMessage("invalid_message")
    if len(message.message_id) > 100:
        raise _InvalidMessage("invalid_message")
    body: dict[str, Any] = {
        "to": to,
        "from": sender,
        "text": message.text,
        "customFields": {CUSTOM_FIELD_MESSAGE_ID: message.message_id},
    }
    if message.channel == "alimtalk":
        if not message.kakao_sender_key or not message.kakao_template_code:
            raise _InvalidMessage("template_not_found")
        body["type"] = "ATA"
        body["kakaoOptions"] = {
            "pfId": message.kakao_sender_key,
            "templateId": message.kakao_template_code,
            "variables": _variables(message.variables),
            "disableSms": message.fallback_text is None,
        }
        if message.fallback_text is not None and message.fallback_text != message.text:
            _warn("fallback_text_ignored", message.message_id)
    else:
        kind = sms_kind(message.text)
        body["type"] = kind
        if kind == "LMS" and message.subject:
            body["subject"] = message.subject
    return body


def build_payload(message: OutgoingMessage) -> dict[str, Any]:
    """The whole `send-many/detail` body: one message, duplicates refused, ids returned."""
    return {"messages": [build_message(message)], "allowDuplicates": False, "showMessageList": True}


# --------------------------------------------------------------------------- provider


class SolapiProvider:
    """`Provider` over Solapi. One message per request; never raises for Solapi's answers."""

    name = "solapi"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 5,
        http: HttpClient | None = None,
    ) -> None:
        if not api_key or not api_secret:
            raise ValueError("Solapi needs an API key and secret")
        self._api_key = api_key
        self._api_secret = api_secret
        self._url = base_url.rstrip("/") + SEND_PATH
        self._timeout_s = float(timeout_s)
        self._http = http

    def _client(self) -> HttpClient:
        if self._http is None:
            import urllib3

            self._http = urllib3.PoolManager(num_pools=2, maxsize=4)
        return self._http

    def _timeout(self) -> Any:
        import urllib3

        return urllib3.Timeout(total=self._timeout_s)

    def send(self, message: OutgoingMessage) -> SendResult:
        try:
            payload = build_payload(message)
        except _InvalidMessage as exc:
            _warn("refused_locally", message.message_id, reason=exc.reason)
            return SendResult(outcome="permanent", reason=exc.reason)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {
            "Authorization": authorization_header(self._api_key, self._api_secret),
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
        }
        from urllib3.exceptions import HTTPError as TransportError

        try:
            response = self._client().request(
                "POST",
                self._url,
                body=body,
                headers=headers,
                timeout=self._timeout(),
                retries=False,
                redirect=False,
            )
        except (TransportError, OSError) as exc:
            reason = _network_reason(exc)
            _warn("network_error", message.message_id, reason=reason, error=type(exc).__name__)
            return SendResult(outcome="retryable", reason=reason)
        return _map_response(message.message_id, response.status, response.headers, response.data)


def _network_reason(exc: BaseException) -> str:
    """Was the request possibly received? `unreachable` means surely not, the others maybe."""
    from urllib3 import exceptions as u3

    if isinstance(exc, u3.ConnectTimeoutError | u3.NewConnectionError | ConnectionRefusedError):
        return "provider_unreachable"
    if isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        return "provider_timeout"
    return "provider_connection_lost"


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8")) if data else None
    except (UnicodeDecodeError, ValueError):
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds from a `Retry-After` value (seconds or an HTTP date); 1 s when absent or odd."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _map_response(
    message_id: str, status: int, headers: Mapping[str, str], data: bytes
) -> SendResult:
    if status == 429:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        _warn("rate_limited", message_id, retry_after_s=retry_after)
        return SendResult(outcome="retryable", reason="rate_limited", retry_after_s=retry_after)
    if status >= 500:
        _warn("provider_http_error", message_id, http_status=status)
        return SendResult(outcome="retryable", reason=f"provider_http_{status}")
    parsed = _json(data)
    error_code = parsed.get("errorCode") if isinstance(parsed, dict) else None
    if status in (401, 403):
        if error_code == "DuplicatedSignature":  # a fresh salt fixes it
            return SendResult(outcome="retryable", reason="duplicated_signature")
        _log.error(
            "solapi rejected our credentials",
            extra=mask({"message_id": message_id, "http_status": status, "code": error_code}),
        )
        return SendResult(outcome="permanent", reason="provider_auth")
    if not 200 <= status < 300:
        reason = str(error_code) if error_code else f"provider_http_{status}"
        _warn("provider_refused", message_id, http_status=status, code=reason)
        return SendResult(outcome="permanent", reason=reason)
    if not isinstance(parsed, dict):
        # A 2xx means Solapi took the request; resending could duplicate the message.
        _warn("unparsed_response", message_id, http_status=status)
        return SendResult(outcome="accepted", reason="unparsed_response")
    failed = parsed.get("failedMessageList") or []
    if isinstance(failed, list) and failed:
        entry = failed[0] if isinstance(failed[0], dict) else {}
        code = str(entry.get("statusCode") or "")
        reason = reason_for_status(code) if code else "provider_refused"
        outcome: Literal["retryable", "permanent"] = (
            "retryable" if code in _TRANSIENT_STATUS else "permanent"
        )
        _warn("message_refused", message_id, code=code, reason=reason)
        return SendResult(
            outcome=outcome, provider_message_id=_str(entry.get("messageId")), reason=reason
        )
    provider_id: str | None = None
    listed = parsed.get("messageList")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        provider_id = _str(listed[0].get("messageId"))
    if provider_id is None:
        group = parsed.get("groupInfo")
        if isinstance(group, dict):
            group_id = _str(group.get("groupId") or group.get("_id"))
            provider_id = f"group:{group_id}" if group_id else None
    return SendResult(outcome="accepted", provider_message_id=provider_id)


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _warn(event: str, message_id: str, **fields: Any) -> None:
    _log.warning("solapi %s", event, extra=mask({"message_id": message_id, **fields}))


# --------------------------------------------------------------------------- webhooks


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers our webhook scheme expects on `body` (for tests and the local stack)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode("utf-8"), stamp.encode() + b"." + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: digest.hexdigest()}


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: Callable[[], float] = time.time,
    tolerance_s: int = WEBHOOK_TOLERANCE_S,
) -> bool:
    """True only for a body signed with `secret` within `tolerance_s` (constant-time compare)."""
    signature = _header(headers, SIGNATURE_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    if not secret or not signature or not stamp:
        return False
    stamp = stamp.strip()
    if not stamp.isdigit() or abs(now() - int(stamp)) > tolerance_s:
        return False
    provided = signature.strip().lower().removeprefix("sha256=")
    expected = hmac.new(
        secret.encode("utf-8"), stamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", errors="replace"))


def _events(body: bytes) -> list[dict[str, Any]]:
    parsed = _json(body)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return []
    out: list[dict[str, Any]] = []
    for event in parsed:
        if not isinstance(event, dict):
            continue
        data = event.get("data")
        out.append(data if isinstance(data, dict) else event)
    return out


def _e164(raw: Any) -> str | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return normalize_korean_phone(raw)
    except ValueError:
        return None


def _truthy(value: Any) -> bool:
    return value is True or value == 1 or (isinstance(value, str) and value.lower() == "true")


def parse_delivery_reports(body: bytes) -> list[DeliveryReport]:
    """Solapi `MessageReport` webhook body -> our reports; pending (2000/3000) entries skipped.

    4000 is `delivered`, or `fallback_sent` when an AlimTalk went out as its SMS/LMS substitute;
    080 opt-outs are `opted_out`; every other code is `failed` with its reason kept
    (`not_kakao_user`, `kakao_blocked_or_inactive`, `template_mismatch`, ...).
    """
    reports: list[DeliveryReport] = []
    for data in _events(body):
        provider_id = _str(data.get("messageId"))
        code = str(data.get("statusCode") or "")
        if provider_id is None or not code or code in _PENDING_STATUS:
            continue
        custom = data.get("customFields")
        message_id = _str(custom.get(CUSTOM_FIELD_MESSAGE_ID)) if isinstance(custom, dict) else None
        kind = str(data.get("type") or "").upper()
        kakao = data.get("kakaoOptions")
        had_template = isinstance(kakao, dict) and bool(kakao.get("templateId"))
        substituted = kind in _TEXT_TYPES and (_truthy(data.get("replacement")) or had_template)
        channel: Literal["alimtalk", "sms"] | None
        if kind == "ATA":
            channel = "alimtalk"
        elif kind in _TEXT_TYPES:
            channel = "sms"
        else:
            channel = "alimtalk" if had_template else None
        status: Literal["delivered", "failed", "fallback_sent", "opted_out"]
        reason: str | None
        if code == _DELIVERED_STATUS:
            status = "fallback_sent" if substituted else "delivered"
            reason = "kakao_fallback" if substituted else None
        else:
            reason = reason_for_status(code)
            status = "opted_out" if reason == "opted_out" else "failed"
        reports.append(
            DeliveryReport(
                message_id=message_id,
                provider_message_id=provider_id,
                status=status,
                reason=reason,
                channel=channel,
                recipient_phone=_e164(data.get("to")),
            )
        )
    return reports


@dataclass(frozen=True)
class InboundMessage:
    """A patient's reply that reached the hospital's number (provisional shape, see module doc)."""

    from_phone: str
    to_phone: str | None
    text: str
    received_at: datetime | None
    channel: Literal["sms", "kakao"]
    provider_message_id: str | None = None


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_inbound(body: bytes) -> list[InboundMessage]:
    """Inbound SMS/Kakao replies; entries without a Korean sender number or text are skipped."""
    messages: list[InboundMessage] = []
    for data in _events(body):
        sender = _e164(data.get("from"))
        text = data.get("text")
        if sender is None or not isinstance(text, str) or not text:
            continue
        kind = str(data.get("type") or "").upper()
        messages.append(
            InboundMessage(
                from_phone=sender,
                to_phone=_e164(data.get("to")),
                text=text,
                received_at=_parse_time(data.get("dateReceived") or data.get("dateCreated")),
                channel="sms" if kind in _TEXT_TYPES or not kind else "kakao",
                provider_message_id=_str(data.get("messageId")),
            )
        )
    return messages
