"""Hostile input over every route of the local stack, over HTTP: whatever a client sends, no route
answers 5xx, and every 400/413/415/422 names its field (`field`, or `fields[].field`).

- The cases issue 9 reproduced (each was a 502): treatment dates at both ends of the calendar, an
  appointment in year 1, a date change to 9999-12-31, a segment with `no_visit_since=0001-01-01`,
  an inbox from 0001-01-01 to 9999-12-31, a forged cursor, a CSV with such a row; and the inputs
  that were accepted and should not be (a "yes" for a boolean, "5" or true for a score, six NUL
  characters, U+202E kept, a landline for SMS, a visit in 2099, broken JSON named `body.9`).
- Every route in `sotong.resources.ROUTES` (staff routes with a cs_admin token), on real ids (a
  patient, a treatment, a touchpoint, a complaint made first), so bad values reach the rules
  behind validation: each body field, query parameter and path parameter in turn gets dates at
  both ends of the calendar (0001-01-01, 9999-12-31, leap days, offsets of ±14:00 and ±23:59),
  huge and negative numbers, NUL, control, bidi and lone-surrogate characters, wrong types.

Short by default (a few hundred requests per route group); `SOTONG_FUZZ_SCALE=10` adds the
longer lists (every hostile value in every nested field, and each value as every query
parameter and path parameter) for a run by hand.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from sotong.resources import ROUTES, Route
from sotong_local.openapi import api_path
from tests.e2e.test_local_stack import Running, start_stack, stop_stack

pytestmark = pytest.mark.e2e

SCALE = int(os.environ.get("SOTONG_FUZZ_SCALE", "1"))

DATES = [
    "0001-01-01",
    "9999-12-31",
    "2024-02-29",
    "2023-02-29",
    "2100-02-29",
    "1900-01-01",
    "0001-01-01T00:00:00+09:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00",
    "2026-12-01T10:00:00+14:00",
    "2026-12-01T10:00:00-14:00",
    "2026-12-01T10:00:00+23:59",
    "2026-12-01T10:00:00",
    "2026-12-01T24:00:00+09:00",
]
TEXTS = [
    "\u0000" * 6,
    "\u202e대기시간이 너무 길었습니다",
    "접수\u0007대기\u001b[31m시간이 길었습니다",
    "\ud800\udfff 짝 없는 서로게이트 \udc00",
    "\ufeff\u200b\u2066\u2069",
    "가" * 10_000,
    "   ",
    "<script>alert(1)</script>",
    "'; DROP TABLE records; --",
    "${jndi:ldap://x}",
]
NUMBERS: list[Any] = [10**30, -(10**30), 2**63, -1, 0, 1e308, -0.0, 0.5]
WRONG_TYPES: list[Any] = [True, False, None, "yes", "5", [], {}, [None], {"$gt": ""}]
HOSTILE: list[Any] = DATES + TEXTS + NUMBERS + WRONG_TYPES
# what `make test` sends into each field (SOTONG_FUZZ_SCALE>1: all of HOSTILE)
SHORT: list[Any] = DATES[:2] + DATES[6:10] + TEXTS[:4] + NUMBERS[:3] + WRONG_TYPES[:5]
PATH_HOSTILE = [
    "0001-01-01",
    "9" * 40,
    "\u0000",
    "\u202e",
    "..%2F..%2F",
    "ABCD 2345",
    "ａｂｃｄ２３４５",
    "abß2345",
    "%ZZ",
    "-1",
]


@dataclass
class Stack:
    running: Running
    doc: dict[str, Any]
    admin: dict[str, str]
    ids: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.running.url

    def operation(self, route: Route) -> dict[str, Any]:
        found: dict[str, Any] = self.doc["paths"][api_path(route.path)][route.method.lower()]
        return found

    def send(
        self,
        route: Route,
        what: str,
        *,
        path: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        # a lone surrogate goes as the bytes it stands for: invalid UTF-8 in the URL
        query = {k: v.encode("utf-8", "surrogatepass") for k, v in (params or {}).items()}
        headers = dict(self.admin) if route.auth == "staff" else {}
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()  # ensure_ascii: lone surrogates go as \\ud800
        if data is not None:
            headers["Content-Type"] = content_type
        if route.path in ("/campaigns", "/complaints"):
            headers["Idempotency-Key"] = (
                f"hostile-{len(self.failures)}-{sum(self.statuses.values())}"
            )
        url = self.url + (path if path is not None else fill(route.path, self.ids))
        response = self.session.request(
            route.method, url, data=data, params=query, headers=headers, timeout=30
        )
        self.statuses[response.status_code] += 1
        problem = judge(response)
        if problem:
            shown = (raw or json.dumps(body, ensure_ascii=False) if body is not None else b"")[:200]
            self.failures.append(
                f"{route.method} {route.path} [{what}] {problem}: {response.text[:300]}\n"
                f"    sent {url[:200]} {params or ''} {shown!r}"
            )
        return response


def judge(response: requests.Response) -> str | None:
    """What is wrong with an answer: a 5xx, or a 4xx for bad input that names no field."""
    if response.status_code >= 500:
        return f"{response.status_code}"
    if response.status_code in (400, 413, 415, 422):
        try:
            body = response.json()
        except ValueError:
            return f"{response.status_code} without a JSON body"
        fields = body.get("fields") or [body]
        if not all(isinstance(f, dict) and f.get("field") for f in fields):
            return f"{response.status_code} names no field"
    return None


def fill(path: str, ids: dict[str, str], override: dict[str, str] | None = None) -> str:
    values = {**ids, **(override or {})}
    return re.sub(r"\{(\w+)\}", lambda m: quote(values[m.group(1)], safe=""), path)


def leaves(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The paths to every field of a JSON example (objects' keys; a list's first item)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            if SCALE > 1 or not prefix:
                yield from leaves(inner, (*prefix, key))
    elif isinstance(value, list) and value:
        yield from leaves(value[0], (*prefix, 0))


def replaced(value: Any, where: tuple[Any, ...], new: Any) -> Any:
    if not where:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = new
    return copy


def example(operation: dict[str, Any]) -> Any:
    content: dict[str, Any] = operation.get("requestBody", {}).get("content", {})
    media: dict[str, Any] = content.get("application/json") or {}
    return media.get("example")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(
        Path(tmp_path_factory.mktemp("hostile")), "--no-schedules", "--no-pollers"
    )
    try:
        doc = requests.get(f"{running.url}/_local/openapi.json", timeout=30).json()
        token = requests.post(
            f"{running.url}/_local/token",
            json={"username": "hostile.admin", "role": "cs_admin"},
            timeout=10,
        ).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}
        made = Stack(running, doc, admin, _made(running.url, admin))
        yield made
        total, errors = (
            sum(made.statuses.values()),
            sum(n for status, n in made.statuses.items() if status >= 500),
        )
        print(f"\nhostile input: {total} requests, {errors} x 5xx, by status {dict(made.statuses)}")
    finally:
        stop_stack(running, timeout=30)
        running.log.close()


def _made(url: str, admin: dict[str, str]) -> dict[str, str]:
    """Real ids for the path parameters: a patient with a treatment, a complaint."""
    patient = requests.post(
        f"{url}/patients",
        json={"name": "홍길동", "phone": "010-1234-5678", "consents": {"marketing": True}},
        headers=admin,
        timeout=30,
    ).json()
    treatment = requests.post(
        f"{url}/patients/{patient['id']}/treatments",
        json={"tag": "scaling", "date": "2026-11-20"},
        headers=admin,
        timeout=30,
    ).json()
    receipt = requests.post(
        f"{url}/complaints",
        json={
            "text": "접수 대기시간이 너무 길었습니다.",
            "contact": {"phone": "010-1234-5678"},
            "consent_to_contact": True,
        },
        timeout=30,
    ).json()
    inbox = requests.get(f"{url}/inbox", headers=admin, timeout=30).json()
    return {
        "patient_id": patient["id"],
        "treatment_id": treatment["id"],
        "touchpoint_id": treatment["touchpoints"][0]["id"],
        "complaint_id": inbox["items"][0]["id"],
        "code": receipt["tracking_code"],
        "page": "complaint.html",
        "message_id": "0123456789abcdef" * 2,
        "campaign_id": "m" + "0123456789ab" * 2,
        # the care modules' ids: in their patterns, so hostile bodies reach the bodies' checks
        "programme_id": "healing_cafe",
        "referral_id": "r0123456789abcdef",
        "case_id": "c0123456789abcdef",
        "activity_id": "a0123456789abcdef",
        "conference_id": "f0123456789abcdef",
        "review_id": "f0123456789abcdef.m1",
    }


def _report(stack: Stack, what: str) -> str:
    return (
        f"{what}: {len(stack.failures)} failures over {sum(stack.statuses.values())} requests "
        f"(statuses {dict(stack.statuses)}):\n"
        + "\n".join(stack.failures[:12])
        + f"\n--- the stack's log:\n{stack.running.output()[-3000:]}"
    )


def _route(method: str, path: str) -> Route:
    return next(r for r in ROUTES if (r.method, r.path) == (method, path))


# --- what issue 9 reproduced ----------------------------------------------------------------------

CSV_HEADER = "chart_no,name,phone,tag,date\n"


def test_the_reproduced_cases_are_4xx_naming_their_field(stack: Stack) -> None:
    pid, tid = stack.ids["patient_id"], stack.ids["treatment_id"]
    forged = base64.b64encode(json.dumps({"pk": {"S": "x"}}).encode()).decode()
    treatments, text = f"/patients/{pid}/treatments", "대기시간이 길었습니다"
    survey = {"code": "ABCD-2345", "token": "q8Zr2sXk9mPa"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        (treatments, "body.date", {"tag": "scaling", "date": "9999-12-31"}),
        (treatments, "body.date", {"tag": "scaling", "date": "0001-01-01"}),
        (
            f"/patients/{pid}/appointments",
            "body.at",
            {"kind": "booking", "at": "0001-01-01T00:00:00+09:00"},
        ),
        (f"{treatments}/{tid}/date", "body.date", {"date": "9999-12-31"}),
        (
            "/segments/count",
            "body.no_visit_since",
            {"tag": "scaling", "no_visit_since": "0001-01-01"},
        ),
        ("/complaints", "body.consent_to_contact", {"text": text, "consent_to_contact": "yes"}),
        ("/complaints", "body.text", {"text": "\u0000" * 6, "consent_to_contact": False}),
        (
            "/complaints",
            "body.visit_date",
            {"text": text, "consent_to_contact": False, "visit_date": "2099-01-01"},
        ),
        ("/survey", "body.score", {**survey, "score": "5"}),
        ("/survey", "body.score", {**survey, "score": True}),
        ("/patients", "body.phone", {"name": "홍길동", "phone": "02-1234-5678"}),
    ]
    wrong = []
    for path, named, body in cases:
        route = next(
            r
            for r in ROUTES
            if r.method == "POST" and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", r.path), path)
        )
        answer = stack.send(route, f"issue: {named}", path=path, body=body)
        fields = [f.get("field") for f in (answer.json().get("fields") or [answer.json()])]
        if answer.status_code not in (400, 422) or named not in fields:
            wrong.append(f"POST {path} {body}: {answer.status_code} {answer.text[:200]}")
    inbox = _route("GET", "/inbox")
    for params, named in (
        ({"from": "0001-01-01", "to": "9999-12-31"}, "query.from"),
        ({"to": "9999-12-31"}, "query.to"),
        ({"cursor": forged}, "query.cursor"),
    ):
        answer = stack.send(inbox, f"issue: {named}", params=params)
        if (answer.status_code, answer.json().get("field")) != (400, named):
            wrong.append(f"GET /inbox {params}: {answer.status_code} {answer.text[:200]}")
    broken = stack.send(_route("POST", "/complaints"), "broken JSON", raw=b'{"text": "abc", ')
    if broken.json()["fields"][0]["field"] != "body":
        wrong.append(f"broken JSON: {broken.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert not stack.failures, _report(stack, "the reproduced cases")


def test_a_bidi_override_is_not_stored(stack: Stack) -> None:
    answer = stack.send(
        _route("POST", "/complaints"),
        "U+202E",
        body={"text": "대기시간이 \u202e너무\u0000 길었습니다", "consent_to_contact": False},
    )
    assert answer.status_code == 201, answer.text
    inbox = stack.send(_route("GET", "/inbox"), "inbox").json()
    excerpt = next(i["excerpt"] for i in inbox["items"] if i["excerpt"].startswith("대기시간이 "))
    assert excerpt == "대기시간이 너무 길었습니다"


def test_a_csv_with_a_row_at_the_calendars_end_imports_the_good_rows(stack: Stack) -> None:
    route = _route("POST", "/imports/treatments")
    text = (
        CSV_HEADER
        + "H-1,김철수,010-2222-3333,scaling,2026-11-10\n"
        + "H-2,이영희,010-2222-4444,implant_surgery,0001-01-01\n"
        + "H-3,박민수,010-2222-5555,scaling,9999-12-31\n"
        + "H-4,최지우,02-2222-6666,scaling,2026-11-10\n"
    )
    answer = stack.send(route, "csv", raw=text.encode(), content_type="text/csv")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["imported"], report["bad"]) == (1, 3), report
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (3, "date"),
        (4, "date"),
        (5, "phone"),
    ]


# --- every route ----------------------------------------------------------------------------------


def _bodies(stack: Stack, route: Route) -> Iterator[tuple[str, Any]]:
    base = example(stack.operation(route))
    if base is None:
        return
    for where in leaves(base):
        for value in HOSTILE if SCALE > 1 else SHORT:
            yield f"{'.'.join(map(str, where))}={str(value)[:20]!r}", replaced(base, where, value)
    for value in HOSTILE if SCALE > 1 else WRONG_TYPES + NUMBERS[:2] + TEXTS[:2]:
        yield f"body={str(value)[:20]!r}", value


BODY_ROUTES = [
    r
    for r in ROUTES
    if r.method in ("POST", "PUT", "PATCH")
    and r.path not in ("/imports/treatments", "/webhooks/inbound", "/webhooks/reports")
]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_hostile_bodies_are_never_a_server_error(stack: Stack, route: Route) -> None:
    stack.failures.clear()
    for what, body in _bodies(stack, route):
        stack.send(route, what, body=body)
    assert not stack.failures, _report(stack, f"{route.method} {route.path}")


def _query_values() -> list[str]:
    values = [v if isinstance(v, str) else json.dumps(v) for v in HOSTILE]
    return values if SCALE > 1 else DATES + [v for v in values if v not in DATES][::3]


# the signed webhooks are test_api_fuzz's: unsigned, every value here is a 401 before parsing
UNSIGNED = [r for r in ROUTES if not r.path.startswith("/webhooks/")]


@pytest.mark.parametrize("route", UNSIGNED, ids=lambda r: f"{r.method} {r.path}")
def test_hostile_query_and_path_values_are_never_a_server_error(stack: Stack, route: Route) -> None:
    stack.failures.clear()
    operation = stack.operation(route)
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    body = example(operation) if has_body else None
    for parameter in (p for p in parameters if p["in"] == "query"):
        for value in _query_values():
            stack.send(route, f"?{parameter['name']}", params={parameter["name"]: value}, body=body)
    for parameter in (p for p in parameters if p["in"] == "path"):
        for value in PATH_HOSTILE if SCALE > 1 else PATH_HOSTILE[:6]:
            if route.method == "DELETE" and value.isdigit():
                continue
            path = fill(route.path, stack.ids, {parameter["name"]: value})
            stack.send(route, f"{{{parameter['name']}}}", path=path, body=body)
    assert not stack.failures, _report(stack, f"{route.method} {route.path}")


def test_tracking_codes_outside_the_alphabet_are_4xx_naming_the_code(stack: Stack) -> None:
    route = _route("GET", "/track/{code}")
    for code in ("ABCD-2O45", "ABCD-1234", "abß2345x", "ＡＢＣＤ２３４５", "ABCD~2345"):
        answer = stack.send(
            route, code, path=fill(route.path, {"code": code}), params={"phone_last4": "5678"}
        )
        assert answer.status_code in (400, 422), (code, answer.text)
        fields = [f["field"] for f in (answer.json().get("fields") or [answer.json()])]
        assert fields == ["path.code"], (code, answer.text)
    assert not stack.failures, _report(stack, "tracking codes")
