"""Complaints in the records table: the port the desk writes through (`ComplaintRepository`) and
its DynamoDB adapter (`DynamoComplaintRepository`), the one place that knows the key layout.

- `CMP#<id>` / `CMP`: the complaint, with its `history` (every transition: who, when, note).
  gsi1 `INBOX#<department>#<state>` and gsi4 `INBOX#*#<state>` (sort: created_at) for inboxes;
  gsi3 `TRACK#<code>` for patients checking progress; gsi2 `SLA#<hour>` (sparse) for the next
  SLA check.
- `CMP#<id>` / `MSG#<received_at>#<seq>[#<part>]`: each SMS/KakaoTalk message that
  started or joined the complaint, whole (one item per message; a message longer than
  `MESSAGE_PART` characters takes several parts, joined again when read).
- `SENDER#<recipient key>` / `OPEN`: the open complaint an SMS/KakaoTalk sender appends to.
- `CONTACT#<recipient key>` / `CMP#<id>`: a complaint that gave this phone or e-mail (written
  with the complaint), so an erasure finds a person's complaints without a Scan.
- `WATERMARK` / `sla_sweep`: up to when SLA checks have run.
- `LABEL#<yyyy-mm>` / `<at>#<complaint id>`: a staff correction of the classifier, by month (the
  complaint id only: the text stays on the complaint, and goes when it is erased).
- `LIMIT#<name>` / `<window start>`: attempts counted by `hit_rate_limit` (TTL `expires_at`).
- `DIGEST#<department>` / `<yyyy-mm-dd>`: the department's daily digest was queued that day
  (written with its outbox items, refused when it exists: one digest per department per day;
  TTL `expires_at`, 90 days).

A write that causes messages puts their outbox items (`sotong.notify.txoutbox`) in the same
transaction as the complaint, and so do the items that belong with it (contact pointers, the
consent audit, the inbound message and its marker, the sender's open pointer, the label): all are
written or none is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sotong import clock, consent, keys, store
from sotong.complaints.record import Complaint
from sotong.notify import inbound, txoutbox
from sotong.notify.model import MessageRequest

ALL_DEPARTMENTS = "*"
MESSAGE_PART = 20_000
"""Characters of an inbound message per item (a Korean character is 3 bytes of the 400 KB)."""
SLA_WATERMARK = "sla_sweep"
DIGEST_KEEP_S = 90 * 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactConsent:
    """The patient agreed to be contacted at `address` about their complaint (the consent
    audit, `sotong.consent`)."""

    address: str
    source: consent.Source
    by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedText:
    """An SMS/KakaoTalk message a complaint takes: stored whole beside it, and marked handled
    (`sotong.notify.inbound`) in the same write, so it is taken once. `seq` (the complaint's
    message count) orders messages the provider stamped alike."""

    key: str
    seq: int
    received_at: str
    stored_at: str
    channel: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyLink:
    """The recall conversation entry a complaint was made from: marked with the complaint's id
    and urgency in the complaint's own write, refused if the entry is gone (erased meanwhile).
    `partition` and `sort` are its stored key, as the table's stream gave it."""

    partition: str
    sort: str
    urgency: str


