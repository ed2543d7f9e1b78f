"""The delay policy between two checks of a task (pure).

The promise: a task that finishes T seconds after its first check is seen no later than
max(initial, lag_ratio * T) after it finished. If the previous check ran at elapsed time e, the task
may have finished just after it, so the next check must come within max(initial, lag_ratio * e):
that gap, less the time already spent since the check and a margin for what follows the delay (SQS
handing the message to Lambda, the next invocation reaching the API), rounded down to SQS's whole
seconds, is the longest wait that keeps the promise, so taking it gives the fewest checks. The gaps
grow geometrically (by about 1 + lag_ratio) once past initial / lag_ratio seconds.
benchmarks/ replays a mix of tasks through this policy: `python -m benchmarks.run`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

SQS_MAX_DELAY_SECONDS = 900  # the longest DelaySeconds SQS accepts


@dataclass(frozen=True)
class Backoff:
    """How long to wait before the next check."""

    initial: int = 2
    maximum: int = SQS_MAX_DELAY_SECONDS
    lag_ratio: float = 0.25
    jitter: float = 0.1  # at most this share of a delay is taken off at random, to spread load
    # Seconds kept for delivery after the delay: the mean of the 0-1 s SQS-to-Lambda latency benchmarked;
    # it buys 98.5% -> 99.2% of tasks seen within the promise for 4% more checks.
    margin: float = 0.5

    def promised_gap(self, elapsed: float) -> float:
        """The longest gap after a check at `elapsed` seconds that keeps the promise."""
        return max(float(self.initial), self.lag_ratio * elapsed)

    def delay(
        self,
        *,
        elapsed: float,
        spent: float = 0.0,
        transient_failures: int = 0,
        retry_after: float | None = None,
        remaining: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> int:
        """Whole seconds of SQS delay for the next check.

        elapsed: seconds from the first check to this one; spent: seconds since this check (the time
        already used counts against the gap); transient_failures: consecutive failed checks, which
        back off exponentially instead; retry_after: the API's own wish, which wins; remaining:
        seconds left before the deadline, so the last check lands on it.
        """
        gap = self.promised_gap(elapsed)
        if gap < self.maximum:
            # The margin comes out of the growth only: at the initial gap, rounding `gap - spent` down to
            # whole seconds already leaves almost a second; at SQS's maximum the promise outgrows the gap.
            gap = max(float(self.initial), gap - self.margin)
        if transient_failures:
            # At least a second per doubling, so that an initial delay of 0 still backs off a failing API.
            gap = max(gap, max(1, self.initial) * 2.0 ** min(transient_failures, 16))
        seconds = math.floor(gap - spent)
        # Jitter only shortens the wait (so it never breaks the promise), and never below a whole second.
        seconds -= math.floor(self.jitter * seconds * rng())
        if retry_after is not None:
            seconds = max(seconds, math.ceil(retry_after))
        if remaining is not None:
            # Rounded up: the last check lands on the deadline, not a moment before it (which would answer
            # Pending and cost one more check straight after).
            seconds = min(seconds, math.ceil(remaining))
        return max(0, min(self.maximum, seconds))
