"""The classifier's figures per labelled set, and the committed baseline CI diffs them against.

    python -m sotong_local.classifier_baseline            # print figures and the diff
    python -m sotong_local.classifier_baseline --write    # after a deliberate change

A rules or model change that lowers critical recall on any set fails `make test`
(tests/unit/test_classifier_baseline.py); so does one that costs more than a little category or
kind accuracy, or raises more false critical alarms.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from sotong.complaints.classification import Classifier
from sotong.complaints.classify import build_classifier
from sotong.config import load_hospital_file
from sotong_local.evaluation import LabelledItem, evaluate, read_labelled
from sotong_local.train_classifier import DATA, DEMO, ROOT, validation_items

BASELINE = DATA / "metrics_baseline.json"
HELDOUT = DATA / "heldout.jsonl"
OLDER = {
    "older_labelled": ROOT / "tests" / "data" / "complaints_labelled.jsonl",
    "older_heldout": ROOT / "tests" / "data" / "complaints_heldout.jsonl",
    "older_heldout_2": ROOT / "tests" / "data" / "complaints_heldout_2.jsonl",
}
# How much a figure may move the wrong way before the build fails (critical recall: not at all).
SLACK = {
    "critical_recall": 0.0,
    "false_critical_rate": 0.01,
    "category_accuracy": 0.02,
    "kind_accuracy": 0.02,
    "urgency_accuracy": 0.02,
}
LOWER_IS_BETTER = {"false_critical_rate"}


def labelled_sets() -> dict[str, list[LabelledItem]]:
    hospital = load_hospital_file(DEMO)
    categories = list(hospital.complaints.categories)
    sets = {"validation": validation_items(), "heldout": read_labelled(HELDOUT, categories)}
    sets.update({name: read_labelled(path, categories) for name, path in OLDER.items()})
    return sets


def figures(classifier: Classifier | None = None) -> dict[str, dict[str, Any]]:
    classifier = classifier or build_classifier(load_hospital_file(DEMO))
    return {name: evaluate(classifier, items).summary() for name, items in labelled_sets().items()}


def regressions(now: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]]) -> list[str]:
    """Every figure that got worse than the baseline allows, as a line."""
    out = []
    for name, before in baseline.items():
        after = now.get(name)
        if after is None:
            out.append(f"{name}: the set is gone")
            continue
        for figure, slack in SLACK.items():
            old, new = before[figure], after[figure]
            worse = new - old if figure in LOWER_IS_BETTER else old - new
            if worse > slack + 1e-9:
                out.append(f"{name}: {figure} {old:.3f} -> {new:.3f}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sotong_local.classifier_baseline")
    parser.add_argument("--write", action="store_true", help="make these figures the baseline")
    args = parser.parse_args(argv)
    now = figures()
    for name, summary in now.items():
        print(f"{name:<16}" + "  ".join(f"{k} {v}" for k, v in summary.items()))
    if args.write:
        BASELINE.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"baseline written: {BASELINE.relative_to(ROOT)}")
        return 0
    if not BASELINE.is_file():
        print("no baseline yet: run with --write")
        return 1
    worse = regressions(now, json.loads(BASELINE.read_text(encoding="utf-8")))
    for line in worse:
        print(f"worse than the baseline: {line}")
    return 1 if worse else 0


if __name__ == "__main__":
    raise SystemExit(main())
