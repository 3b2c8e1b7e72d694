"""The local sandbox provider: nothing leaves the machine; each message lands in the outbox."""

from __future__ import annotations

from sotong import clock
from sotong.notify import outbox
from sotong.notify.providers.base import OutgoingMessage, SendResult, sms_kind


class SandboxProvider:
    name = "sandbox"

    def send(self, message: OutgoingMessage) -> SendResult:
        shown_channel = (
            message.channel if message.channel != "sms" else sms_kind(message.text).lower()
        )
        outbox.put(
            {
                "message_id": message.message_id,
                "sent_at": clock.iso(clock.now()),
                "channel": shown_channel,
                "to": message.to_email if message.channel == "email" else message.to_phone,
                "subject": message.subject,
                "text": message.text,
                "kakao_template_code": message.kakao_template_code,
                "status": "delivered",
            }
        )
        return SendResult(outcome="accepted", provider_message_id=f"sandbox-{message.message_id}")
