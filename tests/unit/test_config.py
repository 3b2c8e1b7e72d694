"""Hospital config: the demo file is valid, and every kind of mistake names file, field and problem.

Each broken case starts from the demo file, changes one thing and writes the result to a temporary
file, so a test fails for the reason it names and not because the demo drifted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sotong.config import ConfigError, HospitalConfig, load_hospital_file
from sotong.config.loader import parse_hospital

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hospitals" / "demo.yaml"
BROKEN = ROOT / "tests" / "data" / "hospitals"

Data = dict[str, Any]


@pytest.fixture(scope="module")
def demo_data() -> Data:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, data: Any, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def broken(demo_data: Data, tmp_path: Path, change: Callable[[Data], object]) -> ConfigError:
    data = copy.deepcopy(demo_data)
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    error = caught.value
    assert error.source == str(path)
    assert str(error) == error.render()
    return error


def assert_reports(error: ConfigError, field: str, *words: str) -> None:
    """A problem at `field` with all `words`; the rendering shows file, field and problem."""
    rendered = error.render()
    assert error.source in rendered
    matching = [problem for path, problem in error.problems if path == field]
    assert matching, f"no problem at {field!r}; got {error.problems}"
    for word in words:
        assert any(word in problem for problem in matching), (word, matching)
    line = next(line for line in rendered.splitlines() if f": {field}: " in line)
    assert line.strip().startswith(error.source)
    for word in words:
        assert word in rendered


def template_index(data: Data, template_id: str) -> int:
    return next(i for i, t in enumerate(data["templates"]) if t["id"] == template_id)


# --- the demo file -----------------------------------------------------------------------------


def test_demo_file_loads_with_realistic_content() -> None:
    config = load_hospital_file(DEMO)
    assert isinstance(config, HospitalConfig)
    assert config.hospital_id == "demo"
    assert config.timezone == "Asia/Seoul"
    assert len(config.departments) >= 3
    with_plans = [tag for tag in config.treatment_tags if len(tag.plan) >= 2]
    assert len(with_plans) >= 3
    for tag in config.treatment_tags:
        assert config.department(tag.department) is not None
        assert tag.manual.strip(), f"{tag.id} has no consultation manual"
        for step in tag.plan:
            template = config.template(step.template)
            assert template is not None, (tag.id, step.id)
            assert template.purpose == step.purpose
    for category, department in config.complaints.routing.items():
        assert category in config.complaints.categories
        assert config.department(department) is not None
    assert set(config.sla) == {"critical", "high", "normal"}
    assert config.sender.quiet_hours is not None
    assert config.sender.quiet_hours.start == time(21, 0)
    assert config.sender.quiet_hours.end == time(8, 0)


def test_demo_phones_are_e164_and_marketing_templates_are_ads() -> None:
    config = load_hospital_file(DEMO)
    for department in config.departments:
        assert department.head.phone is not None
        assert department.head.phone.startswith("+8210")
    assert config.sender.sms_sender_number == "+8225550100"
    marketing = [t for t in config.templates if t.purpose == "marketing"]
    assert marketing
    for template in marketing:
        assert template.channel != "alimtalk"
        assert template.text.startswith("(광고)")
        assert "opt_out" in template.variables
    for template in config.templates:
        if template.channel == "alimtalk":
            assert template.kakao_template_code


def test_demo_round_trips_through_json(tmp_path: Path) -> None:
    """In AWS the functions read the config as JSON; that form must load to the same config."""
    config = load_hospital_file(DEMO)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.model_dump(mode="json"), ensure_ascii=False), "utf-8")
    assert load_hospital_file(path) == config


def test_demo_plan_offsets_parse() -> None:
    config = load_hospital_file(DEMO)
    tag = config.treatment_tag("implant_surgery")
    assert tag is not None
    assert [step.offset_parts for step in tag.plan] == [(-1, "d"), (1, "d"), (14, "d"), (6, "mo")]


# --- the kinds of mistake the issue names ------------------------------------------------------


def test_unknown_category_in_routing(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["complaints"]["routing"].update(parkng="qi"))
    assert_reports(error, "complaints.routing.parkng", "unknown category 'parkng'")
    assert "complaints.routing" in error.render()


def test_routing_to_a_missing_department(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["complaints"]["routing"].update(billing="accounting")
    )
    assert_reports(error, "complaints.routing.billing", "'accounting'", "not defined")


def test_default_department_must_exist(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["complaints"].update(default_department="nobody")
    )
    assert_reports(error, "complaints.default_department", "'nobody'", "not defined")


def test_bad_time_zone(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d.update(timezone="Asia/Busan"))
    assert_reports(error, "timezone", "'Asia/Busan'", "not an IANA time zone")


def test_inline_secret(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["sender"].update(kakao_sender_key="a1b2c3d4e5f6")
    )
    assert_reports(error, "sender.kakao_sender_key", "inline secret values are not allowed")
    assert "a1b2c3d4e5f6" not in error.render()


def test_secret_reference_must_be_a_secret_name(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data,
        tmp_path,
        lambda d: d["sender"].update(provider_credentials={"secret": "has spaces in it"}),
    )
    assert_reports(error, "sender.provider_credentials.secret", "not a Secrets Manager secret")


def test_duplicate_department_ids(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["departments"].append({**d["departments"][1], "name": "치과 2"})

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "departments", "duplicate department id 'dental'")


def test_duplicate_template_ids(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["templates"].append(copy.deepcopy(d["templates"][0]))
    )
    assert_reports(error, "templates", "duplicate template id 'complaint_received'")


def test_duplicate_treatment_tag_ids(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["treatment_tags"].append({**copy.deepcopy(d["treatment_tags"][1]), "name": "스케일링2"})

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "treatment_tags", "duplicate treatment tag id 'scaling'")


def test_duplicate_step_ids(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["treatment_tags"][0]["plan"][1]["id"] = "precautions"

    error = broken(demo_data, tmp_path, change)
    assert_reports(
        error, "treatment_tags[0] (implant_surgery).plan", "duplicate step id 'precautions'"
    )


def test_duplicate_channels(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["channels"].append("sms"))
    assert_reports(error, "channels", "duplicate channel 'sms'")


def test_plan_step_names_a_missing_template(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["treatment_tags"][0]["plan"][1]["template"] = "dental_aftercar"

    error = broken(demo_data, tmp_path, change)
    assert_reports(
        error,
        "treatment_tags[0] (implant_surgery).plan[1].template",
        "'dental_aftercar' is not a template",
    )


def test_step_purpose_differs_from_template_purpose(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        del d["treatment_tags"][1]["plan"][2]["purpose"]  # scaling's marketing next step

    error = broken(demo_data, tmp_path, change)
    assert_reports(
        error,
        "treatment_tags[1] (scaling).plan[2]",
        "step purpose 'service'",
        "'scaling_next_step' purpose 'marketing'",
    )


def test_treatment_tag_department_must_exist(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["treatment_tags"][3].update(department="derm"))
    assert_reports(error, "treatment_tags[3] (botox).department", "'derm' is not a department")


def test_marketing_template_without_ad_prefix(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        template = d["templates"][template_index(d, "botox_next_step")]
        template["text"] = template["text"].removeprefix("(광고) ")

    error = broken(demo_data, tmp_path, change)
    index = template_index(demo_data, "botox_next_step")
    assert_reports(error, f"templates[{index}]", "must start with '(광고)'")


def test_marketing_alimtalk_template_is_rejected(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        template = d["templates"][template_index(d, "scaling_next_step")]
        template.update(channel="alimtalk", kakao_template_code="SOTONG_AD_01")

    error = broken(demo_data, tmp_path, change)
    index = template_index(demo_data, "scaling_next_step")
    assert_reports(error, f"templates[{index}]", "AlimTalk is for informational messages only")


def test_alimtalk_template_needs_its_kakao_template_code(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["templates"][0].pop("kakao_template_code"))
    assert_reports(error, "templates[0]", "kakao_template_code")


def test_email_template_needs_a_subject(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["templates"][template_index(d, "complaint_outcome_email")].pop("subject")

    error = broken(demo_data, tmp_path, change)
    index = template_index(demo_data, "complaint_outcome_email")
    assert_reports(error, f"templates[{index}]", "needs a subject")


@pytest.mark.parametrize("phone", ["010-123", "abc", "+1 415 555 2671", "010-1234-56789"])
def test_malformed_phone_in_a_contact(demo_data: Data, tmp_path: Path, phone: str) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["departments"][0]["head"].update(phone=phone))
    assert_reports(error, "departments[0].head.phone", "not a Korean phone number")


def test_phone_written_as_a_number(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["on_call"].update(phone=1020001999))
    assert_reports(error, "on_call.phone", "phone number as text")


def test_contact_needs_a_phone_or_an_email(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d.update(cs_admin={"name": "김민지"}))
    assert_reports(error, "cs_admin", "needs a phone or an e-mail")


def test_bad_sender_number(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["sender"].update(sms_sender_number="555-0100"))
    assert_reports(error, "sender.sms_sender_number", "not a Korean phone number")


@pytest.mark.parametrize("offset", ["+3x", "1d", "+d", "+1y", "-1000d"])
def test_bad_offset(demo_data: Data, tmp_path: Path, offset: str) -> None:
    def change(d: Data) -> None:
        d["treatment_tags"][2]["plan"][0]["offset"] = offset

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "treatment_tags[2].plan[0].offset", f"'{offset}' is not an offset")


def test_unknown_field_is_reported_as_a_typo(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        step = d["treatment_tags"][0]["plan"][0]
        step["cancel_iff"] = step.pop("cancel_if")

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "treatment_tags[0].plan[0].cancel_iff", "unknown field")


def test_unknown_top_level_field(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d.update(timezon="Asia/Seoul"))
    assert_reports(error, "timezon", "unknown field")


def test_missing_required_field(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d.pop("on_call"))
    assert_reports(error, "on_call", "Field required")


def test_every_problem_is_reported_not_just_the_first(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["timezone"] = "Seoul"
        d["departments"][0]["head"]["phone"] = "010-123"
        d["sender"]["webhook_secret"] = "plain-text-secret"

    error = broken(demo_data, tmp_path, change)
    assert {path for path, _ in error.problems} == {
        "timezone",
        "departments[0].head.phone",
        "sender.webhook_secret",
    }
    assert "3 problem(s)" in error.render()


def test_sla_missing_an_urgency(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d["sla"].pop("high"))
    assert_reports(error, "sla", "SLA hours missing for urgency: high")


def test_sla_resolve_shorter_than_acknowledge(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["sla"].update(high={"acknowledge": 8, "resolve": 4})
    )
    assert_reports(error, "sla.high", "resolve hours must not be shorter than acknowledge hours")


def test_unknown_urgency_in_sla(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["sla"]["urgent"] = {"acknowledge": 1, "resolve": 2}

    error = broken(demo_data, tmp_path, change)
    assert any(path.startswith("sla.urgent") for path, _ in error.problems), error.problems


@pytest.mark.parametrize("missing", ["kakao_sender_key", "provider_credentials", "webhook_secret"])
def test_real_provider_without_secret_refs(demo_data: Data, tmp_path: Path, missing: str) -> None:
    def change(d: Data) -> None:
        d["sender"]["provider"] = "solapi"
        d["sender"].pop(missing)

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "sender", "provider 'solapi' needs secret references", missing)


def test_real_provider_with_every_secret_ref_loads(demo_data: Data, tmp_path: Path) -> None:
    data = copy.deepcopy(demo_data)
    data["sender"]["provider"] = "solapi"
    config = load_hospital_file(write(tmp_path, data, "solapi.yaml"))
    assert [ref.secret for ref in config.secret_refs()] == [
        "sotong/demo/kakao",
        "sotong/demo/solapi",
        "sotong/demo/webhook",
    ]


def test_unquoted_time_is_not_silently_misread(demo_data: Data, tmp_path: Path) -> None:
    """YAML 1.1 reads `start: 21:00` as the number 1260; it must fail, not become 00:21 UTC."""
    data = copy.deepcopy(demo_data)
    path = tmp_path / "unquoted.yaml"
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    text = text.replace("start: '21:00'", "start: 21:00")
    assert "start: 21:00" in text
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    assert_reports(caught.value, "sender.quiet_hours.start", 'in quotes, e.g. "21:00"')


def test_time_with_a_zone_offset_is_rejected(demo_data: Data, tmp_path: Path) -> None:
    def change(d: Data) -> None:
        d["treatment_tags"][0]["plan"][0]["at"] = "18:00+09:00"

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "treatment_tags[0].plan[0].at", "without a zone offset")


def test_routing_rule_with_unknown_category(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["complaints"]["rules"][0].update(category="parkin")
    )
    assert_reports(error, "complaints.rules[0].category", "unknown category 'parkin'")


def test_extra_category_repeating_a_default(demo_data: Data, tmp_path: Path) -> None:
    error = broken(
        demo_data, tmp_path, lambda d: d["complaints"]["extra_categories"].update(billing="수납")
    )
    assert_reports(error, "complaints.extra_categories", "repeats default categories: billing")


def test_bad_hospital_id(demo_data: Data, tmp_path: Path) -> None:
    error = broken(demo_data, tmp_path, lambda d: d.update(hospital_id="Demo Hospital"))
    assert_reports(error, "hospital_id", "lower-case")


# --- files that are not a config at all --------------------------------------------------------


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("hospital_id: demo\nname: 소통\ndepartments: [\n  {id: dental\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    rendered = caught.value.render()
    assert str(path) in rendered
    assert "not valid YAML" in rendered
    assert "line 5" in rendered


def test_tab_indentation_is_a_yaml_error(tmp_path: Path) -> None:
    path = tmp_path / "tabs.yaml"
    path.write_text("hospital_id: demo\nsender:\n\tprovider: sandbox\n", "utf-8")
    with pytest.raises(ConfigError, match=r"line 3, column 1: not valid YAML"):
        load_hospital_file(path)


def test_duplicate_yaml_key_names_key_and_line(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8").replace(
        "timezone: Asia/Seoul\n", "timezone: Asia/Seoul\ntimezone: UTC\n", 1
    )
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("timezone: UTC") + 1
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    assert caught.value.problems == [("timezone", f"duplicate key at line {line}")]
    assert str(path) in caught.value.render()


def test_duplicate_nested_yaml_key(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8").replace(
        "  provider: sandbox\n", "  provider: sandbox\n  provider: solapi\n", 1
    )
    path = tmp_path / "dup_nested.yaml"
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  provider: solapi") + 1
    with pytest.raises(ConfigError, match=rf"provider: duplicate key at line {line}"):
        load_hospital_file(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "", "42\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    assert caught.value.problems == [("", "the file must hold a mapping of settings")]
    assert f"{path}: (top level): the file must hold a mapping" in caught.value.render()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    assert str(path) in caught.value.render()
    assert "cannot read the file" in caught.value.render()


def test_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"hospital_id": "demo",\n "name": }', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 2: not valid JSON"):
        load_hospital_file(path)


def test_parse_hospital_names_its_source(demo_data: Data) -> None:
    data = copy.deepcopy(demo_data)
    data["timezone"] = "Mars/Olympus"
    with pytest.raises(ConfigError) as caught:
        parse_hospital(data, "layer:/opt/hospital/config.json")
    assert caught.value.render().startswith("layer:/opt/hospital/config.json: invalid")


# --- fixture files kept in the repository ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field", "words"),
    [
        ("unknown_category.yaml", "complaints.routing.parkng", "unknown category"),
        ("missing_department.yaml", "complaints.routing.billing", "'accounting'"),
        ("bad_timezone.yaml", "timezone", "not an IANA time zone"),
        ("inline_secret.yaml", "sender.kakao_sender_key", "inline secret"),
        ("duplicate_ids.yaml", "departments", "duplicate department id"),
    ],
)
def test_broken_fixture_files(name: str, field: str, words: str) -> None:
    path = BROKEN / name
    with pytest.raises(ConfigError) as caught:
        load_hospital_file(path)
    assert_reports(caught.value, field, words)


def test_minimal_fixture_loads_with_defaults() -> None:
    config = load_hospital_file(BROKEN / "minimal.yaml")
    assert config.timezone == "Asia/Seoul"
    assert config.sender.provider == "sandbox"
    assert config.sender.sms_sender_number == "+8215880100"  # a 대표번호 is a valid sender
    assert config.channels == ("web", "app", "phone", "walk_in", "sms", "kakao")
    assert config.sla["critical"].acknowledge == 1
    assert config.templates == ()
    assert config.treatment_tags == ()


def test_a_plan_template_may_not_ask_for_a_time_the_plan_does_not_know(
    demo_data: Data, tmp_path: Path
) -> None:
    """A treatment record has a day, not a time: a D-1 text with `#{time}` is refused."""

    def change(d: Data) -> None:
        template = d["templates"][template_index(d, "dental_precautions")]
        template["text"] = "[#{hospital}] #{name}님, 내일 #{time} 예약 안내드립니다."

    error = broken(demo_data, tmp_path, change)
    assert_reports(error, "treatment_tags[0] (implant_surgery).plan[0]", "#{time}", "cannot fill")
