"""cfn-lint finds no error and no warning in the synthesized template."""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra


def test_template_passes_cfn_lint(synth: Synth) -> None:
    matches = lint_file(synth.template_path, ManualArgs(regions=["ap-northeast-2"]))
    problems = [m for m in matches if m.rule.severity.lower() in ("error", "warning")]
    assert problems == [], "\n".join(str(problem) for problem in problems)
