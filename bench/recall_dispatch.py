"""The recall dispatcher's cost with 1,000 touchpoints due among 10,000 and among 100,000 planned:
items read per due touchpoint and the dispatcher's time, both meant to stay flat in the total;
the dispatcher with 10,000 due at once (does it fit the minute between runs?); and a campaign
job of 200,000 recipients, simulated on a sample through the campaign runner.

Against moto in-process: touchpoints and patients are written straight into the table
(BatchWriteItem through `repository.write_all`, or moto's backend when the total is large, see
`DIRECT_FROM`), the due ones in the hour before `now` and the rest over the next six months,
spread across the hourly buckets of the due index. `RecallDesk.dispatch_due(now)` then runs as
the Lambda does: each touchpoint's `queued` mark and its outbox item in one transaction, 50
touchpoints per TransactWriteItems. Items read are counted from the responses (botocore
`after-call`: a Query's `Count`, a BatchGetItem's `Responses`, a GetItem's `Item`), requests by
operation. Between runs the due touchpoints are written back as planned and the watermark reset.

moto is not DynamoDB: its Query walks every item of the table (moto/dynamodb/models/table.py,
`Table.query`), so the time spent inside moto can grow with the table while DynamoDB's does not,
and each moto request costs ~10 ms of expression parsing and serialisation; its
TransactWriteItems deep-copies the table first (replaced here by `quick_transactions`, which
checks every condition and then applies: the same answers without the copy). The rows therefore
split the dispatcher's time into time inside AWS calls (botocore `before-call` to `after-call`)
and time outside them (our code and botocore's request building); the latter, and the items
read, are what must stay flat. One uncounted warm-up dispatch per total (`--warmup 0` skips it).

The campaign rows run a job of `SOTONG_BENCH_CAMPAIGN_SAMPLE` recipients (default 5,000) to the
end through `CampaignRunner`, one run per simulated minute, and scale it: requests per recipient
are flat (a page of 100 treatments is one Query and one BatchGetItem, 49 recipients one
TransactWriteItems), the time to send 200,000 is recipients / `sender.rate_per_second` (the job
queues a minute's worth per run), and each run's own time is measured per 1,000 recipients.

`SOTONG_BENCH_RECALL_SIZES` (default `10000,100000`) picks the totals, `SOTONG_BENCH_RECALL_DUE`
(default 1000) the due touchpoints, `SOTONG_BENCH_RECALL_DUE_LARGE` (default 10000; 0 skips)
the all-at-once case, `SOTONG_BENCH_CAMPAIGN_SAMPLE` (0 skips) the campaign.
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.core import Options, Row, suite

ROOT = Path(__file__).resolve().parent.parent
SUITE = "recall_dispatch"
SIZES_ENV = "SOTONG_BENCH_RECALL_SIZES"
DUE_ENV = "SOTONG_BENCH_RECALL_DUE"
LARGE_ENV = "SOTONG_BENCH_RECALL_DUE_LARGE"
CAMPAIGN_ENV = "SOTONG_BENCH_CAMPAIGN_SAMPLE"
DEFAULT_SIZES = (10_000, 100_000)
DEFAULT_DUE = 1_000
DEFAULT_LARGE = 10_000
DEFAULT_CAMPAIGN = 5_000
CAMPAIGN_TARGET = 200_000
SCHEDULE_S = 60.0
"""the dispatcher and the campaign runner run every minute"""
MAX_RUNS = 3
TOUCHPOINTS_PER_PATIENT = 4
DIRECT_FROM = 20_000
"""from this many items on, write into moto's backend directly (BatchWriteItem through botocore and
moto's HTTP emulation costs ~1 ms an item; the stored items are the same)"""
NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # 10:30 KST


