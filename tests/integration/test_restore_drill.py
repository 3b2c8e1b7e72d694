"""The point-in-time recovery drill of docs/restore-from-pitr.md, against moto.

moto's restore copies the table as it is when asked (it ignores the restore time), so the drill
restores first and damages the live table afterwards; on AWS the order is damage, then a restore
to the minute before it. What the drill proves is the rest: the restored table is a new table,
and `sotong restore-copy` brings back what was lost without touching what is there.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from sotong import store
from sotong.resources import MAIN
from sotong_local.cli import main
from tests.integration.api import ADMIN, call


def submit(text: str) -> None:
    body = {"text": text, "contact": {"phone": "010-2222-3333"}, "consent_to_contact": True}
    assert call("POST", "/complaints", body).status == 201


def test_restore_then_copy_back_what_was_lost(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb = boto3.client("dynamodb")
    live = aws[MAIN.env]
    for text in ("대기시간이 너무 길어요", "주차장이 좁아요", "수납 직원이 불친절했어요"):
        submit(text)
    before = call("GET", "/inbox", claims=ADMIN).body["items"]
    assert len(before) == 3

    dynamodb.update_continuous_backups(
        TableName=live, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    restored = f"{live}-restored"
    dynamodb.restore_table_to_point_in_time(
        SourceTableName=live,
        TargetTableName=restored,
        RestoreDateTime=datetime.now(UTC),
    )

    # the incident: a bad script deletes two complaints; a new one arrives after it
    for item in before[:2]:
        dynamodb.delete_item(TableName=live, Key=store.key(f"CMP#{item['id']}", "CMP"))
    submit("새로 들어온 민원입니다")
    assert len(call("GET", "/inbox", claims=ADMIN).body["items"]) == 2

    capsys.readouterr()
    assert main(["restore-copy", "--from", restored, "--to", live]) == 0
    out = capsys.readouterr().out
    assert "2 written" in out
    after = call("GET", "/inbox", claims=ADMIN).body["items"]
    assert {i["id"] for i in before} <= {i["id"] for i in after}
    assert len(after) == 4  # the three restored and the one that came after
    # a second run writes nothing: what is there is kept
    assert main(["restore-copy", "--from", restored, "--to", live]) == 0
    assert "0 written" in capsys.readouterr().out
    assert main(["restore-copy", "--from", live, "--to", live]) == 2
