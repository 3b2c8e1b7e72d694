"""The sandbox provider against moto: outbox, sent marker, lookup and batches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sotong import store
from sotong.notify import outbox
from sotong.notify.providers.base import OutgoingMessage
from sotong.notify.providers.sandbox import SandboxProvider, sent_copies


def sms(message_id: str, text: str = "내일 10시 진료 예약입니다.") -> OutgoingMessage:
    return OutgoingMessage(message_id, "sms", text, "0212345678", to_phone="+821012345678")


def test_send_writes_the_outbox_and_lookup_finds_it(aws: dict[str, str]) -> None:
    provider = SandboxProvider()
    before = datetime.now(UTC)
    assert provider.lookup(sms("m-1"), before).found is False
    result = provider.send(sms("m-1"))
    assert (result.outcome, result.provider_message_id) == ("accepted", "sandbox-m-1")
    found = provider.lookup(sms("m-1"), before)
    assert (found.found, found.provider_message_id, found.status) == (
        True,
        "sandbox-m-1",
        "delivered",
    )
    [entry] = outbox.recent()
    # the message record's words (no record here: what it was when sent), SMS/LMS beside them
    assert (entry["message_id"], entry["channel"], entry["status"]) == ("m-1", "sms", "sent")
    assert entry["sms_type"] == "SMS"
    assert sent_copies("m-1") == 1
    assert sent_copies("m-unknown") == 0


def test_a_resend_shows_as_a_second_copy(aws: dict[str, str]) -> None:
    provider = SandboxProvider()
    provider.send(sms("m-1"))
    provider.send(sms("m-1"))
    assert sent_copies("m-1") == 2
    assert len(outbox.recent()) == 2  # the outbox shows the duplicate a patient would get


def test_send_many_in_order_up_to_max_batch(aws: dict[str, str]) -> None:
    provider = SandboxProvider()
    assert provider.max_batch == 100
    messages = [sms(f"m-{i}", "가" * (44 + i)) for i in range(4)]  # 88..94 bytes
    results = provider.send_many(messages)
    assert [r.provider_message_id for r in results] == [f"sandbox-m-{i}" for i in range(4)]
    kinds = {e["message_id"]: (e["channel"], e["sms_type"]) for e in outbox.recent()}
    assert kinds == {
        "m-0": ("sms", "SMS"),
        "m-1": ("sms", "SMS"),
        "m-2": ("sms", "LMS"),
        "m-3": ("sms", "LMS"),
    }
    with pytest.raises(ValueError, match="at most"):
        provider.send_many([sms(f"x-{i}") for i in range(101)])


def test_lookup_that_cannot_read_the_table_says_so(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(store.dynamodb(), "get_item", broken)
    found = SandboxProvider().lookup(sms("m-1"), datetime.now(UTC))
    assert (found.found, found.reason) == (None, "sandbox_store_error")
