"""EventBridge Scheduler schedules for the functions in `sotong.resources` that have one."""

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from infra.constructs.queues import dead_letter_queue
from infra.nag import acknowledge
from infra.naming import pascal, physical
from sotong.resources import FUNCTIONS

RETRY_ATTEMPTS = 3
MAX_EVENT_AGE = Duration.hours(1)


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
        self.dead_letter_queue = dead_letter_queue(
            self,
            "FailedInvocations",
            name=physical(hospital_id, "scheduler-dlq"),
            key=key,
            of_what="the EventBridge Scheduler targets",
        )
        for spec in scheduled:
            assert spec.schedule is not None
            function = functions[spec.name]
            role = iam.Role(
                self,
                f"{pascal(spec.name)}Role",
                assumed_by=iam.ServicePrincipal(
                    "scheduler.amazonaws.com",
                    conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
                ),
                description=f"EventBridge Scheduler: invoke {spec.name} only",
            )
            self.by_name[spec.name] = scheduler.Schedule(
                self,
                pascal(spec.name),
                schedule_name=physical(hospital_id, spec.name),
                description=spec.schedule.description or spec.description,
                schedule=scheduler.ScheduleExpression.expression(
                    spec.schedule.expression, TimeZone.of(spec.schedule.timezone)
                ),
                target=targets.LambdaInvoke(
                    function,
                    role=role,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=RETRY_ATTEMPTS,
                    max_event_age=MAX_EVENT_AGE,
                ),
                key=key,
            )
            # The target grants sqs:SendMessage on the DLQ; an encrypted queue needs the key too.
            key.grant(role, "kms:GenerateDataKey", "kms:Decrypt")
            self._acknowledge(spec.name, function, role)

    def _acknowledge(self, name: str, function: lambda_.Function, role: iam.Role) -> None:
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        logical_id = Stack.of(self).get_logical_id(function.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            policy,
            {
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]": (
                    f"lambda:InvokeFunction on {name} and its versions and aliases (<arn>:*); "
                    "no other function matches"
                ),
                "HIPAA.Security-IAMNoInlinePolicy": (
                    f"The policy belongs to the dedicated scheduler role of {name} only and is "
                    "deleted with it, so it cannot be attached elsewhere or drift"
                ),
            },
        )
