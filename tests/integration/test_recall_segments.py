"""Segments by treatment history and marketing campaigns, through the recall API (API Gateway
events against moto) and the real notification sender."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.notify import outbox, records
from sotong.notify.model import MessageRequest
from sotong.recall import campaigns
from sotong.recall import repository as repo
from sotong.recall.campaigns import CampaignDesk, CampaignRequest
from sotong.recall.model import patient_id, treatment_id
from sotong.recall.segments import Segment
from sotong.resources import NOTIFICATIONS
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
    assert created["status"] == "queued"
    assert created["created_by"] == "cs.kim"
    assert created["template"] == "scaling_next_step"
    assert created["segment"]["marketing_consent_only"] is True
    assert (created["matched"], created["targeted"], created["skipped_no_consent"]) == (4, 3, 1)
    assert created["results"]["awaiting_sender"] == 3
    assert queued(aws) == 3  # park (no marketing consent) is not queued

    run_sender(aws)

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
    assert "fingerprint" not in results.body
    (record,) = [
        r
        for r in records.for_ref("campaign", created["id"])
        if r["status"] == "sent" and r["recipient"].endswith("0001")
    ]
    assert record["purpose"] == "marketing"
    assert record["channel"] != "alimtalk"
    # Department staff may read the results, not send.
    assert call("GET", f"/campaigns/{created['id']}", claims=DENTAL).status == 200


def test_a_campaign_at_night_is_held_and_shows_as_held(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    clock.fix(at_kst(2026, 11, 23, 22, 0))
    answer = campaign("night-1")
    assert answer.status == 201, answer.body
    run_sender(aws)

    assert outbox.recent() == []
    held = [r for r in records.for_ref("campaign", answer.body["id"]) if r["status"] == "held"]
    assert len(held) == 2
    assert {r["reason"] for r in held} == {"night_advertising"}
    results = call("GET", f"/campaigns/{answer.body['id']}", claims=ADMIN).body["results"]
    assert results["by_status"] == {"held": 2, "suppressed": 1}
    assert results["reasons"] == {"held: night_advertising": 2, "suppressed: opted_out": 1}
    assert results["complete"] is False


def test_the_same_idempotency_key_sends_nothing_twice(
    aws: dict[str, str], clinic: dict[str, str]
) -> None:
    first = campaign("spring-1")
    assert first.status == 201
    run_sender(aws)
    assert len(outbox.recent()) == 2

    again = campaign("spring-1")
    assert again.status == 200, again.body
    assert again.body["id"] == first.body["id"]
    assert queued(aws) == 0
    run_sender(aws)
    assert len(outbox.recent()) == 2

    changed = campaign(
        "spring-1",
        {"name": "다른 캠페인", "segment": {"tag": "scaling"}, "template_id": "scaling_next_step"},
    )
    assert changed.status == 409
    assert changed.body["field"] == "header.idempotency-key"
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
    assert queued(aws) == 0


def test_a_segment_over_the_limit_is_refused(
    aws: dict[str, str], clinic: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaigns, "MAX_TARGETED", 2)
    answer = campaign("big-1")
    assert answer.status == 400
    assert answer.body["field"] == "body.segment"
    assert answer.body["targeted"] == 3
    assert "narrow the segment" in answer.body["message"]
    assert queued(aws) == 0
    narrower = {
        "name": "올해 스케일링",
        "segment": {"tag": "scaling", "last_treatment_after": "2026-01-01"},
        "template_id": "scaling_next_step",
    }
    assert campaign("big-2", narrower).status == 201
    assert queued(aws) == 2


def test_a_creation_that_crashed_half_way_is_finished_by_its_retry(
    aws: dict[str, str],
    clinic: dict[str, str],
    hospital: HospitalConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sotong.notify.enqueue import enqueue

    monkeypatch.setattr(campaigns, "CHUNK", 1)
    calls: list[int] = []

    def flaky(requests: list[MessageRequest]) -> int:
        calls.append(len(requests))
        if len(calls) == 2:
            raise RuntimeError("SQS timed out")
        return enqueue(requests)

    desk = CampaignDesk(hospital, flaky, workers=1)
    request = CampaignRequest(
        name="재시도", segment=Segment(tag="scaling"), template_id="scaling_next_step"
    )
    with pytest.raises(RuntimeError):
        desk.create(request, "cs.kim", "retry-1")
    assert queued(aws) == 1
    campaign_id = campaigns.campaign_id("demo", "retry-1")
    assert campaigns.get_item(campaign_id)["status"] == "queueing"  # type: ignore[index]

    again, created = desk.create(request, "cs.kim", "retry-1")
    assert (again["status"], created) == ("queued", False)
    assert queued(aws) == 4  # the first patient's message is on the queue twice...
    run_sender(aws)
    assert len(outbox.recent()) == 2  # ...and sent once (jung opted out)


def test_a_large_segment_is_queued_in_parallel_batches(aws: dict[str, str]) -> None:
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
    # 25 visited since; of the other 225, every fifth (n % 5 == 0, 25 of them) has no consent.
    assert answer.body["matched"] == 225
    assert answer.body["skipped_no_consent"] == 25
    assert answer.body["targeted"] == 200
    assert queued(aws) == 200


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
    assert (answer.body["targeted"], answer.body["skipped_paused"]) == (2, 1)
    assert queued(aws) == 2
