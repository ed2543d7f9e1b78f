"""Logs and metrics of the function: the logger, the metrics, and what each outcome adds to them."""

from __future__ import annotations

import os
import threading
import warnings

from aws_lambda_powertools.logging.logger import Logger
from aws_lambda_powertools.metrics.metrics import Metrics
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.metric_properties import MetricUnit

from ocr_poller.poll import Action, Outcome

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ocr-poller")
# Every line comes from _log below: its location would say nothing.
logger = Logger(service=SERVICE, location=None)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "OcrPoller"), service=SERVICE)
# Most invocations are routine checks, which add no metric (see _routine): that is no cause for a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# The checks of a batch run on threads; Powertools' metric set is a plain dict.
_metrics_lock = threading.Lock()


def record_outcome(outcome: Outcome) -> None:
    """Log the outcome with its task id, and count it."""
    _log(outcome)
    with _metrics_lock:
        for name, unit, value in _measurements(outcome):
            metrics.add_metric(name=name, unit=unit, value=value)


def _log(outcome: Outcome) -> None:
    record = outcome.record
    details = {
        "taskId": outcome.task_id,
        "status": record.status.value if record else None,
        "checkNumber": record.check_number if record else None,
        "delaySeconds": outcome.delay_seconds,
        "reason": outcome.reason or (record.last_error if record else None),
    }
    log = logger.warning if outcome.action is Action.REJECTED else logger.info
    if _routine(outcome):
        log = logger.debug
    log(f"poll request {outcome.action.value}", extra={k: v for k, v in details.items() if v is not None})


def _routine(outcome: Outcome) -> bool:
    """A task still running, checked again as planned: most checks are, so INFO leaves them out.

    INFO keeps a task's first check, its end, and anything out of the way (a transient failure, a
    duplicate, a resumed or rejected request); so do the metrics (_measurements).
    """
    record = outcome.record
    return (
        outcome.action is Action.REQUEUED
        and record is not None
        and record.check_number > 1
        and not record.last_error
        and not outcome.reason
    )


def _measurements(outcome: Outcome) -> list[tuple[str, MetricUnit, float]]:
    """The metrics of an outcome: a task's start and end, and what was out of the way.

    A routine check adds none: an EMF line for every check was half of the logs' bill, for counts that
    Lambda's Invocations metric and the task's ChecksPerTask at its end already give.
    """
    found: list[tuple[str, MetricUnit, float]] = []
    if outcome.action in (Action.DUPLICATE, Action.RESUMED, Action.REJECTED):
        found.append((f"Requests{outcome.action.value.capitalize()}", MetricUnit.Count, 1))
    record = outcome.record
    if record is None or outcome.action is Action.DUPLICATE:
        return found
    if outcome.checked and record.check_number == 1:
        found.append(("TasksStarted", MetricUnit.Count, 1))
    if outcome.checked and record.last_error:
        found.append(("TransientFailures", MetricUnit.Count, 1))
    if record.status.is_final:
        found += [
            (f"Tasks{record.status.value}", MetricUnit.Count, 1),
            ("ChecksPerTask", MetricUnit.Count, record.check_number),
            ("TimeToResult", MetricUnit.Seconds, record.last_check_at - record.first_check_at),
        ]
    return found
