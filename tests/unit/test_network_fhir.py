"""The care network's FHIR R4 exports validate against `fhir.resources` (R4B, test-time only):
every demo partner as a `HealthcareService`, and a referral's `ServiceRequest` + `Task` in each
state of the loop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from sotong.config import load_hospital
from sotong.network import fhir
from sotong.network.records import Referral
from sotong.network.service import NetworkDesk

NOW = datetime(2027, 2, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def desk() -> NetworkDesk:
    return NetworkDesk(load_hospital())


def test_every_partner_is_a_valid_healthcare_service(desk: NetworkDesk) -> None:
    for partner in desk.partners:
        resource = fhir.healthcare_service(partner, desk.hospital, date(2027, 1, 1))
        service = HealthcareService.model_validate(resource)
        assert service.telecom
        assert service.telecom[0].value == partner.phone
        assert service.availableTime
    saebom = next(p for p in desk.partners if p.id == "saebom-peds")
    closed = fhir.healthcare_service(saebom, desk.hospital, date(2027, 1, 1))
    # closed on 설날 2027 (Feb 6-9) and 추석 (Sep 14-16): each named, each a day
    days = {n["during"]["start"] for n in closed["notAvailable"]}
    assert {"2027-02-06", "2027-02-07", "2027-02-08", "2027-02-09", "2027-09-15"} <= days
    night = next(p for p in desk.partners if p.id == "sarang-night-peds")
    late = fhir.healthcare_service(night, desk.hospital, date(2027, 1, 1))
    assert "다음날 01:00" in late["availabilityExceptions"]
    always = next(p for p in desk.partners if p.id == "open24-pharmacy")
    assert fhir.healthcare_service(always, desk.hospital, date(2027, 1, 1))["availableTime"][0][
        "allDay"
    ]


def referral() -> Referral:
    return Referral(
        id="r0123456789abcdef",
        direction="to_partner",
        partner_id="hanbit-peds",
        urgency="emergent",
        reason="고열",
        child_name="김하준",
        guardian_name="박지은",
        guardian_phone="+821023456789",
        requested_at="2027-02-07T12:00:00.000000Z",
        requested_by="cs.kim",
    )


@pytest.mark.parametrize("path", ["completed", "rejected", "cancelled", "requested"])
def test_a_referral_is_a_service_request_and_its_task(desk: NetworkDesk, path: str) -> None:
    r = referral()
    partner = desk.partner(r.partner_id)
    if path == "completed":
        r = r.moved("accepted", by="k", side="hanbit-peds", at=NOW)
        r = r.moved(
            "accepted", by="k", side="hanbit-peds", at=NOW, scheduled_for=NOW + timedelta(hours=1)
        )
        r = r.moved("in-progress", by="k", side="hanbit-peds", at=NOW + timedelta(hours=1))
        r = r.moved("completed", by="k", side="hanbit-peds", at=NOW + timedelta(hours=2))
    elif path == "rejected":
        r = r.moved("rejected", by="k", side="hanbit-peds", at=NOW, note="인력 부족")
    elif path == "cancelled":
        r = r.moved("cancelled", by="cs.kim", side="hospital", at=NOW, note="보호자 요청")
    bundle = fhir.referral_bundle(r, desk.hospital, partner)
    Bundle.model_validate(bundle)
    request = ServiceRequest.model_validate(bundle["entry"][0]["resource"])
    task = Task.model_validate(bundle["entry"][1]["resource"])
    assert task.status == r.status
    assert request.priority == "stat"
    assert task.focus is not None
    assert task.focus.reference == f"ServiceRequest/{r.id}"
    assert task.owner is not None
    assert task.owner.display == "한빛소아청소년과의원"
    if path in ("rejected", "cancelled"):
        assert task.statusReason is not None
        assert request.status == "revoked"
    if path == "completed":
        assert task.output
        assert task.restriction is not None
