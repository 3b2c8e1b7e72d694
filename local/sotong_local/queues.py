"""The SQS event source mapping: a poller thread per queue-triggered function.

Like Lambda's mapping with `ReportBatchItemFailures`: it receives up to `batch_size` messages
(waiting up to the batching window), hands them over as one SQS event, deletes the messages the
handler did not name in `batchItemFailures`, and leaves the rest to come back once their
visibility timeout ends. An exception, a timeout or an unreadable answer fails the whole batch.
moto's queue itself moves a message to the DLQ when it would be received more often than the
redrive policy's maxReceiveCount, as SQS does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sotong.resources import Function, QueueTrigger
from sotong_local.events import sqs_event
from sotong_local.lambdas import Invocation, Runtime

log = logging.getLogger("sotong_local.queues")
WAIT_SECONDS = 1


def failed_ids(invocation: Invocation, message_ids: list[str]) -> set[str]:
    """The message ids Lambda would leave on the queue after this invocation."""
    everything = set(message_ids)
    if not invocation.ok:
        return everything
    answer = invocation.value
    if answer is None:
        return set()
    if not isinstance(answer, dict):
        return everything
    failures = answer.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in everything:
            return everything  # Lambda treats a bad identifier as a failure of the whole batch
        failed.add(identifier)
    return failed


@dataclass
class PollerStats:
    batches: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    last_error: str | None = None


@dataclass
class QueuePoller:
    function: Function
    trigger: QueueTrigger
    queue_url: str
    runtime: Runtime
    sqs: Any
    visibility_timeout_s: int | None = None  # None: the queue's own
    max_receive_count: int | None = None
    stats: PollerStats = field(default_factory=PollerStats)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queue_arn: str = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"poller-{self.function.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 2.0) -> None:
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:
                if self._stop.is_set():
                    break
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.warning("poller for %s: %s", self.function.name, self.stats.last_error)
                self._stop.wait(1.0)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": min(10, count),
            "WaitTimeSeconds": WAIT_SECONDS,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout_s is not None:
            request["VisibilityTimeout"] = self.visibility_timeout_s
        messages: list[dict[str, Any]] = self.sqs.receive_message(**request).get("Messages", [])
        return messages

    def poll_once(self) -> int:
        """Receive one batch and run it; returns how many messages it handled."""
        batch = self._receive(self.trigger.batch_size)
        if not batch:
            return 0
        window_ends = time.monotonic() + self.trigger.max_batching_window_s
        while (
            len(batch) < self.trigger.batch_size
            and time.monotonic() < window_ends
            and not self._stop.is_set()
        ):
            more = self._receive(self.trigger.batch_size - len(batch))
            if not more:
                break
            batch += more
        self.run_batch(batch)
        return len(batch)

    def _clock_offset(self, message: dict[str, Any]) -> float | None:
        """The shift of the run that sent `message` (see `ClockGate`), or None."""
        sent = message.get("Attributes", {}).get("SentTimestamp")
        return self.runtime.gate.offset_at(int(sent) / 1000 if sent else None)

    def run_batch(self, batch: list[dict[str, Any]]) -> set[str]:
        # Messages a shifted run sent are handled with its clock, the others with the real one
        # (one invocation each: a batch shares one clock).
        groups: dict[float | None, list[dict[str, Any]]] = {}
        for message in batch:
            groups.setdefault(self._clock_offset(message), []).append(message)
        failed: set[str] = set()
        for offset, group in groups.items():
            failed |= self._run_group(group, offset)
        return failed

    def _run_group(self, batch: list[dict[str, Any]], offset: float | None) -> set[str]:
        ids = [m["MessageId"] for m in batch]
        invocation = self.runtime.invoke(
            self.function.name, sqs_event(batch, self.queue_arn), clock_offset_seconds=offset
        )
        failed = failed_ids(invocation, ids)
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        self.stats.batches += 1
        self.stats.received += len(batch)
        self.stats.deleted += len(done)
        self.stats.failed += len(failed)
        if not invocation.ok:
            self.stats.last_error = invocation.error
        if failed:
            counts = [
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                for m in batch
                if m["MessageId"] in failed
            ]
            limit = self.max_receive_count
            final = [c for c in counts if limit is not None and c >= limit]
            log.warning(
                "%s: %d of %d message(s) failed%s; %s",
                self.function.name,
                len(failed),
                len(batch),
                f" ({invocation.error})" if invocation.error else "",
                (
                    f"{len(final)} reached maxReceiveCount {limit} and go to the DLQ"
                    if final
                    else "they come back after the visibility timeout"
                ),
            )
        else:
            log.info(
                "%s: %d message(s) from %s handled in %.0f ms%s",
                self.function.name,
                len(batch),
                self.trigger.queue,
                invocation.duration_ms,
                f" (clock shifted {offset:+.0f} s, as the run that sent them)" if offset else "",
            )
        return failed
