"""`sotong config-diff`: a config change as what it changes for patients."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sotong_local.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hospitals" / "demo.yaml"


def changed(tmp_path: Path, change: object) -> Path:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def diff(capsys: pytest.CaptureFixture[str], old: Path, new: Path) -> list[str]:
    assert main(["config-diff", str(old), str(new)]) == 0
    return capsys.readouterr().out.splitlines()


def test_no_change(capsys: pytest.CaptureFixture[str]) -> None:
    assert diff(capsys, DEMO, DEMO) == ["nothing changes for patients"]


def test_templates_plans_quiet_hours_and_sla_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        data["templates"][0]["text"] = data["templates"][0]["text"] + " (수정)"
        tag = data["treatment_tags"][0]
        tag["plan"][0]["at"] = "11:30"
        tag["plan"].pop()
        data["sender"]["quiet_hours"] = {"start": "20:00", "end": "09:00"}
        data["sla"] = {
            "critical": {"acknowledge": 2, "resolve": 24},
            "high": {"acknowledge": 4, "resolve": 72},
            "normal": {"acknowledge": 24, "resolve": 168},
        }

    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    first_template = data["templates"][0]["id"]
    tag = data["treatment_tags"][0]
    first_step, last_step = tag["plan"][0]["id"], tag["plan"][-1]["id"]
    lines = diff(capsys, DEMO, changed(tmp_path, change))
    assert any(line.startswith(f"template {first_template} text:") for line in lines), lines
    moved = f"plan {tag['id']}.{first_step} at: "
    assert any(line.startswith(moved) and "'11:30" in line for line in lines), lines
    assert f"plan {tag['id']}.{last_step} removed" in lines
    assert any(line.startswith("quiet hours:") and "20:00" in line for line in lines)
    assert any(line.startswith("sla critical:") for line in lines)


def test_a_broken_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("hospital_id: [", encoding="utf-8")
    assert main(["config-diff", str(DEMO), str(broken)]) == 2
    assert "broken.yaml" in capsys.readouterr().err


def test_night_ads_and_the_balance_alarm_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        data.setdefault("marketing", {})["night_ads"] = "never"
        data["sender"]["balance_alarm_krw"] = 120_000

    lines = diff(capsys, DEMO, changed(tmp_path, change))
    assert "ads at night: 'with_consent' -> 'never'" in lines, lines
    assert "operations: sender balance_alarm_krw: 50000 -> 120000" in lines, lines
