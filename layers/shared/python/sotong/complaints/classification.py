"""What a classifier says about a complaint, and the interface every classifier offers (the rules,
the rules with the learned model, Bedrock): the types the complaint desk and the classifiers
share, so none of them imports another to name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SEVERITY = {"normal": 0, "high": 1, "critical": 2}


@dataclass(frozen=True)
class Classification:
    """What a classifier says about a complaint: kind, category and urgency, and why."""

    kind: str  # complaint | suggestion | compliment
    category: str  # one of hospital.complaints.categories
    urgency: str  # critical | high | normal
    matched: tuple[str, ...]  # the phrases that decided it, for staff to see why
    classifier: str  # "rules", "rules+model" or "bedrock"
    rules: tuple[str, ...] = ()  # ids of the rules whose phrases decided it


class Classifier(Protocol):
    def classify(self, text: str, category_hint: str | None = None) -> Classification: ...
