"""The Aspose client without a network: Retry-After, and what it makes of hostile token answers."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from ocr_poller.adapters.aspose import (
    DEFAULT_TOKEN_LIFETIME_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    MAX_TOKEN_ANSWER_BYTES,
    MAX_TOKEN_LIFETIME_SECONDS,
    MIN_TOKEN_LIFETIME_SECONDS,
    AsposeApi,
    Credentials,
    _lifetime,
    _retry_after,
)
from ocr_poller.errors import Redeliver, RetryLater
from ocr_poller.limits import MAX_TOKEN_BYTES
from ocr_poller.model import StoredResult

SECRET = "s3cr3t-Client-Secret"
PENDING = json.dumps({"id": "t", "taskStatus": "Pending", "results": None, "error": None}).encode()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("37", 37.0),
        ("soon", None),
        ("9" * 400, MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert _retry_after(header, now=0.0) == seconds


def test_retry_after_as_an_http_date() -> None:
    # Given a date 120 s after now
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
    header = format_datetime(datetime(2026, 11, 24, 12, 2, tzinfo=UTC), usegmt=True)
    # Then
    assert _retry_after(header, now) == 120.0
    assert _retry_after(header, now + 600) == 0.0


def test_credentials_repr_hides_the_secret() -> None:
    assert "hunter2" not in repr(Credentials("me", "hunter2"))


# Token answers


@dataclass
class FakeResponse:
    """What the client reads of a urllib3 response."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    read_bytes: int = 0
    closed: bool = False
    connection: Any = None

    def stream(self, amt: int) -> Iterator[bytes]:
        for start in range(0, len(self.body), amt):
            piece = self.body[start : start + amt]
            self.read_bytes += len(piece)
            yield piece
        self.closed = True

    @property
    def data(self) -> bytes:
        return self.body

    def drain_conn(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


@dataclass
class FakeHttp:
    """Answers the token endpoint from a script (one answer per token request) and every check Pending."""

    tokens: list[FakeResponse]
    token_requests: int = 0
    bearers: list[str] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        if url.endswith("/connect/token"):
            self.token_requests += 1
            return self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
        self.bearers.append(kwargs["headers"]["Authorization"])
        return FakeResponse(200, PENDING)


def token_answer(access_token: object = "tok-1", **extra: object) -> FakeResponse:
    return FakeResponse(200, json.dumps({"access_token": access_token, **extra}).encode())


def api(http: FakeHttp) -> AsposeApi:
    return AsposeApi("https://api.example", lambda: Credentials("id", SECRET), http=http)  # type: ignore[arg-type]


def check(client: AsposeApi) -> str | None:
    def refuse(index: int, kind: str, chunks: Iterator[bytes]) -> StoredResult:
        raise AssertionError("no results expected")

    return client.check("RecognizeLabel", "t", refuse, until=math.inf).task_status


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(token_answer("tok\r\nX-Injected: 1"), "not a bearer token", id="cr-lf"),
        pytest.param(token_answer("tök€n"), "not a bearer token", id="not-ascii"),
        pytest.param(token_answer("tok en"), "not a bearer token", id="space"),
        pytest.param(token_answer("t" * (MAX_TOKEN_BYTES + 1)), "not a bearer token", id="too-long"),
        pytest.param(token_answer(""), "holds no access_token", id="empty"),
        pytest.param(token_answer(42), "holds no access_token", id="not-a-string"),
        pytest.param(FakeResponse(200, b"[" * 60_000), "not the documented JSON", id="deep-json"),
        pytest.param(FakeResponse(200, b"\xff<html>"), "not the documented JSON", id="not-json"),
        pytest.param(FakeResponse(200, b'["tok"]'), "not the documented JSON", id="not-an-object"),
        pytest.param(token_answer(expires_in=float("nan")), "expires_in", id="nan-lifetime"),
        pytest.param(token_answer(expires_in="soon"), "expires_in", id="word-lifetime"),
        pytest.param(token_answer(expires_in=True), "expires_in", id="bool-lifetime"),
    ],
)
def test_a_bad_token_answer_is_transient_and_never_cached(answer: FakeResponse, reason: str) -> None:
    # Given a token endpoint that answers a bad token, then a good one
    http = FakeHttp([answer, token_answer("good-token")])
    client = api(http)
    # When two checks are made
    with pytest.raises(RetryLater, match=reason) as error:
        check(client)
    status = check(client)
    # Then the first failed before any request carried the token, the second fetched a new one and used it
    assert (status, http.token_requests, http.bearers) == ("Pending", 2, ["Bearer good-token"])
    assert answer.body.decode("utf-8", "replace")[:40] not in str(error.value) or not answer.body


