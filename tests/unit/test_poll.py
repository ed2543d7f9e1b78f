"""The decision table and the effects of one check, with in-memory collaborators."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ocr_poller.errors import Redeliver, RetryLater, UnusableAnswer
from ocr_poller.limits import MAX_MESSAGE_BYTES, MAX_RESULTS
from ocr_poller.model import Stage, Status, TaskRecord
from ocr_poller.poll import (
    CHECK_MARGIN_SECONDS,
    CLOCK_SKEW_SECONDS,
    Action,
    CheckResult,
    check_once,
    decide,
    process_body,
    process_detail,
)
from ocr_poller.request import PollRequest, parse_body
from tests.unit.fakes import Crash, CrashOnce, Failing, FakeApi, Killed, Reply, Stale, World

TASK = "c4b60313-4f78-45f8-b708-069eb98dc22e"
REQUEST = PollRequest(TASK, "RecognizeLabel")


class WrongIdApi(FakeApi):
    """Answers with someone else's task id."""

    def check(self, endpoint, task_id, on_result, *, until):  # type: ignore[no-untyped-def]
        return replace(super().check(endpoint, task_id, on_result, until=until), task_id="someone-else")


def seed(world: World, request: PollRequest, *, first_check_at: float) -> None:
    """The record of a chain whose next check is the one `request` asks for, first checked then."""
    world.records.items[request.task_id] = TaskRecord(
        request.task_id,
        request.endpoint,
        Status.PROCESSING,
        request.for_check - 1,
        first_check_at,
        world.clock.now - 1,
        committed_by="earlier",
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
        (CheckResult(unusable="result 0 cannot be decoded"), 10, Status.ERROR, False),
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
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    assert outcome.action is Action.REQUEUED
    record = world.records.items[TASK]
    assert (record.status, record.check_number, record.first_check_at) == (Status.PENDING, 1, world.clock.now)
    assert world.queue.sent == [(PollRequest(TASK, "RecognizeLabel", 2), 2)]
    assert world.announcer.announced == []


def test_delay_grows_with_the_time_since_the_first_check() -> None:
    # Given a task first checked an hour ago
    world = World(FakeApi([Reply("Processing")]))
    request = PollRequest(TASK, "RecognizePdf", for_check=31)
    seed(world, request, first_check_at=world.clock.now - 3600)
    # When
    check_once(request, world.sqs("m1"), world.deps)
    # Then the gap is a quarter of the elapsed time
    assert world.queue.sent == [(PollRequest(TASK, "RecognizePdf", 32), 900)]


def test_completed_task_stores_every_result_and_announces_once() -> None:
    # Given
    world = World(FakeApi([Reply("Completed", [("Text", "héllo".encode()), ("Pdf", b"%PDF-1.4")])]))
    # When
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    assert outcome.action is Action.FINISHED
    assert world.results.objects == {
        f"results/{TASK}/0-text.txt": "héllo".encode(),
        f"results/{TASK}/1-pdf.pdf": b"%PDF-1.4",
    }
    record = world.records.items[TASK]
    assert record.status is Status.COMPLETED and record.stage is Stage.SENT
    assert [(r.type, r.size, r.content_type) for r in record.results] == [
        ("Text", 6, "text/plain; charset=utf-8"),
        ("Pdf", 8, "application/pdf"),
    ]
    assert [status for status, _ in world.announcer.announced] == [Status.COMPLETED]
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
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
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
    check_once(REQUEST, world.sqs("m1"), world.deps)
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
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # When two checks fail in a row
    for check in (2, 3):
        world.clock.now += 10
        check_once(PollRequest(TASK, "RecognizeLabel", check), world.sqs(f"m{check}"), world.deps)
    # Then
    record = world.records.items[TASK]
    assert (record.status, record.check_number, record.transient_failures) == (Status.PROCESSING, 3, 2)
    assert record.last_error
    assert [delay for _, delay in world.queue.sent] == [2, 4, 8]


def test_throttled_check_waits_at_least_retry_after() -> None:
    # Given
    world = World(FakeApi([RetryLater("HTTP 429: throttled", retry_after=37.2)]))
    # When
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    assert world.queue.sent[0][1] == 38


def test_deadline_ends_a_running_task_as_expired() -> None:
    # Given a task first checked longer ago than the deadline
    world = World(FakeApi([Reply("Processing")]), deadline_seconds=600)
    request = PollRequest(TASK, "RecognizeLabel", for_check=13)
    seed(world, request, first_check_at=world.clock.now - 601)
    # When
    outcome = check_once(request, world.sqs("m1"), world.deps)
    # Then
    record = world.records.items[TASK]
    assert (outcome.action, record.status) == (Action.FINISHED, Status.EXPIRED)
    assert "deadline" in record.error_messages[0]
    assert world.queue.sent == [] and len(world.announcer.announced) == 1


def test_last_check_is_scheduled_on_the_deadline() -> None:
    # Given 5 seconds left before the deadline
    world = World(FakeApi([Reply("Processing")]), deadline_seconds=600)
    request = PollRequest(TASK, "RecognizeLabel", for_check=13)
    seed(world, request, first_check_at=world.clock.now - 595)
    # When
    check_once(request, world.sqs("m1"), world.deps)
    # Then
    assert world.queue.sent[0][1] == 5


def test_undecodable_result_ends_in_error_and_keeps_no_object() -> None:
    # Given an answer whose second result is not Base64, the first one already stored
    class HalfBadApi(FakeApi):
        def check(self, endpoint, task_id, on_result, *, until):  # type: ignore[no-untyped-def]
            on_result(0, "Text", iter([b"fine"]))
            raise UnusableAnswer("the answer cannot be decoded: result 1: invalid Base64 at character 12")

    world = World(HalfBadApi([]))
    # When
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    record = world.records.items[TASK]
    assert (outcome.action, record.status, record.results) == (Action.FINISHED, Status.ERROR, ())
    assert "cannot be decoded: result 1" in record.error_messages[0]
    assert world.results.objects == {}


def test_duplicate_delivery_does_not_fork_the_chain() -> None:
    # Given the same request delivered as two messages
    world = World(FakeApi([Reply("Pending")]))
    # When
    first = check_once(REQUEST, world.sqs("m1"), world.deps)
    second = check_once(REQUEST, world.sqs("m2"), world.deps)
    # Then one check, one successor
    assert (first.action, second.action) == (Action.REQUEUED, Action.DUPLICATE)
    assert len(world.api.calls) == 1 and len(world.queue.sent) == 1


@pytest.mark.parametrize(
    ("delivery", "dropped"), [("m2", True), ("m1", False)], ids=["another-message", "a-copy-of-the-winners"]
)
def test_losing_the_commit_race_sends_nothing(delivery: str, dropped: bool) -> None:
    # Given another delivery (message m1) commits check 1 between our read and our write, and is still live
    world = World(FakeApi([Reply("Completed", [("Text", b"x")])]))
    holder = replace(
        world.deps, announcer=CrashOnce(world.announcer, "announce"), records=Killed(world.records)
    )
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), holder)
    # When our delivery loses the commit
    loser = replace(world.deps, records=Stale(world.records, None))
    if dropped:
        assert check_once(REQUEST, world.sqs(delivery), loser).action is Action.DUPLICATE
    else:
        # A copy of the winner's own message must not be acknowledged: SQS would delete the winner's message
        with pytest.raises(Redeliver):
            check_once(REQUEST, world.sqs(delivery), loser)
    # Then it sent nothing
    assert world.queue.sent == [] and world.announcer.announced == [] and world.callbacks.calls == []


