"""Message records, opt-outs and the send-rate window, in the records table.

Layout (pk / sk):
- `MSG#<message_id>` / `MSG`: the message record; its `events` list is its history.
  gsi1 `RCPT#<recipient_key>` (per recipient), gsi3 `REF#<kind>#<id>` (per complaint/recall),
  gsi2 `HELD#<UTC hour of release>` while held (sparse: removed on release),
  gsi4 `MSGDAY#<UTC day created>` / `<created_at>#<message_id>` (the messages report reads a
  period's records day by day, never a Scan; written once, with the record).
- `OPTOUT#<recipient_key>` / `<channel>|all`: an opt-out.
- `RATE#<provider>` / `<window>`: send slots taken in that window (see `ratelimit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sotong import clock, consent, store
from sotong.masking import mask_text
from sotong.notify.model import DONE, MessageRequest, recipient_key

LEASE = timedelta(seconds=90)
"""How long a `calling` record is left alone: longer than the sender's function timeout."""
OPT_OUT_CHANNELS = ("sms", "alimtalk", "email", "all")


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message's record: its status now, what it went out on, and every event."""

    message_id: str
    status: str
    attempts: int = 0
    reason: str | None = None
    channel: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    called_at: str | None = None
    lease_until: str | None = None
    release_at: str | None = None
    updated_at: str | None = None
    events: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MessageRecord:
        return cls(
            message_id=str(item["message_id"]),
            status=str(item["status"]),
            attempts=int(item.get("attempts") or 0),
            reason=item.get("reason"),
            channel=item.get("channel"),
            provider=item.get("provider"),
            provider_message_id=item.get("provider_message_id"),
            called_at=item.get("called_at"),
            lease_until=item.get("lease_until"),
            release_at=item.get("release_at"),
            updated_at=item.get("updated_at"),
            events=tuple(item.get("events") or ()),
        )

    def timestamp(self, name: str) -> datetime | None:
        value = getattr(self, name)
        return clock.parse(value) if value else None


class MessageRecords(Protocol):
    """What the sender reads and writes about each message; every write is conditional, so of
    two senders holding the same request only one moves the record."""

    LEASE: timedelta

    def get_many(self, message_ids: list[str]) -> dict[str, MessageRecord]: ...

    def opted_out_many(
        self, hospital_id: str, addresses: list[str]
    ) -> dict[str, frozenset[str]]: ...

    def create(
        self,
        message_id: str,
        request: MessageRequest,
        hospital_id: str,
        status: str,
        reason: str | None = None,
        *,
        held_until: datetime | None = None,
    ) -> bool: ...

    def claim_calling(
        self,
        message_id: str,
        request: MessageRequest,
        hospital_id: str,
        from_status: str | None,
        *,
        channel: str,
        provider: str,
    ) -> bool: ...

    def finish(
        self,
        message_id: str,
        status: str,
        reason: str | None = None,
        *,
        expect: str | None = "calling",
        channel: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
        held_until: datetime | None = None,
        held_request: MessageRequest | None = None,
    ) -> bool: ...


class DynamoMessageRecords:
    """`MessageRecords` in the records table (the layout above)."""

    LEASE = LEASE

    def get_many(self, message_ids: list[str]) -> dict[str, MessageRecord]:
        return {mid: MessageRecord.from_item(item) for mid, item in get_many(message_ids).items()}

    def opted_out_many(self, hospital_id: str, addresses: list[str]) -> dict[str, frozenset[str]]:
        return opted_out_many(hospital_id, addresses)

    def create(
        self,
        message_id: str,
        request: MessageRequest,
        hospital_id: str,
        status: str,
        reason: str | None = None,
        *,
        held_until: datetime | None = None,
    ) -> bool:
        fields = hold_fields(message_id, held_until, request) if held_until else {}
        return create(message_id, request, hospital_id, status, reason, **fields)

    def claim_calling(
        self,
        message_id: str,
        request: MessageRequest,
        hospital_id: str,
        from_status: str | None,
        *,
        channel: str,
        provider: str,
    ) -> bool:
        return claim_calling(
            message_id, request, hospital_id, from_status, channel=channel, provider=provider
        )

    def finish(
        self,
        message_id: str,
        status: str,
        reason: str | None = None,
        *,
        expect: str | None = "calling",
        channel: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
        held_until: datetime | None = None,
        held_request: MessageRequest | None = None,
    ) -> bool:
        return finish(
            message_id,
            status,
            reason,
            expect=expect,
            channel=channel,
            provider=provider,
            provider_message_id=provider_message_id,
            held_until=held_until,
            held_request=held_request.model_dump(mode="json") if held_request else None,
        )


