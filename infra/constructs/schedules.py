"""EventBridge Scheduler schedules for the functions in `sotong.resources` that have one."""

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct
from sotong.resources import FUNCTIONS

from infra.constructs.queues import encrypted_queue
from infra.nag import acknowledge
from infra.naming import pascal, physical

RETRY_ATTEMPTS = 3
MAX_EVENT_AGE = Duration.hours(1)
DLQ_RETENTION_DAYS = 14


class Schedules(Construct):
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
        self.by_name: dict[str, scheduler.Schedule] = {}
        scheduled = [spec for spec in FUNCTIONS if spec.schedule]
        if not scheduled:
            return
        self.dead_letter_queue = encrypted_queue(
            self,
            "FailedInvocations",
            name=physical(hospital_id, "scheduler-dlq"),
            key=key,
            retention_days=DLQ_RETENTION_DAYS,
        )
        acknowledge(
            self.dead_letter_queue,
            {
                "AwsSolutions-SQS3": (
                    "This queue is itself the dead-letter queue of the EventBridge Scheduler "
                    "targets; SQS does not see it as a DLQ because no SQS redrive points at it"
                )
            },
        )
        for spec in scheduled:
            assert spec.schedule is not None
            self.by_name[spec.name] = scheduler.Schedule(
                self,
                pascal(spec.name),
                schedule_name=physical(hospital_id, spec.name),
                description=spec.schedule.description or spec.description,
                schedule=scheduler.ScheduleExpression.expression(
                    spec.schedule.expression, TimeZone.of(spec.schedule.timezone)
                ),
                target=targets.LambdaInvoke(
                    functions[spec.name],
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=RETRY_ATTEMPTS,
                    max_event_age=MAX_EVENT_AGE,
                ),
                key=key,
            )
