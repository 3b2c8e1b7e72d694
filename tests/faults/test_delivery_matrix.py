"""Every fault of the delivery matrix, counted at the provider: no message lost, none twice.

Each row runs the real pipeline (outbox → relay → SQS → notification_sender → the real Solapi
client) against the fake Solapi server and fails on any lost or duplicated message. The load
row runs short here and in full in `make bench` (`bench/faults.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from sotong.notify import ratelimit, records, txoutbox
from sotong.notify.model import message_id
from sotong.notify.replay import replay_dead_letters
from sotong.resources import NOTIFICATIONS
from tests.fakes import solapi_server as behave
from tests.faults.harness import HEADER, Killed, Pipeline, Row, concurrent, requests, shift

pytestmark = pytest.mark.faults
ROWS: list[Row] = []


def check(row: Row, **statuses: int) -> None:
    ROWS.append(row)
    print(f"\n{HEADER}\n{row.line()}\n  final states: {row.statuses}")
    assert row.lost == 0, row
    assert row.duplicates == 0, row
    for status, count in statuses.items():
        assert row.statuses.get(status, 0) == count, row


def run(pipeline: Pipeline, name: str, count: int = 20) -> list[Any]:
    batch = requests(name, count)
    pipeline.produce(batch)
    pipeline.relay()
    pipeline.drain()
    return batch


def test_baseline(pipeline: Pipeline) -> None:
    sent = run(pipeline, "baseline")
    row = pipeline.row("no fault", sent)
    check(row, sent=20)
    assert row.http_calls == 1  # one send-many request for the whole batch


def test_sqs_fails_after_the_state_write(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = requests("sqs-down", 20)
    pipeline.produce(batch)  # the state change and its outbox items are written together

    def down(**kwargs: Any) -> Any:
        raise ConnectionError("SQS unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(txoutbox._sqs(), "send_message_batch", down)
        with pytest.raises(ConnectionError):
            pipeline.relay()
    assert len(txoutbox.pending(txoutbox.clock.now() + txoutbox.SWEEP_AGE * 10)) == 20
    shift(120)
    found, published = txoutbox.sweep(txoutbox.clock.now())
    assert (found, published) == (20, 20)
    pipeline.drain()
    check(pipeline.row("SQS fails after the state write", batch), sent=20)


def test_rate_window_full(pipeline: Pipeline) -> None:
    now = txoutbox.clock.now().timestamp()
    first = int(now // ratelimit.WINDOW_S)
    cap = ratelimit.capacity(pipeline.hospital.sender.rate_per_second)
    for window in range(first, first + 10):  # every window the sender could reach is taken
        ratelimit._add("solapi", window, cap, cap)
    batch = requests("rate-full", 20)
    pipeline.produce(batch)
    pipeline.relay()
    handed_back = pipeline.invoke(pipeline.receive())
    assert len(handed_back) == 20
    assert pipeline.fake.accepted_total() == 0
    assert records.get_many([message_id("demo", r.idempotency_key) for r in batch]) == {}
    pipeline.drain()
    check(pipeline.row("rate window full", batch), sent=20)


def test_secrets_manager_error(pipeline: Pipeline) -> None:
    pipeline.providers.secret_failures = 1
    sent = run(pipeline, "secret-error")
    check(pipeline.row("Secrets Manager error", sent), sent=20)


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("provider 5xx, nothing accepted", behave.server_error(503)),
        ("provider 5xx after accepting", behave.accept_then_error(502)),
        ("provider 429", behave.rate_limited("1")),
        ("timeout before accepting", behave.hang(0.8, then=behave.drop())),
        ("timeout, accepted after the client gave up", behave.hang(0.8)),
        ("timeout after accepting", behave.accept_then_hang(0.8)),
        ("connection reset before intake", behave.drop()),
        ("connection reset after accepting", behave.accept_then_drop()),
    ],
)
def test_provider_fault(pipeline: Pipeline, name: str, fault: behave.Behaviour) -> None:
    pipeline.fake.script(fault)
    sent = run(pipeline, name.replace(" ", "-"))
    check(pipeline.row(name, sent), sent=20)


def _kill_after(pipeline: Pipeline, where: str, after_calls: int) -> Callable[[], None]:
    provider = pipeline.providers.solapi
    original = provider.send_many
    original_claim = records.claim_calling
    state = {"calls": 0, "claims": 0}

    def send_many(messages: Any) -> Any:
        results = original(messages)
        state["calls"] += 1
        if where == "after_call" and state["calls"] == after_calls:
            raise Killed
        return results

    def claim(*args: Any, **kwargs: Any) -> bool:
        taken = original_claim(*args, **kwargs)
        state["claims"] += 1
        if where == "before_call" and state["claims"] == after_calls:
            raise Killed
        return taken

    provider.send_many = send_many  # type: ignore[method-assign]
    records.claim_calling = claim  # type: ignore[assignment]

    def undo() -> None:
        provider.send_many = original  # type: ignore[method-assign]
        records.claim_calling = original_claim  # type: ignore[assignment]

    return undo


@pytest.mark.parametrize("where", ["before_call", "after_call"])
def test_lambda_killed_mid_batch(pipeline: Pipeline, where: str) -> None:
    undo = _kill_after(pipeline, where, 5 if where == "before_call" else 1)
    try:
        batch = requests(f"killed-{where}", 20)
        pipeline.produce(batch)
        pipeline.relay()
        assert pipeline.invoke(pipeline.receive())  # the whole batch comes back
    finally:
        undo()
    shift(120)  # past the dead sender's lease
    pipeline.drain()
    check(pipeline.row(f"Lambda killed mid-batch ({where})", batch), sent=20)


def test_dead_letter_replay_sends_once_and_never_an_uncertain_one(pipeline: Pipeline) -> None:
    batch = requests("dlq", 5)
    pipeline.produce(batch)
    pipeline.relay()
    with pipeline.fake.offline():  # connection refused: surely not received, so retried
        for _ in range(NOTIFICATIONS.max_receive_count + 1):
            messages = pipeline.receive()
            if not messages:
                break
            pipeline.invoke(messages)
            shift(1_000)
    assert pipeline.dead_letters() == 5
    statuses = {
        r["status"]
        for r in records.get_many([message_id("demo", r.idempotency_key) for r in batch]).values()
    }
    assert statuses == {"failed"}
    sqs = boto3.client("sqs")
    report = replay_dead_letters(sqs, os.environ[NOTIFICATIONS.dlq_env], pipeline.queue_url, "demo")
    assert (report.replayed, report.reopened) == (5, 5)
    pipeline.drain()
    check(pipeline.row("DLQ replay after an outage", batch), sent=5)

    # an uncertain message parked in the DLQ by hand is never resent by a replay
    pipeline.fake.script(behave.accept_then_hang(0.8))
    pipeline.fake.script_list(*[behave.server_error(500)] * 20)  # the log cannot say
    (doubtful,) = requests("dlq-uncertain", 1)
    pipeline.produce([doubtful])
    pipeline.relay()
    for _ in range(NOTIFICATIONS.max_receive_count + 1):
        messages = pipeline.receive()
        if not messages:
            break
        pipeline.invoke(messages)
        shift(1_000)
    sqs.send_message(
        QueueUrl=os.environ[NOTIFICATIONS.dlq_env], MessageBody=doubtful.model_dump_json()
    )
    again = replay_dead_letters(sqs, os.environ[NOTIFICATIONS.dlq_env], pipeline.queue_url, "demo")
    assert again.reopened == 0
    pipeline.drain()
    row = pipeline.row("uncertain message replayed from the DLQ", [doubtful])
    check(row, uncertain=1)
    assert row.accepted == 1


def load_row(pipeline: Pipeline, senders: int, count: int, rate: float, batch: int) -> Row:
    hospital = pipeline.hospital.model_copy(
        update={"sender": pipeline.hospital.sender.model_copy(update={"rate_per_second": rate})}
    )
    pipeline.hospital = hospital
    sent = requests(f"load-{senders}", count)
    pipeline.__post_init__()  # a client timeout a loaded provider meets (2 s)
    with pipeline.wired():
        pipeline.produce(sent)
        pipeline.relay()
        concurrent(pipeline, senders, batch, deadline_s=count / rate * 3 + 60)()
        pipeline.drain()
    row = pipeline.row(f"{senders} senders, {count} messages at {rate:g}/s", sent)
    print(f"  errors retried: {len(pipeline.errors)} {sorted(set(pipeline.errors))[:3]}")
    return row


def test_concurrent_senders_hold_the_rate_and_send_each_once(pipeline: Pipeline) -> None:
    rate = 100.0
    pipeline.timeout_s = 2.0
    row = load_row(pipeline, senders=30, count=300, rate=rate, batch=20)
    check(row)
    # an uncertain one is final and visible (the provider has it; its log did not answer in
    # time), never lost and never resent
    assert row.statuses.get("sent", 0) + row.uncertain == 300
    cap = ratelimit.capacity(rate)
    windows: dict[int, int] = {}
    for accepted in pipeline.fake.accepted:
        window = int(accepted.accepted_at.timestamp() // ratelimit.WINDOW_S)
        windows[window] = windows.get(window, 0) + 1
    assert max(windows.values()) <= cap * 1.1, windows  # a send may straddle a window edge