@pytest.mark.parametrize(
    "body",
    ["not json", "{}", '{"taskId": "../x"}', '{"taskId": "abc", "endpoint": "Nope"}', "[1]", "x" * 9000],
)
def test_invalid_body_is_rejected_without_calling_the_api(body: str) -> None:
    # Given
    world = World(FakeApi([Reply("Completed")]))
    # When
    outcome = process_body(body, world.sqs("m1"), world.deps)
    # Then
    assert outcome.action is Action.REJECTED and outcome.reason
    assert world.queue.rejected == [(body, outcome.reason)]
    assert world.api.calls == [] and world.records.items == {}


def test_eventbridge_detail_is_checked_and_uses_the_default_endpoint() -> None:
    # Given
    world = World(FakeApi([Reply("Pending")]))
    # When
    outcome = process_detail({"taskId": TASK}, world.event("event-1"), world.deps)
    # Then
    assert outcome.action is Action.REQUEUED
    assert world.api.calls == [("RecognizeLabel", TASK)]


def test_lone_surrogates_from_the_api_are_made_storable() -> None:
    # Given an answer whose JSON escapes decode to lone surrogates
    world = World(FakeApi([Reply("Error", messages=("bad \ud800 image",), code="Err\udfff")]))
    # When
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    record = world.records.items[TASK]
    assert record.error_messages == ("bad ? image",) and record.response_status_code == "Err?"
    record.error_messages[0].encode("utf-8")


