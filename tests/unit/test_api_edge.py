"""What the fuzzer found at the HTTP edge: inputs Powertools cannot parse without failing (a 500)
are a 4xx naming the field."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from sotong.api import create_resolver, resolve
from sotong.complaints.reports import period_bounds
from sotong.errors import BadRequest
from sotong_local.events import proxy_event


class Note(BaseModel):
    text: str


app = create_resolver("edge test")


@app.post("/notes")
def add(note: Note) -> dict[str, Any]:
    return {"text": note.text}


def _post(body: bytes, content_type: str | None = "application/json") -> tuple[int, Any]:
    headers = [("Content-Type", content_type)] if content_type else []
    event = proxy_event(
        method="POST",
        path="/notes",
        resource="/notes",
        path_parameters={},
        headers=headers,
        query=[],
        body=body,
        source_ip="203.0.113.7",
    )
    answer = resolve(app, event, None)
    return answer["statusCode"], json.loads(answer["body"])


def test_a_good_body_passes() -> None:
    assert _post(b'{"text": "hi"}') == (200, {"text": "hi"})


@pytest.mark.parametrize("body", [b"", b"text=hi"])
def test_multipart_without_a_boundary_is_415_even_when_empty(body: bytes) -> None:
    status, answer = _post(body, "multipart/form-data")
    assert status == 415
    assert answer["field"] == "header.content-type"


def test_a_body_that_is_not_utf8_is_422() -> None:
    status, answer = _post("{'text': '한글'}".encode("cp949"))
    assert status == 422
    assert answer["fields"][0] == {
        "field": "body",
        "problem": "the body is not UTF-8",
        "type": "json_invalid",
    }


def test_a_body_nested_too_deeply_is_422() -> None:
    status, answer = _post(b"[" * 5000 + b"]" * 5000)
    assert status == 422
    assert answer["fields"][0]["field"] == "body"
    # brackets inside strings are text, not nesting
    assert _post(json.dumps({"text": "[" * 5000}).encode())[0] == 200


@pytest.mark.parametrize("period", ["0000-01", "0001-Q1", "9999-12", "1969-12"])
def test_a_report_period_outside_the_years_is_a_bad_request(period: str) -> None:
    with pytest.raises(BadRequest) as raised:
        period_bounds(period, ZoneInfo("Asia/Seoul"))
    assert raised.value.field == "query.period"


def test_report_periods_at_the_edges_of_the_years_work() -> None:
    start, end = period_bounds("9998-12", ZoneInfo("Asia/Seoul"))
    assert (start.year, end.year) == (9998, 9999)
    assert period_bounds("1970-01", ZoneInfo("Asia/Seoul"))[0].year == 1970
