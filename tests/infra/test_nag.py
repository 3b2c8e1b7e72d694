"""cdk-nag (AwsSolutions and HIPAA Security) passes, and every acknowledgment says why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs

from infra.nag import PACKS, add_checks
from infra.report import nag_findings
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

RULE_ID = re.compile(r"^(AwsSolutions|HIPAA\.Security)-[A-Za-z0-9]+(\[.+\])?$")


def test_no_unacknowledged_findings(synth: Synth) -> None:
    findings = nag_findings(synth.outdir)
    assert findings == [], "\n".join(map(str, findings))
    assert synth.error is None, synth.error


def test_every_acknowledgment_names_a_rule_and_a_specific_reason(synth: Synth) -> None:
    acknowledged = [
        rule
        for resource in synth.template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged, "expected the acknowledgments to be copied into the template"
    for rule in acknowledged:
        assert RULE_ID.match(rule["id"]), rule["id"]
        assert len(rule["reason"]) >= 60, rule


def test_the_checks_do_report_findings(tmp_path: Path) -> None:
    """A known-bad stack: proves both packs run and that their findings are read back."""
    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    stack = Stack(app, "Bad")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    logs.LogGroup(stack, "Forever", retention=logs.RetentionDays.INFINITE)
    add_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {finding.rule for finding in nag_findings(tmp_path)}
    assert {"AwsSolutions-SQS2", "AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules
    assert {
        "HIPAA.Security-CloudWatchLogGroupEncrypted",
        "HIPAA.Security-CloudWatchLogGroupRetentionPeriod",
    } <= rules
    assert {finding.pack for finding in nag_findings(tmp_path)} == set(PACKS)
