"""cdk-nag findings, read back from the validation report the synth writes into the assembly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from infra.nag import PACKS

REPORT_FILE = "validation-report.json"


@dataclass(frozen=True)
class Finding:
    pack: str
    rule: str
    severity: str
    path: str
    description: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.rule} at {self.path}: {self.description}"


def nag_findings(assembly_dir: str | Path) -> list[Finding]:
    """Every unacknowledged finding (error or warning) of the cdk-nag packs in the last synth."""
    path = Path(assembly_dir) / REPORT_FILE
    if not path.exists():  # no plugin reported anything
        return []
    report = json.loads(path.read_text(encoding="utf-8"))
    return [
        Finding(
            pack=plugin["pluginName"],
            rule=violation["ruleName"],
            severity=violation.get("severity", "error"),
            path=construct.get("constructPath", "?"),
            description=violation.get("description", ""),
        )
        for plugin in report.get("pluginReports", [])
        if plugin.get("pluginName") in PACKS
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]
