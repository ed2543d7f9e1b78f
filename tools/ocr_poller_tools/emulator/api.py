"""The emulated Aspose.OCR Cloud v5 API without the sockets: routes, tokens, tasks, checks and faults."""

from __future__ import annotations

import base64
import hmac
import itertools
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ocr_poller import request
from ocr_poller.errors import Refused
from ocr_poller_tools.emulator.content import ENDPOINTS, InvalidSubmission, Result, large_result, results_for
from ocr_poller_tools.emulator.faults import Fault, FaultKind, FaultQueue, fault_from_json, parse_fault_header

TOKEN_LIFETIME_SECONDS = 3600
FAULT_HEADER = "X-Emulator-Fault"
# Not Base64 even to a lenient decoder: what is left after dropping the stray characters is 9 characters long.
NOT_BASE64 = "%%%not-base64%%%"
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_CHECK_PATH = re.compile(r"/v5\.0/ocr/(?P<endpoint>[A-Za-z0-9]+)")
# The SDK's UtilitiesApi.get_task_status: any endpoint's task, its status without results.
_STATUS_PATH = "/v5.0/ocr/utilities/gettaskstatus"
_TASK_PATH = re.compile(r"/emulator/tasks/(?P<task>[^/]+)(?P<faults>/faults)?")
_DATA_MARK = "@@streamed-data@@"


class UnknownEndpoint(LookupError):
    """An endpoint the v5 API does not have."""


class UnknownTask(LookupError):
    """A task id the emulator never issued."""


@dataclass(frozen=True)
class Reply:
    """An HTTP answer to send: `length` bytes of `chunks`, optionally after a delay or instead a hang-up."""

    status: int
    chunks: Iterable[bytes] = (b"",)
    length: int = 0
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # seconds to wait before answering
    hang_up: bool = False  # after the delay, close the connection without answering


@dataclass
class _Task:
    endpoint: str
    submitted_at: float
    results: list[Result]
    faults: FaultQueue = field(default_factory=FaultQueue)


