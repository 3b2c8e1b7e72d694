"""Solapi (솔라피): KakaoTalk AlimTalk and SMS/LMS over Solapi's REST API v4, with no SDK.

What Solapi publishes, and this module follows
----------------------------------------------
- Authentication (docs.solapi.com "API Key 인증 방식", solapi/documents
  `authentication/api-key.md`): header
  `Authorization: HMAC-SHA256 apiKey=<key>, date=<ISO 8601>, salt=<random>, signature=<hex>`
  where the signature is HMAC-SHA256 over `date + salt` keyed with the API secret, the salt is a
  random 12–64 byte string, the date may be at most 15 minutes off Solapi's clock, and a signature
  may not be reused within 15 minutes (so every request, each page of a lookup too, signs anew).
  Failures are HTTP 403 with `errorCode` `InvalidAPIKey`, `SignatureDoesNotMatch`,
  `RequestTimeTooSkewed` or `DuplicatedSignature`.
- Sending (the official Python SDK `solapi` 5.0.3, `services/message_service.py` `send`):
  `POST /messages/v4/send-many/detail` with `{"messages": [...], "allowDuplicates": false,
  "showMessageList": true}` (`model/request/send_message_request.py`). Each message
  (`model/request/message.py`) has `to`, `from` (digits only), `text`, `type` (`SMS`, `LMS`,
  `MMS`, `ATA`, `CTA`, ...; optional: Solapi detects it when absent, `autoTypeDetect`),
  `subject` (not for SMS), `kakaoOptions {pfId, templateId, variables {"#{name}": value},
  disableSms}` (`model/kakao/kakao_option.py`) and `customFields` (keys ≤ 30 chars, values ≤ 100
  chars). The answer (`model/response/send_message_response.py`) is `{"groupInfo": {...}
  (GroupMessageResponse in `model/response/common_response.py`), "failedMessageList": [{to,
  from, type, statusMessage, country, messageId, statusCode, accountId, customFields}],
  "messageList": [{messageId, statusCode, statusMessage, customFields}]}`. Neither list is
  documented to follow the request's order, so entries are matched back to our messages by
  `customFields.sotongMessageId` only (a request of one message needs no match). Request-level
  errors are 4xx/5xx with `{"errorCode", "errorMessage"}` (`lib/fetcher.py`).
- Message list (SDK `get_messages`, `model/request/messages/get_messages.py` and
  `model/response/messages/get_messages.py`): `GET /messages/v4/list-old` with query `to`,
  `from`, `type`, `statusCode`, `messageId`, `groupId`, `dateType` (`CREATED`/`UPDATED`),
  `startDate`, `endDate`, `limit` (SDK default 20) and `startKey`; the answer is
  `{"startKey", "nextKey", "limit", "messageList": {<messageId>: {messageId, groupId, to, from,
  type, statusCode, customFields, kakaoOptions, dateCreated, dateUpdated, ...}}}` — an object
  keyed by message id, not a list; `nextKey` null on the last page, and the next page is asked
  for with `startKey=<nextKey>`. `lookup` uses it.
- Balance (solapi/documents `api-reference/cash/getBalance.md` "잔액조회"; SDK `get_balance`,
  `model/response/balance/get_balance.py`): `GET /cash/v1/balance`, signed like every request,
  needs the key's `cash:read` permission; the answer carries `balance` (cash, in 원) and `point`
  (both numbers; the SDK model has only these two, the docs' sample adds `lowBalanceAlert`,
  `minimumCash`, `rechargeTo`, `autoRecharge`, `accountId`). `balance` reads it.
- Message status codes (`api-reference/message-status-codes.md`): 1xxx refused at intake, 2000
  accepted, 2xxx refused inside Solapi, 3000 handed to the carrier, 3xxx failed at the carrier
  or at Kakao (3103 text does not match the template, 3104 not a KakaoTalk user, 3105 template
  not registered, 3107 not used KakaoTalk for 72 h or blocked AlimTalk), 4000 received.
  `_STATUS_REASONS` below is that table mapped to our reasons.
- Delivery reports (SDK `model/webhook/single_report.py`): the `MessageReport` webhook POSTs a
  JSON list of `{eventDataId, retryCount, data: {messageId, groupId, type, to, from, statusCode,
  statusMessage, dateProcessed, dateReported, dateReceived, networkCode, kakaoOptions,
  rcsOptions, naverOptions, customFields}}`. Group events (`model/webhook/group_report.py`,
  `data` a GroupMessageResponse without `messageId`) are skipped. Stored messages also carry
  `replacement` (true when the AlimTalk went out as its SMS/LMS substitute; the message list
  and the Node SDK's `storedMessage.ts` have it, the Python report model does not), so a text
  type with an AlimTalk template in `kakaoOptions` counts as a substitute too.

What Solapi does not publish, and what we chose
-----------------------------------------------
- **Webhook authentication.** `POST /webhook/v1/outgoing` accepts an optional `secret`, but the
  docs do not say how a delivery presents it. We define the scheme and fail closed:
  `X-Solapi-Timestamp: <unix seconds>` and
  `X-Solapi-Signature: <hex HMAC-SHA256(secret, "<timestamp>." + raw body)>`; a missing or
  wrong signature, or a timestamp more than 5 minutes away, is rejected. Confirm the scheme with
  Solapi before switching a hospital to live webhooks; only `verify_webhook`/`sign_webhook`
  change if it differs.
- **Idempotency.** Solapi documents no idempotency key, and `allowDuplicates: false` only refuses
  a repeated recipient inside one request. So every message carries our id in
  `customFields.sotongMessageId` (echoed in the send answer, in reports and in the message
  list); `send_many` tells apart a failure where the request surely did not reach Solapi
  (`retryable`: connection refused, 429, Solapi's own 1024/2024) from one where it may have
  been accepted (`uncertain`: read timeout, dropped connection, 5xx). An `uncertain` message is
  never resent blindly: the sender calls `lookup`, which searches Solapi's message list for our
  id, and resends only on `found=False`. Two messages to one number in one batch would trip
  `allowDuplicates`, so the later one is held back locally as `retryable duplicate_recipient`
  (not sent), and a repeated message id in one batch is sent once, every copy getting its answer.
- **A separate fallback text.** Solapi's substitution (`disableSms: false`) re-sends the AlimTalk
  `text` as SMS/LMS; the published request has no field for different fallback wording. We turn
  substitution on when `fallback_text` is set and off when it is None; different wording is not
  sent (logged, without the text).
- **Inbound messages.** No inbound (MO) webhook is in the published v4 reference or the SDK's
  `model/webhook/*`. `parse_inbound` reads the same envelope as reports (`[{eventDataId, data:
  {messageId, from, to, text, type, dateReceived}}]`) and keeps `messageId` (and `eventDataId`,
  stable across webhook retries) for de-duplication; treat it as provisional until Solapi
  confirms the shape.

Error mapping of `send_many` (`send` is `send_many([message])[0]`):
- the whole request: connection refused, DNS failure or connect timeout → every message
  `retryable provider_unreachable`; read timeout → `uncertain provider_timeout`; connection
  dropped → `uncertain provider_connection_lost`; 5xx → `uncertain provider_http_<status>`;
  429 → `retryable rate_limited` with `Retry-After` (default 1 s); 403 `DuplicatedSignature` →
  `retryable duplicated_signature`; other 401/403 → `permanent provider_auth` (ops must fix the
  key; logged with Solapi's code); other 4xx → `permanent` with Solapi's `errorCode`; a 2xx that
  is not JSON → `accepted unparsed_response`.
- one message of a 2xx answer: in `messageList` → `accepted` with Solapi's message id; in
  `failedMessageList` → its mapped reason, `retryable` only when Solapi surely dropped it and a
  resend is safe (1024, 2024 server errors; 1026 duplicate recipient), else `permanent`; in
  neither → `accepted unparsed_response` (Solapi took the request: never resent).
- refused before any request by `build_message` → `permanent` with the reason.

Nothing here logs a phone number or message text (a lookup's URL carries the recipient's
number, so urllib3's DEBUG request lines are masked too). The HTTP client (urllib3, already
loaded with botocore) is imported on the first request, not at import, to keep Lambda cold
starts short.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from sotong import clock
from sotong.masking import mask, mask_text
from sotong.notify.providers.base import (
    Balance,
    DeliveryReport,
    Lookup,
    OutgoingMessage,
    SendResult,
    sms_kind,
)
from sotong.phone import national_format, normalize_korean_phone

DEFAULT_BASE_URL = "https://api.solapi.com"
SEND_PATH = "/messages/v4/send-many/detail"
LIST_PATH = "/messages/v4/list-old"
BALANCE_PATH = "/cash/v1/balance"
CUSTOM_FIELD_MESSAGE_ID = "sotongMessageId"
SIGNATURE_HEADER = "X-Solapi-Signature"
TIMESTAMP_HEADER = "X-Solapi-Timestamp"
WEBHOOK_TOLERANCE_S = 300
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 3600.0
MAX_BATCH = 500
"""Messages per send-many request (Solapi takes up to 10,000; 500 keeps a request small)."""
LOOKUP_PAGE_SIZE = 20
"""The SDK's default `limit` (Solapi publishes no maximum)."""
LOOKUP_MAX_PAGES = 5
LOOKUP_MARGIN = timedelta(minutes=1)
"""Widens the lookup window on both sides, for the clocks of Solapi and us to differ a little."""

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
_RESEND_SAFE_STATUS = frozenset({"1024", "2024", "1026"})
"""Refused at intake in a way that leaves nothing sent: Solapi's own server errors and a
recipient repeated inside one request."""
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
    """What the provider needs from an HTTP client; `urllib3.PoolManager` fits."""

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
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


