"""One check of one task, the decision it leads to, and its effects (CONTRACT.md sections 3, 4, 9, 10).

Pure domain code: every outside system is a collaborator passed in, so tests use plain fakes.

The task record is the authority on a task's chain; a request's fields are hints. Checks are numbered
from 1 (`check_number`, stored as `attempts`); a request asks for a check (`for_check`). A check takes
effect only through a conditional write of the record on the check before it, so at most one delivery
makes each check. The commit also takes a lease: until `lease_expires_at` (the end of the committing
invocation) only that invocation sends the check's effects — the successor and the heartbeat while the
task runs; the callback, the event and the `SENT` mark when it ends. Effects that fail give the lease
up (as Powertools' idempotency deletes its INPROGRESS record), so the next delivery may claim them.

| record holds         | a valid request arrives for      | what happens                                  |
| -------------------- | -------------------------------- | --------------------------------------------- |
| nothing              | any check                        | check 1, committed if there is still none     |
| check n, running     | check n+1, or a later one (the   | check n+1, committed if the record is still   |
|                      | number is only a hint)           | at n; a delivery that loses deletes objects   |
|                      |                                  | the winner's record does not list, then goes  |
|                      |                                  | on as a copy of check n (next rows)           |
| check n, running     | an earlier check                 | dropped: the chain moved on                   |
| check n, SENDING,    | check n, or any once final       | another SQS message: dropped (the holder's    |
| lease live           |                                  | own message covers its crash); a copy of the  |
|                      |                                  | holder's message, or an event: `Redeliver`    |
| check n, SENDING,    | check n, or any once final       | claimed (a conditional write on the lease),   |
| lease over           |                                  | then the effects are sent                     |
| check n, final, SENT | anything                         | dropped: the task ended and was announced     |

Only a failure between sending and marking repeats an effect: the completion event (and a callback,
which Step Functions then refuses) at the end; a successor, which is not marked, when a copy of its
request claims the lease before the next check is committed — an extra message that loses its check's
commit, never a second chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from ocr_poller.completion import completion_detail
from ocr_poller.errors import Redeliver, Refused, RetryLater, UnusableAnswer
from ocr_poller.limits import (
    MAX_FIELD_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_REASON_BYTES,
    MAX_RESULTS,
    capped,
    capped_messages,
    within_text_budget,
)
from ocr_poller.model import Answer, Stage, Status, StoredResult, TaskRecord
from ocr_poller.request import PollRequest, parse_body, parse_document
from ocr_poller.schedule import Backoff

ResultSink = Callable[[int, str, Iterator[bytes]], StoredResult]

# Kept from the invocation's time for what follows a check: the commit, the successor, the batch response.
CHECK_MARGIN_SECONDS = 10.0
# Added to a lease for clocks that differ between Lambda hosts.
CLOCK_SKEW_SECONDS = 5.0


class Api(Protocol):
    def check(
        self, endpoint: str, task_id: str, on_result: ResultSink, *, until: float
    ) -> Answer[StoredResult]: ...


class ResultStore(Protocol):
    def put(self, task_id: str, index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult: ...

    def delete(self, results: Sequence[StoredResult]) -> None: ...


class Records(Protocol):
    def get(self, task_id: str) -> TaskRecord | None: ...

    def commit(self, record: TaskRecord) -> bool: ...

    def claim(self, record: TaskRecord, *, now: float) -> bool: ...

    def mark_sent(self, record: TaskRecord) -> None: ...

    def release(self, record: TaskRecord) -> None: ...


class Queue(Protocol):
    def send(self, request: PollRequest, delay_seconds: int) -> None: ...

    def dead_letter(self, body: str, reason: str) -> bool: ...


class Announcer(Protocol):
    def announce(self, status: Status, detail: dict[str, Any]) -> None: ...


class Callbacks(Protocol):
    """Step Functions' task token callbacks. Each answers None when Step Functions took the call, or the
    code it refused the token with (the waiting state timed out, its execution ended, it never was one)."""

    def heartbeat(self, token: str) -> str | None: ...

    def succeed(self, token: str, output: str) -> str | None: ...

    def fail(self, token: str, error: str, cause: str) -> str | None: ...


@dataclass(frozen=True)
class Collaborators:
    """Everything a check touches."""

    api: Api
    results: ResultStore
    records: Records
    queue: Queue
    announcer: Announcer
    callbacks: Callbacks
    backoff: Backoff
    deadline_seconds: float
    default_endpoint: str
    clock: Callable[[], float]


@dataclass(frozen=True)
class Delivery:
    """What brought a request (an SQS message or an EventBridge event), and when its invocation ends."""

    id: str  # the SQS message id (the same for every copy of a message) or the EventBridge event id
    ends_at: float  # epoch seconds at which the invocation is stopped
    # SQS: acknowledging any copy of a message deletes it for all of them. EventBridge: each copy of an
    # event is its own invocation, retried by Lambda on its own.
    from_queue: bool


@dataclass(frozen=True)
class CheckResult:
    """What one status check returned, reduced to what the decision needs."""

    task_status: str | None = None
    results: tuple[StoredResult, ...] = ()
    stored: tuple[StoredResult, ...] = ()  # every object the check wrote, kept as results or not
    error_messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    response_status_code: str | None = None
    failure: str | None = None  # a transient failure: no answer this time
    retry_after: float | None = None
    unusable: str | None = None  # the answer can never yield the results: the task ends Error


@dataclass(frozen=True)
class Decision:
    """The action of the contract's table for one answer."""

    status: Status | None  # None: a transient failure keeps the last known status
    requeue: bool
    error_messages: tuple[str, ...] = ()


