"""The second opinion may call Bedrock only when the hospital names a model, and only that model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.app import build_app
from sotong.resources import FUNCTIONS, function
from tests.infra import cfn
from tests.infra.conftest import HOSPITAL, REPO, Synth

pytestmark = pytest.mark.infra
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def bedrock_statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    _, resource = cfn.function(template, function(name), HOSPITAL)  # type: ignore[arg-type]
    return [
        s
        for s in cfn.statements(template, cfn.role_id(resource))  # type: ignore[arg-type]
        if any(a.startswith("bedrock:") for a in cfn.actions(s))
    ]


def test_no_function_may_call_bedrock_by_default(synth: Synth) -> None:
    for spec in FUNCTIONS:
        assert bedrock_statements(synth.template, spec.name) == [], spec.name


def test_a_configured_model_is_granted_to_the_reviewer_alone(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "hospitals" / f"{HOSPITAL}.yaml").read_text(encoding="utf-8"))
    data["complaints"]["bedrock_model_id"] = MODEL
    hospitals = tmp_path / "hospitals"
    hospitals.mkdir()
    (hospitals / f"{HOSPITAL}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    outdir = tmp_path / "cdk.out"
    app = build_app(
        hospitals, only=HOSPITAL, outdir=outdir, build_dir=tmp_path / "build", cfn_validation=False
    )
    app.synth()  # cdk-nag and the stack's own checks pass with the grant too
    template = json.loads((outdir / f"Sotong-{HOSPITAL}.template.json").read_text("utf-8"))
    (statement,) = bedrock_statements(template, "complaint_reviewer")
    assert cfn.actions(statement) == ["bedrock:InvokeModel"]
    resource = json.dumps(statement["Resource"])
    assert f"foundation-model/{MODEL}" in resource
    _, reviewer = cfn.function(template, function("complaint_reviewer"), HOSPITAL)  # type: ignore[arg-type]
    assert reviewer["Properties"]["Environment"]["Variables"]["SOTONG_BEDROCK_MODEL_ID"] == MODEL
    for spec in FUNCTIONS:
        if spec.name != "complaint_reviewer":
            assert bedrock_statements(template, spec.name) == [], spec.name
