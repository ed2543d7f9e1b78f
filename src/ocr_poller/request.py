"""The poll request (CONTRACT.md section 3): parsed and validated before anything reaches the API."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ocr_poller.errors import Refused

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
MAX_BODY_BYTES = 8 * 1024
MAX_TASK_TOKEN_CHARS = 2048  # Step Functions' own limit on a task token
# A hint can claim any check up to this; the record decides which check is made (CONTRACT.md section 3).
MAX_CHECK_HINT = 10**9


@dataclass(frozen=True)
class PollRequest:
    """One task to check, with the poller's own chain state."""

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
    """Parse an SQS message body."""
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise Refused(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Refused(f"body is not JSON: {exc}") from exc
    return parse_document(document, default_endpoint=default_endpoint)


def parse_document(document: object, *, default_endpoint: str) -> PollRequest:
    """Validate a decoded request (an SQS body or an EventBridge detail)."""
    if not isinstance(document, dict):
        raise Refused(f"request must be a JSON object, not {type(document).__name__}")
    payload = document.get("requestPayload")
    if "taskId" not in document and isinstance(payload, dict) and "detail" in payload:
        # An EventBridge invocation that failed reaches the DLQ wrapped by Lambda's on-failure
        # destination; redriven to the poll queue, its request is the original event's detail.
        return parse_document(payload["detail"], default_endpoint=default_endpoint)
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
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_CHECK_HINT:
        raise Refused(f"attempt {_preview(value)} is not a count of checks")
    return value


def _task_token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TASK_TOKEN_CHARS:
        raise Refused(f"taskToken must be a string of 1 to {MAX_TASK_TOKEN_CHARS} characters")
    return value


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
