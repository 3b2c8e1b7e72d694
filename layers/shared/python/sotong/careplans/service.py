"""The care-plan desk: cases with their support plans, case conferences whose decisions become
agency activities, follow-up reviews at 1 and 3 months, and what each change tells whom.

Agencies hear of their activities (a new task, a reminder the day before it is due, a review
coming up) by their contact's channel, SMS or e-mail; the person or their guardian gets one
plain-language notice per conference (`care_plan_notice`, consent applies, no diagnosis: an
activity's title reaches an agency's phone, so a title naming a health term needs
`confirm_health_terms`). Every change is one transaction with its audit entry and its messages
(`sotong.careplans.repository.Change`): nothing is sent for a change not made.

Who sees what: the CS admin every case; department staff the cases their department
coordinates; an agency user (`Staff.organisation`) only its own activities, and anything else
is not found (404), never a 403 that would confirm it exists.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sotong import clock
from sotong.careplans import fhir
from sotong.careplans.model import (
    MAX_ACTIVITIES_PER_CASE,
    ActivityChange,
    ActivityPlan,
    CaseOpening,
    ConferenceRecord,
)
from sotong.careplans.records import (
    HOSPITAL_ONLY,
    REVIEW_MONTHS,
    Activity,
    CareCase,
    Conference,
    Discussion,
    Review,
    TransitionError,
    audit,
    changed,
    reminder_at,
    review_due,
)
from sotong.careplans.repository import (
    CarePlanRepository,
    CaseFile,
    Change,
    DynamoCarePlanRepository,
)
from sotong.config.schema import CareAgency, HospitalConfig
from sotong.errors import BadRequest, Conflict, NotFound
from sotong.health_terms import check_staff_text
from sotong.notify.model import MessageRequest, Recipient
from sotong.staff import Staff

SCHEDULE = "careplans_schedule"
"""the schedule's watermark"""
FIRST_LOOKBACK = timedelta(days=1)
INDEX_LAG = timedelta(minutes=5)
"""the due indexes (GSIs) are eventually consistent: each run reads this far behind again; the
version condition keeps what is read twice from being done twice"""
LISTED = 200
NOTICE = "care_plan_notice"
AGENCY_WORDS = ("치매안심센터", "정신건강복지센터")
"""names of kinds of agency that contain a health term, left out of a title's check"""


def new_case_id() -> str:
    return "c" + secrets.token_hex(8)


def new_activity_id() -> str:
    return "a" + secrets.token_hex(8)


def conference_id(hospital_id: str, held_on: date, title: str) -> str:
    """Deterministic: recording the same conference again names the same one."""
    digest = hashlib.sha256(f"{hospital_id}\x00{held_on}\x00{title}".encode()).hexdigest()
    return "f" + digest[:16]


def decided_activity_id(conference: str, case_id: str, decision: int, n: int) -> str:
    digest = hashlib.sha256(f"{conference}\x00{case_id}\x00{decision}\x00{n}".encode()).hexdigest()
    return "a" + digest[:16]


@dataclass
class ScheduleReport:
    """What one care-plan schedule run did: reviews fallen due, reminders, messages, skips."""

    reviews_due: int = 0
    reminders: int = 0
    already_done: int = 0
    messages: int = 0
    watermark: str | None = None
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reviews_due": self.reviews_due,
            "reminders": self.reminders,
            "already_done": self.already_done,
            "messages": self.messages,
            "watermark": self.watermark,
            "skipped": dict(self.skipped),
        }


