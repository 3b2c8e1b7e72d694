"""Partner and agency users: outside the hospital, one organisation each, no hospital route."""

from sotong import resources
from sotong.staff import Staff, staff_from_claims


def test_a_partner_is_one_organisations_staff_and_nobody_elses() -> None:
    partner = staff_from_claims({"cognito:username": "kim", "cognito:groups": "partner,org-hanbit"})
    assert partner == Staff("kim", "partner", None, "hanbit")
    assert partner.outside
    assert not partner.clinical
    assert not partner.sees_every_department


def test_an_outside_role_needs_exactly_one_organisation() -> None:
    assert staff_from_claims({"cognito:username": "a", "cognito:groups": "agency"}) is None
    two = {"cognito:username": "a", "cognito:groups": "agency,org-x,org-y"}
    assert staff_from_claims(two) is None


def test_an_organisation_group_gives_hospital_staff_nothing() -> None:
    staff = staff_from_claims(
        {"cognito:username": "d", "cognito:groups": "department_staff,dept-dental,org-x"}
    )
    assert staff == Staff("d", "department_staff", "dental", None)


def test_no_hospital_route_lets_an_outside_role_in() -> None:
    hospital = [
        r
        for r in resources.ROUTES
        if r.auth == "staff"
        and r.function
        in (
            "staff_api",
            "recall_api",
        )
    ]
    assert hospital
    assert all("partner" not in r.roles and "agency" not in r.roles for r in hospital)
