"""Complaints in the records table.

- `CMP#<id>` / `CMP`: the complaint, with its `history` (every transition: who, when, note).
  gsi1 `INBOX#<department>#<state>` and gsi4 `INBOX#*#<state>` (sort: created_at) for inboxes;
  gsi3 `TRACK#<code>` for patients checking progress; gsi2 `SLA#<hour>` (sparse) for the next
  SLA check.
- `CMP#<id>` / `MSG#<received_at>#<seq>[#<part>]`: each SMS/KakaoTalk message that
  started or joined the complaint, whole (one item per message; a message longer than
  `MESSAGE_PART` characters takes several parts, joined again when read).
- `SENDER#<recipient key>` / `OPEN`: the open complaint an SMS/KakaoTalk sender appends to.
- `WATERMARK` / `sla_sweep`: up to when SLA checks have run.
- `LABEL#<yyyy-mm>` / `<at>#<complaint id>`: a staff correction of the classifier, by month (the
  complaint id only: the text stays on the complaint, and goes when it is erased).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sotong import clock, keys, store
from sotong.complaints.model import state_of

ALL_DEPARTMENTS = "*"
MESSAGE_PART = 20_000
"""Characters of an inbound message per item (a Korean character is 3 bytes of the 400 KB)."""


def pk(complaint_id: str) -> str:
    return f"CMP#{complaint_id}"


def inbox_key(department: str, state: str) -> str:
    return f"INBOX#{department}#{state}"


def sla_bucket(at: datetime) -> str:
    return store.hour_bucket("SLA", at)


def index_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The index attributes a complaint carries in its current state."""
    state = state_of(item["status"])
    sort = f"{item['created_at']}#{item['id']}"
    fields: dict[str, Any] = {
        "gsi1pk": inbox_key(item["department"], state),
        "gsi1sk": sort,
        "gsi4pk": inbox_key(ALL_DEPARTMENTS, state),
        "gsi4sk": sort,
        "gsi3pk": f"TRACK#{item['code']}",
        "gsi3sk": "CMP",
    }
    next_check = item.get("sla_next_check")
    if next_check:
        fields["gsi2pk"] = sla_bucket(clock.parse(next_check))
        fields["gsi2sk"] = f"{next_check}#{item['id']}"
    return fields


def _full(item: dict[str, Any]) -> dict[str, Any]:
    return {"pk": pk(item["id"]), "sk": "CMP", **item, **index_fields(item)}


def create_action(item: dict[str, Any]) -> dict[str, Any]:
    """The `Put` of a new complaint, refused when one with that id exists (a retry)."""
    return store.put_action(_full(item), "attribute_not_exists(pk)")


def replace_action(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The `Put` of `after`, refused unless the stored complaint still has `before`'s version."""
    action = store.put_action(_full(after), "#v = :v", v=before["version"])
    action["Put"]["ExpressionAttributeNames"] = {"#v": "version"}
    return action


def label_action(complaint_id: str, at: str) -> dict[str, Any]:
    """The `Put` that lists a staff correction under its month, for the training export."""
    return store.put_action(
        {"pk": f"LABEL#{at[:7]}", "sk": f"{at}#{complaint_id}", "complaint_id": complaint_id}
    )


def corrected_in(month: str) -> list[str]:
    """Ids of the complaints staff corrected in a month (yyyy-mm), oldest first."""
    ids: list[str] = []
    paginator = store.dynamodb().get_paginator("query")
    for page in paginator.paginate(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=f"LABEL#{month}"),
    ):
        ids += [store.from_item(item)["complaint_id"] for item in page.get("Items", [])]
    return list(dict.fromkeys(ids))


def get_many(complaint_ids: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(complaint_ids), 100):
        keys = [store.key(pk(i), "CMP") for i in complaint_ids[start : start + 100]]
        found += [strip(item) for item in store.batch_get(keys)]
    return found


def get(complaint_id: str) -> dict[str, Any] | None:
    item = (
        store.dynamodb()
        .get_item(
            TableName=store.table_name(),
            Key=store.key(pk(complaint_id), "CMP"),
            ConsistentRead=True,
        )
        .get("Item")
    )
    return strip(store.from_item(item)) if item else None


def strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")}


