"""The deploy path as the README gives it: `npm install` pins the CDK CLI, then
`npx cdk synth -c hospital=demo` runs the app through that CLI.

The CLI and aws-cdk-lib must move together: the library writes a cloud assembly of its schema
version (55 for aws-cdk-lib 2.275) and names the oldest CLI that reads it; a CLI that supports an
older schema stops with "Cloud assembly schema version mismatch". These tests read both sides
from what is installed (the library in .venv, the CLI in the repo's node_modules, which is
gitignored and kept between runs), so bumping one without the other fails here, not at deploy.

Without Node.js/npm the CLI tests fail (`make test` needs Node.js anyway); a pinned CLI
that is not installed yet is installed once with `npm install --no-audit --no-fund` (the repo's
.npmrc keeps npm from writing a lockfile).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aws_cdk.cloud_assembly_schema import Manifest

from tests.infra.conftest import HOSPITAL, REPO

pytestmark = pytest.mark.infra
PACKAGE_JSON = REPO / "package.json"
INSTALLED_CLI = REPO / "node_modules" / "aws-cdk"
EXACT = re.compile(r"^\d+\.\d+\.\d+$")
# The CLI bundles @aws-cdk/cloud-assembly-schema; its schema/version.json names the revision.
BUNDLED_SCHEMA = re.compile(
    r"cloud-assembly-schema/schema/version\.json.{0,400}?revision:\s*(\d+)", re.DOTALL
)
NODE_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_VERSION_CHECK": "1",
}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split("."))


def pinned_cli() -> str:
    package = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    return str(package["devDependencies"]["aws-cdk"])


def installed_cli_version() -> str | None:
    manifest = INSTALLED_CLI / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def cli_schema_revision() -> int:
    """The highest cloud assembly schema major the installed CLI reads."""
    bundle = (INSTALLED_CLI / "lib" / "index.js").read_text(encoding="utf-8")
    found = BUNDLED_SCHEMA.search(bundle)
    assert found, "the CLI bundle no longer carries cloud-assembly-schema/schema/version.json"
    return int(found.group(1))


@pytest.fixture(scope="session")
def cdk_cli() -> Path:
    """The pinned CLI in node_modules: installed when missing or another version."""
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    # `make test` needs Node.js already (the CDK's jsii, `make console`): its absence is a broken
    # machine, not a reason to leave the deploy path unchecked
    assert not missing, f"Node.js/npm not installed ({', '.join(missing)} not on PATH)"
    if installed_cli_version() != pinned_cli():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    assert installed_cli_version() == pinned_cli()
    return INSTALLED_CLI


def test_package_json_pins_one_exact_cli_of_the_librarys_line() -> None:
    pin = pinned_cli()
    assert EXACT.match(pin), f"package.json must pin an exact aws-cdk version, not '{pin}'"
    library_major = int(Manifest.version().split(".")[0])  # the assembly schema it writes
    assert library_major >= 1
    minimum = Manifest.cli_version()  # the oldest CLI aws-cdk-lib says reads its assembly
    assert minimum is not None
    assert version_tuple(pin) >= version_tuple(minimum), (
        f"aws-cdk {pin} is older than the CLI aws-cdk-lib needs ({minimum}): bump package.json"
    )
    # aws-cdk-lib 2.x is deployed by the 2.x CLI line (2.1000.0 and later).
    assert version_tuple(pin)[0] == 2, f"aws-cdk {pin} is not the CLI line of aws-cdk-lib 2"


def test_the_installed_cli_reads_the_librarys_assembly_schema(cdk_cli: Path) -> None:
    library_schema = int(Manifest.version().split(".")[0])
    assert cli_schema_revision() >= library_schema, (
        f"aws-cdk {installed_cli_version()} reads assembly schema up to {cli_schema_revision()}, "
        f"aws-cdk-lib writes {library_schema}: the CLI and the library must move together"
    )


def test_npx_cdk_synth_works_as_the_readme_says(cdk_cli: Path, tmp_path: Path) -> None:
    """`npx cdk synth -c hospital=demo` from the repo, as an operator runs it (only the output
    directory is a temporary one, so a developer's cdk.out is left alone)."""
    outdir = tmp_path / "cdk.out"
    env = {**os.environ, **NODE_ENV}
    done = subprocess.run(
        ["npx", "cdk", "synth", "-c", f"hospital={HOSPITAL}", "--output", str(outdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "schema version mismatch" not in output.lower()
    assert f"Sotong-{HOSPITAL}" in output
    assert (outdir / f"Sotong-{HOSPITAL}.template.json").exists()
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest["artifacts"]).count(f"Sotong-{HOSPITAL}") == 1
