"""`LocalStack` used from a test, in this process, with test-only functions (no product modules
are imported, so nothing here outlives the test)."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sotong import store
from sotong.resources import MAIN, Function, Queue, QueueTrigger, Route, Schedule
from sotong_local.aws import client
from sotong_local.stack import LocalStack, Options

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JOBS = Queue(name="jobs", env="TEST_JOBS_QUEUE_URL", visibility_timeout_s=30, max_receive_count=3)
FUNCTIONS = (
    Function(name="pinger", handler="pinger.handler", description="test only"),
    Function(
        name="worker",
        handler="worker.handler",
        description="test only",
        trigger=QueueTrigger(queue="jobs", batch_size=5),
    ),
    Function(
        name="nightly",
        handler="nightly.handler",
        description="test only",
        schedule=Schedule("cron(0 3 * * ? *)"),
    ),
)
ROUTES = (Route("GET", "/ping/{name}", "pinger", "public"),)


class Recorder:
    def __init__(self, answer: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.env: list[str | None] = []
        self.answer = answer

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.env.append(os.environ.get("SOTONG_CLOCK_OFFSET_SECONDS"))
        return self.answer


@pytest.fixture
def recorders() -> dict[str, Recorder]:
    return {
        "pinger": Recorder({"statusCode": 200, "body": '{"pong": true}'}),
        "worker": Recorder(None),
        "nightly": Recorder({"done": True}),
    }


@pytest.fixture
def stack(recorders: dict[str, Recorder]) -> Iterator[LocalStack]:
    before = os.environ.get("AWS_ENDPOINT_URL")
    running = LocalStack(
        ROOT / "hospitals" / "demo.yaml",
        Options(sqs_visibility_timeout_s=1, prefix="inproc"),
        functions=FUNCTIONS,
        routes=ROUTES,
        tables=(MAIN,),
        queues=(JOBS,),
        handlers=recorders,
    ).start()
    try:
        yield running
    finally:
        running.stop()
        store.dynamodb.cache_clear()  # its client pointed at the stopped moto
        assert os.environ.get("AWS_ENDPOINT_URL") == before


def test_the_stack_serves_runs_and_consumes(
    stack: LocalStack, recorders: dict[str, Recorder]
) -> None:
    assert stack.api_url.startswith("http://127.0.0.1:")
    assert stack.aws_endpoint.startswith("http://127.0.0.1:")
    assert os.environ["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    assert os.environ[MAIN.env] == "inproc-records"

    response = requests.get(f"{stack.api_url}/ping/kim", timeout=10)
    assert response.json() == {"pong": True}
    assert recorders["pinger"].events[0]["pathParameters"] == {"name": "kim"}

    # The hospital's secrets and sender identity exist in moto.
    secrets = client("secretsmanager", stack.aws_endpoint)
    names = {s["Name"] for s in secrets.list_secrets()["SecretList"]}
    assert {"sotong/demo/kakao", "sotong/demo/solapi", "sotong/demo/webhook"} <= names
    identities = client("sesv2", stack.aws_endpoint).list_email_identities()["EmailIdentities"]
    assert "no-reply@demo-clinic.example" in {i["IdentityName"] for i in identities}

    # A queued message reaches the worker as an SQS event.
    sqs = client("sqs", stack.aws_endpoint)
    sqs.send_message(QueueUrl=os.environ[JOBS.env], MessageBody="job-1")
    deadline = time.monotonic() + 10
    while not recorders["worker"].events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorders["worker"].events[0]["Records"][0]["body"] == "job-1"
    queues = requests.get(f"{stack.api_url}/_local/queues", timeout=10).json()
    assert queues[0]["queue"] == "jobs"
    assert queues[0]["dlq"]["messages"] == 0

    # Run-now with a shifted clock: only that run sees the offset.
    listed = requests.get(f"{stack.api_url}/_local/schedules", timeout=10).json()
    assert [j["function"] for j in listed] == ["nightly"]
    assert listed[0]["next_run_local"][11:16] == "03:00"
    run = requests.post(
        f"{stack.api_url}/_local/schedules/nightly/run",
        json={"clock_offset_seconds": 7200},
        timeout=10,
    )
    assert run.status_code == 200
    assert run.json()["result"] == {"done": True}
    event = recorders["nightly"].events[0]
    assert event["source"] == "aws.scheduler"
    assert event["resources"][0].endswith(":schedule/default/inproc-nightly")
    assert recorders["nightly"].env == ["7200.0"]
    assert "SOTONG_CLOCK_OFFSET_SECONDS" not in os.environ

    # The outbox endpoint reads the (empty) sandbox outbox from the stack's table.
    assert requests.get(f"{stack.api_url}/_local/outbox", timeout=10).json() == []
