"""The optional Bedrock classifier, against botocore's Stubber: no network, rules as the net."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sotong.complaints.bedrock import BedrockClassifier, parse_answer
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.config import load_hospital_file

DEMO = Path(__file__).resolve().parents[2] / "hospitals" / "demo.yaml"
MODEL = "test-model"


@pytest.fixture(scope="module")
def rules() -> RuleClassifier:
    return RuleClassifier(load_hospital_file(DEMO))


@pytest.fixture
def client() -> Any:
    return boto3.client("bedrock-runtime", region_name="ap-northeast-2")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _reply(stubber: Stubber, text: str) -> None:
    stubber.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 300, "outputTokens": 30, "totalTokens": 330},
            "metrics": {"latencyMs": 420},
        },
        {
            "modelId": MODEL,
            "system": ANY,
            "messages": ANY,
            "inferenceConfig": {"maxTokens": 200, "temperature": 0},
        },
    )


def _answer(kind: str, category: str, urgency: str) -> str:
    return json.dumps(
        {"kind": kind, "category": category, "urgency": urgency, "reason": "이유"},
        ensure_ascii=False,
    )


def test_model_answer_is_used(rules: RuleClassifier, client: Any, stubber: Stubber) -> None:
    _reply(stubber, _answer("suggestion", "facility", "normal"))
    result = BedrockClassifier(MODEL, rules, client=client).classify("의자가 좀 더 있으면 해요")
    assert (result.kind, result.category, result.urgency) == ("suggestion", "facility", "normal")
    assert result.classifier == "bedrock"


def test_prompt_carries_text_categories_and_hint(
    rules: RuleClassifier, client: Any, stubber: Stubber
) -> None:
    sent: dict[str, Any] = {}
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: sent.update(params)
    )
    _reply(stubber, _answer("complaint", "parking", "normal"))
    BedrockClassifier(MODEL, rules, client=client).classify("차 댈 곳이 없어요", "parking")
    prompt = sent["messages"][0]["content"][0]["text"]
    assert "차 댈 곳이 없어요" in prompt
    assert "parking" in prompt
    system = sent["system"][0]["text"]
    assert "- parking: 주차" in system  # the hospital's own categories, with their labels
    assert "critical" in system


def test_critical_from_rules_is_never_downgraded(
    rules: RuleClassifier, client: Any, stubber: Stubber
) -> None:
    _reply(stubber, _answer("complaint", "staff_attitude", "normal"))
    text = "어머니가 다른 환자 약을 받아 드셨는데 직원이 불친절했어요"
    result = BedrockClassifier(MODEL, rules, client=client).classify(text)
    assert result.urgency == "critical"
    assert result.category == "safety"  # the critical signal keeps its own category
    assert result.classifier == "bedrock"
    assert "다른 환자 약을" in result.matched


def test_high_from_rules_is_not_lowered(
    rules: RuleClassifier, client: Any, stubber: Stubber
) -> None:
    _reply(stubber, _answer("complaint", "wait_time", "normal"))
    result = BedrockClassifier(MODEL, rules, client=client).classify("소송하겠습니다")
    assert result.urgency == "high"
    assert result.category == "wait_time"


def test_model_may_raise_urgency(rules: RuleClassifier, client: Any, stubber: Stubber) -> None:
    text = "아버지가 어지럽다며 식은땀을 흘리시는데 그냥 기다리라고만 했어요"
    _reply(stubber, _answer("complaint", "safety", "critical"))
    result = BedrockClassifier(MODEL, rules, client=client).classify(text)
    assert (result.category, result.urgency) == ("safety", "critical")


@pytest.mark.parametrize(
    "answer",
    [
        "잘 모르겠습니다",
        "{not json}",
        '{"kind": "complaint", "category": "nonsense", "urgency": "normal"}',
        '{"kind": "rant", "category": "billing", "urgency": "normal"}',
        '{"kind": "complaint", "category": "billing", "urgency": "urgent"}',
        "[1, 2]",
    ],
)
def test_unusable_answer_gives_the_rules_result(
    rules: RuleClassifier, client: Any, stubber: Stubber, answer: str
) -> None:
    _reply(stubber, answer)
    text = "진료비가 너무 비싸요"
    result = BedrockClassifier(MODEL, rules, client=client).classify(text)
    assert result == rules.classify(text)
    assert result.classifier == "rules"


@pytest.mark.parametrize(
    "code", ["ThrottlingException", "AccessDeniedException", "ValidationException"]
)
def test_service_error_gives_the_rules_result(
    rules: RuleClassifier, client: Any, stubber: Stubber, code: str
) -> None:
    stubber.add_client_error("converse", service_error_code=code, http_status_code=400)
    text = "어머니가 다른 환자 약을 받아 드셨어요"
    result = BedrockClassifier(MODEL, rules, client=client).classify(text)
    assert result == rules.classify(text)
    assert result.urgency == "critical"


def test_any_other_failure_gives_the_rules_result(rules: RuleClassifier) -> None:
    class Broken:
        def converse(self, **_: Any) -> Any:
            raise TimeoutError("read timed out")

    result = BedrockClassifier(MODEL, rules, client=Broken()).classify("대기시간이 길어요")
    assert (result.classifier, result.category) == ("rules", "wait_time")


def test_long_text_is_cut_for_the_model(
    rules: RuleClassifier, client: Any, stubber: Stubber
) -> None:
    sent: dict[str, Any] = {}
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: sent.update(params)
    )
    _reply(stubber, _answer("complaint", "other", "normal"))
    BedrockClassifier(MODEL, rules, client=client).classify("가" * 10_000)
    assert len(sent["messages"][0]["content"][0]["text"]) < 4100


def test_no_client_until_the_first_complaint(
    rules: RuleClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []

    def fake_client(name: str, **_: Any) -> Any:
        made.append(name)
        raise RuntimeError("no network in tests")

    monkeypatch.setattr(boto3, "client", fake_client)
    classifier = BedrockClassifier(MODEL, rules)
    assert made == []
    assert classifier.classify("대기시간이 길어요").classifier == "rules"
    assert made == ["bedrock-runtime"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            _answer("compliment", "staff_attitude", "normal"),
            ("compliment", "staff_attitude", "normal"),
        ),
        (
            '```json\n{"kind": "complaint", "category": "billing", "urgency": "high"}\n```',
            ("complaint", "billing", "high"),
        ),
        (
            '답변: {"kind": "suggestion", "category": "other", "urgency": "normal"} 입니다',
            ("suggestion", "other", "normal"),
        ),
        ("", None),
        ('{"kind": "complaint"}', None),
    ],
)
def test_parse_answer(answer: str, expected: tuple[str, str, str] | None) -> None:
    assert parse_answer(answer, ("billing", "other", "staff_attitude")) == expected
