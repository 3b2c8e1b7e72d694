"""Domain tests: the desks over in-memory repositories (`tests/fakes/memory.py`), no moto.

Sockets are disabled and `sotong.store` refuses to make a DynamoDB client, so a test here that
reaches for AWS (or anything on the network) fails instead of quietly using it.
"""

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


def _no_aws() -> None:
    raise AssertionError("a domain test reached DynamoDB: inject an in-memory repository")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from sotong import store

    monkeypatch.setattr(store, "dynamodb", _no_aws)
    disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        enable_socket()
