"""The learned model: the functions' standard-library scorer agrees with scikit-learn, and the
rules and the model together only ever raise urgency."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sotong.complaints import learned
from sotong.complaints.classification import SEVERITY, Classification
from sotong.complaints.combined import CombinedClassifier, said
from sotong.complaints.learned import LinearModel, Prediction, features
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.config import HospitalConfig, load_hospital_file
from sotong_local import train_classifier as trainer

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hospitals" / "demo.yaml"


@pytest.fixture(scope="module")
def demo() -> HospitalConfig:
    return load_hospital_file(DEMO)


@pytest.fixture(scope="module")
def rules(demo: HospitalConfig) -> RuleClassifier:
    return RuleClassifier(demo)


@pytest.fixture(scope="module")
def combined(rules: RuleClassifier) -> CombinedClassifier:
    return CombinedClassifier(rules, learned.load())


@pytest.fixture(scope="module")
def examples() -> list[trainer.Example]:
    return trainer.read_examples(sorted(trainer.DATA.glob("train_*.jsonl")))


def test_features_ignore_spacing_typos_and_repeats() -> None:
    assert features("대기 시간이 너무 길어요") == features("대기시간이너무길어요")
    assert features("다쳤어요") == features("다쳣어요")
    assert features("아파요ㅠㅠㅠㅠㅠ") == features("아파요ㅠㅠ")
    assert features("3시간") == features("5시간")
    assert not any(gram.startswith("§") for gram in features("가나 §rule:x"[:2]))


def test_the_scorer_agrees_with_scikit_learn(
    rules: RuleClassifier, examples: list[trainer.Example]
) -> None:
    """Train a small model, export it as the functions load it, and compare probabilities."""
    train, check = examples[::3][:300], examples[1::7][:60]
    documents = [(e.text, said(rules.classify(e.text))) for e in train]
    labels = {name: [getattr(e, name) for e in train] for name in ("kind", "category", "urgency")}
    vectorizer, heads = trainer._fit(documents, labels, None)
    weights = trainer.export(vectorizer, heads)
    weights["thresholds"] = {"critical": 0.5, "high": 0.5, "category": 0.5, "kind": 0.5}
    model = LinearModel(json.loads(json.dumps(weights)))
    checked = [(e.text, said(rules.classify(e.text))) for e in check]
    matrix = trainer.transform(vectorizer, checked)
    for name, head in heads.items():
        expected = head.predict_proba(matrix)
        for row, (text, told) in enumerate(checked):
            got = getattr(model.predict(text, told), name)
            for column, label in enumerate(head.classes_):
                assert math.isclose(got[str(label)], expected[row, column], abs_tol=2e-3)


def test_the_shipped_weights_load_and_give_probabilities() -> None:
    model = learned.load()
    p = model.predict("임플란트 한 곳에서 피가 계속 나요")
    for distribution in (p.kind, p.category, p.urgency):
        assert math.isclose(sum(distribution.values()), 1.0, abs_tol=1e-9)
    assert set(p.urgency) == {"critical", "high", "normal"}
    assert 0 < model.thresholds.critical <= 1
    assert model.trained_on
    assert model.trained_on["items"] >= 1500


def test_nothing_lowers_a_rules_urgency(
    rules: RuleClassifier, combined: CombinedClassifier, examples: list[trainer.Example]
) -> None:
    for e in examples[::4]:
        by_rules, both = rules.classify(e.text), combined.classify(e.text)
        assert SEVERITY[both.urgency] >= SEVERITY[by_rules.urgency], e.text
        if by_rules.urgency == "critical":
            assert both.category == by_rules.category, e.text


def test_a_raise_by_the_model_says_why(rules: RuleClassifier) -> None:
    model = learned.load()
    forced = LinearModel(
        {
            **json.loads(learned.WEIGHTS_PATH.read_text(encoding="utf-8")),
            "thresholds": {"critical": 0.0, "high": 2, "category": 2, "kind": 2},
        }
    )
    result = CombinedClassifier(rules, forced).classify("치과 다녀온 뒤로 입이 잘 안 벌어져요")
    assert result.urgency == "critical"
    assert result.category in ("safety", "privacy")
    assert any(m.startswith("모델(긴급") for m in result.matched), result.matched
    assert result.classifier == "rules+model"
    assert model.thresholds.critical > 0  # the shipped threshold is not the forced one


def test_the_patients_pick_weighs_as_a_prior(combined: CombinedClassifier) -> None:
    text = "지난주 일로 문의드립니다"
    assert combined.classify(text, "billing").category == "billing"


def test_a_hospitals_own_category_is_decided_by_its_rules(combined: CombinedClassifier) -> None:
    result = combined.classify("주차 자리가 하나도 없어서 30분을 돌았어요")
    assert result.category == "parking"  # the demo hospital's own category and rule


def test_combine_keeps_a_rule_critical_whatever_the_model_says(
    combined: CombinedClassifier,
) -> None:
    by_rules = Classification("complaint", "safety", "critical", ("넘어지",), "rules", ("x",))
    calm = Prediction(
        kind={"complaint": 1.0},
        category={"wait_time": 1.0},
        urgency={"normal": 1.0, "high": 0.0, "critical": 0.0},
    )
    result = combined.combine("어머니가 넘어지셨어요", by_rules, calm)
    assert (result.urgency, result.category) == ("critical", "safety")