def test_a_finished_task_is_not_reopened() -> None:
    # Given a task that ended at check 1
    world = World(FakeApi([Reply("NotExist")]))
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # When a request claims to be check 2
    outcome = check_once(PollRequest(TASK, "RecognizeLabel", 1), world.sqs("m2"), world.deps)
    # Then
    assert outcome.action is Action.DUPLICATE and len(world.api.calls) == 1


def test_an_answer_for_another_task_is_not_taken() -> None:
    # Given an API answering with someone else's task id
    world = World(WrongIdApi([Reply("Completed")]))
    # When
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    record = world.records.items[TASK]
    assert record.status is Status.PENDING and "another task" in (record.last_error or "")


LATER = 1800  # SQS's visibility timeout of the poll queue: when a failed record comes back


def test_redelivery_after_a_crash_before_the_requeue_resumes_the_chain() -> None:
    # Given check 1 committed, then the function died before sending its successor
    world = World(FakeApi([Reply("Pending")]))
    deps = replace(world.deps, queue=CrashOnce(world.queue, "send"))
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), deps)
    # When SQS redelivers the same message after its visibility timeout
    world.clock.now += LATER
    outcome = check_once(REQUEST, world.sqs("m1"), deps)
    # Then the successor is sent without a second check
    assert outcome.action is Action.RESUMED
    assert len(world.api.calls) == 1
    assert [request.for_check for request, _ in world.queue.sent] == [2]


def test_redelivery_after_a_crash_before_the_event_announces_once() -> None:
    # Given a final record whose event never went out: the invocation died before the announcement
    world = World(FakeApi([Reply("NotExist")]))
    deps = replace(world.deps, announcer=CrashOnce(world.announcer, "announce"))
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), deps)
    # When it is redelivered, and once more
    world.clock.now += LATER
    resumed = check_once(REQUEST, world.sqs("m1"), world.deps)
    again = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    assert (resumed.action, again.action) == (Action.RESUMED, Action.DUPLICATE)
    assert len(world.announcer.announced) == 1 and len(world.api.calls) == 1
    assert world.records.items[TASK].stage is Stage.SENT


def test_a_message_cannot_move_the_deadline() -> None:
    # Given a task first checked 601 s ago, with a deadline of 600 s
    world = World(FakeApi([Reply("Processing")]), deadline_seconds=600)
    check_once(REQUEST, world.sqs("m1"), world.deps)
    world.clock.now += 601
    # When a message claims its first check was just now (firstCheckAt is not the poller's any more)
    body = json.dumps({"taskId": TASK, "attempt": 1, "firstCheckAt": world.clock.now})
    outcome = process_body(body, world.sqs("m2"), world.deps)
    # Then the record's first check counts
    assert outcome.record is not None and outcome.record.status is Status.EXPIRED


