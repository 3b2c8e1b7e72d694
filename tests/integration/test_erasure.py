"""Erasure at a patient's request (PIPA), through the real handlers on moto: after
`DELETE /patients/{id}` nothing of the person is left in any table or queue, nothing held or
queued for them is sent, and the next EMR import, registration or inbound message does not bring
them back. Conversation keys are unique, so staff answers never collide."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock, erasure, keys, store, tombstones
from sotong.config import load_hospital
from sotong.notify import outbox, records, txoutbox
from sotong.notify.model import message_id, recipient_key
from sotong.notify.providers import sandbox
from sotong.notify.providers.solapi import sign_webhook
from sotong.notify.release import release_due
from sotong.recall import importer, service
from sotong.recall import repository as repo
from sotong.recall.campaigns import CampaignDesk, CampaignRequest, CampaignRunner
from sotong.recall.model import patient_id
from sotong.recall.segments import Segment
from sotong.recall.service import RecallDesk
from sotong.resources import NOTIFICATIONS, TABLES
from sotong_local.aws import placeholder_secrets
from tests.integration.api import ADMIN, DENTAL, call
from tests.integration.test_notifications import run_sender
from tests.integration.test_recall import dispatch

KST = ZoneInfo("Asia/Seoul")
NAME = "홍길동"
PHONES = ("010-1234-5678", "01012345678", "+821012345678", "1012345678")
EMAIL = "gildong@example.com"
COMPLAINT = "보톡스 시술 후 멍이 심합니다. 언제쯤 가라앉을까요?"
REPLY = "임플란트 부위가 조금 시려요"
ANSWERS = ("내일 오전에 내원해 주세요.", "주차는 지하 2층입니다.", "예약 확인했습니다.")


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(datetime(2026, 11, 23, 9, 0, tzinfo=KST))
    secrets = boto3.client("secretsmanager")
    for name, value in placeholder_secrets(load_hospital()).items():
        secrets.create_secret(Name=name, SecretString=json.dumps(value))
    return aws


def register(**extra: Any) -> Any:
    body = {
        "name": NAME,
        "phone": PHONES[0],
        "email": EMAIL,
        "chart_no": "C-5678",
        "consents": {"contact": True, "marketing": True, "night": False},
        **extra,
    }
    return call("POST", "/patients", body, claims=ADMIN)


def say(pid: str, text: str) -> Any:
    """A staff answer in the patient's conversation."""
    return call("POST", f"/patients/{pid}/conversation", {"message": text}, claims=ADMIN)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    moment = datetime(2026, 11, day, hour, minute, tzinfo=KST)
    clock.fix(moment)
    return moment


def deliver(env: dict[str, str]) -> dict[str, Any]:
    txoutbox.flush()
    return run_sender(env)


def inbound(text: str, message: str) -> Any:
    body = json.dumps(
        [{"data": {"messageId": message, "from": PHONES[1], "to": "025550100", "text": text}}]
    ).encode()
    return call("POST", "/webhooks/inbound", raw=body, headers=sign_webhook(body, "local-hmac_key"))


def everything_stored() -> str:
    """Every item of every table, as text (a test may Scan; the code never does)."""
    dynamodb = boto3.client("dynamodb")
    found = []
    for table in TABLES:
        for page in dynamodb.get_paginator("scan").paginate(TableName=store.table_name(table)):
            found += page.get("Items", [])
    return json.dumps(found, ensure_ascii=False)


def everything_queued(env: dict[str, str]) -> str:
    """Every message on the notification queue and its dead-letter queue, left in place."""
    sqs = boto3.client("sqs")
    bodies = []
    for url in (env[NOTIFICATIONS.env], env[NOTIFICATIONS.dlq_env]):
        for _ in range(5):
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            bodies += [m["Body"] for m in batch.get("Messages", [])]
    return "\n".join(bodies)


def traces(text: str, code: str) -> list[str]:
    needles = [NAME, *PHONES[:3], EMAIL, "gildong", COMPLAINT[:12], REPLY, *ANSWERS, code]
    return [needle for needle in needles if needle in text]


def provider_accepted_for_the_person() -> int:
    return sum(1 for entry in outbox.recent(500) if entry.get("to") in (PHONES[2], EMAIL))