class ComplaintRepository(Protocol):
    """Where complaints are kept. Writes return False when the store refused them (a second
    create of an id, a stale `before`, an inbound message taken before): nothing was written."""

    def get(self, complaint_id: str) -> Complaint | None: ...

    def get_many(self, complaint_ids: Sequence[str]) -> list[Complaint]: ...

    def by_code(self, code: str) -> Complaint | None: ...

    def create(
        self,
        complaint: Complaint,
        *,
        messages: Sequence[MessageRequest] = (),
        contact_keys: Sequence[str] = (),
        consents: Sequence[ContactConsent] = (),
        sender_key: str | None = None,
        received: ReceivedText | None = None,
        reply: ReplyLink | None = None,
    ) -> bool:
        """A new complaint, with its outbox `messages`, a contact pointer per recipient key,
        the consent audit, the SMS sender's open pointer, the message that started it."""
        ...

    def replace(
        self,
        before: Complaint,
        after: Complaint,
        *,
        messages: Sequence[MessageRequest] = (),
        sender_key: str | None = None,
        received: ReceivedText | None = None,
        label_at: str | None = None,
    ) -> bool:
        """`after`, only if the stored complaint is still at `before`'s version; with its outbox
        `messages`, the sender's open pointer (waiting for the patient), a message that joined
        it, the correction label of `label_at`."""
        ...

    def inbox(
        self,
        department: str,
        state: str,
        *,
        limit: int,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        urgency: str | None = None,
        channel: str | None = None,
        cursor: str | None = None,
    ) -> tuple[list[Complaint], str | None]:
        """One page, newest first, and the cursor of the next (None: no more). ValueError for
        a cursor that is not one this listing handed out."""
        ...

    def due_sla(self, since: datetime, until: datetime) -> list[Complaint]:
        """Complaints whose next SLA check falls in (since, until]."""
        ...

    def sla_watermark(self) -> datetime | None: ...

    def set_sla_watermark(self, until: datetime) -> None: ...

    def open_for_sender(self, sender_key: str) -> str | None: ...

    def forget_open(self, sender_key: str, complaint_id: str) -> None: ...

    def inbound_seen(self, key: str) -> bool:
        """Was the SMS/KakaoTalk message with this provider key taken before?"""
        ...

    def messages(self, complaint_id: str) -> list[dict[str, Any]]:
        """The complaint's inbound messages in the order received, each whole:
        `{id, received_at, channel, text}`."""
        ...

    def inbound_keys(self, complaint_id: str) -> set[str]: ...

    def corrected_in(self, month: str) -> list[str]:
        """Ids of the complaints staff corrected in a month (yyyy-mm), oldest first."""
        ...

    def complaints_of_contact(self, contact_key: str) -> list[str]: ...

    def erase(
        self, complaint_id: str, contact_keys: Sequence[str], found: Complaint | None
    ) -> dict[str, int]:
        """Delete a complaint (`found`, or only its pointers when it is gone) and everything
        that names it; the items removed by kind."""
        ...

    def hit_rate_limit(self, name: str, window_s: int, limit: int) -> bool:
        """Count one attempt in the current window; True when over the limit."""
        ...

    def open_complaints(self, department: str, limit: int) -> list[Complaint]:
        """Up to `limit` open complaints of a department, newest first (its inbox index)."""
        ...

    def record_digest(self, department: str, day: str, messages: Sequence[MessageRequest]) -> bool:
        """The department's digest of `day` with its outbox `messages`; False (nothing written)
        when that day's digest was written before."""
        ...


# --- the DynamoDB adapter -----------------------------------------------------------------------
CONTACT_PREFIX = "CONTACT#"


def pk(complaint_id: str) -> str:
    return f"CMP#{complaint_id}"


def inbox_key(department: str, state: str) -> str:
    return f"INBOX#{department}#{state}"


def sla_bucket(at: datetime) -> str:
    return store.hour_bucket("SLA", at)


def is_complaint_item(image: Mapping[str, Any]) -> bool:
    """Is this stored item (a stream image, deserialized) a complaint?"""
    return str(image.get("pk", "")).startswith("CMP#") and image.get("sk") == "CMP"


def inbox_scope(
    department: str,
    state: str,
    since: str | None,
    until: str | None,
    status: str | None,
    urgency: str | None,
    channel: str | None = None,
) -> str:
    """What a cursor is bound to: the listing it came from (another department's, another
    state's or another filter's listing is not paged with it)."""
    parts: tuple[str, ...] = (department, state, since or "", until or "", status or "")
    parts += (urgency or "",)
    if channel:  # left out when unset, so the cursors handed out before channels stay good
        parts += (channel,)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def cursor_out(position: Mapping[str, str] | None, scope: str) -> str | None:
    """The next page's cursor: where the page stopped, signed (`keys.sign`), so a client can
    hand it back but not make one up."""
    if not position:
        return None
    return keys.sign(json.dumps({"k": dict(position), "q": scope}, separators=(",", ":")).encode())


def cursor_in(cursor: str, scope: str) -> dict[str, str]:
    """Where a cursor of `cursor_out` points; ValueError for anything else: edited, forged,
    garbled, or from another listing than `scope`."""
    payload = keys.unsign(cursor)
    if payload is None:
        raise ValueError("not a cursor from a previous page")
    data = json.loads(payload)
    if data.get("q") != scope:
        raise ValueError("a cursor from another listing (other department, state or filters)")
    return {str(name): str(value) for name, value in data["k"].items()}


