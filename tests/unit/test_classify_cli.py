"""`sotong classify`: JSON lines in and out, error lines naming the line, --evaluate figures."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sotong_local.cli import main

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "tests" / "data" / "hospitals" / "minimal.yaml"
LABELLED = ROOT / "tests" / "data" / "complaints_labelled.jsonl"
HELDOUT = ROOT / "tests" / "data" / "complaints_heldout.jsonl"


def _run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str,
    *args: str,
) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.delenv("SOTONG_CLASSIFIER", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["classify", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_round_trip(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {"text": "대기시간이 너무 길어요"},
        {"text": "어머니가 병실에서 넘어지셨어요"},
        {"text": "간호사님들 정말 친절하셔서 감사했습니다"},
        {"text": "지난주 일로 문의드립니다", "category_hint": "billing"},
    ]
    stdin = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    code, out, err = _run(monkeypatch, capsys, stdin)
    assert (code, err) == (0, "")
    assert [o["text"] for o in out] == [line["text"] for line in lines]
    assert all(set(o) == {"text", "kind", "category", "urgency", "matched"} for o in out)
    assert (out[0]["category"], out[0]["urgency"]) == ("wait_time", "normal")
    assert (out[1]["category"], out[1]["urgency"]) == ("safety", "critical")
    assert any("넘어지" in phrase for phrase in out[1]["matched"])
    assert out[2]["kind"] == "compliment"
    assert out[3]["category"] == "billing"


def test_bad_lines_are_reported_and_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = (
        '{"text": "대기시간이 너무 길어요"}\n'
        "this is not json\n"
        "\n"
        '{"text": ""}\n'
        '["a list"]\n'
        '{"text": 3}\n'
        '{"text": "주차장이 좁아요"}\n'
    )
    code, out, err = _run(monkeypatch, capsys, stdin)
    assert code == 1
    assert [o["text"] for o in out] == ["대기시간이 너무 길어요", "주차장이 좁아요"]
    errors = err.splitlines()
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 4", "line 5", "line 6"]
    assert "not valid JSON" in errors[0]


def test_hospital_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = '{"text": "주차장이 너무 좁아요"}\n'
    _, demo, _ = _run(monkeypatch, capsys, stdin)  # default: $SOTONG_HOSPITAL_CONFIG, the demo
    _, minimal, _ = _run(monkeypatch, capsys, stdin, "--hospital", str(MINIMAL))
    assert demo[0]["category"] == "parking"
    assert minimal[0]["category"] == "facility"


def test_missing_hospital_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(monkeypatch, capsys, "", "--hospital", "no/such.yaml")
    assert code == 2
    assert "no/such.yaml" in err


def _figures(output: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in re.findall(r"^([a-z ]+):\s+([0-9.]+)", output, flags=re.MULTILINE)
    }


def test_evaluate_labelled_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SOTONG_CLASSIFIER", raising=False)
    assert main(["classify", "--evaluate", str(LABELLED)]) == 0
    out = capsys.readouterr().out
    figures = _figures(out)
    assert figures["items"] >= 70
    assert figures["critical recall"] == 1.0
    assert figures["category accuracy"] >= 0.8
    for name in ("kind accuracy", "urgency accuracy", "critical precision"):
        assert 0 <= figures[name] <= 1
    assert "missed critical" not in out
    assert "category confusion (rows labelled, columns classified):" in out
    assert "urgency: precision / recall per class" in out
    assert re.search(r"^  critical_falls\s+\d+ hits  precision [0-9.]+$", out, flags=re.MULTILINE)


def test_evaluate_both_sets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SOTONG_CLASSIFIER", raising=False)
    assert main(["classify", "--evaluate", str(LABELLED), "--evaluate", str(HELDOUT)]) == 0
    out = capsys.readouterr().out
    assert f"{LABELLED} (hospital demo):" in out
    assert f"{HELDOUT} (hospital demo):" in out


def test_evaluate_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "kind": "complaint", "category": "nope", "urgency": "normal"}\n')
    assert main(["classify", "--evaluate", str(bad)]) == 2
    assert "bad.jsonl:1: category must be one of" in capsys.readouterr().err


def test_console_script_pipes_utf8() -> None:
    """The installed entry point, through a real pipe, as a hospital would run it."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("SOTONG_CLASSIFIER", None)
    done = subprocess.run(
        [sys.executable, "-m", "sotong_local.cli", "classify"],
        input='{"text": "다른 환자 검사 결과지를 받았어요"}\n',
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    result = json.loads(done.stdout)
    assert result["text"] == "다른 환자 검사 결과지를 받았어요"
    assert (result["category"], result["urgency"]) == ("privacy", "critical")