def replace(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Write `after` only if the stored complaint still has `before`'s version."""
    return store.transact([replace_action(before, after)])


def message_actions(
    complaint_id: str,
    *,
    seq: int,
    key: str,
    received_at: str,
    text: str,
    channel: str,
    stored_at: str,
) -> list[dict[str, Any]]:
    """`Put`s of one inbound message under its complaint: whole, in parts of `MESSAGE_PART`.
    `seq` (the complaint's message count) orders messages the provider stamped alike."""
    chunks = [text[i : i + MESSAGE_PART] for i in range(0, len(text), MESSAGE_PART)] or [""]
    puts = []
    for n, chunk in enumerate(chunks):
        sort = f"MSG#{received_at}#{seq:06d}" + (f"#{n:04d}" if n else "")
        entry: dict[str, Any] = {
            "pk": pk(complaint_id),
            "sk": sort,
            "key": key,
            "part": n,
            "parts": len(chunks),
            "received_at": received_at,
            "stored_at": stored_at,
            "channel": channel,
            "text": chunk,
        }
        puts.append(store.put_action(entry, "attribute_not_exists(pk)"))
    return puts


def messages(complaint_id: str) -> list[dict[str, Any]]:
    """The complaint's inbound messages in the order received, each whole again."""
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :m)",
        "ExpressionAttributeValues": store.values(p=pk(complaint_id), m="MSG#"),
        "ConsistentRead": True,
    }
    found: list[dict[str, Any]] = []
    while True:
        page = store.dynamodb().query(**kwargs)
        found += [store.from_item(i) for i in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    whole: list[dict[str, Any]] = []
    for part in found:  # sorted by sk: a message's parts follow each other
        if whole and part.get("part") and whole[-1]["id"] == part["key"]:
            whole[-1]["text"] += part["text"]
            continue
        whole.append(
            {
                "id": part["key"],
                "received_at": part["received_at"],
                "channel": part["channel"],
                "text": part["text"],
            }
        )
    return whole


def by_code(code: str) -> dict[str, Any] | None:
    response = store.dynamodb().query(
        TableName=store.table_name(),
        IndexName="gsi3",
        KeyConditionExpression="gsi3pk = :p",
        ExpressionAttributeValues=store.values(p=f"TRACK#{code}"),
        Limit=1,
    )
    items = response.get("Items", [])
    return strip(store.from_item(items[0])) if items else None


def inbox_scope(
    department: str,
    state: str,
    since: str | None,
    until: str | None,
    status: str | None,
    urgency: str | None,
) -> str:
    """What a cursor is bound to: the listing it came from (another department's, another
    state's or another filter's listing is not paged with it)."""
    parts = (department, state, since or "", until or "", status or "", urgency or "")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _cursor_out(key: dict[str, Any] | None, scope: str) -> str | None:
    """The next page's cursor: the DynamoDB key where the page stopped, signed (`keys.sign`), so
    a client can hand it back but not make one up."""
    if not key:
        return None
    strings = {name: value["S"] for name, value in key.items()}
    return keys.sign(json.dumps({"k": strings, "q": scope}, separators=(",", ":")).encode())


def cursor_in(cursor: str, scope: str) -> dict[str, Any]:
    """The DynamoDB key a cursor of `_cursor_out` carries; ValueError for anything else: edited,
    forged, garbled, or from another listing than `scope`."""
    payload = keys.unsign(cursor)
    if payload is None:
        raise ValueError("not a cursor from a previous page")
    data = json.loads(payload)
    if data.get("q") != scope:
        raise ValueError("a cursor from another listing (other department, state or filters)")
    return {name: {"S": value} for name, value in data["k"].items()}


def inbox(
    department: str,
    state: str,
    *,
    limit: int,
    since: str | None = None,
    until: str | None = None,
    status: str | None = None,
    urgency: str | None = None,
    cursor: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One Query: newest first, optional date range on the key, status/urgency as filters."""
    index = "gsi4" if department == ALL_DEPARTMENTS else "gsi1"
    condition = f"{index}pk = :p"
    vals: dict[str, Any] = {"p": inbox_key(department, state)}
    if since or until:
        condition += f" AND {index}sk BETWEEN :lo AND :hi"
        vals["lo"] = since or "0"
        vals["hi"] = (until or "9999") + "~"
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    filters = []
    names: dict[str, str] = {}
    if status:
        filters.append("#status = :status")
        names["#status"] = "status"
        vals["status"] = status
    if urgency:
        filters.append("#urgency = :urgency")
        names["#urgency"] = "urgency"
        vals["urgency"] = urgency
    if filters:
        kwargs["FilterExpression"] = " AND ".join(filters)
        kwargs["ExpressionAttributeNames"] = names
    kwargs["ExpressionAttributeValues"] = store.values(**vals)
    if cursor:
        kwargs["ExclusiveStartKey"] = cursor
    response = store.dynamodb().query(**kwargs)
    items = [strip(store.from_item(i)) for i in response.get("Items", [])]
    scope = inbox_scope(department, state, since, until, status, urgency)
    return items, _cursor_out(response.get("LastEvaluatedKey"), scope)


def due_sla(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Complaints whose next SLA check falls in (since, until]."""
    return [strip(item) for item in store.query_due("SLA", since, until)]


def open_for_sender(sender_key: str) -> str | None:
    item = (
        store.dynamodb()
        .get_item(
            TableName=store.table_name(),
            Key=store.key(f"SENDER#{sender_key}", "OPEN"),
            ConsistentRead=True,
        )
        .get("Item")
    )
    return str(store.from_item(item)["complaint_id"]) if item else None


def remember_open_action(sender_key: str, complaint_id: str) -> dict[str, Any]:
    """The `Put` of the sender's open-complaint pointer, to join the complaint's own write."""
    return store.put_action(
        {"pk": f"SENDER#{sender_key}", "sk": "OPEN", "complaint_id": complaint_id}
    )


def forget_open(sender_key: str, complaint_id: str) -> None:
    store.conditional_write(
        "delete_item",
        Key=store.key(f"SENDER#{sender_key}", "OPEN"),
        ConditionExpression="complaint_id = :c",
        ExpressionAttributeValues=store.values(c=complaint_id),
    )


def hit_rate_limit(name: str, window_s: int, limit: int) -> bool:
    """Count one attempt in the current window; True when over the limit."""
    now = int(clock.now().timestamp())
    window = now - now % window_s
    return not store.conditional_write(
        "update_item",
        Key=store.key(f"LIMIT#{name}", str(window)),
        UpdateExpression="ADD attempts :one SET expires_at = :exp",
        ConditionExpression="attribute_not_exists(attempts) OR attempts < :limit",
        ExpressionAttributeValues=store.values(one=1, exp=window + window_s * 2, limit=limit),
    )


# --- erasure ------------------------------------------------------------------------------------
CONTACT_PREFIX = "CONTACT#"
"""`CONTACT#<recipient key>` / `CMP#<complaint id>`: a complaint that gave this phone or e-mail
(written with the complaint), so an erasure finds a person's complaints without a Scan."""


def contact_action(contact_key: str, complaint_id: str) -> dict[str, Any]:
    """The `Put` of a complaint's contact pointer, to join the complaint's own write."""
    item = {"pk": CONTACT_PREFIX + contact_key, "sk": f"CMP#{complaint_id}"}
    return store.put_action({**item, "complaint_id": complaint_id})


def complaints_of_contact(contact_key: str) -> list[str]:
    """Ids of the complaints that gave this phone or e-mail (its recipient key)."""
    ids: list[str] = []
    paginator = store.dynamodb().get_paginator("query")
    for page in paginator.paginate(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues=store.values(pk=CONTACT_PREFIX + contact_key, c="CMP#"),
        ConsistentRead=True,
    ):
        ids += [store.from_item(item)["complaint_id"] for item in page.get("Items", [])]
    return ids


def _partition_keys(partition: str) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    paginator = store.dynamodb().get_paginator("query")
    for page in paginator.paginate(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=partition),
        ProjectionExpression="pk, sk",
        ConsistentRead=True,
    ):
        keys += page.get("Items", [])
    return keys


def erase(complaint: dict[str, Any], contact_keys: list[str]) -> dict[str, int]:
    """Delete one complaint and everything that names it: its partition (the complaint, every
    inbound message), its contact pointers, its open-sender pointer, its correction label, its
    tracking code's rate-limit windows. Returns the items removed by kind; the inbound message
    keys it held are left to the caller (`inbound_keys`)."""
    cid = complaint["id"]
    removed: dict[str, int] = {}
    parts = _partition_keys(pk(cid))
    removed["complaint_messages"] = sum(1 for k in parts if k["sk"]["S"].startswith("MSG#"))
    doomed = list(parts)
    for key in contact_keys:
        doomed.append(store.key(CONTACT_PREFIX + key, f"CMP#{cid}"))
        forget_open(key, cid)
    at = (complaint.get("correction") or {}).get("at")
    if isinstance(at, str):
        doomed.append(store.key(f"LABEL#{at[:7]}", f"{at}#{cid}"))
    code = str(complaint.get("code") or "")
    windows = []
    if code:  # the tracking lock's failures (complaints/tracking.py), and the older per-code limit
        windows = _partition_keys(f"TRACKFAIL#{code}")
        windows += _partition_keys(f"LIMIT#track-code:{code.upper().replace('-', '')}")
    removed["rate_limit_windows"] = len(windows)
    doomed += windows
    for start in range(0, len(doomed), 25):
        pending: Any = [{"DeleteRequest": {"Key": k}} for k in doomed[start : start + 25]]
        while pending:
            response = store.dynamodb().batch_write_item(RequestItems={store.table_name(): pending})
            pending = response.get("UnprocessedItems", {}).get(store.table_name(), [])
    return removed


def inbound_keys(complaint_id: str) -> set[str]:
    """The inbound message keys (provider ids) of a complaint's SMS/KakaoTalk messages."""
    return {str(m["id"]) for m in messages(complaint_id)}
