"""Storage plumbing: one DynamoDB client per process, item (de)serialisation, table names.

Domain repositories build on this; nothing else talks to DynamoDB directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from sotong.clock import iso, parse, unshifted
from sotong.resources import MAIN, Table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@cache
def dynamodb() -> DynamoDBClient:
    import boto3

    return boto3.client("dynamodb")


def table_name(table: Table = MAIN) -> str:
    return os.environ[table.env]


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo(v) for v in value}
    return value


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """Plain dict -> DynamoDB attribute map (None values dropped, floats as Decimal)."""
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def values(**kwargs: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments: values(s="x") -> {":s": {"S": "x"}}."""
    return {f":{k}": _serializer.serialize(_to_dynamo(v)) for k, v in kwargs.items()}


def conditional_failed(error: Exception) -> bool:
    """True when a write was refused by its condition (the expected outcome of a repeat)."""
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def conditional_write(
    call: Literal["put_item", "update_item", "delete_item"], **params: Any
) -> bool:
    """One conditional write (on the main table unless `params` name another); False when
    its condition refused it (the expected outcome of a repeat or a lost race); any other
    error raises."""
    try:
        getattr(dynamodb(), call)(**{"TableName": table_name(), **params})
        return True
    except Exception as error:
        if conditional_failed(error):
            return False
        raise


def put_new(item: dict[str, Any]) -> bool:
    """Put an item that must not exist yet; False when it does (an idempotent repeat)."""
    return conditional_write(
        "put_item", Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
    )


def hour_bucket(prefix: str, at: datetime) -> str:
    """Partition of the sparse time index (gsi2): by UTC hour, e.g. `DUE#2026-11-23T01`."""
    return f"{prefix}#{at.astimezone(UTC).strftime('%Y-%m-%dT%H')}"


def query_pages(**kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query finds, page after page (`kwargs` are the Query's own parameters)."""
    while True:
        page = dynamodb().query(**kwargs)
        for item in page.get("Items", []):
            yield from_item(item)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def query_due(prefix: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Items of the sparse time index whose time lies in (since, until]: one Query per hour
    bucket in that span, the key condition bounding the sort key (`<iso time>#...`), so the
    items read are the items due, however many wait further ahead."""
    found: list[dict[str, Any]] = []
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    low, high = iso(since) + "#~", iso(until) + "#~"
    while hour <= until:
        kwargs: dict[str, Any] = {
            "TableName": table_name(),
            "IndexName": "gsi2",
            "KeyConditionExpression": "gsi2pk = :b AND gsi2sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": values(b=hour_bucket(prefix, hour), lo=low, hi=high),
        }
        while True:
            page = dynamodb().query(**kwargs)
            found += [from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        hour += timedelta(hours=1)
    return found


def watermark(name: str) -> datetime | None:
    """Up to when a scheduled sweep has done its work (`WATERMARK` / name)."""
    item = (
        dynamodb()
        .get_item(TableName=table_name(), Key=key("WATERMARK", name), ConsistentRead=True)
        .get("Item")
    )
    return parse(from_item(item)["until"]) if item else None


def set_watermark(name: str, until: datetime) -> None:
    """Never past the unshifted clock: a run with a shifted clock (the local stack's
    `sotong schedule X --shift-hours N`) must not make the next runs skip what becomes due
    before `until` meanwhile (the sweeps read from the watermark on; reading again is harmless)."""
    until = min(until, unshifted())
    dynamodb().put_item(
        TableName=table_name(),
        Item=to_item({"pk": "WATERMARK", "sk": name, "until": iso(until)}),
    )


def put_action(
    item: dict[str, Any], condition: str | None = None, **condition_values: Any
) -> dict[str, Any]:
    """A TransactWriteItems `Put` of a plain item, with an optional condition."""
    put: dict[str, Any] = {"TableName": table_name(), "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
        if condition_values:
            put["ExpressionAttributeValues"] = values(**condition_values)
    return {"Put": put}


def update_action(
    item_key: dict[str, str], expression: str, condition: str | None = None, **names: Any
) -> dict[str, Any]:
    """A TransactWriteItems `Update` of the item at `item_key` ({"pk", "sk"}); `names` are the
    `:name` values the expressions use."""
    update: dict[str, Any] = {
        "TableName": table_name(),
        "Key": to_item(item_key),
        "UpdateExpression": expression,
    }
    if condition:
        update["ConditionExpression"] = condition
    if names:
        update["ExpressionAttributeValues"] = values(**names)
    return {"Update": update}


def transact(actions: list[dict[str, Any]]) -> bool:
    """Write all `actions` or none (at most 100, DynamoDB's limit). False when a condition
    refused the write (an idempotent repeat or a concurrent change); any other failure raises."""
    if not actions:
        return True
    if len(actions) > 100:
        raise ValueError(f"a transaction takes at most 100 actions, not {len(actions)}")
    if len(actions) == 1:
        return _single(actions[0])
    try:
        dynamodb().transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        return True
    except Exception as error:
        if transaction_refused(error):
            return False
        raise


def transaction_refused(error: Exception) -> bool:
    """True when a transaction was cancelled only because a condition did not hold."""
    response = getattr(error, "response", None) or {}
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = response.get("CancellationReasons") or []
    codes = {r.get("Code") for r in reasons} - {"None", None}
    if not reasons:  # moto before 5 and some SDKs leave the list out: read the message
        return "ConditionalCheckFailed" in str(response.get("Error", {}).get("Message", ""))
    return codes == {"ConditionalCheckFailed"}


def _single(action: dict[str, Any]) -> bool:
    """One action needs no transaction (half the write cost)."""
    ((kind, params),) = action.items()
    calls: dict[str, Literal["put_item", "update_item", "delete_item"]] = {
        "Put": "put_item",
        "Update": "update_item",
        "Delete": "delete_item",
    }
    call = calls.get(kind)
    if call is None:
        raise ValueError(f"{kind} cannot stand alone")
    return conditional_write(call, **params)


def batch_get(keys: list[dict[str, Any]], *, consistent: bool = False) -> list[dict[str, Any]]:
    """BatchGetItem on the main table, 100 keys a request, unprocessed keys retried."""
    found: list[dict[str, Any]] = []
    name = table_name()
    for start in range(0, len(keys), 100):
        pending: dict[str, Any] = {
            name: {"Keys": keys[start : start + 100], "ConsistentRead": consistent}
        }
        for attempt in range(8):
            response = dynamodb().batch_get_item(RequestItems=pending)
            found += [from_item(i) for i in response.get("Responses", {}).get(name, [])]
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(min(2.0, 0.05 * 2**attempt))
        else:
            raise RuntimeError("DynamoDB left keys unread after 8 attempts")
    return found
