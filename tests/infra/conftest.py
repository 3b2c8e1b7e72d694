"""One synth of the demo hospital per test session: every infra test reads the same assembly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app import build_app
from sotong.config.loader import load_hospital_file
from sotong.config.schema import HospitalConfig

REPO = Path(__file__).resolve().parents[2]
HOSPITAL = "demo"


@dataclass(frozen=True)
class Synth:
    outdir: Path
    build_dir: Path
    config: HospitalConfig
    template: dict[str, Any]
    error: str | None  # the synth's validation failure, if any (test_nag shows it)

    @property
    def template_path(self) -> Path:
        return self.outdir / f"Sotong-{HOSPITAL}.template.json"


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    root = tmp_path_factory.mktemp("infra")
    outdir, build_dir = root / "cdk.out", root / "build"
    # cfn-lint checks the template in test_cfn_lint; CDK's own schema check would add ~8 s.
    app = build_app(
        REPO / "hospitals", only=HOSPITAL, outdir=outdir, build_dir=build_dir, cfn_validation=False
    )
    error = None
    try:
        app.synth()
    except RuntimeError as failure:  # jsii's form of a failed validation report
        error = str(failure)
    template_path = outdir / f"Sotong-{HOSPITAL}.template.json"
    assert template_path.exists(), f"synth wrote no template: {error}"
    return Synth(
        outdir=outdir,
        build_dir=build_dir,
        config=load_hospital_file(REPO / "hospitals" / f"{HOSPITAL}.yaml"),
        template=json.loads(template_path.read_text(encoding="utf-8")),
        error=error,
    )


@pytest.fixture(scope="session")
def template(synth: Synth) -> Template:
    return Template.from_json(synth.template)