def _pk(message_id: str) -> str:
    return f"MSG#{message_id}"


def held_bucket(at: datetime) -> str:
    return store.hour_bucket("HELD", at)


def day_bucket(stamp: str) -> str:
    """The messages report's partition (gsi4) of a record created at `stamp` (UTC ISO)."""
    return f"MSGDAY#{stamp[:10]}"


def created_between(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every record created in [since, until), whole: one Query per UTC day on gsi4."""
    low, high = clock.iso(since), clock.iso(until)
    found: list[dict[str, Any]] = []
    day = since.astimezone(UTC).date()
    while day.isoformat() <= high[:10]:
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": "gsi4",
            "KeyConditionExpression": "gsi4pk = :d AND gsi4sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": store.values(
                d=f"MSGDAY#{day.isoformat()}", lo=low, hi=high
            ),
        }
        found += [r for r in store.query_pages(**kwargs) if low <= str(r["created_at"]) < high]
        day += timedelta(days=1)
    return found


def _event(status: str, reason: str | None, at: str) -> dict[str, Any]:
    return {"status": status, "at": at, "reason": reason}


def get(message_id: str) -> dict[str, Any] | None:
    response = store.dynamodb().get_item(
        TableName=store.table_name(), Key=store.key(_pk(message_id), "MSG"), ConsistentRead=True
    )
    item = response.get("Item")
    return store.from_item(item) if item else None


def _new_item(
    message_id: str, request: MessageRequest, hospital_id: str, status: str, stamp: str
) -> dict[str, Any]:
    recipient = request.recipient
    address = recipient.phone or recipient.email or ""
    rkey = recipient_key(hospital_id, address)
    item: dict[str, Any] = {
        "pk": _pk(message_id),
        "sk": "MSG",
        "message_id": message_id,
        "status": status,
        "attempts": 0,
        "template_id": request.template_id,
        "purpose": request.purpose,
        "recipient_kind": recipient.kind,
        "recipient": mask_text(address),
        "patient_id": recipient.patient_id,
        "refs": request.refs or None,
        "created_at": stamp,
        "updated_at": stamp,
        "gsi1pk": f"RCPT#{rkey}",
        "gsi1sk": f"{stamp}#{message_id}",
        "gsi4pk": day_bucket(stamp),
        "gsi4sk": f"{stamp}#{message_id}",
    }
    if request.refs:
        kind, ref = sorted(request.refs.items())[0]
        item["gsi3pk"] = f"REF#{kind}#{ref}"
        item["gsi3sk"] = f"{stamp}#{message_id}"
    return item


def get_many(message_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of these messages that exist (strongly consistent), by message id."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(message_ids), 100):
        keys = [store.key(_pk(m), "MSG") for m in dict.fromkeys(message_ids[start : start + 100])]
        for item in store.batch_get(keys, consistent=True):
            found[str(item["message_id"])] = item
    return found


def opted_out_many(hospital_id: str, addresses: list[str]) -> dict[str, frozenset[str]]:
    """Each address's opt-outs (`sms`, `alimtalk`, `email`, `all`), in batched reads."""
    by_pk = {f"OPTOUT#{recipient_key(hospital_id, a)}": a for a in addresses}
    keys = [store.key(p, channel) for p in by_pk for channel in OPT_OUT_CHANNELS]
    channels: dict[str, set[str]] = {a: set() for a in addresses}
    for item in store.batch_get(keys, consistent=True):
        channels[by_pk[item["pk"]]].add(str(item["sk"]))
    return {a: frozenset(c) for a, c in channels.items()}


def create(
    message_id: str,
    request: MessageRequest,
    hospital_id: str,
    status: str,
    reason: str | None = None,
    /,
    **sets: Any,
) -> bool:
    """Write a new record straight into `status` (False when one exists already)."""
    stamp = clock.iso(clock.now())
    item = _new_item(message_id, request, hospital_id, status, stamp)
    item.update({k: v for k, v in sets.items() if v is not None})
    item["reason"] = reason
    item["events"] = [_event(status, reason, stamp)]
    if status == "calling":
        item["attempts"] = 1
    return store.put_new(item)


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
    return store.conditional_write(
        "update_item",
        Key=store.key(_pk(message_id), "MSG"),
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=store.values(**vals),
        **kwargs,
    )


def claim_calling(
    message_id: str,
    request: MessageRequest,
    hospital_id: str,
    from_status: str | None,
    *,
    channel: str,
    provider: str,
) -> bool:
    """Take the message for a provider call, just before making it: a new record, or one in
    `from_status` (retry, held, uncertain the provider said it does not have). One sender wins."""
    now = clock.now()
    sets = {
        "lease_until": clock.iso(now + LEASE),
        "called_at": clock.iso(now),
        "channel": channel,
        "provider": provider,
    }
    if from_status is None:
        return create(message_id, request, hospital_id, "calling", None, **sets)
    stamp = clock.iso(now)
    return _update(
        message_id,
        {"status": "calling", "updated_at": stamp, **sets},
        add={"attempts": 1},
        remove=("gsi2pk", "gsi2sk"),
        append_event=_event("calling", None, stamp),
        condition="#status = :from_status",
        condition_values={"from_status": from_status},
    )


def finish(
    message_id: str,
    status: str,
    reason: str | None = None,
    *,
    expect: str | None = "calling",
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
        sets.update(hold_fields(message_id, held_until, held_request))
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


def hold_fields(
    message_id: str, held_until: datetime, request: MessageRequest | dict[str, Any] | None
) -> dict[str, Any]:
    """What a held record carries: when it is released, on the sparse release index."""
    release = clock.iso(held_until)
    return {
        "release_at": release,
        "gsi2pk": held_bucket(held_until),
        "gsi2sk": f"{release}#{message_id}",
        "request": request.model_dump(mode="json")
        if isinstance(request, MessageRequest)
        else request,
    }


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


def record_opt_out(
    hospital_id: str, address: str, channel: str, source: consent.Source, by: str | None = None
) -> None:
    """Record the refusal, and the change in the consent audit (unless it was refused before)."""
    response = store.dynamodb().put_item(
        TableName=store.table_name(),
        Item=store.to_item(
            {
                "pk": f"OPTOUT#{recipient_key(hospital_id, address)}",
                "sk": channel,
                "source": source,
                "at": clock.iso(clock.now()),
            }
        ),
        ReturnValues="ALL_OLD",
    )
    if not response.get("Attributes"):
        consent.put_all(
            [
                consent.change(
                    hospital_id,
                    address,
                    scope=f"opt_out:{channel}",
                    old="allowed",
                    new="refused",
                    source=source,
                    by=by,
                )
            ]
        )


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


def all_in_index(index: str, partition: str) -> list[dict[str, Any]]:
    """Every record on one index partition, whole (an erasure reads them to remove them)."""
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "IndexName": index,
        "KeyConditionExpression": f"{index}pk = :p",
        "ExpressionAttributeValues": store.values(p=partition),
    }
    return list(store.query_pages(**kwargs))


def of_recipient(hospital_id: str, address: str) -> list[dict[str, Any]]:
    """Every record to one phone or e-mail address (gsi1 `RCPT#<recipient key>`)."""
    return all_in_index("gsi1", f"RCPT#{recipient_key(hospital_id, address)}")


def of_ref(kind: str, ref: str) -> list[dict[str, Any]]:
    """Every record about one complaint, patient or campaign (gsi3 `REF#<kind>#<id>`)."""
    return all_in_index("gsi3", f"REF#{kind}#{ref}")


def record_key(message_id: str) -> dict[str, Any]:
    return store.key(_pk(message_id), "MSG")


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """A record as staff see it: no keys, no stored request (it holds the contact)."""
    hidden = {"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "request"}
    hidden |= {"gsi4pk", "gsi4sk"}
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
        condition="#status IN (:s1, :s2, :s3, :s4)",
        condition_values={"s1": "sent", "s2": "retry", "s3": "calling", "s4": "uncertain"},
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
