"""Copy items back from a table restored with point-in-time recovery (docs/restore-from-pitr.md).

An operator's tool, run by hand after an incident: it scans the restored table (never a request
or scheduled path). By default it writes only the items the live table lacks (what was deleted);
`overwrite` also puts back items that exist but changed since the restore point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class CopyReport:
    scanned: int = 0
    written: int = 0
    kept: int = 0  # present in the live table and left as they are


def copy_back(dynamodb: Any, source: str, target: str, *, overwrite: bool = False) -> CopyReport:
    report = CopyReport()
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(TableName=source):
        for item in page.get("Items", []):
            report.scanned += 1
            request: dict[str, Any] = {"TableName": target, "Item": item}
            if not overwrite:
                request["ConditionExpression"] = "attribute_not_exists(pk)"
            try:
                dynamodb.put_item(**request)
                report.written += 1
            except dynamodb.exceptions.ConditionalCheckFailedException:
                report.kept += 1
    return report
