"""The bench harness builds its rows (structure only: timings depend on the machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import Options, Row, build_rows, coldstart, format_table
from bench import __main__ as cli
from bench.core import percentile, summary
from sotong.resources import Function

ONE_RUN = Options(runs=1, warmup=0, only=("coldstart",), functions=("public_api",))


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return build_rows(ONE_RUN)


def test_coldstart_rows_for_the_floor_and_one_function(rows: list[Row]) -> None:
    assert [row.name for row in rows] == [
        "interpreter start (python -c pass)",
        "floor: import boto3 + dynamodb client",
        "floor, collector paused (as functions)",
        "stack: boto3 + pydantic + Powertools API",
        "stack + the hospital config loaded",
        "public_api",
        "public_api without bytecode",
    ]
    for row in rows:
        assert row.suite == "coldstart"
        assert row.unit == "ms"
        json.dumps(row.as_dict())
    interpreter, floor, paused, stack, configured, function, uncompiled = rows
    for measured in (interpreter, floor, paused, stack, configured):
        assert isinstance(measured.value, float)
        assert measured.value > 0
        assert measured.stats["runs"] == 1
    assert floor.stats["ratio_to_floor"] == 1.0
    assert floor.stats["clients_at_init"] == 1
    assert "yaml_imported" not in configured.stats, "the config was read from YAML, not JSON"
    # public_api itself may be half-written while others work on it: then its row says why.
    if function.value is None:
        assert function.note.startswith(("error: ", "missing: ")), function.note
    else:
        assert "x floor" in function.note
        assert isinstance(function.stats["ratio_to_floor"], float)
        assert "yaml_imported" not in function.stats, "the function read YAML: it must read JSON"
        assert "x floor" in uncompiled.note, uncompiled.note


def test_table_has_aligned_columns(rows: list[Row]) -> None:
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["suite", "name", "value", "unit", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    unit_column = lines[0].index("unit")
    for line in lines[2:]:
        assert line[unit_column : unit_column + 2] == "ms"


def test_missing_and_broken_function_modules_become_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_fn.py").write_text("raise RuntimeError('half written')\n")
    (tmp_path / "fine_fn.py").write_text(
        "import os, json\n"
        "from sotong.config import load_hospital\n"
        "hospital = load_hospital()\n"
        "assert os.environ['SOTONG_HOSPITAL_CONFIG'].endswith('.json')\n"
        "assert os.environ['POWERTOOLS_SERVICE_NAME'] == 'fine'\n"
        "def handler(event, context):\n"
        "    return hospital.hospital_id\n"
    )
    monkeypatch.setattr(coldstart, "FUNCTIONS_DIR", tmp_path)
    monkeypatch.setattr(
        coldstart,
        "FUNCTIONS",
        (
            Function(name="ghost", handler="ghost_fn.handler", description="not written yet"),
            Function(name="broken", handler="broken_fn.handler", description="raises"),
            Function(name="fine", handler="fine_fn.handler", description="reads the config"),
        ),
    )
    by_name = {row.name: row for row in coldstart.coldstart(Options(runs=1, warmup=0))}
    fine = by_name["fine"]
    assert isinstance(fine.value, float)
    assert fine.value > 0
    assert isinstance(fine.stats["ratio_to_floor"], float)
    assert "yaml_imported" not in fine.stats, "the hospital config was read from YAML"
    assert fine.stats["boto3_at_init"] in (0, 1)
    assert by_name["ghost"].value is None
    assert by_name["ghost"].note.startswith("missing")
    assert by_name["broken"].value is None
    assert by_name["broken"].note == "error: RuntimeError: half written"


def test_unknown_suite_or_function_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown suite"):
        build_rows(Options(only=("nope",)))
    with pytest.raises(ValueError, match="unknown function"):
        coldstart.selected_functions(Options(functions=("nope",)))


def test_statistics() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert summary([3.0, 1.0, 2.0]) == {"median": 2.0, "p90": 3.0, "min": 1.0, "runs": 3}


def test_command_line_lists_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    assert "coldstart" in capsys.readouterr().out.split()
    assert cli.main(["--only", "nope"]) == 2
    assert "unknown suite" in capsys.readouterr().err


def test_the_table_is_all_it_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools import Logger, Metrics

    from bench import core

    def spilling(options: Options) -> list[Row]:
        # what a function run in-process does: a metric (EMF) line and a log line on stdout
        metrics = Metrics(namespace="SotongBench", service="spill")
        metrics.add_metric(name="Spilled", unit="Count", value=1)
        metrics.flush_metrics()
        Logger(service="spill").warning("a log line")
        print("a stray print")
        return [Row("spill", "row", 1.0, "ms")]

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setitem(core._SUITES, "spill", spilling)
    assert cli.main(["--only", "spill", "--runs", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    for spilled in ("Spilled", "a log line", "a stray print", "{"):
        assert spilled not in out, out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split() == ["suite", "name", "value", "unit", "note"]
    assert table[2].split() == ["spill", "row", "1.0", "ms"]
