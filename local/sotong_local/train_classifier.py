"""Train the learned complaint model and write its weights (`make train-classifier`).

    python -m sotong_local.train_classifier [--data DIR] [--corrections FILE ...] [--out FILE]

Reads every `train_*.jsonl` in DIR (and the older labelled sets beside it, which were tuned on),
plus exported staff corrections. The fresh held-out set (`heldout.jsonl`) is never read here.
One text in five (by a hash of the text, so the split is stable as data grows) is the
validation split: the thresholds in the weights file are chosen on it, for the rules and the
model together. The final weights are trained on everything but the held-out set.
Needs scikit-learn (requirements/train.txt); the functions score the JSON with the standard
library (`sotong.complaints.learned`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sotong.complaints.combined import CombinedClassifier, said
from sotong.complaints.learned import WEIGHTS_PATH, LinearModel, features
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.config import load_hospital_file
from sotong.config.schema import DEFAULT_CATEGORIES, KINDS, URGENCIES
from sotong_local.evaluation import LabelledItem, evaluate, read_labelled

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "classifier"
OLDER = [ROOT / "tests" / "data" / name for name in ("complaints_labelled.jsonl",)]
OLDER += [ROOT / "tests" / "data" / f"complaints_heldout{s}.jsonl" for s in ("", "_2")]
HELDOUT_NAME = "heldout.jsonl"
DEMO = ROOT / "hospitals" / "demo.yaml"
MAX_FEATURES = 9000
SIGNAL = 0.15  # the value of a rule's signal beside the n-grams' unit-length vector
C = 8.0
FOLDED = {"parking": "facility"}  # hospital-specific categories in the older sets
CRITICAL_FLOOR = 0.2  # never raise to critical on less than this
FALSE_ALARMS = 0.05  # of non-critical validation items: the most raised to critical


@dataclass(frozen=True)
class Example:
    text: str
    kind: str
    category: str
    urgency: str


def _text_analyzer(document: tuple[str, tuple[str, ...]]) -> list[str]:
    return [gram for gram, count in features(document[0]).items() for _ in range(count)]


def _signal_analyzer(document: tuple[str, tuple[str, ...]]) -> list[str]:
    return list(document[1])


def transform(vectorizers: Any, documents: Sequence[tuple[str, tuple[str, ...]]]) -> Any:
    """The model's input: the text's tf-idf n-grams (L2-normalised), then the rules' signals
    (1 each, beside the norm, so a short text's signal weighs as much as a long one's)."""
    from scipy.sparse import hstack  # type: ignore[import-untyped]

    text, said = vectorizers
    return hstack([text.transform(documents), said.transform(documents) * SIGNAL]).tocsr()


def is_validation(text: str) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 5 == 0


def read_examples(paths: Sequence[Path]) -> list[Example]:
    categories = [*DEFAULT_CATEGORIES, *FOLDED]
    seen: set[str] = set()
    out = []
    for path in paths:
        if path.name == HELDOUT_NAME:
            raise SystemExit(f"{path}: the held-out set is never trained on")
        for item in read_labelled(path, categories):
            key = " ".join(item.text.split())
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Example(
                    item.text, item.kind, FOLDED.get(item.category, item.category), item.urgency
                )
            )
    return out


def _fit(
    texts: list[tuple[str, tuple[str, ...]]],
    labels: dict[str, list[str]],
    vocabulary: Sequence[str] | None,
) -> Any:
    from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
        CountVectorizer,
        TfidfVectorizer,
    )
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    text = TfidfVectorizer(
        analyzer=_text_analyzer,
        sublinear_tf=True,
        min_df=2 if vocabulary is None else 1,
        vocabulary=vocabulary,
    ).fit(texts)
    said = CountVectorizer(analyzer=_signal_analyzer, binary=True, lowercase=False).fit(texts)
    vectorizer = (text, said)
    matrix = transform(vectorizer, texts)
    heads = {}
    for name, y in labels.items():
        model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
        model.fit(matrix, y)
        heads[name] = model
    return vectorizer, heads


def train(examples: list[Example], rules: RuleClassifier) -> dict[str, Any]:
    """Weights as the JSON the functions load (thresholds still to be set)."""
    import numpy as np

    texts = [(e.text, said(rules.classify(e.text))) for e in examples]
    labels = {
        "kind": [e.kind for e in examples],
        "category": [e.category for e in examples],
        "urgency": [e.urgency for e in examples],
    }
    vectorizer, heads = _fit(texts, labels, None)
    # Keep the n-grams that weigh most in any head, then train again on those alone, so the
    # shipped vectors are normalised exactly as in training.
    grams = len(vectorizer[0].vocabulary_)
    strength = np.zeros(grams)
    for model in heads.values():
        strength = np.maximum(strength, np.abs(model.coef_[:, :grams]).max(axis=0))
    names = vectorizer[0].get_feature_names_out()
    keep = sorted(names[i] for i in np.argsort(-strength)[:MAX_FEATURES])
    return export(*_fit(texts, labels, keep))


def export(vectorizer: Any, heads: dict[str, Any]) -> dict[str, Any]:
    """Fitted vectorizers and heads as the weights JSON (`sotong.complaints.learned`)."""
    import numpy as np

    text, said = vectorizer
    out: dict[str, Any] = {
        "vocabulary": [str(g) for g in text.get_feature_names_out()],
        "idf": [round(float(x), 5) for x in text.idf_],
        "signals": [str(s) for s in said.get_feature_names_out()],
        "signal_value": SIGNAL,
        "heads": {},
    }
    for name, model in heads.items():
        classes = [str(c) for c in model.classes_]
        coef = model.coef_
        if len(classes) == 2:  # scikit-learn keeps one row for two classes
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            bias = [-model.intercept_[0] / 2, model.intercept_[0] / 2]
        else:
            bias = list(model.intercept_)
        out["heads"][name] = {
            "classes": classes,
            "bias": [round(float(b), 5) for b in bias],
            # feature-major: feature i's weights are [i * classes, (i + 1) * classes)
            "weights": [round(float(w), 4) for w in np.asarray(coef).T.reshape(-1)],
        }
    return out


def choose_thresholds(
    weights: dict[str, Any], rules: RuleClassifier, validation: list[Example]
) -> dict[str, float]:
    """The thresholds for the rules and the model together, on the validation split."""
    weights = {**weights, "thresholds": {"critical": 2, "high": 2, "category": 2, "kind": 2}}
    model = LinearModel(weights)
    scored = []
    for e in validation:
        by_rules = rules.classify(e.text)
        scored.append((e, by_rules, model.predict(e.text, said(by_rules))))
    # Spend the false-alarm budget on recall: the lowest threshold at which the rules and the
    # model together raise at most FALSE_ALARMS of the non-critical items to critical.
    quiet = sum(1 for e, _, _ in scored if e.urgency != "critical")
    raised_by_rules = sum(
        1 for e, r, _ in scored if e.urgency != "critical" and r.urgency == "critical"
    )
    budget = int(quiet * FALSE_ALARMS)
    candidates = sorted(
        {p.urgency.get("critical", 0.0) for e, r, p in scored if r.urgency != "critical"}
    )
    critical = 1.0
    for threshold in reversed(candidates):
        alarms = raised_by_rules + sum(
            1
            for e, r, p in scored
            if e.urgency != "critical"
            and r.urgency != "critical"
            and p.urgency.get("critical", 0.0) >= threshold
        )
        if alarms > budget:
            break
        critical = threshold
    critical = max(critical, CRITICAL_FLOOR)

    def accuracy(field: str, threshold: float, high: float = 2.0) -> float:
        combined = CombinedClassifier(
            rules,
            LinearModel(
                {
                    **weights,
                    "thresholds": {
                        "critical": critical,
                        "high": high,
                        "category": threshold if field == "category" else 2,
                        "kind": threshold if field == "kind" else 2,
                    },
                }
            ),
        )
        right = 0
        for e, r, p in scored:
            got = combined.combine(e.text, r, p)
            right += getattr(got, field) == getattr(e, field)
        return right / len(scored)

    grid = [x / 20 for x in range(0, 21)]
    category = max(grid, key=lambda t: (accuracy("category", t), -t))
    kind = max(grid, key=lambda t: (accuracy("kind", t), -t))
    # the model raises to high only when high or critical is the likelier reading
    high = max([*grid[10:], 2.0], key=lambda t: (accuracy("urgency", 2.0, t), t))
    return {"critical": round(critical, 4), "high": high, "category": category, "kind": kind}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sotong_local.train_classifier")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--corrections", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args(argv)
    paths = [*sorted(args.data.glob("train_*.jsonl")), *OLDER, *args.corrections]
    examples = read_examples(paths)
    train_split = [e for e in examples if not is_validation(e.text)]
    validation = [e for e in examples if is_validation(e.text)]
    rules = RuleClassifier(load_hospital_file(DEMO))
    first = train(train_split, rules)
    thresholds = choose_thresholds(first, rules, validation)
    # the honest validation figures: a model that never saw the validation split
    unseen = CombinedClassifier(rules, LinearModel({**first, "thresholds": thresholds}))
    figures = evaluate(
        unseen, [LabelledItem(e.text, e.kind, e.category, e.urgency, 0) for e in validation]
    ).summary()
    weights = train(examples, rules)
    weights["thresholds"] = thresholds
    weights["trained_on"] = {
        "items": len(examples),
        "validation": len(validation),
        "validation_figures": figures,
        "files": [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name for p in paths],
        "at": datetime.now(UTC).date().isoformat(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(weights, ensure_ascii=False, separators=(",", ":")) + "\n")
    size = args.out.stat().st_size
    print(
        f"{len(examples)} items ({len(validation)} validation), {len(weights['vocabulary'])} "
        f"n-grams, {size / 1024:.0f} KiB -> {args.out}; thresholds {thresholds}; on the "
        f"validation split before it was trained on: {figures}",
        file=sys.stderr,
    )
    assert set(KINDS) >= set(weights["heads"]["kind"]["classes"])
    assert set(URGENCIES) >= set(weights["heads"]["urgency"]["classes"])
    return 0


def validation_items(data: Path = DATA) -> list[LabelledItem]:
    """The validation split as labelled items, for `sotong classify --evaluate`-style checks."""
    paths = [*sorted(data.glob("train_*.jsonl")), *OLDER]
    return [
        LabelledItem(e.text, e.kind, e.category, e.urgency, n)
        for n, e in enumerate(read_examples(paths), start=1)
        if is_validation(e.text)
    ]


if __name__ == "__main__":
    raise SystemExit(main())
