"""Lambda entry point: tells an SQS batch from an EventBridge event and hands each request to poll."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ocr_poller.batch import ConcurrentBatchProcessor
from ocr_poller.limits import MAX_FIELD_BYTES, capped
from ocr_poller.observability import logger, metrics, record_outcome
from ocr_poller.poll import Delivery, process_body, process_detail
from ocr_poller.request import nesting_error
from ocr_poller.wiring import Wiring, real_wiring


class UnknownEventError(ValueError):
    """The event can be neither an SQS batch of poll requests nor an EventBridge event carrying one."""


class EventShape(StrEnum):
    SQS = "sqs"
    EVENTBRIDGE = "eventbridge"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext, wiring: Wiring | None = None) -> Mapping[str, Any]:
    """Check every request of the event once; SQS failures are reported per record.

    Lambda passes no wiring: the real one is built on first use and reused while warm. Tests and the
    local run pass their own. An event of another shape is logged with the reason and left alone:
    no retry would make it a poll request.
    """
    try:
        shape = event_shape(event)
    except UnknownEventError as exc:
        logger.warning("event rejected", extra={"reason": str(exc)})
        return {"action": "rejected", "reason": str(exc)}
    wiring = wiring or real_wiring()
    deps = wiring.collaborators
    # The invocation's end on the collaborators' clock: no check may outlive it.
    ends_at = deps.clock() + context.get_remaining_time_in_millis() / 1000
    if shape is EventShape.SQS:
        processor = ConcurrentBatchProcessor(max_workers=wiring.max_concurrent_checks, logger=logger)

        def record_handler(record: SQSRecord) -> None:
            logger.thread_safe_append_keys(messageId=record.message_id)
            delivery = Delivery(record.message_id, ends_at, from_queue=True)
            record_outcome(process_body(record.body, delivery, deps))

        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    event_id = capped(str(event.get("id")), MAX_FIELD_BYTES)
    logger.append_keys(eventId=event_id)
    outcome = process_detail(event["detail"], Delivery(event_id, ends_at, from_queue=False), deps)
    record_outcome(outcome)
    return {"action": outcome.action.value, "taskId": outcome.task_id}


def event_shape(event: object) -> EventShape:
    """Which of the two shapes the event has; UnknownEventError says why it has neither."""
    if not isinstance(event, dict):
        raise UnknownEventError(f"an event must be a JSON object, not {type(event).__name__}")
    if "Records" in event:
        _check_sqs_records(event["Records"])
        return EventShape.SQS
    if "detail-type" in event or "source" in event or "detail" in event:
        if "detail" not in event:
            raise UnknownEventError("EventBridge event without detail")
        error = nesting_error(event["detail"])
        if error is not None:
            raise UnknownEventError(f"EventBridge event whose detail is {error}")
        return EventShape.EVENTBRIDGE
    keys = ", ".join(_preview(key) for key in list(event)[:10])
    raise UnknownEventError(f"neither an SQS batch nor an EventBridge event (keys: {keys})")


def _check_sqs_records(records: object) -> None:
    """SQS records from Lambda's event source: S3, SNS, Kinesis or DynamoDB records carry `Records` too."""
    if not isinstance(records, list) or not records:
        raise UnknownEventError("Records is not a list of SQS records")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise UnknownEventError(f"record {index} of Records is not an object")
        source = record.get("eventSource", record.get("EventSource"))
        if source != "aws:sqs":
            raise UnknownEventError(f"record {index} comes from {_preview(source)}, not from SQS (aws:sqs)")
        if not isinstance(record.get("messageId"), str) or not isinstance(record.get("body"), str):
            raise UnknownEventError(f"SQS record {index} has no messageId or body")


def _preview(value: object) -> str:
    return capped(repr(value), 80)
