"""Reading hospital config files, with errors that name the file, the field and the problem."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sotong.config.schema import HospitalConfig

CONFIG_PATH_ENV = "SOTONG_HOSPITAL_CONFIG"
LAYER_CONFIG_PATH = "/opt/hospital/config.json"
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
    """The hospital this function serves: the layer's JSON in AWS, a file locally."""
    return load_hospital_file(os.environ.get(CONFIG_PATH_ENV, LAYER_CONFIG_PATH))
