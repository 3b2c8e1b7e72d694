"""`sotong`: the operator's command line (validate configs, read the sandbox outbox, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _validate(args: argparse.Namespace) -> int:
    from sotong.config import ConfigError, load_hospital_file

    failed = 0
    for path in args.files:
        try:
            config = load_hospital_file(path)
        except ConfigError as error:
            failed += 1
            print(error.render(), file=sys.stderr)
        else:
            print(
                f"{path}: ok ({config.hospital_id}, {len(config.departments)} departments, "
                f"{len(config.templates)} templates, {len(config.treatment_tags)} treatment tags)"
            )
    return 1 if failed else 0


def _local(args: argparse.Namespace) -> int:
    # The local stack's commands live beside it; they are dev tools, not part of the layer.
    from sotong_local import commands

    result: int = commands.main(args.local_command, args.rest)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sotong", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check hospital config files")
    validate.add_argument("files", nargs="+", help="hospital YAML/JSON files")
    validate.set_defaults(run=_validate)

    for name, help_text in (
        ("outbox", "show what the local sandbox provider sent (as patients would see it)"),
        ("schedule", "run a scheduled function of the running local stack now"),
        ("token", "print a local staff sign-in token for the local stack"),
    ):
        local = sub.add_parser(name, help=help_text, add_help=False)
        local.add_argument("rest", nargs=argparse.REMAINDER)
        local.set_defaults(run=_local, local_command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
