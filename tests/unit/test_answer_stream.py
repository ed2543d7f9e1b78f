"""The answer reader gives what json + base64 give, in bounded pieces, and fails only with its own errors."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocr_poller.adapters._answer_stream import (
    Answer,
    AnswerFormatError,
    ForeignAnswerError,
    ResultDecodeError,
    TooManyResultsError,
    read_answer,
)
from ocr_poller.limits import (
    MAX_FIELD_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES,
    MAX_RESULTS,
    capped,
    capped_messages,
)

Collected = tuple[int, str, bytes]
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF"


def collect(index: int, kind: str, chunks: Iterator[bytes]) -> Collected:
    return index, kind, b"".join(chunks)


def split(body: bytes, sizes: list[int]) -> Iterator[bytes]:
    """The body in chunks whose sizes cycle through `sizes`."""
    position = 0
    for size in itertools.cycle(sizes):
        if position >= len(body):
            return
        yield body[position : position + size]
        position += size


def read(body: bytes | str, chunk_size: int = 7) -> Answer[Collected]:
    raw = body.encode() if isinstance(body, str) else body
    return read_answer(split(raw, [chunk_size]), collect)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Examples


@pytest.mark.parametrize("chunk_size", [1, 3, 64 * 1024])
def test_an_answer_in_the_documented_order_is_read_whole(chunk_size: int) -> None:
    # Given
    body = json.dumps(
        {
            "id": "c4b60313",
            "responseStatusCode": "Ok",
            "taskStatus": "Completed",
            "results": [{"type": "Text", "data": b64("héllo €".encode())}, {"type": "Pdf", "data": b64(PDF)}],
            "error": None,
        }
    )
    # When
    answer = read(body, chunk_size)
    # Then
    assert answer == Answer(
        task_id="c4b60313",
        task_status="Completed",
        response_status_code="Ok",
        error_messages=(),
        warnings=(),
        results=((0, "Text", "héllo €".encode()), (1, "Pdf", PDF)),
    )


def test_keys_in_reverse_order_and_whitespace_everywhere_are_read() -> None:
    # Given
    body = json.dumps(
        {
            "error": {"warnings": ["low contrast"], "messages": None},
            "results": [{"data": b64(PDF), "type": "Pdf"}],
            "taskStatus": "Completed",
            "responseStatusCode": "Ok",
            "id": "t-1",
        },
        indent="\t",
    ).replace("\n", "\r\n")
    # When
    answer = read(body)
    # Then
    assert answer == Answer("t-1", "Completed", "Ok", (), ("low contrast",), ((0, "Pdf", PDF),))


def test_data_before_its_type_is_spooled_and_handed_over_with_the_type() -> None:
    # Given a result larger than the in-memory spool, whose type comes last
    data = bytes(range(256)) * (9 * 4096)
    body = json.dumps({"results": [{"data": b64(data), "type": "Pdf"}, {"data": "SGk=", "type": "Text"}]})
    pieces: list[int] = []

    def sink(index: int, kind: str, chunks: Iterator[bytes]) -> Collected:
        received = list(chunks)
        pieces.extend(len(piece) for piece in received)
        return index, kind, b"".join(received)

    # When
    answer = read_answer(split(body.encode(), [65536]), sink)
    # Then
    assert answer.results == ((0, "Pdf", data), (1, "Text", b"Hi"))
    assert max(pieces) <= 1 << 20


def test_json_escapes_are_decoded_in_keys_values_and_data() -> None:
    # Given '+' as \u002B (System.Text.Json), '/' as \/, '=' as \u003D, line breaks as \r\n, a key spelled
    # with an escape and a character outside the BMP as a surrogate pair
    data = bytes([0xFB, 0xFF, 0xBF, 0x00, 0x01])  # Base64 "+/+/AAE="
    body = (
        r'{"id": "a\ud83d\ude00\"\\\/\t", "results": [{"t\u0079pe": "P\u0064f", '
        r'"data": "\u002B\/\u002b\u002F\r\nAAE\u003D"}]}'
    )
    assert base64.b64encode(data) == b"+/+/AAE="
    # When
    answer = read(body, chunk_size=2)
    # Then
    assert answer.task_id == 'a😀"\\/\t'
    assert answer.results == ((0, "Pdf", data),)


def test_unknown_members_are_skipped_at_every_level() -> None:
    # Given
    body = json.dumps(
        {
            "meta": {"a": [1, -2.5e-3, True, False, None, {"b": 'x"}]'}], "c": {}},
            "results": [{"size": 12, "type": "Text", "extra": ["data", {"type": "no"}], "data": b64(b"ok")}],
            "error": {"code": 7, "messages": ["m"], "details": {"messages": ["not these"]}},
            "zz": "y" * 70_000,
        }
    )
    # When
    answer = read(body, chunk_size=1000)
    # Then
    assert answer == Answer(None, None, None, ("m",), (), ((0, "Text", b"ok"),))


def test_null_fields_are_read_as_missing() -> None:
    # Given
    body = '{"id": null, "responseStatusCode": null, "taskStatus": null, "results": null, "error": null}'
    # When
    answer = read(body)
    # Then
    assert answer == Answer(None, None, None, (), (), ())


def test_results_without_type_or_data_are_handed_over_empty() -> None:
    # Given
    body = '{"results": [{"type": null, "data": null}, {}, {"data": "", "type": "Text"}, {"type": "Pdf"}]}'
    # When
    answer = read(body)
    # Then
    assert answer.results == ((0, "", b""), (1, "", b""), (2, "Text", b""), (3, "Pdf", b""))


def test_empty_results_give_no_call() -> None:
    # Given
    calls: list[int] = []
    # When
    answer = read_answer([b'{"taskStatus": "Pending", "results": []}'], lambda i, t, c: calls.append(i))
    # Then
    assert answer.task_status == "Pending"
    assert answer.results == ()
    assert calls == []


def test_error_messages_and_warnings_are_kept_in_order() -> None:
    # Given
    body = '{"taskStatus": "Error", "error": {"messages": ["bad image", "no text"], "warnings": ["dpi"]}}'
    # When
    answer = read(body)
    # Then
    assert answer.task_status == "Error"
    assert answer.error_messages == ("bad image", "no text")
    assert answer.warnings == ("dpi",)


def test_data_left_unread_by_on_result_is_drained() -> None:
    # Given
    body = json.dumps({"results": [{"type": "Pdf", "data": b64(PDF)}, {"type": "Text", "data": b64(b"two")}]})
    # When
    answer = read_answer(split(body.encode(), [100]), lambda index, kind, chunks: kind)
    # Then
    assert answer.results == ("Pdf", "Text")


def test_an_exception_of_on_result_propagates_unchanged() -> None:
    # Given
    class UploadFailed(Exception):
        pass

    def sink(index: int, kind: str, chunks: Iterator[bytes]) -> None:
        raise UploadFailed

    # When / Then
    with pytest.raises(UploadFailed):
        read_answer([b'{"results": [{"type": "Text", "data": "SGk="}]}'], sink)


def test_a_decoding_error_reaches_on_result_through_its_chunks() -> None:
    # Given valid data for over a run, then a character that is not Base64
    body = json.dumps(
        {"results": [{"type": "Text", "data": "SGk="}, {"type": "Pdf", "data": "A" * 2**21 + "*AAA"}]}
    )
    seen: list[tuple[int, int, type[BaseException]]] = []

    def sink(index: int, kind: str, chunks: Iterator[bytes]) -> None:
        received = 0
        try:
            for piece in chunks:
                received += len(piece)
        except ValueError as exc:
            seen.append((index, received, type(exc)))
            raise

    # When
    with pytest.raises(ResultDecodeError) as raised:
        read_answer(split(body.encode(), [65536]), sink)
    # Then the upload of result 1 saw the error after receiving its first bytes
    assert raised.value.index == 1
    [(index, received, error)] = seen
    assert (index, error) == (1, ResultDecodeError)
    assert 0 < received <= 2**21 // 4 * 3


def test_a_decoding_error_swallowed_by_on_result_still_fails_the_answer() -> None:
    # Given
    def sink(index: int, kind: str, chunks: Iterator[bytes]) -> str:
        try:
            b"".join(chunks)
        except ResultDecodeError:
            return "swallowed"
        return "read"

    # When / Then
    with pytest.raises(ResultDecodeError):
        read_answer([b'{"results": [{"type": "Text", "data": "A*AA"}]}'], sink)


def test_a_large_result_is_decoded_in_bounded_pieces_as_the_body_arrives() -> None:
    # Given a 50 MiB result whose body is produced 64 KiB at a time
    block = bytes(range(256)) * 192  # 48 KiB, a multiple of 3: its Base64 has no padding
    blocks = 50 * 1024 // 48
    pulled = 0

    def body() -> Iterator[bytes]:
        nonlocal pulled
        parts = (
            [b'{"taskStatus":"Completed","results":[{"type":"Pdf","data":"'],
            [base64.b64encode(block)] * blocks,
        )
        for chunk in itertools.chain(*parts, [b'"}]}']):
            pulled += len(chunk)
            yield chunk

    pieces: list[tuple[int, int]] = []  # (size, body bytes pulled when the piece was handed over)
    digest = hashlib.sha256()

    def sink(index: int, kind: str, chunks: Iterator[bytes]) -> str:
        for piece in chunks:
            pieces.append((len(piece), pulled))
            digest.update(piece)
        return kind

    # When
    answer = read_answer(body(), sink)
    # Then
    assert answer.results == ("Pdf",)
    assert digest.digest() == hashlib.sha256(block * blocks).digest()
    assert max(size for size, _ in pieces) <= 1 << 20
    handed = 0
    for size, pulled_then in pieces:
        handed += size
        assert pulled_then - handed * 4 // 3 <= 2 << 20  # never more than ~2 MiB read ahead of the caller


# Errors


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
@pytest.mark.parametrize(
    ("data", "index"),
    [
        ("*AAA", 0),  # not in the alphabet, first character
        ("AAAA" * 300 + "A=AA", 0),  # padding in the middle
        ("AA==" + "AAAA" * 3, 0),  # data after the padding (across chunks)
        ("AAAAA", 0),  # length not a multiple of 4
        ("AAA", 0),
        ("AA\\u00e9A", 0),  # an escape of a character outside Base64
        ('AA\\"A', 0),  # an escaped quote
        ("AA\\\\A", 0),  # an escaped backslash
        ("AA\\bA", 0),  # an escaped control character
        ("AAAé", 0),  # a raw character outside ASCII
    ],
)
def test_data_that_is_not_base64_fails_with_the_result_index(data: str, index: int, chunk_size: int) -> None:
    # Given
    body = '{"results": [{"type": "Text", "data": "' + data + '"}]}'
    # When / Then
    with pytest.raises(ResultDecodeError) as raised:
        read(body, chunk_size)
    assert raised.value.index == index


def test_bad_base64_in_a_later_result_names_that_result() -> None:
    # Given
    body = '{"results": [{"type": "Text", "data": "SGk="}, {"data": "SGk=!", "type": "Text"}]}'
    # When / Then
    with pytest.raises(ResultDecodeError, match="result 1") as raised:
        read(body)
    assert raised.value.index == 1


VALID = json.dumps(
    {"id": "x", "results": [{"type": "Text", "data": b64(b"hello, world")}], "error": {"messages": ["m"]}},
    indent=1,
)


@pytest.mark.parametrize("length", range(len(VALID.rstrip("}\n"))))
def test_every_truncated_body_is_a_format_error(length: int) -> None:
    with pytest.raises(AnswerFormatError):
        read(VALID[:length], chunk_size=5)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \r\n",
        b"not json",
        b"<html><body>502 Bad Gateway</body></html>",
        b"\xff\xfe{\x00}\x00",
        b"[]",
        b'"Completed"',
        b"42",
        b"null",
        b"{} {}",
        b"{}x",
        b'{"id" "x"}',
        b'{"id": "x" "taskStatus": "y"}',
        b'{"id": "x",}',
        b"{'id': 'x'}",
        b'{"x": [1 2]}',
        b'{"x": [1,]}',
        b'{"x": tru}',
        b'{"x": nul}',
        b'{"x": 01}',
        b'{"x": -}',
        b'{"x": 1.}',
        b'{"x": NaN}',
        b'{"x": "a\\xb"}',
        b'{"x": "\\u12"}',
        b'{"x": "line\nbreak"}',
        b'{"x": "\xc3("}',
        b'{"x": "\xc3"}',
        b'{"x": "\xc3\\n\xa9"}',
        b'{"x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"x": 1' + b"0" * 5000 + b"}",
        b'{"results": [{"type": "Text", "data": "SGk=\nSGk="}]}',
        b'{"results": [{"type": "Text", "data": "SG\\xk="}]}',
    ],
)
@pytest.mark.parametrize("chunk_size", [7, 65536])
def test_a_body_that_is_not_json_is_a_format_error(body: bytes, chunk_size: int) -> None:
    with pytest.raises(AnswerFormatError):
        read(body, chunk_size)


@pytest.mark.parametrize(
    "body",
    [
        '{"id": 1}',
        '{"taskStatus": true}',
        '{"responseStatusCode": {}}',
        '{"results": {}}',
        '{"results": "x"}',
        '{"results": [1]}',
        '{"results": [null]}',
        '{"results": [{"type": 5}]}',
        '{"results": [{"type": "Text", "data": 5}]}',
        '{"results": [{"data": ["SGk="]}]}',
        '{"error": []}',
        '{"error": "x"}',
        '{"error": {"messages": "m"}}',
        '{"error": {"messages": [1]}}',
        '{"error": {"warnings": [null]}}',
        '{"id": "a", "id": "b"}',
        '{"results": [{"data": "", "data": ""}]}',
    ],
)
def test_known_fields_of_the_wrong_type_are_a_format_error(body: str) -> None:
    with pytest.raises(AnswerFormatError):
        read(body, chunk_size=4096)


def test_format_errors_say_what_was_expected_and_where() -> None:
    with pytest.raises(
        AnswerFormatError, match=r"expected a string or null for 'taskStatus', found '1' at byte 15"
    ):
        read('{"taskStatus": 1}')


# What is kept of a hostile answer: bounded, whatever the body holds (CONTRACT.md section 10)


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("char", ["x", "é", "€", "𝄞"])
def test_huge_strings_in_every_field_are_cut_to_their_caps(char: str) -> None:
    # Given an answer whose every string is a megabyte, in characters of 1 to 4 UTF-8 bytes
    huge = char * ((1 << 20) // utf8_size(char))
    body = json.dumps(
        {
            "id": huge,
            "responseStatusCode": huge,
            "taskStatus": huge,
            "results": [{"type": huge, "data": b64(b"hi")}],
            "error": {"messages": [huge], "warnings": [huge]},
        },
        ensure_ascii=char == "x",  # escaped and raw UTF-8 alike
    )
    # When
    answer = read(body, chunk_size=4096)
    # Then every kept string is its cap's cut of the original, and the result still arrived
    fields = (answer.task_id, answer.response_status_code, answer.task_status, answer.results[0][1])
    assert fields == (capped(huge, MAX_FIELD_BYTES),) * 4
    assert answer.error_messages == answer.warnings == (capped(huge, MAX_MESSAGE_BYTES),)
    assert utf8_size(answer.error_messages[0]) <= MAX_MESSAGE_BYTES
    assert answer.results[0][2] == b"hi"


def test_strings_at_their_cap_are_kept_whole() -> None:
    # Given strings of exactly the caps, in two-byte characters
    field, message = "é" * (MAX_FIELD_BYTES // 2), "é" * (MAX_MESSAGE_BYTES // 2)
    # When
    answer = read(json.dumps({"id": field, "error": {"messages": [message]}}, ensure_ascii=False))
    # Then
    assert (answer.task_id, answer.error_messages) == (field, (message,))


def test_megabytes_of_messages_keep_the_first_ones_and_say_how_many_more() -> None:
    # Given a few megabytes of long non-ASCII messages and of warnings
    messages = [f"{i}: " + "ошибка " * 1000 for i in range(400)]
    body = json.dumps({"taskStatus": "Error", "error": {"messages": messages, "warnings": messages}})
    # When
    answer = read(body, chunk_size=64 * 1024)
    # Then MAX_MESSAGES lines are kept, the last one counting the rest, each within its cap
    expected = tuple(capped(m, MAX_MESSAGE_BYTES) for m in messages[: MAX_MESSAGES - 1]) + (
        f"... and {400 - MAX_MESSAGES + 1} more",
    )
    assert answer.error_messages == answer.warnings == expected
    assert answer.task_status == "Error"
    # and the poll's own cap leaves them as they are
    assert capped_messages(answer.error_messages) == answer.error_messages


def test_exactly_max_messages_are_kept_without_a_count() -> None:
    messages = [f"m{i}" for i in range(MAX_MESSAGES)]
    assert read(json.dumps({"error": {"messages": messages}})).error_messages == tuple(messages)


def test_more_results_than_the_cap_fail_before_the_first_one_past_it_is_stored() -> None:
    # Given a completed answer with thousands of small results
    body = json.dumps(
        {"taskStatus": "Completed", "results": [{"type": "Text", "data": b64(b"x")}] * 5000}
    ).encode()
    stored: list[int] = []

    def store(index: int, kind: str, chunks: Iterator[bytes]) -> int:
        stored.append(index)
        return index

    # When / Then
    with pytest.raises(TooManyResultsError, match=f"more than {MAX_RESULTS} results"):
        read_answer(split(body, [4096]), store)
    assert stored == list(range(MAX_RESULTS))


def test_exactly_max_results_are_read() -> None:
    body = json.dumps({"results": [{"type": "Text", "data": b64(b"x")}] * MAX_RESULTS})
    assert len(read(body, chunk_size=4096).results) == MAX_RESULTS


ONE_RESULT = {"type": "Text", "data": "eA=="}


def refuse_to_store(index: int, kind: str, chunks: Iterator[bytes]) -> Collected:
    pytest.fail("nothing may be stored")


def test_another_tasks_id_fails_the_answer_before_any_result_is_stored() -> None:
    # Given an answer for another task, its results after its id
    body = json.dumps({"id": "other", "taskStatus": "Completed", "results": [ONE_RESULT]})
    # When / Then
    with pytest.raises(ForeignAnswerError, match=r"another task \(other\)"):
        read_answer(split(body.encode(), [5]), refuse_to_store, task_id="mine")


def test_this_tasks_id_or_none_is_read_as_usual() -> None:
    for answer_id in ("mine", None):
        body = json.dumps({"id": answer_id, "taskStatus": "Completed", "results": [ONE_RESULT]})
        answer = read_answer(split(body.encode(), [5]), collect, task_id="mine")
        assert (answer.task_id, answer.results) == (answer_id, ((0, "Text", b"x"),))


@pytest.mark.parametrize("status", ["Pending", "Processing", "Error", "NotExist", "Sideways"])
def test_results_after_a_status_other_than_completed_are_not_stored(status: str) -> None:
    # Given an answer that says the task is not completed, then carries results anyway
    body = json.dumps({"taskStatus": status, "results": [ONE_RESULT] * 3})
    # When
    answer = read_answer(split(body.encode(), [5]), refuse_to_store, task_id="t")
    # Then
    assert (answer.task_status, answer.results) == (status, ())


def test_a_thousands_deep_value_is_a_format_error_not_a_recursion_error() -> None:
    with pytest.raises(AnswerFormatError, match="nested deeper"):
        read('{"unknown": ' + "[" * 5000 + "]" * 5000 + "}", chunk_size=4096)


# Properties

KNOWN_KEYS = {
    "id",
    "responseStatusCode",
    "taskStatus",
    "results",
    "error",
    "type",
    "data",
    "messages",
    "warnings",
}
texts = st.text(max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
optional_texts = st.none() | texts
text_lists = st.none() | st.lists(texts, max_size=3)


def base64_json(data: bytes, rng: random.Random, rate: float) -> str:
    """data's Base64 as a JSON string, its characters escaped and whitespace inserted at random."""
    out = ['"']
    for char in base64.b64encode(data).decode():
        if rng.random() < rate / 4:
            out.append(rng.choice([" ", "\\n", "\\r\\n", "\\t", "\\u0020"]))
        if rng.random() < rate:
            out.append(rng.choice(["\\/" if char == "/" else f"\\u{ord(char):04x}", f"\\u{ord(char):04X}"]))
        else:
            out.append(char)
    return "".join(out) + '"'