def _recipient(message: OutgoingMessage) -> str:
    if message.channel == "email":
        raise _InvalidMessage("unsupported_channel")
    if not message.to_phone:
        raise _InvalidMessage("invalid_recipient")
    try:
        return _national_digits(message.to_phone)
    except ValueError:
        raise _InvalidMessage("invalid_recipient") from None


def build_message(message: OutgoingMessage) -> dict[str, Any]:
    """The Solapi message object for one of ours; raises `_InvalidMessage` for what can't go."""
    to = _recipient(message)
    try:
        sender = _national_digits(message.sender_number)
    except ValueError:
        raise _InvalidMessage("invalid_sender") from None
    if not message.text:
        raise _InvalidMessage("invalid_message")
    if not message.message_id or len(message.message_id) > 100:
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


def _payload(bodies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"messages": list(bodies), "allowDuplicates": False, "showMessageList": True}


def build_payload(*messages: OutgoingMessage) -> dict[str, Any]:
    """The whole `send-many/detail` body: the messages, duplicates refused, ids returned."""
    return _payload([build_message(m) for m in messages])


# --------------------------------------------------------------------------- provider


class SolapiProvider:
    """`Provider` over Solapi: up to `max_batch` messages per request; never raises for
    Solapi's answers."""

    name = "solapi"
    max_batch = MAX_BATCH

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 5,
        http: HttpClient | None = None,
        *,
        lookup_page_size: int = LOOKUP_PAGE_SIZE,
        lookup_max_pages: int = LOOKUP_MAX_PAGES,
    ) -> None:
        if not api_key or not api_secret:
            raise ValueError("Solapi needs an API key and secret")
        self._api_key = api_key
        self._api_secret = api_secret
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + SEND_PATH
        self._timeout_s = float(timeout_s)
        self._http = http
        self._lookup_page_size = max(1, int(lookup_page_size))
        self._lookup_max_pages = max(1, int(lookup_max_pages))

    def _client(self) -> HttpClient:
        if self._http is None:
            import urllib3

            _mask_urllib3_debug_log()
            self._http = urllib3.PoolManager(num_pools=2, maxsize=4)
        return self._http

    def _timeout(self) -> Any:
        import urllib3

        return urllib3.Timeout(total=self._timeout_s)

    def _request(self, method: str, url: str, body: bytes | None = None) -> HttpResponse:
        """One signed request, no client-side retries; transport errors propagate."""
        headers = {
            "Authorization": authorization_header(self._api_key, self._api_secret),
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return self._client().request(
            method,
            url,
            body=body,
            headers=headers,
            timeout=self._timeout(),
            retries=False,
            redirect=False,
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.send_many([message])[0]

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """All of `messages` in one `send-many/detail` request; one result each, in order."""
        if len(messages) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} messages per request, not {len(messages)}")
        results: list[SendResult | None] = [None] * len(messages)
        first: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []
        sent: dict[str, int] = {}
        bodies: list[dict[str, Any]] = []
        recipients: set[str] = set()
        for index, message in enumerate(messages):
            if message.message_id in first:  # the same message twice: it goes once
                repeats.append((index, first[message.message_id]))
                continue
            first[message.message_id] = index
            try:
                body = build_message(message)
            except _InvalidMessage as exc:
                _warn("refused_locally", message.message_id, reason=exc.reason)
                results[index] = SendResult(outcome="permanent", reason=exc.reason)
                continue
            if body["to"] in recipients:  # allowDuplicates would refuse it: next batch
                _warn("duplicate_recipient_held_back", message.message_id)
                results[index] = SendResult(outcome="retryable", reason="duplicate_recipient")
                continue
            recipients.add(body["to"])
            sent[message.message_id] = index
            bodies.append(body)
        if bodies:
            for message_id, result in self._submit(bodies, list(sent)).items():
                results[sent[message_id]] = result
        for index, original in repeats:
            results[index] = results[original]
        return [r or SendResult(outcome="uncertain", reason="unmapped") for r in results]

    def _submit(
        self, bodies: Sequence[dict[str, Any]], message_ids: Sequence[str]
    ) -> dict[str, SendResult]:
        data = json.dumps(_payload(bodies), ensure_ascii=False, separators=(",", ":"))
        from urllib3.exceptions import HTTPError as TransportError

        try:
            response = self._request("POST", self._url, data.encode("utf-8"))
        except (TransportError, OSError) as exc:
            result = _network_result(exc)
            _warn_batch(
                "network_error", message_ids, reason=result.reason, error=type(exc).__name__
            )
            return dict.fromkeys(message_ids, result)
        return _map_response(message_ids, response.status, response.headers, response.data)

    def balance(self) -> Balance:
        """The account's cash balance (원) and points; `cash_krw=None` with a reason when the
        request fails or the answer has no numeric `balance`. Never raises."""
        from urllib3.exceptions import HTTPError as TransportError

        try:
            response = self._request("GET", self._base_url + BALANCE_PATH)
        except (TransportError, OSError) as exc:
            reason = _network_reason(exc)
            _log.warning("solapi balance_network_error", extra={"reason": reason})
            return Balance(cash_krw=None, reason=f"balance_{reason}")
        parsed = _json(response.data)
        if not 200 <= response.status < 300:
            code = parsed.get("errorCode") if isinstance(parsed, dict) else None
            _log.warning(
                "solapi balance_failed", extra={"http_status": response.status, "code": code}
            )
            if response.status in (401, 403) and code != "DuplicatedSignature":
                return Balance(cash_krw=None, reason="provider_auth")
            return Balance(cash_krw=None, reason=f"balance_http_{response.status}")
        cash = _number(parsed.get("balance")) if isinstance(parsed, dict) else None
        if cash is None:
            _log.warning("solapi balance_unparsed_response")
            return Balance(cash_krw=None, reason="balance_unparsed_response")
        assert isinstance(parsed, dict)
        return Balance(cash_krw=cash, point=_number(parsed.get("point")))

    def lookup(self, message: OutgoingMessage, sent_after: datetime) -> Lookup:
        """Search Solapi's message list (by recipient, created from `sent_after` minus a minute
        until now) for our message id, page by page up to `lookup_max_pages` pages.

        `found=False` only when every page was read and none has it; `found=None` on any
        transport, HTTP or parse failure, or when the pages ran out first.
        """
        try:
            to = _recipient(message)
        except _InvalidMessage as exc:  # Solapi could never have taken it
            return Lookup(found=False, reason=exc.reason)
        now = datetime.now(UTC)
        after = sent_after if sent_after.tzinfo else sent_after.replace(tzinfo=UTC)
        start = min(after.astimezone(UTC), now) - LOOKUP_MARGIN
        query = {
            "to": to,
            "dateType": "CREATED",
            "startDate": _iso(start),
            "endDate": _iso(now + LOOKUP_MARGIN),
            "limit": str(self._lookup_page_size),
        }
        from urllib3.exceptions import HTTPError as TransportError

        start_key: str | None = None
        for _ in range(self._lookup_max_pages):
            params = {**query, "startKey": start_key} if start_key else query
            url = f"{self._base_url}{LIST_PATH}?{urlencode(params)}"
            try:
                response = self._request("GET", url)
            except (TransportError, OSError) as exc:
                reason = _network_reason(exc)
                _warn("lookup_network_error", message.message_id, reason=reason)
                return Lookup(found=None, reason=f"lookup_{reason}")
            if not 200 <= response.status < 300:
                reason = "rate_limited" if response.status == 429 else f"http_{response.status}"
                _warn("lookup_failed", message.message_id, http_status=response.status)
                return Lookup(found=None, reason=f"lookup_{reason}")
            parsed = _json(response.data)
            listed = parsed.get("messageList") if isinstance(parsed, dict) else None
            if not isinstance(listed, dict):
                _warn("lookup_unparsed_response", message.message_id)
                return Lookup(found=None, reason="lookup_unparsed_response")
            for key, entry in listed.items():
                if isinstance(entry, dict) and _our_id(entry) == message.message_id:
                    return _found(_str(entry.get("messageId")) or str(key), entry)
            assert isinstance(parsed, dict)
            next_key = _str(parsed.get("nextKey"))
            if next_key is None:
                return Lookup(found=False)
            if next_key == start_key:
                _warn("lookup_paging_stuck", message.message_id)
                return Lookup(found=None, reason="lookup_paging_stuck")
            start_key = next_key
        _warn("lookup_incomplete", message.message_id, pages=self._lookup_max_pages)
        return Lookup(found=None, reason="lookup_incomplete")


class _MaskPersonalData(logging.Filter):
    """urllib3 logs each request line at DEBUG; a lookup's query holds the recipient's number."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_text(record.getMessage()), None
        return True


_URLLIB3_LOG_FILTER = _MaskPersonalData()


def _mask_urllib3_debug_log() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_LOG_FILTER not in logger.filters:
        logger.addFilter(_URLLIB3_LOG_FILTER)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _our_id(entry: Mapping[str, Any]) -> str | None:
    custom = entry.get("customFields")
    return _str(custom.get(CUSTOM_FIELD_MESSAGE_ID)) if isinstance(custom, dict) else None


def _found(provider_id: str, entry: Mapping[str, Any]) -> Lookup:
    """A message Solapi has, with its status code read as ours."""
    code = str(entry.get("statusCode") or "")
    if code == _DELIVERED_STATUS:
        return Lookup(found=True, provider_message_id=provider_id, status="delivered")
    if code in _PENDING_STATUS or not code.isdigit():  # e.g. "TEST1000", or not yet set
        return Lookup(found=True, provider_message_id=provider_id, status="accepted")
    return Lookup(
        found=True,
        provider_message_id=provider_id,
        status="failed",
        reason=reason_for_status(code),
    )


def _network_reason(exc: BaseException) -> str:
    """Was the request possibly received? `unreachable` means surely not, the others maybe."""
    from urllib3 import exceptions as u3

    if isinstance(exc, u3.ConnectTimeoutError | u3.NewConnectionError | ConnectionRefusedError):
        return "provider_unreachable"
    if isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        return "provider_timeout"
    return "provider_connection_lost"


def _network_result(exc: BaseException) -> SendResult:
    reason = _network_reason(exc)
    if reason == "provider_unreachable":
        return SendResult(outcome="retryable", reason=reason)
    return SendResult(outcome="uncertain", reason=reason)


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


def _request_failure(
    message_ids: Sequence[str], status: int, headers: Mapping[str, str], data: bytes
) -> SendResult | None:
    """The one result every message gets when the whole request failed; None for a 2xx."""
    if 200 <= status < 300:
        return None
    if status == 429:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        _warn_batch("rate_limited", message_ids, retry_after_s=retry_after)
        return SendResult(outcome="retryable", reason="rate_limited", retry_after_s=retry_after)
    if status >= 500:  # Solapi may have taken the request before failing
        _warn_batch("provider_http_error", message_ids, http_status=status)
        return SendResult(outcome="uncertain", reason=f"provider_http_{status}")
    parsed = _json(data)
    error_code = parsed.get("errorCode") if isinstance(parsed, dict) else None
    if status in (401, 403):
        if error_code == "DuplicatedSignature":  # a fresh salt fixes it
            return SendResult(outcome="retryable", reason="duplicated_signature")
        _log.error(
            "solapi rejected our credentials",
            extra=mask(
                {
                    "message_count": len(message_ids),
                    "first_message_id": message_ids[0] if message_ids else None,
                    "http_status": status,
                    "code": error_code,
                }
            ),
        )
        return SendResult(outcome="permanent", reason="provider_auth")
    reason = str(error_code) if error_code else f"provider_http_{status}"
    _warn_batch("provider_refused", message_ids, http_status=status, code=reason)
    return SendResult(outcome="permanent", reason=reason)


def _refused(entry: Mapping[str, Any], code: str) -> SendResult:
    reason = reason_for_status(code) if code else "provider_refused"
    outcome: Literal["retryable", "permanent"] = (
        "retryable" if code in _RESEND_SAFE_STATUS else "permanent"
    )
    return SendResult(
        outcome=outcome, provider_message_id=_str(entry.get("messageId")), reason=reason
    )


def _map_response(
    message_ids: Sequence[str], status: int, headers: Mapping[str, str], data: bytes
) -> dict[str, SendResult]:
    """Solapi's answer to one send-many request -> a result for each of `message_ids`."""
    whole = _request_failure(message_ids, status, headers, data)
    if whole is not None:
        return dict.fromkeys(message_ids, whole)
    parsed = _json(data)
    if not isinstance(parsed, dict):
        # A 2xx means Solapi took the request; resending could duplicate the messages.
        _warn_batch("unparsed_response", message_ids, http_status=status)
        return dict.fromkeys(
            message_ids, SendResult(outcome="accepted", reason="unparsed_response")
        )
    wanted = set(message_ids)
    only = message_ids[0] if len(message_ids) == 1 else None

    def owner(entry: Any) -> str | None:
        if not isinstance(entry, dict):
            return None
        ours = _our_id(entry)
        if ours is None:
            return only  # a request of one message: whatever comes back is about it
        return ours if ours in wanted else None

    results: dict[str, SendResult] = {}
    listed = parsed.get("messageList")
    for entry in listed if isinstance(listed, list) else []:
        message_id = owner(entry)
        if message_id is None:
            continue
        code = str(entry.get("statusCode") or "")
        if not code or code in _PENDING_STATUS or code == _DELIVERED_STATUS:
            results[message_id] = SendResult(
                outcome="accepted", provider_message_id=_str(entry.get("messageId"))
            )
        else:
            results[message_id] = _refused(entry, code)
    failed = parsed.get("failedMessageList")
    for entry in failed if isinstance(failed, list) else []:
        message_id = owner(entry)
        if message_id is None:
            continue
        known = results.get(message_id)
        if known is not None and known.outcome == "accepted":
            continue  # listed as taken: never treat it as refused
        code = str(entry.get("statusCode") or "")
        results[message_id] = _refused(entry, code)
        _warn("message_refused", message_id, code=code, reason=results[message_id].reason)
    missing = [m for m in message_ids if m not in results]
    if missing:
        group = parsed.get("groupInfo")
        group_id = (
            _str(group.get("groupId") or group.get("_id")) if isinstance(group, dict) else None
        )
        _warn_batch("unparsed_response", missing, http_status=status)
        unparsed = SendResult(
            outcome="accepted",
            provider_message_id=f"group:{group_id}" if group_id else None,
            reason="unparsed_response",
        )
        results.update(dict.fromkeys(missing, unparsed))
    return results


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _number(value: Any) -> float | None:
    """A JSON number (or a numeric string, as the docs' `notificationBalance` is); None else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _warn(event: str, message_id: str, **fields: Any) -> None:
    _log.warning("solapi %s", event, extra=mask({"message_id": message_id, **fields}))


def _warn_batch(event: str, message_ids: Sequence[str], **fields: Any) -> None:
    """One log line for a request of many messages: their count and the first id."""
    first = message_ids[0] if message_ids else None
    _log.warning(
        "solapi %s",
        event,
        extra=mask({"message_id": first, "message_count": len(message_ids), **fields}),
    )


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


def _events(body: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """(eventDataId, data) of each event of a webhook body (a list, or one bare event)."""
    parsed = _json(body)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return []
    out: list[tuple[str | None, dict[str, Any]]] = []
    for event in parsed:
        if not isinstance(event, dict):
            continue
        data = event.get("data")
        out.append((_str(event.get("eventDataId")), data if isinstance(data, dict) else event))
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

    Shape: the SDK's `SingleReportPayload` (`model/webhook/single_report.py`); group events
    (`GroupReport`, no `messageId`) are skipped. 4000 is `delivered`, or `fallback_sent` when an
    AlimTalk went out as its SMS/LMS substitute; 080 opt-outs are `opted_out`; every other code
    is `failed` with its reason kept (`not_kakao_user`, `kakao_blocked_or_inactive`,
    `template_mismatch`, ...).
    """
    reports: list[DeliveryReport] = []
    for _, data in _events(body):
        provider_id = _str(data.get("messageId"))
        code = str(data.get("statusCode") or "")
        if provider_id is None or not code or code in _PENDING_STATUS:
            continue
        message_id = _our_id(data)
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
    """A patient's reply that reached the hospital's number (provisional shape, see module doc).

    `provider_message_id` (Solapi's `messageId`) is the de-duplication key; `event_id`
    (`eventDataId`, the same on every webhook retry of one event) stands in when it is absent.
    """

    from_phone: str
    to_phone: str | None
    text: str
    received_at: datetime | None
    channel: Literal["sms", "kakao"]
    provider_message_id: str | None = None
    event_id: str | None = None


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = clock.parse(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_inbound(body: bytes) -> list[InboundMessage]:
    """Inbound SMS/Kakao replies; entries without a Korean sender number or text are skipped."""
    messages: list[InboundMessage] = []
    for event_id, data in _events(body):
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
                event_id=event_id,
            )
        )
    return messages
