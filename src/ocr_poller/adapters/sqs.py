"""The poll queue on SQS: successors with their delay, and invalid requests to the dead-letter queue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3

from ocr_poller.request import PollRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_REASON_CHARS = 1000


class SqsPollQueue:
    """Sends poll requests; a queue without a dead-letter URL leaves rejects to the redrive policy."""

    def __init__(
        self, queue_url: str, dead_letter_queue_url: str | None, *, client: SQSClient | None = None
    ) -> None:
        self._queue_url = queue_url
        self._dead_letter_queue_url = dead_letter_queue_url
        self._sqs = client or boto3.client("sqs")

    def send(self, request: PollRequest, delay_seconds: int) -> None:
        """Queue the next check of a task, visible after the delay."""
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps(request.to_message(), separators=(",", ":")),
            DelaySeconds=delay_seconds,
        )

    def dead_letter(self, body: str, reason: str) -> bool:
        """Move an invalid request to the dead-letter queue with the reason beside it; False without one."""
        if self._dead_letter_queue_url is None:
            return False
        self._sqs.send_message(
            QueueUrl=self._dead_letter_queue_url,
            MessageBody=body or "(empty body)",
            MessageAttributes={
                "rejectReason": {"DataType": "String", "StringValue": reason[:MAX_REASON_CHARS]},
            },
        )
        return True
