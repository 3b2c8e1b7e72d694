"""Measuring a classifier on a labelled set: `sotong classify --evaluate FILE`, `make
evaluate-classifier` (a tool, outside the shared layer: no Lambda ships it).

Per-class precision and recall for kind, category and urgency, confusion matrices, each rule's
hits and precision, and every critical complaint missed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotong.complaints.classification import Classification, Classifier
from sotong.config.schema import KINDS, URGENCIES

FIELDS = ("kind", "category", "urgency")


@dataclass(frozen=True)
class LabelledItem:
    text: str
    kind: str
    category: str
    urgency: str
    line: int


def read_labelled(path: str | os.PathLike[str], categories: Sequence[str]) -> list[LabelledItem]:
    """JSON lines {"text", "kind", "category", "urgency"}; lines starting with '#' are a header
    (say where the set comes from); a bad line raises, naming it."""
    items = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}:{number}: expected an object")
        for name, allowed in (("kind", KINDS), ("category", categories), ("urgency", URGENCIES)):
            if data.get(name) not in allowed:
                raise ValueError(
                    f"{path}:{number}: {name} must be one of {', '.join(allowed)}, "
                    f"not {data.get(name)!r}"
                )
        if not isinstance(data.get("text"), str) or not data["text"].strip():
            raise ValueError(f"{path}:{number}: text is missing")
        items.append(
            LabelledItem(data["text"], data["kind"], data["category"], data["urgency"], number)
        )
    return items


@dataclass
class Evaluation:
    items: int = 0
    # (field, labelled, classified) -> count
    pairs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    missed_critical: list[str] = field(default_factory=list)
    false_critical: list[str] = field(default_factory=list)
    rule_hits: Counter[str] = field(default_factory=Counter)
    rule_right: Counter[str] = field(default_factory=Counter)

    def _count(self, name: str, *, want: str | None = None, got: str | None = None) -> int:
        return sum(
            n
            for (f, w, g), n in self.pairs.items()
            if f == name and (want is None or w == want) and (got is None or g == got)
        )

    def accuracy(self, name: str) -> float:
        right = sum(n for (f, w, g), n in self.pairs.items() if f == name and w == g)
        return right / self.items if self.items else 1.0

    def precision(self, name: str, label: str) -> float:
        said = self._count(name, got=label)
        return self._count(name, want=label, got=label) / said if said else 1.0

    def recall(self, name: str, label: str) -> float:
        there = self._count(name, want=label)
        return self._count(name, want=label, got=label) / there if there else 1.0

    def labels(self, name: str) -> list[str]:
        seen = {w for f, w, _ in self.pairs if f == name} | {
            g for f, _, g in self.pairs if f == name
        }
        order = {"urgency": list(URGENCIES), "kind": list(KINDS)}.get(name, [])
        return sorted(seen, key=lambda x: (order.index(x) if x in order else len(order), x))

    # The figures CI keeps in its baseline.
    @property
    def kind_accuracy(self) -> float:
        return self.accuracy("kind")

    @property
    def category_accuracy(self) -> float:
        return self.accuracy("category")

    @property
    def urgency_accuracy(self) -> float:
        return self.accuracy("urgency")

    @property
    def critical_expected(self) -> int:
        return self._count("urgency", want="critical")

    @property
    def critical_found(self) -> int:
        return self._count("urgency", want="critical", got="critical")

    @property
    def critical_predicted(self) -> int:
        return self._count("urgency", got="critical")

    @property
    def critical_recall(self) -> float:
        return self.recall("urgency", "critical")

    @property
    def critical_precision(self) -> float:
        return self.precision("urgency", "critical")

    @property
    def false_critical_rate(self) -> float:
        quiet = self.items - self.critical_expected
        return len(self.false_critical) / quiet if quiet else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "critical": self.critical_expected,
            "critical_recall": round(self.critical_recall, 4),
            "false_critical_rate": round(self.false_critical_rate, 4),
            "category_accuracy": round(self.category_accuracy, 4),
            "kind_accuracy": round(self.kind_accuracy, 4),
            "urgency_accuracy": round(self.urgency_accuracy, 4),
        }

    def render(self, rules: bool = True) -> str:
        def ratio(label: str, value: float, part: int, whole: int) -> str:
            return f"{label + ':':<22}{value:.3f} ({part}/{whole})"

        quiet = self.items - self.critical_expected
        out = [
            f"{'items:':<22}{self.items}",
            *(
                ratio(
                    f"{name} accuracy",
                    self.accuracy(name),
                    round(self.accuracy(name) * self.items),
                    self.items,
                )
                for name in FIELDS
            ),
            ratio(
                "critical recall", self.critical_recall, self.critical_found, self.critical_expected
            ),
            ratio(
                "critical precision",
                self.critical_precision,
                self.critical_found,
                self.critical_predicted,
            ),
            ratio("false critical rate", self.false_critical_rate, len(self.false_critical), quiet),
        ]
        for name in FIELDS:
            labels = self.labels(name)
            out.append(f"{name}: precision / recall per class")
            for label in labels:
                out.append(
                    f"  {label:<16}{self.precision(name, label):.2f} / "
                    f"{self.recall(name, label):.2f}   ({self._count(name, want=label)} labelled)"
                )
            out.append(f"{name} confusion (rows labelled, columns classified):")
            width = max(6, *(len(x) for x in labels)) + 1
            out.append(" " * (width + 2) + "".join(f"{x[: width - 1]:>{width}}" for x in labels))
            for want in labels:
                cells = "".join(
                    f"{self._count(name, want=want, got=got):>{width}}" for got in labels
                )
                out.append(f"  {want:<{width}}{cells}")
        if rules and self.rule_hits:
            out.append("rules: hits, and how many of them agreed with the label")
            for rule_id, hits in sorted(self.rule_hits.items(), key=lambda kv: (-kv[1], kv[0])):
                right = self.rule_right[rule_id]
                out.append(f"  {rule_id:<40}{hits:>5} hits  precision {right / hits:.2f}")
        if self.missed_critical:
            out.append(f"missed critical ({len(self.missed_critical)}):")
            out += [f"  - {text}" for text in self.missed_critical]
        if self.false_critical:
            out.append(f"critical, labelled otherwise ({len(self.false_critical)}):")
            out += [f"  - {text}" for text in self.false_critical]
        return "\n".join(out)


def _agrees(says: Mapping[str, str | None], item: LabelledItem) -> bool:
    """A rule agrees with the label on what it decides: urgency first, else category, else kind."""
    for name in ("urgency", "category", "kind"):
        value = says.get(name)
        if value:
            return bool(getattr(item, name) == value)
    return False


def evaluate(
    classifier: Classifier,
    items: Iterable[LabelledItem],
    rules: Mapping[str, Mapping[str, str | None]] | None = None,
) -> Evaluation:
    """`rules`: what each rule id says (category, urgency, kind), for per-rule precision."""
    result = Evaluation()
    for item in items:
        got: Classification = classifier.classify(item.text)
        result.items += 1
        for name in FIELDS:
            result.pairs[(name, getattr(item, name), getattr(got, name))] += 1
        if item.urgency == "critical" and got.urgency != "critical":
            result.missed_critical.append(item.text)
        if got.urgency == "critical" and item.urgency != "critical":
            result.false_critical.append(item.text)
        for rule_id in got.rules:
            result.rule_hits[rule_id] += 1
            if rules is not None and rule_id in rules:
                result.rule_right[rule_id] += _agrees(rules[rule_id], item)
    return result
