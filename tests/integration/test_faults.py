"""Issue 4: each fault injected over HTTP (moto's server, the emulator), the handler fed real event shapes."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Stack
from ocr_poller_tools.submission import submission_body

from ocr_poller import handler
from ocr_poller.adapters.aspose import AsposeApi, Credentials
from ocr_poller.errors import Redeliver, Refused
from ocr_poller.request import parse_body
from tests.integration.flow import (
    EVENTS,
    SAMPLES,
    completion_events,
    drain,
    handle,
    handle_later,
    peek,
    poll_queue_feeder,
    queue_counts,
    raw_sqs_batch_event,
    read_record,
    redeliver,
    result_keys,
    rewire,
    run_until_done,
    sqs,
    sqs_batch_event,
    submit,
)
from tests.unit.fakes import CrashOnce, Spy

pytestmark = pytest.mark.integration

RESULT_BYTES = 3000
MAX_RECEIVES = 5  # the poll queue's RedrivePolicy in template.yaml
OVERSIZED_BODY = json.dumps({"taskId": "0d0d0d0d-0000-4000-8000-000000000000", "padding": "x" * 9000})
# Each poison body of events/sqs_batch_with_poison.json, plus an oversized one, and how its reason starts.
POISON = {
    "taskId=c4b60313, not JSON": "body is not JSON",
    '{"endpoint": "RecognizeLabel"}': "taskId is missing",
    '{"taskId": "../x", "endpoint": "RecognizeLabel"}': "taskId '../x' is not a plain identifier",
    '{"taskId": "8f14e45f-ceea-467f-a2b4-0c1d2e3f4a5b", "endpoint": "RecognizeEverything"}': (
        "endpoint 'RecognizeEverything' is not a v5 result endpoint"
    ),
    OVERSIZED_BODY: "body is larger than 8192 bytes",
}
POISON_TASK_IDS = ["../x", "8f14e45f-ceea-467f-a2b4-0c1d2e3f4a5b", "0d0d0d0d-0000-4000-8000-000000000000"]
VALID_NEIGHBOURS = ["c4b60313-4f78-45f8-b708-069eb98dc22e", "5d1a7b0e-3c2f-4e8a-9b61-2f0c9d7e4a13"]


@pytest.fixture
def slow_emulator(poller_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose tasks stay Pending for a minute unless a fault says otherwise; the poller uses it."""
    with Emulator(processing_seconds=60) as running:
        monkeypatch.setenv("ASPOSE_BASE_URL", running.url)
        yield running


def poison_batch() -> dict[str, Any]:
    """events/sqs_batch_with_poison.json with one more record, whose body is over the 8 KiB limit."""
    event: dict[str, Any] = json.loads((EVENTS / "sqs_batch_with_poison.json").read_text())
    event["Records"].append({**event["Records"][0], "messageId": "oversized-0", "body": OVERSIZED_BODY})
    return event


def poison_message_ids(event: dict[str, Any]) -> list[str]:
    """The message ids of the poison records, sorted."""
    return sorted(record["messageId"] for record in event["Records"] if record["body"] in POISON)


def attempts_on_queue(stack: Stack, moto_url: str) -> list[int]:
    """The attempt numbers of the poll requests visible on the poll queue."""
    return sorted(
        json.loads(message["Body"])["attempt"] for message in peek(stack, moto_url, stack.queue_url)
    )


def record_of(stack: Stack, moto_url: str, task_id: str) -> dict[str, Any]:
    """The task's record, which must exist."""
    record = read_record(stack, moto_url, task_id)
    assert record is not None, f"no record of task {task_id}"
    return record


def complete_from_now_on(emulator: Emulator, task_id: str) -> None:
    """Every later check of the task answers Completed with one Text result."""
    emulator.inject(task_id, "large", size=RESULT_BYTES, times=-1)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def assert_one_event(stack: Stack, moto_url: str, task_id: str, detail_type: str) -> dict[str, Any]:
    [event] = completion_events(stack, moto_url)
    assert (event["detail-type"], event["detail"]["taskId"]) == (detail_type, task_id)
    detail: dict[str, Any] = event["detail"]
    return detail