class Action(StrEnum):
    REQUEUED = "requeued"  # checked, still running: the successor is on the queue
    FINISHED = "finished"  # checked, ended: record final, event announced
    DUPLICATE = "duplicate"  # another delivery made this check, or the chain moved on: nothing to do
    RESUMED = "resumed"  # the effects of a check whose sender died were sent by this delivery
    REJECTED = "rejected"  # an invalid request, sent to the dead-letter queue


@dataclass(frozen=True)
class Outcome:
    """What processing one poll request did."""

    action: Action
    task_id: str | None = None
    record: TaskRecord | None = None
    delay_seconds: int | None = None
    reason: str | None = None  # why a request was rejected or dropped, or a callback refused
    checked: bool = False  # the API was called


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


def decide(check: CheckResult, *, elapsed: float, deadline: float) -> Decision:
    """Map one answer (or failure) to the contract's action; the deadline ends a chain still running."""
    if check.unusable is not None:
        return Decision(Status.ERROR, requeue=False, error_messages=(check.unusable,))
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


def process_body(body: str, delivery: Delivery, deps: Collaborators) -> Outcome:
    """Handle one SQS message body: validate it, then check the task once."""
    try:
        request = parse_body(body, default_endpoint=deps.default_endpoint)
    except Refused as exc:
        return _reject(body, str(exc), deps)
    return check_once(request, delivery, deps)


def process_detail(detail: object, delivery: Delivery, deps: Collaborators) -> Outcome:
    """Handle one EventBridge event's detail: validate it, then check the task once."""
    try:
        request = parse_document(detail, default_endpoint=deps.default_endpoint)
    except Refused as exc:
        return _reject(_as_text(detail), str(exc), deps)
    return check_once(request, delivery, deps)


def check_once(request: PollRequest, delivery: Delivery, deps: Collaborators) -> Outcome:
    """Make at most one status check of the task, ended before the invocation, and carry out its action."""
    previous = deps.records.get(request.task_id)
    if previous is not None and (previous.status.is_final or request.for_check <= previous.check_number):
        return _made_already(request, previous, delivery, deps)

    checked_at = deps.clock()
    first_check_at = checked_at if previous is None else previous.first_check_at
    check = _check(request, deps, until=delivery.ends_at - CHECK_MARGIN_SECONDS)
    decision = decide(check, elapsed=checked_at - first_check_at, deadline=deps.deadline_seconds)
    record = _record(request, previous, check, decision, delivery, first_check_at, checked_at)

    if not deps.records.commit(record):
        winner = deps.records.get(request.task_id)
        # Objects under the same keys are the winner's when its record lists them.
        _delete_unlisted(check.stored, winner.results if winner else (), deps)
        if winner is None:
            raise Redeliver(
                f"check {record.check_number} of task {record.task_id} lost its commit to nothing"
            )
        # The winner may be a copy of this very message: the same rules as for a copy that came later.
        return replace(_made_already(request, winner, delivery, deps), checked=True)
    _delete_unlisted(check.stored, record.results, deps)
    return replace(_send_effects(record, deps, resumed=False), checked=True)


