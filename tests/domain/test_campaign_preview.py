"""The campaign preview over the in-memory patients: the message as the patient sees it (the
sender's rendering) and, per member, what the runner and the sender would do, counted per rule;
nothing written."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.errors import BadRequest
from sotong.recall.campaigns import CampaignDesk, CampaignPreview
from sotong.recall.service import RecallDesk
from tests.domain.test_recall_desk import audited, hospital, register, treat
from tests.fakes.recall import InMemoryPatientRepository

__all__ = ["audited", "hospital"]
NOON = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
OPTED_OUT = "+821051000004"


@pytest.fixture
def patients(
    hospital: HospitalConfig, audited: list[dict[str, Any]]
) -> Iterator[InMemoryPatientRepository]:
    repo = InMemoryPatientRepository()
    clock.fix(NOON)
    desk = RecallDesk(hospital, repo)
    people = (
        ("김하나", "010-5100-0001", {"contact": True, "marketing": True}),
        ("이두리", "010-5100-0002", {"contact": True}),
        ("박세나", "010-5100-0003", {"contact": True, "marketing": True, "night": True}),
        ("최네모", "010-5100-0004", {"contact": True, "marketing": True}),
        ("정다섯", "010-5100-0005", {"contact": True, "marketing": True}),
    )
    for n, (name, phone, consents) in enumerate(people):
        pid = register(desk, name=name, phone=phone, chart_no=f"C-{n}", consents=consents)
        treat(desk, pid, "scaling", date(2026, 10, 1))
        if name == "정다섯":
            desk.pause(pid, True, "본인 요청")
    yield repo
    clock.fix(None)


def _opt_outs(addresses: Sequence[str]) -> dict[str, frozenset[str]]:
    return {a: frozenset({"sms"}) if a == OPTED_OUT else frozenset() for a in addresses}


def _preview(
    hospital: HospitalConfig, patients: InMemoryPatientRepository, now: datetime, **fields: Any
) -> dict[str, Any]:
    request = CampaignPreview.model_validate(
        {"segment": {"tag": "scaling"}, "template_id": "scaling_next_step", **fields}
    )
    return CampaignDesk(hospital).preview(request, now, patients=patients, opt_outs=_opt_outs)


def _rules(answer: dict[str, Any]) -> dict[str, int]:
    return {f"{r['action']}:{r['rule']}": r["count"] for r in answer["rules"]}


def test_the_preview_renders_the_ad_and_counts_every_rule(
    hospital: HospitalConfig, patients: InMemoryPatientRepository
) -> None:
    answer = _preview(hospital, patients, NOON)
    text = answer["message"]["text"]
    assert text.startswith("(광고) [소통치과피부과] ")
    assert text.endswith("무료수신거부 080-555-0100")
    assert "#{" not in text
    assert answer["message"]["sample"] == "member"
    assert answer["segment_count"] == 5
    assert _rules(answer) == {
        "send:send": 2,
        "skip:no_marketing_consent": 1,
        "skip:paused": 1,
        "suppress:opted_out": 1,
    }
    assert answer["totals"] == {"send": 2, "hold": 0, "skip": 2, "suppress": 1, "fail": 0}


def test_a_later_day_starts_at_midnight_and_holds_ads_without_night_consent(
    hospital: HospitalConfig, patients: InMemoryPatientRepository
) -> None:
    answer = _preview(hospital, patients, NOON, send_on="2026-11-24")
    assert answer["evaluated_at"] == "2026-11-24T00:00:00+09:00"
    rules = {f"{r['action']}:{r['rule']}": r for r in answer["rules"]}
    assert rules["send:send"]["count"] == 1  # night consent: sent at night
    held = rules["hold:night_advertising"]
    assert (held["count"], held["release_at"]) == (1, "2026-11-24T08:00:00+09:00")


def test_the_frequency_cap_and_the_template_rules_are_the_runners(
    hospital: HospitalConfig, patients: InMemoryPatientRepository
) -> None:
    first = next(p for p in patients.stored_patients.values() if p.name == "김하나")
    patients.stored_patients[first.id] = first.with_ad(NOON - timedelta(days=2), "campaign:x")
    assert _rules(_preview(hospital, patients, NOON))["skip:frequency_cap"] == 1
    with pytest.raises(BadRequest, match="marketing template only") as error:
        _preview(hospital, patients, NOON, template_id="recall_checkup")
    assert error.value.field == "body.template_id"
    with pytest.raises(BadRequest) as past:
        _preview(hospital, patients, NOON, send_on="2026-11-22")
    assert past.value.field == "body.send_on"


def test_an_empty_segment_still_shows_the_message_with_an_example_name(
    hospital: HospitalConfig, patients: InMemoryPatientRepository
) -> None:
    answer = _preview(
        hospital, patients, NOON, segment={"tag": "scaling", "last_treatment_after": "2026-11-01"}
    )
    assert answer["segment_count"] == 0
    assert answer["rules"] == []
    assert answer["message"]["sample"] == "example"
    assert "홍길동님" in answer["message"]["text"]
