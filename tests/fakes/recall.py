"""An in-memory `PatientRepository` (`sotong.recall.repository`), for the domain tests.

It keeps typed records and refuses what the DynamoDB adapter's conditions refuse: a treatment
recorded twice, a touchpoint no longer in the status it was read in, an advertising mark inside
the frequency cap, a write to a patient who is gone, a conversation message stored twice. The
messages a move sends go to an `InMemoryOutbox` in the same step as the move, or not at all.
`tests/integration/test_recall_repository_contract.py` runs the same checks on both adapters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Any

from sotong import clock
from sotong.notify.model import MessageRequest
from sotong.recall.records import (
    AppointmentRecord,
    ConversationMessage,
    Patient,
    Touchpoint,
    Treatment,
)
from sotong.recall.repository import (
    AdMark,
    Moved,
    TagPage,
    TagRef,
    TouchpointMove,
    WaitingPage,
    WaitingReply,
)
from tests.fakes.memory import InMemoryOutbox

BATCH_WRITE = 25


def _changes(before: Touchpoint, after: Touchpoint) -> dict[str, Any]:
    """What the adapter's `Update` writes: the fields that changed, status and time always."""
    changed = {
        f.name: getattr(after, f.name)
        for f in fields(Touchpoint)
        if getattr(after, f.name) != getattr(before, f.name)
    }
    changed["status"] = after.status
    if after.updated_at is not None:
        changed["updated_at"] = after.updated_at
    return changed


