"""Which classifier the functions use: `classifier_for(hospital)`, built on first use from what
SOTONG_CLASSIFIER names (the rules in `rule_classifier`, the learned model in `combined`, Bedrock
in `bedrock`). The classifiers never import this module, so none of them imports another's
choice."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sotong.complaints.classification import Classification, Classifier
    from sotong.config.schema import HospitalConfig

CLASSIFIER_ENV = "SOTONG_CLASSIFIER"
BEDROCK_MODEL_ENV = "SOTONG_BEDROCK_MODEL_ID"


class LazyClassifier:
    """Builds the real classifier on first use: compiling the rules costs ~170 ms, which functions
    that rarely classify (staff actions, SLA sweeps) should not pay on every cold start."""

    def __init__(
        self,
        hospital: HospitalConfig,
        build: Callable[[HospitalConfig], Classifier] | None = None,
    ) -> None:
        self._hospital = hospital
        self._build = build or build_classifier
        self._built: Classifier | None = None

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        if self._built is None:
            self._built = self._build(self._hospital)
        return self._built.classify(text, category_hint)


def classifier_for(hospital: HospitalConfig) -> Classifier:
    """The classifier the functions use, built on first use."""
    return LazyClassifier(hospital)


def build_classifier(hospital: HospitalConfig) -> Classifier:
    """What SOTONG_CLASSIFIER names: `model` (the default: the rules and the learned model
    together, when the weights ship), `rules` alone, or `bedrock` (Bedrock's opinion over the
    rules and the model, which may only raise the urgency)."""
    from sotong.complaints import learned
    from sotong.complaints.rule_classifier import RuleClassifier

    choice = os.environ.get(CLASSIFIER_ENV, "model").strip().lower()
    rules = RuleClassifier(hospital)
    base: Classifier = rules
    if choice != "rules" and learned.available():
        from sotong.complaints.combined import CombinedClassifier

        base = CombinedClassifier(rules, learned.load())
    if choice == "bedrock":
        from sotong.complaints.bedrock import DEFAULT_MODEL_ID, BedrockClassifier

        return BedrockClassifier(os.environ.get(BEDROCK_MODEL_ENV) or DEFAULT_MODEL_ID, rules, base)
    return base
