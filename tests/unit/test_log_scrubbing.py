"""Errors and request lines without the data in them: a pydantic error's `input_value`, a
request's query string and tracking code, an exception leaving a handler."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from sotong.masking import ScrubbedError, mask_text, mask_url, scrubbed
from sotong.observability import get_logger
from sotong.resources import Function
from sotong.web.headers import secured
from sotong_local.lambdas import Runtime

NAME, PHONE, EMAIL = "윤하늘", "010-7319-2846", "haneul.yoon77@example.org"
TEXT = f"{NAME}입니다. 제 번호 {PHONE}, 메일 {EMAIL}"


class Message(BaseModel):
    text: str
    sender: str

    @model_validator(mode="after")
    def _refuse(self) -> Message:
        raise ValueError("refused as a whole")  # a model-level error repeats the whole input


def _error() -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        Message.model_validate({"text": TEXT, "sender": PHONE})
    assert NAME in str(raised.value), "pydantic repeats the input: what this file is about"
    return raised.value


def assert_clean(text: str) -> None:
    for raw in (NAME, "7319", "haneul.yoon77"):
        assert raw not in text, (raw, text)


def test_mask_text_drops_a_pydantic_errors_input_value() -> None:
    text = mask_text(str(_error()))
    assert_clean(text)
    assert "input_value=***, input_type=dict" in text
    assert "refused as a whole" in text


def test_scrubbed_keeps_the_field_problem_and_type_only() -> None:
    error = scrubbed(_error())
    assert isinstance(error, ScrubbedError)
    assert_clean(str(error))
    assert str(error).startswith("Message: 1 invalid: (model): Value error, refused as a whole")
    assert str(scrubbed(KeyError(NAME))) == "KeyError"


def test_an_error_escaping_the_resolver_leaves_scrubbed() -> None:
    @secured
    def resolve(app: Any, event: dict[str, Any], context: Any) -> dict[str, Any]:
        Message.model_validate({"text": TEXT, "sender": PHONE})
        return {}

    with pytest.raises(ScrubbedError) as raised:
        resolve(None, {"resource": "/webhooks/inbound"}, None)
    assert_clean(str(raised.value))
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__ is True  # the runtime prints no chained original


def test_a_logged_exception_is_masked_in_the_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    logger = get_logger("scrub-test")
    try:
        Message.model_validate({"text": TEXT, "sender": PHONE})
    except ValidationError:
        logger.exception("inbound message refused")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == "inbound message refused"
    assert_clean(json.dumps(line, ensure_ascii=False))


def test_the_local_runtime_logs_a_functions_error_masked() -> None:
    def handler(event: dict[str, Any], context: Any) -> Any:
        Message.model_validate({"text": TEXT, "sender": PHONE})

    runtime = Runtime(
        [Function("broken", "broken.handler", "test only")], handlers={"broken": handler}
    )
    stream = io.StringIO()
    log = logging.getLogger("sotong_local.lambdas")
    capture = logging.StreamHandler(stream)
    log.addHandler(capture)
    try:
        invocation = runtime.invoke("broken", {})
    finally:
        log.removeHandler(capture)
    assert invocation.error_type == "ValidationError"
    assert_clean(invocation.error or "")
    assert "broken raised ValidationError" in stream.getvalue()
    assert_clean(stream.getvalue())


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/track/ABCD-2345?phone_last4=2846", "/track/***?phone_last4=***"),
        ("/v1/track/abcd2345", "/v1/track/***"),
        ("/pages/track.html?code=ABCD-2345", "/pages/track.html?code=***"),
        (f"/inbox?recipient_phone={PHONE}&x", "/inbox?recipient_phone=***&x=***"),
        ("/patients/p123/conversation", "/patients/p123/conversation"),
        (f"/patients/{PHONE}", "/patients/*******2846"),
    ],
)
def test_request_targets_are_logged_without_values(target: str, logged: str) -> None:
    assert mask_url(target) == logged