@st.composite
def answer_bodies(draw: st.DrawFn) -> bytes:
    """Answers serialized with json.dumps: keys in random order, unknown members, Base64 escaped at random."""
    rng = draw(st.randoms(use_true_random=False))
    rate = draw(st.sampled_from([0.0, 0.1, 1.0]))
    space = draw(st.sampled_from(["", " ", "\n  ", "\r\n\t "]))
    ascii_only = draw(st.booleans())

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ascii_only)

    def json_object(members: dict[str, str]) -> str:
        unknown = draw(
            st.dictionaries(texts.filter(lambda key: key not in KNOWN_KEYS), json_values, max_size=2)
        )
        items = draw(st.permutations([*members.items(), *((key, dumps(v)) for key, v in unknown.items())]))
        return (
            "{" + f",{space}".join(f"{space}{dumps(key)}{space}:{space}{value}" for key, value in items) + "}"
        )

    def result(fields: dict[str, Any]) -> str:
        data = fields.pop("data", ...)
        members = {key: dumps(value) for key, value in fields.items()}
        if data is not ...:
            members["data"] = "null" if data is None else base64_json(data, rng, rate)
        return json_object(members)

    answer = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": optional_texts,
                "responseStatusCode": optional_texts,
                "taskStatus": optional_texts,
            },
        )
    )
    members = {key: dumps(value) for key, value in answer.items()}
    results_entry = st.fixed_dictionaries(
        {}, optional={"type": optional_texts, "data": st.none() | st.binary(max_size=400)}
    )
    if draw(st.booleans()):
        results = draw(st.none() | st.lists(results_entry, max_size=3))
        members["results"] = "null" if results is None else "[" + f",{space}".join(map(result, results)) + "]"
    if draw(st.booleans()):
        error = draw(
            st.none() | st.fixed_dictionaries({}, optional={"messages": text_lists, "warnings": text_lists})
        )
        members["error"] = "null" if error is None else json_object({k: dumps(v) for k, v in error.items()})
    return (space + json_object(members) + space).encode()


