"""AWS requests per complaint intake and per inbox page, and what one notification consumer
sustains against the fake Solapi: the real handlers, moto in-process as AWS, every boto3 call
counted by botocore's `before-call` event."""

from __future__ import annotations

import importlib
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core import Options, Row, suite

ROOT = Path(__file__).resolve().parent.parent
SUITE = "pipeline"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
READS = {"GetItem", "Query", "BatchGetItem", "TransactGetItems", "Scan"}


class Calls:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.counts[f"{service}.{operation}"] += 1

    def take(self) -> Counter[str]:
        taken, self.counts = self.counts, Counter()
        return taken


def _dynamo(counts: Counter[str], kinds: set[str]) -> int:
    return sum(
        n
        for key, n in counts.items()
        if key.split(".")[0] == "dynamodb" and key.split(".")[1] in kinds
    )


def _describe(counts: Mapping[str, int], per: int) -> str:
    return ", ".join(f"{k} {v / per:g}" for k, v in sorted(counts.items()))


def _environment(config_path: Path) -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "ap-northeast-2",
            "SOTONG_HOSPITAL_CONFIG": str(config_path),
            "SOTONG_HOSPITAL_ID": "demo",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_NAMESPACE": "SotongBench",
            "SOTONG_PUBLIC_URL": "https://demo.example",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


def _count_calls() -> Calls:
    """Count every boto3 call from here on (moto's mock_aws replaces the default session, so
    this runs inside it, before the functions create their clients)."""
    import boto3

    calls = Calls()
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call", calls)
    return calls


def _complaint_rows(calls: Calls, options: Options) -> list[Row]:
    from tests.integration.api import ADMIN, call

    count = max(10, options.runs * 5)
    texts = [
        "대기시간이 너무 길었어요",
        "수납 금액이 달랐습니다",
        "어머니가 넘어지셨는데 아무도 없었어요",
    ]
    calls.take()
    for n in range(count):
        body = {
            "text": f"{texts[n % 3]} ({n})",
            "contact": {"phone": "010-1234-5678"},
            "consent_to_contact": True,
        }
        answer = call(
            "POST",
            "/complaints",
            body,
            headers={"Idempotency-Key": f"bench-{n}"},
            source_ip=f"198.51.100.{n % 250}",
        )
        assert answer.status == 201, answer.body
    intake = calls.take()
    pages = 5
    for _ in range(pages):
        assert call("GET", "/inbox", claims=ADMIN, query={"limit": "25"}).status == 200
    inbox = calls.take()
    writes = _dynamo(intake, WRITES) / count
    return [
        Row(
            SUITE,
            "complaint intake: DynamoDB writes",
            writes,
            "per intake",
            f"target <= 3; {_describe(intake, count)}",
        ),
        Row(
            SUITE,
            "complaint intake: SQS calls",
            sum(v for k, v in intake.items() if k.startswith("sqs.")) / count,
            "per intake",
            "none: the acknowledgement (+ on-call alert) are outbox items in the complaint's "
            "transaction; the relay publishes them",
        ),
        Row(
            SUITE,
            "inbox page: DynamoDB requests",
            (_dynamo(inbox, READS | WRITES)) / pages,
            "per page",
            f"target 1 Query; {_describe(inbox, pages)}",
        ),
    ]


