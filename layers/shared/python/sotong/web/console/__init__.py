"""The staff console: its static files (served by `public_api` on `/console/`, see
docs/console.md) and the settings its sign-in reads from `/console/config.json`.

Only the files named in `ASSETS` are served: a request names a key of that table, never a path,
so nothing outside this folder can be reached. A new screen (`replies.js`, ...) is one more
entry here and one more line in `app.js`'s screen list (a test checks that every `.js` file in
this folder is listed).

Sign-in: in AWS the API stage carries the Cognito settings as stage variables
(`infra/constructs/api.py`: `consoleClientId`, `consoleAuthDomain`, `consoleUrl`); the console
then signs in through Cognito's hosted UI with PKCE. Without them (the local stack) the console
offers the demo users of each role and takes a token from `POST /_local/token`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sotong.config.schema import HospitalConfig
from sotong.web.headers import console_csp

HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"
JS = "text/javascript; charset=utf-8"

ASSETS: dict[str, tuple[str, str]] = {
    "index.html": ("index.html", HTML),
    "style.css": ("style.css", CSS),
    "app.js": ("app.js", JS),
    "api.js": ("api.js", JS),
    "auth.js": ("auth.js", JS),
    "ui.js": ("ui.js", JS),
    "labels.js": ("labels.js", JS),
    "signin.js": ("signin.js", JS),
    "inbox.js": ("inbox.js", JS),
    "complaint.js": ("complaint.js", JS),
    "recall.js": ("recall.js", JS),
    "replies.js": ("replies.js", JS),
    "patients.js": ("patients.js", JS),
    "campaigns.js": ("campaigns.js", JS),
    "reports.js": ("reports.js", JS),
    # copied from npm by `make console` (its SHA-256 checked against vendor.sha256)
    "chart.umd.js": ("vendor/chart.umd.js", JS),
}
"""Served name -> (file in this folder, content type)."""
INDEX = "index.html"
CONFIG = "config.json"

STAGE_VARIABLES = {
    "client_id": "consoleClientId",
    "domain": "consoleAuthDomain",
    "redirect_uri": "consoleUrl",
}
"""The API stage variables that carry the Cognito sign-in settings in AWS."""
SCOPES = ("openid", "email", "profile")
LOCAL_ROLES = ("cs_admin", "department_staff", "reception", "qi")


@dataclass(frozen=True)
class Asset:
    """A console file as served: its text, content type and ETag."""

    body: str
    content_type: str
    etag: str


@functools.cache
def asset(name: str) -> Asset | None:
    """A console file by its served name, or None (not listed, or not built: `make console`)."""
    listed = ASSETS.get(name)
    if listed is None:
        return None
    file, content_type = listed
    path = resources.files(__name__).joinpath(*file.split("/"))
    if not path.is_file():
        return None
    body = path.read_text(encoding="utf-8")
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    return Asset(body, content_type, etag)


def sign_in(stage_variables: Mapping[str, str] | None, region: str | None) -> dict[str, Any]:
    """How the console signs in: `aws` (Cognito hosted UI, PKCE) when the stage says so, else
    `local` (the local stack's token endpoint)."""
    found = {key: (stage_variables or {}).get(name) for key, name in STAGE_VARIABLES.items()}
    if found["client_id"] and found["domain"]:
        return {
            "mode": "aws",
            "region": region,
            "domain": found["domain"],
            "client_id": found["client_id"],
            "redirect_uri": found["redirect_uri"],
            "scopes": list(SCOPES),
        }
    return {"mode": "local"}


def csp(settings: Mapping[str, Any]) -> str:
    """The console's Content-Security-Policy: in AWS it may also fetch the Cognito domain."""
    domain = settings.get("domain")
    return console_csp([str(domain)] if settings.get("mode") == "aws" and domain else [])


def demo_users(hospital: HospitalConfig) -> list[dict[str, str | None]]:
    """The users the local sign-in offers: one per role, department staff of every department."""
    names = {d.id: d.name for d in hospital.departments}
    users: list[dict[str, str | None]] = [
        {"role": "cs_admin", "department": None, "label": "고객지원팀 관리자"}
    ]
    users += [
        {"role": "department_staff", "department": d.id, "label": f"{d.name} 직원"}
        for d in hospital.departments
    ]
    desk = "front_desk" if "front_desk" in names else hospital.departments[0].id
    users.append({"role": "reception", "department": desk, "label": f"{names[desk]} 접수"})
    users.append({"role": "qi", "department": None, "label": "적정관리(QI)팀"})
    return users


def settings(
    hospital: HospitalConfig, stage_variables: Mapping[str, str] | None, region: str | None
) -> dict[str, Any]:
    """`/console/config.json`: the sign-in, and the hospital's words the screens use."""
    auth = sign_in(stage_variables, region)
    answer: dict[str, Any] = {
        **auth,
        "hospital": {"id": hospital.hospital_id, "name": hospital.name},
        "departments": [{"id": d.id, "name": d.name} for d in hospital.departments],
        "categories": hospital.complaints.categories,
        "channels": list(hospital.channels),
        "answer_templates": [
            {"id": t.id, "title": t.title, "text": t.text}
            for t in hospital.complaints.answer_templates
        ],
        # the campaigns screen: segments by tag, and the marketing templates it may send; the
        # patients screen: the tags a treatment is recorded with
        "treatment_tags": [
            {"id": t.id, "name": t.name, "department": t.department}
            for t in hospital.treatment_tags
        ],
        "marketing_templates": [
            {"id": t.id, "channel": t.channel, "excerpt": t.text.splitlines()[0][:60]}
            for t in hospital.templates
            if t.purpose == "marketing"
        ],
    }
    if auth["mode"] == "local":
        answer["users"] = demo_users(hospital)
    return answer
