"""One check of one task, the decision it leads to, and its effects (CONTRACT.md section 4).

Pure domain code: every outside system is a collaborator passed in, so tests use plain fakes.
Exactly-once effects on an at-least-once queue rest on one rule: a check only takes effect through
a conditional write of the task record on its attempt number, and only the delivery that won that
write re-queues the successor or announces the end (or, after a crash, a redelivery of it), then
marks the record so that no later delivery does it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from ocr_poller.errors import Redeliver, Refused, RetryLater, UnusableAnswer
from ocr_poller.model import Answer, Status, StoredResult, TaskRecord
from ocr_poller.request import PollRequest, parse_body, parse_document
from ocr_poller.schedule import Backoff

ResultSink = Callable[[int, str, Iterator[bytes]], StoredResult]


class Api(Protocol):
    def check(self, endpoint: str, task_id: str, on_result: ResultSink) -> Answer[StoredResult]: ...


class ResultStore(Protocol):
    def put(self, task_id: str, index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult: ...

    def delete(self, results: Sequence[StoredResult]) -> None: ...


class Records(Protocol):
    def get(self, task_id: str) -> TaskRecord | None: ...

    def commit(self, record: TaskRecord, *, previous_attempts: int) -> bool: ...

    def mark_announced(self, task_id: str, attempts: int) -> None: ...


class Queue(Protocol):
    def send(self, request: PollRequest, delay_seconds: int) -> None: ...

    def dead_letter(self, body: str, reason: str) -> bool: ...


class Announcer(Protocol):
    def announce(self, record: TaskRecord) -> None: ...


@dataclass(frozen=True)
class Collaborators:
    """Everything a check touches."""

    api: Api
    results: ResultStore
    records: Records
    queue: Queue
    announcer: Announcer
    backoff: Backoff
    deadline_seconds: float
    default_endpoint: str
    clock: Callable[[], float]


@dataclass(frozen=True)
class CheckResult:
    """What one status check returned, reduced to what the decision needs."""

    task_status: str | None = None
    results: tuple[StoredResult, ...] = ()
    error_messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    response_status_code: str | None = None
    failure: str | None = None  # a transient failure: no answer this time
    retry_after: float | None = None
    undecodable: str | None = None  # a result could not be decoded: the task cannot succeed


@dataclass(frozen=True)
class Decision:
    """The action of the contract's table for one answer."""

    status: Status | None  # None: a transient failure keeps the last known status
    requeue: bool
    error_messages: tuple[str, ...] = ()


class Action(StrEnum):
    REQUEUED = "requeued"  # checked, still running: the successor is on the queue
    FINISHED = "finished"  # checked, ended: record final, event announced
    DUPLICATE = "duplicate"  # another delivery made (or is making) this check: nothing more to do
    RESUMED = "resumed"  # a redelivery finished the effects of a check that crashed half-way
    REJECTED = "rejected"  # an invalid request, sent to the dead-letter queue


@dataclass(frozen=True)
class Outcome:
    """What processing one poll request did."""

    action: Action
    task_id: str | None = None
    record: TaskRecord | None = None
    delay_seconds: int | None = None
    reason: str | None = None  # why a request was rejected or dropped
    checked: bool = False  # the API was called


MAX_MESSAGES = 20
MAX_MESSAGE_CHARS = 2000  # the API's messages end up in a DynamoDB item (400 KB) and an event (256 KB)


_RUNNING = {Status.PENDING.value: Status.PENDING, Status.PROCESSING.value: Status.PROCESSING}
_FINAL = {
    Status.COMPLETED.value: Status.COMPLETED,
    Status.ERROR.value: Status.ERROR,
    Status.NOT_EXIST.value: Status.NOT_EXIST,
}


_DEFAULT_MESSAGES = {
    Status.ERROR: ("the API reported an error without a message",),
    Status.NOT_EXIST: ("the API does not know this task: never submitted, or its results expired (24 h)",),
}
# Lambda's longest timeout: a check committed longer ago than this has no invocation left finishing it.
SETTLE_SECONDS = 900.0


