"""What a finished task announces (CONTRACT.md section 7): the completion event's detail, which is also
the Step Functions task output (section 9). Pure.

The detail is fitted under COMPLETION_DETAIL_BYTES, counted as AWS counts it (UTF-8 bytes of the JSON):
the inline texts of Text results go first, largest first, each leaving `textTruncated: true`; then the
messages, from the last. The caps on what a record holds (ocr_poller.limits) keep a record's results
and messages well within it, so the last resort, dropping result entries (`resultsOmitted` says how
many), is never reached by a record the poller wrote.
"""

from __future__ import annotations

from typing import Any

from ocr_poller.limits import EVENT_ENTRY_BYTES, json_bytes
from ocr_poller.model import Status, TaskRecord

SOURCE = "ocr.poller"
COMPLETED = "OCR Task Completed"
FAILED = "OCR Task Failed"
# Room for the rest of the PutEvents entry (Source, DetailType, EventBusName, Time) within its 256 KiB.
ENTRY_HEADROOM_BYTES = 4 * 1024
COMPLETION_DETAIL_BYTES = EVENT_ENTRY_BYTES - ENTRY_HEADROOM_BYTES


def detail_type(status: Status) -> str:
    """The event's detail-type for a task that ended with `status`."""
    return COMPLETED if status is Status.COMPLETED else FAILED


def completion_detail(record: TaskRecord, *, limit: int = COMPLETION_DETAIL_BYTES) -> dict[str, Any]:
    """The detail announcing that the task of `record` ended, at most `limit` bytes of JSON."""
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
    size = json_bytes(detail)
    if size > limit:
        size = _drop_texts(detail["results"], size, limit)
    if size > limit and "errorMessages" in detail:
        size = _drop_messages(detail, limit)
    if size > limit:
        _drop_results(detail, limit)
    return detail


def _drop_texts(results: list[dict[str, Any]], size: int, limit: int) -> int:
    """Drop inline texts, largest first, until the detail fits; its new size."""
    with_text = sorted(
        (entry for entry in results if isinstance(entry.get("text"), str)),
        key=lambda entry: json_bytes(entry["text"]),
        reverse=True,
    )
    for entry in with_text:
        size -= json_bytes(entry)
        del entry["text"]
        entry["textTruncated"] = True
        size += json_bytes(entry)
        if size <= limit:
            break
    return size


def _drop_messages(detail: dict[str, Any], limit: int) -> int:
    """Drop messages from the last, saying how many, until the detail fits; its new size."""
    messages: list[str] = detail["errorMessages"]
    total = len(messages)
    while messages:
        messages.pop()
        detail["errorMessages"] = [*messages, f"... and {total - len(messages)} more"]
        size = json_bytes(detail)
        if size <= limit:
            return size
    detail["errorMessages"] = [f"... and {total} more"]
    return json_bytes(detail)


def _drop_results(detail: dict[str, Any], limit: int) -> None:
    """Drop result entries from the last until the detail fits, saying how many in `resultsOmitted`."""
    results: list[dict[str, Any]] = detail["results"]
    total = len(results)
    while results and json_bytes(detail) > limit:
        results.pop()
        detail["resultsOmitted"] = total - len(results)
