"""What a finished task announces: the completion event's detail, also the Step Functions output (pure)."""

from __future__ import annotations

from typing import Any

from ocr_poller.limits import EVENT_ENTRY_BYTES, json_bytes
from ocr_poller.model import Status, TaskRecord

SOURCE = "ocr.poller"
COMPLETED = "OCR Task Completed"
FAILED = "OCR Task Failed"
# The entry's other parts (source, detail-type, bus name, time) and a margin for JSON spacing.
_ENTRY_HEADROOM_BYTES = 2048


def detail_type(status: Status) -> str:
    """The event's detail-type for a task that ended with `status`."""
    return COMPLETED if status is Status.COMPLETED else FAILED


def completion_detail(record: TaskRecord) -> dict[str, Any]:
    """The detail of the task's completion event: S3 locations, inline texts that fit, the API's messages.

    Fitted under the 256 KiB of an event entry (and of a Step Functions output) in UTF-8 bytes: when the
    whole does not fit, inline texts go first (`textTruncated`), then messages.
    """
    detail: dict[str, Any] = {
        "taskId": record.task_id,
        "endpoint": record.endpoint,
        "status": record.status.value,
        "attempts": record.check_number,
        "results": [result.to_dict() for result in record.results],
    }
    if record.error_messages:
        detail["errorMessages"] = list(record.error_messages)
    if record.response_status_code:
        detail["responseStatusCode"] = record.response_status_code
    return _fitted(detail, EVENT_ENTRY_BYTES - _ENTRY_HEADROOM_BYTES)


def _fitted(detail: dict[str, Any], limit: int) -> dict[str, Any]:
    for result in sorted(detail["results"], key=lambda entry: -len(entry.get("text", ""))):
        if json_bytes(detail) <= limit:
            return detail
        if "text" in result:
            del result["text"]
            result["textTruncated"] = True
    while json_bytes(detail) > limit and detail.get("errorMessages"):
        detail["errorMessages"].pop()
    return detail