def decide(check: CheckResult, *, elapsed: float, deadline: float) -> Decision:
    """Map one answer (or failure) to the contract's action; the deadline ends a chain still running."""
    if check.undecodable is not None:
        return Decision(Status.ERROR, requeue=False, error_messages=(check.undecodable,))
    status = _FINAL.get(check.task_status or "")
    if status is not None:
        messages = check.error_messages or _DEFAULT_MESSAGES.get(status, ())
        return Decision(status, requeue=False, error_messages=messages)
    running = _RUNNING.get(check.task_status or "")
    if elapsed >= deadline:
        last_seen = check.failure or f"the task was still {running}"
        return Decision(
            Status.EXPIRED, requeue=False, error_messages=(f"deadline of {deadline:g} s passed: {last_seen}",)
        )
    return Decision(running, requeue=True)


def process_body(body: str, delivery_id: str, deps: Collaborators) -> Outcome:
    """Handle one SQS message body: validate it, then check the task once."""
    try:
        request = parse_body(body, default_endpoint=deps.default_endpoint)
    except Refused as exc:
        return _reject(body, str(exc), deps)
    return check_once(request, delivery_id, deps)


def process_detail(detail: object, delivery_id: str, deps: Collaborators) -> Outcome:
    """Handle one EventBridge event's detail: validate it, then check the task once."""
    try:
        request = parse_document(detail, default_endpoint=deps.default_endpoint)
    except Refused as exc:
        return _reject(_as_text(detail), str(exc), deps)
    return check_once(request, delivery_id, deps)


def check_once(request: PollRequest, delivery_id: str, deps: Collaborators) -> Outcome:
    """Make exactly one status check of the task and carry out the action it leads to."""
    previous = deps.records.get(request.task_id)
    if previous is not None and (previous.attempts > request.attempt or previous.status.is_final):
        return _after_commit(request, previous, delivery_id, deps)

    checked_at = deps.clock()
    # The record's first check, not the message's claim, bounds the chain: a message cannot move the deadline.
    first_check_at = checked_at if previous is None else previous.first_check_at
    check = _check(request, deps)
    decision = decide(check, elapsed=checked_at - first_check_at, deadline=deps.deadline_seconds)
    record = _record(request, previous, check, decision, delivery_id, first_check_at, checked_at)

    if not deps.records.commit(record, previous_attempts=request.attempt):
        winner = deps.records.get(request.task_id)
        if winner is not None and winner.committed_by == delivery_id and not winner.announced:
            # A copy of this same message won and has not sent its effects yet; if this copy were
            # acknowledged, SQS could delete the message and a crash of the winner would end the chain.
            raise Redeliver(f"check {record.attempts} of task {request.task_id} is still being finished")
        return Outcome(
            Action.DUPLICATE, request.task_id, winner, reason="another delivery made this check", checked=True
        )
    if check.undecodable is not None and check.results:
        # What came before the undecodable result is no result either. Only the winner deletes: the
        # keys are shared with any duplicate delivery of this check.
        deps.results.delete(check.results)
    return replace(_carry_out(request, record, deps, resumed=False), checked=True)


