"""The recall dispatcher at a hospital's scale: writes in transactions of 50 touchpoints, one run
at a time, nothing sent twice or after a cancellation, stopping before its deadline (moto)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.recall_dispatch import quick_transactions
from sotong import clock, store
from sotong.config.schema import HospitalConfig
from sotong.notify import txoutbox
from sotong.recall import repository as repo
from sotong.recall import service
from sotong.recall.service import RecallDesk

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # 10:30 KST


@pytest.fixture
def calls(aws: dict[str, str]) -> Iterator[Counter[str]]:
    """DynamoDB requests by operation, counted on the one client the code uses."""
    counted: Counter[str] = Counter()

    def count(event_name: str, **kwargs: Any) -> None:
        counted[event_name.rsplit(".", 1)[-1]] += 1

    client = store.dynamodb()
    client.meta.events.register("before-call.dynamodb", count)
    clock.fix(NOW)
    with quick_transactions():  # moto's own copies the table per transaction: O(table)
        yield counted
    client.meta.events.unregister("before-call.dynamodb", count)


def patient(n: int, **extra: Any) -> dict[str, Any]:
    pid = f"p{n:020x}"
    return {
        "pk": repo.pk(pid),
        "sk": "PAT",
        "id": pid,
        "name": f"환자{n}",
        "phone": f"+82105{n:07d}"[:13],
        "consents": {"contact": True, "marketing": True, "night": False},
        "last_treatment": {"scaling": "2026-05-23"},
        **extra,
    }


def touchpoint(
    n: int, due: datetime, step: str = "recall", purpose: str = "service"
) -> dict[str, Any]:
    pid = f"p{n:020x}"
    tid = f"t{n:016x}"
    stamp = clock.iso(due)
    return {
        "pk": repo.pk(pid),
        "sk": f"TP#{tid}#{step}",
        "id": f"{tid}.{step}",
        "patient_id": pid,
        "treatment_id": tid,
        "tag": "scaling",
        "step": step,
        "template": "recall_checkup" if purpose == "service" else "scaling_next_step",
        "purpose": purpose,
        "cancel_if": ["future_booking", "visit_since", "repeat_treatment", "patient_paused"],
        "treatment_date": "2026-05-23",
        "due_at": stamp,
        "status": "planned",
        "gsi2pk": repo.due_bucket(due),
        "gsi2sk": f"{stamp}#{pid}#{tid}.{step}",
    }


def plant(count: int, *, first: int = 0, span: timedelta = timedelta(minutes=50)) -> None:
    """`count` patients with one recall each, due over `span` before NOW."""
    items = []
    for n in range(first, first + count):
        items.append(patient(n))
        items.append(touchpoint(n, NOW - span + span * (n - first) / count))
    repo.write_all(items)


def outbox_keys() -> list[str]:
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=100_000)
    return [json.loads(p["request"])["idempotency_key"] for p in pending]


def statuses(count: int) -> Counter[str]:
    """The planted recalls 0..count-1 by status (read by key: moto's Query walks the table)."""
    keys = [store.key(t["pk"], t["sk"]) for t in (touchpoint(n, NOW) for n in range(count))]
    return Counter(str(i["status"]) for i in store.batch_get(keys, consistent=True))


def test_1000_due_touchpoints_are_written_in_20_transactions(
    calls: Counter[str], hospital: HospitalConfig
) -> None:
    plant(1_000)
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    calls.clear()
    report = RecallDesk(hospital).dispatch_due(NOW)
    assert (report.read, report.queued, report.already_done) == (1_000, 1_000, 0)
    # 50 touchpoints (a `queued` mark and an outbox item each) per TransactWriteItems
    assert calls["TransactWriteItems"] <= 25
    assert calls["TransactWriteItems"] == 20
    assert calls["UpdateItem"] == 0  # no touchpoint is marked one by one
    assert calls["BatchGetItem"] == 10  # the patients, 100 a request
    keys = outbox_keys()
    assert len(keys) == len(set(keys)) == 1_000
    assert statuses(1_000) == Counter({"queued": 1_000})
    # the next run reads the index a few minutes behind the watermark and sends nothing again
    again = RecallDesk(hospital).dispatch_due(NOW + timedelta(minutes=1))
    assert again.queued == 0
    assert len(outbox_keys()) == 1_000


def test_two_dispatchers_at_once_send_each_touchpoint_once(
    calls: Counter[str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(300)
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    holding = threading.Event()
    other_done = threading.Event()
    read_patients = repo.DynamoPatientRepository.patients

    def slow_read(self: Any, ids: Any) -> dict[str, Any]:
        holding.set()  # the lease holder is between its read and its writes...
        other_done.wait(10)  # ...until the other run has tried
        return read_patients(self, ids)

    monkeypatch.setattr(repo.DynamoPatientRepository, "patients", slow_read)
    reports: dict[str, service.DispatchReport] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            reports[name] = RecallDesk(hospital).dispatch_due(NOW)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            if name == "second":
                other_done.set()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    second.join(20)
    first.join(20)
    assert not errors, errors
    assert reports["second"].leased is False  # it returned at once, having done nothing
    assert reports["second"].read == 0
    assert (reports["first"].leased, reports["first"].queued) == (True, 300)
    keys = outbox_keys()
    assert len(keys) == len(set(keys)) == 300
    # with the lease released, a later run may go, and finds nothing left to send
    monkeypatch.setattr(repo.DynamoPatientRepository, "patients", read_patients)
    later = RecallDesk(hospital).dispatch_due(NOW)
    assert (later.leased, later.queued) == (True, 0)


def test_a_touchpoint_cancelled_between_read_and_write_is_not_sent(
    calls: Counter[str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(120)
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    desk = RecallDesk(hospital)
    victim = touchpoint(7, NOW)
    read_patients = repo.DynamoPatientRepository.patients

    def staff_cancel_meanwhile(self: Any, ids: Any) -> dict[str, Any]:
        found = read_patients(self, ids)
        desk.cancel_touchpoint(victim["patient_id"], victim["id"], "desk.choi")
        return found

    monkeypatch.setattr(repo.DynamoPatientRepository, "patients", staff_cancel_meanwhile)
    calls.clear()
    report = desk.dispatch_due(NOW)
    assert (report.read, report.queued, report.already_done) == (120, 119, 1)
    # the refused group is written again without it: 3 groups, one of them twice
    assert calls["TransactWriteItems"] == 4
    keys = outbox_keys()
    assert len(keys) == 119
    assert f"touchpoint:{victim['patient_id']}:{victim['id']}" not in keys
    (cancelled,) = desk.touchpoints(victim["patient_id"])
    assert (cancelled["status"], cancelled["status_reason"]) == (
        "cancelled",
        "cancelled by desk.choi",
    )


def test_cancellations_are_written_in_batches_too(
    calls: Counter[str], hospital: HospitalConfig
) -> None:
    items = []
    for n in range(150):
        items.append(patient(n, paused=True, pause_reason="해외 체류"))
        items.append(touchpoint(n, NOW - timedelta(minutes=30)))
    repo.write_all(items)
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    calls.clear()
    report = RecallDesk(hospital).dispatch_due(NOW)
    assert (report.cancelled, report.reasons["patient_paused"], report.queued) == (150, 150, 0)
    assert calls["TransactWriteItems"] == 2  # 100 + 50
    assert calls["UpdateItem"] == 0
    assert outbox_keys() == []


def test_a_run_stops_before_its_deadline_and_the_next_carries_on(
    calls: Counter[str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "SLICE", 200)
    plant(500)
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    left = iter([100.0, 5.0])  # seconds left before each slice after the first
    first = RecallDesk(hospital).dispatch_due(NOW, time_left=lambda: next(left))
    assert (first.complete, first.read, first.queued) == (False, 500, 400)
    # the watermark stays just before the first touchpoint it did not take on
    mark = store.watermark(service.DISPATCH)
    assert mark is not None
    assert mark < NOW
    assert len(outbox_keys()) == first.queued
    second = RecallDesk(hospital).dispatch_due(NOW + timedelta(minutes=1), time_left=lambda: 100)
    assert second.complete
    assert first.queued + second.queued == 500
    keys = outbox_keys()
    assert len(keys) == len(set(keys)) == 500


def test_a_touchpoint_the_index_showed_late_is_sent_by_the_next_run(
    calls: Counter[str], hospital: HospitalConfig
) -> None:
    plant(3)
    desk = RecallDesk(hospital)
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    assert desk.dispatch_due(NOW).queued == 3
    # due two minutes before the watermark, but not in the (eventually consistent) index then
    repo.write_all([patient(3), touchpoint(3, NOW - timedelta(minutes=2))])
    report = desk.dispatch_due(NOW + timedelta(minutes=1))
    assert (report.read, report.queued) == (1, 1)
    assert len(outbox_keys()) == 4


def test_a_marketing_step_waits_for_the_frequency_cap(
    calls: Counter[str], hospital: HospitalConfig
) -> None:
    three_days_ago = clock.iso(NOW - timedelta(days=3))
    repo.write_all(
        [
            patient(0, last_ad_at=three_days_ago),
            touchpoint(0, NOW - timedelta(minutes=10), step="next_step", purpose="marketing"),
            patient(1),
            touchpoint(1, NOW - timedelta(minutes=10), step="next_step", purpose="marketing"),
        ]
    )
    store.set_watermark(service.DISPATCH, NOW - timedelta(hours=1))
    desk = RecallDesk(hospital)
    report = desk.dispatch_due(NOW)
    assert (report.queued, report.deferred) == (1, 1)
    (waiting,) = desk.touchpoints("p" + "0" * 20)
    moved = clock.parse(waiting["due_at"])
    assert waiting["status"] == "planned"
    assert waiting["deferred_reason"] == "frequency_cap"
    # at the step's own local time, on the first day the 7-day cap allows (4 days on, 10:30
    # KST: 10:20 that day is too early, so the day after)
    assert moved == NOW - timedelta(minutes=10) + timedelta(days=5)
    sent = repo.DynamoPatientRepository().patient("p" + "0" * 19 + "1")
    assert sent is not None
    assert sent.last_ad_at == clock.iso(NOW)
    assert desk.dispatch_due(moved - timedelta(seconds=1)).queued == 0
    assert desk.dispatch_due(moved).queued == 1
    assert sorted(outbox_keys()) == sorted(
        f"touchpoint:{t['patient_id']}:{t['id']}"
        for t in (
            touchpoint(0, NOW, step="next_step", purpose="marketing"),
            touchpoint(1, NOW, step="next_step", purpose="marketing"),
        )
    )