@dataclass
class InMemoryPatientRepository:
    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    stored_patients: dict[str, Patient] = field(default_factory=dict)
    phone_keys: dict[str, str] = field(default_factory=dict)
    stored_treatments: dict[tuple[str, str], Treatment] = field(default_factory=dict)
    stored_touchpoints: dict[tuple[str, str], Touchpoint] = field(default_factory=dict)
    appointments: list[AppointmentRecord] = field(default_factory=list)
    messages: dict[tuple[str, str], ConversationMessage] = field(default_factory=dict)
    inbound_ids: set[tuple[str, str]] = field(default_factory=set)
    waiting: dict[tuple[str, str], str] = field(default_factory=dict)
    """(patient, message id) -> the department whose queue the reply waits in"""
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    watermarks: dict[str, datetime] = field(default_factory=dict)

    # --- patients -------------------------------------------------------------------------------
    def patient(self, patient_id: str) -> Patient | None:
        return self.stored_patients.get(patient_id)

    def patients(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        return {p: self.stored_patients[p] for p in set(patient_ids) if p in self.stored_patients}

    def patient_by_phone(self, phone_key: str) -> Patient | None:
        found = [self.stored_patients[p] for p, k in self.phone_keys.items() if k == phone_key]
        return max(found, key=lambda p: p.updated_at or "") if found else None

    def register(self, patient: Patient, phone_key: str) -> Patient:
        now = clock.iso(clock.now())
        stored = self.stored_patients.get(patient.id)
        base = stored or Patient(id=patient.id, name=patient.name, created_at=now)
        saved = replace(
            base,
            name=patient.name,
            phone=patient.phone,
            email=patient.email,
            chart_no=patient.chart_no,
            consents=dict(patient.consents) if patient.consents is not None else base.consents,
            updated_at=now,
            created_at=base.created_at or now,
            last_treatment=base.last_treatment if base.last_treatment is not None else {},
        )
        self.stored_patients[patient.id] = saved
        self.phone_keys[patient.id] = phone_key
        return saved

    def _change(self, patient_id: str, **changes: Any) -> bool:
        stored = self.stored_patients.get(patient_id)
        if stored is None:
            return False
        self.stored_patients[patient_id] = replace(stored, **changes)
        return True

    def save_pause(self, patient: Patient) -> bool:
        return self._change(patient.id, paused=patient.paused, pause_reason=patient.pause_reason)

    def note_treatment(self, patient_id: str, tag: str, day: str) -> None:
        stored = self.stored_patients.get(patient_id)
        if stored is not None:
            self.stored_patients[patient_id] = stored.noting_treatment(tag, day)

    def set_latest_treatment(self, patient_id: str, tag: str, day: str) -> None:
        stored = self.stored_patients.get(patient_id)
        if stored is not None:
            latest = {**(stored.last_treatment or {}), tag: day}
            self.stored_patients[patient_id] = replace(stored, last_treatment=latest)

    def note_appointment(self, appointment: AppointmentRecord) -> None:
        self.appointments.append(appointment)
        stored = self.stored_patients.get(appointment.patient_id)
        if stored is not None:
            self.stored_patients[appointment.patient_id] = stored.noting(appointment)

    # --- treatments -----------------------------------------------------------------------------
    def add_treatment(self, treatment: Treatment) -> bool:
        key = (treatment.patient_id, treatment.id)
        if key in self.stored_treatments:
            return False
        self.stored_treatments[key] = treatment
        return True

    def treatment(self, patient_id: str, treatment_id: str) -> Treatment | None:
        return self.stored_treatments.get((patient_id, treatment_id))

    def treatments(self, patient_id: str) -> list[Treatment]:
        return sorted(
            (t for (p, _), t in self.stored_treatments.items() if p == patient_id),
            key=lambda t: t.id,
        )

    def save_treatment(self, treatment: Treatment) -> None:
        self.stored_treatments[(treatment.patient_id, treatment.id)] = treatment

    def tag_index(
        self,
        tag: str,
        *,
        on_or_after: date | None = None,
        before: date | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> TagPage:
        ordered = sorted(
            (f"{t.date}#{t.patient_id}#{t.id}", t)
            for t in self.stored_treatments.values()
            if t.tag == tag
            and (on_or_after is None or t.date >= on_or_after.isoformat())
            and (before is None or t.date < before.isoformat())
        )
        after = [(position, t) for position, t in ordered if cursor is None or position > cursor]
        taken = after if limit is None else after[:limit]
        refs = [TagRef(t.patient_id, t.date, position) for position, t in taken]
        return TagPage(refs, len(taken) < len(after), 1)

    # --- touchpoints ----------------------------------------------------------------------------
    def touchpoints(self, patient_id: str, treatment_id: str | None = None) -> list[Touchpoint]:
        found = [
            t
            for (p, _), t in self.stored_touchpoints.items()
            if p == patient_id and (treatment_id is None or t.treatment_id == treatment_id)
        ]
        return sorted(found, key=lambda t: t.due_at)

    def add_touchpoints(self, touchpoints: Sequence[Touchpoint]) -> int:
        for touchpoint in touchpoints:
            self.stored_touchpoints[(touchpoint.patient_id, touchpoint.id)] = touchpoint
        return -(-len(touchpoints) // BATCH_WRITE)

    def due_touchpoints(self, since: datetime, until: datetime) -> list[Touchpoint]:
        return [
            t for t in self.stored_touchpoints.values() if t.is_planned and since < t.due <= until
        ]

    def _current(self, before: Touchpoint) -> Touchpoint | None:
        stored = self.stored_touchpoints.get((before.patient_id, before.id))
        return stored if stored is not None and stored.status == before.status else None

    def _ad_allowed(self, mark: AdMark) -> bool:
        patient = self.stored_patients.get(mark.patient_id)
        return patient is not None and (
            patient.last_ad_at is None or patient.last_ad_at <= clock.iso(mark.cutoff)
        )

    def move_touchpoint(self, before: Touchpoint, after: Touchpoint) -> bool:
        stored = self._current(before)
        if stored is None:
            return False
        self.stored_touchpoints[(after.patient_id, after.id)] = replace(
            stored, **_changes(before, after)
        )
        return True

    def move_touchpoints(
        self, hospital_id: str, moves: Sequence[TouchpointMove], *, per_transaction: int = 50
    ) -> Moved:
        moved = Moved()
        for start in range(0, len(moves), per_transaction):
            group = range(start, min(start + per_transaction, len(moves)))
            moved.requests += 1
            refused = False
            for index in group:
                move = moves[index]
                if self._current(move.before) is None:
                    moved.refused[index] = "moved_on"
                elif move.ad is not None and not self._ad_allowed(move.ad):
                    moved.refused[index] = "ad_cap"
                else:
                    continue
                refused = True
            if refused and len(group) > 1 and any(i not in moved.refused for i in group):
                moved.requests += 1  # the adapter writes the group again without the refused
            for index in group:
                if index in moved.refused:
                    continue
                move = moves[index]
                self.move_touchpoint(move.before, move.after)
                self.outbox.add(move.messages)
                if move.ad is not None:
                    ad = move.ad
                    self._change(ad.patient_id, last_ad_at=clock.iso(ad.at), last_ad_by=ad.by)
        return moved

    # --- conversations --------------------------------------------------------------------------
    def conversation(self, patient_id: str) -> list[ConversationMessage]:
        return [m for (p, _), m in sorted(self.messages.items()) if p == patient_id]

    def add_message(
        self,
        patient_id: str,
        message: ConversationMessage,
        *,
        inbound_id: str | None = None,
        waiting_in: str | None = None,
    ) -> bool:
        if (patient_id, message.id) in self.messages:
            return False
        if inbound_id and (patient_id, inbound_id) in self.inbound_ids:
            return False
        self.messages[(patient_id, message.id)] = message
        if inbound_id:
            self.inbound_ids.add((patient_id, inbound_id))
        if waiting_in is not None:
            self.waiting[(patient_id, message.id)] = waiting_in
        return True

    def add_answer(
        self,
        hospital_id: str,
        patient_id: str,
        message: ConversationMessage,
        request: MessageRequest,
        *,
        settles: Sequence[WaitingReply] = (),
    ) -> bool:
        queued = {r.idempotency_key for r in self.outbox.requests}
        if (patient_id, message.id) in self.messages or request.idempotency_key in queued:
            return False
        if any((r.patient_id, r.message.id) not in self.messages for r in settles):
            return False  # the adapter's condition: the settled message is there
        self.messages[(patient_id, message.id)] = message
        self.outbox.add([request])
        self.settle_replies(settles)
        return True

    # --- the replies waiting for an answer ------------------------------------------------------
    def _waiting_reply(self, key: tuple[str, str], department: str) -> WaitingReply:
        return WaitingReply(key[0], self.messages[key], department)

    def waiting_replies(self, department: str | None, limit: int) -> WaitingPage:
        found = sorted(
            (
                self._waiting_reply(key, dept)
                for key, dept in self.waiting.items()
                if department is None or (dept and dept == department)
            ),
            key=lambda r: f"{r.message.at}#{r.patient_id}#{r.message.id}",
        )
        return WaitingPage(found[:limit], len(found) > limit)

    def waiting_of(self, patient_id: str) -> list[WaitingReply]:
        return sorted(
            (self._waiting_reply(k, d) for k, d in self.waiting.items() if k[0] == patient_id),
            key=lambda r: r.message.id,
        )

    def settle_replies(self, replies: Sequence[WaitingReply]) -> int:
        settled = 0
        for reply in replies:
            if self.waiting.pop((reply.patient_id, reply.message.id), None) is not None:
                settled += 1
        return settled

    # --- schedules ------------------------------------------------------------------------------
    def take_lease(self, name: str, owner: str, now: datetime, hold: timedelta) -> bool:
        until = now + hold
        held = self.leases.get(name)
        if held is not None:
            holder, held_until = held
            stale = held_until < now or held_until > until + hold
            if holder != owner and not stale:
                return False
        self.leases[name] = (owner, until)
        return True

    def release_lease(self, name: str, owner: str) -> None:
        held = self.leases.get(name)
        if held is not None and held[0] == owner:
            del self.leases[name]

    def watermark(self, name: str) -> datetime | None:
        return self.watermarks.get(name)

    def set_watermark(self, name: str, until: datetime) -> None:
        self.watermarks[name] = min(until, clock.unshifted())
