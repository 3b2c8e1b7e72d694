"""The reports through the real staff handler on moto: complaints, recall per tag and messages
for one month, as JSON and as CSV (UTF-8 with BOM, Korean headers, the same numbers), scoped by
role; the messages report reads the day index written with each message record (no Scan: the
IAM guard checks every call)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.notify import records, txoutbox
from tests.integration.api import ADMIN, DENTAL, DERMATOLOGY, QI, call
from tests.integration.test_notifications import run_sender

KST = ZoneInfo("Asia/Seoul")


@pytest.fixture
def seeded(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import boto3
    import recall_dispatcher

    from sotong.config import load_hospital
    from sotong.resources import function
    from sotong_local.aws import placeholder_secrets
    from sotong_local.lambdas import LambdaContext

    client = boto3.client("secretsmanager")
    for name, value in placeholder_secrets(load_hospital()).items():
        client.create_secret(Name=name, SecretString=json.dumps(value))
    monkeypatch.setenv("SOTONG_PUBLIC_URL", "https://demo.example")
    clock.fix(datetime(2026, 11, 23, 9, 0, tzinfo=KST))
    for text in ("접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.", "수납 금액이 달라요"):
        body = {
            "text": text,
            "contact": {"name": "홍길동", "phone": "010-1234-5678"},
            "consent_to_contact": True,
        }
        assert call("POST", "/complaints", body).status == 201
    patients = []
    for n in range(2):
        answer = call(
            "POST",
            "/patients",
            {
                "name": "김환자",
                "phone": f"010-2222-000{n}",
                "chart_no": f"R-{n}",
                "consents": {"contact": True},
            },
            claims=DENTAL,
        )
        pid = answer.body["id"]
        treated = call(
            "POST",
            f"/patients/{pid}/treatments",
            {"tag": "implant_surgery", "date": "2026-11-23"},
            claims=DENTAL,
        ).body
        patients.append((pid, treated["touchpoints"]))
    aftercare = next(t for t in patients[1][1] if t["step"] == "aftercare")
    cancelled = call(
        "POST", f"/patients/{patients[1][0]}/touchpoints/{aftercare['id']}/cancel", claims=DENTAL
    )
    assert cancelled.status == 200, cancelled.body
    clock.fix(datetime(2026, 11, 24, 11, 0, tzinfo=KST))
    recall_dispatcher.handler({}, LambdaContext(function("recall_dispatcher")))
    txoutbox.flush()
    run_sender(aws)
    return aws


def _csv_answer(claims: dict[str, str], path: str, period: str = "2026-11") -> dict[str, Any]:
    """The handler's own answer (its headers as Powertools gives them: multi-value)."""
    import staff_api

    from sotong.resources import function
    from sotong_local.events import proxy_event
    from sotong_local.lambdas import LambdaContext

    event = proxy_event(
        method="GET",
        path=path,
        resource=path,
        path_parameters={},
        headers=[("Accept", "text/csv")],
        query=[("period", period), ("format", "csv")],
        body=b"",
        source_ip="203.0.113.7",
        claims=claims,
    )
    answer: dict[str, Any] = staff_api.handler(event, LambdaContext(function("staff_api")))
    return answer


def _csv(claims: dict[str, str], path: str) -> list[list[str]]:
    answer = _csv_answer(claims, path)
    assert answer["statusCode"] == 200
    headers = {k.lower(): v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): v for k, v in (answer.get("headers") or {}).items()})
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in headers["content-disposition"]
    text = answer["body"]
    assert text.startswith("\ufeff")
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def _get(path: str, claims: dict[str, str], **query: str) -> Any:
    return call("GET", path, claims=claims, query={"period": "2026-11", **query})


def test_the_complaint_report_json_and_csv_agree(seeded: dict[str, str]) -> None:
    report = _get("/reports/complaints", ADMIN).body
    assert report["total"] == 2
    assert report["trend"][-1] == {"month": "2026-11", "total": 2, "resolved": 0, "escalated": 0}
    assert report["previous"]["period"] == "2026-10"
    assert report["compared"]["total"]["before"] == 0
    rows = _csv(ADMIN, "/reports/complaints")
    assert rows[0] == ["구분", "항목", "값", "이전 기간"]
    assert ["요약", "접수 건수", "2", "0"] in rows
    for department, count in report["by_department"].items():
        assert any(r[0] == "부서별" and r[2] == str(count) for r in rows), department


def test_the_recall_report_per_tag_and_its_csv(seeded: dict[str, str]) -> None:
    report = _get("/reports/recall", ADMIN).body
    implant = next(t for t in report["tags"] if t["tag"] == "implant_surgery")
    assert (implant["due"], implant["sent"], implant["cancelled"]) == (2, 1, 1)
    assert implant["by_step"] == {"aftercare": 2}
    assert implant["cancelled_by_reason"] == {"staff": 1}
    assert report["band"] == {"typical_low": 55.0, "typical_high": 65.0, "best": 85.0}
    rows = _csv(ADMIN, "/reports/recall")
    assert rows[0][:3] == ["치료 태그", "대상(예정)", "발송"]
    named = next(r for r in rows if r[0] == "임플란트 식립")
    assert named[1:4] == ["2", "1", "1"]
    # department staff: their department's tags only
    derm = _get("/reports/recall", DERMATOLOGY).body
    assert {t["tag"] for t in derm["tags"]}.isdisjoint({"implant_surgery"})
    assert _get("/reports/recall", QI).status == 200


def test_the_messages_report_reads_the_day_index(seeded: dict[str, str]) -> None:
    report = _get("/reports/messages", ADMIN).body
    created = records.created_between(*(clock.parse(report[k]) for k in ("from", "to")))
    assert report["messages"] == len(created) > 0
    assert report["totals"]["sent"] == sum(c["sent"] for c in report["by_channel"].values())
    assert report["totals"]["sent"] >= 1
    rows = _csv(ADMIN, "/reports/messages")
    assert rows[0] == ["월", "채널", "발송", "전달", "대체발송(SMS)", "실패", "발송 제외"]
    total = next(r for r in rows if r[1] == "합계")
    assert int(total[2]) == report["totals"]["sent"]
    assert _get("/reports/messages", DENTAL).status == 403
    assert _get("/reports/messages", ADMIN, period="2026-12").body["messages"] == 0
    # a record's public view never shows the index keys
    view = call("GET", f"/messages/{created[0]['message_id']}", claims=ADMIN).body
    assert "gsi4pk" not in view
    assert "gsi4sk" not in view
