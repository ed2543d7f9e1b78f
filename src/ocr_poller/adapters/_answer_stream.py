"""Streaming reader of an Aspose.OCR v5 answer: results are Base64-decoded as they arrive, not held whole.

What the reader keeps is bounded whatever the body holds (CONTRACT.md section 10): each kept string is
cut to its cap from ocr_poller.limits (id, statuses and types to MAX_FIELD_BYTES, each message to
MAX_MESSAGE_BYTES), at most MAX_MESSAGES messages and as many warnings are kept (the last one then says
how many more there were), and an answer with more than MAX_RESULTS results is refused at the first one
past the cap, before it reaches on_result. Long strings are still read through, and checked, to their end.
"""

from __future__ import annotations

import binascii
import codecs
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from functools import partial
from typing import Generic, TypeVar

from ocr_poller.limits import (
    MAX_FIELD_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES,
    MAX_RESULTS,
    capped,
)
from ocr_poller.model import Answer

T = TypeVar("T")

_RUN_BYTES = 1 << 20  # string text handled at a time; bounds the pieces given to on_result
_SPOOL_BYTES = 8 << 20  # data met before its type stays in memory up to this, then goes to a temporary file
_KEY_BYTES = 64  # a longer key is none of ours: skipped, not kept
_SCALAR_BYTES = 4096  # the longest number accepted; json itself refuses integers past 4300 digits
_MAX_DEPTH = 200  # nesting of skipped values, so that skipping can never hit Python's recursion limit

_ANSWER_KEYS = frozenset({"id", "responseStatusCode", "taskStatus", "results", "error"})
_RESULT_KEYS = frozenset({"type", "data"})
_ERROR_KEYS = frozenset({"messages", "warnings"})

_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_TEXT_STOP = re.compile(rb'["\\\x00-\x1f]')
_CONTROL = re.compile(rb"[\x00-\x1f]")
# Text and valid escapes up to the next stop: how the part of a string that is not kept is checked, fast.
_CHECKED_TEXT = re.compile(rb'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+')
_SCALAR = re.compile(rb"true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPE = re.compile(
    rb'\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(["\\/bfnrt]))'
)
_SIMPLE_ESCAPES = {
    b'"': '"',
    b"\\": "\\",
    b"/": "/",
    b"b": "\b",
    b"f": "\f",
    b"n": "\n",
    b"r": "\r",
    b"t": "\t",
}
# System.Text.Json writes '+' as \u002B and some serializers escape '/': a bytes.replace of these keeps
# escaped data fast; any other escape goes through _ESCAPE.
_DATA_ESCAPE_SHORTCUTS = ((b"\\u002B", b"+"), (b"\\/", b"/"))


class AnswerFormatError(ValueError):
    """The body is not the documented JSON answer."""


class TooManyResultsError(ValueError):
    """The answer holds more results than the poller keeps (MAX_RESULTS)."""


class ForeignAnswerError(ValueError):
    """The answer names another task than the one asked for."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"the answer is for another task ({task_id})")
        self.task_id = task_id


class ResultDecodeError(ValueError):
    """A result's data is not valid Base64."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"result {index}: {message}")
        self.index = index


def read_answer(
    body: Iterable[bytes],
    on_result: Callable[[int, str, Iterator[bytes]], T],
    *,
    task_id: str | None = None,
) -> Answer[T]:
    """Parse an answer streamed as byte chunks, handing each result's decoded bytes to on_result.

    With `task_id`, results are stored only for an answer that can be that task's results: an `id`
    naming another task fails the answer as soon as it is read (ForeignAnswerError), and results that
    follow a `taskStatus` other than Completed are read through without reaching on_result.
    """
    return _AnswerReader(_Cursor(iter(body)), on_result, task_id).read()


def _bounded(text: str, limit: int) -> str:
    """The text as read when it fits `limit` UTF-8 bytes, else cut to it (limits.capped)."""
    if len(text.encode("utf-8", "surrogatepass")) <= limit:
        return text
    return capped(text, limit)


