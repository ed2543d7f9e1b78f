"""Completion events on EventBridge (CONTRACT.md section 7)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from ocr_poller.completion import SOURCE, detail_type
from ocr_poller.errors import Redeliver
from ocr_poller.model import Status

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef


class EventBridgeAnnouncer:
    """Puts one event per finished task."""

    def __init__(self, bus_name: str, *, client: EventBridgeClient | None = None) -> None:
        self._bus_name = bus_name
        self._events = client or boto3.client("events")

    def announce(self, status: Status, detail: dict[str, Any]) -> None:
        """Put the task's completion event; raise when EventBridge refuses it, so the message is retried."""
        entry: PutEventsRequestEntryTypeDef = {
            "Source": SOURCE,
            "DetailType": detail_type(status),
            "Detail": json.dumps(detail, ensure_ascii=False),
            "EventBusName": self._bus_name,
            "Resources": [],
        }
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            failed = response["Entries"][0]
            raise Redeliver(
                f"EventBridge refused the event: {failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
            )