class CarePlanDesk:
    """What hospital staff, agencies and the schedule do with care plans, over a
    `CarePlanRepository` (the records table unless another is given)."""

    def __init__(self, hospital: HospitalConfig, plans: CarePlanRepository | None = None) -> None:
        self.hospital = hospital
        self.plans: CarePlanRepository = plans or DynamoCarePlanRepository()

    # --- who sees what --------------------------------------------------------------------------
    def _agency(self, agency_id: str, where: str) -> CareAgency:
        agency = self.hospital.care_agency(agency_id)
        if agency is None:
            known = ", ".join(a.id for a in self.hospital.care_agencies) or "none configured"
            raise BadRequest(f"{where}: no agency '{agency_id}' (known: {known})", field=where)
        return agency

    def _sees(self, staff: Staff, case: CareCase) -> bool:
        if staff.outside:
            return False
        return staff.sees_department(case.department)

    def _case(self, staff: Staff, case_id: str) -> CareCase:
        case = self.plans.case(case_id)
        if case is None or not self._sees(staff, case):
            raise NotFound(f"no case {case_id}", field="path.case_id")
        return case

    def _file(self, staff: Staff, case_id: str) -> CaseFile:
        found = self.plans.case_file(case_id)
        if found is None or not self._sees(staff, found.case):
            raise NotFound(f"no case {case_id}", field="path.case_id")
        return found

    # --- cases ----------------------------------------------------------------------------------
    def open_case(self, staff: Staff, opening: CaseOpening) -> dict[str, Any]:
        if self.hospital.department(opening.department) is None:
            raise BadRequest(
                f"body.department: '{opening.department}' is not a department",
                field="body.department",
            )
        if not staff.sees_department(opening.department):
            raise BadRequest(
                f"body.department: you coordinate cases of '{staff.department}' only",
                field="body.department",
            )
        now = clock.now()
        contact = opening.contact
        case = CareCase(
            id=new_case_id(),
            name=opening.name,
            department=opening.department,
            summary=opening.summary,
            contact_name=contact.name if contact else None,
            contact_phone=contact.phone if contact else None,
            contact_relation=contact.relation if contact else "self",
            contact_consent=opening.consent_to_contact,
            created_by=staff.username,
            created_at=clock.iso(now),
        )
        entry = audit(case.id, staff.username, now, "case_opened", "case", None, case.to_item())
        self.plans.write(self.hospital.hospital_id, Change(new=[case], audit=[entry]))
        return self.view(staff, case.id)

    def cases(self, staff: Staff) -> dict[str, Any]:
        department = None if staff.sees_every_department else staff.department
        found = self.plans.cases(department, LISTED)
        return {"cases": [self._case_summary(c) for c in found]}

    def _case_summary(self, case: CareCase) -> dict[str, Any]:
        return {
            "id": case.id,
            "name": case.name,
            "department": case.department,
            "status": case.status,
            "created_at": case.created_at,
        }

    def view(self, staff: Staff, case_id: str) -> dict[str, Any]:
        """The case with its plan, the conferences' decisions, its reviews and its audit."""
        found = self._file(staff, case_id)
        return {
            **found.case.to_item(),
            "activities": [self._activity_view(a) for a in found.activities],
            "discussions": [d.to_item() for d in found.discussions],
            "reviews": [r.to_item() for r in found.reviews],
            "audit": [
                a.to_item() for a in sorted(found.audit, key=lambda a: (a.at, a.seq, a.action))
            ],
        }

    def _activity_view(self, activity: Activity) -> dict[str, Any]:
        agency = self.hospital.care_agency(activity.agency)
        return {**activity.to_item(), "agency_name": agency.name if agency else activity.agency}

    # --- activities -----------------------------------------------------------------------------
    def _activity(
        self,
        case: CareCase,
        plan: ActivityPlan,
        by: str,
        now: datetime,
        where: str,
        *,
        activity_id: str | None = None,
        conference: str | None = None,
    ) -> Activity:
        self._agency(plan.agency, f"{where}.agency")
        title = plan.title
        for name in (*AGENCY_WORDS, *(a.name for a in self.hospital.care_agencies)):
            title = title.replace(name, "")  # an agency's own name reveals nothing
        check_staff_text(title, f"{where}.title", confirmed=plan.confirm_health_terms)
        remind = reminder_at(plan.due, self.hospital.zone)
        return Activity(
            id=activity_id or new_activity_id(),
            case_id=case.id,
            agency=plan.agency,
            title=plan.title,
            due=plan.due.isoformat(),
            conference_id=conference,
            remind_at=clock.iso(remind) if remind > now else None,
            created_by=by,
            created_at=clock.iso(now),
        )

    def add_activity(self, staff: Staff, case_id: str, plan: ActivityPlan) -> dict[str, Any]:
        case = self._case(staff, case_id)
        now = clock.now()
        activity = self._activity(case, plan, staff.username, now, "body")
        entry = audit(
            case.id,
            staff.username,
            now,
            "activity_added",
            f"activity:{activity.id}",
            None,
            activity.to_item(),
        )
        messages = [m for m in [self._agency_message("task", activity, case)] if m]
        self.plans.write(
            self.hospital.hospital_id, Change(new=[activity], audit=[entry], messages=messages)
        )
        return self._activity_view(activity)

    def agency_activities(self, staff: Staff) -> dict[str, Any]:
        """An agency's own activities (its `org-<id>` group), soonest due first."""
        if staff.organisation is None:
            return {"activities": []}
        found = self.plans.agency_activities(staff.organisation, LISTED)
        names: dict[str, str] = {}
        for activity in found:
            if activity.case_id not in names:
                case = self.plans.case(activity.case_id)
                names[activity.case_id] = case.name if case else ""
        return {
            "agency": staff.organisation,
            "activities": [
                {**self._activity_view(a), "person": names.get(a.case_id, "")} for a in found
            ],
        }

    def change_activity(
        self, staff: Staff, case_id: str, activity_id: str, change: ActivityChange
    ) -> dict[str, Any]:
        """Move an activity to another Task status: an agency its own activities (others are not
        found), hospital staff those of the cases they see; audited."""
        activity = self.plans.activity(case_id, activity_id)
        if activity is None:
            raise NotFound(f"no activity {activity_id}", field="path.activity_id")
        case: CareCase | None
        if staff.role == "agency":
            if activity.agency != staff.organisation:
                raise NotFound(f"no activity {activity_id}", field="path.activity_id")
            if change.status in HOSPITAL_ONLY:
                raise BadRequest(
                    f"body.status: an agency does not set '{change.status}'; decline with "
                    "'rejected'",
                    field="body.status",
                )
            case = self.plans.case(case_id)
        else:
            case = self._case(staff, case_id)
        now = clock.now()
        try:
            after = activity.move(change.status, staff.username, now, change.note)
        except TransitionError as error:
            raise Conflict(f"body.status: {error}", field="body.status") from None
        before_values, after_values = changed(activity.to_item(), after.to_item())
        entry = audit(
            case_id,
            staff.username,
            now,
            "activity_status",
            f"activity:{activity.id}",
            before_values,
            after_values,
        )
        messages: list[MessageRequest] = []
        if change.status == "cancelled" and case is not None:
            message = self._agency_message("cancelled", after, case)
            messages = [message] if message else []
        if not self.plans.write(
            self.hospital.hospital_id,
            Change(moved=[(activity, after)], audit=[entry], messages=messages),
        ):
            raise Conflict(
                "body.status: the activity changed meanwhile; read it again", field="body.status"
            )
        return self._activity_view(after)

    # --- conferences ----------------------------------------------------------------------------
    def hold_conference(
        self, staff: Staff, record: ConferenceRecord
    ) -> tuple[dict[str, Any], bool]:
        """Record a conference: each case's decisions become its activities (the agencies are
        told), its reviews at 1 and 3 months are scheduled and the person gets a notice. The same
        conference recorded again (same day, same title) writes nothing twice."""
        for i, agency_id in enumerate(record.agencies_present):
            self._agency(agency_id, f"body.agencies_present[{i}]")
        case_ids = [c.case_id for c in record.cases]
        if len(set(case_ids)) != len(case_ids):
            raise BadRequest("body.cases: a case is listed twice", field="body.cases")
        hospital_id = self.hospital.hospital_id
        cid = conference_id(hospital_id, record.held_on, record.title)
        now = clock.now()
        units: list[Change] = []
        discussed: list[CareCase] = []
        for i, item in enumerate(record.cases):
            where = f"body.cases[{i}]"
            case = self.plans.case(item.case_id)
            if case is None or not self._sees(staff, case):
                raise NotFound(f"{where}.case_id: no case {item.case_id}", field=f"{where}.case_id")
            total = sum(len(d.activities) for d in item.decisions)
            if total > MAX_ACTIVITIES_PER_CASE:
                raise BadRequest(
                    f"{where}.decisions: at most {MAX_ACTIVITIES_PER_CASE} activities per case",
                    field=f"{where}.decisions",
                )
            discussed.append(case)
            units.append(self._discussion(staff, case, item.decisions, cid, record, now, where))
        conference = Conference(
            id=cid,
            title=record.title,
            held_on=record.held_on.isoformat(),
            place=record.place,
            agencies_present=tuple(record.agencies_present),
            cases=tuple(case_ids),
            created_by=staff.username,
            created_at=clock.iso(now),
        )
        created = self.plans.write(hospital_id, Change(new=[conference]))
        if not created:
            existing = self.plans.conference(cid)
            if existing is None or set(existing.cases) != set(case_ids):
                raise Conflict(
                    "body.title: a conference of this title was recorded on that day with other "
                    "cases; give this one another title",
                    field="body.title",
                )
        for unit in units:
            self.plans.write(hospital_id, unit)  # False: written by an earlier try
        return self.conference(staff, cid), created

    def _discussion(
        self,
        staff: Staff,
        case: CareCase,
        decisions: Sequence[Any],
        cid: str,
        record: ConferenceRecord,
        now: datetime,
        where: str,
    ) -> Change:
        by = staff.username
        activities: list[Activity] = []
        decided: list[dict[str, Any]] = []
        for j, decision in enumerate(decisions):
            ids = []
            for k, plan in enumerate(decision.activities):
                activity = self._activity(
                    case,
                    plan,
                    by,
                    now,
                    f"{where}.decisions[{j}].activities[{k}]",
                    activity_id=decided_activity_id(cid, case.id, j, k),
                    conference=cid,
                )
                activities.append(activity)
                ids.append(activity.id)
            decided.append({"text": decision.text, "activities": ids})
        discussion = Discussion(
            case_id=case.id,
            conference_id=cid,
            held_on=record.held_on.isoformat(),
            title=record.title,
            decisions=tuple(decided),
            created_at=clock.iso(now),
        )
        reviews = []
        for months in REVIEW_MONTHS:
            due = review_due(record.held_on, months, self.hospital.zone)
            reviews.append(
                Review(
                    id=f"{cid}.m{months}",
                    case_id=case.id,
                    conference_id=cid,
                    months=months,
                    due_at=clock.iso(due),
                    status="scheduled" if due > now else "due",
                    created_at=clock.iso(now),
                )
            )
        entries = [
            audit(case.id, by, now, "conference", f"conference:{cid}", None, discussion.to_item())
        ]
        entries += [
            audit(case.id, by, now, "activity_added", f"activity:{a.id}", None, a.to_item(), n + 1)
            for n, a in enumerate(activities)
        ]
        entries += [
            audit(
                case.id,
                by,
                now,
                "review_scheduled",
                f"review:{r.id}",
                None,
                r.to_item(),
                len(activities) + n + 1,
            )
            for n, r in enumerate(reviews)
        ]
        messages = [m for m in (self._agency_message("task", a, case) for a in activities) if m]
        notice = self._notice(case, cid)
        if notice is not None and activities:
            messages.append(notice)
        return Change(new=[discussion, *activities, *reviews], audit=entries, messages=messages)

    def conference(self, staff: Staff, cid: str) -> dict[str, Any]:
        found = self.plans.conference(cid)
        if found is None:
            raise NotFound(f"no conference {cid}", field="path.conference_id")
        seen = [c for c in found.cases if (case := self.plans.case(c)) and self._sees(staff, case)]
        if not seen:
            raise NotFound(f"no conference {cid}", field="path.conference_id")
        discussions = []
        for case_id in seen:
            file = self.plans.case_file(case_id)
            if file is None:
                continue
            discussion = next((d for d in file.discussions if d.conference_id == cid), None)
            activities = [a for a in file.activities if a.conference_id == cid]
            discussions.append(
                {
                    "case_id": case_id,
                    "name": file.case.name,
                    "decisions": [dict(d) for d in discussion.decisions] if discussion else [],
                    "activities": [self._activity_view(a) for a in activities],
                    "reviews": [r.to_item() for r in file.reviews if r.conference_id == cid],
                }
            )
        return {**found.to_item(), "cases": seen, "discussions": discussions}

    # --- reviews --------------------------------------------------------------------------------
    def reviews_due(self, staff: Staff) -> dict[str, Any]:
        """Reviews fallen due and not yet done, of the cases the caller sees."""
        found = []
        for review in self.plans.reviews_due(LISTED):
            case = self.plans.case(review.case_id)
            if case is not None and self._sees(staff, case):
                found.append({**review.to_item(), "name": case.name})
        return {"reviews": found}

    def review_done(
        self, staff: Staff, case_id: str, review_id: str, note: str | None
    ) -> dict[str, Any]:
        self._case(staff, case_id)
        review = self.plans.review(case_id, review_id)
        if review is None:
            raise NotFound(f"no review {review_id}", field="path.review_id")
        now = clock.now()
        try:
            after = review.done(staff.username, now, note)
        except TransitionError as error:
            raise Conflict(f"path.review_id: {error}", field="path.review_id") from None
        before_values, after_values = changed(review.to_item(), after.to_item())
        entry = audit(
            case_id,
            staff.username,
            now,
            "review_done",
            f"review:{review.id}",
            before_values,
            after_values,
        )
        if not self.plans.write(
            self.hospital.hospital_id, Change(moved=[(review, after)], audit=[entry])
        ):
            raise Conflict("path.review_id: the review changed meanwhile", field="path.review_id")
        return after.to_item()

    # --- FHIR -----------------------------------------------------------------------------------
    def export(self, staff: Staff, case_id: str) -> dict[str, Any]:
        found = self._file(staff, case_id)
        conferences = {
            d.conference_id: c
            for d in found.discussions
            if (c := self.plans.conference(d.conference_id)) is not None
        }
        return fhir.bundle(self.hospital, found, conferences)

    # --- messages -------------------------------------------------------------------------------
    def _agency_message(
        self, kind: str, activity: Activity, case: CareCase, about: str = ""
    ) -> MessageRequest | None:
        """The agency contact's message (`care_<kind>`, `care_<kind>_email` for e-mail
        contacts); None when the agency or the template is not configured."""
        agency = self.hospital.care_agency(activity.agency)
        if agency is None:
            return None
        contact = agency.contact
        by_email = contact.channel == "email"
        template = self.hospital.template(f"care_{kind}" + ("_email" if by_email else ""))
        if template is None:
            return None
        sender = self.hospital.sender
        available = {
            "hospital": sender.display_name,
            "agency": agency.name,
            "service": activity.title,
            "due": activity.due,
            "case": case.id[-6:].upper(),
            "person": case.name,
            "callback": sender.callback_number,
        }
        return MessageRequest(
            idempotency_key=f"care:{kind}:{activity.case_id}:{activity.id}{about}",
            recipient=Recipient(
                kind="staff",
                name=contact.name,
                phone=None if by_email else contact.phone,
                email=contact.email if by_email else None,
            ),
            template_id=template.id,
            variables={k: v for k, v in available.items() if k in template.variables},
            refs={"care_case": case.id, "activity": activity.id},
        )

    def _notice(self, case: CareCase, cid: str) -> MessageRequest | None:
        """The person's (or guardian's) plain-language notice: no service, no diagnosis."""
        template = self.hospital.template(NOTICE)
        if template is None or not case.contact_phone:
            return None
        sender = self.hospital.sender
        available = {
            "hospital": sender.display_name,
            "name": case.contact_name or case.name,
            "callback": sender.callback_number,
            "opt_out": sender.opt_out_number,
        }
        return MessageRequest(
            idempotency_key=f"care:notice:{case.id}:{cid}",
            recipient=Recipient(
                kind="patient",
                name=case.contact_name or case.name,
                phone=case.contact_phone,
                contact_consent=case.contact_consent,
            ),
            template_id=template.id,
            variables={k: v for k, v in available.items() if k in template.variables},
            refs={"care_case": case.id, "conference": cid},
        )

    # --- the schedule ---------------------------------------------------------------------------
    def run_schedule(self, now: datetime) -> ScheduleReport:
        """Reviews falling due (the agencies with open activities told) and the reminders of
        activities due tomorrow, since the watermark: a re-run does nothing twice (each write is
        conditional on the version read) and the cost grows with what is due."""
        report = ScheduleReport()
        hospital_id = self.hospital.hospital_id
        since = (self.plans.watermark(SCHEDULE) or now - FIRST_LOOKBACK) - INDEX_LAG
        for review in self.plans.reviews_falling_due(since, now):
            if review.status != "scheduled":
                report.already_done += 1
                continue
            found = self.plans.case_file(review.case_id)
            if found is None:
                report.skipped["no_case"] += 1
                continue
            after = review.fall_due(now)
            messages: list[MessageRequest] = []
            told: set[str] = set()
            for activity in found.activities:
                if activity.is_open and activity.agency not in told:
                    told.add(activity.agency)
                    message = self._agency_message("review", activity, found.case, f":{review.id}")
                    if message:
                        messages.append(message)
            entry = audit(
                review.case_id,
                "schedule",
                now,
                "review_due",
                f"review:{review.id}",
                {"status": review.status},
                {"status": after.status},
            )
            change = Change(moved=[(review, after)], audit=[entry], messages=messages)
            if self.plans.write(hospital_id, change):
                report.reviews_due += 1
                report.messages += len(messages)
            else:
                report.already_done += 1
        for activity in self.plans.reminders_due(since, now):
            if not activity.awaits_reminder:
                report.already_done += 1
                continue
            case = self.plans.case(activity.case_id)
            if case is None:
                report.skipped["no_case"] += 1
                continue
            reminded = activity.reminded(now)
            message = self._agency_message("reminder", activity, case)
            entry = audit(
                case.id,
                "schedule",
                now,
                "activity_reminded",
                f"activity:{activity.id}",
                None,
                {"reminded_at": reminded.reminded_at},
            )
            sent = [message] if message else []
            change = Change(moved=[(activity, reminded)], audit=[entry], messages=sent)
            if self.plans.write(hospital_id, change):
                report.reminders += 1
                report.messages += len(sent)
            else:
                report.already_done += 1
        self.plans.set_watermark(SCHEDULE, now)
        report.watermark = clock.iso(now)
        return report
