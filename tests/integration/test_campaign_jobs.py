"""Campaigns as jobs: a segment of thousands goes out over several runs at the send rate, each
eligible patient exactly once (two runners at once included), cancel stops it between pages, and
the frequency cap skips who had an ad lately (moto)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bench.recall_dispatch import quick_transactions
from sotong import clock, store
from sotong.config.schema import HospitalConfig
from sotong.notify import txoutbox
from sotong.recall import campaigns
from sotong.recall import repository as repo
from sotong.recall.campaigns import CampaignDesk, CampaignRequest, CampaignRunner
from sotong.recall.segments import Segment

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=KST)


@pytest.fixture
def env(aws: dict[str, str]) -> Iterator[dict[str, str]]:
    clock.fix(NOW)
    with quick_transactions():  # moto's own copies the whole table per transaction
        yield aws


def pid(n: int) -> str:
    return f"p{n:020x}"


def plant(count: int, **overrides: dict[int, dict[str, Any]]) -> None:
    """`count` patients with scaling, every seventh with an older scaling too (their latest is
    what counts). `overrides` maps a patient number to attributes of their own."""
    items: list[dict[str, Any]] = []
    for n in range(count):
        latest = date(2026, 1, 1) + timedelta(days=n % 300)
        days = [latest] + ([latest - timedelta(days=200)] if n % 7 == 0 else [])
        patient = {
            "pk": repo.pk(pid(n)),
            "sk": "PAT",
            "id": pid(n),
            "name": f"환자{n}",
            "phone": f"+82106{n:07d}",
            "consents": {"contact": True, "marketing": True, "night": False},
            "last_treatment": {"scaling": latest.isoformat()},
            **overrides.get("patients", {}).get(n, {}),
        }
        items.append(patient)
        for day in days:
            items.append(
                {
                    "pk": repo.pk(pid(n)),
                    "sk": f"TRT#t{n:08x}{day:%m%d}",
                    "patient_id": pid(n),
                    "tag": "scaling",
                    "date": day.isoformat(),
                    "gsi1pk": "TAG#scaling",
                    "gsi1sk": f"{day.isoformat()}#{pid(n)}",
                }
            )
    repo.write_all(items)


def create(hospital: HospitalConfig, template: str = "scaling_next_step", key: str = "k") -> str:
    request = CampaignRequest(
        name="스케일링 안내", segment=Segment(tag="scaling"), template_id=template
    )
    campaign, _ = CampaignDesk(hospital).create(request, "cs.kim", key)
    return str(campaign["id"])


def outbox_patients(cid: str) -> list[str]:
    """Patient ids of the pending outbox items of this campaign (duplicates kept)."""
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=100_000)
    found = []
    for entry in pending:
        key = json.loads(entry["request"])["idempotency_key"]
        prefix = f"campaign:{cid}:"
        if key.startswith(prefix):
            found.append(key[len(prefix) :])
    return found


def job(cid: str) -> dict[str, Any]:
    item = campaigns.get_item(cid)
    assert item is not None
    return item


def test_2500_patients_go_out_over_several_runs_at_the_send_rate_once_each(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    recent = clock.iso(NOW - timedelta(days=3))
    patients: dict[int, dict[str, Any]] = {}
    for n in range(2_500):
        if n % 10 == 3:
            patients[n] = {"consents": {"contact": True, "marketing": False}}
        elif n % 50 == 1:
            patients[n] = {"paused": True}
        elif n % 25 == 2:
            patients[n] = {"last_ad_at": recent}
    plant(2_500, patients=patients)
    eligible = {pid(n) for n in range(2_500) if n not in patients}
    cid = create(hospital)
    slower = hospital.sender.model_copy(update={"rate_per_second": 10})
    runner = CampaignRunner(hospital.model_copy(update={"sender": slower}))
    assert runner.budget == 600  # 10 messages a second for a minute
    writes: list[int] = []

    def count(event_name: str, params: dict[str, Any], **kwargs: Any) -> None:
        writes.append(len(params["TransactItems"]))

    store.dynamodb().meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems", count
    )
    outcomes = []
    for minute in range(10):
        (run,) = runner.run(NOW + timedelta(minutes=minute))
        outcomes.append(run.outcome)
        assert run.queued <= runner.budget
        if run.outcome == "done":
            break
    assert outcomes == ["budget", "budget", "budget", "done"]  # 600, 600, 600, 300
    sent = outbox_patients(cid)
    assert len(sent) == len(set(sent)) == len(eligible) == 2_500 - 250 - 50 - 100
    assert set(sent) == eligible
    # 49 recipients (an outbox item and a patient update each) and the job's update a
    # transaction, across page boundaries: a partial one only where a run ends
    assert max(writes) == 99
    assert len(writes) <= -(-len(eligible) // 49) + len(outcomes)
    finished = job(cid)
    assert finished["status"] == "done"
    assert finished["evaluated"] == 2_500  # each patient once, at their latest treatment
    assert finished["treatments_read"] == 2_500 + 358
    assert finished["queued"] == len(eligible)
    assert (
        finished["skipped_no_consent"],
        finished["skipped_paused"],
        finished["skipped_frequency"],
    ) == (250, 50, 100)
    assert campaigns.active_jobs() == []
    assert runner.run(NOW + timedelta(minutes=5)) == []


def test_two_runners_at_once_queue_each_patient_once(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(600)
    cid = create(hospital)
    holding = threading.Event()
    other_done = threading.Event()
    read_page = campaigns.read_page

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        if not holding.is_set():
            holding.set()  # the lease holder has read its first page...
            other_done.wait(10)  # ...and writes it once the other runner has tried
        return read_page(*args, **kwargs)

    monkeypatch.setattr(campaigns, "read_page", slow_read)
    outcomes: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            (result,) = CampaignRunner(hospital).run(NOW)
            outcomes[name] = result.outcome
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
    second.join(30)
    first.join(60)
    assert not errors, errors
    assert outcomes == {"first": "done", "second": "busy"}
    sent = outbox_patients(cid)
    assert len(sent) == len(set(sent)) == 600


def test_even_without_the_lease_a_page_is_written_once(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner whose lease ran out (a stalled Lambda) and a new one on the same page: the
    job's version is a condition of every page's transaction, so one of them writes it."""
    plant(120)
    cid = create(hospital)
    monkeypatch.setattr(repo, "take_lease", lambda *args, **kwargs: True)
    monkeypatch.setattr(repo, "release_lease", lambda *args, **kwargs: None)
    start = threading.Barrier(2)
    read_page = campaigns.read_page
    first_pages = threading.local()

    def together(*args: Any, **kwargs: Any) -> Any:
        page = read_page(*args, **kwargs)
        if not getattr(first_pages, "read", False):
            first_pages.read = True
            start.wait(10)  # both have read the same first page before either writes
        return page

    monkeypatch.setattr(campaigns, "read_page", together)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.extend(CampaignRunner(hospital).run(NOW)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.outcome for r in results) == ["done", "moved_on"]
    sent = outbox_patients(cid)
    assert len(sent) == len(set(sent)) == 120
    assert job(cid)["queued"] == 120


