"""Unit tests never touch the network: any connection attempt, even to this machine, fails the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest


class NetworkUsed(AssertionError):
    """A unit test tried to open a connection; it belongs in tests/integration."""


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise NetworkUsed(f"unit tests must not use the network (called with {args!r:.200})")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every connect and name lookup for the duration of each unit test."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    yield