def _made_already(
    request: PollRequest, record: TaskRecord, delivery: Delivery, deps: Collaborators
) -> Outcome:
    """The record is at or past the check this request asks for: send that check's effects if they are due."""
    if not record.status.is_final and request.for_check < record.check_number:
        reason = f"the task is at check {record.check_number}; this request was for check {request.for_check}"
        return Outcome(Action.DUPLICATE, request.task_id, record, reason=reason)
    if record.stage is Stage.SENT:
        return Outcome(Action.DUPLICATE, request.task_id, record, reason="the task ended and was announced")
    now = deps.clock()
    if now < record.lease_expires_at:
        if delivery.from_queue and delivery.id != record.committed_by:
            # Another message: the holder's own message (or Lambda's retry of its event) covers a crash.
            reason = f"check {record.check_number} is being sent by another delivery"
            return Outcome(Action.DUPLICATE, request.task_id, record, reason=reason)
        # A copy of the holder's own message (acknowledging it would delete the message the holder relies
        # on), or an event: Lambda retries an event whose invocation died, possibly within its lease.
        raise Redeliver(
            f"check {record.check_number} of task {record.task_id} is being sent by another delivery "
            f"for {record.lease_expires_at - now:.0f} s more"
        )
    claimed = replace(record, committed_by=delivery.id, lease_expires_at=_lease_end(delivery))
    if not deps.records.claim(claimed, now=now):
        raise Redeliver(f"check {record.check_number} of task {record.task_id} changed while claiming it")
    return _send_effects(claimed, deps, resumed=True)


