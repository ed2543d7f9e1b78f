"""Fixtures for every test."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from ocr_poller.observability import logger
from ocr_poller.wiring import real_wiring


@pytest.fixture(autouse=True)
def fresh_wiring() -> Iterator[None]:
    """Each test's environment gets its own real wiring (Lambda builds it once per container)."""
    real_wiring.cache_clear()
    yield
    real_wiring.cache_clear()


@pytest.fixture
def function_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The JSON lines the function's Powertools logger writes at INFO (as deployed) during the test."""
    lines = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", lines)
    level = logger.log_level
    logger.setLevel("INFO")
    yield lines
    logger.setLevel(level)
