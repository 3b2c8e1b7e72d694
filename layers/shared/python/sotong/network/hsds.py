"""The partner directory as Open Referral HSDS 3 JSON: the organizations of the hospital's
directory file, each with its services (schedules as RFC 5545 RRULE parts) and locations, as the
hospital reviewed them (fields Sotong does not read are passed through), for other directories
and 129/119 services to import. The public route `GET /network/directory` answers it."""

from __future__ import annotations

from typing import Any

from sotong.config.network import dump
from sotong.config.schema import HospitalConfig


def export(hospital: HospitalConfig) -> dict[str, Any]:
    """The directory, HSDS 3 shaped: `organizations[]` with `services[]` and `locations[]`."""
    network = hospital.network
    directory = network.hsds if network is not None else None
    if directory is None:
        return {"version": "3.0", "organizations": []}
    body = dump(directory)
    for organization in body["organizations"]:
        for service in organization.get("services", []):
            service.setdefault("organization_id", organization["id"])
            for schedule in service.get("schedules", []):
                schedule.setdefault("service_id", service["id"])
                schedule.setdefault("timezone", 9)  # HSDS 3: the UTC offset of the times
        for location in organization.get("locations", []):
            location.setdefault("organization_id", organization["id"])
            location.setdefault("location_type", "physical")
    return body
