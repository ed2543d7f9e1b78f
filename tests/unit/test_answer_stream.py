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

from ocr_poller.adapters._answer_stream import Answer, AnswerFormatError, ResultDecodeError, read_answer

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
        json.dumps({"error": {"messages": ["m" * 4096] * 300}}),  # over the 1 MiB kept for strings
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
