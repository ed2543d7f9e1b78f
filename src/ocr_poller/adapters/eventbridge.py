"""Completion events on EventBridge (CONTRACT.md section 7)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from ocr_poller.errors import Redeliver
from ocr_poller.model import Status, TaskRecord

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "ocr.poller"
COMPLETED = "OCR Task Completed"
FAILED = "OCR Task Failed"


def completion_event(record: TaskRecord, bus_name: str) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry announcing that a task ended."""
    detail: dict[str, Any] = {
        "taskId": record.task_id,
        "endpoint": record.endpoint,
        "status": record.status.value,
        "attempts": record.attempts,
        "results": [result.to_dict() for result in record.results],
    }
    if record.error_messages:
        detail["errorMessages"] = list(record.error_messages)
    if record.response_status_code:
        detail["responseStatusCode"] = record.response_status_code
    return {
        "Source": SOURCE,
        "DetailType": COMPLETED if record.status is Status.COMPLETED else FAILED,
        "Detail": json.dumps(detail),
        "EventBusName": bus_name,
        "Resources": [],
    }


class EventBridgeAnnouncer:
    """Puts one event per finished task."""

    def __init__(self, bus_name: str, *, client: EventBridgeClient | None = None) -> None:
        self._bus_name = bus_name
        self._events = client or boto3.client("events")

    def announce(self, record: TaskRecord) -> None:
        """Put the task's completion event; raise when EventBridge refuses it, so the message is retried."""
        response = self._events.put_events(Entries=[completion_event(record, self._bus_name)])
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise Redeliver(
                f"EventBridge refused the event: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )
