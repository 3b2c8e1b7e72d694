"""Alarms that page someone: one encrypted topic, an alarm on every dead-letter queue, function,
schedule, table and the API, each with its runbook, and a dead-letter path on every async
invocation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.constructs.monitoring import MUST_RUN
from sotong.resources import FUNCTIONS, QUEUES, TABLES
from sotong.resources import function as function_spec
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
    wanted |= {"provider-balance-low", "provider-error-rate"}
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


def test_the_provider_balance_and_error_rate_alarms(synth: Synth) -> None:
    found = alarms(synth)
    balance = found["provider-balance-low"]
    assert (balance["MetricName"], balance["Namespace"]) == ("ProviderBalance", "Sotong")
    assert {"Name": "service", "Value": "provider_balance"} in balance["Dimensions"]
    assert {"Name": "hospital", "Value": HOSPITAL} in balance["Dimensions"]
    assert balance["Threshold"] == synth.config.sender.balance_alarm_krw == 50_000
    assert balance["Statistic"] == "Minimum"
    assert balance["Period"] == 2 * 3600  # two hourly readings
    assert balance["ComparisonOperator"] == "LessThanThreshold"
    assert balance["TreatMissingData"] == "breaching"  # no reading for 2 h pages too
    # the check that feeds it runs hourly
    assert function_spec("provider_balance").schedule.expression == "rate(1 hour)"  # type: ignore[union-attr]

    rate = found["provider-error-rate"]
    assert rate["Threshold"] == 0.2
    assert rate["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    (expression,) = [m for m in rate["Metrics"] if "Expression" in m]
    assert expression["Expression"] == (
        "IF((FILL(sent, 0) + FILL(retry, 0) + FILL(uncertain, 0) + FILL(failed, 0)) >= 20, "
        "(FILL(retry, 0) + FILL(uncertain, 0) + FILL(failed, 0)) / "
        "(FILL(sent, 0) + FILL(retry, 0) + FILL(uncertain, 0) + FILL(failed, 0)), 0)"
    )
    inputs = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    assert {i: m["MetricName"] for i, m in inputs.items()} == {
        state: f"Message_{state}" for state in ("sent", "retry", "uncertain", "failed")
    }
    for metric in inputs.values():
        assert {"Name": "service", "Value": "notification_sender"} in metric["Dimensions"]


def dashboard_body(synth: Synth) -> dict[str, Any]:
    (dashboard,) = cfn.of_type(synth.template, "AWS::CloudWatch::Dashboard").values()
    rendered = cfn.render(dashboard["Properties"]["DashboardBody"])
    body: dict[str, Any] = json.loads(rendered)
    return body


def test_the_dashboard_shows_cold_starts_and_durations_of_every_function(synth: Synth) -> None:
    widgets = dashboard_body(synth)["widgets"]
    log_groups = {
        spec.name: cfn.function(synth.template, spec, HOSPITAL)[1]["Properties"]["LoggingConfig"][
            "LogGroup"
        ]
        for spec in FUNCTIONS
    }
    queries = [w["properties"] for w in widgets if w["type"] == "log"]
    cold = next(q for q in queries if q["title"].startswith("Cold starts and durations"))
    for spec in FUNCTIONS:
        assert "${" + log_groups[spec.name]["Ref"] + "}" in cold["query"], spec.name
    assert 'filter @type = "REPORT"' in cold["query"]
    assert "sum(ispresent(@initDuration)) as cold_starts" in cold["query"]
    assert "pct(@duration, 99)" in cold["query"]
    assert cold["view"] == "table"
    per_hour = next(q for q in queries if q["title"] == "Cold starts per hour")
    assert "ispresent(@initDuration)" in per_hour["query"]
    # the log groups' CloudFormation names carry Functions<Name>Logs, which the query parses
    logical_ids = {group["Ref"] for group in log_groups.values()}
    assert all(re.fullmatch(r"Functions[A-Za-z0-9]+?Logs[0-9A-F]{8}", i) for i in logical_ids)
    graphs = [w["properties"] for w in widgets if w["type"] == "metric"]
    for title, stat in (("Durations (p90)", "p90"), ("Durations (p99)", "p99")):
        (graph,) = [g for g in graphs if g.get("title") == title]
        durations = [m for m in graph["metrics"] if "Duration" in m]
        assert len(durations) == len(FUNCTIONS), title
        assert all(m[-1].get("stat") == stat for m in durations), title
    # no custom cold-start metric and no Lambda Insights: nothing billed per function
    assert "ColdStart" not in json.dumps(widgets)
    for spec in FUNCTIONS:
        layers = cfn.function(synth.template, spec, HOSPITAL)[1]["Properties"].get("Layers", [])
        assert not any("LambdaInsightsExtension" in json.dumps(layer) for layer in layers)
