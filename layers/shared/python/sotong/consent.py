"""The consent audit: every change to what a person allows us to send, with who changed it, when,
through what (staff, the EMR file, the complaint form, a 수신거부 reply, the provider's 080
report, an SES complaint), and the value before and after.

Items live under the person's keyed recipient digest, so they hold nothing personal and an
erasure keeps them as proof that a refusal was honoured:
`CONSENT#<recipient key>` / `<ISO time>#<random>`."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any, Literal

from sotong import clock, store
from sotong.keys import recipient_key
from sotong.phone import normalize_korean_phone

Source = Literal["staff", "import", "form", "inbound", "080", "ses"]
SCOPES = ("contact", "marketing", "night")


def pk(hospital_id: str, address: str) -> str:
    """The person's audit partition: a phone in any spelling, or an e-mail address."""
    if "@" not in address:
        with contextlib.suppress(ValueError):  # not a Korean phone: keyed as given
            address = normalize_korean_phone(address)
    return f"CONSENT#{recipient_key(hospital_id, address)}"


def change(
    hospital_id: str,
    address: str,
    *,
    scope: str,
    old: bool | str | None,
    new: bool | str,
    source: Source,
    by: str | None = None,
    patient_id: str | None = None,
) -> dict[str, Any]:
    """The audit item of one change (to put, or to write in the change's own transaction)."""
    now = clock.iso(clock.now())
    item: dict[str, Any] = {
        "pk": pk(hospital_id, address),
        "sk": f"{now}#{secrets.token_hex(4)}",
        "scope": scope,
        "old": "unset" if old is None else old,
        "new": new,
        "source": source,
        "at": now,
    }
    if by:
        item["by"] = by
    if patient_id:
        item["patient_id"] = patient_id
    return item


def changes_of(
    hospital_id: str,
    address: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    *,
    source: Source,
    by: str | None,
    patient_id: str | None,
) -> list[dict[str, Any]]:
    """Audit items for every scope whose value differs between two consent maps."""
    old = before or {}
    return [
        change(
            hospital_id,
            address,
            scope=scope,
            old=old.get(scope),
            new=bool(after[scope]),
            source=source,
            by=by,
            patient_id=patient_id,
        )
        for scope in SCOPES
        if scope in after and old.get(scope) != after[scope]
    ]


def put_all(items: list[dict[str, Any]]) -> None:
    for item in items:
        store.dynamodb().put_item(TableName=store.table_name(), Item=store.to_item(item))


def history(hospital_id: str, address: str, limit: int = 100) -> list[dict[str, Any]]:
    """The person's consent changes, newest first."""
    response = store.dynamodb().query(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=pk(hospital_id, address)),
        ScanIndexForward=False,
        Limit=limit,
    )
    return [
        {k: v for k, v in store.from_item(i).items() if k not in ("pk", "sk")}
        for i in response.get("Items", [])
    ]


def unlink_patient(hospital_id: str, address: str) -> int:
    """An erasure (`sotong.erasure`): the person's audit items stay, as proof that a refusal was
    honoured, without the patient or complaint they named. Returns the items changed."""
    changed = 0
    paginator = store.dynamodb().get_paginator("query")
    for page in paginator.paginate(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=pk(hospital_id, address)),
        ProjectionExpression="pk, sk",
    ):
        for key in page.get("Items", []):
            if store.conditional_write(
                "update_item",
                Key=key,
                UpdateExpression="REMOVE patient_id, complaint_id",
                ConditionExpression="attribute_exists(patient_id) OR "
                "attribute_exists(complaint_id)",
            ):
                changed += 1
    return changed