def _check(request: PollRequest, deps: Collaborators) -> CheckResult:
    stored: list[StoredResult] = []

    def store(index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult:
        result = deps.results.put(request.task_id, index, _storable(result_type), chunks)
        stored.append(result)
        return result

    try:
        answer = deps.api.check(request.endpoint, request.task_id, store)
    except RetryLater as exc:
        return CheckResult(failure=exc.reason, retry_after=exc.retry_after)
    except UnusableAnswer as exc:
        return CheckResult(results=tuple(stored), undecodable=str(exc))
    if answer.task_status not in _RUNNING and answer.task_status not in _FINAL:
        return CheckResult(
            failure=f"the answer has no known taskStatus ({_storable(str(answer.task_status))})"
        )
    if answer.task_id not in (None, request.task_id):
        return CheckResult(failure=f"the answer is for another task ({_storable(str(answer.task_id))})")
    return CheckResult(
        task_status=answer.task_status,
        results=answer.results,
        error_messages=_bounded(answer.error_messages),
        warnings=_bounded(answer.warnings),
        response_status_code=_storable(answer.response_status_code or "") or None,
    )


def _bounded(messages: tuple[str, ...]) -> tuple[str, ...]:
    """At most MAX_MESSAGES messages of MAX_MESSAGE_CHARS each, storable."""
    kept = tuple(_storable(message[:MAX_MESSAGE_CHARS]) for message in messages[:MAX_MESSAGES])
    dropped = len(messages) - len(kept)
    return kept + ((f"... and {dropped} more",) if dropped else ())


def _storable(text: str) -> str:
    """The API's text with lone surrogates (valid JSON, not UTF-8) replaced: S3 and DynamoDB refuse them."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _record(
    request: PollRequest,
    previous: TaskRecord | None,
    check: CheckResult,
    decision: Decision,
    delivery_id: str,
    first_check_at: float,
    checked_at: float,
) -> TaskRecord:
    status = decision.status or (previous.status if previous else Status.PENDING)
    failures = ((previous.transient_failures if previous else 0) + 1) if check.failure else 0
    return TaskRecord(
        task_id=request.task_id,
        endpoint=request.endpoint,
        status=status,
        attempts=request.attempt + 1,
        first_check_at=first_check_at,
        last_check_at=checked_at,
        committed_by=delivery_id,
        results=check.results if status is Status.COMPLETED else (),
        error_messages=decision.error_messages,
        warnings=check.warnings,
        response_status_code=check.response_status_code,
        last_error=check.failure,
        transient_failures=failures,
        retry_after=check.retry_after,
    )


def _after_commit(request: PollRequest, record: TaskRecord, delivery_id: str, deps: Collaborators) -> Outcome:
    """A check this request asks for was already made: finish its effects if they are still missing.

    They are missing when the record is not marked `announced`; this request may finish them when it is
    the very message that made the check (SQS redelivers with the same id), or when that check is too
    old for any invocation to still be at work on it (a message redriven from the DLQ gets a new id).
    """
    if record.attempts != request.attempt + 1:
        reason = f"the task is at check {record.attempts} ({record.status}); this request was for check "
        return Outcome(Action.DUPLICATE, request.task_id, record, reason=f"{reason}{request.attempt + 1}")
    if record.announced:
        return Outcome(Action.DUPLICATE, request.task_id, record, reason="this check's effects were sent")
    if record.committed_by != delivery_id and deps.clock() - record.last_check_at < SETTLE_SECONDS:
        return Outcome(Action.DUPLICATE, request.task_id, record, reason="another delivery is finishing it")
    return _carry_out(request, record, deps, resumed=True)


def _carry_out(request: PollRequest, record: TaskRecord, deps: Collaborators, *, resumed: bool) -> Outcome:
    """Send the successor, or announce the end; then mark the record so that neither happens twice."""
    if record.status.is_final:
        deps.announcer.announce(record)
        deps.records.mark_announced(record.task_id, record.attempts)
        action = Action.RESUMED if resumed else Action.FINISHED
        return Outcome(action, record.task_id, replace(record, announced=True))
    now = deps.clock()
    delay = deps.backoff.delay(
        elapsed=record.last_check_at - record.first_check_at,
        spent=now - record.last_check_at,
        transient_failures=record.transient_failures,
        retry_after=record.retry_after,
        remaining=record.first_check_at + deps.deadline_seconds - now,
    )
    successor = PollRequest(request.task_id, request.endpoint, record.attempts, record.first_check_at)
    deps.queue.send(successor, delay)
    # Marked, so that any later redelivery of this message (not only one after a crash) sends no second one.
    deps.records.mark_announced(record.task_id, record.attempts)
    action = Action.RESUMED if resumed else Action.REQUEUED
    return Outcome(action, record.task_id, replace(record, announced=True), delay_seconds=delay)


def _reject(body: str, reason: str, deps: Collaborators) -> Outcome:
    if not deps.queue.dead_letter(body, reason):
        # No dead-letter queue of our own: failing the record lets the redrive policy carry it there.
        raise Refused(reason)
    return Outcome(Action.REJECTED, reason=reason)


def _as_text(detail: object) -> str:
    try:
        return json.dumps(detail)
    except (TypeError, ValueError):
        return repr(detail)