chunk_sizes = st.lists(st.integers(0, 64), min_size=1, max_size=4).filter(any)  # 0: an empty chunk


def expected_answer(body: bytes) -> Answer[Collected]:
    """What json.loads + base64.b64decode make of an answer."""
    document = json.loads(body)
    error = document.get("error") or {}
    results = document.get("results") or []
    return Answer(
        task_id=document.get("id"),
        task_status=document.get("taskStatus"),
        response_status_code=document.get("responseStatusCode"),
        error_messages=tuple(error.get("messages") or ()),
        warnings=tuple(error.get("warnings") or ()),
        results=tuple(
            (
                index,
                result.get("type") or "",
                base64.b64decode(re.sub(r"[ \t\r\n]", "", result.get("data") or ""), validate=True),
            )
            for index, result in enumerate(results)
        ),
    )


@settings(max_examples=300, deadline=None)
@given(body=answer_bodies(), sizes=chunk_sizes)
def test_any_answer_in_any_chunks_reads_as_json_and_base64_read_it(body: bytes, sizes: list[int]) -> None:
    assert read_answer(split(body, sizes), collect) == expected_answer(body)


def read_or_fail(body: bytes, sizes: list[int]) -> None:
    """Read the body; only the reader's own errors may come out, and what it accepts json accepts."""
    try:
        read_answer(split(body, sizes), collect)
    except (AnswerFormatError, ResultDecodeError):
        return
    json.loads(body)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), sizes=chunk_sizes)
def test_arbitrary_bytes_fail_only_with_the_readers_errors(body: bytes, sizes: list[int]) -> None:
    read_or_fail(body, sizes)


@settings(max_examples=300, deadline=None)
@given(
    body=answer_bodies(),
    damages=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3), st.integers(0, 3)), max_size=3),
    sizes=chunk_sizes,
)
def test_damaged_answers_fail_only_with_the_readers_errors(
    body: bytes, damages: list[tuple[int, bytes, int]], sizes: list[int]
) -> None:
    for at, inserted, removed in damages:
        at %= len(body) + 1
        body = body[:at] + inserted + body[at + removed :]
    read_or_fail(body, sizes)
