"""Values shared by the domain and the adapters: stored results and the task record (CONTRACT.md 5-6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Status(StrEnum):
    """A task's status in its record; the first five are the API's own spellings."""

    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"
    NOT_EXIST = "NotExist"
    EXPIRED = "Expired"

    @property
    def is_final(self) -> bool:
        """Whether the poll chain ends with this status."""
        return self not in (Status.PENDING, Status.PROCESSING)


@dataclass(frozen=True)
class StoredResult:
    """One decoded result written to S3; a small Text result also carries its decoded text."""

    type: str
    bucket: str
    key: str
    content_type: str
    size: int
    sha256: str
    text: str | None = None  # the whole result decoded, when it is a Text of at most INLINE_TEXT_BYTES
    text_truncated: bool = False  # a Text result whose text is in S3 only (too large, not UTF-8, over budget)

    def to_dict(self) -> dict[str, str | int | bool]:
        """The record's and the event's JSON shape."""
        shape: dict[str, str | int | bool] = {
            "type": self.type,
            "bucket": self.bucket,
            "key": self.key,
            "contentType": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.text is not None:
            shape["text"] = self.text
        if self.text_truncated:
            shape["textTruncated"] = True
        return shape


class Stage(StrEnum):
    """Where a committed check stands with its effects (the chain's table is in ocr_poller.poll)."""

    SENDING = "sending"  # committed; its effects are being sent by whoever holds the lease
    SENT = "sent"  # a final check's callback and event went out: nothing is left to do


@dataclass(frozen=True)
class TaskRecord:
    """The DynamoDB item of one task, written once per check: the authority on the task's chain."""

    task_id: str
    endpoint: str
    status: Status
    check_number: int  # the latest check made, 1 for the first; stored as `attempts`
    first_check_at: float
    last_check_at: float
    committed_by: str  # the delivery (SQS message id or EventBridge event id) whose check wrote this
    stage: Stage = Stage.SENDING
    lease_expires_at: float = 0.0  # until then the committing (or claiming) invocation is sending the effects
    task_token: str | None = field(default=None, repr=False)  # Step Functions waits on it
    results: tuple[StoredResult, ...] = ()
    error_messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    response_status_code: str | None = None
    last_error: str | None = None  # the latest transient failure, cleared by a good answer
    transient_failures: int = 0  # consecutive ones
    retry_after: float | None = None  # the API's Retry-After on the latest failure


@dataclass(frozen=True)
class Answer(Generic[T]):
    """The API's answer to a status check; `results` holds what the result sink returned, in order."""

    task_id: str | None
    task_status: str | None
    response_status_code: str | None
    error_messages: tuple[str, ...]
    warnings: tuple[str, ...]
    results: tuple[T, ...]
