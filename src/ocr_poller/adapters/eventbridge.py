"""Completion events on EventBridge (CONTRACT.md section 7)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from ocr_poller.completion import COMPLETED, FAILED, SOURCE, detail_type
from ocr_poller.errors import Redeliver
from ocr_poller.limits import EVENT_ENTRY_BYTES
from ocr_poller.model import Status

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

__all__ = ["COMPLETED", "FAILED", "SOURCE", "EventBridgeAnnouncer", "completion_entry", "entry_bytes"]

TIME_BYTES = 14  # what AWS counts for an entry's Time, when it has one


def completion_entry(status: Status, detail: dict[str, Any], bus_name: str) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry announcing that a task ended with `status`."""
    return {
        "Source": SOURCE,
        "DetailType": detail_type(status),
        # Compact and in UTF-8 as it is: escaped non-ASCII would count up to three times its bytes.
        "Detail": json.dumps(detail, ensure_ascii=False, separators=(",", ":")),
        "EventBusName": bus_name,
        "Resources": [],
    }


def entry_bytes(entry: PutEventsRequestEntryTypeDef) -> int:
    """The entry's size as EventBridge counts it ("Calculating PutEvents event entry size"): Time as 14
    bytes, Source, DetailType, Detail and each of Resources in UTF-8 bytes; the bus name is counted too,
    which AWS does not, so the guard errs on the safe side."""
    fields = [entry.get("Source", ""), entry.get("DetailType", ""), entry.get("Detail", "")]
    fields += [entry.get("EventBusName", ""), *entry.get("Resources", [])]
    return (TIME_BYTES if "Time" in entry else 0) + sum(len(text.encode("utf-8")) for text in fields)


class EventBridgeAnnouncer:
    """Puts one event per finished task."""

    def __init__(self, bus_name: str, *, client: EventBridgeClient | None = None) -> None:
        self._bus_name = bus_name
        self._events = client or boto3.client("events")

    def announce(self, status: Status, detail: dict[str, Any]) -> None:
        """Put the task's completion event; raise when it is too large or EventBridge refuses it, so that
        the message is retried (and, never fitting, ends in the dead-letter queue with the reason)."""
        entry = completion_entry(status, detail, self._bus_name)
        size = entry_bytes(entry)
        if size >= EVENT_ENTRY_BYTES:
            # The poll fits the detail first (completion.completion_detail): this is the last guard.
            raise Redeliver(
                f"the completion event of task {detail.get('taskId')} is {size} bytes; "
                f"EventBridge takes entries under {EVENT_ENTRY_BYTES}"
            )
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            failed = response["Entries"][0]
            raise Redeliver(
                f"EventBridge refused the event: {failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
            )
