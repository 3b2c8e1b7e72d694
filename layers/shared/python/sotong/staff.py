"""Who is signed in: a staff member's role and department, from what only an administrator can set
(the user pool's groups), and what each role may see. `docs/roles.md` is the matrix in words;
`sotong.resources.ROUTES` says which roles may call each route."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["cs_admin", "department_staff", "reception", "qi", "partner", "agency"]
ROLES: tuple[Role, ...] = ("cs_admin", "department_staff", "reception", "qi", "partner", "agency")
"""In order of precedence: a member of several role groups acts in the first of them."""
HOSPITAL_ROLES: tuple[Role, ...] = ("cs_admin", "department_staff", "reception", "qi")
"""The hospital's own staff (the partner and agency roles are people outside it)."""
ROLE_NAMES: dict[Role, str] = {
    "cs_admin": "고객지원팀 관리자 (CS admin): every complaint, patient and report",
    "department_staff": "진료과 직원: their department's complaints, patients and recall",
    "reception": "원무과·접수 (front desk): registers patients and bookings; their department's "
    "complaints; no clinical records or conversations",
    "qi": "적정관리(QI)팀: reads complaints and reports of every department; changes nothing",
    "partner": "협력 의료기관·약국 (a partner clinic or pharmacy of the care network): its own "
    "referrals only",
    "agency": "연계 기관 (보건소, 복지관, 치매안심센터...): its own activities in integrated care "
    "plans only",
}
DEPARTMENT_GROUP = "dept-"
"""A department is a group too: `dept-dental` makes its members dental staff."""
ORGANISATION_GROUP = "org-"
"""An outside organisation is a group too: `org-hanbit-peds` makes a partner or agency user one
of that organisation's staff (an administrator adds the group when the organisation joins)."""
NEEDS_DEPARTMENT: frozenset[Role] = frozenset({"department_staff", "reception"})
NEEDS_ORGANISATION: frozenset[Role] = frozenset({"partner", "agency"})
OUTSIDE: frozenset[Role] = NEEDS_ORGANISATION
"""Roles of people outside the hospital: they never see the hospital's own patients' records."""
SEES_ALL_DEPARTMENTS: frozenset[Role] = frozenset({"cs_admin", "qi"})


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member, from the user pool's groups: role, department, organisation."""

    username: str
    role: Role
    department: str | None
    organisation: str | None = None
    """The partner clinic, pharmacy or agency of a `partner` or `agency` user."""

    @property
    def sees_every_department(self) -> bool:
        return self.role in SEES_ALL_DEPARTMENTS

    def sees_department(self, department: str | None) -> bool:
        return self.sees_every_department or (
            department is not None and department == self.department
        )

    def sees_any(self, departments: Iterable[str]) -> bool:
        return self.sees_every_department or self.department in set(departments)

    @property
    def outside(self) -> bool:
        return self.role in OUTSIDE

    @property
    def clinical(self) -> bool:
        """May read treatments, touchpoints and conversations (of patients they may see)."""
        return self.role in ("cs_admin", "department_staff")

    @property
    def changes(self) -> bool:
        return self.role != "qi"


def groups_of(claims: Mapping[str, Any]) -> list[str]:
    """`cognito:groups` as API Gateway's Cognito authorizer passes it: a list, a bare name, names
    joined by commas or spaces, or the text of a list (`[a, b]`)."""
    groups = claims.get("cognito:groups") or ""
    if isinstance(groups, str):
        return [g for g in groups.replace(",", " ").strip("[]").split() if g]
    return [str(g) for g in groups]


def staff_from_claims(claims: Mapping[str, Any]) -> Staff | None:
    """The staff member the verified claims describe, or None when they carry no role (or a role
    that needs a department without exactly one). Attributes a user can edit themselves (such as
    `custom:department`) are ignored."""
    groups = groups_of(claims)
    role = next((r for r in ROLES if r in groups), None)
    username = claims.get("cognito:username") or claims.get("username") or claims.get("sub")
    departments = sorted(
        {g[len(DEPARTMENT_GROUP) :] for g in groups if g.startswith(DEPARTMENT_GROUP)} - {""}
    )
    if not username or role is None:
        return None
    if role in NEEDS_DEPARTMENT and len(departments) != 1:
        return None
    organisations = sorted(
        {g[len(ORGANISATION_GROUP) :] for g in groups if g.startswith(ORGANISATION_GROUP)} - {""}
    )
    if role in NEEDS_ORGANISATION:
        if len(organisations) != 1:
            return None
        return Staff(str(username), role, None, organisations[0])
    department = departments[0] if len(departments) == 1 else None
    return Staff(username=str(username), role=role, department=department)
