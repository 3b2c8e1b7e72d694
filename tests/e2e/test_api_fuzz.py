"""Fuzzing the whole API over HTTP, from its one OpenAPI document (`GET /_local/openapi.json`):
whatever a client sends, no route answers 5xx, and bad input is a 4xx.

- Every operation: requests that schemathesis generates from the document (documented examples,
  valid and invalid input), with a cs_admin token on staff routes and again without one.
- Every POST: the bodies clients get wrong (a multipart content type without a boundary, text/plain,
  empty, invalid JSON, not UTF-8, nested deeply, 10,000-character strings, wrong types); every
  route: 10,000-character path and query values. Each must be a 4xx.
- The provider webhooks: unsigned, they are 401; signed, any JSON body is a 200.

Bounded and repeatable: a fixed number of examples per operation, derandomized (the same requests
every run), against a stack of its own without schedules or queue consumers.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from sotong.notify.providers.solapi import sign_webhook
from sotong.resources import ROUTES, Route
from sotong_local.openapi import api_path
from tests.e2e.test_local_stack import Running, start_stack, stop_stack

pytestmark = pytest.mark.e2e

# By hand, a deeper search: SOTONG_FUZZ_SCALE=10 (10x the examples), SOTONG_FUZZ_SEED=<n> (other
# requests than the fixed ones every run sends)
SCALE = int(os.environ.get("SOTONG_FUZZ_SCALE", "1"))
SIGNED_IN_EXAMPLES = 20 * SCALE
SIGNED_OUT_EXAMPLES = 4
WEBHOOK_EXAMPLES = 15 * SCALE
WEBHOOK_SECRET = "local-hmac_key"  # what the local stack stores for `sotong/demo/webhook`
HUGE = 10_000
SEED = os.environ.get("SOTONG_FUZZ_SEED")
FUZZ = settings(
    derandomize=SEED is None,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def _seeded(test: Callable[[], None]) -> Callable[[], None]:
    return seed(int(SEED))(test) if SEED is not None else test


# Path parameters that pass the routes' patterns, so bad bodies reach the body's validation.
PATH_VALUES = {
    "code": "ABCD2345",
    "page": "complaint.html",
    "complaint_id": "c0123456789abcdef",
    "message_id": "0123456789abcdef" * 2,
    "patient_id": "p" + "0123456789" * 2,
    "treatment_id": "t0123456789abcdef",
    "touchpoint_id": "t0123456789abcdef.aftercare",
    "campaign_id": "m" + "0123456789ab" * 2,
    "case_id": "c0123456789abcdef",
    "activity_id": "a0123456789abcdef",
    "review_id": "f0123456789abcdef.m1",
    "conference_id": "f0123456789abcdef",
    "programme_id": "healing_cafe",
    "referral_id": "r0123456789abcdef",
}


def _id(route: Route) -> str:
    return f"{route.method} {route.path}"


@dataclass
class Api:
    running: Running
    doc: dict[str, Any]
    schema: Any
    admin: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.running.url

    def operation(self, route: Route) -> dict[str, Any]:
        found: dict[str, Any] = self.doc["paths"][api_path(route.path)][route.method.lower()]
        return found

    def log_tail(self, chars: int = 4000) -> str:
        return self.running.output()[-chars:]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_stack(Path(tmp_path_factory.mktemp("fuzz")), "--no-schedules", "--no-pollers")
    try:
        answer = requests.get(f"{running.url}/_local/openapi.json", timeout=30)
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        token = requests.post(
            f"{running.url}/_local/token",
            json={"username": "fuzz.admin", "role": "cs_admin"},
            timeout=10,
        ).json()["token"]
        yield Api(
            running,
            doc,
            schemathesis.openapi.from_dict(doc),
            {"Authorization": f"Bearer {token}"},
        )
    finally:
        stop_stack(running)
        running.log.close()


def test_the_document_has_every_route(api: Api) -> None:
    served = {(m.upper(), p) for p, item in api.doc["paths"].items() for m in item}
    assert served == {(r.method, api_path(r.path)) for r in ROUTES}


# --- generated requests -------------------------------------------------------------------------


def _fuzz(
    api: Api,
    route: Route,
    strategy: st.SearchStrategy[Case],
    examples: int,
    signed_in: bool,
) -> tuple[list[str], dict[int, int]]:
    failures: list[str] = []
    statuses: dict[int, int] = {}

    @_seeded
    @settings(FUZZ, max_examples=examples)
    @given(case=strategy)
    def run(case: Case) -> None:
        if case.headers:
            for name in [n for n in case.headers if n.lower() == "authorization"]:
                del case.headers[name]
        headers = api.admin if signed_in else {}
        response = case.call(base_url=api.url, session=api.session, headers=headers, timeout=30)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            failures.append(
                f"{response.status_code} {response.text[:300]}\n    "
                + case.as_curl_command(headers=headers).replace(api.admin["Authorization"], "…")
            )

    run()
    return failures, statuses


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_no_generated_request_is_a_server_error(api: Api, route: Route) -> None:
    operation = api.schema[api_path(route.path)][route.method]
    strategy = st.one_of(
        *operation.get_strategies_from_examples(),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    staff = route.auth == "staff"
    failures, statuses = _fuzz(api, route, strategy, SIGNED_IN_EXAMPLES, signed_in=staff)
    if staff:
        more, signed_out = _fuzz(api, route, strategy, SIGNED_OUT_EXAMPLES, signed_in=False)
        failures += more
        assert set(signed_out) <= {401}, f"without a sign-in: {signed_out}"
    assert not failures, (
        f"{_id(route)}: {len(failures)} server errors (statuses {statuses}):\n"
        + "\n".join(failures[:5])
        + f"\n--- the stack's log:\n{api.log_tail()}"
    )


# --- what clients get wrong ---------------------------------------------------------------------


def _fill(path: str, value: Callable[[str], str] = PATH_VALUES.__getitem__) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: value(m.group(1)), path)


def _map(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _map(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map(v, leaf) for v in value]
    return leaf(value)


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "many"
    if isinstance(value, str):
        return 12345
    return {"unexpected": True}


def _bad_bodies(example: Any) -> list[tuple[str, str | None, bytes]]:
    """(what, content type, body) a client may send by mistake."""
    doc = json.dumps(example if example is not None else {"a": 1}, ensure_ascii=False)
    huge = _map(example, lambda v: "가" * HUGE if isinstance(v, str) else v)
    return [
        ("multipart without a boundary", "multipart/form-data", b"text=hello"),
        ("multipart without a boundary, empty", "multipart/form-data", b""),
        ("text/plain", "text/plain", doc.encode()),
        ("no content type", None, b"not json"),
        ("an empty body", "application/json", b""),
        ("invalid JSON", "application/json", b'{"text": '),
        ("JSON null", "application/json", b"null"),
        ("a JSON array", "application/json", b"[]"),
        ("a JSON number", "application/json", b"1e999"),
        ("not UTF-8", "application/json", "{'text': '한글'}".encode("cp949")),
        ("nested 5,000 deep", "application/json", b"[" * 5000 + b"]" * 5000),
        ("10,000-character strings", "application/json", json.dumps(huge).encode()),
        ("a 10,000-character string", "application/json", json.dumps("x" * HUGE).encode()),
        ("wrong types", "application/json", json.dumps(_map(example, _wrong_type)).encode()),
        ("unknown fields", "application/json", json.dumps({"unexpected": "x"}).encode()),
    ]


def _example(operation: dict[str, Any]) -> Any:
    content: dict[str, Any] = operation.get("requestBody", {}).get("content", {})
    media: dict[str, Any] = content.get("application/json") or next(iter(content.values()), {})
    return media.get("example")


def _field_named(response: requests.Response) -> bool:
    """A 4xx for bad input names the field: `field`, or `fields[].field` for a 422."""
    try:
        body = response.json()
    except ValueError:
        return False
    fields = body.get("fields") or [body]
    return bool(fields[0].get("field"))


POSTS = [r for r in ROUTES if r.method in ("POST", "PUT", "PATCH")]


@pytest.mark.parametrize("route", POSTS, ids=_id)
def test_bad_bodies_are_4xx(api: Api, route: Route) -> None:
    url = api.url + _fill(route.path)
    headers = api.admin if route.auth == "staff" else {}
    wrong: list[str] = []
    for what, content_type, body in _bad_bodies(_example(api.operation(route))):
        sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
        response = api.session.post(url, data=body, headers=sent, timeout=30)
        if not 400 <= response.status_code < 500:
            wrong.append(f"{what}: {response.status_code} {response.text[:200]}")
        elif response.status_code in (400, 413, 415, 422) and not _field_named(response):
            wrong.append(f"{what}: {response.status_code} names no field: {response.text[:200]}")
    if route.auth == "staff":  # and without a sign-in, the authorizer's 401 comes first
        response = api.session.post(
            url, data=b"a=1", headers={"Content-Type": "multipart/form-data"}, timeout=30
        )
        if response.status_code != 401:
            wrong.append(f"multipart without a sign-in: {response.status_code}")
    assert not wrong, f"{_id(route)}:\n" + "\n".join(wrong) + f"\n--- log:\n{api.log_tail()}"


@pytest.mark.parametrize("route", POSTS, ids=_id)
def test_the_documented_example_is_valid_input(api: Api, route: Route) -> None:
    operation = api.operation(route)
    content: dict[str, Any] = operation.get("requestBody", {}).get("content", {})
    kind, media = next(iter(content.items()), ("application/json", {"example": None}))
    example = media.get("example")
    body = example.encode() if isinstance(example, str) else json.dumps(example).encode()
    headers = {**(api.admin if route.auth == "staff" else {}), "Content-Type": kind}
    if route.path == "/campaigns":
        headers["Idempotency-Key"] = "fuzz-documented-example"
    response = api.session.post(api.url + _fill(route.path), data=body, headers=headers, timeout=30)
    # valid input: what follows (a 404 for the made-up ids, a 401 for an unsigned webhook) is
    # never a validation error, nor a server error
    assert response.status_code < 500, f"{response.status_code} {response.text}\n{api.log_tail()}"
    assert response.status_code not in (415, 422), response.text


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_huge_path_and_query_values_are_4xx_or_ok(api: Api, route: Route) -> None:
    operation = api.operation(route)
    query = {p["name"]: "9" * HUGE for p in operation.get("parameters", []) if p["in"] == "query"}
    headers = api.admin if route.auth == "staff" else {}
    for path in (_fill(route.path), _fill(route.path, lambda _: "x" * HUGE)):
        response = api.session.request(
            route.method, api.url + path, params=query, headers=headers, timeout=30
        )
        assert response.status_code < 500, (
            f"{route.method} {path[:80]}…: {response.status_code} {response.text[:300]}"
        )


# --- the provider's webhooks --------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
_FIELDS = st.sampled_from(
    [
        "messageId",
        "statusCode",
        "type",
        "customFields",
        "kakaoOptions",
        "replacement",
        "from",
        "to",
        "text",
        "dateReceived",
        "dateCreated",
        "reason",
    ]
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_FIELDS | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=20,
)
_EVENT = st.fixed_dictionaries(
    {},
    optional={
        "messageId": st.one_of(st.text(max_size=40), st.integers()),
        "statusCode": st.sampled_from(["2000", "3000", "4000", "3104", "3018", 4000, None, ""]),
        "type": st.sampled_from(["ATA", "SMS", "LMS", "MMS", "CTA", "", 7]),
        "customFields": st.one_of(
            st.fixed_dictionaries({"sotongMessageId": st.text(max_size=40)}), _JSON
        ),
        "from": st.sampled_from(["01012345678", "+821012345678", "010-1234-5678", "12", "", None]),
        "to": st.sampled_from(["0212345678", None, 5]),
        "text": st.one_of(
            st.text(max_size=200), st.sampled_from(["수신거부", "네", "STOP"]), _JSON
        ),
        "dateReceived": st.sampled_from(["2026-11-20T10:00:00+09:00", "yesterday", "", None, 0]),
    },
)
_WEBHOOK_BODY = st.one_of(_EVENT, st.lists(_EVENT, max_size=4), _JSON)


@pytest.mark.parametrize("path", ["/webhooks/inbound", "/webhooks/reports"])
def test_signed_webhooks_take_any_json_and_unsigned_ones_are_401(api: Api, path: str) -> None:
    failures: list[str] = []

    @_seeded
    @settings(FUZZ, max_examples=WEBHOOK_EXAMPLES)
    @given(body=_WEBHOOK_BODY)
    def run(body: Any) -> None:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        unsigned = api.session.post(api.url + path, data=raw, headers=headers, timeout=30)
        signed = api.session.post(
            api.url + path,
            data=raw,
            headers={**headers, **sign_webhook(raw, WEBHOOK_SECRET, int(time.time()))},
            timeout=30,
        )
        if unsigned.status_code != 401 or signed.status_code != 200:
            failures.append(
                f"{unsigned.status_code}/{signed.status_code} {signed.text[:200]}: {raw[:300]!r}"
            )

    run()
    assert not failures, "\n".join(failures[:5]) + f"\n--- log:\n{api.log_tail()}"
