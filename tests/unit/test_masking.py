"""Personal data stays out of logs: masked in data, in free text, and in the JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from sotong.masking import mask, mask_text
from sotong.observability import get_logger

RAW = ("010-1234-5678", "01012345678", "1234-5678", "010-9876-5432", "kim.cs@example.com")


def assert_no_personal_data(text: str) -> None:
    for raw in ("1234-5678", "12345678", "9876-5432", "98765432", "kim.cs@", "cheolsu@"):
        assert raw not in text, (raw, text)


def test_personal_keys_are_blanked() -> None:
    event = {
        "patient_name": "김철수",
        "phone": "010-1234-5678",
        "recipient_email": "kim.cs@example.com",
        "text": "임플란트 수술 후 통증이 있어요",
        "variables": {"name": "김철수", "code": "C-0001"},
        "authorization": "Bearer abc.def",
        "Name": "김철수",
    }
    masked = mask(event)
    assert masked == {
        "patient_name": "***",
        "phone": "***",
        "recipient_email": "***",
        "text": "***",
        "variables": {"name": "***", "code": "***"},
        "authorization": "***",
        "Name": "***",
    }
    assert event["phone"] == "010-1234-5678", "mask() returns a copy"


def test_personal_keys_with_empty_or_none_values_stay_recognisable() -> None:
    assert mask({"phone": None, "email": "", "to": ["010-1234-5678", None, 3]}) == {
        "phone": None,
        "email": "",
        "to": ["***", None, 3],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("환자 김철수 010-9876-5432 연락 요망", "환자 김철수 *******5432 연락 요망"),
        ("연락처는010-9876-5432입니다", "연락처는*******5432입니다"),
        ("번호 01098765432로 회신", "번호 *******5432로 회신"),
        ("번호 010 9876 5432", "번호 *******5432"),
        ("번호 010.9876.5432", "번호 *******5432"),
        ("+82 10-9876-5432 에서 문의", "+********5432 에서 문의"),
        ("보호자 +821098765432", "보호자 +********5432"),
        ("병원 02-555-0100 로 전화", "병원 *****0100 로 전화"),
        ("지점 031-555-0100", "지점 ******0100"),
        ("메일 kim.cs@example.com 로 보내 주세요", "메일 k***@example.com 로 보내 주세요"),
        ("이메일:cheolsu@hanmail.net입니다", "이메일:c***@hanmail.net입니다"),
    ],
)
def test_phones_and_emails_in_free_text_are_masked(text: str, expected: str) -> None:
    assert mask_text(text) == expected
    assert mask(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "01JD3K0B2W5QZ6X8Y9T7R4M1N2",
        "3f2a0215-5512-4c3e-8d0a-021234567890",
        "C-20251122-0001",
        "2025-11-22T10:00:00+09:00",
        "2025-11-22 08:20:01,123+0000",
        "received",
        "in_progress",
        "implant_surgery",
        "SOTONG_CMP_RCV_01",
        "1732262400000",
        "+6mo",
        "request 42 of 1000",
    ],
)
def test_ids_statuses_and_times_are_left_alone(value: str) -> None:
    assert mask_text(value) == value


def test_nested_data_keeps_its_shape_and_non_personal_values() -> None:
    record = {
        "complaint_id": "01JD3K0B2W5QZ6X8Y9T7R4M1N2",
        "status": "acknowledged",
        "urgency": "critical",
        "attempt": 3,
        "delivered": False,
        "cost": 8.4,
        "history": [
            {"status": "received", "by": "staff:0001", "note": "환자 010-9876-5432"},
            {"status": "acknowledged", "summary": "보호자 010-1111-2222 통화"},
        ],
    }
    masked = mask(record)
    assert masked["complaint_id"] == record["complaint_id"]
    assert masked["status"] == "acknowledged"
    assert masked["attempt"] == 3
    assert masked["delivered"] is False
    assert masked["cost"] == 8.4
    assert masked["history"][0] == {"status": "received", "by": "staff:0001", "note": "***"}
    assert masked["history"][1]["summary"] == "보호자 *******2222 통화"


def test_other_objects_are_masked_as_the_text_they_log_as() -> None:
    """The log serializer writes other objects with str(); an exception's text may hold a phone."""
    masked = mask({"error": ValueError("provider rejected 010-1234-5678"), "cost": Decimal("8.4")})
    assert masked == {"error": "provider rejected *******5678", "cost": "8.4"}


# --- the Powertools logger every function uses -------------------------------------------------


@pytest.fixture
def logged() -> tuple[Logger, io.StringIO]:
    # A fresh service name: Powertools keeps one handler per service for the whole process.
    logger = get_logger(f"test-masking-{uuid.uuid4().hex[:8]}")
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_logger_masks_personal_extra_keys(logged: tuple[Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info("sent", extra={"phone": "010-1234-5678", "note": "환자 김철수 010-9876-5432"})
    assert_no_personal_data(stream.getvalue())
    assert "김철수" not in stream.getvalue()
    (line,) = lines(stream)
    assert line["message"] == "sent"
    assert line["level"] == "INFO"
    assert line["phone"] == "***"
    assert line["note"] == "***"


def test_logger_masks_numbers_and_addresses_in_messages(
    logged: tuple[Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info("문자 발송 실패: 010-1234-5678 (kim.cs@example.com) 재시도")
    logger.warning("held for quiet hours", extra={"reason": "수신자 01098765432 야간"})
    logger.info({"to": "+821012345678", "status": "sent", "message_id": "01JD3K0B2W"})
    text = stream.getvalue()
    assert_no_personal_data(text)
    first, second, third = lines(stream)
    assert first["message"] == "문자 발송 실패: *******5678 (k***@example.com) 재시도"
    assert second["reason"] == "수신자 *******5432 야간"
    assert third["message"] == {"to": "***", "status": "sent", "message_id": "01JD3K0B2W"}


def test_logger_masks_exception_text(logged: tuple[Logger, io.StringIO]) -> None:
    logger, stream = logged
    try:
        raise ValueError("provider rejected 010-1234-5678")
    except ValueError:
        logger.exception("send failed")
    assert_no_personal_data(stream.getvalue())
    (line,) = lines(stream)
    assert "*******5678" in line["exception"]
    assert line["stack_trace"]["value"] == "provider rejected *******5678"
    assert line["exception_name"] == "ValueError"


def test_logger_keeps_service_and_correlation_fields(logged: tuple[Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.append_keys(complaint_id="01JD3K0B2W5QZ6X8Y9T7R4M1N2", hospital="demo")
    logger.info("acknowledged")
    (line,) = lines(stream)
    assert line["complaint_id"] == "01JD3K0B2W5QZ6X8Y9T7R4M1N2"
    assert line["hospital"] == "demo"
    assert line["service"].startswith("test-masking-")


def test_raw_values_used_here_really_are_personal() -> None:
    """Guards the guard: every raw value above would be caught if it leaked."""
    for raw in RAW:
        with pytest.raises(AssertionError):
            assert_no_personal_data(f"x {raw} y")
