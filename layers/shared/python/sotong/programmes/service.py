"""Patient support programmes: what a patient does on the public page (browse, get a code, sign
up for a session that does not clash with their own treatment schedule, cancel), what the
facilitator records (attendance), and what the notices schedule sends (the reminder the day
before, the feedback question the day after).

A person signs up with a verified phone and no account: a one-time code goes to the phone by
SMS through the pipeline (the code's keyed digest is stored, never the code), and a verified
phone gets a signed token good for half an hour. Their recorded treatments and bookings come
from recall's `PatientRepository` (by the phone's recipient key; this module never reads recall's
keys). Every message is a `MessageRequest` written in the same transaction as the change that
causes it; consent, opt-outs and quiet hours stay the pipeline's.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sotong import clock, keys
from sotong.config.programme_schema import Programme, ProgrammeMessage, ProgrammeSettings
from sotong.config.schema import HospitalConfig
from sotong.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from sotong.notify.model import MessageRequest, Recipient, recipient_key
from sotong.programmes import schedule
from sotong.programmes.records import CodeChallenge, Signup, TransitionError
from sotong.programmes.repository import DynamoProgrammeRepository, ProgrammeRepository
from sotong.recall.records import Patient
from sotong.recall.repository import DynamoPatientRepository, PatientRepository

MAX_CODE_ATTEMPTS = 5
CODES_PER_PHONE = (600, 3)
"""a phone gets at most 3 codes in 10 minutes"""
CODES_PER_CLIENT = (600, 20)
"""an address asks for at most 20 codes in 10 minutes"""
VERIFIED_FOR = timedelta(minutes=30)
SHOWN_PER_PROGRAMME = 6
WEEKDAYS_KO = "월화수목금토일"
KINDS_KO = {
    "support_group": "지지 모임",
    "nutrition": "영양 상담",
    "family": "가족 프로그램",
    "education": "교육",
}


ORDINALS_KO = {1: "첫째", 2: "둘째", 3: "셋째", 4: "넷째", -1: "마지막"}
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def rule_text(programme: Programme) -> str:
    """The sessions in plain Korean: `매주 화·목 14:00–15:30`, `매월 첫째 토 10:00–12:00`."""
    rule = programme.sessions
    parts = dict(p.split("=", 1) for p in rule.rule.split(";"))
    start = datetime.combine(rule.first_day, rule.start)
    hours = f"{start:%H:%M}–{start + timedelta(minutes=rule.minutes):%H:%M}"
    days = []
    for code in [d for d in parts.get("BYDAY", "").split(",") if d]:
        digits = code[:-2]
        name = WEEKDAYS_KO[DAY_CODES.index(code[-2:])]
        days.append(f"{ORDINALS_KO.get(int(digits), digits + '번째')} {name}" if digits else name)
    if not days:
        days = [WEEKDAYS_KO[rule.first_day.weekday()]]
    interval = int(parts.get("INTERVAL", "1"))
    if parts["FREQ"] == "DAILY":
        every = "매일" if interval == 1 else f"{interval}일마다"
        return f"{every} {hours}"
    if parts["FREQ"] == "MONTHLY":
        every = "매월" if interval == 1 else f"{interval}개월마다"
    else:
        every = "매주" if interval == 1 else f"{interval}주마다"
    return f"{every} {'·'.join(days)}요일 {hours}"


def when_text(at: datetime, zone: Any) -> str:
    """`12월 8일(화) 14:00`, in the hospital's time zone."""
    local = at.astimezone(zone)
    return f"{local.month}월 {local.day}일({WEEKDAYS_KO[local.weekday()]}) {local:%H:%M}"


@dataclass
class NoticeReport:
    """What one notices run sent: reminders, feedback questions, sessions seen, and skips."""

    reminders: int = 0
    feedback: int = 0
    sessions: int = 0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reminders": self.reminders,
            "feedback": self.feedback,
            "sessions": self.sessions,
            "skipped": self.skipped,
        }