def test_the_same_campaign_requested_twice_is_one_job(
    env: dict[str, str], hospital: HospitalConfig
) -> None:
    plant(10)
    desk = CampaignDesk(hospital)
    request = CampaignRequest(
        name="a", segment=Segment(tag="scaling"), template_id="botox_next_step"
    )
    first, created = desk.create(request, "cs.kim", "key-1")
    again, created_again = desk.create(request.model_copy(update={"name": "b"}), "cs.kim", "key-2")
    assert (created, created_again) == (True, False)
    assert again["id"] == first["id"]
    assert campaigns.active_jobs() == [first["id"]]


def test_cancel_stops_a_campaign_between_pages(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(1_000)
    monkeypatch.setattr(CampaignRunner, "budget", property(lambda self: 150))
    cid = create(hospital)
    runner = CampaignRunner(hospital)
    (first,) = runner.run(NOW)
    assert (first.outcome, first.queued) == ("budget", 150)
    desk = CampaignDesk(hospital)
    read_page = campaigns.read_page

    def cancelled_meanwhile(*args: Any, **kwargs: Any) -> Any:
        page = read_page(*args, **kwargs)
        desk.cancel(cid, "cs.kim")  # staff cancel while the runner holds a page it read
        return page

    monkeypatch.setattr(campaigns, "read_page", cancelled_meanwhile)
    (second,) = runner.run(NOW + timedelta(minutes=1))
    assert (second.outcome, second.queued) == ("cancelled", 0)  # that page was not written
    monkeypatch.setattr(campaigns, "read_page", read_page)
    assert runner.run(NOW + timedelta(minutes=2)) == []  # no longer active
    stopped = job(cid)
    assert (stopped["status"], stopped["queued"]) == ("cancelled", 150)
    assert len(outbox_patients(cid)) == 150


def test_the_frequency_cap_skips_a_patient_advertised_three_days_ago(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(
        4,
        patients={
            0: {"last_ad_at": clock.iso(NOW - timedelta(days=3))},
            1: {"last_ad_at": clock.iso(NOW - timedelta(days=8))},
        },
    )
    cid = create(hospital)
    read_page = campaigns.read_page

    def advertised_meanwhile(*args: Any, **kwargs: Any) -> Any:
        page = read_page(*args, **kwargs)
        # patient 3 gets another ad (the dispatcher's next-step suggestion) after the read
        repo.DynamoPatientRepository().set_patient_attributes(
            pid(3), {"last_ad_at": clock.iso(NOW - timedelta(minutes=1))}
        )
        return page

    monkeypatch.setattr(campaigns, "read_page", advertised_meanwhile)
    (run,) = CampaignRunner(hospital).run(NOW)
    assert run.outcome == "done"
    assert sorted(outbox_patients(cid)) == [pid(1), pid(2)]
    counts = job(cid)
    assert (counts["queued"], counts["skipped_frequency"]) == (2, 2)
    for n in (1, 2):
        patient = repo.DynamoPatientRepository().patient(pid(n))
        assert patient is not None
        assert (patient.last_ad_at, patient.last_ad_by) == (
            clock.iso(NOW),
            f"campaign:{cid}",
        )
    # a second campaign the same day reaches no one: they all had an ad within 7 days
    monkeypatch.setattr(campaigns, "read_page", read_page)
    other = create(hospital, template="botox_next_step")
    CampaignRunner(hospital).run(NOW + timedelta(hours=1))
    assert outbox_patients(other) == []
    assert (job(other)["status"], job(other)["skipped_frequency"]) == ("done", 4)


def test_an_erased_patient_is_skipped(
    env: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(3)
    cid = create(hospital)
    read_page = campaigns.read_page

    def erased_meanwhile(*args: Any, **kwargs: Any) -> Any:
        page = read_page(*args, **kwargs)
        repo.delete_all([store.key(repo.pk(pid(1)), "PAT")])
        return page

    monkeypatch.setattr(campaigns, "read_page", erased_meanwhile)
    CampaignRunner(hospital).run(NOW)
    assert sorted(outbox_patients(cid)) == [pid(0), pid(2)]
    assert (job(cid)["queued"], job(cid)["skipped_erased"]) == (2, 1)