def test_a_huge_token_answer_announced_by_its_length_is_not_read() -> None:
    # Given a token answer that says it holds hundreds of megabytes
    huge = FakeResponse(200, b"x" * 10, {"Content-Length": str(300 << 20)})
    http = FakeHttp([huge, token_answer()])
    # When / Then
    with pytest.raises(RetryLater, match=f"larger than {MAX_TOKEN_ANSWER_BYTES} bytes"):
        check(api(http))
    assert (huge.read_bytes, huge.closed) == (0, True)


def test_a_huge_token_answer_without_a_length_is_read_no_further_than_the_cap() -> None:
    # Given a token answer of a few megabytes, chunked
    huge = FakeResponse(200, b'{"access_token": "' + b"x" * (4 << 20))
    http = FakeHttp([huge, token_answer()])
    # When / Then
    with pytest.raises(RetryLater, match="larger than"):
        check(api(http))
    assert huge.read_bytes <= 2 * MAX_TOKEN_ANSWER_BYTES and huge.closed


@pytest.mark.parametrize("status", [400, 401])
def test_rejected_credentials_say_only_the_status(status: int) -> None:
    # Given a token endpoint that echoes the request, secret included, in its refusal
    echo = FakeResponse(status, f"grant_type=client_credentials&client_secret={SECRET}".encode())
    # When / Then the record is failed for redelivery, and the error holds nothing of the body
    with pytest.raises(Redeliver) as error:
        check(api(FakeHttp([echo])))
    assert str(error.value) == f"token request rejected: HTTP {status}"
    assert error.value.__cause__ is None and echo.read_bytes == 0


def test_a_failed_token_request_says_only_the_status() -> None:
    echo = FakeResponse(503, f"client_secret={SECRET}".encode(), {"Retry-After": "7"})
    with pytest.raises(RetryLater) as error:
        check(api(FakeHttp([echo])))
    assert (str(error.value), error.value.retry_after) == ("token request failed: HTTP 503", 7.0)


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (None, DEFAULT_TOKEN_LIFETIME_SECONDS),
        (3600, 3600.0),
        ("1800", 1800.0),
        (0, MIN_TOKEN_LIFETIME_SECONDS),
        (-5, MIN_TOKEN_LIFETIME_SECONDS),
        (10**12, MAX_TOKEN_LIFETIME_SECONDS),
        (1e308, MAX_TOKEN_LIFETIME_SECONDS),
    ],
)
def test_token_lifetime_is_clamped_to_sane_bounds(expires_in: object, seconds: float) -> None:
    assert _lifetime(expires_in) == seconds


@pytest.mark.parametrize(
    "expires_in", [float("nan"), float("inf"), -float("inf"), "1e999", [], {}, "x" * 100]
)
def test_a_lifetime_that_is_not_a_finite_number_is_refused(expires_in: object) -> None:
    with pytest.raises(RetryLater, match="expires_in"):
        _lifetime(expires_in)


def test_a_good_token_is_cached_for_its_clamped_lifetime() -> None:
    # Given a token that claims to live for ever, on a clock the test moves
    now = [0.0]
    http = FakeHttp([token_answer("first", expires_in=10**12), token_answer("second")])
    client = AsposeApi(
        "https://api.example",
        lambda: Credentials("id", SECRET),
        http=http,  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    # When checks are made within a day, then after it
    check(client)
    now[0] = MAX_TOKEN_LIFETIME_SECONDS - 120
    check(client)
    now[0] = MAX_TOKEN_LIFETIME_SECONDS
    check(client)
    # Then the token was renewed after a day at the latest
    assert http.bearers == ["Bearer first", "Bearer first", "Bearer second"]


def test_a_check_out_of_time_before_it_starts_sends_nothing() -> None:
    http = FakeHttp([token_answer()])
    with pytest.raises(RetryLater, match="ran out of time"):
        api(http).check("RecognizeLabel", "t", lambda *_: pytest.fail("no result"), until=0.0)
    assert (http.token_requests, http.bearers) == (0, [])