def _escaped(match: re.Match[bytes]) -> str:
    """The character an _ESCAPE match stands for; a surrogate pair makes one character, as in json."""
    simple, single, high, low = match[4], match[3], match[1], match[2]
    if simple:
        return _SIMPLE_ESCAPES[simple]
    if single:
        return chr(int(single, 16))
    return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)


def _escaped_in_base64(match: re.Match[bytes]) -> bytes:
    """An escape inside Base64 data: escaped whitespace is dropped, anything else kept for the decoder."""
    char = _escaped(match)
    return b"" if char in "\t\n\r " else char.encode("utf-8", "surrogatepass")


class _Cursor:
    """The body's bytes not consumed yet, refilled chunk by chunk on demand."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._pos = 0
        self._base = 0  # body offset of _buf[0]

    @property
    def offset(self) -> int:
        """Offset in the body of the next byte."""
        return self._base + self._pos

    def error(self, message: str) -> AnswerFormatError:
        return AnswerFormatError(f"{message} at byte {self.offset}")

    def fill(self) -> bool:
        """Append the next chunk, dropping consumed bytes; False at the end of the body."""
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        del self._buf[: self._pos]
        self._base += self._pos
        self._pos = 0
        self._buf += chunk
        return True

    def ensure(self, size: int) -> None:
        """Have at least `size` unconsumed bytes buffered, or all that is left of the body."""
        while len(self._buf) - self._pos < size and self.fill():
            pass

    def peek(self, what: str) -> int:
        """The next byte after whitespace, not consumed; `what` names what is expected there."""
        while not self._skip_whitespace():
            if not self.fill():
                raise self.error(f"the body ended where {what} was expected")
        return self._buf[self._pos]

    def take(self, expected: bytes, what: str) -> int:
        """Consume the next byte after whitespace, which must be one of `expected`."""
        byte = self.peek(what)
        if byte not in expected:
            raise self.error(f"expected {what}, found {chr(byte)!r}")
        self._pos += 1
        return byte

    def finish(self) -> None:
        """Check that only whitespace is left."""
        while not self._skip_whitespace():
            if not self.fill():
                return
        raise self.error("unexpected data after the answer")

    def _skip_whitespace(self) -> bool:
        """Consume buffered whitespace; whether a byte that is not whitespace follows in the buffer."""
        match = _NOT_WHITESPACE.search(self._buf, self._pos)
        self._pos = len(self._buf) if match is None else match.start()
        return match is not None

    def scalar(self) -> None:
        """Consume a number, true, false or null."""
        self.ensure(_SCALAR_BYTES)
        match = _SCALAR.match(self._buf, self._pos)
        if match is None:
            raise self.error("expected a JSON value")
        if match.end() - self._pos >= _SCALAR_BYTES:
            raise self.error(f"a number longer than {_SCALAR_BYTES} bytes")
        self._pos = match.end()

    def string(self, keep: int) -> str:
        """The string whose opening quote was just consumed, read to its end and checked; of its text,
        only the first characters are kept: all of it when it fits `keep` UTF-8 bytes, else a prefix
        longer than `keep` bytes (a few characters more), so that the caller can tell and cut it."""
        utf8 = codecs.getincrementaldecoder("utf-8")("surrogatepass")  # as json.loads decodes bytes
        parts: list[str] = []
        kept = 0  # UTF-8 bytes of the kept text
        while True:
            limit = min(len(self._buf), self._pos + _RUN_BYTES)
            if kept > keep:  # nothing more is kept: escapes are checked in bulk, not decoded one by one
                checked = _CHECKED_TEXT.match(self._buf, self._pos, limit)
                end = limit if checked is None else checked.end()
                stop = end < limit
            else:
                found = _TEXT_STOP.search(self._buf, self._pos, limit)
                end, stop = (limit, False) if found is None else (found.start(), True)
            raw = self._buf[self._pos : end]
            self._pos = end
            try:
                text = utf8.decode(raw, final=stop)
            except UnicodeDecodeError:
                raise self.error("invalid UTF-8 in a string") from None
            if kept <= keep and text:
                piece = text[: keep - kept + 1]  # a character is at least one byte: enough to pass `keep`
                parts.append(piece)
                kept += len(piece.encode("utf-8", "surrogatepass"))
            if not stop:
                if self._pos == len(self._buf) and not self.fill():
                    raise self.error("the body ended inside a string")
            elif self._buf[end] == ord('"'):
                self._pos += 1
                return "".join(parts)
            elif self._buf[end] == ord("\\"):
                self.ensure(12)  # the longest escape: a surrogate pair
                escape = _ESCAPE.match(self._buf, self._pos)
                if escape is None:
                    raise self.error("invalid escape sequence in a string")
                self._pos = escape.end()
                if kept <= keep:
                    char = _escaped(escape)
                    parts.append(char)
                    kept += len(char.encode("utf-8", "surrogatepass"))
            else:
                raise self.error("control character in a string")

    def raw_run(self) -> tuple[bytes, bool]:
        """Raw bytes of the string being read up to its next '"' (even an escaped one), at most _RUN_BYTES;
        and whether that quote was reached (then consumed)."""
        while self._pos == len(self._buf):
            if not self.fill():
                raise self.error("the body ended inside a string")
        quote = self._buf.find(b'"', self._pos, self._pos + _RUN_BYTES)
        end = min(len(self._buf), self._pos + _RUN_BYTES) if quote < 0 else quote
        run = bytes(self._buf[self._pos : end])
        self._pos = end if quote < 0 else end + 1
        return run, quote >= 0


class _Base64Text:
    """Strict incremental Base64 of one result's data: whitespace ignored, padding only at the very end."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._pending = b""  # an escape cut by the end of a run
        self._carry = b""  # characters after the last whole quad
        self._padded = False

    def decode(self, run: bytes, closed: bool, offset: int) -> bytes:
        """The bytes decoded from one raw run of the JSON string, which starts at `offset`."""
        raw = self._pending + run
        self._pending = b""
        text = self._unescape(raw, closed, offset) if b"\\" in raw else raw
        if b" " in text:
            text = text.translate(None, b" ")
        text = self._carry + text
        if not text:
            return b""
        if self._padded:
            raise ResultDecodeError(self._index, f"data continues after its '=' padding near byte {offset}")
        whole = len(text) - len(text) % 4
        self._carry = text[whole:]
        if whole:
            self._padded = text[whole - 1] == ord("=")
        try:
            return binascii.a2b_base64(text[:whole], strict_mode=True)
        except binascii.Error as exc:
            if _CONTROL.search(raw):  # \t \r \n must be escaped in JSON strings: not a Base64 matter
                raise AnswerFormatError(f"control character in a string near byte {offset}") from None
            raise ResultDecodeError(self._index, f"not valid Base64 near byte {offset}: {exc}") from None

    def finish(self, offset: int) -> None:
        """Check that the data ended on a whole quad."""
        if self._carry:
            raise ResultDecodeError(self._index, f"Base64 length not a multiple of 4 at byte {offset}")

    def _unescape(self, text: bytes, closed: bool, offset: int) -> bytes:
        # Base64 has no '"' or '\\', so every backslash here starts an escape and an escape never
        # spans more than one backslash: runs can be cut and substituted without a full JSON scanner.
        if b"\\\\" in text or (closed and text.endswith(b"\\")):
            raise ResultDecodeError(self._index, f"data holds an escaped '\"' or '\\' near byte {offset}")
        if not closed:
            cut = text.rfind(b"\\", max(0, len(text) - 5))
            if cut >= 0:
                text, self._pending = text[:cut], text[cut:]
        for escape, char in _DATA_ESCAPE_SHORTCUTS:
            text = text.replace(escape, char)
        if b"\\" in text:
            text = _ESCAPE.sub(_escaped_in_base64, text)
        if b"\\" in text:
            raise AnswerFormatError(f"invalid escape sequence in the data of a result near byte {offset}")
        return text


