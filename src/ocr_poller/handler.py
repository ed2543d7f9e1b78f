"""Lambda entry point: tells an SQS batch from an EventBridge event and hands each request to poll."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ocr_poller.concurrent_batch import ConcurrentBatchProcessor
from ocr_poller.config import Settings
from ocr_poller.poll import Action, Collaborators, Outcome, process_body, process_detail
from ocr_poller.wiring import build_collaborators

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ocr-poller")
logger = Logger(service=SERVICE)
# Only botocore: patching every supported library at import costs cold start for nothing we use.
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "OcrPoller"), service=SERVICE)

_metrics_lock = threading.Lock()
_cache: dict[tuple[Settings, str | None], Collaborators] = {}


class UnknownEventError(ValueError):
    """The event is neither an SQS batch nor an EventBridge event."""


def wired() -> tuple[Settings, Collaborators]:
    """Settings and adapters for the current environment, built on first use and reused while warm.

    Keyed on the environment: in Lambda it never changes, while tests and the local run point one
    process at several stacks in turn.
    """
    settings = Settings.from_env()
    key = (settings, os.environ.get("AWS_ENDPOINT_URL"))
    if key not in _cache:
        _cache.clear()
        _cache[key] = build_collaborators(settings)
    return settings, _cache[key]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    """Check every request of the event once; SQS failures are reported per record."""
    settings, deps = wired()
    if isinstance(event.get("Records"), list):
        processor = ConcurrentBatchProcessor(max_workers=settings.max_concurrent_checks, logger=logger)

        def record_handler(record: SQSRecord) -> None:
            logger.thread_safe_append_keys(messageId=record.message_id)
            _count(process_body(record.body, record.message_id, deps))

        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    if "detail" in event and "detail-type" in event:
        bridge_event = EventBridgeEvent(event)
        logger.append_keys(eventId=bridge_event.get_id)
        outcome = process_detail(bridge_event.detail, bridge_event.get_id, deps)
        _count(outcome)
        return {"action": outcome.action.value, "taskId": outcome.task_id}
    raise UnknownEventError(f"unsupported event with keys {sorted(event)[:10]}")


def _count(outcome: Outcome) -> None:
    """Log the outcome with its task id, and count it."""
    record = outcome.record
    details = {
        "taskId": outcome.task_id,
        "status": record.status.value if record else None,
        "attempts": record.attempts if record else None,
        "delaySeconds": outcome.delay_seconds,
        "reason": outcome.reason or (record.last_error if record else None),
    }
    log = logger.warning if outcome.action is Action.REJECTED else logger.info
    log(f"poll request {outcome.action.value}", extra=details)
    with _metrics_lock:
        metrics.add_metric(
            name=f"Requests{outcome.action.value.capitalize()}", unit=MetricUnit.Count, value=1
        )
        if outcome.checked:
            metrics.add_metric(name="Checks", unit=MetricUnit.Count, value=1)
        if record is None or outcome.action is Action.DUPLICATE:
            return
        if outcome.checked and record.last_error:
            metrics.add_metric(name="TransientFailures", unit=MetricUnit.Count, value=1)
        if record.status.is_final:
            metrics.add_metric(name=f"Tasks{record.status.value}", unit=MetricUnit.Count, value=1)
            metrics.add_metric(name="AttemptsPerTask", unit=MetricUnit.Count, value=record.attempts)
            metrics.add_metric(
                name="TimeToResult",
                unit=MetricUnit.Seconds,
                value=record.last_check_at - record.first_check_at,
            )
