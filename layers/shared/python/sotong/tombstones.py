"""Erasure tombstones: what is left of a patient erased at their request, so they stay erased.

`ERASED#<digest>` / `TOMB`, one item per detail of the erased person: their patient id, chart
number, phone (E.164) and e-mail. The digest is keyed (`sotong.keys`, purpose `tombstone`), so a
tombstone names nobody to whoever reads the table; it carries only the kind of detail, when and
which erasure (`erased_at`, `erasure_id`).

Who respects them:
- registration (`RecallDesk.register`): 409 naming the field, unless the request says the person
  came back and consented again (`returning_after_erasure: true`), which lifts them;
- the EMR CSV import: rows of erased people are skipped and counted (`skipped_erased`);
- inbound messages: an erased phone joins no patient's conversation;
- the sender, at send time: a request for an erased patient id, or to an erased phone or e-mail
  made before the erasure, is suppressed (a held, queued or replayed message never goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sotong import clock, keys, store
from sotong.errors import Conflict

PREFIX = "ERASED#"
SORT = "TOMB"
KINDS = ("patient", "chart_no", "phone", "email")


@dataclass(frozen=True)
class Identity:
    """The details that identify one person (any may be missing)."""

    patient_id: str | None = None
    chart_no: str | None = None
    phone: str | None = None
    email: str | None = None

    def details(self) -> list[tuple[str, str]]:
        values = (self.patient_id, self.chart_no, self.phone, self.email)
        return [(kind, value) for kind, value in zip(KINDS, values, strict=True) if value]


@dataclass(frozen=True)
class Tombstone:
    """One tombstoned detail of an erased person: its kind, when, and which erasure."""

    kind: str
    erased_at: datetime
    erasure_id: str


def digest(hospital_id: str, kind: str, value: str) -> str:
    normalized = value.strip().lower() if kind == "email" else value.strip()
    return keys.digest("tombstone", f"{hospital_id}\x00{kind}:{normalized}", 32)


def _key(hospital_id: str, kind: str, value: str) -> dict[str, Any]:
    return store.key(PREFIX + digest(hospital_id, kind, value), SORT)


def write(hospital_id: str, identity: Identity, erasure_id: str, at: datetime) -> int:
    """Lay the person's tombstones (before anything of theirs is removed: from then on nothing
    new is sent to them). Returns how many."""
    details = identity.details()
    for kind, value in details:
        item = {
            "pk": PREFIX + digest(hospital_id, kind, value),
            "sk": SORT,
            "kind": kind,
            "erased_at": clock.iso(at),
            "erasure_id": erasure_id,
        }
        store.dynamodb().put_item(TableName=store.table_name(), Item=store.to_item(item))
    return len(details)


def found(hospital_id: str, identities: Sequence[Identity]) -> list[dict[str, Tombstone]]:
    """For each identity, its details that are tombstoned (by kind): batched reads, consistent."""
    wanted: dict[str, list[tuple[int, str]]] = {}
    for index, identity in enumerate(identities):
        for kind, value in identity.details():
            pk = PREFIX + digest(hospital_id, kind, value)
            wanted.setdefault(pk, []).append((index, kind))
    out: list[dict[str, Tombstone]] = [{} for _ in identities]
    if not wanted:
        return out
    for item in store.batch_get([store.key(pk, SORT) for pk in wanted], consistent=True):
        stone = Tombstone(
            str(item.get("kind")), clock.parse(str(item["erased_at"])), str(item["erasure_id"])
        )
        for index, kind in wanted[str(item["pk"])]:
            out[index][kind] = stone
    return out


def erased(hospital_id: str, identity: Identity) -> dict[str, Tombstone]:
    """The identity's tombstoned details (by kind); empty when none."""
    return found(hospital_id, [identity])[0]


def lift(hospital_id: str, identity: Identity) -> int:
    """Remove the tombstones of these details (the person came back and consented again)."""
    stones = erased(hospital_id, identity)
    for kind, value in identity.details():
        if kind in stones:
            store.dynamodb().delete_item(
                TableName=store.table_name(), Key=_key(hospital_id, kind, value)
            )
    return len(stones)


FIELDS = {"phone": "body.phone", "chart_no": "body.chart_no", "email": "body.email"}


def check_registration(hospital_id: str, identity: Identity, returning: bool) -> int:
    """Refuse (409) to register an erased person again unless they `returning`; then lift their
    tombstones. Returns the tombstones lifted."""
    stones = erased(hospital_id, identity)
    if not stones:
        return 0
    if not returning:
        kind = next((k for k in ("phone", "chart_no", "email") if k in stones), "phone")
        day = min(s.erased_at for s in stones.values()).date().isoformat()
        raise Conflict(
            f"{FIELDS[kind]}: this {kind.replace('_', ' ')} belongs to a patient erased at their "
            f"request on {day}; register them again only if they came back and consented again, "
            "with `returning_after_erasure: true`",
            field=FIELDS[kind],
        )
    return lift(hospital_id, identity)
