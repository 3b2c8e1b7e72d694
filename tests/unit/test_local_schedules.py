"""The local stack's EventBridge Scheduler expressions: next run times in Asia/Seoul."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sotong import resources
from sotong_local.schedules import Cron, Rate, ScheduledJob, ScheduleError, Scheduler, parse

SEOUL = ZoneInfo("Asia/Seoul")


def seoul(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


def runs(expression: str, after: datetime, count: int) -> list[datetime]:
    parsed = parse(expression, "Asia/Seoul")
    out = []
    for _ in range(count):
        after = parsed.next_after(after)
        out.append(after.astimezone(SEOUL))
    return out


def test_rate_runs_from_its_anchor() -> None:
    anchor = datetime(2025, 3, 1, 0, 0, 30, tzinfo=UTC)
    rate = parse("rate(5 minutes)", anchor=anchor)
    assert isinstance(rate, Rate)
    assert rate.next_after(anchor) == anchor + timedelta(minutes=5)
    assert rate.next_after(anchor + timedelta(minutes=5)) == anchor + timedelta(minutes=10)
    assert rate.next_after(anchor + timedelta(minutes=12)) == anchor + timedelta(minutes=15)
    assert parse("rate(1 day)", anchor=anchor).next_after(anchor) == anchor + timedelta(days=1)
    assert parse("rate(2 hours)", anchor=anchor).next_after(anchor) == anchor + timedelta(hours=2)


@pytest.mark.parametrize(
    "expression",
    ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(5 weeks)", "rate(5)"],
)
def test_rates_aws_refuses_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse(expression)


def test_daily_cron_is_seoul_wall_time() -> None:
    # 08:00 in Seoul is 23:00 UTC the day before.
    after = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)  # 09:00 KST on 1 Jan
    assert runs("cron(0 8 * * ? *)", after, 2) == [seoul(2025, 1, 2, 8, 0), seoul(2025, 1, 3, 8, 0)]
    assert parse("cron(0 8 * * ? *)").next_after(after) == datetime(2025, 1, 1, 23, 0, tzinfo=UTC)


def test_next_run_is_strictly_after() -> None:
    assert runs("cron(0 8 * * ? *)", seoul(2025, 1, 2, 8, 0), 1) == [seoul(2025, 1, 3, 8, 0)]
    assert runs("cron(0 8 * * ? *)", seoul(2025, 1, 2, 7, 59), 1) == [seoul(2025, 1, 2, 8, 0)]


def test_weekdays_steps_and_ranges() -> None:
    # Friday 17 Jan 2025 17:50 KST: minutes 0/20 are :00, :20, :40, hours 9-17, so Monday 09:00.
    got = runs("cron(0/20 9-17 ? * MON-FRI *)", seoul(2025, 1, 17, 17, 50), 3)
    assert got == [seoul(2025, 1, 20, 9, 0), seoul(2025, 1, 20, 9, 20), seoul(2025, 1, 20, 9, 40)]


def test_day_of_week_numbers_start_on_sunday() -> None:
    # 1 = SUN, 7 = SAT, as in EventBridge (not Unix cron).
    got = runs("cron(30 10 ? * 1,7 *)", seoul(2025, 1, 1, 0, 0), 3)  # 1 Jan 2025 is a Wednesday
    assert got == [seoul(2025, 1, 4, 10, 30), seoul(2025, 1, 5, 10, 30), seoul(2025, 1, 11, 10, 30)]


def test_month_names_day_of_month_and_year() -> None:
    got = runs("cron(0 9 1 JAN,JUL ? 2025-2026)", seoul(2025, 3, 1, 0, 0), 3)
    assert got == [seoul(2025, 7, 1, 9, 0), seoul(2026, 1, 1, 9, 0), seoul(2026, 7, 1, 9, 0)]
    with pytest.raises(ScheduleError, match="never fires"):
        runs("cron(0 9 1 JAN ? 2025)", seoul(2025, 6, 1, 0, 0), 1)


def test_month_end_days_are_skipped_in_short_months() -> None:
    got = runs("cron(0 0 31 * ? *)", seoul(2025, 1, 31, 12, 0), 2)
    assert got == [seoul(2025, 3, 31, 0, 0), seoul(2025, 5, 31, 0, 0)]


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("cron(0 8 * * * *)", "exactly one"),
        ("cron(0 8 ? * ? *)", "exactly one"),
        ("cron(0 8 * *)", "6 fields"),
        ("cron(60 8 * * ? *)", "outside"),
        ("cron(0 8 L * ? *)", "not supported"),
        ("cron(0 8 ? * 6#3 *)", "not supported"),
        ("cron(0 8 ? * FOO *)", "not a valid"),
        ("cron(0 17-9 * * ? *)", "backwards"),
        ("at(2025-01-01T00:00:00)", "one-time"),
    ],
)
def test_bad_cron_expressions_are_explained(expression: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        parse(expression)


def test_every_product_schedule_parses() -> None:
    for function in resources.FUNCTIONS:
        if function.schedule:
            parsed = parse(function.schedule.expression, function.schedule.timezone)
            assert isinstance(parsed, Rate | Cron)


def test_scheduler_runs_due_jobs_once_and_reschedules() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    clock = [start]
    fired: list[tuple[str, datetime, float]] = []
    rate = parse("rate(1 minute)", anchor=start)
    job = ScheduledJob("f", rate, "Asia/Seoul", "arn:x", next_run=rate.next_after(start))

    def run(j: ScheduledJob, at: datetime, offset: float) -> tuple[str | None, object]:
        fired.append((j.function, at, offset))
        return (None if len(fired) == 1 else "boom"), {"n": len(fired)}

    scheduler = Scheduler([job], run, now=lambda: clock[0])
    assert scheduler.tick() == 60.0  # not due yet: sleep until it is (at most 60 s)
    assert fired == []
    clock[0] = start + timedelta(seconds=70)
    assert scheduler.tick() == 50.0
    assert fired == [("f", start + timedelta(minutes=1), 0.0)]
    assert job.next_run == start + timedelta(minutes=2)
    clock[0] = start + timedelta(minutes=5, seconds=1)  # missed runs are not caught up
    scheduler.tick()
    assert len(fired) == 2
    assert job.next_run == start + timedelta(minutes=6)
    assert (job.runs, job.last_error, job.last_result) == (2, "boom", {"n": 2})


def test_scheduler_thread_stops_promptly() -> None:
    job = ScheduledJob(
        "f",
        parse("rate(1 day)"),
        "Asia/Seoul",
        "arn:x",
        next_run=datetime.now(UTC) + timedelta(days=1),
    )
    scheduler = Scheduler([job], lambda *a: (None, None))
    scheduler.start()
    started = datetime.now(UTC)
    scheduler.stop(timeout=2)
    assert (datetime.now(UTC) - started).total_seconds() < 1


def test_a_schedule_with_no_future_run_fires_once_then_leaves() -> None:
    last = parse("cron(0 9 1 JAN ? 2025)")
    job = ScheduledJob("f", last, "Asia/Seoul", "arn:x", next_run=seoul(2025, 1, 1, 9, 0))
    fired: list[datetime] = []
    scheduler = Scheduler(
        [job], lambda j, at, o: (fired.append(at), (None, None))[1], now=lambda: seoul(2025, 6, 1)
    )
    assert scheduler.tick() == 60.0
    assert fired == [seoul(2025, 1, 1, 9, 0)]
    assert scheduler.jobs == {}
