"""Integration fixtures: moto's server on loopback and a fresh deployment of template.yaml per test."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities import parameters
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.sandbox import MotoServer, Stack, deploy_stack, environment, start_moto_server

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


@pytest.fixture
def moto_url(moto_server: MotoServer) -> str:
    return moto_server.url


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The project's Aspose emulator on loopback, on a clock that ticks 0.1 s per reading.

    Tasks then pass Pending, Processing and Completed after a set number of requests, however slow
    the machine is.
    """
    with Emulator(processing_seconds=1.0, clock=itertools.count(0.0, 0.1).__next__) as running:
        yield running


@pytest.fixture
def poller_env(aws_env: dict[str, str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function's environment pointed at the emulator, credentials from the stack's secret, no waiting."""
    monkeypatch.setenv("ASPOSE_BASE_URL", emulator.url)
    monkeypatch.setenv("POLL_INITIAL_DELAY_SECONDS", "0")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    parameters.clear_caches()
