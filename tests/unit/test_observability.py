"""What each outcome writes at INFO: a task's first check, its end, and anything out of the way."""

from __future__ import annotations

import io
import json

import pytest

from ocr_poller import observability
from ocr_poller.model import Status, TaskRecord
from ocr_poller.poll import Action, Outcome

TASK = "c4b60313-4f78-45f8-b708-069eb98dc22e"


def outcome(action: Action, check: int, status: Status = Status.PENDING, **extra: str) -> Outcome:
    record = TaskRecord(TASK, "RecognizeLabel", status, check, 0.0, 1.0, "m1", last_error=extra.get("error"))
    return Outcome(action, TASK, record, delay_seconds=2, reason=extra.get("reason"))


@pytest.mark.parametrize(
    ("result", "logged"),
    [
        (outcome(Action.REQUEUED, 1), True),
        (outcome(Action.REQUEUED, 5), False),
        (outcome(Action.REQUEUED, 5, error="HTTP 503: unexpected status"), True),
        (outcome(Action.REQUEUED, 5, reason="Step Functions refused the heartbeat's task token"), True),
        (outcome(Action.FINISHED, 6, Status.COMPLETED), True),
        (outcome(Action.DUPLICATE, 5), True),
        (outcome(Action.RESUMED, 5), True),
    ],
)
def test_only_a_routine_requeue_stays_below_info(
    result: Outcome, logged: bool, function_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function's log at INFO, captured (function_log)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    observability.logger.setLevel("INFO")
    # When
    observability.record_outcome(result)
    # Then
    lines = [json.loads(line) for line in function_log.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ([f"poll request {result.action.value}"] if logged else [])
