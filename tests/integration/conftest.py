"""Integration tests: handlers and repositories against moto's in-process AWS."""

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from sotong import clock, store
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong_local.aws import create_resources


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Every table and queue from sotong.resources, created as the local stack creates them."""
    with mock_aws():
        store.dynamodb.cache_clear()
        env = create_resources(None)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env
        store.dynamodb.cache_clear()
    clock.fix(None)


@pytest.fixture
def hospital() -> HospitalConfig:
    return load_hospital()


def receive_all(queue_url: str, max_messages: int = 10) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs")
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max_messages,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages: list[dict[str, Any]] = response.get("Messages", [])
    return messages
