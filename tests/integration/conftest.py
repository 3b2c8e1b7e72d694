"""Integration tests: handlers and repositories against moto's in-process AWS."""

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from sotong import clock, keys, store
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong_local.aws import create_hash_key, create_resources
from tests.conftest import TEST_HASH_KEY


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Every table and queue from sotong.resources, created as the local stack creates them."""
    with mock_aws():
        store.dynamodb.cache_clear()
        env = create_resources(None)
        # the hash key as in AWS: a secret the functions read (not a key set in the process)
        env[keys.ENV] = create_hash_key(None, "demo", TEST_HASH_KEY.decode())
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        keys.use_key(None)
        yield env
        store.dynamodb.cache_clear()
    keys.use_key(TEST_HASH_KEY)
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
