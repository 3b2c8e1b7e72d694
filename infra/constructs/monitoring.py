"""Alarms that page someone, a dashboard, and a dead-letter queue behind every async invocation.

One SNS topic per hospital (the stack's key) pages the on-call contact and the ops team (e-mail
and SMS from the config). Every alarm names its runbook: docs/alarms.md#<alarm>.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encryption import allow_service
from infra.constructs.queues import dead_letter_queue
from infra.naming import pascal, physical
from sotong.config.schema import HospitalConfig
from sotong.resources import FUNCTIONS, TABLES

NAMESPACE = "Sotong"
RUNBOOK = "docs/alarms.md"
FIVE_MINUTES = Duration.minutes(5)
# Schedules that must run: a missing run means no recall, no escalation, no release.
MUST_RUN = {
    "recall_dispatcher": 10,
    "sla_sweeper": 15,
    "notification_release": 15,
    "referral_sweeper": 15,  # an unanswered urgent referral must page someone
}
# What the provider says it did with what the sender handed it (held/suppressed never reach it).
PROVIDER_OUTCOMES = ("sent", "retry", "uncertain", "failed")
PROVIDER_ERROR_RATE = 0.2
"""a fifth of the provider's answers not `sent`, over 15 minutes with at least"""
PROVIDER_ERROR_MIN_MESSAGES = 20
# A cold start's REPORT line carries "Init Duration" (@initDuration in Logs Insights); the log
# group names are CloudFormation's, `<stack>-Functions<Name>Logs<hash>-<suffix>`.
COLD_START_QUERY = [
    'filter @type = "REPORT"',
    "parse @log /Functions(?<function>[A-Za-z0-9]+?)Logs/",
    "stats sum(ispresent(@initDuration)) as cold_starts, count(*) as invocations, "
    "avg(@initDuration) as init_avg_ms, max(@initDuration) as init_max_ms, "
    "pct(@duration, 50) as p50_ms, pct(@duration, 99) as p99_ms, max(@duration) as max_ms "
    "by function",
    "sort cold_starts desc",
]
COLD_STARTS_PER_HOUR = [
    'filter @type = "REPORT" and ispresent(@initDuration)',
    "stats count(*) as cold_starts by bin(1h)",
]
BALANCE_PERIOD = Duration.hours(2)
"""two hourly readings: one late run is no page, two missing ones are"""


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HospitalConfig,
        key: kms.IKey,
        functions: Mapping[str, lambda_.Function],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        tables: Mapping[str, dynamodb.TableV2],
        rest_api: apigateway.RestApi,
        queues: Mapping[str, sqs.IQueue] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._hospital_id = hospital_id = config.hospital_id
        self.topic = sns.Topic(
            self,
            "Alerts",
            topic_name=physical(hospital_id, "alerts"),
            display_name=f"Sotong {hospital_id}",
            master_key=key,
            enforce_ssl=True,
        )
        # CloudWatch alarms publish to the encrypted topic as the cloudwatch service.
        allow_service(key, "AllowCloudWatchAlarmsToPublish", "cloudwatch.amazonaws.com")
        for contact in (config.on_call, *config.ops_contacts):
            if contact.email:
                self.topic.add_subscription(subscriptions.EmailSubscription(contact.email))
            if contact.phone:
                self.topic.add_subscription(subscriptions.SmsSubscription(contact.phone))
        self._action = actions.SnsAction(self.topic)

        self.async_failures = dead_letter_queue(
            self,
            "AsyncFailures",
            name=physical(hospital_id, "async-failures"),
            key=key,
            of_what="the asynchronously invoked functions (their on-failure destination)",
        )
        for spec in FUNCTIONS:
            if spec.schedule or spec.event_rule:
                function = functions[spec.name]
                function.configure_async_invoke(
                    on_failure=destinations.SqsDestination(self.async_failures),
                    retry_attempts=2,
                    max_event_age=Duration.hours(6),
                )
                assert function.role is not None
                key.grant(function.role, "kms:GenerateDataKey", "kms:Decrypt")

        queues = {**dead_letter_queues, "async-failures": self.async_failures}
        for name, queue in queues.items():
            self._alarm(
                f"dlq-{name}",
                queue.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                1,
                f"messages are waiting in the {name} dead-letter queue",
            )
        for spec in FUNCTIONS:
            function = functions[spec.name]
            self._alarm(
                f"{spec.name}-errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"{spec.name} failed",
            )
            self._alarm(
                f"{spec.name}-throttles",
                function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"{spec.name} was throttled",
            )
        for name, minutes in MUST_RUN.items():
            self._alarm(
                f"{name}-not-running",
                functions[name].metric_invocations(
                    period=Duration.minutes(minutes), statistic="Sum"
                ),
                1,
                f"{name} did not run for {minutes} minutes",
                below=True,
            )
        for name, metric, service, what in (
            (
                "sender-uncertain",
                "Message_uncertain",
                "notification_sender",
                "messages whose sending is unknown",
            ),
            ("sender-failed", "Message_failed", "notification_sender", "messages that failed"),
            (
                "webhook-rejected",
                "WebhookRejected",
                "provider_webhook",
                "provider webhooks "
                "rejected (a signing mismatch stops delivery reports and 080 opt-outs)",
            ),
            (
                "critical-unacknowledged",
                "CriticalUnacknowledged",
                "sla_sweeper",
                "a critical complaint nobody acknowledged within its SLA",
            ),
            (
                "outbox-publish-failed",
                "OutboxPublishFailed",
                "outbox_relay",
                "outbox items SQS did not take (the sweeper retries them)",
            ),
        ):
            self._alarm(name, self._custom(metric, service), 1, what)
        for table in TABLES:
            table_name = tables[table.name].table_name
            throttles = cloudwatch.MathExpression(
                expression="reads + writes",
                using_metrics={
                    "reads": self._dynamodb("ReadThrottleEvents", table_name),
                    "writes": self._dynamodb("WriteThrottleEvents", table_name),
                },
                period=FIVE_MINUTES,
                label=f"{table.name} throttled requests",
            )
            self._alarm(f"table-{table.name}-throttles", throttles, 1, f"{table.name} throttled")
            errors = cloudwatch.MathExpression(
                expression="SUM(METRICS())",
                using_metrics={
                    f"e{n}": self._dynamodb("SystemErrors", table_name, operation)
                    for n, operation in enumerate(
                        ("GetItem", "PutItem", "UpdateItem", "Query", "TransactWriteItems")
                    )
                },
                period=FIVE_MINUTES,
                label=f"{table.name} system errors",
            )
            self._alarm(f"table-{table.name}-errors", errors, 1, f"{table.name} system errors")
        self._provider_alarms(config)
        self._alarm(
            "api-5xx",
            rest_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
            1,
            "the API answered with a 5xx",
        )
        self._alarm(
            "api-4xx-rate",
            rest_api.metric_client_error(period=FIVE_MINUTES, statistic="Average"),
            0.25,
            "a quarter of requests answered 4xx (429 throttling, or a broken client)",
        )
        self.dashboard = self._dashboard(functions, dead_letter_queues, queues or {})

    def _custom(
        self,
        metric: str,
        service: str,
        *,
        period: Duration = FIVE_MINUTES,
        statistic: str = "Sum",
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=metric,
            dimensions_map={"hospital": self._hospital_id, "service": service},
            period=period,
            statistic=statistic,
        )

    def _provider_alarms(self, config: HospitalConfig) -> None:
        """The provider's balance (the provider_balance function reads it hourly) and the share
        of the sender's provider answers that were not `sent`."""
        threshold = config.sender.balance_alarm_krw
        self._alarm(
            "provider-balance-low",
            self._custom(
                "ProviderBalance", "provider_balance", period=BALANCE_PERIOD, statistic="Minimum"
            ),
            max(threshold, 1),
            f"the {config.sender.provider} account balance is below {threshold:,} KRW, or could "
            "not be read for 2 hours (sends stop when it runs out)",
            below=True,
        )
        period = Duration.minutes(15)
        outcomes = {
            state: self._custom(f"Message_{state}", "notification_sender", period=period)
            for state in PROVIDER_OUTCOMES
        }
        # a state without messages in the period has no datapoint: count it as 0
        errors = " + ".join(f"FILL({s}, 0)" for s in PROVIDER_OUTCOMES if s != "sent")
        total = " + ".join(f"FILL({s}, 0)" for s in PROVIDER_OUTCOMES)
        rate = cloudwatch.MathExpression(
            expression=(
                f"IF(({total}) >= {PROVIDER_ERROR_MIN_MESSAGES}, ({errors}) / ({total}), 0)"
            ),
            using_metrics=dict(outcomes),
            period=period,
            label="share of provider answers not sent",
        )
        self.provider_error_rate = rate
        self._alarm(
            "provider-error-rate",
            rate,
            PROVIDER_ERROR_RATE,
            f"{PROVIDER_ERROR_RATE:.0%} or more of the provider's answers in 15 minutes were "
            "retry, uncertain or failed",
        )

    @staticmethod
    def _dynamodb(metric: str, table_name: str, operation: str | None = None) -> cloudwatch.Metric:
        dimensions = {"TableName": table_name}
        if operation:
            dimensions["Operation"] = operation
        return cloudwatch.Metric(
            namespace="AWS/DynamoDB",
            metric_name=metric,
            dimensions_map=dimensions,
            period=FIVE_MINUTES,
            statistic="Sum",
        )

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        what: str,
        *,
        below: bool = False,
    ) -> cloudwatch.Alarm:
        name = name.replace("_", "-")
        alarm = cloudwatch.Alarm(
            self,
            pascal(name.replace("-", "_")),
            alarm_name=physical(self._hospital_id, name),
            alarm_description=f"Sotong {self._hospital_id}: {what}. Runbook: {RUNBOOK}#{name}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=(
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
                if below
                else cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            # a schedule that stopped reports nothing: that is the alarm; elsewhere no data is calm
            treat_missing_data=(
                cloudwatch.TreatMissingData.BREACHING
                if below
                else cloudwatch.TreatMissingData.NOT_BREACHING
            ),
        )
        alarm.add_alarm_action(self._action)
        return alarm

    def _dashboard(
        self,
        functions: Mapping[str, lambda_.Function],
        queues: Mapping[str, sqs.IQueue],
        work: Mapping[str, sqs.IQueue],
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=physical(self._hospital_id, "operations")
        )
        sent = [
            self._custom(f"Message_{state}", "notification_sender")
            for state in ("sent", "retry", "uncertain", "held", "suppressed", "failed")
        ]
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Complaints received", left=[self._custom("ComplaintReceived", "public_api")]
            ),
            cloudwatch.GraphWidget(title="Messages by state", left=sent),
            cloudwatch.GraphWidget(
                title="Recall dispatch",
                left=[
                    self._custom("TouchpointsQueued", "recall_dispatcher"),
                    self._custom("RecallDispatchCutShort", "recall_dispatcher"),
                ],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queue depth and age of the oldest message (s)",
                left=[q.metric_approximate_number_of_messages_visible() for q in work.values()],
                right=[q.metric_approximate_age_of_oldest_message() for q in work.values()],
            ),
            cloudwatch.GraphWidget(
                title="Invocations",
                left=[functions[s.name].metric_invocations() for s in FUNCTIONS],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[q.metric_approximate_number_of_messages_visible() for q in queues.values()],
            ),
            cloudwatch.GraphWidget(
                title="Durations (p90)",
                left=[functions[s.name].metric_duration(statistic="p90") for s in FUNCTIONS[:8]],
                right=[functions[s.name].metric_duration(statistic="p90") for s in FUNCTIONS[8:]],
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[functions[s.name].metric_errors() for s in FUNCTIONS],
            ),
        )
        # Cold starts from the REPORT line Lambda already writes to each function's log group
        # (its Init Duration is there only on a cold start): no custom metric, no Lambda
        # Insights extension, nothing billed until someone opens the dashboard (Logs Insights
        # charges per GB a query scans). Durations come from AWS/Lambda's free Duration metric.
        log_groups = [functions[s.name].log_group.log_group_name for s in FUNCTIONS]
        dashboard.add_widgets(
            cloudwatch.LogQueryWidget(
                title="Cold starts and durations per function (REPORT lines)",
                log_group_names=log_groups,
                query_lines=COLD_START_QUERY,
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=16,
            ),
            cloudwatch.LogQueryWidget(
                title="Cold starts per hour",
                log_group_names=log_groups,
                query_lines=COLD_STARTS_PER_HOUR,
                view=cloudwatch.LogQueryVisualizationType.LINE,
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Durations (p99)",
                left=[functions[s.name].metric_duration(statistic="p99") for s in FUNCTIONS[:8]],
                right=[functions[s.name].metric_duration(statistic="p99") for s in FUNCTIONS[8:]],
            ),
            cloudwatch.GraphWidget(
                title="Provider balance (KRW) and share of answers not sent",
                left=[
                    self._custom(
                        "ProviderBalance",
                        "provider_balance",
                        period=Duration.hours(1),
                        statistic="Minimum",
                    )
                ],
                right=[self.provider_error_rate],
            ),
        )
        return dashboard
