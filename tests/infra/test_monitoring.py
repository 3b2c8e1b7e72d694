"""Alarms that page someone: one encrypted topic, an alarm on every dead-letter queue, function,
schedule, table and the API, each with its runbook, and a dead-letter path on every async
invocation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.constructs.monitoring import MUST_RUN
from sotong.resources import FUNCTIONS, QUEUES, TABLES
from tests.infra import cfn
from tests.infra.conftest import HOSPITAL, REPO, Synth

pytestmark = pytest.mark.infra
RUNBOOK = REPO / "docs" / "alarms.md"


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    found = cfn.of_type(synth.template, "AWS::CloudWatch::Alarm")
    return {
        r["Properties"]["AlarmName"].removeprefix(f"sotong-{HOSPITAL}-"): r["Properties"]
        for r in found.values()
    }


def topic_id(synth: Synth) -> str:
    (logical_id,) = cfn.of_type(synth.template, "AWS::SNS::Topic")
    return logical_id


def test_one_topic_encrypted_with_the_stacks_key_pages_on_call_and_ops(synth: Synth) -> None:
    (topic,) = cfn.of_type(synth.template, "AWS::SNS::Topic").values()
    (key_id,) = cfn.of_type(synth.template, "AWS::KMS::Key")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    subscriptions = {
        (s["Properties"]["Protocol"], s["Properties"]["Endpoint"])
        for s in cfn.of_type(synth.template, "AWS::SNS::Subscription").values()
    }
    config = synth.config
    expected = {("email", config.on_call.email), ("sms", config.on_call.phone)}
    expected |= {("email", c.email) for c in config.ops_contacts if c.email}
    expected |= {("sms", c.phone) for c in config.ops_contacts if c.phone}
    assert subscriptions == expected
    policies = cfn.of_type(synth.template, "AWS::SNS::TopicPolicy").values()
    denies = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
    ]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_every_path_that_can_fail_has_an_alarm(synth: Synth) -> None:
    names = set(alarms(synth))
    wanted = {f"dlq-{q.name}" for q in QUEUES} | {"dlq-scheduler", "dlq-email-events"}
    wanted |= {"dlq-async-failures", "api-5xx", "api-4xx-rate"}
    for spec in FUNCTIONS:
        wanted |= {
            f"{spec.name.replace('_', '-')}-errors",
            f"{spec.name.replace('_', '-')}-throttles",
        }
    wanted |= {f"{name.replace('_', '-')}-not-running" for name in MUST_RUN}
    wanted |= {"sender-uncertain", "sender-failed", "webhook-rejected"}
    wanted |= {"critical-unacknowledged", "outbox-publish-failed"}
    for table in TABLES:
        wanted |= {f"table-{table.name}-throttles", f"table-{table.name}-errors"}
    assert wanted <= names, wanted - names


def test_each_alarm_pages_the_topic_and_names_its_runbook(synth: Synth) -> None:
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', RUNBOOK.read_text(encoding="utf-8")))
    for name, alarm in alarms(synth).items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id(synth)}], name
        assert alarm["AlarmDescription"].endswith(f"Runbook: docs/alarms.md#{name}"), name
        assert name in anchors, f"docs/alarms.md has no section for {name}"
        assert alarm["Threshold"] > 0, name


def test_the_metrics_and_thresholds(synth: Synth) -> None:
    found = alarms(synth)
    uncertain = found["sender-uncertain"]
    assert (uncertain["MetricName"], uncertain["Namespace"]) == ("Message_uncertain", "Sotong")
    assert {"Name": "service", "Value": "notification_sender"} in uncertain["Dimensions"]
    assert uncertain["Threshold"] == 1
    assert uncertain["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    critical = found["critical-unacknowledged"]
    assert critical["MetricName"] == "CriticalUnacknowledged"
    dlq = found["dlq-notifications"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    for name, minutes in MUST_RUN.items():
        stopped = found[f"{name.replace('_', '-')}-not-running"]
        assert stopped["MetricName"] == "Invocations"
        assert stopped["Period"] == minutes * 60
        assert stopped["ComparisonOperator"] == "LessThanThreshold"
        assert stopped["TreatMissingData"] == "breaching"  # a stopped schedule reports nothing
    assert found["api-5xx"]["MetricName"] == "5XXError"


def test_every_async_invocation_has_a_dead_letter_path(synth: Synth) -> None:
    configs = cfn.of_type(synth.template, "AWS::Lambda::EventInvokeConfig").values()
    failing_to = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]["DestinationConfig"]["OnFailure"]
        for c in configs
    }
    for spec in FUNCTIONS:
        if spec.schedule or spec.event_rule:
            function_id, _ = cfn.function(synth.template, spec, HOSPITAL)  # type: ignore[arg-type]
            assert function_id in failing_to, spec.name
    rules = cfn.of_type(synth.template, "AWS::Events::Rule").values()
    for rule in rules:
        for target in rule["Properties"]["Targets"]:
            assert "DeadLetterConfig" in target, rule
    schedules = cfn.of_type(synth.template, "AWS::Scheduler::Schedule").values()
    for schedule in schedules:
        assert "DeadLetterConfig" in schedule["Properties"]["Target"]


def test_a_dashboard_per_hospital(synth: Synth) -> None:
    (dashboard,) = cfn.of_type(synth.template, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"sotong-{HOSPITAL}-operations"
