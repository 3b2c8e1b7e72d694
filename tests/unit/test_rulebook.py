"""The shipped rules are data: stable ids, disabled by id, extended with a hospital's own rules and
combinations, and merged into the config layer as JSON the functions read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.constructs.functions import write_config_layer
from sotong.complaints import rulebook
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.config import ConfigError, HospitalConfig, load_hospital_file
from sotong.config.loader import parse_hospital
from sotong_local.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hospitals" / "demo.yaml"


def demo_with(**complaints: Any) -> HospitalConfig:
    data = load_hospital_file(DEMO).model_dump(mode="json")
    data["complaints"].update(complaints)
    return parse_hospital(data, "test")


def test_every_shipped_rule_has_a_stable_unique_id() -> None:
    ids = rulebook.shipped_ids()
    assert len(ids) == len(set(ids)) == len(rulebook.shipped()["rules"])
    assert {"critical_falls", "critical_self_harm", "combo_dose_dose_wrong"} <= set(ids)


def test_a_hospital_disables_a_shipped_rule_by_id() -> None:
    text = "요즘은 그냥 죽고 싶어요"
    before = RuleClassifier(demo_with()).classify(text)
    assert (before.urgency, before.rules) == ("critical", ("critical_self_harm",))
    off = demo_with(disable_rules=["critical_self_harm"])
    result = RuleClassifier(off).classify(text)
    assert "critical_self_harm" not in result.rules
    assert result.urgency != "critical"
    assert "critical_self_harm" not in rulebook.compose(off).ids()


def test_unknown_disabled_id_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError) as error:
        rulebook.checked(demo_with(disable_rules=["no_such_rule"]), "demo.yaml")
    assert error.value.problems == [
        (
            "complaints.disable_rules[0]",
            "no shipped rule 'no_such_rule' (see sotong/complaints/rules/shipped.yaml)",
        )
    ]


def test_a_hospital_rule_may_not_reuse_a_shipped_id() -> None:
    hospital = demo_with(rules=[{"id": "critical_falls", "urgency": "critical", "phrases": ["x"]}])
    with pytest.raises(ConfigError) as error:
        rulebook.checked(hospital, "demo.yaml")
    assert error.value.problems[0][0] == "complaints.rules[0].id"


def test_a_hospital_adds_its_own_combination() -> None:
    combination = {
        "id": "laser_burn",
        "category": "safety",
        "urgency": "critical",
        "all_of": [["레이저"], ["하얗게", "진물"]],
    }
    text = "레이저 받은 자리가 진물이 나요"
    before = RuleClassifier(demo_with(disable_rules=["combo_after_treatment_warning_signs"]))
    assert "laser_burn" not in before.classify(text).rules
    after = RuleClassifier(
        demo_with(rules=[combination], disable_rules=["combo_after_treatment_warning_signs"])
    )
    result = after.classify(text)
    assert (result.urgency, result.category) == ("critical", "safety")
    assert "laser_burn" in result.rules


def test_a_combination_may_name_a_shipped_list() -> None:
    combination = {
        "id": "dose_talk",
        "urgency": "critical",
        "category": "safety",
        "all_of": ["dose", ["이상해"]],
    }
    book = rulebook.compose(demo_with(rules=[combination]))
    (rule,) = [r for r in book.rules if r.id == "dose_talk"]
    assert rule.groups[0] == tuple(rulebook.shipped()["lists"]["dose"]["phrases"])
    with pytest.raises(ConfigError) as error:
        rulebook.checked(
            demo_with(rules=[{**combination, "all_of": ["no_list", ["x"]]}]), "demo.yaml"
        )
    assert error.value.problems[0][0] == "complaints.rules[0].all_of[0]"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"urgency": "critical", "phrases": ["a"], "all_of": [["a"], ["b"]]}, "not both"),
        ({"urgency": "critical", "all_of": [["a"]]}, "two groups"),
        ({"urgency": "critical"}, "not both"),
    ],
)
def test_bad_rule_shapes_are_refused(rule: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as error:
        demo_with(rules=[rule])
    assert any(words in problem for _, problem in error.value.problems)


def test_synth_writes_the_merged_rules_into_the_config_layer(tmp_path: Path) -> None:
    hospital = demo_with(disable_rules=["critical_falls"])
    layer = write_config_layer(hospital, tmp_path)
    written = layer / "hospital" / "rules.json"
    book = rulebook.Rulebook.from_json(written.read_text(encoding="utf-8"))
    assert book.hospital_id == hospital.hospital_id
    assert "critical_falls" not in book.ids()
    assert book == rulebook.compose(hospital)
    assert json.loads(written.read_text(encoding="utf-8"))["rules"][0]["origin"] == "hospital"


def test_functions_read_the_layer_json_not_the_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hospital = demo_with()
    book = rulebook.compose(hospital)
    trimmed = rulebook.Rulebook(
        book.hospital_id,
        book.markers,
        book.after_treatment,
        tuple(r for r in book.rules if r.id != "critical_self_harm"),
    )
    path = tmp_path / "rules.json"
    path.write_text(trimmed.to_json(), encoding="utf-8")
    monkeypatch.setenv(rulebook.RULES_PATH_ENV, str(path))
    assert "critical_self_harm" not in rulebook.for_hospital(hospital).ids()
    other = hospital.model_copy(update={"hospital_id": "another"})
    assert "critical_self_harm" in rulebook.for_hospital(other).ids()  # not its layer: composed


def test_validate_reports_a_bad_disabled_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DEMO.read_text(encoding="utf-8").replace(
        "complaints:\n", "complaints:\n  disable_rules: [no_such_rule]\n", 1
    )
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    assert "complaints.disable_rules[0]: no shipped rule 'no_such_rule'" in capsys.readouterr().err
