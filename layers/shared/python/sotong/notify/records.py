"""Message records, opt-outs and the send-rate window, in the records table.

Layout (pk / sk):
- `MSG#<message_id>` / `MSG`: the message record; its `events` list is its history.
  gsi1 `RCPT#<recipient_key>` (per recipient), gsi3 `REF#<kind>#<id>` (per complaint/recall),
  gsi2 `HELD#<UTC hour of release>` while held (sparse: removed on release).
- `OPTOUT#<recipient_key>` / `<channel>|all`: an opt-out.
- `RATE#<provider>` / `<epoch second>`: messages sent in that second (expires).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sotong import clock, store
from sotong.masking import mask_text
from sotong.notify.model import DONE, MessageRequest, recipient_key

LEASE = timedelta(seconds=90)


def _pk(message_id: str) -> str:
    return f"MSG#{message_id}"


def held_bucket(at: datetime) -> str:
    return store.hour_bucket("HELD", at)


def _event(status: str, reason: str | None, at: str) -> dict[str, Any]:
    return {"status": status, "at": at, "reason": reason}


def get(message_id: str) -> dict[str, Any] | None:
    response = store.dynamodb().get_item(
        TableName=store.table_name(), Key=store.key(_pk(message_id), "MSG"), ConsistentRead=True
    )
    item = response.get("Item")
    return store.from_item(item) if item else None


def claim(message_id: str, request: MessageRequest, hospital_id: str) -> dict[str, Any] | None:
    """Create the record as `sending` if it is new. Returns None when this call claimed it,
    else the existing record (the caller decides from its status)."""
    now = clock.now()
    stamp = clock.iso(now)
    recipient = request.recipient
    address = recipient.phone or recipient.email or ""
    rkey = recipient_key(hospital_id, address)
    item: dict[str, Any] = {
        "pk": _pk(message_id),
        "sk": "MSG",
        "message_id": message_id,
        "status": "sending",
        "lease_until": clock.iso(now + LEASE),
        "attempts": 1,
        "template_id": request.template_id,
        "purpose": request.purpose,
        "recipient_kind": recipient.kind,
        "recipient": mask_text(address),
        "refs": request.refs or None,
        "created_at": stamp,
        "updated_at": stamp,
        "events": [_event("sending", None, stamp)],
        "gsi1pk": f"RCPT#{rkey}",
        "gsi1sk": f"{stamp}#{message_id}",
    }
    if request.refs:
        kind, ref = sorted(request.refs.items())[0]
        item["gsi3pk"] = f"REF#{kind}#{ref}"
        item["gsi3sk"] = f"{stamp}#{message_id}"
    try:
        store.dynamodb().put_item(
            TableName=store.table_name(),
            Item=store.to_item(item),
            ConditionExpression="attribute_not_exists(pk)",
        )
        return None
    except ClientError as error:
        if not store.conditional_failed(error):
            raise
    return get(message_id) or {"status": "sending", "lease_until": clock.iso(now + LEASE)}


def _update(
    message_id: str,
    sets: dict[str, Any],
    *,
    add: dict[str, int] | None = None,
    remove: tuple[str, ...] = (),
    append_event: dict[str, Any],
    condition: str | None = None,
    condition_values: dict[str, Any] | None = None,
) -> bool:
    """One UpdateItem with every attribute name aliased (DynamoDB reserves many plain words)."""
    names: dict[str, str] = {"#events": "events", "#status": "status"}
    vals: dict[str, Any] = {"ev": [append_event]}
    parts = ["#events = list_append(#events, :ev)"]
    for name, value in sets.items():
        names[f"#{name}"] = name
        vals[f"v_{name}"] = value
        parts.append(f"#{name} = :v_{name}")
    expression = "SET " + ", ".join(parts)
    if add:
        for name, amount in add.items():
            names[f"#{name}"] = name
            vals[f"a_{name}"] = amount
        expression += " ADD " + ", ".join(f"#{n} :a_{n}" for n in add)
    if remove:
        names.update({f"#{n}": n for n in remove})
        expression += " REMOVE " + ", ".join(f"#{n}" for n in remove)
    kwargs: dict[str, Any] = {}
    if condition:
        kwargs["ConditionExpression"] = condition
        names.update({f"#{n}": n for n in ("lease_until", "reason") if f"#{n}" in condition})
        vals.update(condition_values or {})
    try:
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(_pk(message_id), "MSG"),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=store.values(**vals),
            **kwargs,
        )
        return True
    except ClientError as error:
        if store.conditional_failed(error):
            return False
        raise


def reclaim(message_id: str, from_status: str) -> bool:
    """Take a `held` or `retry` record back to `sending` (only one sender wins)."""
    now = clock.now()
    stamp = clock.iso(now)
    return _update(
        message_id,
        {"status": "sending", "lease_until": clock.iso(now + LEASE), "updated_at": stamp},
        add={"attempts": 1},
        append_event=_event("sending", None, stamp),
        condition="#status = :from_status",
        condition_values={"from_status": from_status},
    )


def finish(
    message_id: str,
    status: str,
    reason: str | None = None,
    *,
    expect: str | None = "sending",
    channel: str | None = None,
    provider: str | None = None,
    provider_message_id: str | None = None,
    held_until: datetime | None = None,
    held_request: dict[str, Any] | None = None,
) -> bool:
    """Move a record to `status`, appending the event; only from `expect` when given."""
    stamp = clock.iso(clock.now())
    sets: dict[str, Any] = {"status": status, "updated_at": stamp}
    optional = {
        "reason": reason,
        "channel": channel,
        "provider": provider,
        "provider_message_id": provider_message_id,
    }
    sets.update({k: v for k, v in optional.items() if v is not None})
    remove: tuple[str, ...] = ("lease_until",)
    if held_until is not None:
        release = clock.iso(held_until)
        sets.update(
            release_at=release,
            gsi2pk=held_bucket(held_until),
            gsi2sk=f"{release}#{message_id}",
            request=held_request,
        )
    else:
        remove += ("gsi2pk", "gsi2sk")
        if status in DONE:
            remove += ("request",)
    return _update(
        message_id,
        sets,
        remove=remove,
        append_event=_event(status, reason, stamp),
        condition="#status = :expect" if expect is not None else None,
        condition_values={"expect": expect} if expect is not None else None,
    )


def due_held(until: datetime, since: datetime) -> list[dict[str, Any]]:
    """Held records released in (since, until]."""
    return [r for r in store.query_due("HELD", since, until) if r.get("status") == "held"]


def opted_out_channels(hospital_id: str, address: str) -> frozenset[str]:
    response = store.dynamodb().query(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=f"OPTOUT#{recipient_key(hospital_id, address)}"),
        ConsistentRead=True,
    )
    return frozenset(store.from_item(i)["sk"] for i in response.get("Items", []))


def record_opt_out(hospital_id: str, address: str, channel: str, source: str) -> None:
    store.dynamodb().put_item(
        TableName=store.table_name(),
        Item=store.to_item(
            {
                "pk": f"OPTOUT#{recipient_key(hospital_id, address)}",
                "sk": channel,
                "source": source,
                "at": clock.iso(clock.now()),
            }
        ),
    )


def take_send_slot(provider: str, limit_per_second: float) -> float:
    """Count this send in the provider's current one-second window, shared by every concurrent
    sender. Returns 0 when the slot was taken, else the seconds to wait for the next window."""
    now = clock.now().timestamp()
    second = int(now)
    try:
        store.dynamodb().update_item(
            TableName=store.table_name(),
            Key=store.key(f"RATE#{provider}", str(second)),
            UpdateExpression="ADD sent :one SET expires_at = :exp",
            ConditionExpression="attribute_not_exists(sent) OR sent < :limit",
            ExpressionAttributeValues=store.values(
                one=1, exp=second + 120, limit=max(1, int(limit_per_second))
            ),
        )
        return 0.0
    except ClientError as error:
        if store.conditional_failed(error):
            return max(0.01, second + 1 - now)
        raise


def by_index(index: str, partition: str, limit: int = 50) -> list[dict[str, Any]]:
    response = store.dynamodb().query(
        TableName=store.table_name(),
        IndexName=index,
        KeyConditionExpression=f"{index}pk = :p",
        ExpressionAttributeValues=store.values(p=partition),
        ScanIndexForward=False,
        Limit=limit,
    )
    return [public_view(store.from_item(i)) for i in response.get("Items", [])]


def for_recipient(hospital_id: str, address: str, limit: int = 50) -> list[dict[str, Any]]:
    return by_index("gsi1", f"RCPT#{recipient_key(hospital_id, address)}", limit)


def for_ref(kind: str, ref: str, limit: int = 50) -> list[dict[str, Any]]:
    return by_index("gsi3", f"REF#{kind}#{ref}", limit)


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """A record as staff see it: no keys, no stored request (it holds the contact)."""
    hidden = {"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "request"}
    return {k: v for k, v in record.items() if k not in hidden}


def apply_report(
    message_id: str, status: str, reason: str | None, channel: str | None = None
) -> bool:
    """A provider's delivery report: moves a record that is not final yet (sent, or still being
    retried, so that a retry after an uncertain timeout finds the first attempt delivered)."""
    stamp = clock.iso(clock.now())
    sets: dict[str, Any] = {"status": status, "updated_at": stamp}
    if reason:
        sets["reason"] = reason
    if channel:
        sets["delivered_channel"] = channel
    return _update(
        message_id,
        sets,
        remove=("lease_until", "gsi2pk", "gsi2sk", "request"),
        append_event=_event(status, reason, stamp),
        condition="#status IN (:s1, :s2, :s3)",
        condition_values={"s1": "sent", "s2": "retry", "s3": "sending"},
    )


def reopen_for_replay(message_id: str) -> bool:
    """A message that ran out of retries goes back to `retry`, so a replayed request sends it."""
    stamp = clock.iso(clock.now())
    return _update(
        message_id,
        {"status": "retry", "updated_at": stamp},
        append_event=_event("retry", "replayed from the dead-letter queue", stamp),
        condition="#status = :failed AND begins_with(#reason, :exhausted)",
        condition_values={"failed": "failed", "exhausted": "retries_exhausted"},
    )