def _check(request: PollRequest, deps: Collaborators, *, until: float) -> CheckResult:
    stored: list[StoredResult] = []

    def store(index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult:
        if index >= MAX_RESULTS:
            raise UnusableAnswer(f"the answer holds more than {MAX_RESULTS} results")
        result = deps.results.put(request.task_id, index, capped(result_type, MAX_FIELD_BYTES), chunks)
        stored.append(result)
        return result

    try:
        answer = deps.api.check(request.endpoint, request.task_id, store, until=until)
    except RetryLater as exc:
        reason = capped(exc.reason, MAX_REASON_BYTES)
        return CheckResult(stored=tuple(stored), failure=reason, retry_after=exc.retry_after)
    except UnusableAnswer as exc:
        return CheckResult(stored=tuple(stored), unusable=capped(str(exc), MAX_MESSAGE_BYTES))
    if answer.task_id not in (None, request.task_id):
        reason = f"the answer is for another task ({capped(answer.task_id, 100)})"
        return CheckResult(stored=tuple(stored), failure=reason)
    if answer.task_status not in _RUNNING and answer.task_status not in _FINAL:
        reason = f"the answer has no known taskStatus ({capped(str(answer.task_status), 100)})"
        return CheckResult(stored=tuple(stored), failure=reason)
    return CheckResult(
        task_status=answer.task_status,
        results=answer.results,
        stored=tuple(stored),
        error_messages=capped_messages(answer.error_messages),
        warnings=capped_messages(answer.warnings),
        response_status_code=capped(answer.response_status_code or "", MAX_FIELD_BYTES) or None,
    )


def _record(
    request: PollRequest,
    previous: TaskRecord | None,
    check: CheckResult,
    decision: Decision,
    delivery: Delivery,
    first_check_at: float,
    checked_at: float,
) -> TaskRecord:
    status = decision.status or (previous.status if previous else Status.PENDING)
    failures = ((previous.transient_failures if previous else 0) + 1) if check.failure else 0
    return TaskRecord(
        task_id=request.task_id,
        endpoint=request.endpoint,
        status=status,
        check_number=(previous.check_number if previous else 0) + 1,
        first_check_at=first_check_at,
        last_check_at=checked_at,
        committed_by=delivery.id,
        lease_expires_at=_lease_end(delivery),
        # The token that started the chain stays; a chain started without one takes the first one seen.
        task_token=(previous.task_token if previous else None) or request.task_token,
        # One budget for the inline texts of a record (and so of its event and callback output).
        results=within_text_budget(check.results) if status is Status.COMPLETED else (),
        error_messages=decision.error_messages,
        warnings=check.warnings,
        response_status_code=check.response_status_code,
        last_error=check.failure,
        transient_failures=failures,
        retry_after=check.retry_after,
    )


def _lease_end(delivery: Delivery) -> float:
    """Until when a delivery's invocation may still be sending the effects of the check it holds."""
    return delivery.ends_at + CLOCK_SKEW_SECONDS


def _delete_unlisted(
    stored: Sequence[StoredResult], listed: Sequence[StoredResult], deps: Collaborators
) -> None:
    """Delete what a check wrote under the task's prefix that the record does not list."""
    keys = {result.key for result in listed}
    stray = [result for result in stored if result.key not in keys]
    if stray:
        deps.results.delete(stray)


def _send_effects(record: TaskRecord, deps: Collaborators, *, resumed: bool) -> Outcome:
    """The effects of the check whose lease this delivery holds; a failure gives the lease up for a retry."""
    try:
        return _effects(record, deps, resumed=resumed)
    except BaseException:
        # As Powertools' idempotency deletes its INPROGRESS record: the next delivery (Lambda's retry of
        # an event comes within minutes) may claim the effects at once instead of after the lease.
        with suppress(Exception):
            deps.records.release(record)
        raise


def _effects(record: TaskRecord, deps: Collaborators, *, resumed: bool) -> Outcome:
    """Successor and heartbeat, or callback, event and mark."""
    if record.status.is_final:
        detail = completion_detail(record)
        # The callback before the event: a repeat after a crash is refused by Step Functions, not doubled.
        token = record.task_token
        refusal = None if token is None else _call_back(token, record, detail, deps)
        deps.announcer.announce(record.status, detail)
        deps.records.mark_sent(record)
        action = Action.RESUMED if resumed else Action.FINISHED
        reason = None if refusal is None else f"Step Functions refused the task token: {refusal}"
        return Outcome(action, record.task_id, replace(record, stage=Stage.SENT), reason=reason)
    now = deps.clock()
    delay = deps.backoff.delay(
        elapsed=record.last_check_at - record.first_check_at,
        spent=now - record.last_check_at,
        transient_failures=record.transient_failures,
        retry_after=record.retry_after,
        remaining=record.first_check_at + deps.deadline_seconds - now,
    )
    successor = PollRequest(record.task_id, record.endpoint, record.check_number + 1, record.task_token)
    deps.queue.send(successor, delay)
    reason = None if record.task_token is None else _heartbeat(record.task_token, deps)
    action = Action.RESUMED if resumed else Action.REQUEUED
    return Outcome(action, record.task_id, record, delay_seconds=delay, reason=reason)


def _heartbeat(token: str, deps: Collaborators) -> str | None:
    """Tell the workflow the task is still polled; a failed heartbeat is only noted: the successor is out."""
    try:
        refusal = deps.callbacks.heartbeat(token)
    except Redeliver as exc:
        return f"the heartbeat failed: {exc}"
    return None if refusal is None else f"Step Functions refused the heartbeat's task token: {refusal}"


def _call_back(token: str, record: TaskRecord, detail: dict[str, Any], deps: Collaborators) -> str | None:
    """Tell the workflow how the task ended; None, or the code Step Functions refused the token with."""
    if record.status is Status.COMPLETED:
        return deps.callbacks.succeed(token, json.dumps(detail, ensure_ascii=False, separators=(",", ":")))
    cause = "\n".join(record.error_messages) or record.status.value
    return deps.callbacks.fail(token, f"OCR.{record.status.value}", cause)


def _reject(body: str, reason: str, deps: Collaborators) -> Outcome:
    if not deps.queue.dead_letter(body, reason):
        # No dead-letter queue of our own: failing the record lets the redrive policy carry it there.
        raise Refused(reason)
    return Outcome(Action.REJECTED, reason=reason)


def _as_text(detail: object) -> str:
    try:
        return json.dumps(detail)
    except (TypeError, ValueError, RecursionError):
        return f"(a {type(detail).__name__} that is not JSON)"