def test_the_api_cannot_flood_the_record_with_messages() -> None:
    # Given an error with many long messages, some not ASCII
    world = World(FakeApi([Reply("Error", messages=tuple("é" * 10_000 for _ in range(100)))]))
    # When
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then at most 20 messages are kept, each within its byte cap, and the rest counted
    messages = world.records.items[TASK].error_messages
    assert len(messages) == 21 and messages[-1] == "... and 80 more"
    assert all(len(message.encode()) <= MAX_MESSAGE_BYTES for message in messages)


def test_a_message_redriven_from_the_dlq_finishes_a_check_left_half_done() -> None:
    # Given check 1 written, but its successor never sent (the send kept failing until the DLQ)
    world = World(FakeApi([Reply("Processing")]))
    crashing = replace(world.deps, queue=CrashOnce(world.queue, "send"))
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), crashing)
    # When the message comes back from the DLQ with a new id once the invocation has ended
    world.clock.now = world.records.items[TASK].lease_expires_at
    outcome = check_once(REQUEST, world.sqs("m1-redriven"), world.deps)
    # Then it finishes the check's effects without a second check, and is not acknowledged before
    assert outcome.action is Action.RESUMED
    assert [request.for_check for request, _ in world.queue.sent] == [2]
    assert len(world.api.calls) == 1


@pytest.mark.parametrize(
    "reply", [Reply("Pending"), Reply("Completed", [("Text", b"x")])], ids=["running", "final"]
)
def test_a_redriven_copy_of_a_live_check_is_never_taken_as_done_by_its_own_message(reply: Reply) -> None:
    # Given an invocation holding check 1's lease (it committed, its effects are on their way)
    world = World(FakeApi([reply]))
    holder = replace(
        world.deps,
        queue=CrashOnce(world.queue, "send"),
        announcer=CrashOnce(world.announcer, "announce"),
        records=Killed(world.records),
    )
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), holder)
    # When a copy of the very same message arrives within the lease, then after it
    with pytest.raises(Redeliver):
        check_once(REQUEST, world.sqs("m1"), world.deps)
    world.clock.now = world.records.items[TASK].lease_expires_at
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then only the second sends the effects, once
    assert outcome.action is Action.RESUMED
    assert len(world.queue.sent) + len(world.announcer.announced) == 1


def test_another_message_during_the_lease_is_dropped_and_an_event_retried() -> None:
    # Given check 1 being sent by an invocation that is still alive
    world = World(FakeApi([Reply("Pending")]))
    holder = replace(world.deps, queue=CrashOnce(world.queue, "send"), records=Killed(world.records))
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), holder)
    # When another message asks for the same check within the lease, and an event does
    message = check_once(REQUEST, world.sqs("other"), world.deps)
    with pytest.raises(Redeliver):
        check_once(REQUEST, world.event("event-1"), world.deps)
    # Then the message is dropped (the holder's own message covers a crash of the holder), and the event
    # fails for Lambda to retry it: a retry of the holder's own event may come within the lease
    assert message.action is Action.DUPLICATE and world.queue.sent == []


@pytest.mark.parametrize("failing", ["send", "announce"])
def test_effects_that_fail_give_the_lease_up_so_lambdas_retry_of_the_event_finishes_them(
    failing: str,
) -> None:
    # Given an EventBridge invocation whose effects fail after its commit (not killed: it can still clean up)
    world = World(FakeApi([Reply("Pending" if failing == "send" else "NotExist")]))
    adapter = "queue" if failing == "send" else "announcer"
    holder = replace(world.deps, **{adapter: CrashOnce(getattr(world, adapter), failing)})
    with pytest.raises(Crash):
        check_once(REQUEST, world.event("event-1"), holder)
    # When Lambda retries the event a minute later, well within the first invocation's time
    world.clock.now += 60
    outcome = check_once(REQUEST, world.event("event-1"), world.deps)
    # Then the retry finishes the check without checking again
    assert outcome.action is Action.RESUMED and len(world.api.calls) == 1
    assert len(world.queue.sent) + len(world.announcer.announced) == 1


