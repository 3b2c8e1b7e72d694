"""The embedded AWS: a moto server in this process, and the resources `sotong.resources` defines.

`create_resources` is what tests reuse: it builds every table (keys, indexes, TTL) and every queue
(with its dead-letter queue and redrive policy) on the given endpoint and returns the environment
variables the functions find them by.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sotong.resources import QUEUES, TABLES, Queue, Table
from sotong_local.events import REGION

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

    from sotong.config.schema import HospitalConfig

log = logging.getLogger("sotong_local.aws")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sotong-local",
    "AWS_SECRET_ACCESS_KEY": "sotong-local",
    "AWS_SESSION_TOKEN": "sotong-local",
    "AWS_SECURITY_TOKEN": "sotong-local",
}
_ARN_SECRET = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(.+?)(-[A-Za-z0-9]{6})?$"
)


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """Environment that sends every boto3 client of this process to `endpoint_url`, never AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        **FAKE_CREDENTIALS,
        # No shared config or credentials file may point a client elsewhere.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def start_moto(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start moto's server on a thread; returns it and its endpoint URL (a free port for 0)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per AWS call
    copy_tables_once_per_transaction()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return server, f"http://{bound_host}:{bound_port}"


def client(service: str, endpoint_url: str | None) -> Any:
    import boto3

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def physical_name(prefix: str, logical: str) -> str:
    """As the CDK app names things: `sotong-demo` + `notification_sender` ->
    `sotong-demo-notification-sender`."""
    name = logical.replace("_", "-")
    return f"{prefix}-{name}" if prefix else name


def create_table(dynamodb: Any, table: Table, name: str) -> None:
    keys = [table.partition_key, *([table.sort_key] if table.sort_key else [])]
    for index in table.indexes:
        keys += [index.partition_key, index.sort_key]
    schema = [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
    if table.sort_key:
        schema.append({"AttributeName": table.sort_key, "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": key, "AttributeType": "S"} for key in dict.fromkeys(keys)
        ],
        "KeySchema": schema,
    }
    if table.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in table.indexes
        ]
    if table.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream}
    dynamodb.create_table(**request)
    if table.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


def create_queue(sqs: Any, queue: Queue, name: str) -> tuple[str, str]:
    """The queue and its DLQ; returns (queue URL, DLQ URL)."""
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq",  # = physical name of Queue.dlq_name
        Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_days * 86400)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "MessageRetentionPeriod": str(queue.retention_days * 86400),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
            ),
        },
    )["QueueUrl"]
    return url, dlq_url


def create_resources(
    endpoint_url: str | None,
    *,
    prefix: str = "sotong-local",
    tables: Iterable[Table] = TABLES,
    queues: Iterable[Queue] = QUEUES,
) -> dict[str, str]:
    """Create the tables and queues on `endpoint_url`; returns {env var: table name / queue URL}."""
    if endpoint_url is None:  # moto in this process
        copy_tables_once_per_transaction()
    env: dict[str, str] = {}
    dynamodb = client("dynamodb", endpoint_url)
    for table in tables:
        name = physical_name(prefix, table.name)
        create_table(dynamodb, table, name)
        env[table.env] = name
    sqs = client("sqs", endpoint_url)
    for queue in queues:
        url, dlq_url = create_queue(sqs, queue, physical_name(prefix, queue.name))
        env[queue.env] = url
        env[queue.dlq_env] = dlq_url
    return env


def _secret_name(secret: str) -> str:
    match = _ARN_SECRET.match(secret)
    return match.group(1) if match else secret


def placeholder_secrets(config: HospitalConfig) -> dict[str, dict[str, str]]:
    """One placeholder JSON value per referenced secret, holding every key the config reads."""
    values: dict[str, dict[str, str]] = {}
    for ref in config.secret_refs():
        name = _secret_name(ref.secret)
        value = values.setdefault(name, {})
        if ref.key:
            value[ref.key] = f"local-{ref.key}"
        else:
            value.setdefault("api_key", "local-api-key")
            value.setdefault("api_secret", "local-api-secret")
    return values


def hash_key_secret_name(hospital_id: str) -> str:
    return f"sotong/{hospital_id}/hash-key"


def create_hash_key(endpoint_url: str | None, hospital_id: str, value: str | None = None) -> str:
    """The hospital's hash key (`sotong.keys`) as a secret, random unless given; its name."""
    import secrets as random

    name = hash_key_secret_name(hospital_id)
    client("secretsmanager", endpoint_url).create_secret(
        Name=name,
        SecretString=value or random.token_hex(32),
        Description="sotong local stack: the key of phone/e-mail digests and tombstones",
    )
    return name


def create_hospital_resources(endpoint_url: str, config: HospitalConfig) -> list[str]:
    """The hospital's referenced secrets (placeholder values) and its verified sender address."""
    created: list[str] = []
    secrets = client("secretsmanager", endpoint_url)
    for name, value in placeholder_secrets(config).items():
        secrets.create_secret(
            Name=name,
            SecretString=json.dumps(value),
            Description="sotong local stack placeholder (not a real credential)",
        )
        created.append(f"secret {name}")
    sender = config.sender.email_from
    client("sesv2", endpoint_url).create_email_identity(EmailIdentity=sender)
    created.append(f"verified e-mail identity {sender}")
    return created


def queue_attributes(sqs: Any, url: str) -> dict[str, str]:
    attributes: dict[str, str] = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "QueueArn",
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return attributes


_writes = threading.RLock()


def copy_tables_once_per_transaction() -> None:
    """Make moto's DynamoDB writes behave as DynamoDB's under concurrent callers.

    - moto checks a write's condition and applies it without a lock, so two threads can both
      pass `sent <= :most`; DynamoDB applies each item's conditional write atomically. Writes
      here take one lock.
    - moto backs up a table once per *action* of a TransactWriteItems (a 100-action write
      deep-copies the table 100 times); here once per table and transaction.
    """
    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "_copies_once", False):
        return
    real_copy = models.copy
    original_transact = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copies: dict[int, Any] = {}

        class _Once:
            @staticmethod
            def deepcopy(value: Any, memo: Any = None) -> Any:
                if id(value) not in copies:
                    copies[id(value)] = real_copy.deepcopy(value)
                return copies[id(value)]

        with _writes:
            models.copy = _Once  # type: ignore[assignment]
            try:
                original_transact(self, transact_items)
            finally:
                models.copy = real_copy

    transact_write_items._copies_once = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    for name in ("put_item", "update_item", "delete_item"):
        setattr(backend, name, _locked(getattr(backend, name)))


def _locked(write: Any) -> Any:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _writes:
            return write(*args, **kwargs)

    return locked
