"""The console's SLA countdown and inbox order (`sotong/web/console/ui.js`), run by Node (which
the CDK needs anyway): which deadline runs, overdue first, paused and finished clocks."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

UI = Path(str(resources.files("sotong.web.console").joinpath("ui.js")))
NOW = "2026-12-01T10:00:00Z"

SCRIPT = """
const ui = await import(process.argv[1]);
const now = Date.parse(process.argv[2]);
const items = JSON.parse(process.argv[3]);
const out = {
  sla: Object.fromEntries(items.map((i) => [i.id, ui.slaOf(i, now)])),
  order: ui.overdueFirst(items, now).map((i) => i.id),
};
console.log(JSON.stringify(out, (k, v) => (v === Infinity ? 'inf' : v)));
"""

ITEMS = [
    # received: the acknowledgement clock runs
    {"id": "due-soon", "status": "received", "ack_due": "2026-12-01T10:30:00Z",
     "resolve_due": "2026-12-08T10:00:00Z", "created_at": "2026-12-01T09:30:00Z"},
    # acknowledged: the resolution clock runs, two hours late
    {"id": "late-2h", "status": "in_progress", "ack_due": "2026-11-30T10:00:00Z",
     "resolve_due": "2026-12-01T08:00:00Z", "created_at": "2026-11-29T10:00:00Z"},
    {"id": "late-10m", "status": "received", "ack_due": "2026-12-01T09:50:00Z",
     "resolve_due": "2026-12-02T09:50:00Z", "created_at": "2026-12-01T08:50:00Z"},
    {"id": "paused", "status": "awaiting_patient", "ack_due": "2026-11-01T00:00:00Z",
     "resolve_due": "2026-11-02T00:00:00Z", "created_at": "2026-10-31T00:00:00Z"},
    {"id": "later", "status": "assigned", "ack_due": "2026-12-01T09:00:00Z",
     "resolve_due": "2026-12-03T12:00:00Z", "created_at": "2026-11-30T12:00:00Z"},
]  # fmt: skip


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed (the CDK needs it too)", pytrace=False)
    answer = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, UI.as_uri(), NOW, json.dumps(ITEMS)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    parsed: dict[str, object] = json.loads(answer.stdout)
    return parsed


def test_overdue_first_the_longest_late_on_top_paused_last(result: dict[str, object]) -> None:
    assert result["order"] == ["late-2h", "late-10m", "due-soon", "later", "paused"]


def test_the_clock_that_runs_and_its_words(result: dict[str, object]) -> None:
    sla = result["sla"]
    assert isinstance(sla, dict)
    assert sla["due-soon"]["text"] == "확인 기한까지 30분"
    assert sla["due-soon"]["soon"] is True
    assert sla["late-2h"]["overdue"] is True
    assert sla["late-2h"]["text"] == "처리 기한 2시간 0분 지남"
    assert sla["late-10m"]["text"] == "확인 기한 10분 지남"
    assert sla["later"]["text"] == "처리 기한까지 2일 2시간"
    assert sla["paused"]["paused"] is True
    assert sla["paused"]["overdue"] is False
