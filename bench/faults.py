"""The delivery fault matrix's load row in full: 300 concurrent senders on 5,000 messages at the
demo's 20 messages/s, the real Solapi client against the fake Solapi server, moto in-process as
AWS. Counts what the fake accepted: lost and duplicated messages must both be 0. It takes the
time the rate takes (about 250 s); `SOTONG_BENCH_FAULT_MESSAGES` and `_SENDERS` shrink it."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time

from bench.core import Options, Row, suite

SUITE = "faults"


@suite(SUITE)
def faults(options: Options) -> list[Row]:
    from pathlib import Path

    from moto import mock_aws

    root = Path(__file__).resolve().parents[1]
    for folder in (str(root / "functions"), str(root)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    os.environ.setdefault("AWS_DEFAULT_REGION", "ap-northeast-2")
    os.environ.setdefault("SOTONG_HOSPITAL_CONFIG", str(root / "hospitals" / "demo.yaml"))
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SotongBench")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # the bench prints its table only
    import logging

    logging.getLogger("sotong").setLevel(logging.ERROR)
    messages = int(os.environ.get("SOTONG_BENCH_FAULT_MESSAGES") or 5000)
    senders = int(os.environ.get("SOTONG_BENCH_FAULT_SENDERS") or 300)
    from sotong import clock, store
    from sotong.config import load_hospital
    from sotong.notify import ratelimit
    from sotong.resources import NOTIFICATIONS
    from sotong_local.aws import create_resources
    from tests.fakes.solapi_server import FakeSolapi
    from tests.faults.harness import Pipeline, concurrent, requests, without_quiet_hours

    with mock_aws(), FakeSolapi() as fake:
        store.dynamodb.cache_clear()
        os.environ.update(create_resources(None))
        clock.fix(None)
        hospital = without_quiet_hours(load_hospital())
        rate = hospital.sender.rate_per_second
        pipeline = Pipeline(fake, hospital, os.environ[NOTIFICATIONS.env], timeout_s=2.0)
        sent = requests("bench-load", messages)
        with pipeline.wired():
            pipeline.produce(sent)
            pipeline.relay()
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the functions' metric lines
                concurrent(pipeline, senders, 20, deadline_s=messages / rate * 3 + 120)()
                pipeline.drain()
            took = time.perf_counter() - started
        row = pipeline.row("load", sent)
        windows: dict[int, int] = {}
        for accepted in fake.accepted:
            window = int(accepted.accepted_at.timestamp() // ratelimit.WINDOW_S)
            windows[window] = windows.get(window, 0) + 1
        reserved = max(
            (
                int(store.from_item(i).get("sent", 0))
                for i in store.dynamodb().query(
                    TableName=store.table_name(),
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues=store.values(p="RATE#solapi"),
                )["Items"]
            ),
            default=0,
        )
        store.dynamodb.cache_clear()
    cap = ratelimit.capacity(rate)
    note = (
        f"{senders} senders, {messages} messages at {rate:g}/s: accepted {row.accepted}, "
        f"lost {row.lost}, duplicates {row.duplicates}, uncertain {row.uncertain}; "
        f"{row.http_calls} send-many requests; busiest {ratelimit.WINDOW_S}-s window "
        f"{max(windows.values(), default=0)} at the provider, {reserved} reserved "
        f"(cap {cap}); final states {row.statuses}; "
        f"{len(pipeline.errors)} AWS/function errors retried"
        + (f" (first: {sorted(set(pipeline.errors))[0]})" if pipeline.errors else "")
    )
    return [
        Row(SUITE, "load: lost + duplicated messages", row.lost + row.duplicates, "messages", note),
        Row(SUITE, "load: time to send all", took, "s", f"rate floor {messages / rate:.0f} s"),
        Row(
            SUITE,
            "load: provider HTTP calls",
            row.http_calls / max(1, messages),
            "per message",
            "send-many batches",
        ),
    ]
