"""The input rules shared by the API's models and the CSV importer: date windows
(`sotong.dates`), free text, mobile numbers and strict scalars (`sotong.fields`), tracking codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from sotong import clock, dates
from sotong.complaints.model import (
    ComplaintSubmission,
    InboundSubmission,
    SurveyAnswer,
    normalize_code,
    tracking_code,
)
from sotong.fields import clean_text, is_mobile
from sotong.recall.campaigns import CampaignRequest
from sotong.recall.model import Appointment, PatientRegistration, TreatmentRecord
from sotong.recall.segments import Segment

KST = ZoneInfo("Asia/Seoul")


@pytest.fixture(autouse=True)
def fixed() -> Iterator[None]:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    yield
    clock.fix(None)


def problems(model: Any, data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["type"]) for e in caught.value.errors()]


# --- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "ok"),
    [
        ("2006-11-23", True),
        ("2006-11-22", False),
        ("2027-11-24", True),
        ("2027-11-25", False),
        ("2024-02-29", True),
        ("0001-01-01", False),
        ("9999-12-31", False),
    ],
)
def test_treatment_dates_run_20_years_back_to_366_days_ahead(day: str, ok: bool) -> None:
    data = {"tag": "scaling", "date": day}
    if ok:
        assert TreatmentRecord.model_validate(data).date == date.fromisoformat(day)
    else:
        assert problems(TreatmentRecord, data) == [("date", "value_error")]


def test_the_importer_and_the_api_share_the_window() -> None:
    assert dates.treatment_window() == (date(2006, 11, 23), date(2027, 11, 24))
    with pytest.raises(ValueError, match="after the treatment dates"):
        dates.treatment_day(date(2027, 11, 25), date(2026, 11, 23))


@pytest.mark.parametrize(
    ("at", "ok"),
    [
        ("2026-12-01T10:00:00+09:00", True),
        ("2026-12-01T10:00:00+14:00", True),
        ("2026-12-01T10:00:00-14:00", True),
        ("2026-12-01T10:00:00+23:59", True),
        ("2028-11-23T23:59:59+09:00", True),
        ("2028-11-24T00:00:00+09:00", False),
        ("0001-01-01T00:00:00+09:00", False),
        ("0001-01-01T00:00:00+14:00", False),
        ("9999-12-31T23:59:59-14:00", False),
    ],
)
def test_appointments_run_20_years_back_to_2_years_ahead(at: str, ok: bool) -> None:
    data = {"kind": "booking", "at": at}
    if ok:
        Appointment.model_validate(data)
    else:
        assert problems(Appointment, data) == [("at", "value_error")]


def test_a_complaints_visit_date_is_not_in_the_future() -> None:
    base = {"text": "대기시간이 길었습니다", "consent_to_contact": False}
    ComplaintSubmission.model_validate({**base, "visit_date": "2026-11-23"})
    ComplaintSubmission.model_validate({**base, "visit_date": "2016-11-23"})
    for day in ("2026-11-24", "2099-01-01", "2016-11-22", "0001-01-01"):
        assert problems(ComplaintSubmission, {**base, "visit_date": day}) == [
            ("visit_date", "value_error")
        ], day


def test_filter_and_send_days_stay_inside_the_calendar() -> None:
    for name in ("last_treatment_before", "last_treatment_after", "no_visit_since"):
        for day in ("0001-01-01", "9999-12-31", "1899-12-31"):
            assert problems(Segment, {"tag": "scaling", name: day}) == [(name, "value_error")]
    Segment.model_validate({"tag": "scaling", "no_visit_since": "1900-01-01"})
    segment = {"tag": "scaling"}
    base = {"name": "x", "segment": segment, "template_id": "scaling_next_step"}
    assert problems(CampaignRequest, {**base, "send_on": "9999-12-31"}) == [
        ("send_on", "value_error")
    ]


def test_years_from_keeps_leap_days_in_the_calendar() -> None:
    assert dates.years_from(date(2024, 2, 29), -20) == date(2004, 2, 29)
    assert dates.years_from(date(2024, 2, 29), 1) == date(2025, 2, 28)


# --- text -----------------------------------------------------------------------------------------


def test_control_bidi_and_lone_surrogates_are_dropped_new_lines_kept() -> None:
    assert clean_text("a\u202eb\u0000c\u0007d\u001be\ufeff\u200bf") == "abcdef"
    assert clean_text("줄1\r\n줄2\r줄3\u2028줄4\t끝") == "줄1\n줄2\n줄3\n줄4\t끝"
    assert clean_text("줄1\n줄2\t끝", multiline=False) == "줄1 줄2 끝"
    assert clean_text("\ud800짝\udfff") == "짝"
    assert clean_text("\x85\x9f") == "\n"
    # emoji sequences keep their joiners, variation selectors and tags
    family, flag = (
        "👨\u200d👩\u200d👧",
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    )
    assert clean_text(family + "❤\ufe0f" + flag) == family + "❤\ufe0f" + flag


def test_six_nul_characters_are_an_empty_text() -> None:
    data = {"text": "\u0000" * 6, "consent_to_contact": False}
    assert problems(ComplaintSubmission, data) == [("text", "string_too_short")]
    stored = ComplaintSubmission.model_validate(
        {"text": "대기\u202e시간이 길었습니다", "consent_to_contact": False}
    )
    assert stored.text == "대기시간이 길었습니다"


def test_every_free_text_field_is_cleaned() -> None:
    registration = PatientRegistration.model_validate(
        {"name": "홍\u202e길동\n", "phone": "010-1234-5678", "chart_no": "C-1\u0000"}
    )
    assert (registration.name, registration.chart_no) == ("홍길동", "C-1")
    record = TreatmentRecord.model_validate(
        {"tag": "scaling", "date": "2026-11-20", "note": "첫 줄\n둘째\u0000 줄"}
    )
    assert record.note == "첫 줄\n둘째 줄"


# --- phones and strict scalars --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "mobile"),
    [
        ("010-1234-5678", True),
        ("+82 10 1234 5678", True),
        ("011-123-4567", True),
        ("019-1234-5678", True),
        ("02-1234-5678", False),
        ("031-555-0100", False),
        ("070-1234-5678", False),
        ("080-555-0100", False),
        ("1588-1234", False),
    ],
)
def test_a_patients_phone_for_sms_is_a_mobile_number(phone: str, mobile: bool) -> None:
    data = {"name": "홍길동", "phone": phone}
    if mobile:
        assert is_mobile(PatientRegistration.model_validate(data).phone)
    else:
        assert problems(PatientRegistration, data) == [("phone", "value_error")]
        contact = {"text": "대기시간이 길었습니다", "consent_to_contact": False}
        assert problems(ComplaintSubmission, {**contact, "contact": {"phone": phone}}) == [
            ("contact.phone", "value_error")
        ]


def test_an_sms_complaint_keeps_the_number_it_came_from() -> None:
    inbound = InboundSubmission.model_validate(
        {"text": "문의", "contact": {"phone": "02-1234-5678"}, "consent_to_contact": True}
    )
    assert inbound.contact.phone == "+82212345678"


def test_json_booleans_and_integers_are_strict() -> None:
    base = {"text": "대기시간이 길었습니다"}
    for value in ("yes", "true", 1, "1", None):
        assert problems(ComplaintSubmission, {**base, "consent_to_contact": value})[0][0] == (
            "consent_to_contact"
        )
    survey = {"code": "ABCD-2345", "token": "q8Zr2sXk9mPa"}
    for score in ("5", True, 5.0, 4.5):
        assert problems(SurveyAnswer, {**survey, "score": score}) == [("score", "int_type")]
    assert SurveyAnswer.model_validate({**survey, "score": 5}).score == 5
    consents = {"name": "홍길동", "phone": "010-1234-5678", "consents": {"marketing": "yes"}}
    assert problems(PatientRegistration, consents) == [("consents.marketing", "bool_type")]


# --- tracking codes -------------------------------------------------------------------------------


def test_one_spelling_per_tracking_code() -> None:
    spellings = ["ABCD-2345", "abcd2345", "AB CD 23 45", " abcd-2345 ", "ABCD–2345", "ABCD\t2345"]
    assert {tracking_code(s) for s in spellings} == {"ABCD-2345"}
    assert normalize_code("abcd 2345") == "ABCD-2345"


@pytest.mark.parametrize(
    "code",
    ["ABCD-2O45", "ABCD-1234", "ABCD-I345", "abß2345", "ab\ufb002345", "ＡＢＣＤ２３４５", "ABC"],
)
def test_characters_outside_the_alphabet_are_not_a_code(code: str) -> None:
    with pytest.raises(ValueError, match="8 characters"):
        tracking_code(code)


def test_an_email_with_control_characters_is_refused() -> None:
    for email in ("a\u0000@b.kr", "a@b\u202e.kr", "a\u200b@b.kr"):
        data = {"name": "홍길동", "phone": "010-1234-5678", "email": email}
        assert problems(PatientRegistration, data) == [("email", "value_error")], email


def test_a_moment_to_look_at_stays_inside_the_calendar() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sotong.dates import filter_time

    now = datetime(2027, 2, 7, 12, 0, tzinfo=UTC)
    assert filter_time(now) == now
    for extreme in (
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=14))),
        datetime(1800, 1, 1, tzinfo=UTC),
    ):
        with pytest.raises(ValueError, match=r"calendar|dates to filter by"):
            filter_time(extreme)
