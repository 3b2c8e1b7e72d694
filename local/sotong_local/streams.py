"""Table stream → function, as Lambda's DynamoDB event source mapping does it: read the stream
through the Streams API of the embedded AWS, keep the records the mapping's filter keeps (new
items whose key starts with the trigger's prefix), deliver them in batches, and retry from the
first failed record (`batchItemFailures`) a bounded number of times."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sotong.resources import Function, StreamTrigger
from sotong_local.lambdas import Runtime

log = logging.getLogger("sotong_local.streams")
POLL_SECONDS = 0.5


def kept(record: dict[str, Any], trigger: StreamTrigger) -> bool:
    """The filter the CDK stack puts on the event source mapping."""
    keys = (record.get("dynamodb") or {}).get("Keys", {})
    return trigger.keeps(
        str(record.get("eventName")),
        str(keys.get("pk", {}).get("S", "")),
        str(keys.get("sk", {}).get("S", "")),
    )


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    return {"Records": [{**r, "eventSourceARN": stream_arn} for r in records]}


@dataclass
class StreamPoller:
    function: Function
    trigger: StreamTrigger
    table_name: str
    runtime: Runtime
    dynamodb: Any
    streams: Any
    delivered: int = 0
    dropped: int = 0
    _iterators: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        table = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
        self.stream_arn: str = table["LatestStreamArn"]

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"stream-{self.function.name}", daemon=True
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
                if not self.poll_once():
                    self._stop.wait(POLL_SECONDS)
            except Exception as error:
                if self._stop.is_set():
                    break
                log.warning("stream poller for %s: %s", self.function.name, error)
                self._stop.wait(1.0)

    def _shards(self) -> list[str]:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [s["ShardId"] for s in description.get("Shards", [])]

    def poll_once(self) -> int:
        """Read every shard once; returns how many kept records were delivered."""
        handled = 0
        for shard in self._shards():
            if shard not in self._iterators:
                self._iterators[shard] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[shard]
            if iterator is None:
                continue
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard] = page.get("NextShardIterator")
            records = [r for r in page.get("Records", []) if kept(r, self.trigger)]
            for batch, offset in self._batches(records):
                handled += self._deliver(batch, offset)
        return handled

    def _clock_offset(self, record: dict[str, Any]) -> float | None:
        """The shift of the run that wrote `record` (see `ClockGate`), or None."""
        made = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
        if isinstance(made, datetime):
            return self.runtime.gate.offset_at(made.timestamp())
        if isinstance(made, int | float):
            return self.runtime.gate.offset_at(float(made))
        return None

    def _batches(
        self, records: list[dict[str, Any]]
    ) -> Iterator[tuple[list[dict[str, Any]], float | None]]:
        """Batches in stream order, each of records written with one clock (a shifted run's
        records reach the function with the run's shift)."""
        batch: list[dict[str, Any]] = []
        offset: float | None = None
        for record in records:
            mine = self._clock_offset(record)
            if batch and (mine != offset or len(batch) >= self.trigger.batch_size):
                yield batch, offset
                batch = []
            batch.append(record)
            offset = mine
        if batch:
            yield batch, offset

    def _deliver(self, batch: list[dict[str, Any]], offset: float | None = None) -> int:
        for _attempt in range(self.trigger.retry_attempts + 1):
            invocation = self.runtime.invoke(
                self.function.name,
                stream_event(batch, self.stream_arn),
                clock_offset_seconds=offset,
            )
            failures = (
                (invocation.value or {}).get("batchItemFailures", [])
                if invocation.ok and isinstance(invocation.value, dict)
                else [{"itemIdentifier": batch[0]["dynamodb"]["SequenceNumber"]}]
            )
            if not failures:
                self.delivered += len(batch)
                return len(batch)
            first = str(failures[0]["itemIdentifier"])
            done = next(
                (i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] == first), 0
            )
            self.delivered += done
            batch = batch[done:]
            if self._stop.wait(1.0):
                break
        self.dropped += len(batch)  # what is left stays pending: the sweeper publishes it
        log.warning("%s: %d stream record(s) left to the sweeper", self.function.name, len(batch))
        return 0
