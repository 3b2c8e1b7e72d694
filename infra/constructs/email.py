"""E-mail delivery events: an SES configuration set publishing to EventBridge, and a rule per
function in `sotong.resources` that has an `event_rule`, limited to this hospital's set."""

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from constructs import Construct

from infra.constructs.encryption import allow_service
from infra.constructs.queues import dead_letter_queue
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
        self.dead_letter_queue = dead_letter_queue(
            self,
            "Undelivered",
            name=physical(hospital_id, "email-events-dlq"),
            key=key,
            of_what="the SES events rule's target",
        )
        allow_service(key, "AllowEventBridgeDeadLetters", "events.amazonaws.com")
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
