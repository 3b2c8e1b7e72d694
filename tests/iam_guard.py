"""A pytest plugin that holds every DynamoDB call a function makes to its grants in
`sotong.resources`, as IAM would: `pytest -p tests.iam_guard tests/integration tests/e2e/...`.

While a handler from functions/ is on the stack, each call is checked per item: the action IAM
authorizes (a TransactWriteItems `Put` is PutItem, ...), the table or index, and the partition
key (the index's, for an index Query) against the `dynamodb:LeadingKeys` patterns. A test whose
functions made a call their role would be refused fails at teardown, naming the call. Calls the
test itself makes (seeding, reading back) are not checked.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from sotong.resources import TABLES, function

FUNCTIONS_DIR = str(Path(__file__).resolve().parents[1] / "functions")
_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_EQUALS = re.compile(r"(#?\w+)\s*=\s*(:\w+)")
_refused: list[str] = []
_original = botocore.client.BaseClient._make_api_call


def _caller() -> str | None:
    """The outermost function handler on the stack (functions/<name>.py)."""
    frame = sys._getframe(2)
    found = None
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(FUNCTIONS_DIR + os.sep):
            found = Path(path).stem
        frame = frame.f_back
    return found


def _table(physical: str) -> str:
    for table in TABLES:
        if physical.endswith(table.name.replace("_", "-")) or physical == table.name:
            return table.name
    return physical


def _pk(key: dict[str, Any] | None) -> str:
    value = (key or {}).get("pk") or {}
    return str(value.get("S", "")) if isinstance(value, dict) else str(value)


def _query_key(params: dict[str, Any]) -> str:
    names = params.get("ExpressionAttributeNames") or {}
    values = params.get("ExpressionAttributeValues") or {}
    for attribute, placeholder in _EQUALS.findall(params.get("KeyConditionExpression", "")):
        if names.get(attribute, attribute).endswith("pk"):
            value = values.get(placeholder) or {}
            return str(value.get("S", ""))
    return ""


def requests(operation: str, params: dict[str, Any]) -> Iterator[tuple[str, str, str | None, str]]:
    """(IAM action, table, index, partition key) of each item an API call touches."""
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        yield operation, params["TableName"], None, _pk(params.get("Key"))
    elif operation == "PutItem":
        yield operation, params["TableName"], None, _pk(params.get("Item"))
    elif operation in ("Query", "Scan"):
        key = _query_key(params) if operation == "Query" else ""
        yield operation, params["TableName"], params.get("IndexName"), key
    elif operation == "BatchGetItem":
        for table, request in params["RequestItems"].items():
            for key in request["Keys"]:
                yield operation, table, None, _pk(key)
    elif operation == "BatchWriteItem":
        for table, writes in params["RequestItems"].items():
            for write in writes:
                put = write.get("PutRequest")
                key = put["Item"] if put else write["DeleteRequest"]["Key"]
                yield operation, table, None, _pk(key)
    elif operation == "TransactWriteItems":
        for action in params["TransactItems"]:
            ((kind, body),) = action.items()
            yield _TRANSACT[kind], body["TableName"], None, _pk(body.get("Key") or body["Item"])
    elif operation == "TransactGetItems":
        for action in params["TransactItems"]:
            yield "GetItem", action["Get"]["TableName"], None, _pk(action["Get"]["Key"])
    else:
        yield operation, str(params.get("TableName", "")), None, ""


def _checked(self: Any, operation: str, params: dict[str, Any]) -> Any:
    if self.meta.service_model.service_name == "dynamodb":
        caller = _caller()
        if caller is not None:
            spec = function(caller)
            for action, table, index, key in requests(operation, params):
                if not spec.allows(action, _table(table), index, key):  # type: ignore[arg-type]
                    where = f"{_table(table)}" + (f"/index/{index}" if index else "")
                    _refused.append(f"{caller}: {action} on {where} key {key[:24]!r}")
    return _original(self, operation, params)


botocore.client.BaseClient._make_api_call = _checked  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _iam_guard() -> Iterator[None]:
    _refused.clear()
    yield
    refused = sorted(set(_refused))
    _refused.clear()
    assert not refused, "calls the function's IAM role would refuse:\n" + "\n".join(refused)
