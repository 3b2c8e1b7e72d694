"""The staff console's files as public_api serves them: only the listed names, with their content
types, the console's CSP and revalidation; `/console/config.json` in AWS (stage variables) and
on the local stack."""

from __future__ import annotations

import importlib
import json
import re
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import pytest

from sotong.resources import ROUTES, function
from sotong.web import console
from sotong.web.headers import HSTS
from sotong_local.events import proxy_event
from sotong_local.lambdas import LambdaContext

CONSOLE_DIR = Path(str(package_files.files("sotong.web.console")))
NOT_SERVED = {"__init__.py", "vendor.sha256"}
STAGE = {
    "consoleClientId": "4example5client6id7",
    "consoleAuthDomain": "https://sotong-demo-staff-123456789012.auth.ap-northeast-2.amazoncognito.com",
    "consoleUrl": "https://abc123.execute-api.ap-northeast-2.amazonaws.com/v1/console/",
}


def get(
    path: str,
    *,
    stage: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    asset = path.removeprefix("/console/") if path.startswith("/console/") else ""
    resource = "/console/{page}" if asset else "/console"
    event: dict[str, Any] = proxy_event(
        method="GET",
        path=path,
        resource=resource,
        path_parameters={"page": asset} if asset else {},
        headers=list((headers or {}).items()),
        query=[],
        body=b"",
        source_ip="203.0.113.7",
        claims=None,
    )
    event["stageVariables"] = stage
    spec = function("public_api")
    module = importlib.import_module(spec.module)
    answer = module.handler(event, LambdaContext(spec))
    found = {k.lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        found.setdefault(name.lower(), str(values[0]))
    return int(answer["statusCode"]), found, answer.get("body") or ""


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    return aws


def test_the_console_routes_are_public_routes_of_public_api() -> None:
    found = {(r.method, r.path): r for r in ROUTES if r.path.startswith("/console")}
    assert set(found) == {("GET", "/console"), ("GET", "/console/{page}")}
    assert all(r.function == "public_api" and r.auth == "public" for r in found.values())


def test_every_file_of_the_console_is_listed_and_every_listed_file_exists() -> None:
    on_disk = {
        p.relative_to(CONSOLE_DIR).as_posix()
        for p in CONSOLE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    listed = {file for file, _ in console.ASSETS.values()}
    assert on_disk - NOT_SERVED == listed, "list new console files in sotong/web/console ASSETS"


def test_app_imports_only_listed_modules() -> None:
    app = (CONSOLE_DIR / "app.js").read_text(encoding="utf-8")
    for path in CONSOLE_DIR.glob("*.js"):
        text = path.read_text(encoding="utf-8")
        for module in re.findall(r"from '\./([a-z_-]+\.js)'", text):
            assert module in console.ASSETS, f"{path.name} imports {module}, not served"
    assert "SCREENS" in app  # the registry later screens are added to


@pytest.mark.parametrize("name", sorted(console.ASSETS))
def test_each_file_is_served_with_its_type_and_the_console_headers(
    env: dict[str, str], name: str
) -> None:
    status, headers, body = get(f"/console/{name}")
    assert status == 200, (name, body[:200])
    assert headers["content-type"] == console.ASSETS[name][1]
    csp = headers["content-security-policy"]
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["strict-transport-security"] == HSTS
    assert headers["cache-control"] == "no-cache"
    assert headers["etag"].startswith('"')
    assert body


def test_a_known_etag_answers_304_without_a_body(env: dict[str, str]) -> None:
    _, headers, _ = get("/console/app.js")
    status, again, body = get("/console/app.js", headers={"If-None-Match": headers["etag"]})
    assert status == 304
    assert body == ""
    assert again["etag"] == headers["etag"]


def test_the_page_has_no_inline_script_or_style(env: dict[str, str]) -> None:
    status, headers, body = get("/console/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)
    assert "<style" not in body
    assert " style=" not in body
    assert " on" + "click=" not in body
    assert '<html lang="ko">' in body
    assert 'href="#main"' in body  # the skip link


def test_without_the_slash_the_page_redirects_to_it(env: dict[str, str]) -> None:
    status, headers, _ = get("/console")
    assert status == 301
    assert headers["location"] == "console/"  # relative: keeps the stage (/v1/console/)


@pytest.mark.parametrize(
    "name",
    [
        "../public_api.py",
        "..%2Fapi.js",
        "vendor%2Fchart.umd.js",
        "__init__.py",
        "vendor.sha256",
        "index.HTML",
        "app.js.map",
        "secret.js",
        ".",
        "%2e%2e",
    ],
)
def test_anything_not_listed_is_404(env: dict[str, str], name: str) -> None:
    status, headers, body = get(f"/console/{name}")
    assert status == 404, name
    if "/" not in name:  # a slash matches no route at all: the resolver's own 404
        assert json.loads(body)["field"] == "path.page"
    assert headers["cache-control"] == "no-store"


def test_config_on_the_local_stack_offers_the_demo_users(env: dict[str, str]) -> None:
    status, headers, body = get("/console/config.json")
    assert status == 200
    assert headers["cache-control"] == "no-store"
    config = json.loads(body)
    assert config["mode"] == "local"
    assert "client_id" not in config
    users = {(u["role"], u["department"]) for u in config["users"]}
    departments = {d["id"] for d in config["departments"]}
    assert ("cs_admin", None) in users
    assert ("qi", None) in users
    assert {d for role, d in users if role == "department_staff"} == departments
    assert ("reception", "front_desk") in users
    titles = [t["title"] for t in config["answer_templates"]]
    assert titles
    assert "공감" in titles
    assert any("불편을 끼쳐 죄송합니다" in t["text"] for t in config["answer_templates"])
    assert config["categories"]["wait_time"] == "대기시간"


def test_config_in_aws_names_the_cognito_sign_in(env: dict[str, str]) -> None:
    status, _, body = get("/console/config.json", stage=STAGE)
    assert status == 200
    config = json.loads(body)
    assert config["mode"] == "aws"
    assert config["client_id"] == STAGE["consoleClientId"]
    assert config["domain"] == STAGE["consoleAuthDomain"]
    assert config["redirect_uri"] == STAGE["consoleUrl"]
    assert config["region"] == "ap-northeast-2"
    assert config["scopes"] == ["openid", "email", "profile"]
    assert "users" not in config  # no demo users in AWS


def test_in_aws_the_page_may_also_fetch_the_cognito_domain(env: dict[str, str]) -> None:
    _, headers, _ = get("/console/", stage=STAGE)
    directives = dict(d.split(" ", 1) for d in headers["content-security-policy"].split("; "))
    assert directives["connect-src"] == f"'self' {STAGE['consoleAuthDomain']}"
    assert directives["default-src"] == "'self'"


def test_answer_templates_are_the_hospitals_and_default_when_left_out() -> None:
    from sotong.config.schema import ComplaintSettings, default_answer_templates

    settings = ComplaintSettings(default_department="customer_service")
    assert settings.answer_templates == default_answer_templates()
    assert any("답답하셨겠네요" in t.text for t in settings.answer_templates)
    with pytest.raises(ValueError, match="ids used twice"):
        ComplaintSettings(
            default_department="customer_service",
            answer_templates=[{"id": "a", "title": "x", "text": "y"}] * 2,
        )
    assert ComplaintSettings(default_department="x", answer_templates=[]).answer_templates == ()
