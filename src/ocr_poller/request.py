"""The poll request (CONTRACT.md section 3): parsed and validated before anything reaches the API."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ocr_poller.errors import Refused
from ocr_poller.limits import MAX_TASK_TOKEN_BYTES

ENDPOINTS: tuple[str, ...] = (
    "RecognizeImage",
    "RecognizeLabel",
    "RecognizePdf",
    "RecognizeReceipt",
    "RecognizeRegions",
    "RecognizeTable",
    "RecognizeAndParseInvoice",
    "IdentifyFont",
    "DetectRegions",
    "BinarizeImage",
    "DeskewImage",
    "DewarpImage",
    "UpscaleImage",
    "DjVu2PDF",
    "ConvertTextToSpeech",
)
_ENDPOINTS_BY_LOWER = {name.lower(): name for name in ENDPOINTS}

# Task ids go into a URL query and an S3 key: letters, digits, '-' and '_' only (Aspose issues UUIDs).
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Step Functions task tokens are at most 2048 characters (SendTaskSuccess); they travel in message bodies
# and API calls, so only visible ASCII is accepted.
_TASK_TOKEN = re.compile(rf"[\x21-\x7e]{{1,{MAX_TASK_TOKEN_BYTES}}}")
MAX_BODY_BYTES = 8 * 1024  # a poll request: SQS body, EventBridge detail, or the detail inside a wrapper
# Lambda's on-failure record of a failed EventBridge invocation wraps the whole event (and the error):
# it may be larger than a request, up to SQS's largest message. Only its request must fit MAX_BODY_BYTES.
MAX_WRAPPER_BYTES = 1024 * 1024
# A hint can claim any check up to this; the record decides which check is made (CONTRACT.md section 3).
MAX_CHECK_HINT = 10**9
MAX_DEPTH = 32  # nesting of an event's detail accepted before it is parsed


@dataclass(frozen=True)
class PollRequest:
    """One task to check, and the hints the poller carries on the messages it re-queues."""

    task_id: str
    endpoint: str
    for_check: int = 1  # the check this request asks for: a hint, the task record decides
    task_token: str | None = field(default=None, repr=False)  # a Step Functions task token, carried along

    def to_message(self) -> dict[str, Any]:
        """The JSON body re-queued on the poll queue; `attempt` counts the checks made before this one."""
        message: dict[str, Any] = {
            "taskId": self.task_id,
            "endpoint": self.endpoint,
            "attempt": self.for_check - 1,
        }
        if self.task_token is not None:
            message["taskToken"] = self.task_token
        return message


def parse_body(body: str, *, default_endpoint: str) -> PollRequest:
    """Parse an SQS message body: a request, or Lambda's on-failure record of a failed EventBridge event."""
    too_large = Refused(f"body is larger than {MAX_BODY_BYTES} bytes")
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_WRAPPER_BYTES:
        raise too_large
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        if size > MAX_BODY_BYTES:
            raise too_large from None
        raise Refused(f"body is not JSON: {exc}") from exc
    wrapped = _wrapped_request(document)
    if wrapped is not None:
        return _parse_request(wrapped, default_endpoint, measured=False)
    if size > MAX_BODY_BYTES:
        raise too_large
    return _parse_request(document, default_endpoint, measured=True)


def parse_document(document: object, *, default_endpoint: str) -> PollRequest:
    """Validate a decoded request (an EventBridge detail, or a wrapper of one) of at most MAX_BODY_BYTES."""
    wrapped = _wrapped_request(document)
    return _parse_request(document if wrapped is None else wrapped, default_endpoint, measured=False)


def nesting_error(document: object, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a decoded JSON value cannot be a request's document (nested deeper than max_depth), or None.

    Walks without recursion, so that a value nested thousands deep is told apart before anything
    (json.dumps, a validator) recurses into it.
    """
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return None


def _wrapped_request(document: object) -> object | None:
    """The request inside Lambda's on-failure record of an EventBridge invocation, or None if not one."""
    if not isinstance(document, dict) or "taskId" in document:
        return None
    payload = document.get("requestPayload")
    if isinstance(payload, dict) and "detail" in payload:
        detail: object = payload["detail"]
        return detail
    return None


def _parse_request(document: object, default_endpoint: str, *, measured: bool) -> PollRequest:
    if not isinstance(document, dict):
        raise Refused(f"request must be a JSON object, not {type(document).__name__}")
    if _wrapped_request(document) is not None:
        raise Refused("the request is an on-failure record inside another one")
    if not measured:
        error = nesting_error(document)
        if error is not None:
            raise Refused(f"request is {error}")
        if len(json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise Refused(f"request is larger than {MAX_BODY_BYTES} bytes")
    task_id = document.get("taskId")
    if task_id is None:
        raise Refused("taskId is missing")
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise Refused(f"taskId {_preview(task_id)} is not a plain identifier")
    return PollRequest(
        task_id=task_id,
        endpoint=_endpoint(document.get("endpoint"), default_endpoint),
        for_check=_checks_made(document.get("attempt", 0)) + 1,
        task_token=_task_token(document.get("taskToken")),
    )


def canonical_endpoint(value: object) -> str:
    """The endpoint's own spelling, matched case-insensitively."""
    if not isinstance(value, str) or value.lower() not in _ENDPOINTS_BY_LOWER:
        raise Refused(f"endpoint {_preview(value)} is not a v5 result endpoint")
    return _ENDPOINTS_BY_LOWER[value.lower()]


def _endpoint(value: object, default_endpoint: str) -> str:
    return default_endpoint if value is None else canonical_endpoint(value)


def _checks_made(value: object) -> int:
    """The message's `attempt`: checks made before the one it asks for, a lenient hint."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CHECK_HINT:
        raise Refused(f"attempt {_preview(value)} is not a count of checks")
    return value


def _task_token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TASK_TOKEN.fullmatch(value):
        raise Refused(
            "taskToken is not a Step Functions task token "
            f"({MAX_TASK_TOKEN_BYTES} visible ASCII characters at most)"
        )
    return value


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class EventShape(StrEnum):
    """The two invocations that carry poll requests."""

    SQS = "sqs"
    EVENTBRIDGE = "eventbridge"


def event_shape(event: object) -> EventShape:
    """Which of the two shapes the event has; Refused says why it has neither."""
    if not isinstance(event, dict):
        raise Refused(f"an event must be a JSON object, not {type(event).__name__}")
    if "Records" in event:
        _check_sqs_records(event["Records"])
        return EventShape.SQS
    if "detail-type" in event or "source" in event or "detail" in event:
        if "detail" not in event:
            raise Refused("EventBridge event without detail")
        error = nesting_error(event["detail"])
        if error is not None:
            raise Refused(f"EventBridge event whose detail is {error}")
        return EventShape.EVENTBRIDGE
    keys = ", ".join(_preview(key) for key in list(event)[:10])
    raise Refused(f"neither an SQS batch nor an EventBridge event (keys: {keys})")


def _check_sqs_records(records: object) -> None:
    """SQS records from Lambda's event source: S3, SNS, Kinesis or DynamoDB records carry `Records` too."""
    if not isinstance(records, list) or not records:
        raise Refused("Records is not a list of SQS records")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise Refused(f"record {index} of Records is not an object")
        source = record.get("eventSource", record.get("EventSource"))
        if source != "aws:sqs":
            raise Refused(f"record {index} comes from {_preview(source)}, not from SQS (aws:sqs)")
        if not isinstance(record.get("messageId"), str) or not isinstance(record.get("body"), str):
            raise Refused(f"SQS record {index} has no messageId or body")
