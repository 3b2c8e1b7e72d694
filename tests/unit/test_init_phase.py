"""Every function runs its init with the garbage collector paused, and runs with it afterwards."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from bench.coldstart import base_environment, function_environment, write_config_json
from sotong.resources import FUNCTIONS, Function, function

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared" / "python"


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_the_handler_module_pauses_first_and_resumes_last(spec: Function) -> None:
    module = ROOT / "functions" / f"{spec.module}.py"
    body = ast.parse(module.read_text(encoding="utf-8")).body
    first = body[1]  # after the docstring
    assert isinstance(first, ast.ImportFrom), ast.dump(first)
    assert (first.module, [alias.name for alias in first.names]) == ("sotong", ["init_phase"])
    last = body[-1]
    assert ast.unparse(last) == "init_phase.finished()"


def run(code: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("in_lambda", [False, True], ids=["locally", "in Lambda"])
def test_finished_resumes_the_collector(in_lambda: bool) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LAYER)}
    if in_lambda:
        env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:9001"
    frozen = "gc.get_freeze_count() > 0" if in_lambda else "gc.get_freeze_count() == 0"
    run(
        "import gc\n"
        "from sotong import init_phase\n"
        "assert not gc.isenabled()\n"
        "init_phase.finished()\n"
        "assert gc.isenabled()\n"
        f"assert {frozen}\n"
        "init_phase.finished()\n"
        "assert gc.isenabled()\n",
        env,
    )


def test_a_collector_paused_before_stays_paused() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LAYER)}
    run(
        "import gc\n"
        "gc.disable()\n"
        "from sotong import init_phase\n"
        "init_phase.finished()\n"
        "assert not gc.isenabled()\n",
        env,
    )


def test_a_function_runs_with_the_collector_after_its_import(tmp_path: Path) -> None:
    spec = function("outbox_relay")
    env = function_environment(base_environment(write_config_json(tmp_path)), spec)
    run(f"import gc\nimport {spec.module}\nassert gc.isenabled()\n", env)


def test_every_record_type_of_the_layer_has_a_docstring() -> None:
    """`@dataclass` makes one from `inspect.signature` at import for a class without: 0.2 to
    0.4 ms of every cold start per class."""
    missing = []
    for path in sorted((LAYER / "sotong").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or ast.get_docstring(node):
                continue
            if any("dataclass" in ast.unparse(decorator) for decorator in node.decorator_list):
                missing.append(f"{path.relative_to(LAYER)}:{node.lineno} {node.name}")
    assert not missing
