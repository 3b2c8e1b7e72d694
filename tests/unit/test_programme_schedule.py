"""Programme sessions: RRULE expansion in Asia/Seoul (no daylight saving: the same UTC hour all
year), 설날 and 추석 (with their substitute holidays) left out, the matching by treatment
schedule, the config's checks, and the FHIR R4 / HSDS 3 exports validated with fhir.resources."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService
from pydantic import ValidationError

from sotong.config import load_hospital
from sotong.config.programme_schema import Programme, SessionRule
from sotong.config.schema import HospitalConfig
from sotong.programmes import fhir, schedule
from sotong.programmes.records import Signup

KST = ZoneInfo("Asia/Seoul")


@pytest.fixture(scope="module")
def hospital() -> HospitalConfig:
    return load_hospital()


def _programme(hospital: HospitalConfig, programme_id: str) -> Programme:
    assert hospital.programmes is not None
    found = hospital.programmes.programme(programme_id)
    assert found is not None
    return found


def test_healing_cafe_meets_tuesdays_and_thursdays_at_14_kst_all_year(
    hospital: HospitalConfig,
) -> None:
    cafe = _programme(hospital, "healing_cafe")
    starts = schedule.sessions(
        cafe, KST, datetime(2026, 12, 1, tzinfo=KST), datetime(2027, 12, 31, tzinfo=KST)
    )
    assert starts[0] == datetime(2026, 12, 1, 14, 0, tzinfo=KST)
    assert {s.strftime("%a") for s in starts} == {"Tue", "Thu"}
    # no daylight saving in Korea: 05:00 UTC in winter and in summer alike
    assert {s.astimezone(UTC).hour for s in starts} == {5}
    assert {s.astimezone(UTC).minute for s in starts} == {0}


def test_seollal_and_chuseok_are_skipped_with_their_substitute_days(
    hospital: HospitalConfig,
) -> None:
    cafe = _programme(hospital, "healing_cafe")
    after, until = datetime(2027, 2, 1, tzinfo=KST), datetime(2027, 2, 28, tzinfo=KST)
    days = {s.date() for s in schedule.sessions(cafe, KST, after, until)}
    assert date(2027, 2, 9) not in days  # Tuesday: the substitute holiday of 설날 2027
    assert date(2027, 2, 4) in days
    assert date(2027, 2, 11) in days
    chuseok = schedule.sessions(
        cafe, KST, datetime(2027, 9, 13, tzinfo=KST), datetime(2027, 9, 19, tzinfo=KST)
    )
    assert chuseok == []  # 추석 2027: Tue 14 - Thu 16 September
    skipped = schedule.not_available(
        cafe, KST, datetime(2027, 9, 13, tzinfo=KST), datetime(2027, 9, 19, tzinfo=KST)
    )
    assert skipped == [(date(2027, 9, 14), "공휴일"), (date(2027, 9, 16), "공휴일")]


def test_a_monthly_rule_and_its_closures(hospital: HospitalConfig) -> None:
    family = _programme(hospital, "family_circle")
    starts = schedule.sessions(
        family, KST, datetime(2026, 12, 1, tzinfo=KST), datetime(2027, 3, 31, tzinfo=KST)
    )
    # first Saturdays: 2 January 2027 is a closure in the config, 6 February the eve of 설날
    assert [s.date() for s in starts] == [date(2026, 12, 5), date(2027, 3, 6)]
    assert date(2027, 1, 2) not in {s.date() for s in starts}


def test_a_session_on_a_treatment_or_booking_day_clashes() -> None:
    tuesday = datetime(2026, 12, 8, 14, tzinfo=KST)
    thursday = datetime(2026, 12, 10, 14, tzinfo=KST)
    late = datetime(2026, 12, 11, 23, 30, tzinfo=KST)  # runs past midnight into the 12th
    free, clash = schedule.clashes(
        [tuesday, thursday, late], 90, {date(2026, 12, 8), date(2026, 12, 12)}, KST
    )
    assert free == [thursday]
    assert clash == [tuesday, late]
    # a UTC instant is judged by its Korean day: 2026-12-07T23:00Z is 08:00 on the 8th
    free, clash = schedule.clashes(
        [datetime(2026, 12, 7, 23, tzinfo=UTC)], 60, {date(2026, 12, 8)}, KST
    )
    assert free == []
    assert len(clash) == 1


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("FREQ=HOURLY", "FREQ must be one of"),
        ("FREQ=WEEKLY;BYDAY=XX", "dateutil cannot read"),
        ("FREQ=WEEKLY;BYHOUR=9", "give the start as first_day"),
        ("weekly on tuesdays", "is not an RRULE"),
    ],
)
def test_a_rule_dateutil_cannot_read_is_refused(rule: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SessionRule(rrule=rule, first_day=date(2026, 12, 1), start="14:00", minutes=60)


def test_the_config_refers_only_to_what_exists(hospital: HospitalConfig) -> None:
    data = hospital.model_dump(mode="json")
    data["programmes"]["catalogue"][0]["open_to"] = {"treatment_tags": ["no_such_tag"]}
    with pytest.raises(ValidationError, match=r"open_to.treatment_tags: 'no_such_tag'"):
        HospitalConfig.model_validate(data)
    data = hospital.model_dump(mode="json")
    data["programmes"]["templates"]["reminder"] = "complaint_received"
    with pytest.raises(ValidationError, match=r"programmes.templates.reminder"):
        HospitalConfig.model_validate(data)


def test_healthcare_service_export_is_valid_fhir_r4(hospital: HospitalConfig) -> None:
    cafe = _programme(hospital, "healing_cafe")
    exported = fhir.healthcare_service(hospital, cafe, datetime(2027, 1, 1, tzinfo=KST), weeks=40)
    resource = HealthcareService.model_validate(exported)
    assert resource.name == "힐링 카페"
    assert resource.availableTime is not None
    assert resource.notAvailable is not None
    (available,) = resource.availableTime
    assert available.daysOfWeek == ["tue", "thu"]
    assert str(available.availableStartTime) == "14:00:00"
    assert str(available.availableEndTime) == "15:30:00"
    holidays = {date.fromisoformat(n["during"]["start"][:10]) for n in exported["notAvailable"]}
    assert len(resource.notAvailable) == len(holidays)
    assert date(2027, 2, 9) in holidays
    assert date(2027, 9, 14) in holidays


def test_signups_export_as_valid_fhir_appointments(hospital: HospitalConfig) -> None:
    cafe = _programme(hospital, "healing_cafe")
    base = Signup(
        id="s" + "0" * 20,
        programme_id="healing_cafe",
        starts_at="2026-12-10T05:00:00Z",
        name="김하나",
        phone="+821022223333",
        status="confirmed",
        patient_id="p" + "1" * 20,
        created_at="2026-12-01T01:00:00Z",
    )
    waiting = Signup(**{**base.to_item(), "id": "s" + "1" * 20, "status": "waiting"})
    came = base.attend(True, "onc.jung", datetime(2026, 12, 10, 7, tzinfo=UTC))
    exported = fhir.bundle([fhir.appointment(hospital, cafe, s) for s in (base, waiting, came)])
    Bundle.model_validate(exported)
    statuses = [Appointment.model_validate(e["resource"]).status for e in exported["entry"]]
    assert statuses == ["booked", "waitlist", "fulfilled"]


def test_hsds_service_carries_the_rrule_fields(hospital: HospitalConfig) -> None:
    service = fhir.hsds_service(hospital, _programme(hospital, "healing_cafe"))
    (entry,) = service["schedules"]
    assert entry["freq"] == "WEEKLY"
    assert entry["byday"] == "TU,TH"
    assert entry["opens_at"] == "14:00"
    assert entry["closes_at"] == "15:30"
    assert entry["timezone"] == 9
    assert service["capacities"][0]["maximum"] == 12