def test_a_heartbeat_that_fails_does_not_fail_the_check() -> None:
    # Given Step Functions failing (throttling, say) when the heartbeat is sent
    world = World(FakeApi([Reply("Pending")]))
    failing = replace(world.deps, callbacks=Failing(world.callbacks, "heartbeat", Redeliver("throttled")))
    # When
    outcome = check_once(PollRequest(TASK, "RecognizeLabel", task_token="tok"), world.sqs("m1"), failing)
    # Then the successor is out and the failure is noted
    assert outcome.action is Action.REQUEUED and "heartbeat failed" in (outcome.reason or "")
    assert len(world.queue.sent) == 1


def test_a_claim_lost_to_another_delivery_is_retried_later() -> None:
    # Given check 1's effects never sent, its lease over, and another delivery claiming it first
    world = World(FakeApi([Reply("Pending")]))
    with pytest.raises(Crash):
        check_once(REQUEST, world.sqs("m1"), replace(world.deps, queue=CrashOnce(world.queue, "send")))
    world.clock.now += LATER
    stale = world.records.items[TASK]
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # When a second copy claims with the record it read before the first claim
    records = replace(world.deps, records=Stale(world.records, stale))
    # Then it does not send, and comes back later
    with pytest.raises(Redeliver):
        check_once(REQUEST, world.sqs("m1-copy"), records)
    assert [request.for_check for request, _ in world.queue.sent] == [2]


@pytest.mark.parametrize("claimed", [5, 1_000_000])
def test_a_forged_check_number_costs_one_check_and_never_wedges_the_chain(claimed: int) -> None:
    # Given a forged request claiming a far later check, delivered before the genuine one
    world = World(FakeApi([Reply("Pending")]))
    forged = PollRequest(TASK, "RecognizeLabel", for_check=claimed)
    check_once(forged, world.sqs("forged"), world.deps)
    # When the genuine first request and then the poller's successors run
    genuine = check_once(REQUEST, world.sqs("m1"), world.deps)
    successor, _ = world.queue.sent[-1]
    nxt = check_once(successor, world.sqs("s2"), world.deps)
    # Then the record counts real checks only, and the chain goes on
    assert world.records.items[TASK].check_number == 2
    assert (genuine.action, nxt.action) == (Action.DUPLICATE, Action.REQUEUED)
    assert [request.for_check for request, _ in world.queue.sent] == [2, 3]


def test_the_poller_never_emits_a_request_its_validator_refuses() -> None:
    # Given a chain far along
    world = World(FakeApi([Reply("Processing")]))
    request = PollRequest(TASK, "RecognizeLabel", for_check=999_999_999, task_token="token-1")
    seed(world, request, first_check_at=world.clock.now - 60)
    # When
    check_once(request, world.sqs("m1"), world.deps)
    # Then its successor parses back to itself
    [(successor, _)] = world.queue.sent
    assert parse_body(json.dumps(successor.to_message()), default_endpoint="RecognizeLabel") == successor


def test_objects_of_an_answer_that_is_not_kept_are_deleted() -> None:
    # Given an answer with results that is not this task's (another id)
    world = World(WrongIdApi([Reply("Completed", [("Text", b"not yours")])]))
    # When
    check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then nothing stays under the task's prefix
    assert world.results.objects == {} and world.records.items[TASK].status is Status.PENDING


def test_a_loser_keeps_the_winners_objects_and_deletes_its_own() -> None:
    # Given another delivery committed check 1 as Completed with the same key
    world = World(FakeApi([Reply("Completed", [("Text", b"x")])]))
    check_once(REQUEST, world.sqs("m1"), world.deps)
    winner_key = world.records.items[TASK].results[0].key
    # When a twin that read no record answers with two results and loses the commit
    world.api.script = [Reply("Completed", [("Text", b"x"), ("Pdf", b"%PDF")])]
    twin = replace(world.deps, records=Stale(world.records, None))
    outcome = check_once(REQUEST, world.sqs("m2"), twin)
    # Then
    assert outcome.action is Action.DUPLICATE
    assert list(world.results.objects) == [winner_key]


