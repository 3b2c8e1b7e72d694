"""The CDK app: `python -m infra.app` (what cdk.json runs, and `make synth`).

Every hospital file in the hospitals directory becomes a stack `Sotong-<hospital_id>`;
`-c hospital=<id>` synthesizes only that one. A broken hospital file fails the synth with a
message naming the file, the field and the problem. cdk-nag checks run on every synth.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment

from infra.nag import add_checks
from infra.report import nag_findings
from infra.stack import SotongStack
from sotong.config.loader import ConfigError, hospital_files, load_hospital_file
from sotong.config.schema import HospitalConfig

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REGION = "ap-northeast-2"


class SynthError(Exception):
    """The app cannot be built as asked; the message says why and what to do."""


RUNTIME_REQUIREMENTS = REPO / "requirements" / "runtime.in"


def pinned_powertools() -> str:
    """The Powertools version the functions are tested with (the runtime pin), which is also the
    layer they are deployed with: what is deployed is what is tested."""
    found = re.search(
        r"^aws-lambda-powertools==([0-9][0-9A-Za-z.]*)\s*$",
        RUNTIME_REQUIREMENTS.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    if found is None:
        raise SynthError(f"{RUNTIME_REQUIREMENTS.name} pins no exact aws-lambda-powertools version")
    return found.group(1)


def cdk_json_context() -> dict[str, Any]:
    """The context in cdk.json, so that running the app without the CDK CLI sees it too."""
    path = REPO / "cdk.json"
    if not path.exists():
        return {}
    context: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    return context


def load_hospitals(directory: Path) -> list[HospitalConfig]:
    files = hospital_files(directory)
    if not files:
        raise SynthError(f"{directory}: no hospital files (*.yaml) found")
    configs = [load_hospital_file(file) for file in files]
    seen: dict[str, Path] = {}
    for file, config in zip(files, configs, strict=True):
        if config.hospital_id in seen:
            raise SynthError(
                f"{file}: hospital_id: '{config.hospital_id}' is already used by "
                f"{seen[config.hospital_id]}; every hospital needs its own id"
            )
        seen[config.hospital_id] = file
    return configs


def select(configs: list[HospitalConfig], only: str | None) -> list[HospitalConfig]:
    if only is None:
        return configs
    chosen = [config for config in configs if config.hospital_id == only]
    if not chosen:
        known = ", ".join(sorted(config.hospital_id for config in configs))
        raise SynthError(
            f"unknown hospital '{only}' (-c hospital={only}); known hospitals: {known}"
        )
    return chosen


def build_app(
    hospitals_dir: str | os.PathLike[str] | None = None,
    only: str | None = None,
    outdir: str | os.PathLike[str] | None = None,
    *,
    build_dir: str | os.PathLike[str] | None = None,
    context: Mapping[str, Any] | None = None,
    cfn_validation: bool = True,
) -> App:
    """The app with one stack per hospital (or only `only`), cdk-nag checks attached.

    Context comes from cdk.json, then `context`, then the CDK CLI (`-c key=value`).
    Raises ConfigError for a broken hospital file and SynthError for an unknown hospital.
    `cfn_validation=False` skips CDK's built-in CloudFormation schema validation (seconds per
    synth) for callers that lint the templates with cfn-lint themselves.
    """
    app = App(
        outdir=str(outdir) if outdir is not None else None,
        builtin_cloud_formation_validation=cfn_validation,
        context={**cdk_json_context(), **(context or {})},
    )
    if hospitals_dir is None:
        hospitals_dir = REPO / str(app.node.try_get_context("hospitals_dir") or "hospitals")
    if only is None:
        only = app.node.try_get_context("hospital")
    configs = select(load_hospitals(Path(hospitals_dir)), only)

    version = pinned_powertools()
    env = Environment(
        account=app.node.try_get_context("account") or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=(
            app.node.try_get_context("region")
            or os.environ.get("CDK_DEFAULT_REGION")
            or DEFAULT_REGION
        ),
    )
    for config in configs:
        SotongStack(
            app,
            config=config,
            powertools_version=version,
            build_dir=Path(build_dir) if build_dir is not None else REPO / ".build",
            env=env,
        )
    add_checks(app)
    return app


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.app", description=__doc__)
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context value, as with the CDK CLI (e.g. -c hospital=demo)",
    )
    parser.add_argument("--outdir", help="cloud assembly directory (default: cdk.out)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    context: dict[str, str] = {}
    for item in args.context:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: context '{item}' is not KEY=VALUE", file=sys.stderr)
            return 2
        context[key] = value
    # Under the CDK CLI, CDK_OUTDIR names the output directory and App reads it itself.
    outdir = args.outdir or (None if os.environ.get("CDK_OUTDIR") else "cdk.out")
    try:
        app = build_app(outdir=outdir, context=context)
        assembly = app.synth()
    except (ConfigError, SynthError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # jsii's form of a failed validation: the report went to stderr already.
        if not str(error).startswith("ValidationFailed"):
            raise
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    findings = nag_findings(assembly.directory)
    for finding in findings:
        print(f"{finding}", file=sys.stderr)
    if findings:
        print(f"error: {len(findings)} unacknowledged cdk-nag finding(s)", file=sys.stderr)
        return 1
    for stack in assembly.stacks:
        print(f"synthesized {stack.stack_name} -> {stack.template_full_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