# Duplicate deliveries


def test_duplicates_in_one_batch_make_one_successor_and_one_set_of_results(
    stack: Stack, moto_url: str, slow_emulator: Emulator
) -> None:
    # Given a running task whose poll request the producer sent three times
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    for _ in range(3):
        sqs(stack, moto_url).send_message(
            QueueUrl=stack.queue_url, MessageBody=json.dumps({"taskId": task_id})
        )
    # When one batch delivers all three, checked concurrently
    delivered = poll_queue_feeder(stack, moto_url).feed_once(wait_seconds=0)
    # Then one check took effect, with one successor
    assert delivered == 3
    assert record_of(stack, moto_url, task_id)["attempts"] == 1
    assert attempts_on_queue(stack, moto_url) == [1]
    # When the task completes and the chain runs to its end
    complete_from_now_on(slow_emulator, task_id)
    record = run_until_done(stack, moto_url, [task_id])[task_id]
    # Then one event and one set of results
    assert record["status"] == "Completed"
    assert_one_event(stack, moto_url, task_id, "OCR Task Completed")
    assert result_keys(stack, moto_url, task_id) == [result["key"] for result in record["results"]]


def test_duplicates_across_batches_are_dropped_before_the_api(
    stack: Stack, moto_url: str, slow_emulator: Emulator
) -> None:
    # Given check 1 of a running task made, its successor taken off the queue by the event source
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    request = {"taskId": task_id, "endpoint": "RecognizeLabel"}
    first = sqs_batch_event(stack, [request])
    handle(first)
    [successor] = drain(stack, moto_url, stack.queue_url)
    # When later batches bring the producer's retry, a redelivery of the first message, the successor twice
    responses = [
        handle(sqs_batch_event(stack, [request], message_ids=["producer-retry"])),
        handle(first),
        redeliver(stack, moto_url, [successor]),
        redeliver(stack, moto_url, [successor]),
    ]
    # Then only the first delivery of the successor made a check: one chain, one successor per check.
    # Copies of a message whose check is still being sent come back later rather than delete it.
    assert [response["batchItemFailures"] for response in responses] == [
        [],
        [{"itemIdentifier": "msg-0"}],
        [],
        [{"itemIdentifier": successor["MessageId"]}],
    ]
    assert slow_emulator.checks(task_id) == 2
    assert record_of(stack, moto_url, task_id)["attempts"] == 2
    assert attempts_on_queue(stack, moto_url) == [2]


# A crash half-way: SQS redelivers the same message, which finishes the check


