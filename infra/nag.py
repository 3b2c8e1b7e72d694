"""cdk-nag 3 checks on every synth, and acknowledgments that must say why."""

from collections.abc import Mapping

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks
from constructs import IConstruct

PACKS = ("AwsSolutions", "HIPAA.Security")


def add_checks(app: App) -> None:
    """Run both packs as CDK validation plugins: findings land in the synth's validation report."""
    Validations.of(app).add_plugins(
        # Copies each acknowledgment into the template's resource Metadata as an audit trail.
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True),
        HIPAASecurityChecks(app),
    )


def acknowledge(scope: IConstruct, findings: Mapping[str, str]) -> None:
    """Acknowledge findings (rule id -> specific reason) on `scope` and the constructs below it."""
    for rule, reason in findings.items():
        if len(reason) < 20:
            raise ValueError(f"acknowledging {rule} needs a specific reason, not {reason!r}")
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in findings.items())
    )
