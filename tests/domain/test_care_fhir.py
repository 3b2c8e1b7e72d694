"""The FHIR R4 export of a case (CarePlan + CareTeam + a Task per activity), validated with
`fhir.resources` (R4B), a test-time dependency the layer never imports."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from sotong import clock
from sotong.careplans.model import ActivityChange
from sotong.careplans.service import CarePlanDesk
from sotong.config import load_hospital
from tests.domain.test_care_plans import ADMIN, NOW, WELFARE, conference, open_case
from tests.fakes.careplans import InMemoryCarePlanRepository


def test_a_case_exports_as_a_valid_fhir_bundle() -> None:
    clock.fix(NOW)
    desk = CarePlanDesk(load_hospital(), InMemoryCarePlanRepository())
    cid = open_case(desk)
    desk.hold_conference(ADMIN, conference([cid]))
    meals = desk.agency_activities(WELFARE)["activities"][0]["id"]
    desk.change_activity(WELFARE, cid, meals, ActivityChange(status="accepted"))
    exported = desk.export(ADMIN, cid)
    clock.fix(None)
    # every resource valid R4 (R4B shares R4's CarePlan, CareTeam and Task)
    bundle = Bundle.model_validate_json(json.dumps(exported))
    assert len(bundle.entry or []) == len(exported["entry"])
    resources: list[dict[str, Any]] = [e["resource"] for e in exported["entry"]]
    kinds = [r["resourceType"] for r in resources]
    assert kinds.count("Task") == 5
    assert kinds.count("CarePlan") == 1
    assert kinds.count("CareTeam") == 1
    plan = next(r for r in resources if r["resourceType"] == "CarePlan")
    team = next(r for r in resources if r["resourceType"] == "CareTeam")
    tasks = [r for r in resources if r["resourceType"] == "Task"]
    assert plan["intent"] == "plan"
    assert plan["careTeam"] == [{"reference": f"CareTeam/{team['id']}"}]
    assert {a["reference"]["reference"] for a in plan["activity"]} == {
        f"Task/{t['id']}" for t in tasks
    }
    assert len(team["participant"]) == 6  # the five owners and the district, present
    statuses = {t["owner"]["reference"]: t["status"] for t in tasks}
    assert statuses["Organization/gangnam-welfare"] == "accepted"
    assert statuses["Organization/gangnam-housing"] == "requested"
    assert {t["restriction"]["period"]["end"] for t in tasks} >= {"2026-12-31"}
    assert all(t["basedOn"] == [{"reference": f"CarePlan/{cid}"}] for t in tasks)
    notes = [n["text"] for n in plan["note"]]
    assert any("복지관 식사배달" in n for n in notes)
    assert any(n.startswith("1개월 점검 2027-01-01") for n in notes)