def _consumer_rows(calls: Calls, options: Options) -> list[Row]:
    import boto3

    from sotong.notify import txoutbox
    from sotong.notify.model import MessageRequest, Recipient
    from sotong.resources import NOTIFICATIONS, function
    from sotong_local.events import sqs_event
    from sotong_local.lambdas import LambdaContext
    from tests.fakes.solapi_server import FakeSolapi

    messages = max(100, options.runs * 30)
    with FakeSolapi() as fake:
        os.environ["SOTONG_SOLAPI_URL"] = fake.base_url
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(
            Name="sotong/demo/solapi",
            SecretString=json.dumps({"api_key": fake.api_key, "api_secret": fake.api_secret}),
        )
        secrets.create_secret(
            Name="sotong/demo/kakao", SecretString=json.dumps({"sender_key": "KA01PF0001"})
        )
        secrets.create_secret(
            Name="sotong/demo/webhook", SecretString=json.dumps({"hmac_key": "x"})
        )
        sender = importlib.import_module("notification_sender")
        # the intake rows' acknowledgements (one complainant, many messages) are not this row's
        txoutbox.flush()
        boto3.client("sqs").purge_queue(QueueUrl=os.environ[NOTIFICATIONS.env])
        txoutbox.write(
            "demo",
            [
                MessageRequest(
                    idempotency_key=f"bench-msg-{n}",
                    recipient=Recipient(
                        phone=f"010-3000-{n:04d}", contact_consent=True, kind="staff"
                    ),
                    template_id="staff_alert",
                    variables={
                        "level": "긴급",
                        "department": "QI",
                        "code": "ABCD-2345",
                        "reason": "bench",
                    },
                )
                for n in range(messages)
            ],
        )
        txoutbox.flush()
        sqs = boto3.client("sqs")
        url = os.environ[NOTIFICATIONS.env]
        arn = "arn:aws:sqs:ap-northeast-2:123456789012:bench-notifications"
        context = LambdaContext(function("notification_sender"))
        calls.take()
        handled, batch_times = 0, []
        started = time.perf_counter()
        while handled < messages:
            batch: list[Any] = []
            while len(batch) < 100:
                page = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
                ).get("Messages", [])
                if not page:
                    break
                batch += page
            if not batch:
                break
            t0 = time.perf_counter()
            result = sender.handler(sqs_event(batch, arn), context)
            batch_times.append((time.perf_counter() - t0) / len(batch))
            assert result["batchItemFailures"] == [], result
            for start in range(0, len(batch), 10):
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(batch[start : start + 10])
                    ],
                )
            handled += len(batch)
        elapsed = time.perf_counter() - started
        used = calls.take()
        sent = len(fake.accepted)
        http_calls = len(fake.send_requests())
    handler_only = 1 / statistics.median(batch_times)
    per_message = {k: v for k, v in used.items() if k.split(".")[0] == "dynamodb"}
    return [
        Row(
            SUITE,
            "consumer throughput vs fake Solapi",
            handled / elapsed,
            "msg/s",
            f"{handled} messages, {sent} accepted by the fake; includes receive/delete; "
            f"handler alone (median per batch) {handler_only:.0f} msg/s; moto in-process as AWS, "
            "rate limit raised to 1000/s for the measurement",
        ),
        Row(
            SUITE,
            "consumer: DynamoDB requests",
            _dynamo(used, READS | WRITES) / handled,
            "per message",
            _describe(per_message, handled),
        ),
        Row(
            SUITE,
            "consumer: provider HTTP calls",
            http_calls / handled,
            "per message",
            "send-many: one request per batch of up to 100 (target <= 0.01)",
        ),
        Row(
            SUITE,
            "consumer: Secrets Manager calls",
            used["secretsmanager.GetSecretValue"] / handled,
            "per message",
            "credentials cached for 5 minutes per function instance",
        ),
    ]


@suite(SUITE)
def pipeline(options: Options) -> list[Row]:
    import sys

    from moto import mock_aws

    from sotong.config import load_hospital_file

    for folder in (str(ROOT / "functions"), str(ROOT)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    config = load_hospital_file(ROOT / "hospitals" / "demo.yaml").model_dump(mode="json")
    config["sender"].update(provider="solapi", rate_per_second=1000, quiet_hours=None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
        _environment(path)
        from sotong import store
        from sotong.notify import txoutbox as outbox_module

        with mock_aws():
            store.dynamodb.cache_clear()
            outbox_module._sqs.cache_clear()
            from sotong_local.aws import create_resources

            os.environ.update(create_resources(None))
            from sotong import keys
            from sotong_local.aws import create_hash_key

            keys.use_key(None)  # read from (moto's) Secrets Manager, as the functions do
            os.environ[keys.ENV] = create_hash_key(None, "demo")
            calls = _count_calls()
            rows = _complaint_rows(calls, options)
            rows += _consumer_rows(calls, options)
            store.dynamodb.cache_clear()
            outbox_module._sqs.cache_clear()
    return rows