def test_an_erasure_removes_the_person_everywhere_and_they_stay_erased(
    env: dict[str, str],
) -> None:
    hospital = load_hospital()
    answer = register()
    assert answer.status == 201, answer.body
    pid = answer.body["id"]
    for tag in ("implant_surgery", "scaling"):
        treated = call(
            "POST", f"/patients/{pid}/treatments", {"tag": tag, "date": "2026-05-23"}, claims=DENTAL
        )
        assert treated.status == 201, treated.body

    # a complaint through the public form, with their name, phone, e-mail and text; tracked
    filed = call(
        "POST",
        "/complaints",
        {
            "text": COMPLAINT,
            "contact": {"name": NAME, "phone": PHONES[0], "email": EMAIL},
            "consent_to_contact": True,
        },
        headers={"Idempotency-Key": "form-1"},
    )
    assert filed.status == 201, filed.body
    code = filed.body["tracking_code"]
    mistyped = call("GET", f"/track/{code}", query={"phone_last4": "5687"})
    assert mistyped.status == 404, mistyped.body  # a failure the tracking lock counts
    tracked = call("GET", f"/track/{code}", query={"phone_last4": "5678"})
    assert tracked.status == 200, tracked.body
    deliver(env)  # the acknowledgement: a sandbox outbox entry

    # the six-month recall, their reply and a staff answer: the conversation
    dispatch(at(23, 11))
    deliver(env)
    at(23, 11, 30)
    assert inbound(REPLY, "M-1").body["replies"] == 1
    at(23, 11, 40)
    assert say(pid, ANSWERS[0]).status == 200
    deliver(env)
    assert provider_accepted_for_the_person() >= 3  # ack, recall, answer

    # at night: a campaign ad held until 08:00 (no night consent), an answer held by quiet
    # hours, an answer on the queue not yet sent, and one not yet published
    now = at(23, 21, 30)
    request = CampaignRequest(
        name="스케일링 안내", segment=Segment(tag="scaling"), template_id="scaling_next_step"
    )
    campaign, _ = CampaignDesk(hospital).create(request, "cs.kim", "k-1")
    CampaignRunner(hospital).run(now)
    at(23, 21, 35)
    say(pid, ANSWERS[1])
    assert [o for o in deliver(env)["batchItemFailures"]] == []
    held = records.of_recipient("demo", PHONES[2])
    assert sorted(r["status"] for r in held if r["status"] == "held") == ["held", "held"]
    held_ad = message_id("demo", f"campaign:{campaign['id']}:{pid}")
    assert records.get(held_ad)["status"] == "held"  # type: ignore[index]
    at(23, 21, 40)
    say(pid, ANSWERS[2])
    txoutbox.flush()  # on the queue, not yet taken by the sender
    say(pid, "내일 뵙겠습니다.")
    assert txoutbox.pending(now.replace(year=2036))  # not yet published
    before = everything_stored()
    assert set(traces(before, code)) >= {NAME, PHONES[2], EMAIL, COMPLAINT[:12], REPLY}

    # the erasure
    at(23, 21, 45)
    assert call("DELETE", f"/patients/{pid}", claims=DENTAL).status == 403
    erased = call("DELETE", f"/patients/{pid}", claims=ADMIN)
    assert erased.status == 200, erased.body
    report = erased.body
    removed = report["removed"]
    assert removed["patient"] == 1
    assert removed["treatments"] == 2
    assert removed["complaints"] == 1
    assert removed["conversation_messages"] >= 4
    assert removed["held_messages_suppressed"] == 2
    assert removed["outbox_requests"] == 1
    assert removed["sandbox_outbox_entries"] >= 3
    assert removed["tombstones"] == 4
    assert removed["rate_limit_windows"] == 1
    assert report["kept"]["phone_shared_with_another_patient"] is False
    assert report["kept_counts"]["patients_erased"] == 1
    assert report["kept_counts"]["complaints_erased"] == 1
    assert not traces(json.dumps(report, ensure_ascii=False), code)
    stored = erasure.reports()
    assert [r["erasure_id"] for r in stored] == [report["erasure_id"]]
    assert pid not in json.dumps(stored)  # the stored report names nobody
    kept = repo.DynamoPatientRepository().counts()
    assert kept["treatments_implant_surgery"] == 1  # anonymous counts stay

    # what was on the queue for them is refused at send time, leaving no record
    outcome = run_sender(env)
    assert outcome["count"] == 1
    assert outcome["batchItemFailures"] == []
    assert not traces(everything_stored(), code)
    assert not traces(everything_queued(env), code)
    assert pid not in everything_stored()  # not even the (keyed) patient id

    # 08:01 the next morning: the release and the sender send them nothing
    release_due(at(24, 8, 1), "demo")
    deliver(env)
    assert provider_accepted_for_the_person() == 0
    assert sandbox.sent_copies(held_ad) == 0
    assert call("GET", f"/patients/{pid}", claims=ADMIN).status == 404

    # the next EMR export still lists them: they are not imported again
    csv = (
        "차트번호,이름,전화번호,시술,시술일\n"
        f"C-5678,{NAME},{PHONES[1]},implant_surgery,2026-11-20\n"
        "C-9999,김철수,010-9999-0000,scaling,2026-11-20\n"
    )
    imported = importer.import_treatments(hospital, csv.encode(), by="cs.kim").as_dict()
    assert imported["skipped_erased"] == 1
    assert imported["erased_lines"] == [2]
    assert imported["imported"] == 1  # the other row
    assert repo.DynamoPatientRepository().patient(pid) is None
    assert list(repo.items_of(pid)) == []
    assert not traces(everything_stored(), code)

    # a message from their phone joins nobody's conversation
    assert RecallDesk(hospital).inbound(PHONES[2], "1", provider_message_id="M-9") is None
    assert list(repo.items_of(pid)) == []

    # registering them again needs them back and consenting again
    again = register()
    assert again.status == 409, again.body
    assert again.body["field"] == "body.phone"
    assert not traces(json.dumps(again.body, ensure_ascii=False), code)
    back = register(returning_after_erasure=True)
    assert back.status == 201, back.body
    assert back.body["id"] == pid
    assert tombstones.erased("demo", tombstones.Identity(pid, "C-5678", PHONES[2], EMAIL)) == {}

    # and a new conversation's answers are sent (keys restart nowhere, collide with nothing)
    at(24, 10)
    assert say(pid, ANSWERS[0]).status == 200
    deliver(env)
    assert provider_accepted_for_the_person() == 1


