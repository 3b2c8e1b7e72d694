"""Fault-matrix fixtures: moto in-process, the fake Solapi server, the sender wired to both."""

from collections.abc import Iterator

import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.resources import NOTIFICATIONS
from tests.fakes.solapi_server import FakeSolapi
from tests.faults.harness import Pipeline, without_quiet_hours
from tests.integration.conftest import aws  # noqa: F401 - the moto fixture


@pytest.fixture
def fake() -> Iterator[FakeSolapi]:
    with FakeSolapi() as server:
        yield server


@pytest.fixture
def pipeline(
    aws: dict[str, str],  # noqa: F811
    fake: FakeSolapi,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Pipeline]:
    monkeypatch.setenv(clock.OFFSET_ENV, "0")
    clock.fix(None)
    built = Pipeline(fake, without_quiet_hours(load_hospital()), aws[NOTIFICATIONS.env])
    with built.wired():
        yield built
