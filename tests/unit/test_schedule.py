"""The delay policy keeps the promise with whole-second SQS delays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocr_poller.schedule import Backoff


def test_first_gaps_are_the_initial_delay_then_grow_by_the_lag_ratio() -> None:
    # Given
    backoff = Backoff(initial=2, lag_ratio=0.25, jitter=0, margin=0)
    # When
    elapsed, gaps = 0, []
    for _ in range(12):
        gap = backoff.delay(elapsed=elapsed)
        gaps.append(gap)
        elapsed += gap
    # Then
    assert gaps == [2, 2, 2, 2, 2, 2, 3, 3, 4, 5, 6, 8]


def test_margin_for_delivery_shortens_the_growing_gaps_only() -> None:
    # Given
    backoff = Backoff(initial=2, maximum=900, lag_ratio=0.25, jitter=0, margin=0.5)
    # When
    delays = [backoff.delay(elapsed=elapsed) for elapsed in (0, 8, 20, 40, 3600, 7200)]
    # Then the initial gap and the SQS maximum are kept whole; a quarter of 20 s or 40 s loses the margin
    assert delays == [2, 2, 4, 9, 900, 900]


def test_delay_is_capped_by_sqs_maximum() -> None:
    assert Backoff(maximum=900, jitter=0).delay(elapsed=86_000) == 900


@given(
    elapsed=st.floats(0, 90_000),
    spent=st.floats(0, 30),
    jitter_draw=st.floats(0, 1),
    ratio=st.floats(0.05, 2),
)
def test_jitter_and_time_spent_never_lengthen_the_promised_gap(
    elapsed: float, spent: float, jitter_draw: float, ratio: float
) -> None:
    # Given
    backoff = Backoff(initial=2, maximum=900, lag_ratio=ratio, jitter=0.1)
    # When
    delay = backoff.delay(elapsed=elapsed, spent=spent, rng=lambda: jitter_draw)
    # Then the next check lands within the promise
    assert 0 <= delay <= 900
    assert spent + delay <= backoff.promised_gap(elapsed) or delay == 0


def test_transient_failures_back_off_exponentially() -> None:
    backoff = Backoff(initial=2, jitter=0)
    assert [backoff.delay(elapsed=0, transient_failures=n) for n in (1, 2, 3, 9, 12)] == [4, 8, 16, 900, 900]


def test_retry_after_wins_over_a_shorter_gap() -> None:
    assert Backoff(jitter=0).delay(elapsed=0, retry_after=120.5) == 121


def test_remaining_time_brings_the_last_check_to_the_deadline() -> None:
    assert Backoff(jitter=0).delay(elapsed=80_000, remaining=42.7) == 43
    assert Backoff(jitter=0).delay(elapsed=80_000, remaining=-5) == 0


def test_transient_failures_back_off_even_with_no_initial_delay() -> None:
    backoff = Backoff(initial=0, jitter=0)
    assert [backoff.delay(elapsed=0, transient_failures=n) for n in (1, 2, 3)] == [2, 4, 8]
