"""SQS queues, one per `sotong.resources.QUEUES` entry, each with its dead-letter queue."""

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from infra.naming import pascal, physical
from sotong.resources import QUEUES, Queue


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    key: kms.IKey,
    retention_days: int,
    visibility_timeout_s: int = 30,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=Duration.minutes(5),
        enforce_ssl=True,
        retention_period=Duration.days(retention_days),
        visibility_timeout=Duration.seconds(visibility_timeout_s),
        dead_letter_queue=dead_letter_queue,
    )


def dead_letter_queue(
    scope: Construct, construct_id: str, *, name: str, key: kms.IKey, of_what: str
) -> sqs.Queue:
    """An encrypted queue kept 14 days that catches what `of_what` could not deliver (not an
    SQS redrive target, so cdk-nag's "a queue needs a DLQ" finding is acknowledged)."""
    queue = encrypted_queue(scope, construct_id, name=name, key=key, retention_days=14)
    acknowledge(
        queue,
        {
            "AwsSolutions-SQS3": (
                f"This queue is itself the dead-letter queue of {of_what}; no SQS redrive "
                "points at it"
            )
        },
    )
    return queue


class Queues(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, hospital_id: str, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.by_name: dict[str, sqs.Queue] = {}
        self.dlq_by_name: dict[str, sqs.Queue] = {}
        for spec in QUEUES:
            self._queue(spec, hospital_id, key)

    def _queue(self, spec: Queue, hospital_id: str, key: kms.IKey) -> None:
        dlq = encrypted_queue(
            self,
            f"{pascal(spec.name)}Dlq",
            name=physical(hospital_id, spec.dlq_name),
            key=key,
            retention_days=spec.dlq_retention_days,
        )
        self.dlq_by_name[spec.name] = dlq
        self.by_name[spec.name] = encrypted_queue(
            self,
            pascal(spec.name),
            name=physical(hospital_id, spec.name),
            key=key,
            retention_days=spec.retention_days,
            visibility_timeout_s=spec.visibility_timeout_s,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dlq, max_receive_count=spec.max_receive_count
            ),
        )
