"""The Aspose.OCR Cloud v5 API over urllib3: client-credentials token and one streamed status check."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import urllib3

from ocr_poller.adapters._answer_stream import AnswerFormatError, ResultDecodeError, read_answer
from ocr_poller.errors import Redeliver, RetryLater, UnusableAnswer
from ocr_poller.model import Answer, StoredResult
from ocr_poller.poll import ResultSink

READ_CHUNK_BYTES = 64 * 1024
READ_TIMEOUT_SECONDS = 30.0  # the longest silence of the API within a check
TOKEN_REFRESH_MARGIN_SECONDS = 60
SUBMIT_READ_TIMEOUT_SECONDS = 120.0  # a submission uploads the whole file
MAX_RETRY_AFTER_SECONDS = 86_400.0  # Aspose keeps results a day; longer waits are meaningless


class SubmitError(RuntimeError):
    """The API refused a submission."""


def submission_body(endpoint: str, content: bytes, *, result_type: str | None = None) -> dict[str, Any]:
    """The SDK's request body for a file: Base64 `image` and settings, or `text` for speech."""
    if endpoint == "ConvertTextToSpeech":
        return {"text": content.decode("utf-8")}
    settings: dict[str, Any] = {"language": "English"}
    if result_type:
        settings["resultType"] = result_type
    return {"image": base64.b64encode(content).decode("ascii"), "settings": settings}


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
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._http = http or urllib3.PoolManager(maxsize=10)
        self._timeout = timeout or urllib3.Timeout(connect=5.0, read=READ_TIMEOUT_SECONDS)
        read = self._timeout.read_timeout
        self._read_timeout = read if isinstance(read, float | int) else READ_TIMEOUT_SECONDS
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    def check(
        self, endpoint: str, task_id: str, on_result: ResultSink, *, until: float
    ) -> Answer[StoredResult]:
        """One GET of the task's answer, results streamed to on_result; a 401 renews the token once.

        until: epoch seconds by which the check is over, whatever the API sends or withholds.
        """
        url = f"{self._base_url}/v5.0/ocr/{quote(endpoint)}?id={quote(task_id)}"
        response = self._authorized(
            lambda token: self._request(
                "GET",
                url,
                token,
                preload_content=False,
                read_timeout=min(self._read_timeout, _time_left(until)),
            )
        )
        try:
            _raise_for_status(response)
            answer = _read(_body(response, until), on_result)
            response.drain_conn()  # the few bytes after the JSON, so the connection can be reused
        finally:
            _discard(response)
        return answer

    def submit(self, endpoint: str, body: dict[str, Any]) -> str:
        """POST a recognition request (the SDK's JSON body); the API answers the new task id."""
        url = f"{self._base_url}/v5.0/ocr/{quote(endpoint)}"
        payload = json.dumps(body).encode()
        response = self._authorized(
            lambda token: self._request(
                "POST", url, token, body=payload, read_timeout=SUBMIT_READ_TIMEOUT_SECONDS
            )
        )
        if response.status != 200:
            raise SubmitError(f"POST {url} answered HTTP {response.status}: {response.data[:200]!r}")
        task_id = response.data.decode("utf-8", "replace").strip().strip('"')
        if not task_id:
            raise SubmitError(f"POST {url} answered no task id")
        return task_id

    def _authorized(self, send: Callable[[str], urllib3.BaseHTTPResponse]) -> urllib3.BaseHTTPResponse:
        """Send with the cached token; on 401 renew the token and send once more."""
        stale = self._bearer()
        response = send(stale)
        if response.status != 401:
            return response
        _discard(response)
        return send(self._bearer(renew=stale))

    def _request(
        self,
        method: str,
        url: str,
        token: str,
        *,
        body: bytes | None = None,
        preload_content: bool = True,
        read_timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeout = self._timeout
        if read_timeout is not None:
            timeout = urllib3.Timeout(connect=self._timeout.connect_timeout, read=read_timeout)
        try:
            return self._http.request(
                method,
                url,
                body=body,
                headers=headers,
                preload_content=preload_content,
                timeout=timeout,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The query holds only the task id, but errors name the path alone all the same.
            raise RetryLater(f"{method} {url.split('?')[0]} failed: {type(exc).__name__}: {exc}") from exc

    def _bearer(self, renew: str | None = None) -> str:
        """The cached token, fetched when missing, about to expire, or equal to `renew` (rejected)."""
        with self._token_lock:
            token = self._token
            if token is None or token.value == renew or token.expires_at <= self._clock():
                token = self._token = self._fetch_token()
            return token.value

    def _fetch_token(self) -> _Token:
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
                timeout=self._timeout,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryLater(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status in (400, 401):
            # Not transient on purpose: the message fails, SQS retries it, and after the redrive count it
            # reaches the dead-letter queue, where the alarm tells someone to fix the secret and redrive.
            raise Redeliver(f"token request rejected: HTTP {response.status} {response.data[:100]!r}")
        if response.status != 200:
            raise RetryLater(
                f"token request failed: HTTP {response.status}",
                retry_after=_retry_after(response.headers.get("Retry-After"), time.time()),
            )
        try:
            document = json.loads(response.data)
            value = document["access_token"]
            lifetime = float(document.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise RetryLater("the token answer is not the documented JSON") from exc
        if not isinstance(value, str) or not value:
            raise RetryLater("the token answer holds no access_token")
        return _Token(value, self._clock() + lifetime - TOKEN_REFRESH_MARGIN_SECONDS)


def _read(body: Iterator[bytes], on_result: ResultSink) -> Answer[StoredResult]:
    """The parsed answer; the reader's errors become the poller's kinds here, at the adapter's edge."""
    try:
        return read_answer(body, on_result)
    except AnswerFormatError as exc:
        raise RetryLater(f"the answer is not the documented JSON: {exc}") from exc
    except ResultDecodeError as exc:
        raise UnusableAnswer(f"the answer cannot be decoded: {exc}") from exc


def _body(response: urllib3.BaseHTTPResponse, until: float) -> Iterator[bytes]:
    """The body in chunks until `until`; a broken read is the API's failure, not the results' sink's."""
    try:
        for chunk in response.stream(READ_CHUNK_BYTES):
            _time_left(until)
            yield chunk
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise RetryLater(f"reading the answer failed: {type(exc).__name__}: {exc}") from exc


def _time_left(until: float) -> float:
    """Seconds left for the check; RetryLater when none are."""
    left = until - time.time()
    if left <= 0:
        raise RetryLater("the check ran out of the invocation's time")
    return left


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back to the pool only if nothing is left unread on it; otherwise close it."""
    if not response.closed:
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
