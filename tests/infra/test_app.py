"""The app: one stack per hospital file, and clear errors for broken files and unknown ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.app import SynthError, build_app, main
from sotong.config.loader import ConfigError
from tests.infra.conftest import REPO

pytestmark = pytest.mark.infra

DEMO = (REPO / "hospitals" / "demo.yaml").read_text(encoding="utf-8")


def _hospital(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _broken(directory: Path) -> Path:
    text = DEMO.replace("opt_out_number: 080-555-0100", "opt_out_number: 02-555-0100")
    assert text != DEMO
    return _hospital(directory, "broken", text)


def test_one_stack_per_hospital_and_only_selects_one(tmp_path: Path) -> None:
    hospitals = tmp_path / "hospitals"
    _hospital(hospitals, "alpha", DEMO.replace("hospital_id: demo", "hospital_id: alpha"))
    _hospital(hospitals, "beta", DEMO.replace("hospital_id: demo", "hospital_id: beta"))
    build = tmp_path / "build"

    every = build_app(hospitals, outdir=tmp_path / "all", build_dir=build)
    assert sorted(child.node.id for child in every.node.children) == ["Sotong-alpha", "Sotong-beta"]
    one = build_app(hospitals, only="beta", outdir=tmp_path / "one", build_dir=build)
    assert [child.node.id for child in one.node.children] == ["Sotong-beta"]


def test_broken_hospital_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = _broken(tmp_path / "hospitals")
    with pytest.raises(ConfigError) as error:
        build_app(tmp_path / "hospitals", outdir=tmp_path / "out", build_dir=tmp_path / "b")
    assert str(path) in str(error.value)
    assert "sender.opt_out_number" in str(error.value)


def test_unknown_hospital_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match=r"unknown hospital 'unknown'.*known hospitals: demo"):
        build_app(REPO / "hospitals", only="unknown", outdir=tmp_path, build_dir=tmp_path)


def test_two_files_with_one_hospital_id_are_refused(tmp_path: Path) -> None:
    first = _hospital(tmp_path, "a", DEMO)
    second = _hospital(tmp_path, "b", DEMO)
    with pytest.raises(SynthError) as error:
        build_app(tmp_path, outdir=tmp_path / "out", build_dir=tmp_path / "build")
    assert str(first) in str(error.value)
    assert str(second) in str(error.value)


def test_main_reports_an_unknown_hospital_briefly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", "hospital=unknown", "--outdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown hospital 'unknown' (-c hospital=unknown); known hospitals: demo"
    )


def test_synth_of_a_broken_file_fails_without_a_traceback(tmp_path: Path) -> None:
    path = _broken(tmp_path / "hospitals")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.app",
            *("-c", f"hospitals_dir={path.parent}"),
            *("--outdir", str(tmp_path / "out")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'layers/shared/python'}"},
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}: sender.opt_out_number:" in result.stderr
    assert "Traceback" not in result.stderr
