"""The domain tests' conftest really takes the network and DynamoDB away."""

import socket

import pytest
from pytest_socket import SocketBlockedError


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_no_socket_can_be_opened() -> None:
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_no_dynamodb_client_can_be_made() -> None:
    from sotong import store

    with pytest.raises(AssertionError, match="in-memory repository"):
        store.dynamodb()
