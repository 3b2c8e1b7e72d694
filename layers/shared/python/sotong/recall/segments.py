"""Segments by treatment history: patients of one treatment tag, filtered by the date of their
latest treatment of that tag, their last visit and their marketing consent.

Cost, honestly: a segment reads the tag index (`PatientRepository.tag_index`: by tag, in date
order), never the table. With `last_treatment_after` the Query starts at that date, so it reads the
treatments of the tag dated on or after it; without it, it reads every treatment of the tag (a
patient's *latest* treatment can only be known by also reading the later ones, so
`last_treatment_before` cannot bound the Query). Patients are then read by BatchGetItem (100 per
request) only when a filter or the answer needs them: a count without `no_visit_since` or
`marketing_consent_only` reads no patient. Reads grow with the treatments of that tag, not with the
table.

Resumable (`read_page`, what a campaign job pages through): the tag index is read in order from a
cursor, a page at a time, with the page's patients. A treatment stands for its patient when it
is their latest of the tag (the patient item keeps `last_treatment`), so each patient is met
once, at their latest treatment, and both `last_treatment_after` and `last_treatment_before`
bound the Query. The cursor is the index key of the last treatment taken: a job that stops
anywhere (a page, a transaction, a deadline) carries on from there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sotong import clock
from sotong.config.schema import HospitalConfig, TreatmentTag
from sotong.dates import FilterDay
from sotong.errors import BadRequest
from sotong.fields import Line, StrictBool, StrictInt
from sotong.phone import mask_phone
from sotong.recall.records import Patient
from sotong.recall.repository import DynamoPatientRepository, PatientRepository

MAX_PAGE = 200


class Segment(BaseModel):
    """Patients of one treatment tag. Dates are local (hospital time zone) calendar days."""

    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)

    tag: Line = Field(
        min_length=1,
        max_length=40,
        examples=["scaling"],
        description="treatment tag (required: it selects the index partition that is read)",
    )
    last_treatment_before: FilterDay | None = Field(
        default=None,
        description="the patient's latest treatment of this tag is strictly before this day",
    )
    last_treatment_after: FilterDay | None = Field(
        default=None,
        description="the patient's latest treatment of this tag is on or after this day "
        "(with `last_treatment_before`: the half-open range [after, before))",
    )
    no_visit_since: FilterDay | None = Field(
        default=None,
        description="the patient has no recorded visit on or after this day (or none at all)",
    )
    marketing_consent_only: StrictBool = Field(
        default=False, description="only patients who opted in to advertising"
    )

    @model_validator(mode="after")
    def _range(self) -> Segment:
        after, before = self.last_treatment_after, self.last_treatment_before
        if after is not None and before is not None and after >= before:
            raise ValueError("last_treatment_after must be earlier than last_treatment_before")
        return self


class SegmentPage(Segment):
    limit: StrictInt = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        default=None, pattern=r"^\d{1,7}$", description="next_cursor of the previous page"
    )

    def segment(self) -> Segment:
        return Segment.model_validate(self.model_dump(exclude={"limit", "cursor"}))


@dataclass
class Cost:
    """What one evaluation read: the items DynamoDB returned and the requests it took."""

    treatments_read: int = 0
    query_pages: int = 0
    patients_read: int = 0
    batch_get_requests: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "treatments_read": self.treatments_read,
            "query_pages": self.query_pages,
            "patients_read": self.patients_read,
            "batch_get_requests": self.batch_get_requests,
        }


@dataclass
class Member:
    """A patient in a segment, with the date of their latest treatment of the tag."""

    patient_id: str
    last_treatment: str
    patient: Patient | None = None


@dataclass
class Evaluation:
    """A segment's members, and what reading them cost."""

    members: list[Member]
    """sorted by latest treatment (oldest first: the most overdue lead), then patient id"""
    cost: Cost = field(default_factory=Cost)


def known_tag(hospital: HospitalConfig, tag_id: str, where: str = "body.tag") -> TreatmentTag:
    tag = hospital.treatment_tag(tag_id)
    if tag is None:
        known = ", ".join(t.id for t in hospital.treatment_tags)
        raise BadRequest(f"{where}: unknown treatment tag '{tag_id}'; known: {known}", field=where)
    return tag


def _repository(patients: PatientRepository | None) -> PatientRepository:
    return patients if patients is not None else DynamoPatientRepository()


def latest_by_patient(
    tag: str, on_or_after: date | None, cost: Cost, patients: PatientRepository | None = None
) -> dict[str, str]:
    """Each patient's latest treatment date of `tag`, among treatments on or after the day."""
    index = _repository(patients).tag_index(tag, on_or_after=on_or_after)
    cost.query_pages += index.query_pages
    cost.treatments_read += len(index.refs)
    latest: dict[str, str] = {}
    for ref in index.refs:
        if ref.patient_id and ref.day > latest.get(ref.patient_id, ""):
            latest[ref.patient_id] = ref.day
    return latest


def read_patients(
    patient_ids: Iterable[str], cost: Cost, patients: PatientRepository | None = None
) -> dict[str, Patient]:
    wanted = sorted(set(patient_ids))
    if not wanted:
        return {}
    found = _repository(patients).patients(wanted)
    cost.patients_read += len(found)
    cost.batch_get_requests += (len(wanted) + 99) // 100
    return found


def start_of(day: date, hospital: HospitalConfig) -> str:
    return clock.iso(datetime.combine(day, time.min, tzinfo=hospital.zone))


def _visited_since(patient: Patient, since: str) -> bool:
    visit = patient.last_visit_at
    return bool(visit) and str(visit) >= since