def test_more_results_than_kept_end_the_task_in_error_with_nothing_stored() -> None:
    # Given an answer with one result more than the cap
    world = World(FakeApi([Reply("Completed", [("Text", b"x")] * (MAX_RESULTS + 1))]))
    # When
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then
    record = world.records.items[TASK]
    assert (outcome.action, record.status, record.results) == (Action.FINISHED, Status.ERROR, ())
    assert f"more than {MAX_RESULTS} results" in record.error_messages[0]
    assert world.results.objects == {}


def test_the_check_gets_the_invocations_time_less_the_margin() -> None:
    # Given
    world = World(FakeApi([Reply("Pending")]))
    delivery = world.sqs("m1")
    # When
    check_once(REQUEST, delivery, world.deps)
    # Then the API was told to be done before the invocation's end, with room for what follows
    assert world.api.untils == [delivery.ends_at - CHECK_MARGIN_SECONDS]
    assert world.records.items[TASK].lease_expires_at == delivery.ends_at + CLOCK_SKEW_SECONDS


def test_a_check_out_of_time_is_a_transient_failure() -> None:
    # Given a check that runs out of the invocation's time
    world = World(FakeApi([RetryLater("the check ran out of the invocation's time")]))
    # When
    outcome = check_once(REQUEST, world.sqs("m1"), world.deps)
    # Then the task is checked again later
    assert outcome.action is Action.REQUEUED
    assert "ran out" in (world.records.items[TASK].last_error or "")


def test_a_workflow_hears_heartbeats_then_success_with_the_event_detail() -> None:
    # Given a request carrying a Step Functions task token
    world = World(FakeApi([Reply("Processing"), Reply("Completed", [("Text", b"ACME")])]))
    request = PollRequest(TASK, "RecognizeLabel", task_token="tok")
    # When the chain runs to the end
    check_once(request, world.sqs("m1"), world.deps)
    [(successor, _)] = world.queue.sent
    check_once(successor, world.sqs("m2"), world.deps)
    # Then
    assert successor.task_token == "tok"
    assert [call[0] for call in world.callbacks.calls] == ["heartbeat", "succeed"]
    [(_, detail)] = world.announcer.announced
    assert json.loads(world.callbacks.calls[1][2]) == detail and "tok" not in json.dumps(detail)


@pytest.mark.parametrize(
    ("reply", "error"),
    [(Reply("Error", messages=("bad",)), "OCR.Error"), (Reply("NotExist"), "OCR.NotExist")],
)
def test_a_workflow_hears_failure_with_the_messages(reply: Reply, error: str) -> None:
    # Given
    world = World(FakeApi([reply]))
    # When
    check_once(PollRequest(TASK, "RecognizeLabel", task_token="tok"), world.sqs("m1"), world.deps)
    # Then
    [(kind, token, name, cause)] = world.callbacks.calls
    assert (kind, token, name) == ("fail", "tok", error)
    assert cause == "\n".join(world.records.items[TASK].error_messages)


def test_a_refused_token_never_fails_the_task() -> None:
    # Given Step Functions no longer waits on the token
    world = World(FakeApi([Reply("Completed", [("Text", b"ACME")])]))
    world.callbacks.refused.add("tok")
    # When
    outcome = check_once(PollRequest(TASK, "RecognizeLabel", task_token="tok"), world.sqs("m1"), world.deps)
    # Then the results are stored and announced as usual, and the outcome says why, never with the token
    assert outcome.action is Action.FINISHED
    assert outcome.reason == "Step Functions refused the task token: TaskTimedOut"
    assert world.records.items[TASK].stage is Stage.SENT and len(world.announcer.announced) == 1
