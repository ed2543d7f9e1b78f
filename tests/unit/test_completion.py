"""The completion event's detail and entry: fitted and measured as AWS measures them (CONTRACT.md 7, 10)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from ocr_poller.adapters.eventbridge import (
    COMPLETED,
    FAILED,
    SOURCE,
    EventBridgeAnnouncer,
    completion_entry,
    entry_bytes,
)
from ocr_poller.completion import COMPLETION_DETAIL_BYTES, completion_detail
from ocr_poller.errors import Redeliver
from ocr_poller.limits import (
    EVENT_ENTRY_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES,
    MAX_RESULTS,
    capped,
    json_bytes,
)
from ocr_poller.model import Status, StoredResult, TaskRecord


@dataclass(frozen=True)
class InlineResult(StoredResult):
    """A stored result whose dict carries inline text, as the record's Text results do (section 5)."""

    text: str | None = None

    def to_dict(self) -> dict[str, Any]:  # type: ignore[override]
        shape: dict[str, Any] = dict(super().to_dict())
        if self.text is not None:
            shape["text"] = self.text
        return shape


def result(index: int, text: str | None = None, key_bytes: int = 60) -> InlineResult:
    key = f"results/{'k' * key_bytes}/{index}-text.txt"
    return InlineResult("Text", "bucket", key, "text/plain; charset=utf-8", 10, "0" * 64, text)


def record(
    status: Status = Status.COMPLETED, results: tuple[StoredResult, ...] = (), messages: tuple[str, ...] = ()
) -> TaskRecord:
    return TaskRecord(
        "task-1", "RecognizeLabel", status, 3, 0.0, 1.0, "m", results=results, error_messages=messages
    )


def test_a_small_detail_is_the_records_announcement_unchanged() -> None:
    detail = completion_detail(record(results=(result(0, "ACME"),)))
    assert detail == {
        "taskId": "task-1",
        "endpoint": "RecognizeLabel",
        "status": "Completed",
        "attempts": 3,
        "results": [result(0, "ACME").to_dict()],
    }


def test_inline_texts_are_dropped_largest_first_until_the_detail_fits() -> None:
    # Given texts of 100 KiB, 120 KiB and 60 KiB of two-byte characters, and a small one
    texts = ["é" * 51_200, "é" * 61_440, "é" * 30_720, "small"]
    detail = completion_detail(record(results=tuple(result(i, t) for i, t in enumerate(texts))))
    # Then the largest went first, and only as many as needed
    kept = [entry.get("text") for entry in detail["results"]]
    truncated = [entry.get("textTruncated", False) for entry in detail["results"]]
    assert kept == [texts[0], None, texts[2], "small"]
    assert truncated == [False, True, False, False]
    assert json_bytes(detail) <= COMPLETION_DETAIL_BYTES


def test_messages_are_trimmed_when_texts_are_not_enough() -> None:
    # Given a failed task with the largest messages a record may hold, and a detail limit below them
    messages = tuple(capped("ошибка " * 1000, MAX_MESSAGE_BYTES) for _ in range(MAX_MESSAGES))
    detail = completion_detail(record(Status.ERROR, messages=messages), limit=10_000)
    # Then the first messages stay and the last line counts the others
    assert json_bytes(detail) <= 10_000
    kept = detail["errorMessages"]
    assert kept[:-1] == list(messages[: len(kept) - 1])
    assert kept[-1] == f"... and {MAX_MESSAGES - len(kept) + 1} more"


def test_the_largest_record_the_caps_allow_fits_one_event() -> None:
    # Given MAX_RESULTS results with long keys and 16 KiB texts, and MAX_MESSAGES messages of the cap
    results = tuple(result(i, "ü" * 8192, key_bytes=700) for i in range(MAX_RESULTS))
    messages = tuple("€" * (MAX_MESSAGE_BYTES // 3) for _ in range(MAX_MESSAGES))
    detail = completion_detail(record(Status.COMPLETED, results, messages))
    entry = completion_entry(Status.COMPLETED, detail, "default")
    # Then every result is listed, the messages are whole, and the entry is under EventBridge's limit
    assert len(detail["results"]) == MAX_RESULTS and "resultsOmitted" not in detail
    assert detail["errorMessages"] == list(messages)
    assert entry_bytes(entry) < EVENT_ENTRY_BYTES


def test_the_last_resort_drops_result_entries_and_says_how_many() -> None:
    detail = completion_detail(
        record(results=tuple(result(i, key_bytes=900) for i in range(50))), limit=20_000
    )
    assert json_bytes(detail) <= 20_000
    assert len(detail["results"]) + detail["resultsOmitted"] == 50


def test_entry_size_counts_utf8_bytes_of_each_field_as_aws_does() -> None:
    entry = completion_entry(Status.ERROR, {"m": "ошибка"}, "bus")
    detail = '{"m":"ошибка"}'
    assert entry["Detail"] == detail and entry["DetailType"] == FAILED
    assert entry_bytes(entry) == len(SOURCE) + len(FAILED) + len(detail.encode()) + len("bus")
    assert (
        entry_bytes({**entry, "Time": "2026-12-02T00:00:00Z", "Resources": ["ä"]}) == entry_bytes(entry) + 16
    )


@dataclass
class FakeEvents:
    entries: list[Any]

    def put_events(self, Entries: list[Any]) -> dict[str, Any]:  # noqa: N803 - boto3's argument name
        self.entries += Entries
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


@pytest.mark.parametrize(("status", "detail_type"), [(Status.COMPLETED, COMPLETED), (Status.EXPIRED, FAILED)])
def test_the_announcer_puts_the_detail_with_the_statuses_detail_type(
    status: Status, detail_type: str
) -> None:
    events = FakeEvents([])
    EventBridgeAnnouncer("bus", client=events).announce(status, {"taskId": "t"})  # type: ignore[arg-type]
    [entry] = events.entries
    assert (entry["Source"], entry["DetailType"], json.loads(entry["Detail"])) == (
        SOURCE,
        detail_type,
        {"taskId": "t"},
    )


def test_the_announcer_refuses_an_entry_over_the_limit_in_bytes_not_characters() -> None:
    # Given a detail of fewer characters than the limit, but more UTF-8 bytes
    events = FakeEvents([])
    detail = {"taskId": "t", "errorMessages": ["€" * (EVENT_ENTRY_BYTES // 2)]}
    # When / Then
    with pytest.raises(Redeliver, match=r"completion event of task t is \d+ bytes"):
        EventBridgeAnnouncer("bus", client=events).announce(Status.ERROR, detail)  # type: ignore[arg-type]
    assert events.entries == []