class ProgrammeDesk:
    """The programmes over a `ProgrammeRepository` and recall's `PatientRepository` (the records
    table unless others are given)."""

    def __init__(
        self,
        hospital: HospitalConfig,
        programmes: ProgrammeRepository | None = None,
        patients: PatientRepository | None = None,
    ) -> None:
        self.hospital = hospital
        self.programmes: ProgrammeRepository = programmes or DynamoProgrammeRepository(
            hospital.hospital_id
        )
        self.patients: PatientRepository = patients or DynamoPatientRepository()

    # --- the catalogue ----------------------------------------------------------------------------
    @property
    def settings(self) -> ProgrammeSettings:
        if self.hospital.programmes is None:
            raise NotFound("this hospital publishes no programmes", field="path.programme_id")
        return self.hospital.programmes

    @property
    def catalogue(self) -> tuple[Programme, ...]:
        return self.hospital.programmes.catalogue if self.hospital.programmes else ()

    def programme(self, programme_id: str) -> Programme:
        found = self.settings.programme(programme_id)
        if found is None:
            raise NotFound(f"no programme {programme_id}", field="path.programme_id")
        return found

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """Sessions offered: from an hour from now to `offer_weeks` ahead."""
        return now + timedelta(hours=1), now + timedelta(weeks=self.settings.offer_weeks)

    def upcoming(self, programme: Programme, now: datetime) -> list[datetime]:
        after, until = self.window(now)
        return schedule.sessions(programme, self.hospital.zone, after, until)

    def _session(self, programme: Programme, at: datetime) -> dict[str, Any]:
        return {
            "starts_at": schedule.stamp(at),
            "ends_at": schedule.stamp(at + timedelta(minutes=programme.sessions.minutes)),
            "when": when_text(at, self.hospital.zone),
        }

    def _with_seats(self, programme: Programme, starts: Sequence[datetime]) -> list[dict[str, Any]]:
        seats = self.programmes.seats(programme.id, [schedule.stamp(s) for s in starts])
        shown = []
        for at in starts:
            session = self._session(programme, at)
            found = seats.get(session["starts_at"])
            left = found.left(programme.capacity) if found else programme.capacity
            shown.append({**session, "seats_left": left, "full": left == 0})
        return shown

    def public(self, programme: Programme, now: datetime) -> dict[str, Any]:
        rule = programme.sessions
        return {
            "id": programme.id,
            "kind": programme.kind,
            "kind_label": KINDS_KO[programme.kind],
            "name": programme.name,
            "summary": programme.summary,
            "department": self._department_name(programme.department),
            "facilitator": programme.facilitator,
            "place": programme.place,
            "capacity": programme.capacity,
            "minutes": rule.minutes,
            "rrule": rule.rule,
            "schedule": rule_text(programme),
            "holidays_off": rule.skip_public_holidays,
            "open_to_anyone": programme.open_to.anyone,
            "next_sessions": self._with_seats(
                programme, self.upcoming(programme, now)[:SHOWN_PER_PROGRAMME]
            ),
        }

    def _department_name(self, department_id: str) -> str:
        found = self.hospital.department(department_id)
        return found.name if found else department_id

    def list_public(self, now: datetime) -> dict[str, Any]:
        return {
            "hospital": self.hospital.sender.display_name,
            "programmes": [self.public(p, now) for p in self.catalogue],
        }

    # --- the one-time code ------------------------------------------------------------------------
    def _phone_key(self, phone: str) -> str:
        return recipient_key(self.hospital.hospital_id, phone)

    def _code_hash(self, phone_key: str, code: str) -> str:
        return keys.digest("programme-code", f"{phone_key}\x00{code}")

    def _limit(self, name: str, window_s: int, limit: int, field_name: str) -> None:
        if self.programmes.hit_rate_limit(name, window_s, limit):
            minutes = max(1, round(window_s / 60))
            raise TooManyRequests(
                f"{field_name}: too many codes asked for; try again in {minutes} minute(s) "
                f"({minutes}분 후에 다시 시도해 주세요)",
                field=field_name,
                retry_after_s=window_s,
            )

    def request_code(self, phone: str, client: str, now: datetime) -> dict[str, Any]:
        """Send a one-time code to `phone` (E.164); `client` stands for the caller's address."""
        settings = self.settings
        phone_key = self._phone_key(phone)
        self._limit(f"progcode-ip:{client}", *CODES_PER_CLIENT, "body.phone")
        self._limit(f"progcode:{phone_key}", *CODES_PER_PHONE, "body.phone")
        code = f"{secrets.randbelow(10**6):06d}"
        stamp = clock.iso(now)
        challenge = CodeChallenge(
            code_hash=self._code_hash(phone_key, code),
            valid_until=clock.iso(now + timedelta(minutes=settings.code_minutes)),
            created_at=stamp,
        )
        message = self._message(
            "code",
            f"programme-code:{phone_key}:{stamp}",
            Recipient(phone=phone, contact_consent=True),
            {"code": code, "minutes": str(settings.code_minutes)},
            urgent=True,  # the answer to what they just did: never held for quiet hours
        )
        self.programmes.put_code(phone_key, challenge, [message])
        return {"sent": True, "valid_minutes": settings.code_minutes}

    def verify(self, phone: str, code: str, now: datetime) -> str:
        """A signed token for a phone whose code is right (each code works once, within its
        life and 5 attempts)."""
        phone_key = self._phone_key(phone)
        challenge = self.programmes.code(phone_key)
        if challenge is None or not challenge.open_at(now, MAX_CODE_ATTEMPTS):
            raise BadRequest(
                "body.code: no valid code for this phone (expired, used or too many tries): "
                "ask for a new one",
                field="body.code",
            )
        right = hmac.compare_digest(challenge.code_hash, self._code_hash(phone_key, code))
        if not self.programmes.spend_attempt(phone_key, challenge, used=right) or not right:
            left = max(0, MAX_CODE_ATTEMPTS - int(challenge.attempts) - 1)
            raise BadRequest(
                f"body.code: the code is not right ({left} tries left)",
                field="body.code",
                tries_left=left,
            )
        payload = {"ph": phone, "exp": int((now + VERIFIED_FOR).timestamp())}
        return keys.sign(json.dumps(payload, separators=(",", ":")).encode())

    def verified_phone(self, token: str, now: datetime) -> str:
        raw = keys.unsign(token)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("exp", 0) < now.timestamp():
            raise BadRequest(
                "body.token: not a verified phone, or verified too long ago: ask for a new code",
                field="body.token",
            )
        return str(payload["ph"])

    # --- matching by treatment schedule -----------------------------------------------------------
    def patient_of(self, phone: str) -> Patient | None:
        return self.patients.patient_by_phone(self._phone_key(phone))

    def busy_days(self, patient: Patient | None) -> dict[date, str]:
        """The local days of the patient's own treatments and next booking."""
        if patient is None:
            return {}
        zone = self.hospital.zone
        days: dict[date, str] = {}
        for treatment in self.patients.treatments(patient.id):
            days[treatment.day] = "treatment"
        if patient.next_booking_at:
            days.setdefault(clock.parse(patient.next_booking_at).astimezone(zone).date(), "booking")
        return days

    def eligible(self, programme: Programme, patient: Patient | None) -> bool:
        rule = programme.open_to
        if rule.anyone:
            return True
        if patient is None:
            return False
        return any(
            t.tag in rule.treatment_tags or t.department in rule.departments
            for t in self.patients.treatments(patient.id)
        )

    def offers(self, programme_id: str, phone: str, now: datetime) -> dict[str, Any]:
        """The sessions offered to this phone: upcoming, not on a day of the patient's own
        treatment or booking, not already signed up for."""
        programme = self.programme(programme_id)
        patient = self.patient_of(phone)
        if not self.eligible(programme, patient):
            raise Forbidden(
                f"body.phone: '{programme.name}' is for patients of its programme; this phone "
                "is not on record for it (문의: 병원 대표번호)",
                field="body.phone",
            )
        taken = {
            s for p, s in self.programmes.signups_of(self._phone_key(phone)) if p == programme.id
        }
        starts = [s for s in self.upcoming(programme, now) if schedule.stamp(s) not in taken]
        busy = self.busy_days(patient) if programme.avoid_treatment_days else {}
        free, clash = schedule.clashes(starts, programme.sessions.minutes, busy, self.hospital.zone)
        return {
            "programme_id": programme.id,
            "name": patient.name if patient else None,
            "sessions": self._with_seats(programme, free),
            "avoided": [
                {
                    **self._session(programme, at),
                    "reason": busy.get(at.astimezone(self.hospital.zone).date(), "treatment"),
                }
                for at in clash
            ],
            "already": sorted(taken),
        }

    # --- signing up and cancelling ----------------------------------------------------------------
    def signup_id(self, programme_id: str, starts_at: str, phone_key: str) -> str:
        return "s" + keys.digest(
            "programme-signup", f"{programme_id}\x00{starts_at}\x00{phone_key}", 20
        )

    def cancel_token(self, signup: Signup) -> str:
        payload = {"p": signup.programme_id, "s": signup.starts_at, "i": signup.id}
        return keys.sign(json.dumps(payload, separators=(",", ":")).encode())

    def sign_up(
        self,
        programme_id: str,
        phone: str,
        starts_at: datetime,
        name: str,
        now: datetime,
    ) -> tuple[dict[str, Any], bool]:
        """A seat at the session, or a place on its waiting list; (answer, created)."""
        programme = self.programme(programme_id)
        offered = self.offers(programme_id, phone, now)
        stamp = schedule.stamp(starts_at)
        phone_key = self._phone_key(phone)
        signup_id = self.signup_id(programme.id, stamp, phone_key)
        existing = self.programmes.signup(programme.id, stamp, signup_id)
        if existing is not None:
            return self._answer(existing, programme), False
        if stamp in {s["starts_at"] for s in offered["avoided"]}:
            raise Conflict(
                "body.starts_at: this session falls on a day of your own treatment or booking; "
                "pick another (치료 일정과 겹칩니다)",
                field="body.starts_at",
            )
        if stamp not in {s["starts_at"] for s in offered["sessions"]}:
            raise BadRequest(
                "body.starts_at: not an upcoming session of this programme", field="body.starts_at"
            )
        patient = self.patient_of(phone)
        signup = Signup(
            id=signup_id,
            programme_id=programme.id,
            starts_at=stamp,
            name=name,
            phone=phone,
            status="confirmed",
            patient_id=patient.id if patient else None,
            created_at=clock.iso(now),
        )
        day = starts_at.astimezone(self.hospital.zone).date().isoformat()
        confirmed = self._message_for(signup, programme, "confirmed")
        if self.programmes.take_seat(signup, programme.capacity, phone_key, day, [confirmed]):
            return self._answer(signup, programme), True
        waiting = replace(signup, status="waiting", waiting_since=clock.iso(now))
        ahead = [s for s in self.programmes.signups(programme.id, stamp, stamp) if s.is_waiting]
        position = len(ahead) + 1
        message = self._message_for(waiting, programme, "waiting", position=str(position))
        if not self.programmes.join_waiting(waiting, phone_key, day, [message]):
            found = self.programmes.signup(programme.id, stamp, signup_id)
            if found is None:
                raise Conflict("body.starts_at: try again", field="body.starts_at")
            return self._answer(found, programme), False
        return {**self._answer(waiting, programme), "position": position}, True

    def _answer(self, signup: Signup, programme: Programme) -> dict[str, Any]:
        return {
            **signup.public(),
            "programme": programme.name,
            "when": when_text(signup.start, self.hospital.zone),
            "place": programme.place,
            "cancel_token": self.cancel_token(signup),
        }

    def cancel(self, token: str, now: datetime) -> dict[str, Any]:
        """Cancel the sign-up the token names; a freed seat goes to the first on the waiting
        list at once, and they are told."""
        raw = keys.unsign(token)
        try:
            ref = json.loads(raw) if raw else None
        except ValueError:
            ref = None
        if not isinstance(ref, dict) or not {"p", "s", "i"} <= set(ref):
            raise BadRequest(
                "body.cancel_token: not a cancellation token", field="body.cancel_token"
            )
        programme = self.programme(str(ref["p"]))
        for _ in range(3):
            signup = self.programmes.signup(programme.id, str(ref["s"]), str(ref["i"]))
            if signup is None:
                raise NotFound("body.cancel_token: no such sign-up", field="body.cancel_token")
            if signup.status == "cancelled":
                return {**signup.public(), "promoted": False}
            if signup.start <= now:
                raise Conflict(
                    "body.cancel_token: the session has started; call the hospital",
                    field="body.cancel_token",
                )
            after = signup.cancel(now)
            promoted = None
            messages: list[MessageRequest] = []
            if signup.is_confirmed:
                waiting = sorted(
                    (
                        s
                        for s in self.programmes.signups(
                            programme.id, signup.starts_at, signup.starts_at
                        )
                        if s.is_waiting
                    ),
                    key=lambda s: (s.waiting_since or "", s.id),
                )
                if waiting:
                    promoted = (waiting[0], waiting[0].promote(now))
                    messages.append(self._message_for(promoted[1], programme, "promoted"))
            if self.programmes.cancel(signup, after, promoted, messages):
                return {**after.public(), "promoted": promoted is not None}
        raise Conflict("body.cancel_token: changed meanwhile; try again", field="body.cancel_token")

    # --- staff ------------------------------------------------------------------------------------
    def roster(self, programme_id: str, since: date | None, now: datetime) -> dict[str, Any]:
        """Sign-ups and attendance per session, from `since` (default: a week ago)."""
        programme = self.programme(programme_id)
        start = since or (now.astimezone(self.hospital.zone).date() - timedelta(days=7))
        low = schedule.stamp(
            datetime.combine(start, datetime.min.time(), tzinfo=self.hospital.zone)
        )
        sessions: dict[str, list[Signup]] = defaultdict(list)
        for signup in self.programmes.signups(programme.id, low):
            sessions[signup.starts_at].append(signup)
        shown = []
        for stamp in sorted(sessions):
            rows = sessions[stamp]
            shown.append(
                {
                    **self._session(programme, clock.parse(stamp)),
                    "confirmed": sum(r.is_confirmed for r in rows),
                    "waiting": sum(r.is_waiting for r in rows),
                    "attended": sum(r.attendance == "attended" for r in rows),
                    "signups": [self._staff_row(r) for r in rows],
                }
            )
        return {
            "programme_id": programme.id,
            "name": programme.name,
            "capacity": programme.capacity,
            "since": start.isoformat(),
            "sessions": shown,
        }

    def _staff_row(self, signup: Signup) -> dict[str, Any]:
        from sotong.phone import mask_phone

        return {
            "signup_id": signup.id,
            "name": signup.name,
            "phone": mask_phone(signup.phone),
            "status": signup.status,
            "patient_id": signup.patient_id,
            "attendance": signup.attendance,
            "waiting_since": signup.waiting_since,
        }

    def record_attendance(
        self,
        programme_id: str,
        starts_at: datetime,
        signup_id: str,
        attended: bool,
        by: str,
        now: datetime,
    ) -> dict[str, Any]:
        programme = self.programme(programme_id)
        stamp = schedule.stamp(starts_at)
        signup = self.programmes.signup(programme.id, stamp, signup_id)
        if signup is None:
            raise NotFound(f"no sign-up {signup_id} for that session", field="body.signup_id")
        if starts_at > now + timedelta(hours=1):
            raise BadRequest(
                "body.starts_at: attendance is recorded once the session has begun",
                field="body.starts_at",
            )
        try:
            after = signup.attend(attended, by, now)
        except TransitionError as error:
            raise Conflict(f"body.signup_id: {error}", field="body.signup_id") from None
        if not self.programmes.save_attendance(signup, after):
            raise Conflict("body.signup_id: changed meanwhile; try again", field="body.signup_id")
        return self._staff_row(after)

    # --- the notices schedule ---------------------------------------------------------------------
    def send_notices(self, now: datetime) -> NoticeReport:
        """Reminders for tomorrow's sessions (from `reminder_at`), the feedback question for
        yesterday's attended ones (from `feedback_at`). A rerun sends nothing twice: each is a
        conditional mark on the sign-up written with its message (whose business key is the
        sign-up's, so the pipeline would refuse a second one anyway)."""
        report = NoticeReport()
        settings = self.hospital.programmes
        if settings is None:
            return report
        local = now.astimezone(self.hospital.zone)
        if local.time() >= settings.reminder_at:
            tomorrow = (local.date() + timedelta(days=1)).isoformat()
            report.reminders = self._notify_day(tomorrow, "reminder", "reminded_at", now, report)
        if local.time() >= settings.feedback_at:
            yesterday = (local.date() - timedelta(days=1)).isoformat()
            report.feedback = self._notify_day(yesterday, "feedback", "feedback_at", now, report)
        return report

    def _notify_day(
        self, day: str, kind: ProgrammeMessage, mark: str, now: datetime, report: NoticeReport
    ) -> int:
        sent = 0
        for seats in self.programmes.sessions_on(day):
            programme = self.settings.programme(seats.programme_id)
            if programme is None:
                report.skipped.append(f"{seats.programme_id}: no longer published")
                continue
            report.sessions += 1
            for signup in self.programmes.signups(programme.id, seats.starts_at, seats.starts_at):
                if not signup.is_confirmed or getattr(signup, mark) is not None:
                    continue
                if kind == "feedback" and signup.attendance != "attended":
                    continue
                message = self._message_for(signup, programme, kind)
                if self.programmes.mark_sent(signup, mark, now, [message]):
                    sent += 1
        return sent

    # --- messages -----------------------------------------------------------------------------
    def _message(
        self,
        kind: ProgrammeMessage,
        key: str,
        recipient: Recipient,
        variables: dict[str, str],
        *,
        urgent: bool = False,
        refs: dict[str, str] | None = None,
    ) -> MessageRequest:
        template_id = self.settings.templates[kind]
        template = self.hospital.template(template_id)
        assert template is not None  # the config check
        available = {
            "hospital": self.hospital.sender.display_name,
            "callback": self.hospital.sender.callback_number,
            **variables,
        }
        return MessageRequest(
            idempotency_key=key,
            recipient=recipient,
            template_id=template_id,
            variables={k: v for k, v in available.items() if k in template.variables},
            purpose="service",
            urgent=urgent,
            refs=refs or {},
        )

    def _message_for(
        self, signup: Signup, programme: Programme, kind: ProgrammeMessage, **more: str
    ) -> MessageRequest:
        recipient = Recipient(
            name=signup.name,
            phone=signup.phone,
            contact_consent=signup.contact_consent,
            patient_id=signup.patient_id,
        )
        return self._message(
            kind,
            f"programme-{kind}:{signup.programme_id}:{signup.id}",
            recipient,
            {
                "name": signup.name,
                "programme": programme.name,
                "when": when_text(signup.start, self.hospital.zone),
                "place": programme.place,
                **more,
            },
            urgent=kind in ("confirmed", "waiting"),
            refs={"programme": programme.id, "signup": signup.id},
        )
