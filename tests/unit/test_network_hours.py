"""Who is open when: the partners' HSDS schedules (RRULEs read by dateutil) on the Korean
calendar, across 설날 and 추석, past midnight and with holiday-only hours."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sotong.config import load_hospital
from sotong.config.loader import ConfigError, load_hospital_file
from sotong.config.network import HsdsDirectory, HsdsSchedule
from sotong.network import hours
from sotong.network.service import NetworkDesk

KST = ZoneInfo("Asia/Seoul")
ROOT = Path(__file__).resolve().parents[2]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=KST)  # type: ignore[misc]


@pytest.fixture(scope="module")
def desk() -> NetworkDesk:
    return NetworkDesk(load_hospital())


def open_ids(desk: NetworkDesk, when: datetime, kind: str | None = None) -> set[str]:
    return {e["id"] for e in desk.open_at(when, kind)["open"]}


def test_the_demo_directory_is_a_dozen_partners_near_the_hospital(desk: NetworkDesk) -> None:
    assert len(desk.partners) == 12
    assert {p.kind for p in desk.partners} == {"clinic", "pharmacy", "hospital"}
    assert all(p.phone.startswith("02-") and "강남구" in p.address for p in desk.partners)


@pytest.mark.parametrize("day", [6, 7, 8, 9])  # 설날 2027: Feb 6-8, substitute holiday Feb 9
def test_seollal_2027_at_nine_pm_only_holiday_hours_count(desk: NetworkDesk, day: int) -> None:
    answer = desk.open_at(at(2027, 2, day, 21, 0))
    assert answer["holiday"]  # the KR calendar names it
    assert {e["id"] for e in answer["open"]} == {
        "dalbit-children",  # holiday hours 10:00-22:00
        "dalbit-pharmacy",  # 12:00-02:00 on holidays
        "open24-pharmacy",
    }
    # a weekday night clinic (Tue Feb 9 is a weekday) keeps its regular hours off on a holiday
    assert "hanbit-peds" not in {e["id"] for e in answer["open"]}
    child = next(e for e in answer["open"] if e["id"] == "dalbit-children")
    assert child["closes"] == "22:00"
    assert child["holiday_hours"] is True
    assert child["phone"] == "02-555-0202"


def test_the_evening_after_seollal_is_a_weekday_again(desk: NetworkDesk) -> None:
    assert "hanbit-peds" in open_ids(desk, at(2027, 2, 10, 21, 0))  # Wed: open till 23:00


@pytest.mark.parametrize("day", [24, 25, 26])  # 추석 2026
def test_chuseok_2026(desk: NetworkDesk, day: int) -> None:
    assert open_ids(desk, at(2026, 9, day, 21, 0)) == {
        "dalbit-children",
        "dalbit-pharmacy",
        "open24-pharmacy",
    }
    # holiday-only hours: the 휴일지킴이 clinic and the duty clinic open on the holiday morning
    morning = open_ids(desk, at(2026, 9, day, 10, 0))
    assert {"holiday-guard-peds", "teunteun-peds", "hanbit-peds"} <= morning
    assert "saebom-peds" not in morning  # closed on public holidays


def test_holiday_only_hours_are_closed_on_an_ordinary_weekday(desk: NetworkDesk) -> None:
    assert "holiday-guard-peds" not in open_ids(desk, at(2026, 12, 2, 10, 0))  # Wednesday
    assert "holiday-guard-peds" in open_ids(desk, at(2026, 12, 6, 10, 0))  # Sunday


def test_spans_past_midnight_belong_to_the_day_they_open(desk: NetworkDesk) -> None:
    # the night clinic opens Mon-Fri 18:00-01:00: Tuesday 00:30 is Monday's night
    assert "sarang-night-peds" in open_ids(desk, at(2026, 12, 1, 0, 30))
    assert "sarang-night-peds" not in open_ids(desk, at(2026, 12, 1, 1, 0))
    # Saturday 00:30 is Friday's night; Sunday 00:30 follows Saturday's 14-22, so closed
    assert "sarang-night-peds" in open_ids(desk, at(2026, 12, 5, 0, 30))
    assert "sarang-night-peds" not in open_ids(desk, at(2026, 12, 6, 0, 30))
    # the night pharmacy, 18:00-02:00 every day: 01:59 open, closing "02:00" the same morning
    entry = next(
        e for e in desk.open_at(at(2026, 12, 2, 1, 59))["open"] if e["id"] == "dalbit-pharmacy"
    )
    assert entry["closes"] == "02:00"
    entry = next(
        e for e in desk.open_at(at(2026, 12, 2, 23, 0))["open"] if e["id"] == "dalbit-pharmacy"
    )
    assert entry["closes"] == "내일 02:00"


def test_a_holiday_nights_span_runs_past_midnight_into_an_ordinary_day(desk: NetworkDesk) -> None:
    # 설날's last day (Feb 9, 2027): holiday hours 12:00-02:00, so 01:30 on the 10th is open
    assert "dalbit-pharmacy" in open_ids(desk, at(2027, 2, 10, 1, 30))


def test_around_the_clock_and_next_openings(desk: NetworkDesk) -> None:
    answer = desk.open_at(at(2026, 12, 2, 3, 0))
    assert {e["id"] for e in answer["open"]} == {"open24-pharmacy"}
    assert answer["open"][0]["closes"] == "24시간"
    hanbit = next(e for e in answer["closed"] if e["id"] == "hanbit-peds")
    assert hanbit["next_opens"] == "09:00"
    assert answer["closed"][0]["next_opens_at"] <= answer["closed"][-1]["next_opens_at"]


def test_kind_filter_counts_a_hospital_as_a_clinic(desk: NetworkDesk) -> None:
    clinics = open_ids(desk, at(2027, 2, 7, 21, 0), "clinic")
    assert clinics == {"dalbit-children"}
    assert open_ids(desk, at(2027, 2, 7, 21, 0), "pharmacy") == {
        "dalbit-pharmacy",
        "open24-pharmacy",
    }


def test_rrule_interval_and_validity_are_read_with_dateutil() -> None:
    every_other_saturday = HsdsSchedule(
        freq="WEEKLY",
        interval=2,
        byday="SA",
        opens_at="09:00",
        closes_at="13:00",
        dtstart=date(2026, 12, 5),
    )
    assert hours.open_span((every_other_saturday,), at(2026, 12, 5, 10, 0), KST)
    assert hours.open_span((every_other_saturday,), at(2026, 12, 12, 10, 0), KST) is None
    assert hours.open_span((every_other_saturday,), at(2026, 12, 19, 10, 0), KST)
    ended = HsdsSchedule(
        byday="MO,TU,WE,TH,FR", opens_at="09:00", closes_at="18:00", valid_to=date(2026, 12, 31)
    )
    assert hours.open_span((ended,), at(2026, 12, 31, 10, 0), KST)
    assert hours.open_span((ended,), at(2027, 1, 4, 10, 0), KST) is None


def test_schedules_are_checked_naming_the_field() -> None:
    with pytest.raises(ValueError, match="byday"):
        HsdsSchedule(byday="MO,XX", opens_at="09:00", closes_at="18:00")
    with pytest.raises(ValueError, match="time of day"):
        HsdsSchedule(byday="MO", opens_at="25:00", closes_at="18:00")


def test_the_directory_file_is_validated_with_the_hospital_file(tmp_path: Path) -> None:
    config = (ROOT / "hospitals" / "demo.yaml").read_text(encoding="utf-8")
    (tmp_path / "h.yaml").write_text(config, encoding="utf-8")
    data = json.loads((ROOT / "hospitals" / "demo-network.json").read_text(encoding="utf-8"))
    data["organizations"][1]["id"] = data["organizations"][0]["id"]
    (tmp_path / "demo-network.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_hospital_file(tmp_path / "h.yaml")
    assert "duplicate partner id 'hanbit-peds'" in str(error.value)
    # a copy of the shipped file elsewhere, without its own directory, reads the shipped one
    (tmp_path / "demo-network.json").unlink()
    assert load_hospital_file(tmp_path / "h.yaml").network is not None
    (tmp_path / "h.yaml").write_text(
        config.replace("directory: demo-network.json", "directory: nowhere.json"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"network\.directory"):
        load_hospital_file(tmp_path / "h.yaml")
    HsdsDirectory.model_validate(
        json.loads((ROOT / "hospitals" / "demo-network.json").read_text(encoding="utf-8"))
    )
