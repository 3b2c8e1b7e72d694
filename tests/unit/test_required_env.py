"""Each handler checks, at import, the environment variables its `resources.Function` needs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from sotong import resources
from sotong.resources import FUNCTIONS, HASH_KEY_ENV, MAIN, NOTIFICATIONS, MissingEnvironment

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def test_required_env_comes_from_the_definition() -> None:
    assert resources.function("sla_sweeper").required_env == (MAIN.env,)
    assert resources.function("outbox_relay").required_env == (MAIN.env, NOTIFICATIONS.env)
    assert resources.function("staff_api").required_env == (MAIN.env, HASH_KEY_ENV)
    assert resources.function("provider_balance").required_env == ()


def test_require_env_names_every_missing_variable() -> None:
    with pytest.raises(MissingEnvironment) as raised:
        resources.require_env("notification_sender", {MAIN.env: "records"})
    assert str(raised.value).startswith("notification_sender needs")
    assert NOTIFICATIONS.env in str(raised.value)
    assert HASH_KEY_ENV in str(raised.value)
    assert MAIN.env not in str(raised.value)
    full = {MAIN.env: "records", NOTIFICATIONS.env: "https://q", HASH_KEY_ENV: "arn:secret"}
    resources.require_env("notification_sender", full)


def test_an_empty_variable_counts_as_missing() -> None:
    with pytest.raises(MissingEnvironment, match=MAIN.env):
        resources.require_env("sla_sweeper", {MAIN.env: ""})


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_every_handler_checks_its_own_environment_at_import(spec: resources.Function) -> None:
    source = (FUNCTIONS_DIR / f"{spec.module}.py").read_text(encoding="utf-8")
    assert f'\nrequire_env("{spec.name}")\n' in source


def test_a_missing_variable_fails_the_import_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MAIN.env, "records")
    monkeypatch.delenv(NOTIFICATIONS.env, raising=False)
    monkeypatch.delitem(sys.modules, "outbox_relay", raising=False)
    with pytest.raises(MissingEnvironment, match=NOTIFICATIONS.env):
        importlib.import_module("outbox_relay")
    assert "outbox_relay" not in sys.modules