def test_redelivery_after_a_crash_before_the_requeue_sends_the_one_successor(
    stack: Stack, moto_url: str, slow_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running task, and a function that dies after writing the record, before the re-queue
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    rewire(monkeypatch, queue=CrashOnce(handler.real_wiring().collaborators.queue, "send"))
    event = sqs_batch_event(stack, [{"taskId": task_id}])
    # When SQS redelivers the failed message after its visibility timeout
    crashed = handle(event)
    redelivered = handle_later(monkeypatch, event)
    # Then the redelivery sent the successor without a second check
    assert crashed == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert redelivered == {"batchItemFailures": []}
    assert slow_emulator.checks(task_id) == 1
    assert attempts_on_queue(stack, moto_url) == [1]
    # When the chain goes on to the end
    complete_from_now_on(slow_emulator, task_id)
    record = run_until_done(stack, moto_url, [task_id])[task_id]
    # Then it is one chain: a check per attempt, one event
    assert slow_emulator.checks(task_id) == int(record["attempts"])
    assert_one_event(stack, moto_url, task_id, "OCR Task Completed")


@pytest.mark.parametrize(
    ("adapter", "method", "checks"),
    [
        pytest.param("records", "commit", 2, id="after-the-results-before-the-record"),
        pytest.param("announcer", "announce", 1, id="after-the-record-before-the-event"),
    ],
)
def test_redelivery_after_a_crash_of_a_final_check_finishes_it_once(
    adapter: str,
    method: str,
    checks: int,
    stack: Stack,
    moto_url: str,
    slow_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a completed task, and a function that dies half-way through its check
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    complete_from_now_on(slow_emulator, task_id)
    rewire(monkeypatch, **{adapter: CrashOnce(getattr(handler.real_wiring().collaborators, adapter), method)})
    event = sqs_batch_event(stack, [{"taskId": task_id}])
    # When SQS redelivers the failed message after its visibility timeout
    crashed = handle(event)
    redelivered = handle_later(monkeypatch, event)
    # Then the task is completed once: one record, one object per result, one event, no successor
    assert crashed == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert redelivered == {"batchItemFailures": []}
    record = record_of(stack, moto_url, task_id)
    assert (record["status"], record["attempts"]) == ("Completed", 1)
    assert result_keys(stack, moto_url, task_id) == [result["key"] for result in record["results"]]
    assert [int(result["size"]) for result in record["results"]] == [RESULT_BYTES]
    assert_one_event(stack, moto_url, task_id, "OCR Task Completed")
    assert slow_emulator.checks(task_id) == checks
    assert queue_counts(stack, moto_url) == (0, 0)


# Answers that are not a result


def test_second_401_in_one_check_is_transient_and_requeued(
    stack: Stack, moto_url: str, slow_emulator: Emulator
) -> None:
    # Given a task whose check is refused with 401 twice in a row
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    slow_emulator.inject(task_id, "unauthorized", times=2)
    # When
    response = handle(sqs_batch_event(stack, [{"taskId": task_id}]))
    # Then one new token and one retry in the invocation, then a transient failure kept on the record
    record = record_of(stack, moto_url, task_id)
    assert response == {"batchItemFailures": []}
    assert slow_emulator.checks(task_id) == 2
    assert (record["status"], record["attempts"], record["transientFailures"]) == ("Pending", 1, 1)
    assert record["lastError"] == "HTTP 401: the token was rejected twice"
    # One successor (its back-off of about a second may be over by now on a busy machine)
    assert sum(queue_counts(stack, moto_url)) == 1
    # When the chain goes on
    complete_from_now_on(slow_emulator, task_id)
    record = run_until_done(stack, moto_url, [task_id])[task_id]
    # Then the next check fetched a token that works, and the good answer cleared the failure
    assert (record["status"], record["transientFailures"]) == ("Completed", 0)
    assert "lastError" not in record


@pytest.mark.parametrize(
    ("http_date", "lowest"),
    [
        pytest.param(False, 5, id="delta-seconds"),
        # A date names a whole second, read a moment later: up to a second and the check's time are gone.
        pytest.param(True, 3, id="http-date"),
    ],
)
def test_throttled_check_is_requeued_no_sooner_than_retry_after(
    http_date: bool,
    lowest: float,
    stack: Stack,
    moto_url: str,
    slow_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a task whose check is answered 429 with Retry-After: 5 seconds
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    slow_emulator.inject(task_id, "throttle", retry_after=5, http_date=http_date)
    sent = Spy(handler.real_wiring().collaborators.queue, "send")
    rewire(monkeypatch, queue=sent)
    # When
    response = handle(sqs_batch_event(stack, [{"taskId": task_id}]))
    # Then the successor waits on the queue for at least the time the API asked for
    record = record_of(stack, moto_url, task_id)
    [(successor, delay_seconds)] = sent.calls
    assert response == {"batchItemFailures": []}
    assert record["lastError"] == "HTTP 429: throttled"
    assert lowest <= float(record["retryAfter"]) <= 5
    assert successor.for_check == 2 and delay_seconds >= float(record["retryAfter"])
    assert queue_counts(stack, moto_url) == (0, 1)  # delayed, not visible


INITIAL_DELAY = 3
SHORT_TIMEOUT = urllib3.Timeout(connect=1.0, read=0.3)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        pytest.param({"kind": "server-error", "status": 503}, "HTTP 503: unexpected status", id="5xx"),
        pytest.param({"kind": "not-json"}, "the answer is not the documented JSON", id="not-json"),
        pytest.param(
            {"kind": "timeout", "seconds": 5}, "RecognizeLabel failed: ReadTimeoutError", id="timeout"
        ),
    ],
)
def test_transient_failure_is_requeued_with_back_off_and_counts_against_the_deadline(
    fault: dict[str, Any],
    reason: str,
    stack: Stack,
    moto_url: str,
    slow_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a task whose check fails once, and a client that gives up reading after 0.3 s
    monkeypatch.setenv("POLL_INITIAL_DELAY_SECONDS", str(INITIAL_DELAY))
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    slow_emulator.inject(task_id, **fault)
    sent = Spy(handler.real_wiring().collaborators.queue, "send")
    api = AsposeApi(slow_emulator.url, lambda: Credentials("id", "secret"), timeout=SHORT_TIMEOUT)
    rewire(monkeypatch, queue=sent, api=api)
    # When
    response = handle(sqs_batch_event(stack, [{"taskId": task_id}]))
    # Then
    assert response == {"batchItemFailures": []}
    assert_transient_and_backed_off(stack, moto_url, task_id, sent, reason)


def test_refused_connection_is_transient_and_requeued_with_back_off(
    stack: Stack, moto_url: str, poller_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an API origin where nothing listens
    monkeypatch.setenv("ASPOSE_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("POLL_INITIAL_DELAY_SECONDS", str(INITIAL_DELAY))
    sent = Spy(handler.real_wiring().collaborators.queue, "send")
    rewire(monkeypatch, queue=sent)
    task_id = str(uuid.uuid4())
    # When
    response = handle(sqs_batch_event(stack, [{"taskId": task_id}]))
    # Then
    assert response == {"batchItemFailures": []}
    assert_transient_and_backed_off(
        stack, moto_url, task_id, sent, "connect/token failed: NewConnectionError"
    )


def assert_transient_and_backed_off(
    stack: Stack, moto_url: str, task_id: str, sent: Spy, reason: str
) -> None:
    """A failed check recorded; its successor keeps the first check's time, waiting past the initial delay."""
    record = record_of(stack, moto_url, task_id)
    assert (record["status"], record["attempts"], record["transientFailures"]) == ("Pending", 1, 1)
    assert reason in record["lastError"]
    [(successor, delay_seconds)] = sent.calls
    assert successor.for_check == 2
    assert INITIAL_DELAY < delay_seconds <= 2 * INITIAL_DELAY
    assert queue_counts(stack, moto_url) == (0, 1)


def test_undecodable_result_ends_in_error_with_no_object_left(
    stack: Stack, moto_url: str, slow_emulator: Emulator
) -> None:
    # Given a task whose answer is Completed with data that is not Base64
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    slow_emulator.inject(task_id, "bad-base64")
    # When
    response = handle(sqs_batch_event(stack, [{"taskId": task_id}]))
    # Then a terminal error that says why, nothing in S3, no successor, one Failed event
    record = record_of(stack, moto_url, task_id)
    assert response == {"batchItemFailures": []}
    assert (record["status"], record["results"]) == ("Error", [])
    [message] = record["errorMessages"]
    assert message.startswith("the answer cannot be decoded: result 0: not valid Base64")
    assert result_keys(stack, moto_url, task_id) == []
    assert queue_counts(stack, moto_url) == (0, 0)
    detail = assert_one_event(stack, moto_url, task_id, "OCR Task Failed")
    assert (detail["status"], detail["errorMessages"]) == ("Error", [message])


def test_completed_without_results_keeps_the_status_code_and_ends(
    stack: Stack, moto_url: str, slow_emulator: Emulator
) -> None:
    # Given tasks completed without results, each with another responseStatusCode
    codes = ["Ok", "NoAnyResultData", "ResultDataLost", "PartiallyNotFound"]
    tasks = {code: submit(slow_emulator, "RecognizeLabel", "label.png") for code in codes}
    for code, task_id in tasks.items():
        slow_emulator.inject(task_id, "empty", code=code)
    # When one batch checks them
    response = handle(sqs_batch_event(stack, [{"taskId": task_id} for task_id in tasks.values()]))
    # Then each is recorded with its code, announced, and its chain ends
    records = {code: record_of(stack, moto_url, task_id) for code, task_id in tasks.items()}
    events = completion_events(stack, moto_url)
    assert response == {"batchItemFailures": []}
    assert {code: (r["status"], r["responseStatusCode"], r["results"]) for code, r in records.items()} == {
        code: ("Completed", code, []) for code in codes
    }
    assert sorted(
        (e["detail-type"], e["detail"]["responseStatusCode"], e["detail"]["taskId"]) for e in events
    ) == sorted(("OCR Task Completed", code, task_id) for code, task_id in tasks.items())
    assert queue_counts(stack, moto_url) == (0, 0)


@pytest.mark.parametrize(
    ("fault", "last_seen"),
    [
        pytest.param(None, "the task was still Pending", id="still-running"),
        pytest.param(
            {"kind": "server-error", "times": -1}, "HTTP 500: unexpected status", id="always-failing"
        ),
    ],
)
def test_deadline_ends_the_chain_as_expired(
    fault: dict[str, Any] | None,
    last_seen: str,
    stack: Stack,
    moto_url: str,
    slow_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a deadline of 2 s and a task that runs for a minute (or whose every check fails)
    monkeypatch.setenv("POLL_DEADLINE_SECONDS", "2")
    monkeypatch.setenv("POLL_INITIAL_DELAY_SECONDS", "1")
    task_id = submit(slow_emulator, "RecognizeLabel", "label.png")
    if fault is not None:
        slow_emulator.inject(task_id, **fault)
    # When the chain runs
    handle(sqs_batch_event(stack, [{"taskId": task_id}]))
    record = run_until_done(stack, moto_url, [task_id], limit=15)[task_id]
    # Then it stopped once the deadline had passed, as Expired, with one Failed event
    assert record["status"] == "Expired"
    assert record["errorMessages"] == [f"deadline of 2 s passed: {last_seen}"]
    assert float(record["lastCheckEpoch"]) - float(record["firstCheckEpoch"]) >= 2
    assert slow_emulator.checks(task_id) == int(record["attempts"])
    assert assert_one_event(stack, moto_url, task_id, "OCR Task Failed")["status"] == "Expired"


# Poison messages


def test_poison_messages_go_to_the_dead_letter_queue_and_never_reach_the_api(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, function_log: io.StringIO
) -> None:
    # Given the sample batch with poison, and an oversized body
    event = poison_batch()
    # When
    response = handle(event)
    # Then every poison body is in the dead-letter queue with its reason, and was never checked
    dead = {
        message["Body"]: message["MessageAttributes"]["rejectReason"]["StringValue"]
        for message in drain(stack, moto_url, stack.dlq_url)
    }
    assert response == {"batchItemFailures": []}
    assert sorted(dead) == sorted(POISON)
    assert all(dead[body].startswith(reason) for body, reason in POISON.items()), dead
    assert [emulator.checks(task_id) for task_id in POISON_TASK_IDS] == [0, 0, 0]
    # and the valid neighbours were checked once each and finished
    assert [emulator.checks(task_id) for task_id in VALID_NEIGHBOURS] == [1, 1]
    table = boto3.resource("dynamodb", endpoint_url=moto_url, region_name=stack.region).Table(
        stack.table_name
    )
    records = {item["taskId"]: item["status"] for item in table.scan()["Items"]}
    assert records == dict.fromkeys(VALID_NEIGHBOURS, "NotExist")
    # and each reason was logged
    lines = [json.loads(line) for line in function_log.getvalue().splitlines()]
    logged = sorted(line["reason"] for line in lines if line.get("message") == "poll request rejected")
    assert logged == sorted(dead.values())


def test_without_a_dead_letter_url_poison_fails_its_record_until_the_redrive_policy_moves_it(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no DEAD_LETTER_QUEUE_URL in the function's environment
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    event = poison_batch()
    # When the batch is handled
    response = handle(event)
    # Then exactly the poison records are reported failed, and none reached the API
    assert sorted(response["batchItemFailures"], key=lambda failure: failure["itemIdentifier"]) == [
        {"itemIdentifier": message_id} for message_id in poison_message_ids(event)
    ]
    assert [emulator.checks(task_id) for task_id in POISON_TASK_IDS] == [0, 0, 0]
    # When the same bodies go through the poll queue, each failure visible again at once, past maxReceiveCount
    client = sqs(stack, moto_url)
    for record in event["Records"]:
        client.send_message(QueueUrl=stack.queue_url, MessageBody=record["body"])
    client.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": "0"})
    feeder = poll_queue_feeder(stack, moto_url)
    for _ in range(MAX_RECEIVES + 1):
        feeder.feed_once(wait_seconds=0)
    # Then the queue's RedrivePolicy moved the poison, and only the poison, to the dead-letter queue
    assert sorted(message["Body"] for message in drain(stack, moto_url, stack.dlq_url)) == sorted(POISON)
    assert queue_counts(stack, moto_url) == (0, 0)


# Arbitrary bodies through the real handler

# Characters SQS accepts in a message body; anything else never reaches the function.
sqs_characters = st.characters(min_codepoint=0x20, max_codepoint=0x10FFFF, exclude_categories=("Cs",)).filter(
    lambda char: char not in "\ufffe\uffff"
) | st.sampled_from("\t\n\r")
handler_bodies = st.one_of(
    st.text(sqs_characters, min_size=1, max_size=120),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(sqs_characters, max_size=10),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"taskId": st.uuids().map(str) | st.text(sqs_characters, max_size=20)},
        optional={
            "endpoint": st.sampled_from(["RecognizePdf", "recognizelabel", "Nope", ""]),
            "attempt": st.integers(),
        },
    ).map(json.dumps),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(handler_bodies, min_size=1, max_size=4))
def test_any_batch_through_the_handler_rejects_the_invalid_and_checks_the_valid(
    bodies: list[str], stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a batch of arbitrary bodies
    event = raw_sqs_batch_event(stack, bodies, [str(uuid.uuid4()) for _ in bodies])
    # When
    response = handle(event)
    # Then nothing failed: what the parser refuses is in the DLQ with its reason, the rest checked
    rejected: list[tuple[str, str]] = []
    valid: list[str] = []
    for body in bodies:
        try:
            valid.append(parse_body(body, default_endpoint="RecognizeLabel").task_id)
        except Refused as exc:
            rejected.append((body, str(exc)))
    dead = [
        (message["Body"], message["MessageAttributes"]["rejectReason"]["StringValue"])
        for message in drain(stack, moto_url, stack.dlq_url)
    ]
    assert response == {"batchItemFailures": []}
    assert sorted(dead) == sorted(rejected)
    assert all(read_record(stack, moto_url, task_id) for task_id in valid)


# Secrets


WRONG_SECRET = "not-the-sandbox-secret"


@pytest.fixture
def issued_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token handed to an HTTP client created from now on."""
    tokens: list[str] = []

    class TokenTap(urllib3.PoolManager):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> urllib3.BaseHTTPResponse:
            response = super().request(method, url, *args, **kwargs)
            if url.endswith("/connect/token") and response.status == 200:
                # Read here, handed on unread: the client streams the token answer with a size cap.
                body = response.read()
                response.release_conn()
                tokens.append(json.loads(body)["access_token"])
                return urllib3.HTTPResponse(
                    body=io.BytesIO(body), headers=response.headers, status=200, preload_content=False
                )
            return response

    monkeypatch.setattr(urllib3, "PoolManager", TokenTap)
    return tokens


def test_token_and_client_secret_never_reach_logs_records_events_or_errors(
    stack: Stack,
    moto_url: str,
    poller_env: None,
    issued_tokens: list[str],
    function_log: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an API that only accepts the stack's credentials, a task whose check is refused twice with 401
    # (a transient failure with its error recorded), and a poison neighbour; every log at DEBUG
    for name in ("ocr_poller", "ocr-poller", "urllib3", "aws_lambda_powertools"):
        caplog.set_level(logging.DEBUG, logger=name)
    with Emulator(
        processing_seconds=0.5, client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET
    ) as secured:
        monkeypatch.setenv("ASPOSE_BASE_URL", secured.url)
        label = (SAMPLES / "label.png").read_bytes()
        task_id = secured.submit("RecognizeLabel", submission_body("RecognizeLabel", label))
        secured.inject(task_id, "unauthorized", times=2)
        event = raw_sqs_batch_event(
            stack, [json.dumps({"taskId": task_id}), '{"taskId": "../secret"}'], ["a", "b"]
        )
        # When the chain runs to its end, and a client with a wrong secret is refused its token
        response = handle(event)
        record = run_until_done(stack, moto_url, [task_id])[task_id]
        refused = AsposeApi(secured.url, lambda: Credentials(SANDBOX_CLIENT_ID, WRONG_SECRET))
        with pytest.raises(Redeliver) as error:
            refused.check(
                "RecognizeLabel",
                task_id,
                lambda *_: pytest.fail("no result expected"),
                until=time.time() + 60,
            )
    # Then
    output = capsys.readouterr()
    seen = {
        "function log": function_log.getvalue(),
        "stdout": output.out,
        "stderr": output.err,
        "log records": caplog.text,
        "task record": json.dumps(record, default=str),
        "events": json.dumps(completion_events(stack, moto_url)),
        "dead letters": json.dumps(drain(stack, moto_url, stack.dlq_url), default=str),
        "batch response": json.dumps(response),
        "error": "".join(traceback.format_exception(error.value)) + repr(error.value.args),
    }
    assert record["status"] == "Completed" and len(set(issued_tokens)) >= 2
    assert "HTTP 401" in seen["function log"]  # the failure was logged, and is looked through below
    leaks = [
        (where, secret)
        for secret in [SANDBOX_CLIENT_SECRET, WRONG_SECRET, *issued_tokens]
        for where, text in seen.items()
        if secret in text
    ]
    assert leaks == []


def test_rejected_credentials_fail_the_record_so_it_reaches_the_dead_letter_queue(
    stack: Stack, moto_url: str, poller_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an API that accepts other credentials than the stack's secret holds
    with Emulator(client_id="someone", client_secret="else") as strict:
        monkeypatch.setenv("ASPOSE_BASE_URL", strict.url)
        task_id = strict.submit("RecognizeLabel", submission_body("RecognizeLabel", b"\x89PNG"))
        # When
        response = handle(raw_sqs_batch_event(stack, [json.dumps({"taskId": task_id})], ["m-1"]))
        # Then the record fails (not a silent back-off), so redrive and the DLQ alarm take over
        assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
        assert strict.checks(task_id) == 0
        assert read_record(stack, moto_url, task_id) is None
