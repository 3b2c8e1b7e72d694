"""Functions load the config the build validated (the layer's pickle beside its JSON), equal to
validating the JSON again; anything wrong with the pickle falls back to validating the JSON."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.constructs.functions import write_config_layer
from sotong.config import ConfigError, HospitalConfig, load_hospital, load_hospital_file
from sotong.config.loader import CONFIG_PATH_ENV, VALIDATED_SUFFIX, write_validated

ROOT = Path(__file__).resolve().parents[2]
HOSPITALS = sorted((ROOT / "hospitals").glob("*.yaml"))


@pytest.fixture(autouse=True)
def fresh_load() -> Iterator[None]:
    load_hospital.cache_clear()
    yield
    load_hospital.cache_clear()


def layer_files(tmp_path: Path, config: HospitalConfig) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.model_dump(mode="json"), ensure_ascii=False), "utf-8")
    write_validated(config, path)
    return path


@pytest.mark.parametrize("hospital", HOSPITALS, ids=lambda path: path.stem)
def test_the_validated_config_is_the_config(
    hospital: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_hospital_file(hospital)
    path = layer_files(tmp_path, config)
    monkeypatch.setenv(CONFIG_PATH_ENV, str(path))

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the layer's config was validated again")

    with monkeypatch.context() as patched:
        patched.setattr(HospitalConfig, "model_validate", never)
        loaded = load_hospital()
    assert loaded == config
    assert loaded == load_hospital_file(path)  # what validating its JSON gives
    assert loaded.model_fields_set == config.model_fields_set
    assert loaded.zone.key == config.zone.key


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pickle", b"\x80\x05N.", b"\x80\x05]\x94."],
    ids=["empty", "garbage", "None", "a list"],
)
def test_a_broken_or_foreign_pickle_falls_back_to_validating_the_json(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_hospital_file(HOSPITALS[0])
    path = layer_files(tmp_path, config)
    path.with_name("config" + VALIDATED_SUFFIX).write_bytes(content)
    monkeypatch.setenv(CONFIG_PATH_ENV, str(path))
    assert load_hospital() == config


def test_without_the_pickle_the_json_is_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_hospital_file(HOSPITALS[0])
    path = layer_files(tmp_path, config)
    path.with_name("config" + VALIDATED_SUFFIX).unlink()
    broken = json.loads(path.read_text("utf-8"))
    broken["hospital_id"] = "Not An Id"
    path.write_text(json.dumps(broken), "utf-8")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(path))
    with pytest.raises(ConfigError, match="hospital_id"):
        load_hospital()


def test_the_config_layer_carries_the_validated_config(tmp_path: Path) -> None:
    config = load_hospital_file(HOSPITALS[0])
    layer = write_config_layer(config, tmp_path)
    assert sorted(p.name for p in (layer / "hospital").iterdir()) == [
        "config.json",
        "config" + VALIDATED_SUFFIX,
        "rules.json",
    ]


def test_one_config_gives_the_same_bytes_in_every_process(tmp_path: Path) -> None:
    """Set order follows string hashing, different per process: the layer's asset hash must not."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sotong.config import load_hospital_file\n"
        "from sotong.config.loader import write_validated\n"
        "out = Path(sys.argv[2])\n"
        "out.mkdir()\n"
        "write_validated(load_hospital_file(sys.argv[1]), out / 'config.json')\n"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", script, str(HOSPITALS[0]), str(out)],
            env=env,
            check=True,
            cwd=ROOT,
        )
        written = out / ("config" + VALIDATED_SUFFIX)
        digests.add(hashlib.sha256(written.read_bytes()).hexdigest())
    assert len(digests) == 1
