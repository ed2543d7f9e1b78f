"""What each outcome writes at INFO and counts: a task's first check, its end, anything out of the way."""

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
    checked = action in (Action.REQUEUED, Action.FINISHED)
    return Outcome(action, TASK, record, delay_seconds=2, reason=extra.get("reason"), checked=checked)


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


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # as observability.py does
@pytest.mark.parametrize(
    ("result", "counted"),
    [
        (outcome(Action.REQUEUED, 1), {"TasksStarted": 1.0}),
        (outcome(Action.REQUEUED, 5), {}),
        (outcome(Action.REQUEUED, 5, error="HTTP 503: unexpected status"), {"TransientFailures": 1.0}),
        (
            outcome(Action.FINISHED, 6, Status.COMPLETED),
            {"TasksCompleted": 1.0, "ChecksPerTask": 6.0, "TimeToResult": 1.0},
        ),
        (
            outcome(Action.FINISHED, 1, Status.NOT_EXIST),
            {"TasksStarted": 1.0, "TasksNotExist": 1.0, "ChecksPerTask": 1.0, "TimeToResult": 1.0},
        ),
        (outcome(Action.DUPLICATE, 5), {"RequestsDuplicate": 1.0}),
        (
            outcome(Action.RESUMED, 5, Status.ERROR),
            {"RequestsResumed": 1.0, "TasksError": 1.0, "ChecksPerTask": 5.0, "TimeToResult": 1.0},
        ),
    ],
)
def test_a_routine_requeue_adds_no_metric_and_the_others_count_what_they_did(
    result: Outcome,
    counted: dict[str, float],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given metrics on, as deployed
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    observability.metrics.clear_metrics()
    capsys.readouterr()
    # When the outcome is recorded and the invocation's metrics flushed
    observability.record_outcome(result)
    observability.metrics.flush_metrics()
    # Then the EMF line holds exactly its metrics, or there is no line at all
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    if not counted:
        assert lines == []
        return
    (emf,) = lines
    names = [metric["Name"] for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert {name: emf[name][0] for name in names} == counted
