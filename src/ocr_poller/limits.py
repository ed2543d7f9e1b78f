"""What of an answer the poller keeps (CONTRACT.md section 10): the one place that bounds it.

The API is outside the trust boundary: every string it sends is capped in UTF-8 bytes before it reaches
a record, an event, a callback, a log line or a header, the number of results kept is capped, and the
record and the completion event are measured as AWS measures them before they are sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ocr_poller.model import StoredResult

DYNAMODB_ITEM_BYTES = 400 * 1024  # DynamoDB's item limit (names + values, UTF-8)
EVENT_ENTRY_BYTES = 256 * 1024  # PutEvents entry limit, also Step Functions' output limit

MAX_RESULTS = 100  # an answer with more ends the task `Error`: OCR results come in ones and twos
MAX_FIELD_BYTES = 256  # id, taskStatus, responseStatusCode, a result's type
MAX_MESSAGES = 20  # error.messages and warnings each
MAX_MESSAGE_BYTES = 2000
MAX_REASON_BYTES = 1000  # a failure's own explanation (lastError, rejectReason, log lines)
MAX_TOKEN_BYTES = 8192  # an access_token; the bearer header carries it
MAX_TASK_TOKEN_BYTES = 2048  # a Step Functions task token (SendTaskSuccess's taskToken: 1..2048)
# Inline text of Text results (INLINE_TEXT_BYTES each): all of them together stay within this, so that
# MAX_RESULTS entries, the messages and the texts fit one event with room to spare.
INLINE_TEXT_BUDGET_BYTES = 128 * 1024
DEFAULT_INLINE_TEXT_BYTES = 16 * 1024


def capped(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, cut at a character boundary, storable (no lone surrogates)."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return encoded.decode("utf-8")
    marker = "…"
    return encoded[: max(0, limit - len(marker.encode()))].decode("utf-8", "ignore") + marker


def capped_messages(messages: tuple[str, ...]) -> tuple[str, ...]:
    """At most MAX_MESSAGES messages of MAX_MESSAGE_BYTES each, and a last line saying how many were left."""
    kept = tuple(capped(message, MAX_MESSAGE_BYTES) for message in messages[:MAX_MESSAGES])
    dropped = len(messages) - len(kept)
    return kept + ((f"... and {dropped} more",) if dropped else ())


def json_bytes(document: Any) -> int:
    """Size of a JSON document in UTF-8 bytes, as AWS counts a PutEvents `Detail` or a task output."""
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def within_text_budget(
    results: Sequence[StoredResult], budget: int = INLINE_TEXT_BUDGET_BYTES
) -> tuple[StoredResult, ...]:
    """The results with their inline texts, in order, while the texts' UTF-8 total stays within `budget`.

    A text that would pass the budget is dropped (`textTruncated`, the text stays in S3); a smaller one
    after it may still fit. What the record keeps bounds what the event and the callback output carry.
    """
    kept: list[StoredResult] = []
    remaining = budget
    for result in results:
        if result.text is not None:
            size = len(result.text.encode("utf-8"))
            if size > remaining:
                result = replace(result, text=None, text_truncated=True)
            else:
                remaining -= size
        kept.append(result)
    return tuple(kept)
