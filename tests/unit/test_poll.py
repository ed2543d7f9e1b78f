"""The decision table and the effects of one check, with in-memory collaborators."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ocr_poller.errors import RetryLater, UnusableAnswer
from ocr_poller.model import Status, TaskRecord
from ocr_poller.poll import (
    SETTLE_SECONDS,
    Action,
    CheckResult,
    check_once,
    decide,
    process_body,
    process_detail,
)
from ocr_poller.request import PollRequest
from tests.unit.fakes import Crash, CrashOnce, FakeApi, Reply, World

TASK = "c4b60313-4f78-45f8-b708-069eb98dc22e"
REQUEST = PollRequest(TASK, "RecognizeLabel")


def seed(world: World, request: PollRequest) -> None:
    """The record a chain at `request` has: its checks so far, from its first check."""
    assert request.first_check_at is not None
    world.records.items[request.task_id] = TaskRecord(
        request.task_id,
        request.endpoint,
        Status.PROCESSING,
        request.attempt,
        request.first_check_at,
        world.clock.now - 1,
        committed_by="earlier",
        announced=True,
    )


@pytest.mark.parametrize(
    ("check", "elapsed", "status", "requeue"),
    [
        (CheckResult(task_status="Pending"), 0, Status.PENDING, True),
        (CheckResult(task_status="Processing"), 10, Status.PROCESSING, True),
        (CheckResult(task_status="Completed"), 10, Status.COMPLETED, False),
        (CheckResult(task_status="Error", error_messages=("bad image",)), 10, Status.ERROR, False),
        (CheckResult(task_status="NotExist"), 10, Status.NOT_EXIST, False),
        (CheckResult(failure="HTTP 503"), 10, None, True),
        (CheckResult(task_status="Processing"), 100, Status.EXPIRED, False),
        (CheckResult(failure="HTTP 503"), 100, Status.EXPIRED, False),
        (CheckResult(task_status="Completed"), 100, Status.COMPLETED, False),
        (CheckResult(undecodable="result 0 cannot be decoded"), 10, Status.ERROR, False),
    ],
)
def test_decide_follows_the_contract_table(
    check: CheckResult, elapsed: float, status: Status | None, requeue: bool
) -> None:
    # When
    decision = decide(check, elapsed=elapsed, deadline=100)
    # Then
    assert (decision.status, decision.requeue) == (status, requeue)


def test_error_without_messages_still_explains_itself() -> None:
    assert decide(CheckResult(task_status="Error"), elapsed=0, deadline=10).error_messages


def test_pending_task_is_recorded_and_requeued_with_the_initial_delay() -> None:
    # Given
    world = World(FakeApi([Reply("Pending")]))
    # When
    outcome = check_once(REQUEST, "m1", world.deps)
    # Then
    assert outcome.action is Action.REQUEUED
    record = world.records.items[TASK]
    assert (record.status, record.attempts, record.first_check_at) == (Status.PENDING, 1, world.clock.now)
    assert world.queue.sent == [(PollRequest(TASK, "RecognizeLabel", 1, world.clock.now), 2)]
    assert world.announcer.announced == []


def test_delay_grows_with_the_time_since_the_first_check() -> None:
    # Given a task first checked an hour ago
    world = World(FakeApi([Reply("Processing")]))
    request = PollRequest(TASK, "RecognizePdf", attempt=30, first_check_at=world.clock.now - 3600)
    seed(world, request)
    # When
    check_once(request, "m1", world.deps)
    # Then the gap is a quarter of the elapsed time
    assert world.queue.sent == [(PollRequest(TASK, "RecognizePdf", 31, request.first_check_at), 900)]


def test_completed_task_stores_every_result_and_announces_once() -> None:
    # Given
    world = World(FakeApi([Reply("Completed", [("Text", "héllo".encode()), ("Pdf", b"%PDF-1.4")])]))
    # When
    outcome = check_once(REQUEST, "m1", world.deps)
    # Then
    assert outcome.action is Action.FINISHED
    assert world.results.objects == {
        f"results/{TASK}/0-text.txt": "héllo".encode(),
        f"results/{TASK}/1-pdf.pdf": b"%PDF-1.4",
    }
    record = world.records.items[TASK]
    assert record.status is Status.COMPLETED and record.announced
    assert [(r.type, r.size, r.content_type) for r in record.results] == [
        ("Text", 6, "text/plain; charset=utf-8"),
        ("Pdf", 8, "application/pdf"),
    ]
    assert [r.status for r in world.announcer.announced] == [Status.COMPLETED]
    assert world.queue.sent == []


@pytest.mark.parametrize(
    ("reply", "status", "messages"),
    [
        (
            Reply("Error", messages=("Image is corrupted",), code="Error"),
            Status.ERROR,
            ("Image is corrupted",),
        ),
        (
            Reply("NotExist", code="TaskNotFound"),
            Status.NOT_EXIST,
            ("the API does not know this task: never submitted, or its results expired (24 h)",),
        ),
    ],
)
def test_failed_task_is_recorded_and_announced(
    reply: Reply, status: Status, messages: tuple[str, ...]
) -> None:
    # Given
    world = World(FakeApi([reply]))
    # When
    outcome = check_once(REQUEST, "m1", world.deps)
    # Then
    record = world.records.items[TASK]
    assert (outcome.action, record.status, record.error_messages) == (Action.FINISHED, status, messages)
    assert record.response_status_code == reply.code
    assert len(world.announcer.announced) == 1 and world.queue.sent == []


@pytest.mark.parametrize("code", ["NoAnyResultData", "ResultDataLost", "PartiallyNotFound"])
def test_completed_without_results_keeps_the_status_code(code: str) -> None:
    # Given
    world = World(FakeApi([Reply("Completed", code=code)]))
    # When
    check_once(REQUEST, "m1", world.deps)
    # Then
    record = world.records.items[TASK]
    assert (record.status, record.results, record.response_status_code) == (Status.COMPLETED, (), code)


@pytest.mark.parametrize(
    "failure",
    [
        RetryLater("HTTP 503: unexpected status"),
        RetryLater("the answer is not the documented JSON: expected an object at byte 0"),
        Reply("Weird"),
        Reply(None),
    ],
)
def test_transient_failure_keeps_the_status_and_backs_off(failure: Exception | Reply) -> None:
    # Given a task seen Processing once
    world = World(FakeApi([Reply("Processing"), failure, failure]))
    check_once(REQUEST, "m1", world.deps)
    # When two checks fail in a row
    for attempt in (1, 2):
        world.clock.now += 10
        check_once(
            PollRequest(TASK, "RecognizeLabel", attempt, world.clock.now - 10 * attempt),
            f"m{attempt}",
            world.deps,
        )
    # Then
    record = world.records.items[TASK]
    assert (record.status, record.attempts, record.transient_failures) == (Status.PROCESSING, 3, 2)
    assert record.last_error
    assert [delay for _, delay in world.queue.sent] == [2, 4, 8]


def test_throttled_check_waits_at_least_retry_after() -> None:
    # Given
    world = World(FakeApi([RetryLater("HTTP 429: throttled", retry_after=37.2)]))
    # When
    check_once(REQUEST, "m1", world.deps)
    # Then
    assert world.queue.sent[0][1] == 38


def test_deadline_ends_a_running_task_as_expired() -> None:
    # Given a task first checked longer ago than the deadline
    world = World(FakeApi([Reply("Processing")]), deadline_seconds=600)
    request = PollRequest(TASK, "RecognizeLabel", attempt=12, first_check_at=world.clock.now - 601)
    seed(world, request)
    # When
    outcome = check_once(request, "m1", world.deps)
    # Then
    record = world.records.items[TASK]
    assert (outcome.action, record.status) == (Action.FINISHED, Status.EXPIRED)
    assert "deadline" in record.error_messages[0]
    assert world.queue.sent == [] and len(world.announcer.announced) == 1


def test_last_check_is_scheduled_on_the_deadline() -> None:
    # Given 5 seconds left before the deadline
    world = World(FakeApi([Reply("Processing")]), deadline_seconds=600)
    request = PollRequest(TASK, "RecognizeLabel", attempt=12, first_check_at=world.clock.now - 595)
    seed(world, request)
    # When
    check_once(request, "m1", world.deps)
    # Then
    assert world.queue.sent[0][1] == 5


def test_undecodable_result_ends_in_error_and_keeps_no_object() -> None:
    # Given an answer whose second result is not Base64, the first one already stored
    class HalfBadApi(FakeApi):
        def check(self, endpoint, task_id, on_result):  # type: ignore[no-untyped-def]
            on_result(0, "Text", iter([b"fine"]))
            raise UnusableAnswer("the answer cannot be decoded: result 1: invalid Base64 at character 12")

    world = World(HalfBadApi([]))
    # When
    outcome = check_once(REQUEST, "m1", world.deps)
    # Then
    record = world.records.items[TASK]
    assert (outcome.action, record.status, record.results) == (Action.FINISHED, Status.ERROR, ())
    assert "cannot be decoded: result 1" in record.error_messages[0]
    assert world.results.objects == {}


def test_duplicate_delivery_does_not_fork_the_chain() -> None:
    # Given the same request delivered as two messages
    world = World(FakeApi([Reply("Pending")]))
    # When
    first = check_once(REQUEST, "m1", world.deps)
    second = check_once(REQUEST, "m2", world.deps)
    # Then one check, one successor
    assert (first.action, second.action) == (Action.REQUEUED, Action.DUPLICATE)
    assert len(world.api.calls) == 1 and len(world.queue.sent) == 1


def test_losing_the_commit_race_sends_nothing() -> None:
    # Given another delivery commits between our read and our write
    world = World(FakeApi([Reply("Completed", [("Text", b"x")])]))
    world.records.lose_next_commit = True
    # When
    outcome = check_once(REQUEST, "m2", world.deps)
    # Then
    assert outcome.action is Action.DUPLICATE
    assert world.queue.sent == [] and world.announcer.announced == []


def test_redelivery_after_a_crash_before_the_requeue_resumes_the_chain() -> None:
    # Given check 1 committed, then the function died before sending its successor
    world = World(FakeApi([Reply("Pending")]))
    deps = replace(world.deps, queue=CrashOnce(world.queue, "send"))
    with pytest.raises(Crash):
        check_once(REQUEST, "m1", deps)
    # When SQS redelivers the same message
    outcome = check_once(REQUEST, "m1", deps)
    # Then the successor is sent without a second check
    assert outcome.action is Action.RESUMED
    assert len(world.api.calls) == 1
    assert [request.attempt for request, _ in world.queue.sent] == [1]


def test_redelivery_after_a_crash_before_the_event_announces_once() -> None:
    # Given a final record whose event never went out
    world = World(FakeApi([Reply("NotExist")]))
    check_once(REQUEST, "m1", world.deps)
    record = world.records.items[TASK]
    world.records.items[TASK] = type(record)(**{**record.__dict__, "announced": False})
    world.announcer.announced.clear()
    # When
    resumed = check_once(REQUEST, "m1", world.deps)
    again = check_once(REQUEST, "m1", world.deps)
    # Then
    assert (resumed.action, again.action) == (Action.RESUMED, Action.DUPLICATE)
    assert len(world.announcer.announced) == 1 and len(world.api.calls) == 1


@pytest.mark.parametrize(
    "body",
    ["not json", "{}", '{"taskId": "../x"}', '{"taskId": "abc", "endpoint": "Nope"}', "[1]", "x" * 9000],
)
def test_invalid_body_is_rejected_without_calling_the_api(body: str) -> None:
    # Given
    world = World(FakeApi([Reply("Completed")]))
    # When
    outcome = process_body(body, "m1", world.deps)
    # Then
    assert outcome.action is Action.REJECTED and outcome.reason
    assert world.queue.rejected == [(body, outcome.reason)]
    assert world.api.calls == [] and world.records.items == {}


def test_eventbridge_detail_is_checked_and_uses_the_default_endpoint() -> None:
    # Given
    world = World(FakeApi([Reply("Pending")]))
    # When
    outcome = process_detail({"taskId": TASK}, "event-1", world.deps)
    # Then
    assert outcome.action is Action.REQUEUED
    assert world.api.calls == [("RecognizeLabel", TASK)]


def test_lone_surrogates_from_the_api_are_made_storable() -> None:
    # Given an answer whose JSON escapes decode to lone surrogates
    world = World(FakeApi([Reply("Error", messages=("bad \ud800 image",), code="Err\udfff")]))
    # When
    check_once(REQUEST, "m1", world.deps)
    # Then
    record = world.records.items[TASK]
    assert record.error_messages == ("bad ? image",) and record.response_status_code == "Err?"
    record.error_messages[0].encode("utf-8")


def test_a_message_cannot_move_the_deadline() -> None:
    # Given a first request claiming its first check lies in the future
    world = World(FakeApi([Reply("Processing")]), deadline_seconds=600)
    check_once(PollRequest(TASK, "RecognizeLabel", 0, world.clock.now + 10_000), "m1", world.deps)
    assert world.records.items[TASK].first_check_at == world.clock.now
    # When a later message claims a later first check than the record's, past the deadline
    world.clock.now += 601
    outcome = check_once(PollRequest(TASK, "RecognizeLabel", 1, world.clock.now), "m2", world.deps)
    # Then the record's first check counts
    assert outcome.record is not None and outcome.record.status is Status.EXPIRED


def test_a_finished_task_is_not_reopened() -> None:
    # Given a task that ended at check 1
    world = World(FakeApi([Reply("NotExist")]))
    check_once(REQUEST, "m1", world.deps)
    # When a request claims to be check 2
    outcome = check_once(PollRequest(TASK, "RecognizeLabel", 1), "m2", world.deps)
    # Then
    assert outcome.action is Action.DUPLICATE and len(world.api.calls) == 1


def test_an_answer_for_another_task_is_not_taken() -> None:
    # Given an API answering with someone else's task id
    class WrongIdApi(FakeApi):
        def check(self, endpoint, task_id, on_result):  # type: ignore[no-untyped-def]
            return replace(super().check(endpoint, task_id, on_result), task_id="someone-else")

    world = World(WrongIdApi([Reply("Completed")]))
    # When
    check_once(REQUEST, "m1", world.deps)
    # Then
    record = world.records.items[TASK]
    assert record.status is Status.PENDING and "another task" in (record.last_error or "")


def test_the_api_cannot_flood_the_record_with_messages() -> None:
    # Given an error with many long messages
    world = World(FakeApi([Reply("Error", messages=tuple("x" * 10_000 for _ in range(100)))]))
    # When
    check_once(REQUEST, "m1", world.deps)
    # Then
    messages = world.records.items[TASK].error_messages
    assert len(messages) == 21 and messages[-1] == "... and 80 more" and len(messages[0]) == 2000


def test_a_message_redriven_from_the_dlq_finishes_a_check_left_half_done() -> None:
    # Given check 1 written, but its successor never sent (the send kept failing until the DLQ)
    world = World(FakeApi([Reply("Processing")]))
    crashing = replace(world.deps, queue=CrashOnce(world.queue, "send"))
    with pytest.raises(Crash):
        check_once(REQUEST, "m1", crashing)
    # When the message comes back from the DLQ with a new id, soon and then after the settle time
    soon = check_once(REQUEST, "m1-redriven", world.deps)
    world.clock.now += SETTLE_SECONDS
    later = check_once(REQUEST, "m1-redriven", world.deps)
    # Then only once no invocation can still be finishing it, and without a second check
    assert (soon.action, later.action) == (Action.DUPLICATE, Action.RESUMED)
    assert [request.attempt for request, _ in world.queue.sent] == [1]
    assert len(world.api.calls) == 1
