"""The learned complaint model: linear weights over character n-grams, scored on the stdlib.

Trained offline (`make train-classifier`, scikit-learn, see docs/tune-the-classifier.md) on the
labelled corpus in tests/data/classifier/; the weights ship as JSON beside this module. The
features are computed here and nowhere else, so training and scoring cannot drift apart.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_PATH = Path(__file__).parent / "weights" / "model.json"
GRAM_SIZES = (2, 3, 4)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_HANGUL_FIRST, _HANGUL_LAST, _FINALS, _FINAL_SS = 0xAC00, 0xD7A3, 28, 20
_TYPOS = {
    code: code - 1
    for code in range(_HANGUL_FIRST, _HANGUL_LAST + 1)
    if (code - _HANGUL_FIRST) % _FINALS == _FINAL_SS
}


def signals(rules: Iterable[str], urgency: str, category: str) -> tuple[str, ...]:
    """What the rules said, as features beside the n-grams ('§' never occurs in an n-gram)."""
    return (*(f"§rule:{r}" for r in rules), f"§urgency:{urgency}", f"§category:{category}")


def features(text: str) -> Counter[str]:
    """Character n-grams of the text with spacing and the ㅆ/ㅅ slip folded away.

    Spaces are dropped (Korean spacing is free: '대기시간', '대기 시간'), runs of the same
    character collapse to two ('ㅠㅠㅠㅠ', '!!!!'), and digits become 0.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower().translate(_TYPOS)
    chars: list[str] = []
    for char in text:
        if char.isspace():
            continue
        char = "0" if char.isdigit() else char
        if len(chars) >= 2 and chars[-1] == char and chars[-2] == char:
            continue
        chars.append(char)
    compact = "^" + "".join(chars) + "$"
    grams: Counter[str] = Counter()
    for size in GRAM_SIZES:
        for start in range(len(compact) - size + 1):
            grams[compact[start : start + size]] += 1
    return grams


@dataclass(frozen=True)
class Head:
    """One softmax over classes: bias per class, weights per feature and class."""

    classes: tuple[str, ...]
    bias: tuple[float, ...]
    weights: list[float]  # feature-major: feature i's weights at [i * n, (i + 1) * n)

    def row(self, index: int) -> list[float]:
        n = len(self.classes)
        return self.weights[index * n : (index + 1) * n]

    def probabilities(self, vector: dict[int, float]) -> dict[str, float]:
        scores = list(self.bias)
        n = len(scores)
        weights = self.weights
        for index, value in vector.items():
            base = index * n
            for c in range(n):
                scores[c] += weights[base + c] * value
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return {name: e / total for name, e in zip(self.classes, exps, strict=True)}


@dataclass(frozen=True)
class Prediction:
    """The learned model's probabilities for a complaint's kind, category and urgency."""

    kind: dict[str, float]
    category: dict[str, float]
    urgency: dict[str, float]

    @staticmethod
    def best(probabilities: dict[str, float]) -> tuple[str, float]:
        name = max(probabilities, key=lambda k: probabilities[k])
        return name, probabilities[name]


@dataclass(frozen=True)
class Thresholds:
    """Chosen on the validation split at training (see the trainer)."""

    critical: float  # P(critical) from which the model raises a complaint to critical
    high: float  # P(high) + P(critical) from which the model raises a normal one to high
    category: float  # the model's category confidence from which it beats the rules'
    kind: float  # likewise for the kind


class LinearModel:
    def __init__(self, data: dict[str, object]) -> None:
        vocabulary = data["vocabulary"]
        idf = data["idf"]
        assert isinstance(vocabulary, list)
        assert isinstance(idf, list)
        self.index = {gram: i for i, gram in enumerate(vocabulary)}
        self.idf = [float(x) for x in idf]
        said = data.get("signals") or []
        assert isinstance(said, list)
        self.signal_index = {name: len(vocabulary) + i for i, name in enumerate(said)}
        value = data.get("signal_value", 1.0)
        assert isinstance(value, int | float)
        self.signal_value = float(value)
        heads = data["heads"]
        assert isinstance(heads, dict)
        self.heads = {name: self._head(spec) for name, spec in heads.items()}
        thresholds = data["thresholds"]
        assert isinstance(thresholds, dict)
        self.thresholds = Thresholds(**thresholds)
        self.trained_on = data.get("trained_on")

    @staticmethod
    def _head(spec: dict[str, object]) -> Head:
        classes, bias, weights = spec["classes"], spec["bias"], spec["weights"]
        assert isinstance(classes, list)
        assert isinstance(bias, list)
        assert isinstance(weights, list)
        return Head(tuple(classes), tuple(float(b) for b in bias), weights)

    def vector(self, text: str, said: Iterable[str] = ()) -> dict[int, float]:
        """Sublinear tf-idf of the n-grams, L2-normalised, over the vocabulary (unknown n-grams
        count nothing); then each known signal of the rules, `signal_value` beside the norm."""
        out: dict[int, float] = {}
        for gram, count in features(text).items():
            index = self.index.get(gram)
            if index is not None:
                out[index] = (1.0 + math.log(count)) * self.idf[index]
        norm = math.sqrt(sum(v * v for v in out.values()))
        if norm:
            out = {i: v / norm for i, v in out.items()}
        for name in said:
            if (index := self.signal_index.get(name)) is not None:
                out[index] = self.signal_value
        return out

    def reasons(
        self, text: str, head: str, name: str, count: int = 3, said: Iterable[str] = ()
    ) -> list[str]:
        """The n-grams that pushed most towards class `name` of `head`, for staff to see."""
        spec = self.heads[head]
        c = spec.classes.index(name)
        vocabulary = self._vocabulary()
        pushed = [
            (value * weight, vocabulary[index])
            for index, value in self.vector(text, said).items()
            if (weight := spec.row(index)[c]) > 0
        ]
        shown = [gram.strip("^$") for _, gram in sorted(pushed, reverse=True)]
        return [g for g in shown if not g.startswith("§")][:count]

    def _vocabulary(self) -> list[str]:
        if not hasattr(self, "_grams"):
            self._grams = [
                *sorted(self.index, key=self.index.__getitem__),
                *sorted(self.signal_index, key=self.signal_index.__getitem__),
            ]
        return self._grams

    def predict(self, text: str, said: Iterable[str] = ()) -> Prediction:
        vector = self.vector(text, said)
        return Prediction(
            kind=self.heads["kind"].probabilities(vector),
            category=self.heads["category"].probabilities(vector),
            urgency=self.heads["urgency"].probabilities(vector),
        )


@lru_cache(maxsize=2)
def load(path: str | None = None) -> LinearModel:
    """The shipped weights (read once per process)."""
    file = Path(path) if path else WEIGHTS_PATH
    return LinearModel(json.loads(file.read_text(encoding="utf-8")))


def available(path: str | None = None) -> bool:
    return (Path(path) if path else WEIGHTS_PATH).is_file()