def marketing_consent(patient: Patient) -> bool:
    return patient.marketing_consent


def needs_patients(segment: Segment) -> bool:
    return segment.no_visit_since is not None or segment.marketing_consent_only


def evaluate(
    segment: Segment,
    hospital: HospitalConfig,
    *,
    with_patients: bool = False,
    patients: PatientRepository | None = None,
) -> Evaluation:
    """The members of a segment. Patients are read when a filter needs them or when
    `with_patients` asks for them (a member whose patient is gone is dropped then)."""
    known_tag(hospital, segment.tag)
    cost = Cost()
    repository = _repository(patients)
    latest = latest_by_patient(segment.tag, segment.last_treatment_after, cost, repository)
    before = segment.last_treatment_before.isoformat() if segment.last_treatment_before else None
    members = [Member(pid, day) for pid, day in latest.items() if before is None or day < before]
    members.sort(key=lambda m: (m.last_treatment, m.patient_id))
    if with_patients or needs_patients(segment):
        found = read_patients((m.patient_id for m in members), cost, repository)
        since = start_of(segment.no_visit_since, hospital) if segment.no_visit_since else None
        kept = []
        for member in members:
            patient = found.get(member.patient_id)
            if patient is None:
                continue  # erased since (the index is eventually consistent)
            if since is not None and _visited_since(patient, since):
                continue
            if segment.marketing_consent_only and not marketing_consent(patient):
                continue
            member.patient = patient
            kept.append(member)
        members = kept
    return Evaluation(members, cost)


@dataclass
class Entry:
    """One treatment read from the tag index, in index order, and what it stands for."""

    cursor: str
    """resume after this treatment"""
    patient_id: str
    day: str
    patient: Patient | None
    """None: the patient is gone (erased since; the index is eventually consistent)"""
    member: bool
    """the patient's latest treatment of the tag, and the segment's filters hold"""


@dataclass
class EntryPage:
    """One page of a segment's treatments from the tag index, the cursor to go on, its cost."""

    entries: list[Entry]
    next_cursor: str | None
    """None: the index is read to its end"""
    cost: Cost = field(default_factory=Cost)


def read_page(
    segment: Segment,
    hospital: HospitalConfig,
    cursor: str | None,
    limit: int = 100,
    patients: PatientRepository | None = None,
) -> EntryPage:
    """Up to `limit` treatments of the segment's tag after `cursor`, in index order (oldest
    first), each with its patient and whether it stands for a member."""
    known_tag(hospital, segment.tag)
    cost = Cost()
    repository = _repository(patients)
    index = repository.tag_index(
        segment.tag,
        on_or_after=segment.last_treatment_after,
        before=segment.last_treatment_before,
        cursor=cursor,
        limit=limit,
    )
    cost.query_pages += index.query_pages
    cost.treatments_read += len(index.refs)
    found = read_patients((r.patient_id for r in index.refs if r.patient_id), cost, repository)
    since = start_of(segment.no_visit_since, hospital) if segment.no_visit_since else None
    entries = []
    for ref in index.refs:
        patient = found.get(ref.patient_id)
        member = patient is not None and _stands_for(patient, segment, ref.day, since)
        entries.append(Entry(ref.cursor, ref.patient_id, ref.day, patient, member))
    return EntryPage(entries, entries[-1].cursor if entries and index.more else None, cost)


def _stands_for(patient: Patient, segment: Segment, day: str, since: str | None) -> bool:
    latest = patient.latest_treatment(segment.tag)
    if latest and latest != day:
        return False  # not the latest treatment of the tag: the latest one stands for them
    if since is not None and _visited_since(patient, since):
        return False
    return not (segment.marketing_consent_only and not marketing_consent(patient))


def row(member: Member) -> dict[str, Any]:
    """A segment member as staff see it in a list: the phone masked to its last four digits."""
    patient = member.patient
    return {
        "id": member.patient_id,
        "name": patient.name if patient else None,
        "phone": mask_phone(str((patient.phone if patient else None) or "")),
        "last_treatment": member.last_treatment,
        "last_visit_at": patient.last_visit_at if patient else None,
        "marketing_consent": bool(patient and patient.marketing_consent),
        "paused": bool(patient and patient.paused),
    }


def count(
    segment: Segment, hospital: HospitalConfig, patients: PatientRepository | None = None
) -> dict[str, Any]:
    evaluation = evaluate(segment, hospital, patients=patients)
    return {
        "segment": segment.model_dump(mode="json"),
        "count": len(evaluation.members),
        "cost": evaluation.cost.as_dict(),
    }


def page(
    request: SegmentPage, hospital: HospitalConfig, patients: PatientRepository | None = None
) -> dict[str, Any]:
    """One page of members. The cursor is an offset into the ordered members: each page
    evaluates the segment again (patients are read for the page only when no filter needs them
    all), so a member recorded between two pages can shift the list by one."""
    segment = request.segment()
    offset = int(request.cursor or 0)
    repository = _repository(patients)
    evaluation = evaluate(segment, hospital, patients=repository)
    members = evaluation.members
    chosen = members[offset : offset + request.limit]
    if chosen and chosen[0].patient is None:
        found = read_patients((m.patient_id for m in chosen), evaluation.cost, repository)
        for member in chosen:
            member.patient = found.get(member.patient_id)
        chosen = [m for m in chosen if m.patient is not None]
    following = offset + request.limit
    return {
        "segment": segment.model_dump(mode="json"),
        "count": len(members),
        "patients": [row(m) for m in chosen],
        "next_cursor": str(following) if following < len(members) else None,
        "cost": evaluation.cost.as_dict(),
    }
