"""The programmes desk over in-memory repositories (no DynamoDB, no sockets): a code by SMS, the
sessions offered around the patient's own treatment days, seats and the waiting list, a
cancellation that promotes the next in line, attendance, and the notices schedule that sends
each reminder and feedback question once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.errors import BadRequest, Conflict, Forbidden, TooManyRequests
from sotong.notify.model import MessageRequest, recipient_key
from sotong.programmes.service import ProgrammeDesk
from sotong.recall.records import Patient, Treatment
from tests.fakes.programmes import InMemoryProgrammeRepository
from tests.fakes.recall import InMemoryPatientRepository

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=KST)  # a Tuesday morning
PHONE = "+821055501234"
CHEMO_DAY = date(2026, 12, 8)  # a Tuesday: the 힐링 카페 meets, but not for this patient


@pytest.fixture
def hospital() -> HospitalConfig:
    return load_hospital()


@pytest.fixture
def patients() -> InMemoryPatientRepository:
    return InMemoryPatientRepository()


@pytest.fixture
def programmes() -> InMemoryProgrammeRepository:
    return InMemoryProgrammeRepository()


@pytest.fixture
def desk(
    hospital: HospitalConfig,
    programmes: InMemoryProgrammeRepository,
    patients: InMemoryPatientRepository,
) -> Iterator[ProgrammeDesk]:
    clock.fix(NOW)
    yield ProgrammeDesk(hospital, programmes, patients)
    clock.fix(None)


def _patient(
    patients: InMemoryPatientRepository, phone: str, n: int, days: tuple[date, ...] = (CHEMO_DAY,)
) -> Patient:
    patient = Patient(id=f"p{n:020d}", name=f"환자{n}", phone=phone, consents={"contact": True})
    patients.register(patient, recipient_key("demo", phone))
    for i, day in enumerate(days):
        patients.add_treatment(
            Treatment(
                id=f"t{n:08d}{i:08d}",
                patient_id=patient.id,
                tag="chemotherapy",
                department="oncology",
                date=day.isoformat(),
            )
        )
    return patient


def _last(programmes: InMemoryProgrammeRepository, template: str) -> MessageRequest:
    return [r for r in programmes.outbox.requests if r.template_id == template][-1]


def _verified(
    desk: ProgrammeDesk, programmes: InMemoryProgrammeRepository, phone: str = PHONE
) -> str:
    desk.request_code(phone, "client", clock.now())
    code = _last(programmes, "programme_code").variables["code"]
    return desk.verify(phone, code, clock.now())


def test_the_catalogue_lists_the_demo_programmes_with_their_next_sessions(
    desk: ProgrammeDesk,
) -> None:
    listed = desk.list_public(NOW)["programmes"]
    assert [p["id"] for p in listed] == [
        "healing_cafe",
        "nutrition_class",
        "family_circle",
        "dental_care_class",
    ]
    cafe = listed[0]
    assert cafe["next_sessions"][0]["starts_at"] == "2026-12-01T05:00:00Z"
    assert cafe["next_sessions"][0]["when"] == "12월 1일(화) 14:00"
    assert cafe["next_sessions"][0]["seats_left"] == 12


def test_a_patient_signs_up_with_a_code_and_gets_a_session_off_their_chemotherapy_day(
    desk: ProgrammeDesk,
    programmes: InMemoryProgrammeRepository,
    patients: InMemoryPatientRepository,
) -> None:
    _patient(patients, PHONE, 1)
    sent = desk.request_code(PHONE, "client", NOW)
    assert sent == {"sent": True, "valid_minutes": 10}
    code_message = _last(programmes, "programme_code")
    assert code_message.urgent
    assert code_message.recipient.contact_consent
    assert code_message.purpose == "service"
    code = code_message.variables["code"]
    assert code.isdigit()
    assert len(code) == 6
    # only the keyed digest is stored, never the code
    assert code not in repr(programmes.codes)

    token = desk.verify(PHONE, code, NOW)
    offered = desk.offers("healing_cafe", PHONE, NOW)
    days = [clock.parse(s["starts_at"]).astimezone(KST).date() for s in offered["sessions"]]
    assert CHEMO_DAY not in days
    assert [a["starts_at"] for a in offered["avoided"]] == ["2026-12-08T05:00:00Z"]
    assert offered["avoided"][0]["reason"] == "treatment"
    assert days[:2] == [date(2026, 12, 1), date(2026, 12, 3)]  # today 14:00 is 4 h ahead
    phone = desk.verified_phone(token, NOW)
    answer, created = desk.sign_up(
        "healing_cafe", phone, clock.parse(offered["sessions"][0]["starts_at"]), "김하나", NOW
    )
    assert created
    assert answer["status"] == "confirmed"
    confirmed = _last(programmes, "programme_confirmed")
    assert confirmed.variables["programme"] == "힐링 카페"
    assert confirmed.variables["place"] == "본관 1층 힐링 카페"
    # signing up again answers the same sign-up, and writes nothing more
    again, created = desk.sign_up(
        "healing_cafe", phone, clock.parse(offered["sessions"][0]["starts_at"]), "김하나", NOW
    )
    assert not created
    assert again["signup_id"] == answer["signup_id"]
    assert (
        len([r for r in programmes.outbox.requests if r.template_id == "programme_confirmed"]) == 1
    )


def test_a_session_on_their_treatment_day_is_refused(
    desk: ProgrammeDesk,
    programmes: InMemoryProgrammeRepository,
    patients: InMemoryPatientRepository,
) -> None:
    _patient(patients, PHONE, 1)
    with pytest.raises(Conflict) as refused:
        desk.sign_up("healing_cafe", PHONE, datetime(2026, 12, 8, 14, tzinfo=KST), "김하나", NOW)
    assert refused.value.field == "body.starts_at"
    with pytest.raises(BadRequest, match="not an upcoming session"):
        desk.sign_up("healing_cafe", PHONE, datetime(2026, 12, 9, 14, tzinfo=KST), "김하나", NOW)


def test_the_code_is_single_use_expires_and_allows_five_tries(
    desk: ProgrammeDesk, programmes: InMemoryProgrammeRepository
) -> None:
    desk.request_code(PHONE, "client", NOW)
    code = _last(programmes, "programme_code").variables["code"]
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(BadRequest, match="4 tries left"):
        desk.verify(PHONE, wrong, NOW)
    desk.verify(PHONE, code, NOW)
    with pytest.raises(BadRequest, match="no valid code"):
        desk.verify(PHONE, code, NOW)  # used
    desk.request_code(PHONE, "client", NOW)
    code = _last(programmes, "programme_code").variables["code"]
    with pytest.raises(BadRequest, match="no valid code"):
        desk.verify(PHONE, code, NOW + timedelta(minutes=11))  # expired
    desk.request_code(PHONE, "client", NOW + timedelta(minutes=1))
    code = _last(programmes, "programme_code").variables["code"]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        with pytest.raises(BadRequest):
            desk.verify(PHONE, wrong, NOW)
    with pytest.raises(BadRequest, match="no valid code"):
        desk.verify(PHONE, code, NOW)  # locked after five tries


def test_codes_are_rate_limited_per_phone(desk: ProgrammeDesk) -> None:
    for _ in range(3):
        desk.request_code(PHONE, "client", NOW)
    with pytest.raises(TooManyRequests) as limited:
        desk.request_code(PHONE, "client", NOW)
    assert limited.value.field == "body.phone"


def test_a_token_is_for_its_phone_and_half_an_hour(
    desk: ProgrammeDesk, programmes: InMemoryProgrammeRepository
) -> None:
    token = _verified(desk, programmes)
    assert desk.verified_phone(token, NOW) == PHONE
    with pytest.raises(BadRequest, match=r"body\.token"):
        desk.verified_phone(token, NOW + timedelta(minutes=31))
    with pytest.raises(BadRequest, match=r"body\.token"):
        desk.verified_phone(token[:-2] + "AA", NOW)


def test_who_may_join(desk: ProgrammeDesk, patients: InMemoryPatientRepository) -> None:
    with pytest.raises(Forbidden) as refused:
        desk.offers("healing_cafe", "+821099998888", NOW)  # no patient on record
    assert refused.value.field == "body.phone"
    # the family session is open to anyone with a verified phone
    assert desk.offers("family_circle", "+821099998888", NOW)["sessions"]
    # the nutrition class: anyone treated in oncology
    _patient(patients, PHONE, 1)
    assert desk.offers("nutrition_class", PHONE, NOW)["sessions"]


def _small(hospital: HospitalConfig, capacity: int) -> HospitalConfig:
    data = hospital.model_dump(mode="json")
    data["programmes"]["catalogue"][0]["capacity"] = capacity
    return HospitalConfig.model_validate(data)


def test_a_full_session_has_a_waiting_list_that_moves_up_on_a_cancellation(
    hospital: HospitalConfig,
    programmes: InMemoryProgrammeRepository,
    patients: InMemoryPatientRepository,
) -> None:
    clock.fix(NOW)
    desk = ProgrammeDesk(_small(hospital, 1), programmes, patients)
    session = datetime(2026, 12, 3, 14, tzinfo=KST)
    phones = [f"+8210555000{n:02d}" for n in range(3)]
    answers = []
    for n, phone in enumerate(phones):
        _patient(patients, phone, n + 10)
        joined = NOW + timedelta(seconds=n)  # the waiting list keeps the order they came in
        answers.append(desk.sign_up("healing_cafe", phone, session, f"환자{n}", joined)[0])
    assert [a["status"] for a in answers] == ["confirmed", "waiting", "waiting"]
    assert [a.get("position") for a in answers] == [None, 1, 2]
    assert _last(programmes, "programme_waiting").variables["position"] == "2"
    seats = programmes.seats("healing_cafe", ["2026-12-03T05:00:00Z"])
    assert seats["2026-12-03T05:00:00Z"].taken == 1

    cancelled = desk.cancel(answers[0]["cancel_token"], NOW)
    assert cancelled["status"] == "cancelled"
    assert cancelled["promoted"]
    promoted = _last(programmes, "programme_promoted")
    assert promoted.recipient.phone == phones[1]
    assert seats["2026-12-03T05:00:00Z"].taken == 1
    statuses = {s.phone: s.status for s in programmes.signups("healing_cafe")}
    assert statuses == {phones[0]: "cancelled", phones[1]: "confirmed", phones[2]: "waiting"}
    # cancelling again changes nothing and tells nobody
    assert desk.cancel(answers[0]["cancel_token"], NOW)["promoted"] is False
    assert (
        len([r for r in programmes.outbox.requests if r.template_id == "programme_promoted"]) == 1
    )
    # a waiting sign-up leaves the list without freeing a seat
    desk.cancel(answers[2]["cancel_token"], NOW)
    assert (
        programmes.seats("healing_cafe", ["2026-12-03T05:00:00Z"])["2026-12-03T05:00:00Z"].taken
        == 1
    )
    clock.fix(None)


def test_reminders_the_day_before_and_feedback_to_those_who_came_each_once(
    desk: ProgrammeDesk,
    programmes: InMemoryProgrammeRepository,
    patients: InMemoryPatientRepository,
) -> None:
    session = datetime(2026, 12, 3, 14, tzinfo=KST)
    for n, phone in enumerate(("+821055500001", "+821055500002")):
        _patient(patients, phone, n + 20)
        desk.sign_up("healing_cafe", phone, session, f"환자{n}", NOW)
    # the day before, before 18:00: nothing yet; from 18:00 the reminders, once
    assert desk.send_notices(datetime(2026, 12, 2, 17, 30, tzinfo=KST)).reminders == 0
    assert desk.send_notices(datetime(2026, 12, 2, 18, 0, tzinfo=KST)).reminders == 2
    assert desk.send_notices(datetime(2026, 12, 2, 18, 30, tzinfo=KST)).reminders == 0
    reminder = _last(programmes, "programme_reminder")
    assert reminder.variables["when"] == "12월 3일(목) 14:00"
    assert not reminder.urgent  # held in quiet hours like any care message
    # attendance, by the facilitator, once the session has begun
    rows = programmes.signups("healing_cafe")
    with pytest.raises(BadRequest, match=r"body\.starts_at"):
        desk.record_attendance("healing_cafe", session, rows[0].id, True, "onc.jung", NOW)
    after = datetime(2026, 12, 3, 15, 30, tzinfo=KST)
    desk.record_attendance("healing_cafe", session, rows[0].id, True, "onc.jung", after)
    desk.record_attendance("healing_cafe", session, rows[1].id, False, "onc.jung", after)
    roster = desk.roster("healing_cafe", None, after)
    (shown,) = roster["sessions"]
    assert (shown["confirmed"], shown["attended"]) == (2, 1)
    assert all(r["phone"].startswith("+*") for r in shown["signups"])
    assert "5550000" not in str(roster)  # the phone is masked
    # the day after, from 11:00: the question, to the one who came, once
    assert desk.send_notices(datetime(2026, 12, 4, 10, 0, tzinfo=KST)).feedback == 0
    assert desk.send_notices(datetime(2026, 12, 4, 11, 0, tzinfo=KST)).feedback == 1
    assert desk.send_notices(datetime(2026, 12, 4, 11, 30, tzinfo=KST)).feedback == 0
    feedback = _last(programmes, "programme_feedback")
    assert feedback.recipient.phone == rows[0].phone
    assert {r.purpose for r in programmes.outbox.requests} == {"service"}


def test_a_signup_the_patient_did_not_consent_to_hears_nothing(
    desk: ProgrammeDesk, programmes: InMemoryProgrammeRepository
) -> None:
    # every message carries the sign-up's own consent: the pipeline suppresses without it
    desk.sign_up("family_circle", PHONE, datetime(2026, 12, 5, 10, tzinfo=KST), "보호자", NOW)
    assert _last(programmes, "programme_confirmed").recipient.contact_consent is True
    assert UTC  # the module's clock is UTC-based
