"""Patients, treatments, touchpoints and conversations in the records table.

Everything about one patient lives under `PAT#<id>`, so erasing a patient is one partition:
- `PAT` the patient (gsi3 `PHONE#<recipient key>` to find them from an inbound message);
- `TRT#<treatment id>` a treatment (gsi1 `TAG#<tag>` / `<date>#<patient>` for segments);
- `TP#<treatment id>#<step>` a touchpoint (gsi2 `DUE#<UTC hour>` / `<due_at>#...` while planned:
  a sparse, time-bucketed index the dispatcher reads from its watermark, never a Scan);
- `APT#<at>#<kind>` a booking or visit; `CONV#<at>#...` a message in the conversation
  (`CONVIN#<provider message id>` marks an inbound message stored, so a redelivery is not).
The patient item carries `last_ad_at`, when they were last sent an advertising message: the
frequency cap is a condition on it, written in the transaction that queues the next ad.

Writes that belong together (a touchpoint's `queued` mark and its outbox item) go through
`write_units`: many units per TransactWriteItems, a unit whose condition fails dropped and the
rest retried. `LEASE` / `<name>` keeps two runs of a schedule from overlapping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sotong import clock, store

MAX_ACTIONS = 100
CONFLICT_ATTEMPTS = 6


def pk(patient_id: str) -> str:
    return f"PAT#{patient_id}"


def due_bucket(at: datetime) -> str:
    return store.hour_bucket("DUE", at)


def strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")}


def get_patient(patient_id: str) -> dict[str, Any] | None:
    item = (
        store.dynamodb()
        .get_item(
            TableName=store.table_name(), Key=store.key(pk(patient_id), "PAT"), ConsistentRead=True
        )
        .get("Item")
    )
    return strip(store.from_item(item)) if item else None


def get_patients(patient_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """BatchGetItem in chunks of 100: one read request per 100 patients."""
    wanted = sorted(set(patient_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 100):
        keys = [store.key(pk(p), "PAT") for p in wanted[start : start + 100]]
        request: dict[str, Any] = {store.table_name(): {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = store.dynamodb().batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(store.table_name(), []):
                patient = strip(store.from_item(item))
                found[patient["id"]] = patient
            request = response.get("UnprocessedKeys") or {}
    return found


def upsert_patient(patient: dict[str, Any], phone_key: str) -> dict[str, Any]:
    """Create or update the patient's contact and consents; history attributes are kept."""
    now = clock.iso(clock.now())
    extra = {"updated_at": now, "gsi3pk": f"PHONE#{phone_key}", "gsi3sk": "PAT"}
    fields = {k: v for k, v in {**patient, **extra}.items() if v is not None}
    names = {f"#{k}": k for k in fields} | {"#created_at": "created_at", "#lt": "last_treatment"}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in fields)
    expression += ", #created_at = if_not_exists(#created_at, :now)"
    expression += ", #lt = if_not_exists(#lt, :empty)"
    gone = [k for k in ("email", "chart_no") if patient.get(k) is None]
    if gone:
        names.update({f"#{k}": k for k in gone})
        expression += " REMOVE " + ", ".join(f"#{k}" for k in gone)
    response = store.dynamodb().update_item(
        TableName=store.table_name(),
        Key=store.key(pk(patient["id"]), "PAT"),
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=store.values(now=now, empty={}, **fields),
        ReturnValues="ALL_NEW",
    )
    return strip(store.from_item(response["Attributes"]))


def update_patient(patient_id: str, sets: dict[str, Any], condition_exists: bool = True) -> bool:
    names = {f"#{k}": k for k in sets}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    kwargs: dict[str, Any] = {}
    if condition_exists:
        kwargs["ConditionExpression"] = "attribute_exists(pk)"
    return store.conditional_write(
        "update_item",
        Key=store.key(pk(patient_id), "PAT"),
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=store.values(**sets),
        **kwargs,
    )


def note_treatment(patient_id: str, tag: str, day: str) -> None:
    """Remember the latest date of each tag on the patient (for `repeat_treatment`)."""
    store.conditional_write(
        "update_item",
        Key=store.key(pk(patient_id), "PAT"),
        UpdateExpression="SET last_treatment.#tag = :day",
        ConditionExpression=(
            "attribute_exists(pk) AND (attribute_not_exists(last_treatment.#tag) "
            "OR last_treatment.#tag < :day)"
        ),
        ExpressionAttributeNames={"#tag": tag},
        ExpressionAttributeValues=store.values(day=day),
    )


def later_of(patient_id: str, attribute: str, at: str) -> None:
    """Set `attribute` to `at` unless it already holds a later time."""
    store.conditional_write(
        "update_item",
        Key=store.key(pk(patient_id), "PAT"),
        UpdateExpression="SET #a = :at",
        ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#a) OR #a < :at)",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues=store.values(at=at),
    )


def patient_by_phone(phone_key: str) -> dict[str, Any] | None:
    response = store.dynamodb().query(
        TableName=store.table_name(),
        IndexName="gsi3",
        KeyConditionExpression="gsi3pk = :p",
        ExpressionAttributeValues=store.values(p=f"PHONE#{phone_key}"),
    )
    items = [strip(store.from_item(i)) for i in response.get("Items", [])]
    return max(items, key=lambda p: p.get("updated_at", "")) if items else None


