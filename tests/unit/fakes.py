"""Duck-typed, in-memory stand-ins for the poller's collaborators."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from ocr_poller.adapters._answer_stream import Answer
from ocr_poller.adapters.s3 import result_format, result_key
from ocr_poller.model import StoredResult, TaskRecord
from ocr_poller.poll import Collaborators, ResultSink
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

    def check(self, endpoint: str, task_id: str, on_result: ResultSink) -> Answer[StoredResult]:
        self.calls.append((endpoint, task_id))
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
    lose_next_commit: bool = False  # simulate another delivery winning the race after our read

    def get(self, task_id: str) -> TaskRecord | None:
        return self.items.get(task_id)

    def commit(self, record: TaskRecord, *, previous_attempts: int) -> bool:
        current = self.items.get(record.task_id)
        if self.lose_next_commit or (current is not None and current.attempts != previous_attempts):
            self.lose_next_commit = False
            return False
        self.items[record.task_id] = record
        return True

    def mark_announced(self, task_id: str, attempts: int) -> None:
        if self.items[task_id].attempts == attempts:
            self.items[task_id] = replace(self.items[task_id], announced=True)


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
    announced: list[TaskRecord] = field(default_factory=list)

    def announce(self, record: TaskRecord) -> None:
        self.announced.append(record)


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
    clock: Clock = field(default_factory=Clock)
    deadline_seconds: float = 86_400

    @property
    def deps(self) -> Collaborators:
        return Collaborators(
            api=self.api,
            results=self.results,
            records=self.records,
            queue=self.queue,
            announcer=self.announcer,
            backoff=Backoff(jitter=0.0),
            deadline_seconds=self.deadline_seconds,
            default_endpoint="RecognizeLabel",
            clock=self.clock,
        )


class Crash(RuntimeError):
    """An injected crash: the function died at this point."""


class CrashOnce:
    """Wraps a fake or real adapter: the first call of `method` dies before reaching it, later ones pass."""

    def __init__(self, inner: object, method: str) -> None:
        self._inner = inner
        self._method = method
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method or self.crashed:
            return attribute

        def crash(*args: object, **kwargs: object) -> NoReturn:
            self.crashed = True
            raise Crash(f"injected crash instead of {name}")

        return crash


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
