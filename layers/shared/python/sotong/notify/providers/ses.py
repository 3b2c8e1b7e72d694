"""E-mail through Amazon SES (API v2), and SES's delivery events mapped back to our messages.

`send` calls `sesv2.send_email` with Simple content (UTF-8 subject and text body) and tags the
e-mail with our message id, so the events SES publishes to a configuration set's event
destination (SNS or EventBridge) name the message they belong to.

SES tag values may only hold ASCII letters, digits, `_` and `-` (at most 256 characters). A
message id that fits goes in tag `sotong_message_id` as is; any other goes hex-encoded (UTF-8) in
tag `sotong_message_id_hex`. `parse_ses_events` reads both.

Error mapping of `send` (botocore retries are off: the notification pipeline owns retries, so
an ambiguous failure is never resent behind its back):
- retryable (SES surely has not sent it): `TooManyRequestsException`, `Throttling`,
  `ThrottlingException`, `LimitExceededException` (a sending quota that resets),
  `ServiceUnavailable`, `InternalFailure` and any HTTP 5xx (AWS's own SDK retries those for
  every operation), and failures to connect (`EndpointConnectionError`, `ConnectTimeoutError`,
  proxy and TLS-handshake errors: `provider_unreachable`); other client-side botocore errors
  (no credentials, no region) are `retryable ses_client_error`, nothing having left;
- uncertain (the request left, no answer came back: SES may have sent it): a read timeout
  (`provider_timeout`) or a connection dropped while waiting for the answer
  (`provider_connection_lost`). SES has no way to look a message up by our tag afterwards, so
  `lookup` answers `found=None, reason="ses_has_no_lookup"` and the sender decides;
- permanent: `MessageRejected`, `MailFromDomainNotVerifiedException`,
  `AccountSuspendedException`, `SendingPausedException`, `NotFoundException` (configuration set),
  `BadRequestException` and every other 4xx, with the code (snake-cased) as the reason; a
  request botocore refuses to build (`ParamValidationError`) is `permanent invalid_message`.

`send_many` sends one e-mail per SES call (`max_batch` is 1; longer lists are looped).

Nothing here logs an address, subject or body.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sotong.masking import mask
from sotong.notify.providers.base import DeliveryReport, Lookup, OutgoingMessage, SendResult

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_sesv2 import SESV2Client

TAG_MESSAGE_ID = "sotong_message_id"
TAG_MESSAGE_ID_HEX = "sotong_message_id_hex"
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

_RETRYABLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_PERMANENT_REASONS = {
    "MessageRejected": "message_rejected",
    "MailFromDomainNotVerifiedException": "mail_from_domain_not_verified",
    "AccountSuspendedException": "account_suspended",
    "SendingPausedException": "sending_paused",
    "NotFoundException": "configuration_not_found",
    "BadRequestException": "bad_request",
}

_log = logging.getLogger("sotong.notify.ses")


def message_id_tag(message_id: str) -> dict[str, str]:
    """The SES e-mail tag that carries our message id."""
    if _TAG_VALUE.match(message_id):
        return {"Name": TAG_MESSAGE_ID, "Value": message_id}
    encoded = message_id.encode("utf-8").hex()
    if len(encoded) > 256:
        raise ValueError("message id is too long for an SES tag")
    return {"Name": TAG_MESSAGE_ID_HEX, "Value": encoded}


def _snake(code: str) -> str:
    code = code.removesuffix("Exception")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", code).lower() or "ses_error"


class SesEmailProvider:
    """`Provider` for e-mail over SES v2; never raises for SES's answers, only maps them."""

    name = "ses"
    max_batch = 1

    def __init__(
        self,
        from_address: str,
        configuration_set: str | None = None,
        client: SESV2Client | None = None,
    ) -> None:
        self._from = from_address
        self._configuration_set = configuration_set
        self._client_instance = client

    def _client(self) -> SESV2Client:
        if self._client_instance is None:
            import boto3
            from botocore.config import Config

            self._client_instance = boto3.client(
                "sesv2",
                config=Config(
                    retries={"total_max_attempts": 1},
                    connect_timeout=3,
                    read_timeout=10,
                ),
            )
        return self._client_instance

    def send(self, message: OutgoingMessage) -> SendResult:
        from botocore.exceptions import BotoCoreError, ClientError

        if message.channel != "email":
            return SendResult(outcome="permanent", reason="unsupported_channel")
        if not message.to_email or "@" not in message.to_email:
            return SendResult(outcome="permanent", reason="invalid_recipient")
        try:
            tag = message_id_tag(message.message_id)
        except ValueError:
            return SendResult(outcome="permanent", reason="invalid_message")
        request: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [message.to_email]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": message.subject or "", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}},
                }
            },
            "EmailTags": [tag],
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client().send_email(**request)
        except ClientError as exc:
            return _map_client_error(message.message_id, exc)
        except BotoCoreError as exc:  # connection refused, timeouts, DNS, dropped connections
            result = _map_transport_error(exc)
            _warn(
                "network_error", message.message_id, reason=result.reason, error=type(exc).__name__
            )
            return result
        return SendResult(outcome="accepted", provider_message_id=response.get("MessageId"))

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One SES call per message (SES v2 `SendEmail` takes one), in order."""
        return [self.send(message) for message in messages]

    def lookup(self, message: OutgoingMessage, sent_after: datetime) -> Lookup:
        """SES cannot be asked whether it sent an e-mail (events arrive only by push)."""
        return Lookup(found=None, reason="ses_has_no_lookup")


def _map_transport_error(exc: Exception) -> SendResult:
    """Did the request leave? Connect failures surely not; a timeout or drop afterwards maybe."""
    from botocore import exceptions as bc

    if isinstance(exc, bc.ConnectionError):  # endpoint, connect timeout, proxy, TLS handshake
        return SendResult(outcome="retryable", reason="provider_unreachable")
    if isinstance(exc, bc.ReadTimeoutError):
        return SendResult(outcome="uncertain", reason="provider_timeout")
    if isinstance(exc, bc.HTTPClientError | bc.IncompleteReadError):
        return SendResult(outcome="uncertain", reason="provider_connection_lost")
    if isinstance(exc, bc.ParamValidationError):
        return SendResult(outcome="permanent", reason="invalid_message")
    return SendResult(outcome="retryable", reason="ses_client_error")  # nothing was sent


def _map_client_error(message_id: str, exc: ClientError) -> SendResult:
    code = str(exc.response.get("Error", {}).get("Code") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _RETRYABLE_CODES or status >= 500 or status == 429:
        _warn("throttled_or_unavailable", message_id, code=code, http_status=status)
        return SendResult(outcome="retryable", reason=_snake(code) if code else "ses_unavailable")
    reason = _PERMANENT_REASONS.get(code) or (_snake(code) if code else "ses_error")
    _warn("refused", message_id, code=code, http_status=status)
    return SendResult(outcome="permanent", reason=reason)


def _warn(event: str, message_id: str, **fields: Any) -> None:
    _log.warning("ses %s", event, extra=mask({"message_id": message_id, **fields}))


# --------------------------------------------------------------------------- events


def _loads(raw: Any) -> Any:
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode("utf-8")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


def _ses_events(event: Any) -> Iterable[Mapping[str, Any]]:
    """Unwrap SNS, SQS and EventBridge envelopes down to SES event records."""
    event = _loads(event)
    if isinstance(event, list):
        for item in event:
            yield from _ses_events(item)
        return
    if not isinstance(event, Mapping):
        return
    if "eventType" in event or "notificationType" in event:
        yield event
        return
    if isinstance(event.get("Records"), list):  # SNS or SQS delivered to Lambda
        for record in event["Records"]:
            if not isinstance(record, Mapping):
                continue
            if isinstance(record.get("Sns"), Mapping):
                yield from _ses_events(record["Sns"].get("Message"))
            elif "body" in record:
                yield from _ses_events(record["body"])
        return
    if event.get("Type") == "Notification" and "Message" in event:  # raw SNS envelope
        yield from _ses_events(event["Message"])
        return
    if "detail" in event:  # EventBridge
        yield from _ses_events(event["detail"])


def _message_id(mail: Mapping[str, Any]) -> str | None:
    tags = mail.get("tags")
    if not isinstance(tags, Mapping):
        return None
    plain = tags.get(TAG_MESSAGE_ID)
    if isinstance(plain, list) and plain:
        return str(plain[0])
    encoded = tags.get(TAG_MESSAGE_ID_HEX)
    if isinstance(encoded, list) and encoded:
        try:
            return bytes.fromhex(str(encoded[0])).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def parse_ses_events(event: Any) -> list[DeliveryReport]:
    """SES event-destination records (SNS, SQS or EventBridge) -> our delivery reports.

    Delivery -> delivered; Bounce -> failed `bounce`; Complaint -> opted_out `complaint`;
    Reject -> failed `rejected`; Rendering Failure -> failed `rendering_failure`. Send, Open,
    Click, DeliveryDelay and Subscription are not final and are skipped.
    """
    reports: list[DeliveryReport] = []
    for record in _ses_events(event):
        kind = str(record.get("eventType") or record.get("notificationType") or "")
        mail = record.get("mail")
        if not isinstance(mail, Mapping):
            continue
        status: Literal["delivered", "failed", "opted_out"]
        reason: str | None
        if kind == "Delivery":
            status, reason = "delivered", None
        elif kind == "Bounce":
            status, reason = "failed", "bounce"
        elif kind == "Complaint":
            status, reason = "opted_out", "complaint"
        elif kind == "Reject":
            status, reason = "failed", "rejected"
        elif kind == "Rendering Failure":
            status, reason = "failed", "rendering_failure"
        else:
            continue
        reports.append(
            DeliveryReport(
                message_id=_message_id(mail),
                provider_message_id=str(mail["messageId"]) if mail.get("messageId") else None,
                status=status,
                reason=reason,
                channel="email",
                recipient_email=_first_destination(mail),
            )
        )
    return reports


def _first_destination(mail: Mapping[str, Any]) -> str | None:
    destination = mail.get("destination")
    if isinstance(destination, list) and destination and isinstance(destination[0], str):
        return destination[0]
    return None
