"""Cold start: the module-level initialisation of each function, in a fresh process per run.

Each run starts a new interpreter that imports the function's module (what Lambda's init phase
does, our imports and module-level setup included) and prints the milliseconds it took. Beside
the functions, the same method measures a floor: `import boto3` plus one DynamoDB client, what a
function that talks to DynamoDB pays once, at init or else on its first request (the row notes
how many AWS clients a function made at init). Three more references: the floor with the
garbage collector paused, as every function runs its init (`sotong.init_phase`); the stack an
HTTP function stands on (boto3, pydantic and Powertools' event handler with validation, the
collector paused) before any of our code; and that stack with the hospital config loaded, as
every function has it before its own domain.
Runs go round-robin over the targets, so a slow spell on the machine hits every target alike; the
table shows medians, and each ratio is the median over rounds of the function's time over the
floor's in the same round (a slow round cancels out instead of moving the ratio).

The child sees what a deployed function sees: fake credentials in ap-northeast-2, every table and
queue variable of `sotong.resources`, and the hospital config as JSON (as the config layer ships
it), so YAML is never imported during a measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.core import Options, Row, percentile, suite, summary
from sotong.resources import (
    FUNCTIONS,
    HASH_KEY_ENV,
    QUEUES,
    RUNTIME_ENVIRONMENT,
    TABLES,
    Function,
)

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = ROOT / "functions"
LAYER_DIR = ROOT / "layers" / "shared" / "python"
DEMO_HOSPITAL = ROOT / "hospitals" / "demo.yaml"
REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
SUITE = "coldstart"
TIMEOUT_S = 120

# Runs in the child. Only builtins are imported before the clock starts; what it found is
# printed as JSON after the clock stops.
_CHILD = """\
import importlib, sys, time
_start = time.perf_counter()
{body}
_elapsed = (time.perf_counter() - _start) * 1000
import gc, json
_base = getattr(sys.modules.get("botocore.client"), "BaseClient", None)
_clients = sum(isinstance(o, _base) for o in gc.get_objects()) if _base else 0
print(json.dumps({{
    "ms": _elapsed,
    "modules": len(sys.modules),
    "yaml": "yaml" in sys.modules,
    "boto3": "botocore" in sys.modules,
    "clients": _clients,
}}))
"""
FLOOR_BODY = 'import boto3\nclient = boto3.client("dynamodb")'
PAUSED = "import gc\ngc.disable()\n"
"""what `sotong.init_phase` does first in every function"""
STACK_BODY = (
    PAUSED + "import boto3\n"
    "from pydantic import BaseModel, Field\n"
    "from aws_lambda_powertools import Logger, Metrics\n"
    "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
    "APIGatewayRestResolver(enable_validation=True)"
)
CONFIG_BODY = STACK_BODY + "\nfrom sotong.config import load_hospital\nload_hospital()"
"""the stack with the hospital config loaded, as every function has it, before its domain"""


@dataclass(frozen=True)
class Target:
    name: str
    code: str | None
    """None: nothing to run (the module does not exist)"""
    env: dict[str, str]
    missing: str = ""
    wall: bool = False
    """True: time the whole `python -c <code>` process from outside, not an import inside it"""


@dataclass
class Samples:
    ms: list[float]
    errors: list[str]
    rounds: list[int] = field(default_factory=list)
    """the round of each of `ms` (the floor's time in the same round gives its ratio)"""
    yaml_imported: bool = False
    boto3_imported: bool = False
    modules: int = 0
    clients: int = 0


@dataclass(frozen=True)
class ChildResult:
    ms: float
    modules: int = 0
    yaml_imported: bool = False
    boto3_imported: bool = False
    clients: int = 0


def function_body(fn: Function) -> str:
    return f"importlib.import_module({fn.module!r})"


def module_path(fn: Function) -> Path | None:
    base = FUNCTIONS_DIR / Path(*fn.module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def write_config_json(directory: Path) -> Path:
    """The demo hospital as the config layer ships it: JSON, and the object validated here."""
    from sotong.complaints import rulebook
    from sotong.config import load_hospital_file
    from sotong.config.loader import write_validated

    config = load_hospital_file(DEMO_HOSPITAL)
    path = directory / "config.json"
    path.write_text(json.dumps(config.model_dump(mode="json"), ensure_ascii=False), "utf-8")
    write_validated(config, path)
    (directory / "rules.json").write_text(rulebook.compose(config).to_json(), "utf-8")
    return path


def base_environment(config_path: Path) -> dict[str, str]:
    """A deployed function's environment, without anything of the caller's (no AWS profile)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONPATH": os.pathsep.join([str(FUNCTIONS_DIR), str(LAYER_DIR)]),
        "PYTHONIOENCODING": "utf-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
        "SOTONG_HOSPITAL_ID": "demo",
        "SOTONG_HOSPITAL_CONFIG": str(config_path),
        "SOTONG_RULES_PATH": str(config_path.parent / "rules.json"),
        "POWERTOOLS_METRICS_NAMESPACE": "Sotong",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **RUNTIME_ENVIRONMENT,
    }
    for table in TABLES:
        env[table.env] = f"sotong-demo-{table.name}"
    for queue in QUEUES:
        sqs = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}"
        env[queue.env] = f"{sqs}/sotong-demo-{queue.name}"
        env[queue.dlq_env] = f"{sqs}/sotong-demo-{queue.dlq_name}"
    env[HASH_KEY_ENV] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:sotong-demo-hash-key"
    return env


def function_environment(base: dict[str, str], fn: Function) -> dict[str, str]:
    return {
        **base,
        "AWS_LAMBDA_FUNCTION_NAME": f"sotong-demo-{fn.name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "POWERTOOLS_SERVICE_NAME": fn.name,
    }


def selected_functions(options: Options) -> list[Function]:
    if not options.functions:
        return list(FUNCTIONS)
    known = {fn.name for fn in FUNCTIONS}
    unknown = sorted(set(options.functions) - known)
    if unknown:
        raise ValueError(f"unknown function(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [fn for fn in FUNCTIONS if fn.name in options.functions]


def run_child(code: str, env: dict[str, str], cwd: Path) -> ChildResult:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD.format(body=code)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit code {result.returncode}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return ChildResult(
        ms=float(found["ms"]),
        modules=int(found["modules"]),
        yaml_imported=bool(found["yaml"]),
        boto3_imported=bool(found["boto3"]),
        clients=int(found["clients"]),
    )


def wall_time(code: str, env: dict[str, str], cwd: Path) -> float:
    """Wall time of a whole `python -c <code>` process as seen from here."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True, timeout=TIMEOUT_S)
    return (time.perf_counter() - start) * 1000


def measure(targets: list[Target], options: Options, cwd: Path) -> dict[str, Samples]:
    samples = {t.name: Samples(ms=[], errors=[]) for t in targets}
    runnable = [t for t in targets if t.code is not None]
    for round_number in range(options.warmup + options.runs):
        counted = round_number >= options.warmup  # warm-up rounds write .pyc files, uncounted
        for target in runnable:
            assert target.code is not None
            got = samples[target.name]
            if got.errors and not got.ms:
                continue  # it failed before: do not spend the run on it again
            try:
                if target.wall:
                    result = ChildResult(ms=wall_time(target.code, target.env, cwd))
                else:
                    result = run_child(target.code, target.env, cwd)
            except (RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as error:
                got.errors.append(str(error) or type(error).__name__)
                continue
            if counted:
                got.ms.append(result.ms)
                got.rounds.append(round_number)
                got.yaml_imported |= result.yaml_imported
                got.boto3_imported |= result.boto3_imported
                got.modules = result.modules
                got.clients = result.clients
    return samples


@suite(SUITE)
def coldstart(options: Options) -> list[Row]:
    functions = selected_functions(options)
    workdir = Path(tempfile.mkdtemp(prefix="sotong-bench-"))
    try:
        base = base_environment(write_config_json(workdir))
        interpreter = Target("interpreter start", "pass", base, wall=True)
        floor = Target("floor", FLOOR_BODY, base)
        paused = Target("paused floor", PAUSED + FLOOR_BODY, base)
        stack = Target("stack", STACK_BODY, base)
        configured = Target("stack + config", CONFIG_BODY, base)
        targets = [interpreter, floor, paused, stack, configured]
        for fn in functions:
            path = module_path(fn)
            if path is None:
                missing = f"missing: no functions/{fn.module.replace('.', '/')}.py yet"
                targets.append(Target(fn.name, None, {}, missing=missing))
            else:
                targets.append(Target(fn.name, function_body(fn), function_environment(base, fn)))
        uncompiled = _uncompiled(functions, base, workdir)
        targets += uncompiled
        samples = measure(targets, options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    floor_by_round = dict(zip(samples["floor"].rounds, samples["floor"].ms, strict=True))
    rows = [
        _interpreter_row(samples[interpreter.name]),
        _row(floor, samples[floor.name], floor_by_round, label=FLOOR_LABEL),
        _row(paused, samples[paused.name], floor_by_round, label=PAUSED_LABEL),
        _row(stack, samples[stack.name], floor_by_round, label=STACK_LABEL),
        _row(configured, samples[configured.name], floor_by_round, label=CONFIG_LABEL),
    ]
    rows += [_row(t, samples[t.name], floor_by_round) for t in targets[5:]]
    return rows


UNCOMPILED = "public_api"
"""the function also measured as Lambda runs it from code shipped without bytecode"""


def _uncompiled(functions: list[Function], base: dict[str, str], workdir: Path) -> list[Target]:
    """`UNCOMPILED` from a copy of our code without `__pycache__`, writing none: how it starts
    when the build had no interpreter of the runtime's version (`compile_bytecode`), since
    Lambda's code directories are read-only (boto3 and the other packages keep theirs)."""
    fn = next((f for f in functions if f.name == UNCOMPILED), None)
    if fn is None or module_path(fn) is None:
        return []
    copy = workdir / "uncompiled"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(FUNCTIONS_DIR, copy / "functions", ignore=ignore)
    shutil.copytree(LAYER_DIR / "sotong", copy / "layer" / "sotong", ignore=ignore)
    env = function_environment(base, fn)
    env["PYTHONPATH"] = os.pathsep.join([str(copy / "functions"), str(copy / "layer")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return [Target(f"{fn.name} without bytecode", function_body(fn), env)]


FLOOR_LABEL = "floor: import boto3 + dynamodb client"
PAUSED_LABEL = "floor, collector paused (as functions)"
STACK_LABEL = "stack: boto3 + pydantic + Powertools API"
CONFIG_LABEL = "stack + the hospital config loaded"


def ratio_to_floor(got: Samples, floor_by_round: dict[int, float]) -> float | None:
    """The median, over the rounds both ran in, of the target's time over the floor's."""
    pairs = zip(got.rounds, got.ms, strict=True)
    ratios = [ms / floor_by_round[r] for r, ms in pairs if r in floor_by_round]
    return statistics.median(ratios) if ratios else None


def _interpreter_row(got: Samples) -> Row:
    name = "interpreter start (python -c pass)"
    if not got.ms:
        error = got.errors[0] if got.errors else "no runs"
        return Row(SUITE, name, None, "ms", f"error: {error}", {"status": "error"})
    note = f"wall time of a whole process, for context; p90 {percentile(got.ms, 0.9):.0f}"
    return Row(SUITE, name, round(statistics.median(got.ms), 1), "ms", note, summary(got.ms))


def _row(target: Target, got: Samples, floor_by_round: dict[int, float], label: str = "") -> Row:
    name = label or target.name
    if target.code is None:
        return Row(SUITE, name, None, "ms", target.missing, {"status": "missing"})
    if not got.ms:
        error = got.errors[0] if got.errors else "no runs"
        return Row(SUITE, name, None, "ms", f"error: {_short(error)}", {"status": "error"})
    stats = summary(got.ms)
    median = statistics.median(got.ms)
    parts = []
    ratio = ratio_to_floor(got, floor_by_round)
    if ratio is not None:
        floor_ms = statistics.median(floor_by_round.values())
        stats["ratio_to_floor"] = round(ratio, 2)
        stats["over_floor_ms"] = round(median - floor_ms, 1)
        parts.append(f"{ratio:.2f}x floor" if target.name != "floor" else "1.00x (the floor)")
        if target.name != "floor":
            parts.append(f"{median - floor_ms:+.0f} ms")
    parts.append(f"p90 {percentile(got.ms, 0.9):.0f}, min {min(got.ms):.0f}")
    stats["modules"] = got.modules
    stats["boto3_at_init"] = int(got.boto3_imported)
    stats["clients_at_init"] = got.clients
    parts.append(f"{got.modules} modules")
    if not got.boto3_imported:
        parts.append("no boto3 at init")
    else:
        parts.append(f"AWS clients at init: {got.clients}")
    if got.yaml_imported:
        stats["yaml_imported"] = 1
        parts.append("IMPORTS YAML")
    if got.errors:
        parts.append(f"{len(got.errors)} failed run(s): {_short(got.errors[0])}")
    return Row(SUITE, name, round(median, 1), "ms", "; ".join(parts), stats)


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
