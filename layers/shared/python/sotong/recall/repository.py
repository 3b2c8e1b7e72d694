"""Patients, treatments, touchpoints and conversations in the records table: the ports the recall
desks use (`PatientRepository`; `CampaignRepository` for campaign jobs) and their DynamoDB
adapters, the one place that knows the key layout. The outbox items a write causes join the
adapter's own transaction (`sotong.notify.txoutbox.actions`).

Everything about one patient lives under `PAT#<id>`, so erasing a patient is one partition:
- `PAT` the patient (gsi3 `PHONE#<recipient key>` to find them from an inbound message);
- `TRT#<treatment id>` a treatment (gsi1 `TAG#<tag>` / `<date>#<patient>` for segments);
- `TP#<treatment id>#<step>` a touchpoint (gsi2 `DUE#<UTC hour>` / `<due_at>#...` while planned:
  a sparse, time-bucketed index the dispatcher reads from its watermark, never a Scan);
- `APT#<at>#<kind>` a booking or visit; `CONV#<at>#...` a message in the conversation
  (`CONVIN#<provider message id>` marks an inbound message stored, so a redelivery is not).
  A patient's reply waiting for an answer carries a sparse, time-ordered index entry of its
  own, written with it and removed when staff answer or settle it: gsi1 `REPLIES#<department>`
  and gsi4 `REPLIES#*` / `<at>#<patient>#<message id>` (the queue, never a Scan; an erasure
  takes it with the partition).
The patient item carries `last_ad_at`, when they were last sent an advertising message: the
frequency cap is a condition on it, written in the transaction that queues the next ad.

Writes that belong together (a touchpoint's `queued` mark and its outbox item) go through
`write_units`: many units per TransactWriteItems, a unit whose condition fails dropped and the
rest retried. `LEASE` / `<name>` keeps two runs of a schedule from overlapping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from sotong import clock, store
from sotong.recall.records import (
    AppointmentRecord,
    ConversationMessage,
    Patient,
    Touchpoint,
    Treatment,
)

if TYPE_CHECKING:
    from sotong.notify.model import MessageRequest

MAX_ACTIONS = 100
CONFLICT_ATTEMPTS = 6
PATIENT = "PAT"


# --- the port -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class AdMark:
    """An advertising message recorded on the patient, refused when they got one after
    `cutoff` or are gone (the frequency cap)."""

    patient_id: str
    at: datetime
    by: str
    cutoff: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TouchpointMove:
    """One touchpoint moved on from what was read (`before`, its status the condition), with the
    messages it sends and the ad it records: written whole or not at all."""

    before: Touchpoint
    after: Touchpoint
    messages: tuple[MessageRequest, ...] = ()
    ad: AdMark | None = None


@dataclass
class Moved:
    """What `move_touchpoints` did: the moves refused (index -> `moved_on`, the touchpoint was no
    longer as read; `ad_cap`, the frequency cap) and the write requests it took."""

    refused: dict[int, str] = field(default_factory=dict)
    requests: int = 0


@dataclass(frozen=True, slots=True)
class WaitingReply:
    """A patient's reply waiting for an answer, as the queue holds it."""

    patient_id: str
    message: ConversationMessage
    department: str
    """the department of the treatment the reply is about ('' when its tag is unknown)"""


@dataclass
class WaitingPage:
    """Patients' replies waiting for an answer, oldest first: one page of the queue."""

    replies: list[WaitingReply]
    more: bool
    """more replies wait after the last one"""


@dataclass(frozen=True, slots=True)
class TagRef:
    """A treatment as the tag index holds it."""

    patient_id: str
    day: str
    cursor: str
    """resume after this treatment"""


@dataclass
class TagPage:
    """Treatments read from the tag index in date order, and the Query pages it took."""

    refs: list[TagRef]
    more: bool
    """the index goes on after the last ref"""
    query_pages: int = 0


