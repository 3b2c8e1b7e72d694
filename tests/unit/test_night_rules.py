"""Which rule wins at night: the law's night-consent rule for ads, or the hospital's quiet hours
(docs/configure-a-hospital.md, "Night-time messages"). The demo keeps quiet hours 21:00-08:00."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sotong.config.loader import load_hospital_file
from sotong.config.schema import HospitalConfig, QuietHours
from sotong.notify.model import MessageRequest, Recipient
from sotong.notify.rules import decide

KST = ZoneInfo("Asia/Seoul")
DEMO = Path(__file__).resolve().parents[2] / "hospitals" / "demo.yaml"
AT_22 = datetime(2026, 11, 23, 22, 0, tzinfo=KST)


@pytest.fixture(scope="module")
def demo() -> HospitalConfig:
    return load_hospital_file(DEMO)


def strict(hospital: HospitalConfig) -> HospitalConfig:
    marketing = hospital.marketing.model_copy(update={"night_ads": "never"})
    return hospital.model_copy(update={"marketing": marketing})


def advert(night_consent: bool) -> MessageRequest:
    return MessageRequest(
        idempotency_key=f"campaign:night:{night_consent}",
        recipient=Recipient(
            name="홍길동",
            phone="010-1234-5678",
            contact_consent=True,
            marketing_consent=True,
            night_consent=night_consent,
        ),
        template_id="scaling_next_step",
        purpose="marketing",
        variables={
            "hospital": "소통치과피부과",
            "name": "홍길동",
            "callback": "02-555-0100",
            "opt_out": "080-555-0100",
        },
    )


def aftercare(night_consent: bool) -> MessageRequest:
    return MessageRequest(
        idempotency_key=f"touchpoint:night:{night_consent}",
        recipient=Recipient(
            name="홍길동", phone="010-1234-5678", contact_consent=True, night_consent=night_consent
        ),
        template_id="dental_aftercare",
        variables={"hospital": "소통치과피부과", "name": "홍길동", "callback": "02-555-0100"},
    )


def test_the_demo_keeps_quiet_hours_and_sends_ads_with_night_consent(
    demo: HospitalConfig,
) -> None:
    assert demo.sender.quiet_hours is not None
    assert (demo.sender.quiet_hours.start.hour, demo.sender.quiet_hours.end.hour) == (21, 8)
    assert demo.marketing.night_ads == "with_consent"


def test_an_ad_at_22_goes_to_a_patient_with_night_consent(demo: HospitalConfig) -> None:
    decision = decide(advert(night_consent=True), demo, AT_22)
    assert (decision.action, decision.reason) == ("send", None)
    assert decision.rendered is not None
    assert decision.rendered.text.startswith("(광고) [소통치과피부과]")


def test_an_ad_at_22_waits_for_eight_without_night_consent(demo: HospitalConfig) -> None:
    decision = decide(advert(night_consent=False), demo, AT_22)
    assert (decision.action, decision.reason) == ("hold", "night_advertising")
    assert decision.release_at == datetime(2026, 11, 24, 8, 0, tzinfo=KST)


def test_night_consent_does_not_lift_quiet_hours_for_service_messages(
    demo: HospitalConfig,
) -> None:
    for consent in (True, False):
        decision = decide(aftercare(night_consent=consent), demo, AT_22)
        assert (decision.action, decision.reason) == ("hold", "quiet_hours")
        assert decision.release_at == datetime(2026, 11, 24, 8, 0, tzinfo=KST)


def test_a_hospital_stricter_by_choice_holds_every_ad_at_night(demo: HospitalConfig) -> None:
    for consent in (True, False):
        decision = decide(advert(night_consent=consent), strict(demo), AT_22)
        assert (decision.action, decision.reason) == ("hold", "night_advertising")
    morning = datetime(2026, 11, 24, 8, 0, tzinfo=KST)
    assert decide(advert(night_consent=False), strict(demo), morning).action == "send"


def test_quiet_hours_past_the_legal_night_still_hold_ads_without_night_consent(
    demo: HospitalConfig,
) -> None:
    until_nine = QuietHours(start=time(21, 0), end=time(9, 0))
    sender = demo.sender.model_copy(update={"quiet_hours": until_nine})
    hospital = demo.model_copy(update={"sender": sender})
    at_8_30 = datetime(2026, 11, 24, 8, 30, tzinfo=KST)
    held = decide(advert(night_consent=False), hospital, at_8_30)
    assert (held.action, held.reason) == ("hold", "quiet_hours")
    assert decide(advert(night_consent=True), hospital, at_8_30).action == "send"