def patients_by_phone(phone_key: str) -> list[dict[str, Any]]:
    """Every patient with this phone (a family may share one): their ids."""
    response = store.dynamodb().query(
        TableName=store.table_name(),
        IndexName="gsi3",
        KeyConditionExpression="gsi3pk = :p",
        ExpressionAttributeValues=store.values(p=f"PHONE#{phone_key}"),
        ProjectionExpression="id",
    )
    return [store.from_item(i) for i in response.get("Items", [])]


def put_new(item: dict[str, Any]) -> bool:
    return store.put_new(item)


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


def touchpoint_update(
    patient_id: str,
    sk: str,
    status: str,
    reason: str | None,
    *,
    expect: tuple[str, ...] = ("planned",),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `Update` that moves a touchpoint on from one of `expect` (a transaction action),
    leaving the due index when it stops being planned."""
    sets: dict[str, Any] = {"status": status, "updated_at": clock.iso(clock.now()), **(extra or {})}
    if reason:
        sets["status_reason"] = reason
    names = {f"#{k}": k for k in sets} | {"#status": "status"}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    if status != "planned":
        expression += " REMOVE gsi2pk, gsi2sk"
    allowed = {f"e{i}": s for i, s in enumerate(expect)}
    condition = "#status IN (" + ", ".join(f":{k}" for k in allowed) + ")"
    return {
        "Update": {
            "TableName": store.table_name(),
            "Key": store.key(pk(patient_id), sk),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": store.values(**sets, **allowed),
        }
    }


def set_touchpoint(
    patient_id: str,
    sk: str,
    status: str,
    reason: str | None,
    *,
    expect: tuple[str, ...] = ("planned",),
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move one touchpoint on from one of `expect`. False when it was already moved (a re-run
    does nothing twice)."""
    action = touchpoint_update(patient_id, sk, status, reason, expect=expect, extra=extra)
    return store.transact([action])


def reschedule_update(touchpoint: dict[str, Any], due: datetime, reason: str) -> dict[str, Any]:
    """The `Update` that moves a planned touchpoint to a later time (in the due index too)."""
    stamp = clock.iso(due)
    sets = {
        "due_at": stamp,
        "gsi2pk": due_bucket(due),
        "gsi2sk": f"{stamp}#{touchpoint['patient_id']}#{touchpoint['id']}",
        "deferred_reason": reason,
        "updated_at": clock.iso(clock.now()),
    }
    return {
        "Update": {
            "TableName": store.table_name(),
            "Key": store.key(
                pk(touchpoint["patient_id"]),
                f"TP#{touchpoint['treatment_id']}#{touchpoint['step']}",
            ),
            "UpdateExpression": "SET " + ", ".join(f"#{k} = :{k}" for k in sets),
            "ConditionExpression": "#status = :planned",
            "ExpressionAttributeNames": {f"#{k}": k for k in sets} | {"#status": "status"},
            "ExpressionAttributeValues": store.values(**sets, planned="planned"),
        }
    }


def last_ad_update(patient_id: str, at: datetime, by: str, cutoff: datetime) -> dict[str, Any]:
    """The `Update` that records an advertising message on the patient, on condition that the
    patient still exists and got none after `cutoff` (the frequency cap)."""
    return {
        "Update": {
            "TableName": store.table_name(),
            "Key": store.key(pk(patient_id), "PAT"),
            "UpdateExpression": "SET #at = :at, #by = :by",
            "ConditionExpression": "attribute_exists(pk) AND "
            "(attribute_not_exists(#at) OR #at <= :cutoff)",
            "ExpressionAttributeNames": {"#at": "last_ad_at", "#by": "last_ad_by"},
            "ExpressionAttributeValues": store.values(
                at=clock.iso(at), by=by, cutoff=clock.iso(cutoff)
            ),
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


def due_touchpoints(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Planned touchpoints due in (since, until]: reads only the due items."""
    return store.query_due("DUE", since, until)


def latest_of_tag(patient_id: str, tag: str) -> str | None:
    """The patient's latest treatment date of `tag`, from their own partition."""
    days = [str(i["date"]) for i in items_of(patient_id, "TRT#") if i.get("tag") == tag]
    return max(days, default=None)


def set_latest_treatment(patient_id: str, tag: str, day: str | None) -> None:
    """Set the patient's latest date of `tag` outright (after a treatment's date moved)."""
    if day is None:
        return
    store.conditional_write(
        "update_item",
        Key=store.key(pk(patient_id), "PAT"),
        UpdateExpression="SET last_treatment.#tag = :day",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#tag": tag},
        ExpressionAttributeValues=store.values(day=day),
    )


def treatments_with_tag(tag: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
    """Treatments of one tag, optionally within dates: one Query (paged) on the tag index."""
    condition = "gsi1pk = :t"
    values: dict[str, Any] = {"t": f"TAG#{tag}"}
    if since or until:
        condition += " AND gsi1sk BETWEEN :lo AND :hi"
        values.update(lo=since or "0000", hi=(until or "9999") + "~")
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "IndexName": "gsi1",
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": store.values(**values),
    }
    return list(store.query_pages(**kwargs))


def add_counts(counts: dict[str, int]) -> None:
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


def counts() -> dict[str, Any]:
    item = (
        store.dynamodb()
        .get_item(TableName=store.table_name(), Key=store.key("STATS", "recall"))
        .get("Item")
    )
    return strip(store.from_item(item)) if item else {}
