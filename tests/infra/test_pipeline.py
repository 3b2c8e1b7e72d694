"""The deploy workflow: every hospital file is a stage, diffed, approved, then deployed; each
stage synthesizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra.app import build_app
from infra.hospitals_matrix import main, matrix
from sotong.config.loader import hospital_files, load_hospital_file
from tests.infra.conftest import REPO

pytestmark = pytest.mark.infra
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"


def workflow() -> dict[str, object]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_every_hospital_file_is_a_stage() -> None:
    ids = [load_hospital_file(f).hospital_id for f in hospital_files(REPO / "hospitals")]
    assert matrix() == ids
    assert matrix("demo") == ["demo"]


def test_the_matrix_command_fails_on_a_broken_or_unknown_hospital(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    assert json.loads(capsys.readouterr().out) == ["demo"]
    assert main(["nowhere"]) == 1
    assert "unknown hospital 'nowhere'" in capsys.readouterr().err
    broken = tmp_path / "demo.yaml"
    broken.write_text(
        (REPO / "hospitals" / "demo.yaml")
        .read_text(encoding="utf-8")
        .replace("complaints:\n", "complaints:\n  disable_rules: [no_such_rule]\n", 1),
        encoding="utf-8",
    )
    with pytest.raises(Exception, match="no_such_rule"):
        matrix(directory=tmp_path)


def test_each_stage_is_diffed_then_approved_then_deployed() -> None:
    jobs = workflow()["jobs"]
    assert isinstance(jobs, dict)
    plan, diff, deploy = jobs["plan"], jobs["diff"], jobs["deploy"]
    assert any("make validate" in step.get("run", "") for step in plan["steps"])
    assert any("infra.hospitals_matrix" in step.get("run", "") for step in plan["steps"])
    for job in (diff, deploy):
        assert (
            job["strategy"]["matrix"]["hospital"] == "${{ fromJSON(needs.plan.outputs.hospitals) }}"
        )
    assert any(
        "cdk diff -c hospital=${{ matrix.hospital }}" in step.get("run", "")
        for step in diff["steps"]
    )
    assert set(deploy["needs"]) == {"plan", "diff"}
    assert deploy["environment"] == "hospital-${{ matrix.hospital }}"  # the manual approval
    assert any(
        "cdk deploy -c hospital=${{ matrix.hospital }}" in step.get("run", "")
        for step in deploy["steps"]
    )


@pytest.mark.parametrize("hospital", matrix())
def test_each_stage_synthesizes(tmp_path: Path, hospital: str) -> None:
    app = build_app(
        REPO / "hospitals",
        only=hospital,
        outdir=tmp_path / "cdk.out",
        build_dir=tmp_path / "build",
        cfn_validation=False,
    )
    app.synth()
    assert (tmp_path / "cdk.out" / f"Sotong-{hospital}.template.json").is_file()