class PatientRepository(Protocol):
    """What the recall desks store and read, in domain terms."""

    # patients
    def patient(self, patient_id: str) -> Patient | None: ...
    def patients(self, patient_ids: Iterable[str]) -> dict[str, Patient]: ...
    def patient_by_phone(self, phone_key: str) -> Patient | None: ...
    def register(self, patient: Patient, phone_key: str) -> Patient: ...
    def save_pause(self, patient: Patient) -> bool: ...
    def note_treatment(self, patient_id: str, tag: str, day: str) -> None: ...
    def set_latest_treatment(self, patient_id: str, tag: str, day: str) -> None: ...
    def note_appointment(self, appointment: AppointmentRecord) -> None: ...

    # treatments
    def add_treatment(self, treatment: Treatment) -> bool: ...
    def treatment(self, patient_id: str, treatment_id: str) -> Treatment | None: ...
    def treatments(self, patient_id: str) -> list[Treatment]: ...
    def save_treatment(self, treatment: Treatment) -> None: ...
    def tag_index(
        self,
        tag: str,
        *,
        on_or_after: date | None = None,
        before: date | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> TagPage: ...

    # touchpoints
    def touchpoints(self, patient_id: str, treatment_id: str | None = None) -> list[Touchpoint]: ...
    def add_touchpoints(self, touchpoints: Sequence[Touchpoint]) -> int: ...
    def due_touchpoints(self, since: datetime, until: datetime) -> list[Touchpoint]: ...
    def move_touchpoint(self, before: Touchpoint, after: Touchpoint) -> bool: ...
    def move_touchpoints(
        self, hospital_id: str, moves: Sequence[TouchpointMove], *, per_transaction: int = 50
    ) -> Moved: ...

    # conversations
    def conversation(self, patient_id: str) -> list[ConversationMessage]: ...
    def add_message(
        self,
        patient_id: str,
        message: ConversationMessage,
        *,
        inbound_id: str | None = None,
        waiting_in: str | None = None,
    ) -> bool: ...
    def add_answer(
        self,
        hospital_id: str,
        patient_id: str,
        message: ConversationMessage,
        request: MessageRequest,
        *,
        settles: Sequence[WaitingReply] = (),
    ) -> bool: ...

    # the replies waiting for an answer
    def waiting_replies(self, department: str | None, limit: int) -> WaitingPage: ...
    def waiting_of(self, patient_id: str) -> list[WaitingReply]: ...
    def settle_replies(self, replies: Sequence[WaitingReply]) -> int: ...

    # schedules
    def take_lease(self, name: str, owner: str, now: datetime, hold: timedelta) -> bool: ...
    def release_lease(self, name: str, owner: str) -> None: ...
    def watermark(self, name: str) -> datetime | None: ...
    def set_watermark(self, name: str, until: datetime) -> None: ...


# --- the key layout -------------------------------------------------------------------------------
def pk(patient_id: str) -> str:
    return f"PAT#{patient_id}"


def due_bucket(at: datetime) -> str:
    return store.hour_bucket("DUE", at)


def strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")}


def patient_key(patient_id: str) -> dict[str, Any]:
    return store.key(pk(patient_id), PATIENT)


def phone_index(phone_key: str) -> dict[str, str]:
    return {"gsi3pk": f"PHONE#{phone_key}", "gsi3sk": PATIENT}


def patient_item(patient: Patient, phone_key: str) -> dict[str, Any]:
    return {"pk": pk(patient.id), "sk": PATIENT, **patient.to_item(), **phone_index(phone_key)}


def treatment_sk(treatment_id: str) -> str:
    return f"TRT#{treatment_id}"


def treatment_key(patient_id: str, treatment_id: str) -> dict[str, Any]:
    return store.key(pk(patient_id), treatment_sk(treatment_id))


def treatment_of_key(key: Mapping[str, Any]) -> str:
    """The treatment id of a stored key (`{"sk": {"S": "TRT#..."}}`)."""
    return str(key["sk"]["S"]).removeprefix("TRT#")


def _tag_index(treatment: Treatment) -> dict[str, str]:
    return {"gsi1pk": f"TAG#{treatment.tag}", "gsi1sk": f"{treatment.date}#{treatment.patient_id}"}


def treatment_item(treatment: Treatment) -> dict[str, Any]:
    return {
        "pk": pk(treatment.patient_id),
        "sk": treatment_sk(treatment.id),
        **treatment.to_item(),
        **_tag_index(treatment),
    }


def touchpoint_sk(treatment_id: str, step: str | None = None) -> str:
    return f"TP#{treatment_id}#{step}" if step is not None else f"TP#{treatment_id}#"


def touchpoint_key(touchpoint: Touchpoint) -> dict[str, Any]:
    return store.key(
        pk(touchpoint.patient_id), touchpoint_sk(touchpoint.treatment_id, touchpoint.step)
    )


def _due_index(touchpoint: Touchpoint) -> dict[str, str]:
    if not touchpoint.is_planned:
        return {}
    return {
        "gsi2pk": due_bucket(touchpoint.due),
        "gsi2sk": f"{touchpoint.due_at}#{touchpoint.patient_id}#{touchpoint.id}",
    }


def touchpoint_item(touchpoint: Touchpoint) -> dict[str, Any]:
    return {
        "pk": pk(touchpoint.patient_id),
        "sk": touchpoint_sk(touchpoint.treatment_id, touchpoint.step),
        **touchpoint.to_item(),
        **_due_index(touchpoint),
    }


def item_key(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item["pk"]), str(item["sk"])


# --- plumbing -------------------------------------------------------------------------------------
def put(item: dict[str, Any]) -> None:
    store.dynamodb().put_item(TableName=store.table_name(), Item=store.to_item(item))


def write_all(items: list[dict[str, Any]]) -> int:
    """BatchWriteItem in chunks of 25 (unprocessed items retried); returns the requests made."""
    requests = 0
    for start in range(0, len(items), 25):
        pending: list[Any] = [
            {"PutRequest": {"Item": store.to_item(item)}} for item in items[start : start + 25]
        ]
        while pending:
            requests += 1
            response = store.dynamodb().batch_write_item(RequestItems={store.table_name(): pending})
            pending = response.get("UnprocessedItems", {}).get(store.table_name(), [])
    return requests


def delete_all(keys: list[dict[str, Any]]) -> None:
    for start in range(0, len(keys), 25):
        pending: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
        while pending:
            response = store.dynamodb().batch_write_item(RequestItems={store.table_name(): pending})
            pending = response.get("UnprocessedItems", {}).get(store.table_name(), [])


def items_of(patient_id: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "KeyConditionExpression": "pk = :p" + (" AND begins_with(sk, :prefix)" if prefix else ""),
        "ExpressionAttributeValues": store.values(
            p=pk(patient_id), **({"prefix": prefix} if prefix else {})
        ),
    }
    yield from store.query_pages(**kwargs)


def _update(
    key: dict[str, Any],
    sets: Mapping[str, Any],
    removes: Iterable[str] = (),
    condition: str | None = None,
    condition_values: Mapping[str, Any] | None = None,
    condition_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An `Update` action setting and removing attributes by name."""
    names = {f"#{k}": k for k in sets} | dict(condition_names or {})
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    gone = list(removes)
    if gone:
        names |= {f"#{k}": k for k in gone}
        expression += " REMOVE " + ", ".join(f"#{k}" for k in gone)
    update: dict[str, Any] = {
        "TableName": store.table_name(),
        "Key": key,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": store.values(**sets, **(condition_values or {})),
    }
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def touchpoint_update(before: Touchpoint, after: Touchpoint) -> dict[str, Any]:
    """The `Update` that moves a touchpoint from `before` (its status the condition) to
    `after`: the attributes that changed, and the due index it joins or leaves."""
    old, new = touchpoint_item(before), touchpoint_item(after)
    sets = {k: v for k, v in new.items() if k not in ("pk", "sk") and old.get(k) != v}
    sets["status"] = after.status
    if after.updated_at is not None:
        sets["updated_at"] = after.updated_at
    removes = [k for k in old if k not in new and k not in ("pk", "sk")]
    if not after.is_planned:
        removes += [k for k in ("gsi2pk", "gsi2sk") if k not in removes]
    return _update(
        touchpoint_key(after),
        sets,
        removes,
        "#status = :was",
        {"was": before.status},
        {"#status": "status"},
    )


def ad_mark_update(mark: AdMark) -> dict[str, Any]:
    """The `Update` that records an advertising message on the patient, on condition that the
    patient still exists and got none after the mark's cutoff."""
    return {
        "Update": {
            "TableName": store.table_name(),
            "Key": patient_key(mark.patient_id),
            "UpdateExpression": "SET #at = :at, #by = :by",
            "ConditionExpression": "attribute_exists(pk) AND "
            "(attribute_not_exists(#at) OR #at <= :cutoff)",
            "ExpressionAttributeNames": {"#at": "last_ad_at", "#by": "last_ad_by"},
            "ExpressionAttributeValues": store.values(
                at=clock.iso(mark.at), by=mark.by, cutoff=clock.iso(mark.cutoff)
            ),
        }
    }


def _later_of(patient_id: str, attribute: str, at: str) -> None:
    """Set `attribute` to `at` unless it already holds a later time."""
    store.conditional_write(
        "update_item",
        Key=patient_key(patient_id),
        UpdateExpression="SET #a = :at",
        ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#a) OR #a < :at)",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues=store.values(at=at),
    )


def _conversation_sk(message: ConversationMessage) -> str:
    return f"CONV#{message.id}"


def _conversation_item(patient_id: str, message: ConversationMessage) -> dict[str, Any]:
    return {"pk": pk(patient_id), "sk": _conversation_sk(message), **message.to_item()}


WAITING = "REPLIES#"
WAITING_ALL = "REPLIES#*"
WAITING_INDEX = ("gsi1pk", "gsi1sk", "gsi4pk", "gsi4sk")
SETTLED_WITH_ANSWER = 90
"""waiting replies taken off the queue in the answer's own transaction (the rest after it)"""


def _waiting_index(
    patient_id: str, message: ConversationMessage, department: str
) -> dict[str, str]:
    """The queue entry of a waiting reply: by department (gsi1) and for every department
    (gsi4), both ordered by the time it came."""
    order = f"{message.at}#{patient_id}#{message.id}"
    entry = {"gsi4pk": WAITING_ALL, "gsi4sk": order}
    if department:
        entry |= {"gsi1pk": WAITING + department, "gsi1sk": order}
    return entry


def _waiting_of_item(item: Mapping[str, Any]) -> WaitingReply:
    department = str(item.get("gsi1pk", "")).removeprefix(WAITING)
    return WaitingReply(
        str(item["pk"]).removeprefix("PAT#"), ConversationMessage.from_item(item), department
    )


def _settle_action(reply: WaitingReply, *, if_waiting: bool = False) -> dict[str, Any]:
    """Take a reply off the queue (its index entry only; the message stays): on condition that
    the message is there (an answer's transaction: settled meanwhile is no reason to refuse
    it) or, `if_waiting`, that it still waits."""
    return {
        "Update": {
            "TableName": store.table_name(),
            "Key": store.key(pk(reply.patient_id), _conversation_sk(reply.message)),
            "UpdateExpression": "REMOVE " + ", ".join(WAITING_INDEX),
            "ConditionExpression": "attribute_exists(gsi4pk)"
            if if_waiting
            else "attribute_exists(pk)",
        }
    }


# --- transactions ---------------------------------------------------------------------------------
def cancellation_codes(error: Exception) -> list[str] | None:
    """Per action, why a cancelled transaction was refused (`None`, `ConditionalCheckFailed`,
    `TransactionConflict`, ...); None when the error is no cancellation or names no reasons."""
    response = getattr(error, "response", None) or {}
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = response.get("CancellationReasons")
    if not reasons:
        return None
    return [str(r.get("Code") or "None") for r in reasons]


def failed_indexes(error: Exception) -> set[int] | None:
    """The actions whose condition refused a cancelled transaction; None when it was cancelled
    for another reason too (or is no cancellation at all)."""
    codes = cancellation_codes(error)
    if codes is None or set(codes) - {"None", "ConditionalCheckFailed"}:
        return None
    return {i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"}


@dataclass
class Written:
    """What `write_units` did: the units refused (unit index -> the actions, within the unit,
    whose condition failed) and the requests it took."""

    failed: dict[int, set[int]] = field(default_factory=dict)
    requests: int = 0


def _one(action: dict[str, Any]) -> None:
    ((kind, params),) = action.items()
    call = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}[kind]
    getattr(store.dynamodb(), call)(**params)


def write_units(units: Sequence[Sequence[dict[str, Any]]], *, per_transaction: int = 50) -> Written:
    """Write each unit (actions that belong together) whole or not at all, packing up to
    `per_transaction` units (and 100 actions) in one TransactWriteItems. When conditions refuse
    a transaction, the units they belong to are dropped and the rest written again; a conflict
    with another transaction is retried after a pause. No item may appear in two units of one
    call. A lone unit of one action is a plain write (half the cost)."""
    written = Written()
    groups: list[list[int]] = []
    actions = 0
    for index, unit in enumerate(units):
        if not unit:
            continue
        if len(unit) > MAX_ACTIONS:
            raise ValueError(f"a unit of {len(unit)} actions does not fit one transaction")
        if not groups or len(groups[-1]) >= per_transaction or actions + len(unit) > MAX_ACTIONS:
            groups.append([])
            actions = 0
        groups[-1].append(index)
        actions += len(unit)
    for group in groups:
        _write_group(units, group, written)
    return written


def _write_group(units: Sequence[Sequence[dict[str, Any]]], group: list[int], out: Written) -> None:
    remaining = list(group)
    conflicts = 0
    while remaining:
        owners: list[tuple[int, int]] = []  # per action: (unit index, action index in the unit)
        actions: list[dict[str, Any]] = []
        for index in remaining:
            for position, action in enumerate(units[index]):
                owners.append((index, position))
                actions.append(action)
        out.requests += 1
        try:
            if len(actions) == 1:
                _one(actions[0])
            else:
                store.dynamodb().transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
            return
        except ClientError as error:
            if len(actions) == 1 and store.conditional_failed(error):
                out.failed[remaining[0]] = {0}
                return
            codes = cancellation_codes(error)
            if codes is None or len(codes) != len(actions):
                if store.transaction_refused(error) and len(remaining) > 1:
                    # no reasons given: find the refused units one by one
                    for index in remaining:
                        _write_group(units, [index], out)
                    return
                if store.transaction_refused(error):
                    out.failed[remaining[0]] = set(range(len(units[remaining[0]])))
                    return
                raise
            refused: dict[int, set[int]] = {}
            for (index, position), code in zip(owners, codes, strict=True):
                if code == "ConditionalCheckFailed":
                    refused.setdefault(index, set()).add(position)
            other = set(codes) - {"None", "ConditionalCheckFailed", "TransactionConflict"}
            if other:
                raise
            if refused:
                out.failed.update(refused)
                remaining = [i for i in remaining if i not in refused]
                continue
            conflicts += 1  # only conflicts with concurrent writes: try again shortly
            if conflicts >= CONFLICT_ATTEMPTS:
                raise
            time.sleep(min(1.0, 0.05 * 2**conflicts))


# --- leases ---------------------------------------------------------------------------------------
def take_lease(name: str, owner: str, now: datetime, hold: timedelta) -> bool:
    """Hold `LEASE` / `name` until `now + hold` unless someone else holds it. A lease ending
    more than twice `hold` ahead is stale too (taken under a shifted clock: the local stack's
    `schedule --shift-hours`), so it cannot block the schedule for long."""
    until = now + hold
    item = {
        "pk": "LEASE",
        "sk": name,
        "owner": owner,
        "until": clock.iso(until),
        "expires_at": int(until.timestamp()) + 86_400,
    }
    return store.conditional_write(
        "put_item",
        Item=store.to_item(item),
        ConditionExpression="attribute_not_exists(pk) OR #until < :now OR #until > :far "
        "OR #owner = :owner",
        ExpressionAttributeNames={"#until": "until", "#owner": "owner"},
        ExpressionAttributeValues=store.values(
            now=clock.iso(now), far=clock.iso(until + hold), owner=owner
        ),
    )


def release_lease(name: str, owner: str) -> None:
    store.conditional_write(
        "delete_item",
        Key=store.key("LEASE", name),
        ConditionExpression="#owner = :owner",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues=store.values(owner=owner),
    )


def encode_key(key: dict[str, Any]) -> str:
    """A DynamoDB key (LastEvaluatedKey) of string attributes as a cursor to store."""
    return json.dumps({k: v["S"] for k, v in sorted(key.items())}, separators=(",", ":"))


def decode_key(cursor: str) -> dict[str, Any]:
    return {k: {"S": v} for k, v in json.loads(cursor).items()}


# --- the DynamoDB adapter -------------------------------------------------------------------------
class DynamoPatientRepository:
    """`PatientRepository` on the records table (`sotong.store`'s client)."""

    def conversation_owner(self, item: dict[str, Any]) -> str | None:
        """The patient id when `item` (a stored item, keys included) is a conversation message."""
        partition, sort = str(item.get("pk", "")), str(item.get("sk", ""))
        if partition.startswith("PAT#") and sort.startswith("CONV#"):
            return partition.removeprefix("PAT#")
        return None

    def patient(self, patient_id: str) -> Patient | None:
        item = (
            store.dynamodb()
            .get_item(
                TableName=store.table_name(), Key=patient_key(patient_id), ConsistentRead=True
            )
            .get("Item")
        )
        return Patient.from_item(store.from_item(item)) if item else None

    def patients(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        """BatchGetItem in chunks of 100: one read request per 100 patients."""
        wanted = sorted(set(patient_ids))
        found: dict[str, Patient] = {}
        for start in range(0, len(wanted), 100):
            keys = [patient_key(p) for p in wanted[start : start + 100]]
            request: dict[str, Any] = {store.table_name(): {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = store.dynamodb().batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(store.table_name(), []):
                    patient = Patient.from_item(store.from_item(item))
                    found[patient.id] = patient
                request = response.get("UnprocessedKeys") or {}
        return found

    def _by_phone(self, phone_key: str, **extra: Any) -> list[dict[str, Any]]:
        response = store.dynamodb().query(
            TableName=store.table_name(),
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :p",
            ExpressionAttributeValues=store.values(p=phone_index(phone_key)["gsi3pk"]),
            **extra,
        )
        return [store.from_item(i) for i in response.get("Items", [])]

    def patient_by_phone(self, phone_key: str) -> Patient | None:
        items = [Patient.from_item(i) for i in self._by_phone(phone_key)]
        return max(items, key=lambda p: p.updated_at or "") if items else None

    def patient_ids_by_phone(self, phone_key: str) -> list[str]:
        """Every patient with this phone (a family may share one)."""
        return [str(i["id"]) for i in self._by_phone(phone_key, ProjectionExpression="id")]

    def register(self, patient: Patient, phone_key: str) -> Patient:
        """Create or update the patient's contact and consents; history attributes are kept."""
        now = clock.iso(clock.now())
        given = {
            "id": patient.id,
            "name": patient.name,
            "phone": patient.phone,
            "email": patient.email,
            "chart_no": patient.chart_no,
            "consents": dict(patient.consents) if patient.consents is not None else None,
        }
        extra = {"updated_at": now, **phone_index(phone_key)}
        fields = {k: v for k, v in {**given, **extra}.items() if v is not None}
        names = {f"#{k}": k for k in fields} | {
            "#created_at": "created_at",
            "#lt": "last_treatment",
        }
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in fields)
        expression += ", #created_at = if_not_exists(#created_at, :now)"
        expression += ", #lt = if_not_exists(#lt, :empty)"
        gone = [k for k in ("email", "chart_no") if given[k] is None]
        if gone:
            names.update({f"#{k}": k for k in gone})
            expression += " REMOVE " + ", ".join(f"#{k}" for k in gone)
        response = store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=patient_key(patient.id),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=store.values(now=now, empty={}, **fields),
            ReturnValues="ALL_NEW",
        )
        return Patient.from_item(store.from_item(response["Attributes"]))

    def save_pause(self, patient: Patient) -> bool:
        """Store the patient's pause; False when the patient is gone."""
        sets = {"paused": patient.paused, "pause_reason": patient.pause_reason}
        return store.conditional_write(
            "update_item",
            **_update(patient_key(patient.id), sets, (), "attribute_exists(pk)")["Update"],
        )

    def set_patient_attributes(self, patient_id: str, sets: dict[str, Any]) -> bool:
        """Set attributes on a stored patient outright (tools and tests); False when none."""
        return store.conditional_write(
            "update_item",
            **_update(patient_key(patient_id), sets, (), "attribute_exists(pk)")["Update"],
        )

    def note_treatment(self, patient_id: str, tag: str, day: str) -> None:
        """Remember the latest date of each tag on the patient (for `repeat_treatment`)."""
        store.conditional_write(
            "update_item",
            Key=patient_key(patient_id),
            UpdateExpression="SET last_treatment.#tag = :day",
            ConditionExpression=(
                "attribute_exists(pk) AND (attribute_not_exists(last_treatment.#tag) "
                "OR last_treatment.#tag < :day)"
            ),
            ExpressionAttributeNames={"#tag": tag},
            ExpressionAttributeValues=store.values(day=day),
        )

    def set_latest_treatment(self, patient_id: str, tag: str, day: str) -> None:
        """Set the patient's latest date of `tag` outright (after a treatment's date moved)."""
        store.conditional_write(
            "update_item",
            Key=patient_key(patient_id),
            UpdateExpression="SET last_treatment.#tag = :day",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#tag": tag},
            ExpressionAttributeValues=store.values(day=day),
        )

    def note_appointment(self, appointment: AppointmentRecord) -> None:
        """Store the booking or visit and move the patient's time of it to the later one."""
        put(
            {
                "pk": pk(appointment.patient_id),
                "sk": f"APT#{appointment.at}#{appointment.kind}",
                **appointment.to_item(),
            }
        )
        _later_of(appointment.patient_id, appointment.patient_attribute, appointment.at)

    # --- treatments -----------------------------------------------------------------------------
    def add_treatment(self, treatment: Treatment) -> bool:
        """Store a new treatment; False when it is stored already (recorded twice = once)."""
        return store.put_new(treatment_item(treatment))

    def treatment(self, patient_id: str, treatment_id: str) -> Treatment | None:
        found = next(iter(items_of(patient_id, treatment_sk(treatment_id))), None)
        return Treatment.from_item(found) if found else None

    def treatments(self, patient_id: str) -> list[Treatment]:
        return [Treatment.from_item(i) for i in items_of(patient_id, treatment_sk(""))]

    def save_treatment(self, treatment: Treatment) -> None:
        put(treatment_item(treatment))

    def tag_index(
        self,
        tag: str,
        *,
        on_or_after: date | None = None,
        before: date | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> TagPage:
        """Treatments of one tag in date order from the tag index (gsi1), never the table: dated
        on or after `on_or_after`, before `before`, after `cursor`, up to `limit` (None: all)."""
        partition = f"TAG#{tag}"
        condition = "gsi1pk = :t"
        values: dict[str, Any] = {"t": partition}
        low = on_or_after.isoformat() if on_or_after else None
        # the last index key a treatment before `before` can have is the day before's
        high = (before - timedelta(days=1)).isoformat() + "#~" if before else None
        if low and high:
            condition += " AND gsi1sk BETWEEN :lo AND :hi"
            values.update(lo=low, hi=high)
        elif low:
            condition += " AND gsi1sk >= :lo"
            values["lo"] = low
        elif high:
            condition += " AND gsi1sk <= :hi"
            values["hi"] = high
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": "gsi1",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": store.values(**values),
            "ProjectionExpression": "#g, #p, #s",
            "ExpressionAttributeNames": {"#g": "gsi1sk", "#p": "pk", "#s": "sk"},
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_key(cursor)
        read: list[dict[str, Any]] = []
        following: dict[str, Any] | None = None
        pages = 0
        while limit is None or len(read) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(read)
            page = store.dynamodb().query(**kwargs)
            pages += 1
            read += page.get("Items", [])
            following = page.get("LastEvaluatedKey")
            if not following:
                break
            kwargs["ExclusiveStartKey"] = following
        refs = []
        for item in read:
            day, _, pid = item["gsi1sk"]["S"].partition("#")
            key = {"gsi1pk": {"S": partition}, **{k: item[k] for k in ("gsi1sk", "pk", "sk")}}
            refs.append(TagRef(pid, day, encode_key(key)))
        return TagPage(refs, bool(following), pages)

    # --- touchpoints ----------------------------------------------------------------------------
    def touchpoints(self, patient_id: str, treatment_id: str | None = None) -> list[Touchpoint]:
        prefix = touchpoint_sk(treatment_id) if treatment_id else "TP#"
        found = [Touchpoint.from_item(i) for i in items_of(patient_id, prefix)]
        return sorted(found, key=lambda t: t.due_at)

    def add_touchpoints(self, touchpoints: Sequence[Touchpoint]) -> int:
        """Store the touchpoints as they are (BatchWriteItem); returns the requests made."""
        return write_all([touchpoint_item(t) for t in touchpoints])

    def due_touchpoints(self, since: datetime, until: datetime) -> list[Touchpoint]:
        """Planned touchpoints due in (since, until]: reads only the due items."""
        return [Touchpoint.from_item(i) for i in store.query_due("DUE", since, until)]

    def move_touchpoint(self, before: Touchpoint, after: Touchpoint) -> bool:
        """Move one touchpoint on; False when it is no longer as read (a re-run does nothing
        twice)."""
        return store.transact([touchpoint_update(before, after)])

    def move_touchpoints(
        self, hospital_id: str, moves: Sequence[TouchpointMove], *, per_transaction: int = 50
    ) -> Moved:
        """Each move (its touchpoint, outbox items and ad mark) whole or not at all, in
        transactions of `per_transaction` moves (`write_units`)."""
        from sotong.notify import txoutbox

        units = []
        for move in moves:
            unit = [touchpoint_update(move.before, move.after)]
            unit += txoutbox.actions(hospital_id, move.messages)
            if move.ad is not None:
                unit.append(ad_mark_update(move.ad))
            units.append(unit)
        written = write_units(units, per_transaction=per_transaction)
        return Moved(
            {i: "moved_on" if 0 in failed else "ad_cap" for i, failed in written.failed.items()},
            written.requests,
        )

    # --- conversations --------------------------------------------------------------------------
    def conversation(self, patient_id: str) -> list[ConversationMessage]:
        return [ConversationMessage.from_item(i) for i in items_of(patient_id, "CONV#")]

    def add_message(
        self,
        patient_id: str,
        message: ConversationMessage,
        *,
        inbound_id: str | None = None,
        waiting_in: str | None = None,
    ) -> bool:
        """Store a message of the conversation; False when this provider message is stored
        already (its marker `CONVIN#<id>` is written in the same transaction). With
        `waiting_in` (a department, '' for none known) the message waits for an answer: its
        queue entry is part of the same item."""
        item = _conversation_item(patient_id, message)
        if waiting_in is not None:
            item |= _waiting_index(patient_id, message, waiting_in)
        actions = [store.put_action(item, "attribute_not_exists(pk)")]
        if inbound_id:
            marker = {
                "pk": pk(patient_id),
                "sk": f"CONVIN#{inbound_id}",
                "conversation": item["sk"],
            }
            actions.append(store.put_action(marker, "attribute_not_exists(pk)"))
        return store.transact(actions)

    def add_answer(
        self,
        hospital_id: str,
        patient_id: str,
        message: ConversationMessage,
        request: MessageRequest,
        *,
        settles: Sequence[WaitingReply] = (),
    ) -> bool:
        """A staff answer and its message request in one transaction, each written once; the
        replies it `settles` leave the queue in that transaction (past 90, right after it)."""
        from sotong.notify import txoutbox

        (outbox_put,) = txoutbox.actions(hospital_id, [request])
        outbox_put["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
        item = _conversation_item(patient_id, message)
        now, later = settles[:SETTLED_WITH_ANSWER], settles[SETTLED_WITH_ANSWER:]
        actions = [store.put_action(item, "attribute_not_exists(pk)"), outbox_put]
        if not store.transact(actions + [_settle_action(r) for r in now]):
            return False
        self.settle_replies(later)
        return True

    # --- the replies waiting for an answer ------------------------------------------------------
    def waiting_replies(self, department: str | None, limit: int) -> WaitingPage:
        """The replies waiting in a department's queue (None: every department's), oldest
        first, up to `limit`: a Query of the sparse queue index."""
        index, partition = (
            ("gsi4", WAITING_ALL) if department is None else ("gsi1", WAITING + department)
        )
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": index,
            "KeyConditionExpression": f"{index}pk = :p",
            "ExpressionAttributeValues": store.values(p=partition),
            "ScanIndexForward": True,
        }
        found: list[WaitingReply] = []
        while True:
            page = store.dynamodb().query(**{**kwargs, "Limit": limit + 1 - len(found)})
            found += [_waiting_of_item(store.from_item(i)) for i in page.get("Items", [])]
            if len(found) > limit or "LastEvaluatedKey" not in page:
                return WaitingPage(found[:limit], len(found) > limit)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def waiting_of(self, patient_id: str) -> list[WaitingReply]:
        """This patient's replies still waiting (their conversation, one partition)."""
        return [
            _waiting_of_item(item)
            for item in items_of(patient_id, "CONV#")
            if "gsi4pk" in item or "gsi1pk" in item
        ]

    def settle_replies(self, replies: Sequence[WaitingReply]) -> int:
        """Take replies off the queue; returns how many were still there to take."""
        settled = 0
        for reply in replies:
            if store.transact([_settle_action(reply, if_waiting=True)]):
                settled += 1
        return settled

    # --- schedules ------------------------------------------------------------------------------
    def take_lease(self, name: str, owner: str, now: datetime, hold: timedelta) -> bool:
        return take_lease(name, owner, now, hold)

    def release_lease(self, name: str, owner: str) -> None:
        release_lease(name, owner)

    def watermark(self, name: str) -> datetime | None:
        return store.watermark(name)

    def set_watermark(self, name: str, until: datetime) -> None:
        store.set_watermark(name, until)

    # --- erasure --------------------------------------------------------------------------------
    def add_counts(self, counts: dict[str, int]) -> None:
        """Anonymous counters kept after an erasure (`STATS` / `recall`)."""
        if not counts:
            return
        names = {f"#c{i}": name for i, name in enumerate(counts)}
        values = {f"c{i}": n for i, n in enumerate(counts.values())}
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key("STATS", "recall"),
            UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=store.values(**values),
        )

    def counts(self) -> dict[str, Any]:
        item = (
            store.dynamodb()
            .get_item(TableName=store.table_name(), Key=store.key("STATS", "recall"))
            .get("Item")
        )
        return strip(store.from_item(item)) if item else {}


# --- campaigns ------------------------------------------------------------------------------------
CAMPAIGN = "CAMPAIGN"
ACTIVE_CAMPAIGNS = "CAMPAIGNS"
"""the sparse index partition (gsi2) of the planned and running campaigns"""


@dataclass
class PageWrite:
    """What `write_page` did: written; or refused because the job moved on (cancelled, advanced
    by another runner), or because some recipients' conditions failed (their indexes in the
    page's sends: advertised meanwhile, or erased); and the requests it took."""

    written: bool = False
    job_moved_on: bool = False
    refused: set[int] = field(default_factory=set)
    requests: int = 0


class CampaignRepository(Protocol):
    """Campaign jobs: one item each, with the progress of its pages."""

    def campaign(self, campaign_id: str) -> dict[str, Any] | None: ...
    def add_campaign(self, campaign: dict[str, Any]) -> bool: ...
    def active_campaigns(self) -> list[str]: ...
    def cancel_campaign(self, campaign_id: str, by: str, at: datetime) -> bool: ...
    def campaign_results(self, campaign_id: str, limit: int) -> Iterator[dict[str, Any]]: ...
    def write_page(
        self,
        hospital_id: str,
        job: Mapping[str, Any],
        progress: Mapping[str, Any],
        final: bool,
        sends: Sequence[tuple[MessageRequest, AdMark]],
    ) -> PageWrite: ...


def _campaign_key(campaign_id: str) -> dict[str, Any]:
    return store.key(f"CAMPAIGN#{campaign_id}", CAMPAIGN)


def _job_update(job: Mapping[str, Any], progress: Mapping[str, Any], final: bool) -> dict[str, Any]:
    """The `Update` of the job's progress, on condition that it is still at the version read
    and planned or running; a final page takes it off the active index."""
    sets = dict(progress)
    names = {f"#{k}": k for k in sets} | {"#started": "started_at"}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    expression += ", #started = if_not_exists(#started, :updated_at)"
    if final:
        expression += " REMOVE gsi2pk, gsi2sk, #cursor"
        names["#cursor"] = "cursor"
    return {
        "Update": {
            "TableName": store.table_name(),
            "Key": _campaign_key(str(job["id"])),
            "UpdateExpression": expression,
            "ConditionExpression": "#version = :expected AND #status IN (:planned, :running)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": store.values(
                **sets,
                expected=int(job.get("version", 0)),
                planned="planned",
                running="running",
            ),
        }
    }


class DynamoCampaignRepository:
    """`CampaignRepository` on the records table: `CAMPAIGN#<id>` / `CAMPAIGN`, on gsi2
    `CAMPAIGNS` / `<send date>#<created>#<id>` while planned or running (what the runner reads:
    never a Scan); results from the message records referring to it (gsi3 `REF#campaign#<id>`)."""

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        item = (
            store.dynamodb()
            .get_item(
                TableName=store.table_name(), Key=_campaign_key(campaign_id), ConsistentRead=True
            )
            .get("Item")
        )
        return strip(store.from_item(item)) if item else None

    def add_campaign(self, campaign: dict[str, Any]) -> bool:
        """Store a new campaign job, planned; False when it exists (a concurrent request)."""
        cid = str(campaign["id"])
        item = {
            "pk": f"CAMPAIGN#{cid}",
            "sk": CAMPAIGN,
            **campaign,
            "gsi2pk": ACTIVE_CAMPAIGNS,
            "gsi2sk": f"{campaign['send_on']}#{campaign['created_at']}#{cid}",
        }
        return store.put_new(item)

    def active_campaigns(self) -> list[str]:
        """Ids of the planned and running campaigns, oldest send date first (the sparse index)."""
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": "gsi2",
            "KeyConditionExpression": "gsi2pk = :p",
            "ExpressionAttributeValues": store.values(p=ACTIVE_CAMPAIGNS),
            "ProjectionExpression": "id",
        }
        found: list[str] = []
        while True:
            page = store.dynamodb().query(**kwargs)
            found += [str(store.from_item(i)["id"]) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def cancel_campaign(self, campaign_id: str, by: str, at: datetime) -> bool:
        """Cancel a planned or running campaign; False when it is neither (or gone)."""
        now = clock.iso(at)
        return store.conditional_write(
            "update_item",
            Key=_campaign_key(campaign_id),
            UpdateExpression="SET #status = :cancelled, cancelled_by = :by, "
            "cancelled_at = :now, updated_at = :now, #version = #version + :one "
            "REMOVE gsi2pk, gsi2sk",
            ConditionExpression="#status IN (:planned, :running)",
            ExpressionAttributeNames={"#status": "status", "#version": "version"},
            ExpressionAttributeValues=store.values(
                cancelled="cancelled",
                by=by,
                now=now,
                one=1,
                planned="planned",
                running="running",
            ),
        )

    def campaign_results(self, campaign_id: str, limit: int) -> Iterator[dict[str, Any]]:
        """Status and reason of the message records referring to the campaign (up to `limit`)."""
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": "gsi3",
            "KeyConditionExpression": "gsi3pk = :p",
            "ExpressionAttributeValues": store.values(p=f"REF#campaign#{campaign_id}"),
            "ProjectionExpression": "#s, #r",
            "ExpressionAttributeNames": {"#s": "status", "#r": "reason"},
        }
        given = 0
        while True:
            page = store.dynamodb().query(**kwargs)
            for item in page.get("Items", []):
                if given >= limit:
                    return
                given += 1
                yield store.from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def write_page(
        self,
        hospital_id: str,
        job: Mapping[str, Any],
        progress: Mapping[str, Any],
        final: bool,
        sends: Sequence[tuple[MessageRequest, AdMark]],
    ) -> PageWrite:
        """The page's message requests (outbox items) and ad marks with the job's progress, in
        one transaction (a job update and 2 actions per recipient); a conflict with another
        transaction is tried again after a pause."""
        from sotong.notify import txoutbox

        actions = [_job_update(job, progress, final)]
        for request, mark in sends:
            (put,) = txoutbox.actions(hospital_id, [request])
            actions += [put, ad_mark_update(mark)]
        result = PageWrite()
        conflicts = 0
        while True:
            result.requests += 1
            try:
                if len(actions) == 1:
                    store.dynamodb().update_item(**actions[0]["Update"])
                else:
                    store.dynamodb().transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
            except ClientError as error:
                if len(actions) == 1 and store.conditional_failed(error):
                    result.job_moved_on = True
                    return result
                codes = cancellation_codes(error)
                if codes is None:
                    if store.transaction_refused(error):
                        result.job_moved_on = True  # no reasons to tell which: the next run
                        return result
                    raise
                if codes[0] == "ConditionalCheckFailed":
                    result.job_moved_on = True
                    return result
                refused = {
                    (i - 1) // 2
                    for i, code in enumerate(codes)
                    if i and code == "ConditionalCheckFailed"
                }
                if refused:
                    result.refused = refused
                    return result
                if set(codes) - {"None", "TransactionConflict"}:
                    raise
                conflicts += 1
                if conflicts >= CONFLICT_ATTEMPTS:
                    raise
                time.sleep(min(1.0, 0.05 * 2**conflicts))
                continue
            result.written = True
            return result