@contextmanager
def quick_transactions() -> Iterator[None]:
    """moto backs a TransactWriteItems up by deep-copying the whole table first (once per
    action in moto itself, once per transaction with `sotong_local.aws`'s patch): ~1 s for a
    table of 3,000 items, so moto's time grows with the table and a 2,500-patient campaign
    takes minutes. Here every condition is checked first and the actions applied only when all
    hold, which is what DynamoDB does (conditions see the state before the transaction): the
    same answers, CancellationReasons included, without the copy."""
    from moto.dynamodb import models
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    backend = models.DynamoDBBackend
    before = backend.transact_write_items
    one_at_a_time = threading.Lock()  # checked, then applied: no other transaction in between

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with one_at_a_time:
            checked_then_applied(self, transact_items)

    def checked_then_applied(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        targets: set[tuple[str, str]] = set()
        keyed: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = []
        errors: list[tuple[str | None, str | None, None]] = []
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            ((kind, op),) = entry.items()
            table = self.get_table(op["TableName"])
            if kind == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            target = (op["TableName"], str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            condition = op.get("ConditionExpression")
            holds = condition is None or get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            ).expr(self.get_item(op["TableName"], key))
            errors.append(
                (None, None, None)
                if holds
                else ("ConditionalCheckFailed", "The conditional request failed", None)
            )
            keyed.append((kind, op, op["TableName"], key))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        for kind, op, name, key in keyed:
            common = {  # the condition held and nothing else in the transaction touched the item
                "condition_expression": op.get("ConditionExpression"),
                "expression_attribute_names": op.get("ExpressionAttributeNames"),
                "expression_attribute_values": op.get("ExpressionAttributeValues"),
            }
            if kind == "Put":
                self.put_item(name, op["Item"], **common)
            elif kind == "Delete":
                self.delete_item(name, key, **common)
            elif kind == "Update":
                self.update_item(name, key, update_expression=op["UpdateExpression"], **common)

    transact_write_items._copies_once = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        backend.transact_write_items = before  # type: ignore[method-assign]


def sizes() -> tuple[int, ...]:
    raw = os.environ.get(SIZES_ENV, "")
    if not raw.strip():
        return DEFAULT_SIZES
    try:
        chosen = tuple(int(part.replace("_", "")) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{SIZES_ENV}: comma-separated totals, e.g. 10000,100000") from None
    return chosen or DEFAULT_SIZES


def due_count() -> int:
    return int(os.environ.get(DUE_ENV, "") or DEFAULT_DUE)


def _count(env: str, default: int) -> int:
    raw = os.environ.get(env, "").replace("_", "").strip()
    return int(raw) if raw else default


@dataclass
class Meter:
    """botocore hooks: requests by operation, items returned, and time spent inside calls."""

    requests: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    inside: float = 0.0
    inside_by_operation: dict[str, float] = field(default_factory=dict)
    _started: dict[int, float] = field(default_factory=dict)

    def before(self, event_name: str, **kwargs: Any) -> None:
        self._started[id(kwargs.get("context"))] = time.perf_counter()

    def after(self, event_name: str, parsed: dict[str, Any], **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.requests[operation] += 1
        if operation == "Query":
            self.items[operation] += int(parsed.get("Count", 0))
        elif operation == "BatchGetItem":
            self.items[operation] += sum(len(v) for v in parsed.get("Responses", {}).values())
        elif operation == "GetItem":
            self.items[operation] += 1 if parsed.get("Item") else 0
        elif operation == "TransactGetItems":
            self.items[operation] += len(parsed.get("Responses", []))

    def timed(self, event_name: str, **kwargs: Any) -> None:
        started = self._started.pop(id(kwargs.get("context")), None)
        if started is not None:
            took = time.perf_counter() - started
            self.inside += took
            operation = event_name.rsplit(".", 1)[-1]
            self.inside_by_operation[operation] = self.inside_by_operation.get(operation, 0) + took

    def reset(self) -> None:
        self.requests.clear()
        self.items.clear()
        self.inside = 0.0
        self.inside_by_operation.clear()
        self._started.clear()


def _items(total: int, due: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(patients, touchpoints): touchpoints 0..due-1 are due in the hour before NOW."""
    from sotong import clock
    from sotong.recall import repository as repo
    from sotong.recall.model import treatment_id

    patients_n = max(due, total // TOUCHPOINTS_PER_PATIENT)
    treated = (NOW - timedelta(days=183)).date().isoformat()
    patients = [
        {
            "pk": repo.pk(f"p{n:020x}"),
            "sk": "PAT",
            "id": f"p{n:020x}",
            "name": f"환자{n}",
            "phone": f"+82105{n:07d}"[:13],
            "consents": {"contact": True, "marketing": False, "night": False},
            "last_treatment": {"scaling": treated},
        }
        for n in range(patients_n)
    ]
    touchpoints = []
    later_span = int(timedelta(days=180).total_seconds())
    for n in range(total):
        pid = f"p{n % patients_n:020x}"
        tid = treatment_id(pid, "scaling", NOW.date() - timedelta(days=183 + n // patients_n))
        if n < due:
            at = NOW - timedelta(seconds=3_599 * (n + 1) / due)  # within (NOW - 1 h, NOW]
        else:
            at = NOW + timedelta(hours=1, seconds=(n * 7_919) % later_span)
        stamp = clock.iso(at)
        touchpoint_id = f"{tid}.recall"
        touchpoints.append(
            {
                "pk": repo.pk(pid),
                "sk": f"TP#{tid}#recall",
                "id": touchpoint_id,
                "patient_id": pid,
                "treatment_id": tid,
                "tag": "scaling",
                "step": "recall",
                "template": "recall_checkup",
                "purpose": "service",
                "cancel_if": ["future_booking", "visit_since", "repeat_treatment"],
                "treatment_date": treated,
                "due_at": stamp,
                "status": "planned",
                "gsi2pk": repo.due_bucket(at),
                "gsi2sk": f"{stamp}#{pid}#{touchpoint_id}",
            }
        )
    return patients, touchpoints


def _write(items: list[dict[str, Any]], direct: bool) -> None:
    from sotong import store
    from sotong.recall import repository as repo

    if not direct:
        repo.write_all(items)
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    region = store.dynamodb().meta.region_name
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(store.table_name())
    for item in items:
        table.put_item(store.to_item(item))


@dataclass
class Measured:
    total: int
    due: int
    write_s: float
    direct: bool
    times_ms: list[float] = field(default_factory=list)
    inside_ms: list[float] = field(default_factory=list)
    operation_ms: list[dict[str, float]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    queued: int = 0

    @property
    def items_read(self) -> int:
        return sum(self.items.values())

    @property
    def own_ms(self) -> list[float]:
        return [t - i for t, i in zip(self.times_ms, self.inside_ms, strict=True)]

    def median_inside(self, operation: str) -> float:
        return statistics.median(run.get(operation, 0.0) for run in self.operation_ms)


def _measure(
    total: int, due: int, runs: int, warmup: int, meter: Meter, config_path: Path
) -> Measured:
    import boto3
    from moto import mock_aws

    from sotong import store
    from sotong.config import load_hospital_file
    from sotong.recall import service
    from sotong.recall.service import RecallDesk
    from sotong_local.aws import create_resources

    hospital = load_hospital_file(config_path)
    with mock_aws(), quick_transactions():  # mock_aws patches boto3.DEFAULT_SESSION: hook it
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        events = boto3.DEFAULT_SESSION.events
        events.register("before-call.dynamodb", meter.before)
        events.register("after-call.dynamodb", meter.after)
        events.register("after-call.dynamodb", meter.timed)
        store.dynamodb.cache_clear()
        os.environ.update(create_resources(None))
        patients, touchpoints = _items(total, due)
        direct = total + len(patients) >= DIRECT_FROM
        started = time.perf_counter()
        _write(patients, direct)
        _write(touchpoints, direct)
        measured = Measured(total, due, time.perf_counter() - started, direct)
        desk = RecallDesk(hospital)
        for run in range(warmup + runs):
            if run:
                _write(touchpoints[:due], direct)  # planned again, back in the due index
            store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
            meter.reset()
            gc.collect()
            gc.disable()  # moto's table lives in this heap (not in a Lambda's): no GC walks on it
            try:
                t0 = time.perf_counter()
                report = desk.dispatch_due(NOW)
                took = (time.perf_counter() - t0) * 1000
            finally:
                gc.enable()
            if run >= warmup:
                measured.times_ms.append(took)
                measured.inside_ms.append(meter.inside * 1000)
                measured.operation_ms.append(
                    {k: v * 1000 for k, v in meter.inside_by_operation.items()}
                )
            if report.queued != due:
                raise RuntimeError(f"dispatch queued {report.queued} of {due}: {report}")
            measured.requests, measured.items = Counter(meter.requests), Counter(meter.items)
            measured.queued = report.queued
        store.dynamodb.cache_clear()
    return measured


@dataclass
class Campaign:
    recipients: int
    rate: float
    budget: int
    runs_ms: list[float] = field(default_factory=list)
    inside_ms: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def total_ms(self) -> float:
        return sum(self.runs_ms)

    @property
    def per_thousand_ms(self) -> float:
        return self.total_ms / self.recipients * 1000


def _campaign_items(count: int) -> list[dict[str, Any]]:
    from sotong.recall import repository as repo

    items: list[dict[str, Any]] = []
    for n in range(count):
        pid = f"p{n:020x}"
        day = (NOW - timedelta(days=200 + n % 180)).date().isoformat()
        items.append(
            {
                "pk": repo.pk(pid),
                "sk": "PAT",
                "id": pid,
                "name": f"환자{n}",
                "phone": f"+82106{n:07d}",
                "consents": {"contact": True, "marketing": True, "night": False},
                "last_treatment": {"scaling": day},
            }
        )
        items.append(
            {
                "pk": repo.pk(pid),
                "sk": f"TRT#t{n:016x}",
                "patient_id": pid,
                "tag": "scaling",
                "date": day,
                "gsi1pk": "TAG#scaling",
                "gsi1sk": f"{day}#{pid}",
            }
        )
    return items


def _measure_campaign(recipients: int, meter: Meter, config_path: Path) -> Campaign:
    """A campaign job over `recipients` consented patients, run to the end, a run a minute."""
    import boto3
    from moto import mock_aws

    from sotong import clock, store
    from sotong.config import load_hospital_file
    from sotong.recall import campaigns
    from sotong.recall.campaigns import CampaignDesk, CampaignRequest, CampaignRunner
    from sotong.recall.segments import Segment
    from sotong_local.aws import create_resources

    hospital = load_hospital_file(config_path)
    runner = CampaignRunner(hospital)
    measured = Campaign(recipients, hospital.sender.rate_per_second, runner.budget)
    clock.fix(NOW)
    try:
        with mock_aws(), quick_transactions():
            boto3.setup_default_session()
            assert boto3.DEFAULT_SESSION is not None
            events = boto3.DEFAULT_SESSION.events
            events.register("before-call.dynamodb", meter.before)
            events.register("after-call.dynamodb", meter.after)
            events.register("after-call.dynamodb", meter.timed)
            store.dynamodb.cache_clear()
            os.environ.update(create_resources(None))
            _write(_campaign_items(recipients), direct=True)
            request = CampaignRequest(
                name="bench", segment=Segment(tag="scaling"), template_id="scaling_next_step"
            )
            created, _ = CampaignDesk(hospital).create(request, "bench", "bench-1")
            meter.reset()
            for minute in range(recipients // runner.budget + 3):
                clock.fix(NOW + timedelta(minutes=minute))
                gc.collect()
                t0 = time.perf_counter()
                (run,) = runner.run(clock.now())
                measured.runs_ms.append((time.perf_counter() - t0) * 1000)
                if run.outcome == "done":
                    break
            measured.inside_ms = meter.inside * 1000
            measured.requests = Counter(meter.requests)
            job = campaigns.get_item(created["id"])
            if job is None or job["status"] != "done" or job["queued"] != recipients:
                raise RuntimeError(f"the campaign did not finish with {recipients} queued: {job}")
            store.dynamodb.cache_clear()
    finally:
        clock.fix(None)
    return measured


def _describe(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items()))


def _rows(results: list[Measured]) -> list[Row]:
    rows: list[Row] = []
    for m in results:
        label = f"{m.due:,} due of {m.total:,}"
        how = "moto backend" if m.direct else "BatchWriteItem"
        rows += [
            Row(
                SUITE,
                f"{label}: items read per due touchpoint",
                m.items_read / m.due,
                "items",
                f"{m.items_read:,} read ({_describe(m.items)}); requests: {_describe(m.requests)}",
                {"items_read": m.items_read, "due": m.due, "total": m.total, **m.requests},
            ),
            Row(
                SUITE,
                f"{label}: dispatcher time",
                statistics.median(m.times_ms),
                "ms",
                f"median of {len(m.times_ms)}; inside moto calls "
                f"{statistics.median(m.inside_ms):,.0f} ms (Query {m.median_inside('Query'):,.0f}, "
                f"TransactWriteItems {m.median_inside('TransactWriteItems'):,.0f}), own code "
                f"{statistics.median(m.own_ms):,.0f} ms; set-up wrote {m.total:,} touchpoints + "
                f"patients in {m.write_s:.0f} s ({how})",
                {
                    "median": round(statistics.median(m.times_ms), 1),
                    "inside_aws_ms": round(statistics.median(m.inside_ms), 1),
                    "own_ms": round(statistics.median(m.own_ms), 1),
                    **{
                        f"inside_{op}_ms": round(m.median_inside(op), 1)
                        for op in sorted({k for run in m.operation_ms for k in run})
                    },
                    "runs": len(m.times_ms),
                    "each_ms": ", ".join(f"{t:.0f}" for t in m.times_ms),
                    "own_each_ms": ", ".join(f"{t:.0f}" for t in m.own_ms),
                    "write_s": round(m.write_s, 1),
                },
            ),
        ]
    if len(results) >= 2:
        small, big = results[0], results[-1]
        name = f"{big.total // 1000:,}k/{small.total // 1000:,}k"

        def ratio(value: Callable[[Measured], float]) -> float:
            return value(big) / value(small) if value(small) else float("nan")

        per_due = ratio(lambda m: m.items_read / m.due)
        own = ratio(lambda m: statistics.median(m.own_ms))
        whole = ratio(lambda m: statistics.median(m.times_ms))
        queries = ratio(lambda m: m.median_inside("Query"))
        rows += [
            Row(SUITE, f"ratio {name}: items read per due", per_due, "x", "flat: ~1"),
            Row(
                SUITE,
                f"ratio {name}: dispatcher time, own code",
                own,
                "x",
                f"flat: ~1; with the time inside moto's calls {whole:.2f}x (moto's Query alone "
                f"{queries:.1f}x: it walks the whole table, DynamoDB's reads the due items only)",
                {"with_moto": round(whole, 2), "moto_query": round(queries, 2)},
            ),
        ]
    return rows


def _fits_rows(results: list[Measured]) -> list[Row]:
    """Whether a dispatch of that many due touchpoints fits the minute between runs."""
    rows = []
    for m in results:
        took = statistics.median(m.times_ms) / 1000
        writes = m.requests.get("TransactWriteItems", 0)
        rows.append(
            Row(
                SUITE,
                f"dispatch {m.due:,} due at once: share of the minute between runs",
                took / SCHEDULE_S * 100,
                "%",
                f"{took:.1f} s under moto ({'fits' if took < SCHEDULE_S else 'does NOT fit'} "
                f"the {SCHEDULE_S:.0f} s; own code {statistics.median(m.own_ms) / 1000:.1f} s); "
                f"{writes:,} TransactWriteItems ({m.due / max(writes, 1):.0f} touchpoints each), "
                f"requests: {_describe(m.requests)}; a longer run stops at its deadline and the "
                "next carries on from the watermark",
                {"seconds": round(took, 2), "due": m.due, "transact_writes": writes},
            )
        )
    return rows


def _campaign_rows(c: Campaign) -> list[Row]:
    requests = sum(c.requests.values())
    per_recipient = requests / c.recipients
    runs = math.ceil(CAMPAIGN_TARGET / c.budget)
    run_s = c.per_thousand_ms * c.budget / 1000 / 1000
    hours = CAMPAIGN_TARGET / c.rate / 3600
    return [
        Row(
            SUITE,
            f"campaign job, {c.recipients:,} recipients: AWS requests per 1,000 recipients",
            per_recipient * 1000,
            "requests",
            f"{requests:,} in all: {_describe(c.requests)} (49 recipients a TransactWriteItems, "
            "an outbox item and a patient update each, with the job's progress)",
            {"recipients": c.recipients, **c.requests},
        ),
        Row(
            SUITE,
            "campaign job: runner time per 1,000 recipients",
            c.per_thousand_ms,
            "ms",
            f"{len(c.runs_ms)} runs of up to {c.budget:,} (a minute at {c.rate:g}/s): "
            f"{', '.join(f'{t / 1000:.1f}' for t in c.runs_ms)} s; inside moto "
            f"{c.inside_ms / c.total_ms * 100:.0f} %",
            {"per_1000_ms": round(c.per_thousand_ms, 1), "runs": len(c.runs_ms)},
        ),
        Row(
            SUITE,
            f"campaign of {CAMPAIGN_TARGET:,}: time at the send rate",
            hours,
            "h",
            f"{CAMPAIGN_TARGET:,} / {c.rate:g} per s (sender.rate_per_second); {runs:,} runner "
            f"runs of {c.budget:,}, each ~{run_s:.1f} s of runner time under moto (schedule "
            f"{SCHEDULE_S:.0f} s, timeout 120 s); ~{per_recipient * CAMPAIGN_TARGET:,.0f} requests",
            {
                "hours": round(hours, 2),
                "runner_runs": runs,
                "run_s": round(run_s, 2),
                "requests": round(per_recipient * CAMPAIGN_TARGET),
            },
        ),
    ]


@suite(SUITE)
def recall_dispatch(options: Options) -> list[Row]:
    from sotong.config import load_hospital_file

    config = load_hospital_file(ROOT / "hospitals" / "demo.yaml").model_dump(mode="json")
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "ap-northeast-2",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    meter = Meter()
    runs = max(1, min(options.runs, MAX_RUNS))
    due = due_count()
    large = _count(LARGE_ENV, DEFAULT_LARGE)
    sample = _count(CAMPAIGN_ENV, DEFAULT_CAMPAIGN)
    results = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
        for total in sizes():
            if total < due:
                raise ValueError(f"{SIZES_ENV}: every total must be at least {due} (the due ones)")
            results.append(_measure(total, due, runs, min(options.warmup, 1), meter, path))
        rows += _rows(results)
        at_once = results[:1]
        if large:
            at_once.append(_measure(large, large, 1, 0, meter, path))
        rows += _fits_rows(at_once)
        if sample:
            rows += _campaign_rows(_measure_campaign(sample, meter, path))
    return rows
