"""Classification at intake: milliseconds per complaint, rules alone and rules with the model, and
what building each costs once per process (compiling the rules, loading the weights).

The texts are the training corpus's (every length and voice). The target is <= 5 ms per
complaint with the model; the build happens on the first classification, not at init.
"""

from __future__ import annotations

import statistics
import time

from bench.core import Options, Row, percentile, suite, summary

SUITE = "classifier"


@suite(SUITE)
def run(options: Options) -> list[Row]:
    from sotong.complaints import learned
    from sotong.complaints.combined import CombinedClassifier
    from sotong.complaints.rule_classifier import RuleClassifier
    from sotong.config import load_hospital_file
    from sotong_local.train_classifier import DATA, DEMO, read_examples

    hospital = load_hospital_file(DEMO)
    texts = [e.text for e in read_examples(sorted(DATA.glob("train_*.jsonl")))]
    started = time.perf_counter()
    rules = RuleClassifier(hospital)
    compile_ms = (time.perf_counter() - started) * 1000
    learned.load.cache_clear()
    started = time.perf_counter()
    model = learned.load()
    load_ms = (time.perf_counter() - started) * 1000
    combined = CombinedClassifier(rules, model)
    rows = [
        Row(SUITE, "build: compile the rules", compile_ms, "ms", "once per process"),
        Row(
            SUITE,
            "build: load the model weights",
            load_ms,
            "ms",
            f"once per process; {learned.WEIGHTS_PATH.stat().st_size / 1024:.0f} KiB JSON, "
            f"{len(model.index):,} n-grams",
        ),
    ]
    for name, classifier in (("rules", rules), ("rules+model", combined)):
        per_text = []
        for _ in range(max(1, options.runs // 3)):
            for text in texts:
                started = time.perf_counter()
                classifier.classify(text)
                per_text.append((time.perf_counter() - started) * 1000)
        rows.append(
            Row(
                SUITE,
                f"classify: {name}",
                statistics.median(per_text),
                "ms/complaint",
                f"median of {len(per_text):,}; p99 {percentile(per_text, 0.99):.2f} ms, "
                f"max {max(per_text):.2f} ms (target <= 5 ms)",
                summary(per_text),
            )
        )
    return rows
