"""Duck-typed, in-memory stand-ins for the poller's collaborators."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from ocr_poller.adapters.s3 import result_format, result_key
from ocr_poller.model import Answer, Stage, Status, StoredResult, TaskRecord
from ocr_poller.poll import Collaborators, Delivery, ResultSink
from ocr_poller.request import PollRequest
from ocr_poller.schedule import Backoff


@dataclass
class Reply:
    """One scripted API answer."""

    status: str | None
    results: list[tuple[str, bytes]] = field(default_factory=list)
    messages: tuple[str, ...] = ()
    code: str | None = None


@dataclass
class FakeApi:
    """Answers checks from a script of replies or exceptions, one per check."""

    script: list[Reply | Exception]
    calls: list[tuple[str, str]] = field(default_factory=list)
    untils: list[float] = field(default_factory=list)

    def check(
        self, endpoint: str, task_id: str, on_result: ResultSink, *, until: float
    ) -> Answer[StoredResult]:
        self.calls.append((endpoint, task_id))
        self.untils.append(until)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        stored = tuple(on_result(i, kind, iter([data])) for i, (kind, data) in enumerate(step.results))
        return Answer(task_id, step.status, step.code, step.messages, (), stored)


@dataclass
class MemoryResults:
    objects: dict[str, bytes] = field(default_factory=dict)
    puts: int = 0

    def put(self, task_id: str, index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult:
        body = b"".join(chunks)
        key = result_key("results/", task_id, index, result_type)
        self.objects[key] = body
        self.puts += 1
        content_type = result_format(result_type)[0]
        return StoredResult(
            result_type, "bucket", key, content_type, len(body), hashlib.sha256(body).hexdigest()
        )

    def delete(self, results: Sequence[StoredResult]) -> None:
        for result in results:
            self.objects.pop(result.key, None)


@dataclass
class MemoryRecords:
    items: dict[str, TaskRecord] = field(default_factory=dict)

    def get(self, task_id: str) -> TaskRecord | None:
        return self.items.get(task_id)

    def commit(self, record: TaskRecord) -> bool:
        current = self.items.get(record.task_id)
        previous = current.check_number if current else 0
        if previous != record.check_number - 1:
            return False
        self.items[record.task_id] = record
        return True

    def claim(self, record: TaskRecord, *, now: float) -> bool:
        current = self.items.get(record.task_id)
        if (
            current is None
            or current.check_number != record.check_number
            or current.stage is not Stage.SENDING
            or current.lease_expires_at > now
        ):
            return False
        self.items[record.task_id] = replace(
            current, lease_expires_at=record.lease_expires_at, committed_by=record.committed_by
        )
        return True

    def release(self, record: TaskRecord) -> None:
        current = self.items[record.task_id]
        if (current.check_number, current.stage, current.committed_by) == (
            record.check_number,
            Stage.SENDING,
            record.committed_by,
        ):
            self.items[record.task_id] = replace(current, lease_expires_at=0.0)

    def mark_sent(self, record: TaskRecord) -> None:
        current = self.items[record.task_id]
        if current.check_number == record.check_number:
            self.items[record.task_id] = replace(current, stage=Stage.SENT)


@dataclass
class MemoryQueue:
    sent: list[tuple[PollRequest, int]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def send(self, request: PollRequest, delay_seconds: int) -> None:
        self.sent.append((request, delay_seconds))

    def dead_letter(self, body: str, reason: str) -> bool:
        self.rejected.append((body, reason))
        return True


@dataclass
class MemoryAnnouncer:
    announced: list[tuple[Status, dict[str, Any]]] = field(default_factory=list)

    def announce(self, status: Status, detail: dict[str, Any]) -> None:
        self.announced.append((status, detail))


@dataclass
class MemoryCallbacks:
    """Step Functions' side: the calls made, and the tokens it refuses."""

    calls: list[tuple[str, ...]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)

    def heartbeat(self, token: str) -> str | None:
        self.calls.append(("heartbeat", token))
        return self._refusal(token)

    def succeed(self, token: str, output: str) -> str | None:
        self.calls.append(("succeed", token, output))
        return self._refusal(token)

    def fail(self, token: str, error: str, cause: str) -> str | None:
        self.calls.append(("fail", token, error, cause))
        return self._refusal(token)

    def _refusal(self, token: str) -> str | None:
        return "TaskTimedOut" if token in self.refused else None


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """All fakes of one test, and the Collaborators built from them."""

    api: FakeApi
    results: MemoryResults = field(default_factory=MemoryResults)
    records: MemoryRecords = field(default_factory=MemoryRecords)
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    announcer: MemoryAnnouncer = field(default_factory=MemoryAnnouncer)
    callbacks: MemoryCallbacks = field(default_factory=MemoryCallbacks)
    clock: Clock = field(default_factory=Clock)
    deadline_seconds: float = 86_400

    def sqs(self, message_id: str) -> Delivery:
        """A delivery by SQS in an invocation starting now, with Lambda's 300 s timeout."""
        return Delivery(message_id, self.clock.now + 300, from_queue=True)

    def event(self, event_id: str) -> Delivery:
        """A delivery by EventBridge in an invocation starting now."""
        return Delivery(event_id, self.clock.now + 300, from_queue=False)

    @property
    def deps(self) -> Collaborators:
        return Collaborators(
            api=self.api,
            results=self.results,
            records=self.records,
            queue=self.queue,
            announcer=self.announcer,
            callbacks=self.callbacks,
            backoff=Backoff(jitter=0.0),
            deadline_seconds=self.deadline_seconds,
            default_endpoint="RecognizeLabel",
            clock=self.clock,
        )


class Stale:
    """Records whose reads return what another delivery read earlier; writes go to the real ones."""

    def __init__(self, inner: MemoryRecords, seen: TaskRecord | None) -> None:
        self._inner = inner
        self._seen = seen
        self._read = False

    def get(self, task_id: str) -> TaskRecord | None:
        if self._read:
            return self._inner.get(task_id)
        self._read = True
        return self._seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Killed:
    """Records of an invocation that is killed (timeout, out of memory): it never gives its lease up."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def release(self, record: TaskRecord) -> None:
        """A killed process runs no clean-up."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Failing:
    """Wraps a collaborator: every call of `method` raises `error`."""

    def __init__(self, inner: object, method: str, error: Exception) -> None:
        self._inner, self._method, self._error = inner, method, error

    def __getattr__(self, name: str) -> Any:
        if name != self._method:
            return getattr(self._inner, name)

        def fail(*args: object, **kwargs: object) -> NoReturn:
            raise self._error

        return fail


class Crash(RuntimeError):
    """An injected crash: the function died at this point."""


class FirstCall:
    """Wraps a fake or real adapter: the first call of `method` goes through `first_call`, later ones pass."""

    def __init__(self, inner: object, method: str) -> None:
        self._inner = inner
        self._method = method
        self.intercepted = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method or self.intercepted:
            return attribute

        def intercept(*args: Any, **kwargs: Any) -> Any:
            self.intercepted = True
            return self.first_call(attribute, *args, **kwargs)

        return intercept

    def first_call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class CrashOnce(FirstCall):
    """The first call of `method` dies before reaching the adapter; later ones pass."""

    def first_call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> NoReturn:
        raise Crash(f"injected crash instead of {self._method}")


class Spy:
    """Wraps a fake or real adapter, recording the arguments of each call of `method` before passing it on."""

    def __init__(self, inner: object, method: str) -> None:
        self._inner = inner
        self._method = method
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method:
            return attribute

        def record(*args: Any) -> Any:
            self.calls.append(args)
            return attribute(*args)

        return record
