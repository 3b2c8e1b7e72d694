"""`sotong validate`: ok files print an ok line, broken files print file, field and problem."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sotong_local.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hospitals" / "demo.yaml"
BROKEN = ROOT / "tests" / "data" / "hospitals"


@pytest.fixture
def bad_timezone(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["timezone"] = "Asia/Busan"
    path = tmp_path / "busan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_validate_ok_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DEMO)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"{DEMO}: ok (demo, 7 departments")
    assert out.count("\n") == 1


def test_validate_broken_file(bad_timezone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(bad_timezone)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{bad_timezone}: timezone: 'Asia/Busan' is not an IANA time zone" in err


def test_validate_several_files_one_broken(
    bad_timezone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(DEMO), str(bad_timezone), str(BROKEN / "minimal.yaml")]
    assert main(["validate", *files]) == 1
    out, err = capsys.readouterr()
    assert f"{DEMO}: ok" in out
    assert f"{BROKEN / 'minimal.yaml'}: ok" in out
    assert str(bad_timezone) not in out
    assert f"{bad_timezone}: invalid hospital config (1 problem(s))" in err
    assert "timezone" in err


def test_validate_every_broken_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in BROKEN.glob("*.yaml") if p.name != "minimal.yaml")
    assert len(files) >= 5
    assert main(["validate", *files]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    for name, field in [
        ("unknown_category.yaml", "complaints.routing.parkng"),
        ("missing_department.yaml", "complaints.routing.billing"),
        ("bad_timezone.yaml", "timezone"),
        ("inline_secret.yaml", "sender.kakao_sender_key"),
        ("duplicate_ids.yaml", "departments"),
    ]:
        assert f"{BROKEN / name}: {field}: " in err, name


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert main(["validate", str(missing)]) == 1
    assert f"{missing}: (top level): cannot read the file" in capsys.readouterr().err


def test_validate_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate"])
    assert caught.value.code == 2
    assert "files" in capsys.readouterr().err


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_module_entry_runs_in_a_fresh_process() -> None:
    ok = _run([sys.executable, "-m", "sotong_local.cli", "validate", "hospitals/demo.yaml"])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("hospitals/demo.yaml: ok (demo,")


def test_console_script_reports_a_broken_file(bad_timezone: Path) -> None:
    script = Path(sys.executable).parent / "sotong"
    assert script.exists(), "`make venv` installs the sotong console script"
    result = _run([str(script), "validate", "hospitals/demo.yaml", str(bad_timezone)])
    assert result.returncode == 1
    assert "hospitals/demo.yaml: ok" in result.stdout
    assert f"{bad_timezone}: timezone: 'Asia/Busan' is not an IANA time zone" in result.stderr
