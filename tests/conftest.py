"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ocr_poller.wiring import real_wiring


@pytest.fixture(autouse=True)
def fresh_wiring() -> Iterator[None]:
    """Each test's environment gets its own real wiring (Lambda builds it once per container)."""
    real_wiring.cache_clear()
    yield
    real_wiring.cache_clear()
