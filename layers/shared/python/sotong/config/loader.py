"""Reading hospital config files, with errors that name the file, the field and the problem."""

from __future__ import annotations

import json
import os
import pickle
import re
from copy import deepcopy
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sotong.config.schema import HospitalConfig

CONFIG_PATH_ENV = "SOTONG_HOSPITAL_CONFIG"
LAYER_CONFIG_PATH = "/opt/hospital/config.json"
VALIDATED_SUFFIX = ".validated.pickle"
"""Beside the layer's config.json: the same config, validated when the layer was built."""
SHIPPED_HOSPITALS = Path(__file__).resolve().parents[5] / "hospitals"
"""The checkout's `hospitals/` (only on a developer's or operator's machine: in a function the
config is the layer's JSON, its network directory already read into it)."""


class ConfigError(Exception):
    """A hospital config that cannot be used; `problems` holds (field path, problem) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: invalid hospital config ({len(self.problems)} problem(s))"]
        lines += [
            f"  {self.source}: {path or '(top level)'}: {problem}"
            for path, problem in self.problems
        ]
        return "\n".join(lines)


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# Cross-field checks run on a whole model and name the field they mean at the start of their
# message ("complaints.routing.billing: department 'x' is not defined"); that becomes the path.
_SEGMENT = r"[A-Za-z_]\w*(?:\[\d+\])*(?: \([\w-]+\))?"
_PATH_IN_MESSAGE = re.compile(rf"^({_SEGMENT}(?:\.{_SEGMENT})*): (.+)$", re.DOTALL)


def _join(base: str, inner: str) -> str:
    if not base or inner == base or inner.startswith((base + ".", base + "[")):
        return inner
    return f"{base}.{inner}"


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        path = field_path(tuple(item["loc"]))
        message = item["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif item["type"] == "value_error" and (match := _PATH_IN_MESSAGE.match(message)):
            path, message = _join(path, match.group(1)), match.group(2)
        problems.append((path, message))
    return problems


def parse_hospital(data: Any, source: str) -> HospitalConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, [("", "the file must hold a mapping of settings")])
    try:
        return HospitalConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, _problems(error)) from None


def _read_yaml(text: str, source: str) -> Any:
    import yaml  # only the CLI, the CDK app and the local stack read YAML

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                raise ConfigError(
                    source, [(str(key), f"duplicate key at line {key_node.start_mark.line + 1}")]
                )
            seen.add(key)
        return loader.construct_mapping(node)

    UniqueKeyLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
    )
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [("", f"{where}not valid YAML ({problem})")]) from None


def load_hospital_file(path: str | os.PathLike[str]) -> HospitalConfig:
    """Load and validate one hospital file (.yaml, .yml or .json)."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(source, [("", f"cannot read the file ({error.strerror})")]) from None
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                source, [("", f"line {error.lineno}: not valid JSON ({error.msg})")]
            ) from None
    else:
        data = _read_yaml(text, source)
    return parse_hospital(_with_network_directory(data, file, source), source)


def _with_network_directory(data: Any, file: Path, source: str) -> Any:
    """`network.directory` (an HSDS JSON file beside the hospital file) read into
    `network.hsds`, so the directory is validated with the config and travels in its JSON."""
    network = data.get("network") if isinstance(data, dict) else None
    if not isinstance(network, dict) or "hsds" in network or not network.get("directory"):
        return data
    name = str(network["directory"])
    if Path(name).name != name:
        raise ConfigError(source, [("network.directory", "a file name beside the hospital file")])
    directory = file.parent / name
    shipped = SHIPPED_HOSPITALS / name
    if not directory.exists() and shipped.exists():
        directory = shipped  # a copy of a shipped hospital file elsewhere: the shipped directory
    try:
        hsds = json.loads(directory.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            source, [("network.directory", f"cannot read {name} ({error.strerror})")]
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            source, [("network.directory", f"{name} line {error.lineno}: not JSON ({error.msg})")]
        ) from None
    return {**data, "network": {**network, "hsds": hsds}}


def hospital_files(directory: str | os.PathLike[str]) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


@lru_cache(maxsize=1)
def load_hospital() -> HospitalConfig:
    """The hospital this function serves: the layer's config in AWS, a file locally.

    The layer carries the config twice, written by one build from one validated object: as
    JSON, and as that object pickled (`write_validated`). A function loads the pickle: building
    the validators of some forty models and running them again costs 20-40 ms of every cold
    start, and would only prove what the build proved. The pickle is as trusted as the code
    beside it (both are the deployed layer, read-only). Without it, or if it cannot be read,
    the JSON is validated as before; a config given as YAML or JSON alone always is."""
    path = Path(os.environ.get(CONFIG_PATH_ENV, LAYER_CONFIG_PATH))
    validated = _validated_path(path)
    if validated.is_file():
        try:
            config = pickle.loads(validated.read_bytes())  # noqa: S301 - the layer's own
        except Exception:  # any problem with it: validate the JSON instead
            config = None
        if isinstance(config, HospitalConfig):
            return config
    return load_hospital_file(path)


def _validated_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.stem + VALIDATED_SUFFIX)


class _SortedSet(set[str]):
    """Pickled as a plain set of its items in sorted order (a set's order follows string
    hashing, which differs per process): one config gives the same bytes in every build, so
    the layer's asset hash changes only when the config does."""

    def __reduce__(self) -> tuple[type[set[str]], tuple[list[str]]]:
        return set, (sorted(self),)


def _with_sorted_sets(value: Any) -> None:
    if isinstance(value, BaseModel):
        object.__setattr__(value, "__pydantic_fields_set__", _SortedSet(value.model_fields_set))
        _with_sorted_sets(list(value.__dict__.values()))
        _with_sorted_sets(list((value.__pydantic_extra__ or {}).values()))
    elif isinstance(value, list | tuple):
        for item in value:
            _with_sorted_sets(item)
    elif isinstance(value, dict):
        _with_sorted_sets(list(value.values()))


def write_validated(config: HospitalConfig, config_path: Path) -> Path:
    """Write `config` beside `config_path` (the layer's config.json) for `load_hospital`."""
    copy = deepcopy(config)
    _with_sorted_sets(copy)
    target = _validated_path(config_path)
    target.write_bytes(pickle.dumps(copy, protocol=5))
    return target
