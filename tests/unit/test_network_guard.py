"""The unit-test guard refuses the network, whatever library asks for it."""

from __future__ import annotations

import socket

import boto3
import pytest
import urllib3
from botocore.exceptions import BotoCoreError

from tests.unit.conftest import NetworkUsed


def test_a_raw_socket_cannot_connect_even_to_loopback() -> None:
    with socket.socket() as sock, pytest.raises(NetworkUsed):
        sock.connect(("127.0.0.1", 9))


def test_urllib3_cannot_reach_anything() -> None:
    # urllib3 turns most errors into its own; the guard's AssertionError passes through unchanged.
    with pytest.raises(NetworkUsed):
        urllib3.PoolManager(retries=False).request("GET", "http://127.0.0.1:9/")


def test_boto3_cannot_reach_aws() -> None:
    client = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="unit",
        aws_secret_access_key="unit",
    )
    # botocore wraps whatever its HTTP layer raises; the guard's message survives.
    with pytest.raises(BotoCoreError, match="must not use the network"):
        client.list_queues()
