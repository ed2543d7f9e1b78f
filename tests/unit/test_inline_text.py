"""Small Text results carry their decoded text in the record and the event (CONTRACT.md sections 5 and 7)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from ocr_poller.adapters.dynamodb import from_item, to_item
from ocr_poller.adapters.s3 import PART_BYTES, S3ResultStore
from ocr_poller.config import Settings
from ocr_poller.errors import ConfigError
from ocr_poller.limits import INLINE_TEXT_BUDGET_BYTES, within_text_budget
from ocr_poller.model import Status, StoredResult, TaskRecord
from ocr_poller.poll import check_once
from ocr_poller.request import PollRequest
from tests.unit.fakes import FakeApi, Reply, World

LABEL = b"ACME FREIGHT\nPARCEL 4711\n"
S3_MIN_PART_BYTES = 5 * 1024 * 1024


@dataclass
class FakeS3:
    """Keeps what is uploaded, single or multipart."""

    objects: dict[str, bytes] = field(default_factory=dict)
    parts: dict[str, list[bytes]] = field(default_factory=dict)

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:
        self.objects[Key] = Body
        return {}

    def create_multipart_upload(self, *, Bucket: str, Key: str, ContentType: str) -> dict[str, Any]:
        self.parts[Key] = []
        return {"UploadId": Key}

    def upload_part(self, *, UploadId: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.parts[UploadId].append(Body)
        return {"ETag": str(len(self.parts[UploadId]))}

    def complete_multipart_upload(self, *, Key: str, **_: Any) -> dict[str, Any]:
        parts = self.parts.pop(Key)
        # S3 refuses (EntityTooSmall) a part under 5 MiB that is not the last.
        assert all(len(part) >= S3_MIN_PART_BYTES for part in parts[:-1]), [len(part) for part in parts]
        self.objects[Key] = b"".join(parts)
        return {}


def store(fake: FakeS3, inline_text_bytes: int = 16384) -> S3ResultStore:
    return S3ResultStore("bucket", "results/", inline_text_bytes=inline_text_bytes, client=cast(Any, fake))


def chunked(data: bytes, size: int) -> Any:
    return iter([data[i : i + size] for i in range(0, len(data), size)] or [b""])


@pytest.mark.parametrize("result_type", ["Text", "text", "TEXT"])
def test_a_small_text_result_comes_back_decoded_and_stored_whole(result_type: str) -> None:
    # Given a label's text arriving in small chunks
    fake = FakeS3()

    # When it is stored
    result = store(fake).put("task", 0, result_type, chunked(LABEL, 5))

    # Then S3 holds the bytes and the result carries the same text, whatever the type's case
    assert fake.objects["results/task/0-text.txt"] == LABEL
    assert (result.text, result.text_truncated) == (LABEL.decode(), False)
    assert (result.size, result.sha256) == (len(LABEL), hashlib.sha256(LABEL).hexdigest())
    assert result.to_dict()["text"] == "ACME FREIGHT\nPARCEL 4711\n"
    assert "textTruncated" not in result.to_dict()


def test_a_text_of_exactly_the_limit_is_kept_one_byte_more_is_not() -> None:
    # Given texts of 16 and 17 bytes, multi-byte characters included, and a limit of 16
    fake = FakeS3()
    exact, over = "ÀÉÎÕÜ123456".encode(), "ÀÉÎÕÜ1234567".encode()
    assert (len(exact), len(over)) == (16, 17)

    # When both are stored
    kept = store(fake, 16).put("task", 0, "Text", chunked(exact, 3))
    cut = store(fake, 16).put("task", 1, "Text", chunked(over, 3))

    # Then the first carries its text, the second says it is in S3 only; both objects are whole
    assert (kept.text, kept.text_truncated) == (exact.decode(), False)
    assert (cut.text, cut.text_truncated) == (None, True)
    assert cut.to_dict()["textTruncated"] is True and "text" not in cut.to_dict()
    assert fake.objects["results/task/1-text.txt"] == over


def test_a_text_that_is_not_utf8_is_stored_but_not_inlined() -> None:
    # Given a small text result in Latin-1
    fake = FakeS3()

    # When it is stored
    result = store(fake).put("task", 0, "Text", iter(["Straße".encode("latin-1")]))

    # Then the bytes are in S3 as sent, and the record points there
    assert fake.objects["results/task/0-text.txt"] == "Straße".encode("latin-1")
    assert (result.text, result.text_truncated) == (None, True)


def test_a_multibyte_character_split_across_chunks_decodes_whole() -> None:
    # Given a text whose two-byte characters are cut between chunks
    text = "Привет, мир"

    # When it arrives one byte per chunk
    result = store(FakeS3()).put("task", 0, "Text", chunked(text.encode(), 1))

    # Then the text is whole
    assert result.text == text


def test_an_empty_text_result_carries_an_empty_text() -> None:
    # Given a Text result with no bytes
    # When it is stored
    result = store(FakeS3()).put("task", 0, "Text", iter([b""]))

    # Then its text is empty, not missing
    assert (result.text, result.to_dict()["text"]) == ("", "")


def test_a_large_text_goes_multipart_and_is_not_inlined() -> None:
    # Given a text result larger than one upload part, in 64 KiB chunks
    fake = FakeS3()
    data = b"word " * (PART_BYTES // 5 + 1000)

    # When it is stored
    result = store(fake).put("task", 0, "Text", chunked(data, 64 * 1024))

    # Then it went up in parts, whole, and the result says the text is in S3 only
    assert fake.objects["results/task/0-text.txt"] == data
    assert (result.text, result.text_truncated, result.size) == (None, True, len(data))


def test_a_result_of_many_parts_holds_about_one_part_at_a_time_and_meets_s3s_part_sizes() -> None:
    # Given a PDF of three and a half parts, arriving in chunks of an odd size
    fake = FakeS3()
    data = bytes(range(256)) * (PART_BYTES * 7 // 2 // 256)
    chunk = 1024 * 1024 + 7

    # When it is stored
    result = store(fake).put("task", 1, "Pdf", chunked(data, chunk))

    # Then it is whole, and each part is what the buffer held once it reached a part's size
    uploaded = fake.objects["results/task/1-pdf.pdf"]
    assert uploaded == data and result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("result_type", ["Pdf", "Json", "Hocr", "ImagePNG"])
def test_other_types_carry_no_text_and_no_mark(result_type: str) -> None:
    # Given a small non-Text result, even if it is valid UTF-8
    # When it is stored
    result = store(FakeS3()).put("task", 0, result_type, iter([b'{"a": 1}']))

    # Then it has neither a text nor a truncation mark
    assert (result.text, result.text_truncated) == (None, False)
    assert "text" not in result.to_dict() and "textTruncated" not in result.to_dict()


def test_a_limit_of_zero_inlines_only_empty_texts() -> None:
    # Given INLINE_TEXT_BYTES=0
    fake = FakeS3()

    # When an empty and a one-byte text are stored
    empty = store(fake, 0).put("task", 0, "Text", iter([b""]))
    one = store(fake, 0).put("task", 1, "Text", iter([b"x"]))

    # Then only the empty one is inline
    assert (empty.text, one.text, one.text_truncated) == ("", None, True)


def text_result(index: int, text: str | None, result_type: str = "Text") -> StoredResult:
    return StoredResult(result_type, "b", f"k{index}", "text/plain", len((text or "").encode()), "", text)


def test_the_budget_keeps_texts_in_order_while_they_fit() -> None:
    # Given texts of 60, 50, 30 and 10 bytes, a PDF, and a budget of 100
    results = [
        text_result(0, "a" * 60),
        text_result(1, "b" * 50),
        text_result(2, "c" * 30),
        text_result(3, None, "Pdf"),
        text_result(4, "d" * 10),
    ]

    # When the budget is applied
    kept = within_text_budget(results, budget=100)

    # Then the first fits, the second would pass the budget, the smaller ones after it still fit
    assert [r.text is not None for r in kept] == [True, False, True, False, True]
    assert [r.text_truncated for r in kept] == [False, True, False, False, False]
    assert [r.key for r in kept] == ["k0", "k1", "k2", "k3", "k4"]


def test_the_budget_counts_utf8_bytes() -> None:
    # Given two texts of 40 two-byte characters (80 bytes each)
    results = [text_result(0, "é" * 40), text_result(1, "é" * 40)]

    # When a budget of 100 bytes is applied
    kept = within_text_budget(results, budget=100)

    # Then only the first is kept
    assert [r.text_truncated for r in kept] == [False, True]


def test_hundred_texts_of_the_largest_inline_size_keep_the_record_within_the_budget() -> None:
    # Given as many results as the poller keeps, each a text of the default inline limit
    results = [text_result(i, "x" * 16384) for i in range(100)]

    # When the budget is applied
    kept = within_text_budget(results)

    # Then the texts kept add up to at most the budget, and the rest are marked
    total = sum(len(r.text.encode()) for r in kept if r.text is not None)
    assert total <= INLINE_TEXT_BUDGET_BYTES
    assert sum(r.text_truncated for r in kept) == 100 - INLINE_TEXT_BUDGET_BYTES // 16384


def test_the_record_stores_and_reads_back_text_and_truncation() -> None:
    # Given a completed record with an inline text, a truncated text and a PDF
    record = TaskRecord(
        task_id="t",
        endpoint="RecognizePdf",
        status=Status.COMPLETED,
        check_number=3,
        first_check_at=1.0,
        last_check_at=2.0,
        committed_by="m",
        results=(
            StoredResult("Text", "b", "k0", "text/plain; charset=utf-8", 5, "s0", text="hello"),
            StoredResult("Text", "b", "k1", "text/plain; charset=utf-8", 99999, "s1", text_truncated=True),
            StoredResult("Pdf", "b", "k2", "application/pdf", 10, "s2"),
        ),
    )

    # When it is turned into an item and back
    item = to_item(record, retention_days=30)
    again = from_item(item)

    # Then the item's result entries hold `text` and `textTruncated`, and nothing is lost
    assert item["results"][0]["text"] == "hello" and "textTruncated" not in item["results"][0]
    assert item["results"][1]["textTruncated"] is True and "text" not in item["results"][1]
    assert "text" not in item["results"][2] and "textTruncated" not in item["results"][2]
    assert again.results == record.results


BASE = {"RESULTS_TABLE": "t", "RESULTS_BUCKET": "b", "POLL_QUEUE_URL": "https://sqs/q"}


def test_inline_text_bytes_defaults_to_16_kib_and_is_read() -> None:
    assert Settings.from_env(BASE).inline_text_bytes == 16384
    assert Settings.from_env({**BASE, "INLINE_TEXT_BYTES": "0"}).inline_text_bytes == 0
    assert Settings.from_env({**BASE, "INLINE_TEXT_BYTES": "131072"}).inline_text_bytes == 131072


@pytest.mark.parametrize("value", ["-1", "131073", "16k", "1.5"])
def test_inline_text_bytes_outside_the_budget_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="INLINE_TEXT_BYTES"):
        Settings.from_env({**BASE, "INLINE_TEXT_BYTES": value})


def test_a_check_keeps_the_record_event_and_callback_within_the_text_budget() -> None:
    # Given a completed answer with twelve Text results of 16 KiB each (192 KiB), stored by the real
    # S3 store, and a workflow waiting on the task
    texts = [(f"{i:02d}" + "x" * (16384 - 2)).encode() for i in range(12)]
    fake = FakeS3()
    world = World(FakeApi([Reply("Completed", [("Text", text) for text in texts])]))
    world.results = cast(Any, store(fake))
    request = PollRequest("task", "RecognizeLabel", task_token="tok")

    # When the task is checked
    check_once(request, world.sqs("m1"), world.deps)

    # Then every object is whole in S3; the record keeps the first eight texts (128 KiB) inline and
    # marks the rest, and the event and the workflow's output say the same
    assert [fake.objects[f"results/task/{i}-text.txt"] for i in range(12)] == texts
    record = world.records.items["task"]
    assert [r.text for r in record.results] == [t.decode() for t in texts[:8]] + [None] * 4
    assert [r.text_truncated for r in record.results] == [False] * 8 + [True] * 4
    [(_, detail)] = world.announcer.announced
    [(_, _, output)] = [call for call in world.callbacks.calls if call[0] == "succeed"]
    assert json.loads(output) == detail
    assert [("text" in r, r.get("textTruncated", False)) for r in detail["results"]] == [
        (True, False)
    ] * 8 + [(False, True)] * 4
