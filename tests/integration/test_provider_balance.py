"""The provider balance check: Solapi's `GET /cash/v1/balance` over HTTP against the fake Solapi,
the sandbox's configurable balance, and the scheduled function that puts `ProviderBalance`."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from sotong.notify.providers.base import Balance, OutgoingMessage
from sotong.notify.providers.sandbox import SANDBOX_BALANCE_ENV
from sotong.notify.providers.solapi import BALANCE_PATH, SolapiProvider
from sotong.resources import function
from sotong_local.lambdas import LambdaContext
from tests.fakes.solapi_server import FakeSolapi, garbage, http_error, server_error

TIMEOUT_S = 0.5


@pytest.fixture
def fake() -> Iterator[FakeSolapi]:
    with FakeSolapi() as server:
        yield server


@pytest.fixture
def solapi(fake: FakeSolapi) -> SolapiProvider:
    return SolapiProvider(
        fake.api_key, fake.api_secret, base_url=fake.base_url, timeout_s=TIMEOUT_S
    )


def sms(message_id: str) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message_id,
        channel="sms",
        text="[소통치과] 내일 내원 예약이 있어 안내드립니다.",
        sender_number="02-555-0100",
        to_phone="010-1234-5678",
    )


def test_the_balance_is_read_with_the_same_signed_request_as_a_send(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    assert solapi.balance() == Balance(cash_krw=1_000_000.0, point=0.0)
    (request,) = fake.balance_requests()
    assert (request.method, request.path, request.status) == ("GET", BALANCE_PATH, 200)
    assert request.headers["Authorization"].startswith(f"HMAC-SHA256 apiKey={fake.api_key}, ")
    fake.point = 300.0
    assert solapi.send(sms("msg-1")).outcome == "accepted"
    assert solapi.balance() == Balance(cash_krw=1_000_000.0 - 8.4, point=300.0)  # an SMS spent


def test_a_balance_it_cannot_read_is_unknown_never_an_exception(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.script_balance(server_error(502), garbage(), http_error(400, "ValidationError"))
    assert solapi.balance() == Balance(cash_krw=None, reason="balance_http_502")
    assert solapi.balance() == Balance(cash_krw=None, reason="balance_unparsed_response")
    assert solapi.balance() == Balance(cash_krw=None, reason="balance_http_400")
    wrong_key = SolapiProvider(
        fake.api_key, "not-the-secret", base_url=fake.base_url, timeout_s=TIMEOUT_S
    )
    assert wrong_key.balance() == Balance(cash_krw=None, reason="provider_auth")
    with fake.offline():
        assert solapi.balance() == Balance(cash_krw=None, reason="balance_provider_unreachable")


def emitted(out: str) -> list[dict[str, Any]]:
    """The EMF documents Powertools printed (one JSON object a line)."""
    found = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            found.append(json.loads(line))
    return found


def value(document: dict[str, Any], name: str) -> float:
    """A metric's value in an EMF document (Powertools writes a list of the values)."""
    raw = document[name]
    (only,) = raw if isinstance(raw, list) else [raw]
    return float(only)


def run(monkeypatch: pytest.MonkeyPatch, reporter: Any = None) -> dict[str, Any]:
    module = importlib.import_module("provider_balance")
    if reporter is not None:
        monkeypatch.setattr(module, "providers", SimpleNamespace(balance_reporter=lambda: reporter))
    result: dict[str, Any] = module.handler({}, LambdaContext(function("provider_balance")))
    return result


def test_the_scheduled_check_puts_the_sandbox_balance_as_a_metric(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SANDBOX_BALANCE_ENV, "12000")
    monkeypatch.setenv("SOTONG_HOSPITAL_ID", "demo")
    capsys.readouterr()
    result = run(monkeypatch)
    assert result == {"provider": "sandbox", "balance_krw": 12000.0, "point": 0.0, "low": True}
    (document,) = [d for d in emitted(capsys.readouterr().out) if "ProviderBalance" in d]
    assert value(document, "ProviderBalance") == 12000.0
    assert document["service"] == "provider_balance"
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    names = {m["Name"] for m in directive["Metrics"]}
    assert names == {"ProviderBalance", "ProviderPoint"}


def test_the_scheduled_check_reads_solapi_and_reports_what_it_cannot_read(
    aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake: FakeSolapi,
    solapi: SolapiProvider,
) -> None:
    capsys.readouterr()
    assert run(monkeypatch, solapi) == {
        "provider": "solapi",
        "balance_krw": 1_000_000.0,
        "point": 0.0,
        "low": False,  # above the demo's balance_alarm_krw (50,000)
    }
    fake.script_balance(server_error(503))
    assert run(monkeypatch, solapi) == {
        "provider": "solapi",
        "balance_krw": None,
        "reason": "balance_http_503",
    }
    documents = emitted(capsys.readouterr().out)
    balances = [value(d, "ProviderBalance") for d in documents if "ProviderBalance" in d]
    assert balances == [1_000_000.0]
    unknown = [
        value(d, "ProviderBalanceUnknown") for d in documents if "ProviderBalanceUnknown" in d
    ]
    assert unknown == [1.0]
