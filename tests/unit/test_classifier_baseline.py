"""A rules or model change that lowers critical recall on any labelled set fails the build.

The committed baseline (`tests/data/classifier/metrics_baseline.json`) is written by
`make train-classifier` after a deliberate change; this test recomputes every figure and diffs.
"""

from __future__ import annotations

import json

from sotong_local import classifier_baseline as baseline


def test_no_figure_is_worse_than_the_committed_baseline() -> None:
    committed = json.loads(baseline.BASELINE.read_text(encoding="utf-8"))
    now = baseline.figures()
    assert (
        set(committed)
        == set(now)
        == {
            "validation",
            "heldout",
            "older_labelled",
            "older_heldout",
            "older_heldout_2",
        }
    )
    assert baseline.regressions(now, committed) == []


def test_a_lower_critical_recall_is_a_regression() -> None:
    before = {"heldout": {**dict.fromkeys(baseline.SLACK, 0.9), "false_critical_rate": 0.02}}
    after = {"heldout": {**before["heldout"], "critical_recall": 0.89}}
    assert baseline.regressions(after, before) == ["heldout: critical_recall 0.900 -> 0.890"]
    noisier = {"heldout": {**before["heldout"], "false_critical_rate": 0.04}}
    assert baseline.regressions(noisier, before) == ["heldout: false_critical_rate 0.020 -> 0.040"]
    assert baseline.regressions(before, before) == []