def _strip(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")}


def message_sorts(received: ReceivedText) -> list[tuple[str, str]]:
    """(sort key, text) of each part of an inbound message."""
    text = received.text
    chunks = [text[i : i + MESSAGE_PART] for i in range(0, len(text), MESSAGE_PART)] or [""]
    base = f"MSG#{received.received_at}#{received.seq:06d}"
    return [(base + (f"#{n:04d}" if n else ""), chunk) for n, chunk in enumerate(chunks)]


class DynamoComplaintRepository:
    """`ComplaintRepository` on the records table (`sotong.store`'s client and table)."""

    def __init__(self, hospital_id: str) -> None:
        self.hospital_id = hospital_id

    # --- reading ---------------------------------------------------------------------------------
    def get(self, complaint_id: str) -> Complaint | None:
        item = (
            store.dynamodb()
            .get_item(
                TableName=store.table_name(),
                Key=store.key(pk(complaint_id), "CMP"),
                ConsistentRead=True,
            )
            .get("Item")
        )
        return self._complaint(store.from_item(item)) if item else None

    def get_many(self, complaint_ids: Sequence[str]) -> list[Complaint]:
        ids = list(complaint_ids)
        found: list[Complaint] = []
        for start in range(0, len(ids), 100):
            batch = [store.key(pk(i), "CMP") for i in ids[start : start + 100]]
            found += [self._complaint(item) for item in store.batch_get(batch)]
        return found

    def by_code(self, code: str) -> Complaint | None:
        response = store.dynamodb().query(
            TableName=store.table_name(),
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :p",
            ExpressionAttributeValues=store.values(p=f"TRACK#{code}"),
            Limit=1,
        )
        items = response.get("Items", [])
        return self._complaint(store.from_item(items[0])) if items else None

    def inbox(
        self,
        department: str,
        state: str,
        *,
        limit: int,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        urgency: str | None = None,
        channel: str | None = None,
        cursor: str | None = None,
    ) -> tuple[list[Complaint], str | None]:
        """One Query: newest first, optional date range on the key, status, urgency and channel
        as filters (a page may hold fewer than `limit`; the cursor goes on)."""
        scope = inbox_scope(department, state, since, until, status, urgency, channel)
        start = cursor_in(cursor, scope) if cursor else None
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
        if channel:
            filters.append("#channel = :channel")
            names["#channel"] = "channel"
            vals["channel"] = channel
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
            kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = store.values(**vals)
        if start:
            kwargs["ExclusiveStartKey"] = {name: {"S": value} for name, value in start.items()}
        response = store.dynamodb().query(**kwargs)
        items = [self._complaint(store.from_item(i)) for i in response.get("Items", [])]
        stopped = response.get("LastEvaluatedKey")
        position = {name: value["S"] for name, value in stopped.items()} if stopped else None
        return items, cursor_out(position, scope)

    def due_sla(self, since: datetime, until: datetime) -> list[Complaint]:
        return [self._complaint(item) for item in store.query_due("SLA", since, until)]

    def sla_watermark(self) -> datetime | None:
        return store.watermark(SLA_WATERMARK)

    def set_sla_watermark(self, until: datetime) -> None:
        store.set_watermark(SLA_WATERMARK, until)

    def open_for_sender(self, sender_key: str) -> str | None:
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

    def inbound_seen(self, key: str) -> bool:
        return inbound.seen(key)

    def messages(self, complaint_id: str) -> list[dict[str, Any]]:
        found = store.query_pages(
            TableName=store.table_name(),
            KeyConditionExpression="pk = :p AND begins_with(sk, :m)",
            ExpressionAttributeValues=store.values(p=pk(complaint_id), m="MSG#"),
            ConsistentRead=True,
        )
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

    def inbound_keys(self, complaint_id: str) -> set[str]:
        return {str(m["id"]) for m in self.messages(complaint_id)}

    def corrected_in(self, month: str) -> list[str]:
        found = store.query_pages(
            TableName=store.table_name(),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=store.values(pk=f"LABEL#{month}"),
        )
        return list(dict.fromkeys(str(item["complaint_id"]) for item in found))

    def complaints_of_contact(self, contact_key: str) -> list[str]:
        found = store.query_pages(
            TableName=store.table_name(),
            KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
            ExpressionAttributeValues=store.values(pk=CONTACT_PREFIX + contact_key, c="CMP#"),
            ConsistentRead=True,
        )
        return [str(item["complaint_id"]) for item in found]

    @staticmethod
    def _complaint(item: Mapping[str, Any]) -> Complaint:
        return Complaint.from_item(_strip(item))

    # --- writing ---------------------------------------------------------------------------------
    def create(
        self,
        complaint: Complaint,
        *,
        messages: Sequence[MessageRequest] = (),
        contact_keys: Sequence[str] = (),
        consents: Sequence[ContactConsent] = (),
        sender_key: str | None = None,
        received: ReceivedText | None = None,
        reply: ReplyLink | None = None,
    ) -> bool:
        cid = complaint.id
        actions = [store.put_action(self._full(complaint), "attribute_not_exists(pk)")]
        if sender_key:
            actions.append(self._remember_open(sender_key, cid))
        for key in contact_keys:
            item = {"pk": CONTACT_PREFIX + key, "sk": f"CMP#{cid}", "complaint_id": cid}
            actions.append(store.put_action(item))
        for given in consents:
            audit = consent.change(
                self.hospital_id,
                given.address,
                scope="complaint_contact",
                old=None,
                new=True,
                source=given.source,
                by=given.by,
            )
            actions.append(store.put_action({**audit, "complaint_id": cid}))
        if received is not None:
            actions += self._received(cid, received)
        if reply is not None:
            actions.append(
                store.update_action(
                    {"pk": reply.partition, "sk": reply.sort},
                    "SET complaint_id = :c, urgency = :u",
                    "attribute_exists(pk)",
                    c=cid,
                    u=reply.urgency,
                )
            )
        return self._commit(actions, messages)

    def replace(
        self,
        before: Complaint,
        after: Complaint,
        *,
        messages: Sequence[MessageRequest] = (),
        sender_key: str | None = None,
        received: ReceivedText | None = None,
        label_at: str | None = None,
    ) -> bool:
        put = store.put_action(self._full(after), "#v = :v", v=before.version)
        put["Put"]["ExpressionAttributeNames"] = {"#v": "version"}
        actions = [put]
        if sender_key:
            actions.append(self._remember_open(sender_key, after.id))
        if received is not None:
            actions += self._received(after.id, received)
        if label_at:
            actions.append(store.put_action(self._label(after.id, label_at)))
        return self._commit(actions, messages)

    def forget_open(self, sender_key: str, complaint_id: str) -> None:
        store.conditional_write(
            "delete_item",
            Key=store.key(f"SENDER#{sender_key}", "OPEN"),
            ConditionExpression="complaint_id = :c",
            ExpressionAttributeValues=store.values(c=complaint_id),
        )

    def hit_rate_limit(self, name: str, window_s: int, limit: int) -> bool:
        now = int(clock.now().timestamp())
        window = now - now % window_s
        return not store.conditional_write(
            "update_item",
            Key=store.key(f"LIMIT#{name}", str(window)),
            UpdateExpression="ADD attempts :one SET expires_at = :exp",
            ConditionExpression="attribute_not_exists(attempts) OR attempts < :limit",
            ExpressionAttributeValues=store.values(one=1, exp=window + window_s * 2, limit=limit),
        )

    def open_complaints(self, department: str, limit: int) -> list[Complaint]:
        found = store.query_pages(
            TableName=store.table_name(),
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues=store.values(p=inbox_key(department, "open")),
            ScanIndexForward=False,
            Limit=min(limit, 500),
        )
        items: list[Complaint] = []
        for item in found:
            items.append(self._complaint(item))
            if len(items) >= limit:
                break
        return items

    def record_digest(self, department: str, day: str, messages: Sequence[MessageRequest]) -> bool:
        expires = int(clock.now().timestamp()) + DIGEST_KEEP_S
        marker = {"pk": f"DIGEST#{department}", "sk": day, "expires_at": expires}
        return self._commit([store.put_action(marker, "attribute_not_exists(pk)")], messages)

    def erase(
        self, complaint_id: str, contact_keys: Sequence[str], found: Complaint | None
    ) -> dict[str, int]:
        """Its partition (the complaint, every inbound message), its contact pointers, its
        open-sender pointer, its correction label, its tracking code's rate-limit windows. The
        inbound message keys it held are left to the caller (`inbound_keys`)."""
        cid = complaint_id
        removed: dict[str, int] = {}
        parts = self._partition_keys(pk(cid))
        removed["complaint_messages"] = sum(1 for k in parts if k["sk"]["S"].startswith("MSG#"))
        doomed = list(parts)
        for key in contact_keys:
            doomed.append(store.key(CONTACT_PREFIX + key, f"CMP#{cid}"))
            self.forget_open(key, cid)
        at = found.corrected_at if found else None
        if at:
            label = self._label(cid, at)
            doomed.append(store.key(label["pk"], label["sk"]))
        code = found.code if found else ""
        windows = []
        if (
            code
        ):  # the tracking lock's failures (complaints/tracking.py), and the older per-code limit
            windows = self._partition_keys(f"TRACKFAIL#{code}")
            windows += self._partition_keys(f"LIMIT#track-code:{code.upper().replace('-', '')}")
        removed["rate_limit_windows"] = len(windows)
        doomed += windows
        _delete(doomed)
        return removed

    # --- the layout -----------------------------------------------------------------------------
    @staticmethod
    def index_fields(complaint: Complaint) -> dict[str, Any]:
        """The index attributes a complaint carries in its current state."""
        sort = f"{complaint.created_at}#{complaint.id}"
        fields: dict[str, Any] = {
            "gsi1pk": inbox_key(complaint.department, complaint.state),
            "gsi1sk": sort,
            "gsi4pk": inbox_key(ALL_DEPARTMENTS, complaint.state),
            "gsi4sk": sort,
            "gsi3pk": f"TRACK#{complaint.code}",
            "gsi3sk": "CMP",
        }
        next_check = complaint.sla_next_check
        if next_check:
            fields["gsi2pk"] = sla_bucket(clock.parse(next_check))
            fields["gsi2sk"] = f"{next_check}#{complaint.id}"
        return fields

    @classmethod
    def _full(cls, complaint: Complaint) -> dict[str, Any]:
        return {
            "pk": pk(complaint.id),
            "sk": "CMP",
            **complaint.to_item(),
            **cls.index_fields(complaint),
        }

    @staticmethod
    def _label(complaint_id: str, at: str) -> dict[str, Any]:
        return {"pk": f"LABEL#{at[:7]}", "sk": f"{at}#{complaint_id}", "complaint_id": complaint_id}

    @staticmethod
    def _remember_open(sender_key: str, complaint_id: str) -> dict[str, Any]:
        return store.put_action(
            {"pk": f"SENDER#{sender_key}", "sk": "OPEN", "complaint_id": complaint_id}
        )

    @staticmethod
    def _received(complaint_id: str, received: ReceivedText) -> list[dict[str, Any]]:
        """`Put`s of one inbound message under its complaint, whole in parts of `MESSAGE_PART`,
        and its marker: each refused when it exists (the message was taken before)."""
        sorts = message_sorts(received)
        puts = []
        for n, (sort, chunk) in enumerate(sorts):
            entry: dict[str, Any] = {
                "pk": pk(complaint_id),
                "sk": sort,
                "key": received.key,
                "part": n,
                "parts": len(sorts),
                "received_at": received.received_at,
                "stored_at": received.stored_at,
                "channel": received.channel,
                "text": chunk,
            }
            puts.append(store.put_action(entry, "attribute_not_exists(pk)"))
        puts.append(inbound.marker_action(received.key, "complaint", complaint_id=complaint_id))
        return puts

    def _commit(
        self, actions: Sequence[dict[str, Any]], messages: Sequence[MessageRequest]
    ) -> bool:
        """The complaint's write and its outbox items in one transaction."""
        return store.transact([*actions, *txoutbox.actions(self.hospital_id, messages)])

    @staticmethod
    def _partition_keys(partition: str) -> list[dict[str, Any]]:
        found = store.query_pages(
            TableName=store.table_name(),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=store.values(pk=partition),
            ProjectionExpression="pk, sk",
            ConsistentRead=True,
        )
        return [store.key(item["pk"], item["sk"]) for item in found]


def _delete(doomed: Iterable[dict[str, Any]]) -> None:
    """BatchWriteItem deletes, 25 a request, unprocessed ones sent again (no store helper yet)."""
    items = list(doomed)
    for start in range(0, len(items), 25):
        pending: Any = [{"DeleteRequest": {"Key": k}} for k in items[start : start + 25]]
        while pending:
            response = store.dynamodb().batch_write_item(RequestItems={store.table_name(): pending})
            pending = response.get("UnprocessedItems", {}).get(store.table_name(), [])
