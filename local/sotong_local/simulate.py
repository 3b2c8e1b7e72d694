"""Provider webhooks played locally: a patient's reply, a delivery report, an 080 opt-out.

Bodies have the shape `sotong.notify.providers.solapi` parses (Solapi's webhook envelope,
`[{eventDataId, retryCount, data: {...}}]`) and are signed with `solapi.sign_webhook`, as the
provider signs them, with the local stack's webhook key (a placeholder secret in its moto).
`sotong simulate` posts them to the stack's `/webhooks/inbound` and `/webhooks/reports`; the
stack itself posts the reports of the sandbox's `not-kakao` fault (`SandboxReports`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sotong.notify.providers.base import sms_kind
from sotong.notify.providers.solapi import sign_webhook

log = logging.getLogger("sotong_local.simulate")

INBOUND_PATH = "/webhooks/inbound"
REPORTS_PATH = "/webhooks/reports"
REPORT_CODES = {"delivered": "4000", "fallback": "4000", "failed": "3041", "not-kakao": "3104"}
"""Solapi status codes: 4000 received; 3041 handset unavailable; 3104 not a KakaoTalk user."""
OPT_OUT_CODE = "2061"
"""Solapi's 080 opt-out refusal, which the webhook records as an SMS opt-out."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def envelope(*events: dict[str, Any]) -> bytes:
    """The webhook body: each event with its own id, as the provider sends them."""
    body = [
        {"eventDataId": f"sim-{uuid.uuid4().hex[:16]}", "retryCount": 0, "data": data}
        for data in events
    ]
    return json.dumps(body, ensure_ascii=False).encode()


def inbound_body(from_phone: str, text: str, to_phone: str, *, kakao: bool = False) -> bytes:
    """A patient's message to the hospital's number (SMS, or a KakaoTalk chat message)."""
    kind = "KAKAO" if kakao else sms_kind(text)
    return envelope(
        {
            "messageId": f"sim-in-{uuid.uuid4().hex[:12]}",
            "from": from_phone,
            "to": to_phone,
            "text": text,
            "type": kind,
            "dateReceived": _now(),
        }
    )


def report_data(
    message_id: str,
    *,
    status: str = "delivered",
    code: str | None = None,
    channel: str = "sms",
    sms_type: str = "SMS",
    to_phone: str | None = None,
    provider_message_id: str | None = None,
    template_code: str | None = None,
) -> dict[str, Any]:
    """One delivery report about our message `message_id` (its customFields carry it)."""
    if status not in REPORT_CODES:
        raise ValueError(f"status must be one of {', '.join(REPORT_CODES)}")
    fallback = status == "fallback"
    alimtalk = channel == "alimtalk"
    data: dict[str, Any] = {
        "messageId": provider_message_id or f"sandbox-{message_id}",
        "type": sms_type if (fallback or not alimtalk) else "ATA",
        "statusCode": code or REPORT_CODES[status],
        "dateReported": _now(),
        "customFields": {"sotongMessageId": message_id},
    }
    if fallback:
        data["replacement"] = True
    if alimtalk or fallback:
        data["kakaoOptions"] = {"templateId": template_code or "local"}
    if to_phone:
        data["to"] = to_phone
    return data


def optout_data(phone: str) -> dict[str, Any]:
    """An 080 free opt-out: the provider reports the number as refusing (Solapi 2061)."""
    return {
        "messageId": f"sim-080-{uuid.uuid4().hex[:12]}",
        "type": "SMS",
        "statusCode": OPT_OUT_CODE,
        "to": phone,
        "dateReported": _now(),
    }


def signed(body: bytes, secret: str) -> list[tuple[str, str]]:
    """Request headers for `body`, signed as the provider signs its webhooks."""
    return [("Content-Type", "application/json"), *sign_webhook(body, secret).items()]


Post = Callable[[str, list[tuple[str, str]], bytes], int]
"""(path, headers, body) -> HTTP status: the local gateway, in the stack's process."""


class SandboxReports:
    """Delivers the sandbox's delivery reports to the stack's own webhook, once the sender has
    recorded the send (a report may not overtake the record it moves)."""

    WAIT_S = 10.0

    def __init__(self, post: Post, secret: Callable[[], str]) -> None:
        self._post = post
        self._secret = secret
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="sandbox-reports", daemon=True)
        self.delivered = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(2.0)

    def __call__(self, report: dict[str, Any]) -> None:
        self._queue.put(dict(report))

    def _loop(self) -> None:
        while True:
            report = self._queue.get()
            if report is None:
                return
            try:
                self._deliver(report)
            except Exception as error:  # a report lost is a record left `sent`, as in AWS
                log.warning("sandbox report not delivered: %s", error)

    def _deliver(self, report: dict[str, Any]) -> None:
        from sotong.notify import records

        message_id = str(report.get("customFields", {}).get("sotongMessageId", ""))
        deadline = time.monotonic() + self.WAIT_S
        while time.monotonic() < deadline:
            record = records.get(message_id) if message_id else None
            if record is None or record.get("status") != "calling":
                break
            time.sleep(0.1)
        report = {**report, "dateReported": _now()}
        body = envelope(report)
        status = self._post(REPORTS_PATH, signed(body, self._secret()), body)
        self.delivered += 1
        log.info(
            "sandbox report %s for %s posted to %s: %d",
            report.get("statusCode"),
            message_id or "?",
            REPORTS_PATH,
            status,
        )