def test_a_shared_phone_stays_reachable_for_the_other_patient(env: dict[str, str]) -> None:
    child = register().body["id"]
    parent = call(
        "POST",
        "/patients",
        {"name": "홍부모", "phone": PHONES[0], "chart_no": "C-0001", "consents": {"contact": True}},
        claims=ADMIN,
    ).body["id"]
    erased = call("DELETE", f"/patients/{child}", claims=ADMIN).body
    assert erased["kept"]["phone_shared_with_another_patient"] is True
    assert erased["removed"]["tombstones"] == 3  # id, chart number, e-mail: not the phone
    desk = RecallDesk(load_hospital())
    assert desk.patient(parent)["name"] == "홍부모"
    assert say(parent, "안내드립니다.").status == 200
    deliver(env)
    assert provider_accepted_for_the_person() == 1  # the parent still gets their messages


def test_two_staff_answering_at_once_both_land(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = register().body["id"]
    desk = RecallDesk(load_hospital())
    both_ready = threading.Barrier(2, timeout=10)
    one_write = threading.Lock()
    real_transact = store.transact

    def together(actions: list[dict[str, Any]]) -> bool:
        both_ready.wait()  # neither writes before both built their answer, at the same instant
        with one_write:
            return real_transact(actions)

    errors: list[BaseException] = []

    def answer(text: str) -> None:
        try:
            desk.answer(pid, text, "dental.lee")
        except BaseException as error:  # reported below
            errors.append(error)

    with monkeypatch.context() as patched:
        patched.setattr(store, "transact", together)
        patched.setattr(service, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000))
        threads = [threading.Thread(target=answer, args=(t,)) for t in ANSWERS[:2]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    texts = [m["text"] for m in desk.conversation(pid)["messages"]]
    assert sorted(texts) == sorted(ANSWERS[:2])
    pending = txoutbox.pending(clock.now().replace(year=2036))
    keys_used = {json.loads(p["request"])["idempotency_key"] for p in pending}
    assert len(keys_used) == 2
    deliver(env)
    assert {e["text"] for e in outbox.recent()} == {f"[소통치과피부과] {t}" for t in ANSWERS[:2]}


def test_a_digest_with_another_key_is_another_digest() -> None:
    mine = (recipient_key("demo", PHONES[2]), patient_id("demo", "C-5678", PHONES[2]))
    stone = tombstones.digest("demo", "phone", PHONES[2])
    saved = keys.key_in_use()
    try:
        keys.use_key(b"another-hospital-key-0123456789abcdef")
        other = (recipient_key("demo", PHONES[2]), patient_id("demo", "C-5678", PHONES[2]))
        assert tombstones.digest("demo", "phone", PHONES[2]) != stone
    finally:
        keys.use_key(saved)
    assert mine[0] != other[0]
    assert mine[1] != other[1]
    assert (recipient_key("demo", PHONES[2]), patient_id("demo", "C-5678", PHONES[2])) == mine
    assert len(mine[0]) == 32
    assert len(mine[1]) == 21
