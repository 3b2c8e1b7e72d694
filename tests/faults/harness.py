"""The delivery fault matrix: the real pipeline (outbox → relay → SQS → notification_sender →
the real Solapi client) against the fake Solapi server, counting what the provider accepted.

Used by `tests/faults` (short runs in `make test`) and by `make bench` (the full load row).
Every row ends with each message in a final state — sent/delivered, failed with a reason,
suppressed, or uncertain and visible — and counts copies the provider accepted per message.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.notify import records, txoutbox
from sotong.notify.model import MessageRequest, Recipient, message_id
from sotong.notify.providers.base import Provider
from sotong.notify.providers.solapi import SolapiProvider
from sotong.resources import NOTIFICATIONS, function
from sotong_local.events import sqs_event
from sotong_local.lambdas import LambdaContext
from tests.fakes.solapi_server import FakeSolapi

ARN = "arn:aws:sqs:ap-northeast-2:123456789012:sotong-demo-notifications"
FINAL = {"sent", "delivered", "fallback_sent", "failed", "suppressed", "uncertain"}


class Killed(BaseException):
    """The Lambda runtime stopping a function mid-batch: nothing after it runs."""


@dataclass
class Providers:
    """The sender's provider set: the real Solapi client, and secrets that can fail."""

    solapi: Provider
    secret_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_channel(self, channel: str) -> Provider:
        return self.solapi

    def secret(self, name: str) -> str | None:
        with self._lock:
            if self.secret_failures > 0:
                self.secret_failures -= 1
                raise RuntimeError("Secrets Manager: ThrottlingException")
        return "KA01PF-sender-key"


@dataclass
class Row:
    name: str
    messages: int
    accepted: int
    lost: int
    duplicates: int
    uncertain: int
    failed: int
    http_calls: int
    statuses: dict[str, int]

    def line(self) -> str:
        return (
            f"{self.name:<42} {self.messages:>6} {self.accepted:>9} {self.lost:>5} "
            f"{self.duplicates:>6} {self.uncertain:>9} {self.failed:>6} {self.http_calls:>6}"
        )


HEADER = (
    f"{'fault':<42} {'msgs':>6} {'accepted':>9} {'lost':>5} {'dupes':>6} "
    f"{'uncertain':>9} {'failed':>6} {'calls':>6}"
)


def without_quiet_hours(hospital: HospitalConfig) -> HospitalConfig:
    """The matrix measures delivery, not send times: the wall clock must not hold its rows."""
    return hospital.model_copy(
        update={"sender": hospital.sender.model_copy(update={"quiet_hours": None})}
    )


def requests(prefix: str, count: int) -> list[MessageRequest]:
    """Aftercare AlimTalks to `count` different patients."""
    return [
        MessageRequest(
            idempotency_key=f"{prefix}:{i}",
            recipient=Recipient(
                name="홍길동",
                phone=f"010-{5000 + i // 10000:04d}-{i % 10000:04d}",
                contact_consent=True,
            ),
            template_id="dental_aftercare",
            variables={"hospital": "소통치과", "name": "홍길동", "callback": "02-555-0100"},
            refs={"touchpoint": f"{prefix}-{i}"},
        )
        for i in range(count)
    ]