class EmulatedApi:
    """The API's state behind one lock; `handle` answers one HTTP request."""

    def __init__(
        self,
        *,
        processing_seconds: float,
        client_id: str | None,
        client_secret: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._processing_seconds = processing_seconds
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        self._checks: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}  # token -> when it was issued

    def submit(self, endpoint: str, body: Mapping[str, Any], faults: Sequence[Fault] = ()) -> str:
        """Queue a task as `POST /v5.0/ocr/{endpoint}` does; its id."""
        canonical = canonical_endpoint(endpoint)
        task = _Task(canonical, self._clock(), results_for(canonical, body))
        for fault in faults:
            task.faults.add(fault)
        task_id = str(uuid.uuid4())
        with self._lock:
            self._tasks[task_id] = task
        return task_id

    def inject(self, task_id: str, fault: Fault) -> None:
        """Queue a fault for the task's next status checks."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise UnknownTask(task_id)
            task.faults.add(fault)

    def checks(self, task_id: str) -> int:
        """How many status checks (GETs) named this task id, whatever their answer."""
        with self._lock:
            return self._checks[task_id]

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request; header names in `headers` are lower case."""
        url = urlsplit(target)
        check = _CHECK_PATH.fullmatch(url.path)
        task = _TASK_PATH.fullmatch(url.path)
        if method == "GET" and url.path == "/":
            return _text(200, self._description())
        if method == "POST" and url.path == "/connect/token":
            return self._issue_token(_form(body))
        if method == "GET" and url.path.lower() == _STATUS_PATH:
            return self._task_status(_form(url.query.encode()).get("id"), headers.get("authorization"))
        if check and method in ("GET", "POST"):
            try:
                endpoint = canonical_endpoint(check["endpoint"])
            except UnknownEndpoint:
                return _problem(404, f"no endpoint {check['endpoint']}")
            if method == "GET":
                return self._check(
                    endpoint, _form(url.query.encode()).get("id"), headers.get("authorization")
                )
            return self._submit_request(endpoint, headers, body)
        if task and method == "GET" and not task["faults"]:
            return _json(200, self._describe(task["task"]))
        if task and method == "POST" and task["faults"]:
            return self._inject_request(task["task"], body)
        return _problem(404, f"no route {method} {url.path}")

    def _issue_token(self, form: Mapping[str, str]) -> Reply:
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        known = self._client_id is None or (
            hmac.compare_digest(client_id, self._client_id)
            and hmac.compare_digest(client_secret, self._client_secret or "")
        )
        if not client_id or not known:
            return _json(400, {"error": "invalid_client"})
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = self._clock()
        answer = {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"}
        return _json(200, answer, headers=(("Cache-Control", "no-store"),))

    def _authorized(self, authorization: str | None) -> bool:
        """Whether the header carries a live token; the caller holds the lock."""
        scheme, _, token = (authorization or "").partition(" ")
        issued = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return issued is not None and self._clock() - issued < TOKEN_LIFETIME_SECONDS

    def _submit_request(self, endpoint: str, headers: Mapping[str, str], body: bytes) -> Reply:
        with self._lock:
            authorized = self._authorized(headers.get("authorization"))
        if not authorized:
            return _UNAUTHORIZED
        try:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise InvalidSubmission("the body must be a JSON object")
            fault_header = headers.get(FAULT_HEADER.lower())
            faults = parse_fault_header(fault_header) if fault_header is not None else []
            task_id = self.submit(endpoint, document, faults)
        except ValueError as exc:  # not JSON, InvalidSubmission, FaultError
            return _problem(400, str(exc))
        return _text(200, task_id)

    def _inject_request(self, task_id: str, body: bytes) -> Reply:
        try:
            fault = fault_from_json(json.loads(body))
            self.inject(task_id, fault)
        except ValueError as exc:  # not JSON, FaultError
            return _json(400, {"error": str(exc)})
        except UnknownTask:
            return _json(404, {"error": f"no task {task_id}"})
        return _json(201, fault.to_dict())

    def _check(self, endpoint: str, task_id: str | None, authorization: str | None) -> Reply:
        if not task_id:
            return _NO_ID
        with self._lock:
            task = self._counted_task(task_id, authorization, endpoint)
            if isinstance(task, Reply):
                return task
            fault = task.faults.take()
            if fault is not None and fault.kind is FaultKind.UNAUTHORIZED:
                # As if every token had expired: the client must fetch a new one.
                self._tokens.clear()
                return _UNAUTHORIZED
            status = self._status(task)
        results = task.results if status == "Completed" else None
        normal = _json(200, _answer(task_id, status, _status_code(status), results))
        return normal if fault is None else _faulty(fault, task_id, task, normal)

    def _task_status(self, task_id: str | None, authorization: str | None) -> Reply:
        """The task's status whatever its endpoint, never its results; faults stay queued for the checks."""
        if not task_id:
            return _NO_ID
        with self._lock:
            task = self._counted_task(task_id, authorization)
            if isinstance(task, Reply):
                return task
            status = self._status(task)
        return _json(200, _answer(task_id, status, _status_code(status)))

    def _counted_task(
        self, task_id: str, authorization: str | None, endpoint: str | None = None
    ) -> _Task | Reply:
        """A check of the task counted (the lock held): the task, or the reply that ends the check - not
        authorized, or no such task (at `endpoint`, when one is named)."""
        self._checks[task_id] += 1
        if not self._authorized(authorization):
            return _UNAUTHORIZED
        task = self._tasks.get(task_id)
        if task is None or endpoint not in (None, task.endpoint):
            return _json(200, _answer(task_id, "NotExist", "TaskNotFound"))
        return task

    def _status(self, task: _Task) -> str:
        elapsed = self._clock() - task.submitted_at
        if elapsed >= self._processing_seconds:
            return "Completed"
        return "Pending" if elapsed < self._processing_seconds / 2 else "Processing"

    def _describe(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            task = self._tasks.get(task_id)
            described: dict[str, Any] = {"id": task_id, "checks": self._checks[task_id]}
            if task is None:
                return described | {"taskStatus": "NotExist"}
            return described | {
                "endpoint": task.endpoint,
                "taskStatus": self._status(task),
                "faults": task.faults.describe(),
            }

    def _description(self) -> str:
        routes = [
            ("POST /connect/token", "form grant_type=client_credentials&client_id=..&client_secret=.."),
            ("POST /v5.0/ocr/{Endpoint}", "the official SDK's JSON body; answers the task id as text/plain"),
            (
                "GET  /v5.0/ocr/{Endpoint}?id=",
                f"OCRResponse JSON: Pending, Processing, Completed after {self._processing_seconds:g} s",
            ),
            ("GET  /v5.0/ocr/Utilities/GetTaskStatus?id=", "the task's status, results null"),
            ("GET  /emulator/tasks/{id}", "the task's status, check count and pending faults"),
            (
                "POST /emulator/tasks/{id}/faults",
                'JSON {"kind": ..., "times": 1, ...}: faults for next checks',
            ),
            (f"{FAULT_HEADER}: kind[;name=value]", "header of a submit: faults for the new task's checks"),
        ]
        lines = [
            "Aspose.OCR Cloud v5 API emulator (ocr-poller).",
            "",
            *(f"{route:<44}{meaning}" for route, meaning in routes),
            "",
            "Endpoints: " + ", ".join(ENDPOINTS),
            "Fault kinds: " + ", ".join(FaultKind),
        ]
        return "\n".join(lines) + "\n"


def canonical_endpoint(name: str) -> str:
    """The endpoint's spelling in the API (routes are case-insensitive)."""
    try:
        return request.canonical_endpoint(name)
    except Refused:
        raise UnknownEndpoint(name) from None


def _faulty(fault: Fault, task_id: str, task: _Task, normal: Reply) -> Reply:
    result_type = fault.result_type or (task.results[0].type if task.results else "Text")
    match fault.kind:
        case FaultKind.LATENCY:
            return replace(normal, delay=fault.delay)
        case FaultKind.TIMEOUT:
            return Reply(0, delay=fault.delay, hang_up=True)
        case FaultKind.THROTTLE:
            # Retry-After dates are wall-clock dates, whatever clock drives the tasks.
            retry_after = (
                formatdate(time.time() + fault.retry_after, usegmt=True)
                if fault.http_date
                else str(math.ceil(fault.retry_after))
            )
            return _text(429, "Too Many Requests", headers=(("Retry-After", retry_after),))
        case FaultKind.SERVER_ERROR:
            return _text(fault.status, f"Emulated server error (HTTP {fault.status})")
        case FaultKind.NOT_JSON:
            page = b"<!DOCTYPE html><html><head><title>Gateway</title></head><body>Please wait</body></html>"
            return _reply(200, page, "text/html; charset=utf-8")
        case FaultKind.BAD_BASE64:
            results = [{"type": result_type, "data": NOT_BASE64}]
            return _json(200, _answer(task_id, "Completed", "Ok") | {"results": results})
        case FaultKind.ERROR:
            error = {"messages": [fault.message], "warnings": []}
            return _json(200, _answer(task_id, "Error", "Error") | {"error": error})
        case FaultKind.EMPTY:
            return _json(200, _answer(task_id, "Completed", fault.code, []))
        case FaultKind.LARGE:
            return _large(task_id, result_type, fault.size)
    raise AssertionError(f"unhandled fault kind {fault.kind}")  # UNAUTHORIZED is answered under the lock


def _large(task_id: str, result_type: str, size: int) -> Reply:
    """One result of `size` bytes, Base64-encoded chunk by chunk as it is sent."""
    document = _answer(task_id, "Completed", "Ok") | {"results": [{"type": result_type, "data": _DATA_MARK}]}
    head, tail = json.dumps(document).encode().split(_DATA_MARK.encode())
    encoded = (base64.b64encode(chunk) for chunk in large_result(size))
    length = len(head) + 4 * math.ceil(size / 3) + len(tail)
    return Reply(200, itertools.chain([head], encoded, [tail]), length, _JSON)


def _answer(task_id: str, status: str, code: str, results: Sequence[Result] | None = None) -> dict[str, Any]:
    """An OCRResponse (TTSResponse has the same shape) with the SDK's field names."""
    encoded = None if results is None else [_encoded(result) for result in results]
    return {
        "id": task_id,
        "responseStatusCode": code,
        "taskStatus": status,
        "results": encoded,
        "error": None,
    }


def _encoded(result: Result) -> dict[str, str]:
    return {"type": result.type, "data": base64.b64encode(result.data).decode("ascii")}


def _status_code(status: str) -> str:
    return "Ok" if status == "Completed" else "NotReady"


def _form(data: bytes) -> dict[str, str]:
    """The first value of each field of a URL-encoded form or query string."""
    return {name: values[0] for name, values in parse_qs(data.decode("utf-8", "replace")).items()}


def _reply(
    status: int, body: bytes, content_type: str | None, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    return Reply(status, (body,), len(body), content_type, headers)


def _json(status: int, document: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return _reply(status, json.dumps(document).encode(), _JSON, headers)


def _text(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return _reply(status, text.encode(), _TEXT, headers)


def _problem(status: int, detail: str) -> Reply:
    """An RFC 9457 problem, as ASP.NET answers a bad request."""
    titles = {400: "Bad Request", 404: "Not Found"}
    document = {"title": titles.get(status, "Error"), "status": status, "detail": detail}
    return _reply(status, json.dumps(document).encode(), "application/problem+json; charset=utf-8")


# A bearer-token API answers 401 with an empty body and a challenge.
_UNAUTHORIZED = Reply(401, headers=(("WWW-Authenticate", 'Bearer error="invalid_token"'),))
_NO_ID = _problem(400, "the id query parameter is required")
