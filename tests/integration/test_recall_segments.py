"""Segments by treatment history and marketing campaigns, through the recall API (API Gateway
events against moto) and the real notification sender."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock, store
from sotong.config.schema import HospitalConfig
from sotong.notify import outbox, records, txoutbox
from sotong.recall import campaigns
from sotong.recall import repository as repo
from sotong.recall.campaigns import CampaignRunner
from sotong.recall.model import patient_id, treatment_id
from sotong.resources import NOTIFICATIONS, function
from sotong_local.lambdas import LambdaContext
from tests.integration.api import ADMIN, DENTAL, Answer, call
from tests.integration.test_notifications import run_sender

KST = ZoneInfo("Asia/Seoul")
ADS = {"contact": True, "marketing": True}
NO_ADS = {"contact": True, "marketing": False}


def at_kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=KST)


def register(name: str, phone: str, consents: dict[str, bool]) -> str:
    answer = call(
        "POST", "/patients", {"name": name, "phone": phone, "consents": consents}, claims=ADMIN
    )
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def treat(pid: str, tag: str, day: str) -> None:
    answer = call("POST", f"/patients/{pid}/treatments", {"tag": tag, "date": day}, claims=ADMIN)
    assert answer.status == 201, answer.body


def visit(pid: str, at: str) -> None:
    answer = call(
        "POST", f"/patients/{pid}/appointments", {"kind": "visit", "at": at}, claims=ADMIN
    )
    assert answer.status == 200, answer.body


@pytest.fixture
def clinic(aws: dict[str, str]) -> dict[str, str]:
    """Five patients: four had scaling (one of them twice), one botox only."""
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    ids = {
        "kim": register("김하나", "010-1111-0001", ADS),
        "lee": register("이두리", "010-1111-0002", ADS),
        "park": register("박세찬", "010-1111-0003", NO_ADS),
        "choi": register("최네오", "010-1111-0004", ADS),
        "jung": register("정다섯", "010-1111-0005", ADS),
    }
    treat(ids["kim"], "scaling", "2025-11-01")
    treat(ids["kim"], "scaling", "2026-05-10")
    visit(ids["kim"], "2026-05-10T10:00:00+09:00")
    treat(ids["lee"], "scaling", "2025-10-15")
    treat(ids["park"], "scaling", "2025-12-01")
    visit(ids["park"], "2026-09-01T15:00:00+09:00")
    treat(ids["choi"], "botox", "2026-07-01")
    treat(ids["jung"], "scaling", "2026-03-03")
    records.record_opt_out("demo", "+821011110005", "sms", "080 call")
    return ids


def count(segment: dict[str, Any], claims: dict[str, str] = ADMIN) -> Answer:
    return call("POST", "/segments/count", segment, claims=claims)


def members(segment: dict[str, Any], ids: dict[str, str]) -> set[str]:
    names = {pid: name for name, pid in ids.items()}
    answer = call("POST", "/segments/list", {**segment, "limit": 200}, claims=ADMIN)
    assert answer.status == 200, answer.body
    return {names[p["id"]] for p in answer.body["patients"]}


def queued(env: dict[str, str]) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=env[NOTIFICATIONS.env], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def run_campaigns() -> dict[str, Any]:
    """One scheduled run of the campaign runner (the real handler)."""
    import campaign_runner

    result: dict[str, Any] = campaign_runner.handler({}, LambdaContext(function("campaign_runner")))
    return result


def deliver(env: dict[str, str]) -> None:
    """The outbox relay's work (publish what the runner wrote), then the sender's."""
    txoutbox.flush()
    run_sender(env)


def campaign(
    key: str | None, body: dict[str, Any] | None = None, claims: dict[str, str] = ADMIN
) -> Answer:
    sent = body or {
        "name": "겨울 스케일링",
        "segment": {"tag": "scaling"},
        "template_id": "scaling_next_step",
    }
    headers = {"Idempotency-Key": key} if key is not None else {}
    return call("POST", "/campaigns", sent, claims=claims, headers=headers)


# --- segments -------------------------------------------------------------------------------------
def test_count_and_list_by_tag(clinic: dict[str, str]) -> None:
    scaling = count({"tag": "scaling"})
    assert scaling.status == 200, scaling.body
    assert scaling.body["count"] == 4
    # Every scaling treatment read once from the tag index; no patient read for a plain count.
    assert scaling.body["cost"] == {
        "treatments_read": 5,
        "query_pages": 1,
        "patients_read": 0,
        "batch_get_requests": 0,
    }
    assert count({"tag": "botox"}).body["count"] == 1
    assert count({"tag": "extraction"}).body["count"] == 0

    listed = call("POST", "/segments/list", {"tag": "scaling", "limit": 3}, claims=ADMIN)
    assert listed.status == 200, listed.body
    first = listed.body["patients"]
    # Oldest latest treatment first: the most overdue patients lead.
    assert [p["last_treatment"] for p in first] == ["2025-10-15", "2025-12-01", "2026-03-03"]
    assert first[0] == {
        "id": clinic["lee"],
        "name": "이두리",
        "phone": "+********0002",
        "last_treatment": "2025-10-15",
        "last_visit_at": None,
        "marketing_consent": True,
        "paused": False,
    }
    assert first[1]["last_visit_at"] == "2026-09-01T06:00:00.000000Z"
    assert listed.body["count"] == 4
    assert listed.body["next_cursor"] == "3"
    assert listed.body["cost"]["patients_read"] == 3  # only the page's patients

    rest = call(
        "POST", "/segments/list", {"tag": "scaling", "limit": 3, "cursor": "3"}, claims=ADMIN
    )
    assert [p["id"] for p in rest.body["patients"]] == [clinic["kim"]]
    assert rest.body["patients"][0]["last_treatment"] == "2026-05-10"  # the latest of two
    assert rest.body["next_cursor"] is None


def test_before_and_after_apply_to_the_latest_treatment(clinic: dict[str, str]) -> None:
    # kim had scaling in 2025-11 too, but the latest (2026-05) is what counts.
    assert members({"tag": "scaling", "last_treatment_before": "2026-01-01"}, clinic) == {
        "lee",
        "park",
    }
    assert members({"tag": "scaling", "last_treatment_after": "2026-01-01"}, clinic) == {
        "kim",
        "jung",
    }
    # `after` is inclusive and bounds the index Query: lee's 2025-10-15 is never read.
    on_or_after = count({"tag": "scaling", "last_treatment_after": "2025-11-01"})
    assert on_or_after.body["count"] == 3
    assert on_or_after.body["cost"]["treatments_read"] == 4
    window = {
        "tag": "scaling",
        "last_treatment_after": "2025-11-01",
        "last_treatment_before": "2026-04-01",
    }
    assert members(window, clinic) == {"park", "jung"}
    assert members({**window, "marketing_consent_only": True}, clinic) == {"jung"}

    backwards = count(
        {
            "tag": "scaling",
            "last_treatment_after": "2026-04-01",
            "last_treatment_before": "2026-01-01",
        }
    )
    assert backwards.status == 422
    assert backwards.body["fields"][0]["field"] == "body"


def test_no_visit_since(clinic: dict[str, str]) -> None:
    # park visited in September; kim's last visit was in May; lee and jung never came back.
    assert members({"tag": "scaling", "no_visit_since": "2026-06-01"}, clinic) == {
        "kim",
        "lee",
        "jung",
    }
    assert members({"tag": "scaling", "no_visit_since": "2026-05-10"}, clinic) == {
        "lee",
        "jung",
    }
    answer = count({"tag": "scaling", "no_visit_since": "2026-06-01"})
    assert answer.body["count"] == 3
    assert answer.body["cost"]["batch_get_requests"] == 1  # 4 patients, one BatchGetItem


def test_segment_errors_and_department_scope(clinic: dict[str, str]) -> None:
    unknown = count({"tag": "facelift"})
    assert unknown.status == 400
    assert unknown.body["field"] == "body.tag"
    assert count({}).status == 422  # the tag is required: no Scan without it
    assert count({"tag": "scaling"}, DENTAL).status == 200
    other = count({"tag": "botox"}, DENTAL)  # dermatology's tag
    assert other.status == 403


# --- campaigns ------------------------------------------------------------------------------------
def test_campaign_reaches_consented_patients_as_advertising(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    answer = campaign("winter-scaling-1")
    assert answer.status == 201, answer.body
    created = answer.body
    assert created["id"].startswith("m")
    assert created["status"] == "planned"  # a job: nothing read or sent in the API call
    assert created["created_by"] == "cs.kim"
    assert created["template"] == "scaling_next_step"
    assert created["send_on"] == "2026-11-23"
    assert created["segment"]["marketing_consent_only"] is True
    assert queued(aws) == 0
    assert txoutbox.pending(clock.now() + timedelta(days=1)) == []

    ran = run_campaigns()
    assert [c["outcome"] for c in ran["campaigns"]] == ["done"]
    job = call("GET", f"/campaigns/{created['id']}", claims=ADMIN).body
    assert job["status"] == "done"
    assert (job["evaluated"], job["queued"], job["skipped_no_consent"]) == (4, 3, 1)
    assert job["results"]["awaiting_sender"] == 3
    assert "cursor" not in job
    assert "version" not in job

    deliver(aws)

    sent = outbox.recent()
    assert {m["to"][-4:] for m in sent} == {"0001", "0002"}
    for message in sent:
        assert message["channel"] in ("sms", "lms")
        assert message["text"].startswith("(광고) [소통치과피부과]")
        assert "무료수신거부 080-555-0100" in message["text"]
    assert any("김하나님" in m["text"] for m in sent)

    results = call("GET", f"/campaigns/{created['id']}", claims=ADMIN)
    assert results.status == 200, results.body
    assert results.body["results"]["by_status"] == {"sent": 2, "suppressed": 1}
    assert results.body["results"]["reasons"] == {"suppressed: opted_out": 1}
    assert results.body["results"]["awaiting_sender"] == 0
    assert results.body["results"]["complete"] is True
    (record,) = [
        r
        for r in records.for_ref("campaign", created["id"])
        if r["status"] == "sent" and r["recipient"].endswith("0001")
    ]
    assert record["purpose"] == "marketing"
    assert record["channel"] != "alimtalk"
    # Department staff may read the results, not send; a finished campaign runs no more.
    assert call("GET", f"/campaigns/{created['id']}", claims=DENTAL).status == 200
    assert run_campaigns()["campaigns"] == []


def test_a_campaign_at_night_is_held_and_shows_as_held(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    clock.fix(at_kst(2026, 11, 23, 22, 0))
    answer = campaign("night-1")
    assert answer.status == 201, answer.body
    run_campaigns()
    deliver(aws)

    assert outbox.recent() == []
    held = [r for r in records.for_ref("campaign", answer.body["id"]) if r["status"] == "held"]
    assert len(held) == 2
    assert {r["reason"] for r in held} == {"night_advertising"}
    results = call("GET", f"/campaigns/{answer.body['id']}", claims=ADMIN).body["results"]
    assert results["by_status"] == {"held": 2, "suppressed": 1}
    assert results["reasons"] == {"held: night_advertising": 2, "suppressed: opted_out": 1}
    assert results["complete"] is False


def test_the_same_campaign_asked_twice_is_one_campaign(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    first = campaign("spring-1")
    assert first.status == 201
    run_campaigns()
    deliver(aws)
    assert len(outbox.recent()) == 2

    # the same segment, template and day: the same campaign, whatever the key or the name
    again = campaign("spring-1")
    other_key = campaign(
        "spring-1-retry",
        {"name": "다른 이름", "segment": {"tag": "scaling"}, "template_id": "scaling_next_step"},
    )
    for answer in (again, other_key):
        assert answer.status == 200, answer.body
        assert answer.body["id"] == first.body["id"]
    run_campaigns()
    deliver(aws)
    assert len(outbox.recent()) == 2
    assert txoutbox.pending(clock.now() + timedelta(days=1)) == []

    later = campaign(
        "spring-2",
        {
            "name": "다음 주",
            "segment": {"tag": "scaling"},
            "template_id": "scaling_next_step",
            "send_on": "2026-11-30",
        },
    )
    assert later.status == 201  # another day is another campaign...
    assert run_campaigns()["campaigns"][0]["outcome"] == "waiting"  # ...that waits for its day
    past = campaign(
        "spring-3",
        {
            "name": "어제",
            "segment": {"tag": "scaling"},
            "template_id": "scaling_next_step",
            "send_on": "2026-11-22",
        },
    )
    assert (past.status, past.body["field"]) == (400, "body.send_on")
    missing = campaign(None)
    assert missing.status == 400
    assert missing.body["field"] == "header.idempotency-key"


def test_only_cs_admin_sends_and_only_marketing_templates(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    assert campaign("dental-1", claims=DENTAL).status == 403
    for template in ("complaint_survey", "dental_aftercare", "no_such_template"):
        body = {"name": "x", "segment": {"tag": "scaling"}, "template_id": template}
        answer = campaign(f"bad-{template}", body)
        assert answer.status == 400, answer.body
        assert answer.body["field"] == "body.template_id"
    bad_tag = campaign(
        "bad-tag", {"name": "x", "segment": {"tag": "nope"}, "template_id": "botox_next_step"}
    )
    assert bad_tag.body["field"] == "body.segment.tag"
    assert campaigns.active_jobs() == []


def test_cancel_stops_a_campaign_and_only_cs_admin_may(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    created = campaign("cancel-1").body
    assert call("POST", f"/campaigns/{created['id']}/cancel", claims=DENTAL).status == 403
    cancelled = call("POST", f"/campaigns/{created['id']}/cancel", claims=ADMIN)
    assert cancelled.status == 200, cancelled.body
    assert (cancelled.body["status"], cancelled.body["cancelled_by"]) == ("cancelled", "cs.kim")
    again = call("POST", f"/campaigns/{created['id']}/cancel", claims=ADMIN)
    assert (again.status, again.body["status"]) == (200, "cancelled")
    assert run_campaigns()["campaigns"] == []
    assert txoutbox.pending(clock.now() + timedelta(days=1)) == []
    finished = campaign(
        "cancel-2",
        {"name": "보톡스", "segment": {"tag": "botox"}, "template_id": "botox_next_step"},
    ).body
    run_campaigns()
    late = call("POST", f"/campaigns/{finished['id']}/cancel", claims=ADMIN)
    assert (late.status, late.body["field"]) == (409, "path.campaign_id")
    unknown = call("POST", "/campaigns/m" + "0" * 24 + "/cancel", claims=ADMIN)
    assert unknown.status == 404


def test_a_runner_that_died_half_way_is_finished_by_the_next_run(
    aws: dict[str, str],
    clinic: dict[str, str],
    hospital: HospitalConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(campaigns, "PER_TRANSACTION", 1)
    monkeypatch.setattr(campaigns, "PAGE", 2)
    created = campaign("retry-1").body
    client = store.dynamodb()
    real = client.transact_write_items
    writes: list[int] = []

    def flaky(**kwargs: Any) -> Any:
        writes.append(len(kwargs["TransactItems"]))
        if len(writes) == 2:
            raise RuntimeError("the Lambda timed out")
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", flaky)
    runner = CampaignRunner(hospital)
    with pytest.raises(RuntimeError):
        runner.run(clock.now())
    job = campaigns.get_item(created["id"])
    assert job is not None
    assert (job["status"], job["queued"]) == ("running", 1)  # the first transaction only
    run_campaigns()  # the lease was released: the next run carries on from the cursor
    job = campaigns.get_item(created["id"])
    assert job is not None
    assert (job["status"], job["queued"], job["evaluated"]) == ("done", 3, 4)
    keys = [p["message_id"] for p in txoutbox.pending(clock.now() + timedelta(days=1))]
    assert len(keys) == len(set(keys)) == 3
    deliver(aws)
    assert len(outbox.recent()) == 2  # jung opted out


def test_a_large_segment_goes_in_pages(aws: dict[str, str]) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    items: list[dict[str, Any]] = []  # written directly: 250 patients through the API is slow
    for n in range(250):
        pid = patient_id("demo", None, f"+8210500{n:05d}")
        day = date(2026, 6, 1 + n % 28).isoformat()
        patient = {
            "pk": repo.pk(pid),
            "sk": "PAT",
            "id": pid,
            "name": f"환자{n}",
            "phone": f"+8210500{n:05d}",
            "consents": {"contact": True, "marketing": n % 5 != 0},
            "last_visit_at": "2026-10-01T01:00:00.000000Z" if n % 10 == 0 else None,
            "last_treatment": {"botox": day},
        }
        treatment = {
            "pk": repo.pk(pid),
            "sk": f"TRT#{treatment_id(pid, 'botox', date.fromisoformat(day))}",
            "patient_id": pid,
            "tag": "botox",
            "date": day,
            "gsi1pk": "TAG#botox",
            "gsi1sk": f"{day}#{pid}",
        }
        items += [patient, treatment]
    repo.write_all(items)
    body = {
        "name": "보톡스 재시술",
        "segment": {"tag": "botox", "no_visit_since": "2026-09-01"},
        "template_id": "botox_next_step",
    }
    answer = campaign("botox-1", body)
    assert answer.status == 201, answer.body
    (ran,) = run_campaigns()["campaigns"]
    assert (ran["outcome"], ran["pages"]) == ("done", 3)  # 100 treatments a page
    job = campaigns.get_item(answer.body["id"])
    assert job is not None
    # 25 visited since; of the other 225, every fifth (n % 5 == 0, 25 of them) has no consent.
    assert job["treatments_read"] == 250
    assert job["evaluated"] == 225
    assert job["skipped_no_consent"] == 25
    assert job["queued"] == 200
    assert len(txoutbox.pending(clock.now() + timedelta(days=1), limit=1_000)) == 200


def test_paused_patients_are_skipped(aws: dict[str, str], clinic: dict[str, str]) -> None:
    paused = call(
        "POST",
        f"/patients/{clinic['kim']}/pause",
        {"paused": True, "reason": "민원 처리 중"},
        claims=ADMIN,
    )
    assert paused.status == 200, paused.body
    answer = campaign("paused-1")
    assert answer.status == 201, answer.body
    run_campaigns()
    job = call("GET", f"/campaigns/{answer.body['id']}", claims=ADMIN).body
    assert (job["queued"], job["skipped_paused"]) == (2, 1)
    assert len(txoutbox.pending(clock.now() + timedelta(days=1))) == 2
