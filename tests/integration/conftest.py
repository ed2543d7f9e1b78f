"""Integration fixtures: moto's server on loopback and a fresh deployment of template.yaml per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_poller.sandbox import MotoServer, Stack, deploy_stack, environment, start_moto_server

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def stack(moto_server: MotoServer) -> Stack:
    return deploy_stack(moto_server.url, TEMPLATE_PATH, name_suffix=uuid.uuid4().hex[:12])


@pytest.fixture
def aws_env(stack: Stack, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The function's environment for `stack`, set in os.environ for the test; boto3 defaults go to moto."""
    variables = environment(stack, moto_server.url)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables
