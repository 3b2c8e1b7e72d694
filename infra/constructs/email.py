"""E-mail delivery events: an SES configuration set publishing to EventBridge, and a rule per
function in `sotong.resources` that has an `event_rule`, limited to this hospital's set."""

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from constructs import Construct

from infra.constructs.queues import encrypted_queue
from infra.nag import acknowledge
from infra.naming import pascal, physical
from sotong.resources import FUNCTIONS

EVENT_TYPES = ["DELIVERY", "BOUNCE", "COMPLAINT", "REJECT"]


def configuration_set_name(hospital_id: str) -> str:
    return physical(hospital_id, "email")


class EmailEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        hospital_id: str,
        key: kms.IKey,
        functions: dict[str, lambda_.Function],
    ) -> None:
        super().__init__(scope, construct_id)
        name = configuration_set_name(hospital_id)
        stack = Stack.of(self)
        # A bounce or complaint event carries an e-mail opt-out: one EventBridge could not
        # deliver is kept here, not dropped.
        self.dead_letter_queue = encrypted_queue(
            self,
            "Undelivered",
            name=physical(hospital_id, "email-events-dlq"),
            key=key,
            retention_days=14,
        )
        acknowledge(
            self.dead_letter_queue,
            {
                "AwsSolutions-SQS3": (
                    "This queue is itself the dead-letter queue of the SES events rule's "
                    "target; no SQS redrive points at it"
                )
            },
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowEventBridgeDeadLetters",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.configuration_set = ses.CfnConfigurationSet(self, "ConfigurationSet", name=name)
        destination = ses.CfnConfigurationSetEventDestination(
            self,
            "ToEventBridge",
            configuration_set_name=name,
            event_destination=ses.CfnConfigurationSetEventDestination.EventDestinationProperty(
                name="eventbridge",
                enabled=True,
                matching_event_types=EVENT_TYPES,
                event_bridge_destination=ses.CfnConfigurationSetEventDestination.EventBridgeDestinationProperty(
                    event_bus_arn=stack.format_arn(
                        service="events", resource="event-bus", resource_name="default"
                    )
                ),
            ),
        )
        destination.add_dependency(self.configuration_set)
        for spec in FUNCTIONS:
            if spec.event_rule is None:
                continue
            events.Rule(
                self,
                f"{pascal(spec.name)}Rule",
                description=spec.event_rule.description or spec.description,
                event_pattern=events.EventPattern(
                    source=[spec.event_rule.source],
                    detail_type=list(spec.event_rule.detail_types),
                    detail={"mail": {"tags": {"ses:configuration-set": [name]}}},
                ),
                targets=[
                    targets.LambdaFunction(
                        functions[spec.name],
                        retry_attempts=3,
                        max_event_age=Duration.hours(2),
                        dead_letter_queue=self.dead_letter_queue,
                    )
                ],
            )
