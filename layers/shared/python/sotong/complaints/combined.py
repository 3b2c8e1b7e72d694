"""The rules and the learned model together: the model may raise urgency, never lower it.

- Urgency: the rules' urgency, raised to critical when the model's P(critical) reaches its
  threshold, or from normal to high when P(high) + P(critical) reaches its threshold. Nothing
  lowers a rule's critical.
- Category (the patient's own pick weighs as a prior): a critical complaint is safety or
  privacy (the rules' own when they found the critical signal, else the likelier of the two by
  the model). Otherwise the model's category when it is
  sure enough; else the rules' (which include a hospital's own rules and categories and the
  patient's pick); else the model's best guess.
- Kind: the model's when it is sure enough, else the rules'.
Staff see why: the rules' phrases, and for a model decision the n-grams that weighed most.
"""

from __future__ import annotations

from dataclasses import dataclass

from sotong.complaints.classification import Classification
from sotong.complaints.learned import LinearModel, Prediction, signals
from sotong.complaints.rule_classifier import RuleClassifier

CRITICAL_CATEGORIES = ("safety", "privacy")
URGENCY_LABEL = {"critical": "긴급", "high": "높음"}
MIN_SYLLABLES = 2
HINT_BOOST = 4.0  # the category the patient picked: a prior, not a verdict


def said(by_rules: Classification) -> tuple[str, ...]:
    return signals(by_rules.rules, by_rules.urgency, by_rules.category)


@dataclass
class CombinedClassifier:
    """The rules and the learned model together: the model may raise urgency, never lower it."""

    rules: RuleClassifier
    model: LinearModel
    name: str = "rules+model"

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        by_rules = self.rules.classify(text, category_hint)
        if sum(1 for char in text if "가" <= char <= "힣") < MIN_SYLLABLES:
            return by_rules  # no Korean words: nothing the model has learnt to read
        return self.combine(text, by_rules, self.model.predict(text, said(by_rules)), category_hint)

    def combine(
        self, text: str, by_rules: Classification, p: Prediction, hint: str | None = None
    ) -> Classification:
        limits = self.model.thresholds
        matched = list(by_rules.matched)
        urgency = by_rules.urgency
        critical = p.urgency.get("critical", 0.0)
        raised = None
        if urgency != "critical" and critical >= limits.critical:
            urgency = raised = "critical"
        elif urgency == "normal" and critical + p.urgency.get("high", 0.0) >= limits.high:
            urgency = raised = "high"
        if raised:
            grams = self.model.reasons(text, "urgency", raised, said=said(by_rules))
            matched.append(f"모델({URGENCY_LABEL[raised]} {critical:.2f}): {', '.join(grams)}")

        known = set(self.rules.categories)
        weighed = {c: v * (HINT_BOOST if c == hint else 1.0) for c, v in p.category.items()}
        model_category, confidence = Prediction.best(
            {c: v for c, v in weighed.items() if c in known} or {"other": 0.0}
        )
        if urgency == "critical":
            if by_rules.urgency == "critical" and by_rules.category in CRITICAL_CATEGORIES:
                category = by_rules.category
            else:
                category = max(CRITICAL_CATEGORIES, key=lambda c: p.category.get(c, 0.0))
        elif by_rules.category not in p.category:  # a hospital's own category: its rules decide
            category = by_rules.category
        elif confidence >= limits.category or by_rules.category == "other":
            category = model_category
        else:
            category = by_rules.category

        model_kind, kind_confidence = Prediction.best(p.kind)
        kind = model_kind if kind_confidence >= limits.kind else by_rules.kind
        return Classification(
            kind=kind,
            category=category,
            urgency=urgency,
            matched=tuple(matched),
            classifier=self.name,
            rules=by_rules.rules,
        )
