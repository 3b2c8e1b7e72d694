"""Patients, treatments, touchpoints and conversations in the records table.

Everything about one patient lives under `PAT#<id>`, so erasing a patient is one partition:
- `PAT` the patient (gsi3 `PHONE#<recipient key>` to find them from an inbound message);
- `TRT#<treatment id>` a treatment (gsi1 `TAG#<tag>` / `<date>#<patient>` for segments);
- `TP#<treatment id>#<step>` a touchpoint (gsi2 `DUE#<UTC hour>` / `<due_at>#...` while planned:
  a sparse, time-bucketed index the dispatcher reads from its watermark, never a Scan);
- `APT#<at>#<kind>` a booking or visit; `CONV#<at>` a message in the conversation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from sotong import clock, store


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
    try:
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(pk(patient_id), "PAT"),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=store.values(**sets),
            **kwargs,
        )
        return True
    except ClientError as error:
        if store.conditional_failed(error):
            return False
        raise


def note_treatment(patient_id: str, tag: str, day: str) -> None:
    """Remember the latest date of each tag on the patient (for `repeat_treatment`)."""
    try:
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(pk(patient_id), "PAT"),
            UpdateExpression="SET last_treatment.#tag = :day",
            ConditionExpression=(
                "attribute_exists(pk) AND (attribute_not_exists(last_treatment.#tag) "
                "OR last_treatment.#tag < :day)"
            ),
            ExpressionAttributeNames={"#tag": tag},
            ExpressionAttributeValues=store.values(day=day),
        )
    except ClientError as error:
        if not store.conditional_failed(error):
            raise


def later_of(patient_id: str, attribute: str, at: str) -> None:
    """Set `attribute` to `at` unless it already holds a later time."""
    try:
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(pk(patient_id), "PAT"),
            UpdateExpression="SET #a = :at",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#a) OR #a < :at)",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues=store.values(at=at),
        )
    except ClientError as error:
        if not store.conditional_failed(error):
            raise


def patient_by_phone(phone_key: str) -> dict[str, Any] | None:
    response = store.dynamodb().query(
        TableName=store.table_name(),
        IndexName="gsi3",
        KeyConditionExpression="gsi3pk = :p",
        ExpressionAttributeValues=store.values(p=f"PHONE#{phone_key}"),
    )
    items = [strip(store.from_item(i)) for i in response.get("Items", [])]
    return max(items, key=lambda p: p.get("updated_at", "")) if items else None


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
    while True:
        page = store.dynamodb().query(**kwargs)
        for item in page.get("Items", []):
            yield store.from_item(item)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def set_touchpoint(
    patient_id: str,
    sk: str,
    status: str,
    reason: str | None,
    *,
    expect: tuple[str, ...] = ("planned",),
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move a touchpoint on from one of `expect`, leaving the due index when it stops being
    planned. False when it was already moved (a re-run does nothing twice)."""
    sets: dict[str, Any] = {"status": status, "updated_at": clock.iso(clock.now()), **(extra or {})}
    if reason:
        sets["status_reason"] = reason
    names = {f"#{k}": k for k in sets} | {"#status": "status"}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    if status != "planned":
        expression += " REMOVE gsi2pk, gsi2sk"
    allowed = {f"e{i}": s for i, s in enumerate(expect)}
    condition = "#status IN (" + ", ".join(f":{k}" for k in allowed) + ")"
    try:
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(pk(patient_id), sk),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=store.values(**sets, **allowed),
        )
        return True
    except ClientError as error:
        if store.conditional_failed(error):
            return False
        raise


def due_touchpoints(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Planned touchpoints due in (since, until]: reads only the due items."""
    return store.query_due("DUE", since, until)


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
    found: list[dict[str, Any]] = []
    while True:
        page = store.dynamodb().query(**kwargs)
        found += [store.from_item(i) for i in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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
