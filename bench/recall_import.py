"""The CSV import of treatments: time and AWS requests for a 10,000-row EMR export, and for
importing the same file again (which must write nothing), against moto in-process as AWS.

The file is generated (deterministic): Korean headers, 70 % distinct patients (the rest are repeat
visits of earlier ones), the demo hospital's five tags written as ids or Korean names, dates from
a year back to a month ahead of the fixed clock (so both past touchpoints, stored as skipped, and
planned ones are written). Every boto3 call is counted by botocore's `before-call` event. Beside
it, a baseline: the same rows one by one through `RecallDesk.register` + `record_treatment`, the
path the API takes per treatment (measured on a sample, given per row).

Under moto in-process every request costs ~3.5-4.5 ms of moto's own work (the full 10,000-row
import took 73 s and, on a busier moment, 93 s on a 2-CPU machine), so the suite imports 5,000
rows by default and extrapolates to 10,000: the request counts grow linearly with the rows (they
are planned per chunk of 250), and moto's time per request stayed flat from 2,000 to 10,000 rows.
`SOTONG_BENCH_IMPORT_ROWS=10000` measures the full file instead;
`SOTONG_BENCH_IMPORT_RUNS` (default 1) runs it more than once, for a median.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.core import Options, Row, suite, summary
from bench.pipeline import Calls

ROOT = Path(__file__).resolve().parent.parent
SUITE = "recall_import"
ROWS_ENV = "SOTONG_BENCH_IMPORT_ROWS"
RUNS_ENV = "SOTONG_BENCH_IMPORT_RUNS"
DEFAULT_ROWS = 5_000
TARGET_ROWS = 10_000
BASELINE_ROWS = 200
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Seoul"))

_SURNAMES = "김이박최정강조윤장임한오서신권황안송전홍"
_SYLLABLES = "서민지준하은도윤예수아호우현채원유나시건린연우진영"
_TAGS = (
    ("implant_surgery", "임플란트 식립"),
    ("scaling", "스케일링"),
    ("extraction", "발치"),
    ("botox", "보톡스"),
    ("laser_toning", "레이저 토닝"),
)


def generate_csv(rows: int, seed: int = 20261123) -> bytes:
    """A UTF-8 (BOM) CSV as Excel's 'CSV UTF-8' writes it; same bytes for the same arguments."""
    rng = random.Random(seed)
    patients = max(1, rows * 7 // 10)
    first_day, span = date(2025, 11, 24), 395
    lines = ["차트번호,환자명,휴대폰,이메일,시술,시술일,마케팅동의,야간동의,메모"]
    for n in range(rows):
        person = n if n < patients else rng.randrange(patients)
        name = (
            _SURNAMES[person % len(_SURNAMES)]
            + _SYLLABLES[(person // 7) % len(_SYLLABLES)]
            + _SYLLABLES[(person // 3) % len(_SYLLABLES)]
        )
        phone = f"010-{2000 + person // 10000:04d}-{person % 10000:04d}"
        email = f"p{person}@example.com" if person % 3 == 0 else ""
        tag_id, tag_name = _TAGS[rng.randrange(len(_TAGS))]
        day = first_day + timedelta(days=rng.randrange(span))
        when = day.isoformat() if rng.random() < 0.7 else day.strftime("%Y.%m.%d")
        marketing = "Y" if person % 4 == 0 else "N"
        lines.append(
            f"C-{100000 + person},{name},{phone},{email},"
            f"{tag_id if rng.random() < 0.6 else tag_name},{when},{marketing},N,"
        )
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def _per_row(counts: Counter[str], rows: int) -> str:
    return ", ".join(f"{k.split('.')[-1]} {v / rows:.3g}" for k, v in sorted(counts.items()))


def _writes(counts: Counter[str]) -> int:
    writes = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
    return sum(n for key, n in counts.items() if key.split(".")[-1] in writes)


@suite(SUITE)
def recall_import(options: Options) -> list[Row]:
    import boto3
    from moto import mock_aws

    from sotong import clock, store
    from sotong.config import load_hospital_file
    from sotong.recall import importer
    from sotong.recall.service import RecallDesk
    from sotong_local.aws import create_resources

    rows = int(os.environ.get(ROWS_ENV) or DEFAULT_ROWS)
    runs = max(1, int(os.environ.get(RUNS_ENV) or 1))
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "ap-northeast-2",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    calls = Calls()

    def count_calls() -> None:
        # mock_aws swaps boto3's default session while it runs: register inside it
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", calls)
        store.dynamodb.cache_clear()

    hospital = load_hospital_file(ROOT / "hospitals" / "demo.yaml")
    data = generate_csv(rows)
    clock.fix(NOW)
    first_times: list[float] = []
    again_times: list[float] = []
    parse_times: list[float] = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            parsed = importer.parse(data, hospital)
            parse_times.append(time.perf_counter() - t0)
            with mock_aws():
                count_calls()
                os.environ.update(create_resources(None))
                calls.take()
                t0 = time.perf_counter()
                first = importer.import_treatments(hospital, data, by="bench")
                first_times.append(time.perf_counter() - t0)
                first_calls = calls.take()
                t0 = time.perf_counter()
                again = importer.import_treatments(hospital, data, by="bench")
                again_times.append(time.perf_counter() - t0)
                again_calls = calls.take()
                store.dynamodb.cache_clear()
        assert first.imported + first.duplicates == rows, first.as_dict(5)
        assert again.imported == 0, again.as_dict(5)
        assert again.already_imported == first.imported
        # baseline: the same rows one at a time through the service, on a sample
        sample = [parsed.rows[line] for line in parsed.lines[:BASELINE_ROWS]]
        with mock_aws():
            count_calls()
            os.environ.update(create_resources(None))
            desk = RecallDesk(hospital)
            calls.take()
            t0 = time.perf_counter()
            for row in sample:
                patient = desk.register(row.registration)
                desk.record_treatment(patient["id"], row.record, "bench")
            baseline_time = time.perf_counter() - t0
            baseline_calls = calls.take()
            store.dynamodb.cache_clear()
    finally:
        clock.fix(None)
    imported = first.imported
    first_total = sum(first_calls.values())
    median = statistics.median(first_times)
    runs_note = f"median of {runs} runs" if runs > 1 else "1 run"
    result = [
        Row(
            SUITE,
            f"import {rows:,} rows: time",
            median,
            "s",
            f"{runs_note}; parse+validate alone {statistics.median(parse_times):.2f} s; "
            f"{first.touchpoints_planned + first.touchpoints_skipped:,} touchpoints, "
            f"{first.patients_created:,} patients; moto in-process",
            summary(first_times),
        ),
        Row(SUITE, "import: throughput", rows / median, "rows/s", "moto in-process as AWS"),
        Row(
            SUITE,
            "import: AWS requests",
            first_total / rows,
            "per row",
            f"{first_total:,} in all; per row: {_per_row(first_calls, rows)}",
            {"total": first_total, **dict(sorted(first_calls.items()))},
        ),
    ]
    if rows != TARGET_ROWS:
        scale = TARGET_ROWS / rows
        result.append(
            Row(
                SUITE,
                f"import {TARGET_ROWS:,} rows: time (extrapolated)",
                median * scale,
                "s",
                f"linear from {rows:,} rows (a full 10,000-row run measured 73-93 s on a 2-CPU "
                f"machine); ~{first_total * scale:,.0f} requests",
            )
        )
    again_total = sum(again_calls.values())
    result += [
        Row(
            SUITE,
            "re-import (same file): time",
            statistics.median(again_times),
            "s",
            f"{again.already_imported:,} already imported, {again.imported} imported",
            summary(again_times),
        ),
        Row(
            SUITE,
            "re-import: AWS requests",
            again_total,
            "requests",
            f"{_writes(again_calls)} writes; per row: {_per_row(again_calls, rows)}",
        ),
        Row(
            SUITE,
            "baseline row by row (register + record_treatment): requests",
            sum(baseline_calls.values()) / len(sample),
            "per row",
            f"per row: {_per_row(baseline_calls, len(sample))}; sample of {len(sample)} rows",
        ),
        Row(
            SUITE,
            "baseline row by row: time",
            baseline_time / len(sample) * imported,
            "s",
            f"extrapolated from {len(sample)} rows to {imported:,}",
        ),
    ]
    return result
