"""Staff corrections export as labelled lines for retraining, by month, without a Scan."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong_local.cli import main
from sotong_local.evaluation import read_labelled
from tests.integration.api import ADMIN, call

KST = ZoneInfo("Asia/Seoul")


def submit(text: str) -> str:
    body = {"text": text, "contact": {"phone": "010-2222-3333"}, "consent_to_contact": True}
    assert call("POST", "/complaints", body).status == 201
    items = call("GET", "/inbox", claims=ADMIN, query={"limit": "100"}).body["items"]
    return str(max(items, key=lambda i: i["created_at"])["id"])


def correct(complaint_id: str, fix: dict[str, str]) -> None:
    answer = call("POST", f"/complaints/{complaint_id}/classification", fix, claims=ADMIN)
    assert answer.status == 200, answer.body


def test_corrections_export_as_training_lines(
    aws: dict[str, str],
    tmp_path: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.fix(datetime(2026, 10, 30, 10, 0, tzinfo=KST))
    october = submit("주차장이 너무 좁아요")
    correct(october, {"category": "facility"})  # listed under the month it was corrected
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    november = submit("약 봉투에 다른 사람 이름이 적혀 있었어요")
    untouched = submit("대기시간이 길어요")
    correct(november, {"urgency": "critical", "category": "safety"})
    capsys.readouterr()
    assert main(["classify", "--export-corrections", "--since", "2026-10"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert "2 correction(s) exported" in err
    assert [line["text"] for line in lines] == [
        "주차장이 너무 좁아요",
        "약 봉투에 다른 사람 이름이 적혀 있었어요",
    ]
    assert lines[0]["category"] == "facility"
    assert (lines[1]["urgency"], lines[1]["category"]) == ("critical", "safety")
    assert set(lines[1]["was"]) == {"kind", "category", "urgency"}
    assert untouched not in out
    # the export is a labelled file the trainer and the evaluation read
    path = tmp_path / "corrections.jsonl"  # type: ignore[operator]
    path.write_text(out, encoding="utf-8")
    items = read_labelled(path, list(load_hospital().complaints.categories))
    assert len(items) == 2
    assert main(["classify", "--export-corrections", "--since", "2026-11"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["classify", "--export-corrections", "--since", "November"]) == 2
    assert "--since must be a month, YYYY-MM" in capsys.readouterr().err