class _AnswerReader(Generic[T]):
    """The answer's grammar over a cursor: known fields kept, unknown ones skipped, results streamed."""

    def __init__(
        self, cursor: _Cursor, on_result: Callable[[int, str, Iterator[bytes]], T], task_id: str | None
    ) -> None:
        self._cur = cursor
        self._on_result = on_result
        self._task_id = task_id
        self._data_error: ValueError | None = None  # a decoding failure on_result may have swallowed

    def read(self) -> Answer[T]:
        """The whole answer."""
        task_id: str | None = None
        task_status: str | None = None
        status_code: str | None = None
        messages: tuple[str, ...] = ()
        warnings: tuple[str, ...] = ()
        results: tuple[T, ...] = ()
        for key in self._members("the answer", _ANSWER_KEYS):
            if key == "id":
                task_id = self._text("'id'")
                if self._task_id is not None and task_id is not None and task_id != self._task_id:
                    raise ForeignAnswerError(task_id)
            elif key == "taskStatus":
                task_status = self._text("'taskStatus'")
            elif key == "responseStatusCode":
                status_code = self._text("'responseStatusCode'")
            elif key == "results":
                if self._task_id is not None and task_status not in (None, "Completed"):
                    self._skip()  # a running or failed task's results are none of its results: not stored
                else:
                    results = () if self._null("'results'") else self._results()
            elif key == "error":
                messages, warnings = self._error()
            else:
                self._skip()
        self._cur.finish()
        return Answer(task_id, task_status, status_code, messages, warnings, results)

    def _members(self, what: str, known: frozenset[str] = frozenset()) -> Iterator[str]:
        """Keys of the object at the cursor, each left at its value (an overlong key cut, matching none)."""
        self._cur.take(b"{", f"'{{' opening {what}")
        if self._cur.peek(f"a key or '}}' in {what}") == ord("}"):
            self._cur.take(b"}", "'}'")
            return
        seen: set[str] = set()
        while True:
            self._cur.take(b'"', f"a key in {what}")
            key = self._cur.string(_KEY_BYTES)
            if key in known:
                if key in seen:
                    raise self._cur.error(f"{what} repeats the key {key!r}")
                seen.add(key)
            self._cur.take(b":", "':' after a key")
            yield key
            if self._cur.take(b",}", f"',' or '}}' in {what}") == ord("}"):
                return

    def _elements(self, what: str) -> Iterator[int]:
        """Indexes of the array at the cursor, each left at its element."""
        self._cur.take(b"[", f"'[' opening {what}")
        if self._cur.peek(f"a value or ']' in {what}") == ord("]"):
            self._cur.take(b"]", "']'")
            return
        index = 0
        while True:
            yield index
            index += 1
            if self._cur.take(b",]", f"',' or ']' in {what}") == ord("]"):
                return

    def _skip(self, depth: int = 0) -> None:
        """Consume a value of any shape without keeping it."""
        if depth > _MAX_DEPTH:
            raise self._cur.error(f"values nested deeper than {_MAX_DEPTH}")
        byte = self._cur.peek("a value")
        if byte == ord("{"):
            for _ in self._members("an object"):
                self._skip(depth + 1)
        elif byte == ord("["):
            for _ in self._elements("an array"):
                self._skip(depth + 1)
        elif byte == ord('"'):
            self._cur.take(b'"', "'\"'")
            self._cur.string(0)
        else:
            self._cur.scalar()

    def _null(self, what: str) -> bool:
        """Consume a null if that is the value at the cursor."""
        if self._cur.peek(what) != ord("n"):
            return False
        self._cur.scalar()
        return True

    def _string(self, what: str, limit: int) -> str:
        """A string value, cut to `limit` UTF-8 bytes."""
        self._cur.take(b'"', what)
        return _bounded(self._cur.string(limit), limit)

    def _text(self, what: str) -> str | None:
        return None if self._null(what) else self._string(f"a string or null for {what}", MAX_FIELD_BYTES)

    def _texts(self, what: str) -> tuple[str, ...]:
        """A list of messages: at most MAX_MESSAGES kept, the last of them saying how many more there were.

        Kept so, the list is left as it is by limits.capped_messages, which the poll applies again.
        """
        if self._null(what):
            return ()
        kept: list[str] = []
        total = 0
        for _ in self._elements(what):
            total += 1
            if len(kept) < MAX_MESSAGES:
                kept.append(self._string(f"a string in {what}", MAX_MESSAGE_BYTES))
            else:
                self._cur.take(b'"', f"a string in {what}")
                self._cur.string(0)
        if total > MAX_MESSAGES:
            kept[MAX_MESSAGES - 1 :] = [f"... and {total - (MAX_MESSAGES - 1)} more"]
        return tuple(kept)

    def _error(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The messages and warnings of the 'error' object."""
        messages: tuple[str, ...] = ()
        warnings: tuple[str, ...] = ()
        if self._null("'error'"):
            return messages, warnings
        for key in self._members("'error'", _ERROR_KEYS):
            if key == "messages":
                messages = self._texts("'error.messages'")
            elif key == "warnings":
                warnings = self._texts("'error.warnings'")
            else:
                self._skip()
        return messages, warnings

    def _results(self) -> tuple[T, ...]:
        results: list[T] = []
        for index in self._elements("'results'"):
            if index >= MAX_RESULTS:
                raise TooManyResultsError(f"the answer holds more than {MAX_RESULTS} results")
            results.append(self._result(index))
        return tuple(results)

    def _result(self, index: int) -> T:
        """Read one result object, calling on_result once for it."""
        what = f"result {index}"
        kind: str | None = None  # None until the type is read; then "" stands for null
        delivered: list[T] = []
        with ExitStack() as cleanup:
            spool: tempfile.SpooledTemporaryFile[bytes] | None = None
            for key in self._members(what, _RESULT_KEYS):
                if key == "type":
                    kind = self._text(f"'type' of {what}") or ""
                elif key != "data":
                    self._skip()
                elif not self._null(f"'data' of {what}"):
                    self._cur.take(b'"', f"a Base64 string or null for 'data' of {what}")
                    if kind is not None:
                        delivered.append(self._deliver(index, kind, self._decoded(index)))
                    else:  # the type comes later: keep the bytes aside, bounded in memory
                        spool = cleanup.enter_context(tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES))
                        for piece in self._decoded(index):
                            spool.write(piece)
            if delivered:
                return delivered[0]
            if spool is None:
                return self._deliver(index, kind or "", iter(()))
            spool.seek(0)
            return self._deliver(index, kind or "", iter(partial(spool.read, _RUN_BYTES), b""))

    def _deliver(self, index: int, kind: str, chunks: Iterator[bytes]) -> T:
        """Call on_result, then consume what it left of the chunks so the cursor moves past the data."""
        result = self._on_result(index, kind, chunks)
        for _ in chunks:
            pass
        if self._data_error is not None:
            raise self._data_error
        return result

    def _decoded(self, index: int) -> Iterator[bytes]:
        """The decoded bytes of the Base64 string being read, in pieces of at most ~_RUN_BYTES."""
        base64 = _Base64Text(index)
        try:
            closed = False
            while not closed:
                offset = self._cur.offset
                run, closed = self._cur.raw_run()
                piece = base64.decode(run, closed, offset)
                if piece:
                    yield piece
            base64.finish(self._cur.offset)
        except (AnswerFormatError, ResultDecodeError) as exc:
            self._data_error = exc
            raise
