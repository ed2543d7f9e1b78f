"""The Aspose.OCR Cloud v5 API over urllib3: client-credentials token and one streamed status check.

The API is outside the trust boundary (CONTRACT.md section 10). A check never runs past its `until`:
connect and read timeouts are cut to the time left, the time is checked between chunks of the body,
and a watchdog shuts the socket down at `until` so that a body trickling a byte at a time cannot hold
a read open. The token answer is read with a size cap and validated before it is used or cached.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import urllib3

from ocr_poller.adapters._answer_stream import (
    AnswerFormatError,
    ForeignAnswerError,
    ResultDecodeError,
    TooManyResultsError,
    read_answer,
)
from ocr_poller.errors import Redeliver, RetryLater, UnusableAnswer
from ocr_poller.limits import MAX_TOKEN_BYTES
from ocr_poller.model import Answer, StoredResult
from ocr_poller.poll import ResultSink

READ_CHUNK_BYTES = 64 * 1024
TOKEN_REFRESH_MARGIN_SECONDS = 60
MAX_RETRY_AFTER_SECONDS = 86_400.0  # Aspose keeps results a day; longer waits are meaningless
MAX_TOKEN_ANSWER_BYTES = 64 * 1024  # a token answer is a few hundred bytes; a larger one is not read whole
# expires_in is clamped to these: 0 or a negative lifetime renews at most twice a minute, a huge one daily.
# Missing, it is Aspose's hour; present but not a finite number of seconds, the answer is refused.
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600.0
MIN_TOKEN_LIFETIME_SECONDS = 60.0
MAX_TOKEN_LIFETIME_SECONDS = 86_400.0
_BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no space, CR, LF or anything a header mangles


@dataclass(frozen=True, repr=False)
class Credentials:
    """Aspose client credentials; repr hides the secret so it never reaches a log."""

    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret=***)"


@dataclass
class _Token:
    value: str
    expires_at: float


class AsposeApi:
    """Fetches a task's answer; the token is cached for the life of the process and renewed on 401."""

    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], Credentials],
        *,
        http: urllib3.PoolManager | None = None,
        timeout: urllib3.Timeout | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._http = http or urllib3.PoolManager(maxsize=10)
        self._timeout = timeout or urllib3.Timeout(connect=5.0, read=30.0)
        self._clock = clock  # the token's lifetime
        self._now = now  # the clock of `until` (epoch seconds)
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    def check(
        self, endpoint: str, task_id: str, on_result: ResultSink, *, until: float
    ) -> Answer[StoredResult]:
        """One GET of the task's answer, results streamed to on_result; a 401 renews the token once.

        Over by `until` (epoch seconds) whatever the API does: a check that runs out of time raises
        RetryLater after closing its connection.
        """
        url = f"{self._base_url}/v5.0/ocr/{quote(endpoint)}?id={quote(task_id)}"
        response = self._authorized(
            lambda token: self._request("GET", url, token, until=until, preload_content=False), until
        )
        with self._cut_off_at(until, response) as cut_off:
            try:
                _raise_for_status(response)
                answer = self._answer(response, on_result, task_id, until, cut_off)
                response.drain_conn()  # the few bytes after the JSON, so the connection can be reused
            finally:
                _discard(response, reusable=not cut_off.is_set())
        return answer

    def _authorized(
        self, send: Callable[[str], urllib3.BaseHTTPResponse], until: float | None
    ) -> urllib3.BaseHTTPResponse:
        """Send with the cached token; on 401 renew the token and send once more."""
        stale = self._bearer(until)
        response = send(stale)
        if response.status != 401:
            return response
        _discard(response, reusable=False)
        return send(self._bearer(until, renew=stale))

    def _request(
        self,
        method: str,
        url: str,
        token: str,
        *,
        until: float | None = None,
        body: bytes | None = None,
        preload_content: bool = True,
        read_timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._http.request(
                method,
                url,
                body=body,
                headers=headers,
                preload_content=preload_content,
                timeout=self._timeouts(until, read_timeout),
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The query holds only the task id, but errors name the path alone all the same.
            path = url.split("?")[0]
            if until is not None and self._now() >= until:
                raise RetryLater(f"{method} {path} ran out of time: {type(exc).__name__}") from exc
            raise RetryLater(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc

    def _timeouts(self, until: float | None, read_timeout: float | None = None) -> urllib3.Timeout:
        """The configured timeouts, each cut to the time left before `until`."""
        connect = self._timeout.connect_timeout
        read = self._timeout.read_timeout if read_timeout is None else read_timeout
        if until is None:
            return urllib3.Timeout(connect=connect, read=read)
        left = self._time_left(until, "before the request")
        return urllib3.Timeout(connect=_at_most(connect, left), read=_at_most(read, left))

    def _time_left(self, until: float, where: str) -> float:
        left = until - self._now()
        if left <= 0:
            raise RetryLater(f"the check ran out of time {where}")
        return left

    @contextmanager
    def _cut_off_at(
        self, until: float | None, response: urllib3.BaseHTTPResponse
    ) -> Iterator[threading.Event]:
        """A watchdog that shuts the response's socket down at `until`; the event says whether it did.

        A read blocked on a socket that still receives a byte now and then never times out; shutting the
        socket down ends it at once. Once the block is left the watchdog can no longer fire.
        """
        fired = threading.Event()
        if until is None:
            yield fired
            return
        guard = threading.Lock()
        active = True

        def cut_off() -> None:
            with guard:
                if active:
                    fired.set()
                    _shutdown(response)

        timer = threading.Timer(min(max(0.0, until - self._now()), threading.TIMEOUT_MAX), cut_off)
        timer.daemon = True
        timer.start()
        try:
            yield fired
        finally:
            with guard:
                active = False
            timer.cancel()

    def _chunks(
        self, response: urllib3.BaseHTTPResponse, until: float | None, cut_off: threading.Event
    ) -> Iterator[bytes]:
        """The body in chunks, the time checked between them; a broken read is the API's failure."""
        try:
            for chunk in response.stream(READ_CHUNK_BYTES):
                if until is not None and self._now() >= until:
                    raise RetryLater("the check ran out of time reading the answer")
                yield chunk
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if cut_off.is_set():
                raise RetryLater("the check ran out of time reading the answer") from None
            raise RetryLater(f"reading the answer failed: {type(exc).__name__}: {exc}") from exc

    def _answer(
        self,
        response: urllib3.BaseHTTPResponse,
        on_result: ResultSink,
        task_id: str,
        until: float,
        cut_off: threading.Event,
    ) -> Answer[StoredResult]:
        """The parsed answer; the reader's errors become the poller's kinds here, at the adapter's edge."""
        try:
            return read_answer(self._chunks(response, until, cut_off), on_result, task_id=task_id)
        except AnswerFormatError as exc:
            if cut_off.is_set():  # the body was cut short by the watchdog, not by the API
                raise RetryLater("the check ran out of time reading the answer") from None
            raise RetryLater(f"the answer is not the documented JSON: {exc}") from exc
        except ForeignAnswerError as exc:
            raise RetryLater(str(exc)) from exc
        except TooManyResultsError as exc:
            raise UnusableAnswer(str(exc)) from exc
        except ResultDecodeError as exc:
            raise UnusableAnswer(f"the answer cannot be decoded: {exc}") from exc

    def _bearer(self, until: float | None, renew: str | None = None) -> str:
        """The cached token, fetched when missing, about to expire, or equal to `renew` (rejected)."""
        wait = (
            -1.0 if until is None else min(self._time_left(until, "before the token"), threading.TIMEOUT_MAX)
        )
        if not self._token_lock.acquire(timeout=wait):
            raise RetryLater("the check ran out of time waiting for the token")
        try:
            token = self._token
            if token is None or token.value == renew or token.expires_at <= self._clock():
                token = self._token = self._fetch_token(until)
            return token.value
        finally:
            self._token_lock.release()

    def _fetch_token(self, until: float | None) -> _Token:
        """A new token; nothing of the token endpoint's answer but its status reaches an error."""
        credentials = self._credentials()
        url = f"{self._base_url}/connect/token"
        try:
            response = self._http.request(
                "POST",
                url,
                fields={
                    "grant_type": "client_credentials",
                    "client_id": credentials.client_id,
                    "client_secret": credentials.client_secret,
                },
                encode_multipart=False,
                timeout=self._timeouts(until),
                preload_content=False,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryLater(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
        with self._cut_off_at(until, response) as cut_off:
            try:
                if response.status in (400, 401):
                    # Not transient on purpose: the message fails, SQS retries it, and after the redrive
                    # count it reaches the dead-letter queue, where the alarm tells someone to fix the secret.
                    # The body is never read: an endpoint that echoes the request would hold the secret.
                    raise Redeliver(f"token request rejected: HTTP {response.status}")
                if response.status != 200:
                    raise RetryLater(
                        f"token request failed: HTTP {response.status}",
                        retry_after=_retry_after(response.headers.get("Retry-After"), time.time()),
                    )
                data = self._token_answer(response, until, cut_off)
            finally:
                _discard(response, reusable=not cut_off.is_set())
        value, lifetime = _parse_token(data)
        return _Token(value, self._clock() + lifetime - min(TOKEN_REFRESH_MARGIN_SECONDS, lifetime / 2))

    def _token_answer(
        self, response: urllib3.BaseHTTPResponse, until: float | None, cut_off: threading.Event
    ) -> bytes:
        """The token answer's body, at most MAX_TOKEN_ANSWER_BYTES; a larger one is left unread."""
        too_large = RetryLater(f"the token answer is larger than {MAX_TOKEN_ANSWER_BYTES} bytes")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_TOKEN_ANSWER_BYTES:
            raise too_large
        data = bytearray()
        for chunk in self._chunks(response, until, cut_off):
            data += chunk
            if len(data) > MAX_TOKEN_ANSWER_BYTES:
                raise too_large
        return bytes(data)


def _parse_token(data: bytes) -> tuple[str, float]:
    """The access token and its lifetime in seconds from a token answer; RetryLater when unusable.

    Errors name the field at fault, never its value: the answer is a secret.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise RetryLater("the token answer is not the documented JSON") from None
    if not isinstance(document, dict):
        raise RetryLater("the token answer is not the documented JSON")
    value = document.get("access_token")
    if not isinstance(value, str) or not value:
        raise RetryLater("the token answer holds no access_token")
    if len(value) > MAX_TOKEN_BYTES or not _BEARER_TOKEN.fullmatch(value):
        raise RetryLater(
            f"the token answer's access_token is not a bearer token of at most {MAX_TOKEN_BYTES} "
            "visible ASCII characters"
        )
    return value, _lifetime(document.get("expires_in"))


def _lifetime(expires_in: object) -> float:
    """expires_in clamped to MIN..MAX_TOKEN_LIFETIME_SECONDS; missing, the default."""
    if expires_in is None:
        return DEFAULT_TOKEN_LIFETIME_SECONDS
    seconds = math.nan
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        seconds = float(expires_in)
    elif isinstance(expires_in, str) and len(expires_in) <= 20:
        try:
            seconds = float(expires_in)
        except ValueError:
            pass
    if not math.isfinite(seconds):
        raise RetryLater("the token answer's expires_in is not a number of seconds")
    return min(max(seconds, MIN_TOKEN_LIFETIME_SECONDS), MAX_TOKEN_LIFETIME_SECONDS)


def _at_most(configured: object, left: float) -> float:
    """A configured timeout cut to the time left; one left to urllib3's default becomes the time left."""
    return min(float(configured), left) if isinstance(configured, int | float) else left


def _shutdown(response: urllib3.BaseHTTPResponse) -> None:
    """Shut the response's socket down, from another thread: a read blocked on it returns at once.

    urllib3 (2.3 and later) keeps the socket's shutdown on the response, even once the connection has
    handed its socket over to the response (an answer with `Connection: close`); the connection's own
    socket is the fallback.
    """
    try:
        response.shutdown()
        return
    except (AttributeError, ValueError, RuntimeError, OSError):
        pass  # an older urllib3, or nothing left to shut down
    sock = getattr(response.connection, "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing left to cut off


def _discard(response: urllib3.BaseHTTPResponse, *, reusable: bool = True) -> None:
    """Give the connection back to the pool only if nothing is left unread on it; otherwise close it."""
    if not reusable or not response.closed:
        response.close()
    response.release_conn()


def _raise_for_status(response: urllib3.BaseHTTPResponse) -> None:
    if response.status == 200:
        return
    retry_after = _retry_after(response.headers.get("Retry-After"), time.time())
    reason = {401: "the token was rejected twice", 429: "throttled"}.get(response.status, "unexpected status")
    raise RetryLater(f"HTTP {response.status}: {reason}", retry_after=retry_after)


def _retry_after(header: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return min(float(header), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_SECONDS)
