"""The functions' code ships compiled when an interpreter of the runtime's version is there, in
pyc files the runtime takes without reading the source (its file system is read-only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.constructs.functions import (
    build_function_code,
    build_shared_layer,
    bytecode_interpreter,
    compile_bytecode,
)
from tests.infra.conftest import HOSPITAL, Synth

pytestmark = pytest.mark.infra

HERE = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def test_the_interpreter_is_one_of_the_runtime_version_or_none() -> None:
    assert bytecode_interpreter(HERE) == sys.executable
    assert bytecode_interpreter("python0.9") is None


def test_without_an_interpreter_nothing_is_compiled(tmp_path: Path) -> None:
    layer = build_shared_layer(tmp_path, None)
    assert not list(layer.rglob("*.pyc"))
    code = build_function_code(tmp_path, None)
    assert (code / "public_api.py").is_file()
    assert not list(code.rglob("*.pyc"))


def test_the_compiled_layer_runs_without_its_sources(tmp_path: Path) -> None:
    layer = build_shared_layer(tmp_path, sys.executable) / "python"
    compiled = list((layer / "sotong").rglob("*.pyc"))
    assert len(compiled) >= len(list((layer / "sotong").rglob("*.py"))) - 1
    # unchecked-hash: the runtime never reads the source again, so a broken one cannot matter
    (layer / "sotong" / "phone.py").write_text("this is not python\n", encoding="utf-8")
    probe = "import sotong.phone as phone\nprint(phone.normalize_korean_phone('010-1234-5678'))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["+821012345678"]
    # the files name where Lambda puts them, never this machine's build directory
    assert all(str(tmp_path).encode() not in pyc.read_bytes() for pyc in compiled)


def test_compiled_bytes_are_the_same_every_build(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory in (first, second):
        directory.mkdir()
        (directory / "module.py").write_text("VALUE = 1\n", encoding="utf-8")
        assert compile_bytecode(directory, "/var/task", sys.executable)
    (one,) = first.rglob("*.pyc")
    (other,) = second.rglob("*.pyc")
    assert one.read_bytes() == other.read_bytes()


def test_the_synth_compiles_or_says_why_not(synth: Synth) -> None:
    metadata = json.loads((synth.outdir / f"Sotong-{HOSPITAL}.metadata.json").read_text("utf-8"))
    warnings = [
        entry["data"]
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:warning" and "sotong:no-bytecode" in entry["data"]
    ]
    compiled = list((synth.build_dir / "shared-layer" / "python" / "sotong").rglob("*.pyc"))
    handlers = list((synth.build_dir / "functions").rglob("*.pyc"))
    if bytecode_interpreter() is None:
        assert len(warnings) == 1, warnings
        assert "python3.14" in warnings[0]
        assert not compiled
        assert not handlers
    else:
        assert not warnings
        assert compiled
        assert len(handlers) == len(list((synth.build_dir / "functions").glob("*.py")))