@dataclass
class Pipeline:
    fake: FakeSolapi
    hospital: HospitalConfig
    queue_url: str
    timeout_s: float = 0.3
    providers: Providers = field(init=False)
    errors: list[str] = field(default_factory=list)
    """function errors and AWS call failures the run met (each retried, as Lambda would)"""

    def __post_init__(self) -> None:
        serialize_moto_sqs()
        client = SolapiProvider(
            self.fake.api_key,
            self.fake.api_secret,
            base_url=self.fake.base_url,
            timeout_s=self.timeout_s,
        )
        self.providers = Providers(client)
        self._sender: Any = importlib.import_module("notification_sender")
        self._sqs = boto3.client("sqs")

    @contextmanager
    def wired(self) -> Iterator[None]:
        saved = (self._sender.providers, self._sender.hospital)
        self._sender.providers, self._sender.hospital = self.providers, self.hospital
        try:
            yield
        finally:
            self._sender.providers, self._sender.hospital = saved

    # --- producing and relaying -----------------------------------------------------------
    def produce(self, batch: list[MessageRequest]) -> None:
        txoutbox.write(self.hospital.hospital_id, batch)

    def relay(self) -> int:
        return txoutbox.flush()

    # --- consuming --------------------------------------------------------------------------
    def receive(self, most: int = 100) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while len(got) < most:
            page: list[Any] = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, most - len(got)),
                AttributeNames=["All"],
                VisibilityTimeout=300,
            ).get("Messages", [])
            if not page:
                break
            got += page
        return got

    def invoke(self, messages: list[dict[str, Any]], redeliver_now: bool = True) -> set[str]:
        """One Lambda invocation over `messages`; deletes what succeeded as Lambda does, and
        returns the ids handed back (all of them when the function died)."""
        context = LambdaContext(function("notification_sender"))
        try:
            result = self._sender.handler(sqs_event(messages, ARN), context)
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        except Killed:
            failed = {m["MessageId"] for m in messages}
        except Exception as error:  # a function error: Lambda hands the whole batch back
            self.errors.append(f"{type(error).__name__}: {error}"[:200])
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        for message in messages:  # no waiting out backoffs here: the clock jumps instead
            if redeliver_now and message["MessageId"] in failed:
                # another sender may have received it meanwhile: then its handle counts
                with contextlib.suppress(ClientError):
                    self._sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=0,
                    )
        return failed

    def drain(self, rounds: int = 40, jump_s: float = 120.0, wait_s: float = 600.0) -> None:
        """Run the sender until no request is left; between rounds with hand-backs the clock
        moves on `jump_s` (past leases and backoffs). Requests a sender hid for a while (its
        own backoff) are waited for, `wait_s` at most."""
        waited = 0.0
        for _ in range(rounds):
            batch = self.receive()
            while not batch and self.in_flight() and waited < wait_s:
                time.sleep(1.0)
                waited += 1.0
                batch = self.receive()
            if not batch:
                if self.in_flight():
                    raise AssertionError(f"requests still hidden after {wait_s:.0f} s")
                return
            if self.invoke(batch):
                shift(jump_s)
                # the clock jumps, the fake's real-time log does not: give a late intake
                # (a provider still storing what it took after our timeout) a real moment
                time.sleep(1.0)
        raise AssertionError(f"the queue did not drain in {rounds} rounds")

    def in_flight(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def dead_letters(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=os.environ[NOTIFICATIONS.dlq_env],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    # --- counting -----------------------------------------------------------------------------
    def row(self, name: str, sent: list[MessageRequest]) -> Row:
        mids = [message_id(self.hospital.hospital_id, r.idempotency_key) for r in sent]
        found = records.get_many(mids)
        statuses: dict[str, int] = {}
        lost = duplicates = accepted = 0
        for mid in mids:
            status = str((found.get(mid) or {}).get("status", "missing"))
            statuses[status] = statuses.get(status, 0) + 1
            copies = self.fake.accepted_copies(mid)
            accepted += copies
            duplicates += max(0, copies - 1)
            reason = (found.get(mid) or {}).get("reason")
            if status not in FINAL or (status == "failed" and not reason):
                lost += 1
            elif status in ("sent", "delivered", "fallback_sent") and copies == 0:
                lost += 1  # recorded as sent, but the provider never had it
        return Row(
            name=name,
            messages=len(mids),
            accepted=accepted,
            lost=lost,
            duplicates=duplicates,
            uncertain=statuses.get("uncertain", 0),
            failed=statuses.get("failed", 0),
            http_calls=len(self.fake.send_requests()),
            statuses=statuses,
        )


_sqs_lock = threading.RLock()


def serialize_moto_sqs() -> None:
    """moto's in-process SQS is not safe for hundreds of threads (a receive can fail with
    "Set changed size during iteration" after taking messages, hiding them for the visibility
    timeout). The matrix measures our pipeline, so its queue calls take turns, as SQS's own
    would never collide. Receives here never long-poll, so nobody waits inside the lock."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.receive_message, "_serialized", False):
        return
    for name in (
        "receive_message",
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
        "send_message",
        "send_message_batch",
    ):
        original = getattr(SQSBackend, name)

        def serialized(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _sqs_lock:
                return _original(*args, **kwargs)

        serialized._serialized = True  # type: ignore[attr-defined]
        setattr(SQSBackend, name, serialized)


_offset_lock = threading.Lock()


def shift(seconds: float) -> None:
    """Move the shared clock on (the local stack's clock offset)."""
    with _offset_lock:
        current = float(os.environ.get(clock.OFFSET_ENV) or 0)
        os.environ[clock.OFFSET_ENV] = str(current + seconds)


def concurrent(
    pipeline: Pipeline, senders: int, batch_size: int, deadline_s: float
) -> Callable[[], None]:
    """`senders` threads each invoking the sender on its own batches until the queue is empty."""

    def worker() -> None:
        idle = 0
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and idle < 40:
            try:
                batch = pipeline.receive(batch_size)
            except Exception as error:  # the poller's receive failed: Lambda polls again
                pipeline.errors.append(f"receive: {type(error).__name__}: {error}"[:200])
                time.sleep(0.5)
                continue
            if not batch:
                idle += 1
                time.sleep(0.2)
                continue
            idle = 0
            pipeline.invoke(batch, redeliver_now=False)  # the sender's own backoffs stand

    def run() -> None:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return run
