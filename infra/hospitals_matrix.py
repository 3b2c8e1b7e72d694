"""The deploy workflow's matrix: `python -m infra.hospitals_matrix [ID]` prints the hospital ids
of hospitals/*.yaml as a JSON list (only ID when given), after validating every file; a broken
or unknown one fails before anything is deployed."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from infra.app import SynthError, load_hospitals, select
from sotong.complaints import rulebook
from sotong.config.loader import ConfigError

HOSPITALS = Path(__file__).resolve().parents[1] / "hospitals"


def matrix(only: str | None = None, directory: Path = HOSPITALS) -> list[str]:
    configs = load_hospitals(directory)
    for config in configs:
        rulebook.checked(config, str(directory / f"{config.hospital_id}.yaml"))
    return [config.hospital_id for config in select(configs, only or None)]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        print(json.dumps(matrix(args[0] if args else None)))
    except (ConfigError, SynthError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
