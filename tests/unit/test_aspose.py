"""Pure helpers of the Aspose client."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from ocr_poller.adapters.aspose import MAX_RETRY_AFTER_SECONDS, Credentials, _retry_after


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("37", 37.0),
        ("soon", None),
        ("9" * 400, MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert _retry_after(header, now=0.0) == seconds


def test_retry_after_as_an_http_date() -> None:
    # Given a date 120 s after now
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
    header = format_datetime(datetime(2026, 11, 24, 12, 2, tzinfo=UTC), usegmt=True)
    # Then
    assert _retry_after(header, now) == 120.0
    assert _retry_after(header, now + 600) == 0.0


def test_credentials_repr_hides_the_secret() -> None:
    assert "hunter2" not in repr(Credentials("me", "hunter2"))
