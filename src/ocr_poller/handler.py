"""Lambda entry point: tells an SQS batch from an EventBridge event and hands each request to poll."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ocr_poller.batch import SqsRecord, check_batch
from ocr_poller.errors import Refused
from ocr_poller.limits import MAX_FIELD_BYTES, capped
from ocr_poller.observability import logger, metrics, record_outcome
from ocr_poller.poll import Delivery, process_body, process_detail
from ocr_poller.request import EventShape, event_shape
from ocr_poller.wiring import Wiring, real_wiring


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
    except Refused as exc:
        logger.warning("event rejected", extra={"reason": str(exc)})
        return {"action": "rejected", "reason": str(exc)}
    wiring = wiring or real_wiring()
    deps = wiring.collaborators
    # The invocation's end on the collaborators' clock: no check may outlive it.
    ends_at = deps.clock() + context.get_remaining_time_in_millis() / 1000
    if shape is EventShape.SQS:

        def check(record: SqsRecord) -> None:
            logger.thread_safe_append_keys(messageId=record["messageId"])
            delivery = Delivery(record["messageId"], ends_at, from_queue=True)
            record_outcome(process_body(record["body"], delivery, deps))

        return check_batch(event["Records"], check, max_workers=wiring.max_concurrent_checks)
    event_id = capped(str(event.get("id")), MAX_FIELD_BYTES)
    logger.append_keys(eventId=event_id)
    outcome = process_detail(event["detail"], Delivery(event_id, ends_at, from_queue=False), deps)
    record_outcome(outcome)
    return {"action": outcome.action.value, "taskId": outcome.task_id}
