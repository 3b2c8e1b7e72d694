"""Health information out of patient messages: the term list, the config check, the staff check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sotong.config.loader import ConfigError, load_hospital_file, parse_hospital
from sotong.errors import SotongError
from sotong.health_terms import SENSITIVE_TERMS, all_terms, check_staff_text, find_terms

DEMO = Path(__file__).resolve().parents[2] / "hospitals" / "demo.yaml"


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("보톡스 효과가 줄어드는 시기입니다", ["보톡스"]),
        ("임플란트가 흔들리면 연락 주세요", ["임플란트"]),
        ("위암 검진 결과를 알려드립니다", ["암"]),
        ("암 진단 후 첫 내원", ["진단", "암"]),
        ("항암 치료 일정", ["항암"]),
        ("우울증 상담 예약", ["우울"]),
        ("정신건강의학과 진료 안내", ["정신"]),
        ("임신 중이시면 알려 주세요", ["임신"]),
        ("HIV test result", ["hiv"]),
        ("Your Botox appointment", ["botox"]),
        ("성병 검사 결과", ["성병"]),
        ("유산 후 관리", ["유산"]),
    ],
)
def test_terms_are_found_with_particles_and_in_any_case(text: str, terms: list[str]) -> None:
    assert find_terms(text) == terms


@pytest.mark.parametrize(
    "text",
    [
        "[#{hospital}] #{name}님, 어제 치료 후 불편한 곳은 없으신가요?",
        "비밀번호(암호)를 바꾸어 주세요. 암막 커튼을 설치했습니다.",
        "유산균 음료를 드려요. 문화유산 탐방 안내",
        "대기 시간이 길어 죄송합니다. 주차장은 지하 2층입니다.",
        "Standard parking: the hospital's stadium gate",
        "시술 부위는 오늘까지 문지르지 마세요",
    ],
)
def test_everyday_words_are_not_terms(text: str) -> None:
    assert find_terms(text) == []


def test_placeholders_are_not_text_and_tag_names_count_when_given() -> None:
    assert find_terms("#{diagnosis} 안내") == []
    assert find_terms("치아미백 후 관리", ["치아 미백"]) == ["치아 미백"]
    assert find_terms("정기 스케일링 시기입니다", ["스케일링", "발치"]) == ["스케일링"]


def test_the_list_is_data_in_one_place() -> None:
    terms = all_terms()
    assert len(terms) == len(set(terms)), "no term twice"
    assert {"보톡스", "임플란트", "항암", "암", "우울", "정신", "임신", "hiv", "성병"} <= set(terms)
    assert set(SENSITIVE_TERMS) == {
        "procedure",
        "diagnosis",
        "mental_health",
        "sexual_reproductive",
    }
    latin = [t for t in terms if t.isascii()]
    assert latin == [t.lower() for t in latin]


def test_staff_text_is_refused_with_the_field_and_terms_unless_confirmed() -> None:
    with pytest.raises(SotongError) as raised:
        check_staff_text("보톡스 재시술은 2주 후에 가능합니다", "body.message", confirmed=False)
    error = raised.value
    assert error.status == 422
    body = error.body()
    assert body["field"] == "body.message"
    assert body["terms"] == ["보톡스"]
    assert body["confirm_with"] == "confirm_health_terms"
    assert body["message"].startswith("body.message: ")
    assert body["fields"][0]["field"] == "body.message"
    check_staff_text("보톡스 재시술은 2주 후에 가능합니다", "body.message", confirmed=True)
    check_staff_text("내일 오전에 오세요", "body.message", confirmed=False)
    with pytest.raises(SotongError, match="스케일링"):
        check_staff_text("스케일링 예약", "body.outcome", confirmed=False, extra=["스케일링"])


# --- the hospital config -----------------------------------------------------------------------


def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    return data


def problems_with(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_hospital(data, "demo.yaml")
    return raised.value.problems


def _template(data: dict[str, Any], template_id: str) -> tuple[int, dict[str, Any]]:
    return next((i, t) for i, t in enumerate(data["templates"]) if t["id"] == template_id)


def test_the_demo_hospital_passes() -> None:
    config = load_hospital_file(DEMO)
    for template in config.templates:
        if template.to_patients:
            names = [t.name for t in config.treatment_tags]
            assert find_terms(template.text, names) == [], template.id


def test_a_sensitive_term_in_a_template_is_refused_at_its_field() -> None:
    data = demo_data()
    index, template = _template(data, "botox_next_step")
    template["text"] = (
        "(광고) [#{hospital}] #{name}님, 보톡스 효과가 줄어드는 시기입니다.\n"
        "재시술 상담을 원하시면 연락 주세요: #{callback}\n무료수신거부 #{opt_out}"
    )
    ((path, problem),) = problems_with(data)
    assert path == f"templates[{index}].text"
    assert "botox_next_step" in problem
    assert "보톡스" in problem


def test_a_treatment_tag_name_in_a_template_is_refused() -> None:
    data = demo_data()
    index, template = _template(data, "scaling_next_step")
    template["text"] = template["text"].replace("정기 관리 시기", "정기 스케일링 시기")
    ((path, problem),) = problems_with(data)
    assert path == f"templates[{index}].text"
    assert "scaling_next_step" in problem
    assert "스케일링" in problem


def test_subjects_are_checked_and_staff_templates_are_not() -> None:
    data = demo_data()
    index, template = _template(data, "complaint_outcome_email")
    template["subject"] = "[#{hospital}] 임플란트 상담 결과"
    ((path, _),) = problems_with(data)
    assert path == f"templates[{index}].subject"

    data = demo_data()
    _, alert = _template(data, "staff_alert")
    alert["text"] = "[소통 #{level}] 임플란트 환자 확인 필요: #{code}"
    assert parse_hospital(data, "demo.yaml").template("staff_alert") is not None
