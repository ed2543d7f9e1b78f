"""Issue 10: hostile answers and forged events through the real handler (CONTRACT.md sections 3, 4, 10).

moto's server holds the AWS side, a scripted HTTP server in this process plays the API (tests/hostile_api.py).
Every test asserts the end state: the task record (and its size, counted here as DynamoDB counts it),
the objects under the task's prefix (none the record does not list), the queues, the completion events
(each entry under 256 KiB as EventBridge counts it, enforced here since moto does not), and that the
batch's other records finish.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from ocr_poller_tools.sandbox import SANDBOX_CLIENT_SECRET, Stack

from ocr_poller import handler
from ocr_poller.adapters.aspose import AsposeApi, Credentials
from ocr_poller.adapters.eventbridge import EventBridgeAnnouncer
from ocr_poller.errors import RetryLater
from ocr_poller.limits import (
    DYNAMODB_ITEM_BYTES,
    EVENT_ENTRY_BYTES,
    MAX_FIELD_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES,
    MAX_RESULTS,
)
from ocr_poller.poll import CHECK_MARGIN_SECONDS
from tests.hostile_api import HostileApi, endless, json_reply, raw_reply, streamed_reply, token_reply, trickle
from tests.integration.flow import (
    completion_events,
    drain,
    handle,
    queue_counts,
    raw_sqs_batch_event,
    read_record,
    result_keys,
    rewire,
    sqs_batch_event,
)
from tests.lambda_context import LambdaContext

pytestmark = pytest.mark.integration

TASK = "0e5f8a7c-hostile-answer-task"
NEIGHBOUR = "1a2b3c4d-well-behaved-task"
MEGABYTE = 1 << 20
GOOD_ANSWER = {
    "taskStatus": "Completed",
    "responseStatusCode": "Ok",
    "results": [{"type": "Text", "data": base64.b64encode(b"ACME FREIGHT").decode()}],
    "error": None,
}


# What AWS counts, computed here: moto enforces neither limit


def dynamodb_item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (attribute names and values in UTF-8), rounded up."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return len(str(value)) + 1  # at most 21 bytes; the digits are an upper bound
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, list):
        return 3 + sum(1 + _value_bytes(element) for element in value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in value.items())
    raise TypeError(type(value))


def put_events_entry_bytes(entry: Any) -> int:
    """A PutEvents entry's size as AWS documents it: Source, DetailType, Detail, Resources in UTF-8."""
    texts = [entry["Source"], entry["DetailType"], entry.get("Detail", ""), *entry.get("Resources", [])]
    return (14 if "Time" in entry else 0) + sum(len(text.encode("utf-8")) for text in texts)


class SizeCheckingEvents:
    """The real EventBridge client, refusing what AWS would refuse: an entry of 256 KiB or more."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.sizes: list[int] = []

    def put_events(self, Entries: list[Any]) -> Any:  # noqa: N803 - boto3's argument name
        for entry in Entries:
            size = put_events_entry_bytes(entry)
            self.sizes.append(size)
            assert size < EVENT_ENTRY_BYTES, f"EventBridge refuses an entry of {size} bytes"
        return self._inner.put_events(Entries=Entries)


# Fixtures


@pytest.fixture
def api(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    """The hostile API, the function pointed at it, credentials from the stack's secret, no waiting."""
    with HostileApi() as running:
        monkeypatch.setenv("ASPOSE_BASE_URL", running.url)
        monkeypatch.setenv("POLL_INITIAL_DELAY_SECONDS", "0")
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        parameters.clear_caches()
        running.answer(NEIGHBOUR, json_reply(GOOD_ANSWER))
        yield running


@pytest.fixture
def events(
    stack: Stack, moto_url: str, api: HostileApi, monkeypatch: pytest.MonkeyPatch
) -> SizeCheckingEvents:
    """Every completion event goes through a client that enforces EventBridge's entry limit."""
    checking = SizeCheckingEvents(boto3.client("events", endpoint_url=moto_url, region_name=stack.region))
    rewire(monkeypatch, announcer=EventBridgeAnnouncer(stack.event_bus_name, client=checking))
    return checking


# Helpers


def raw_item(stack: Stack, moto_url: str, task_id: str) -> dict[str, Any]:
    item = read_record(stack, moto_url, task_id)
    assert item is not None, f"no record of task {task_id}"
    return item


def assert_bounded_record(stack: Stack, moto_url: str, task_id: str) -> dict[str, Any]:
    """The task's record: under DynamoDB's item limit, its strings within their caps, its objects listed."""
    record = raw_item(stack, moto_url, task_id)
    assert dynamodb_item_bytes(record) < DYNAMODB_ITEM_BYTES
    assert len(record.get("responseStatusCode", "").encode()) <= MAX_FIELD_BYTES
    for field in ("errorMessages", "warnings"):
        assert len(record.get(field, [])) <= MAX_MESSAGES
        assert all(len(message.encode()) <= MAX_MESSAGE_BYTES for message in record.get(field, []))
    assert all(len(result["type"].encode()) <= MAX_FIELD_BYTES for result in record.get("results", []))
    assert result_keys(stack, moto_url, task_id) == sorted(
        result["key"] for result in record.get("results", [])
    )
    return record


def assert_neighbour_finished(stack: Stack, moto_url: str) -> None:
    record = raw_item(stack, moto_url, NEIGHBOUR)
    assert (record["status"], len(result_keys(stack, moto_url, NEIGHBOUR))) == ("Completed", 1)


def events_by_task(stack: Stack, moto_url: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in completion_events(stack, moto_url):
        found.setdefault(event["detail"]["taskId"], []).append(event)
    return found


def batch_with_neighbour(stack: Stack) -> dict[str, Any]:
    return sqs_batch_event(stack, [{"taskId": TASK}, {"taskId": NEIGHBOUR}], ["hostile", "neighbour"])


def stream_of(document_head: str, items: Iterator[str], tail: str) -> Any:
    """A streamed body: the head, each item (comma-separated), the tail."""

    def pieces() -> Iterator[bytes]:
        yield document_head.encode()
        for index, item in enumerate(items):
            yield (("," if index else "") + item).encode()
        yield tail.encode()

    return pieces


def wait_for_streams_to_close(api: HostileApi) -> None:
    """The server's writers notice a closed connection at their next write."""
    for _ in range(100):
        if api.streams_open == 0:
            return
        time.sleep(0.05)


# 1. Bounded by construction: whatever the answer holds, the record and the event stay under AWS's limits


def test_huge_strings_in_every_field_end_the_task_with_capped_strings(
    stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given a completed answer whose every string is a megabyte: status code, result types, messages,
    # warnings, and unknown members
    huge = "Ж" * (MEGABYTE // 2)
    document = {
        "id": TASK,
        "taskStatus": "Completed",
        "responseStatusCode": huge,
        "results": [{"type": f"{i}{huge}", "data": base64.b64encode(b"label").decode()} for i in range(3)],
        "error": {"messages": [huge] * 3, "warnings": [huge] * 3, "details": huge},
        "unknown": huge,
    }
    api.answer(TASK, raw_reply(200, json.dumps(document, ensure_ascii=False).encode()))
    # When a batch checks it with a well-behaved neighbour
    response = handle(batch_with_neighbour(stack))
    # Then the task completed, its record and event within AWS's limits, its objects listed
    assert response == {"batchItemFailures": []}
    record = assert_bounded_record(stack, moto_url, TASK)
    assert (record["status"], len(record["results"])) == ("Completed", 3)
    assert record["responseStatusCode"].startswith("ЖЖЖ") and record["responseStatusCode"].endswith("…")
    assert len(events_by_task(stack, moto_url)[TASK]) == 1 and max(events.sizes) < EVENT_ENTRY_BYTES
    assert queue_counts(stack, moto_url) == (0, 0)
    assert_neighbour_finished(stack, moto_url)


def test_thousands_of_results_end_the_task_in_error_with_nothing_stored(
    stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given a completed answer with 5000 results, streamed
    result = json.dumps({"type": "Text", "data": base64.b64encode(b"x" * 100).decode()})
    api.answer(
        TASK,
        streamed_reply(
            stream_of(
                f'{{"id": "{TASK}", "taskStatus": "Completed", "results": [', iter([result] * 5000), "]}"
            )
        ),
    )
    # When
    response = handle(batch_with_neighbour(stack))
    # Then an explained, terminal Error, no object left, one Failed event
    assert response == {"batchItemFailures": []}
    record = assert_bounded_record(stack, moto_url, TASK)
    assert (record["status"], record["results"]) == ("Error", [])
    assert record["errorMessages"] == [f"the answer holds more than {MAX_RESULTS} results"]
    [event] = events_by_task(stack, moto_url)[TASK]
    assert event["detail-type"] == "OCR Task Failed"
    assert queue_counts(stack, moto_url) == (0, 0)
    assert_neighbour_finished(stack, moto_url)


def test_megabytes_of_non_ascii_messages_end_the_task_in_error_with_capped_messages(
    stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given an Error answer with 600 messages of 3000 three-byte characters: five megabytes
    message = json.dumps("错误" * 1500, ensure_ascii=False)
    api.answer(
        TASK,
        streamed_reply(
            stream_of('{"taskStatus": "Error", "error": {"messages": [', iter([message] * 600), "]}}")
        ),
    )
    # When
    response = handle(batch_with_neighbour(stack))
    # Then Error (not a format error running to Expired), the first messages kept, the rest counted
    assert response == {"batchItemFailures": []}
    record = assert_bounded_record(stack, moto_url, TASK)
    messages = record["errorMessages"]
    assert record["status"] == "Error" and len(messages) == MAX_MESSAGES
    assert messages[0].startswith("错误") and messages[-1].endswith(f"{600 - MAX_MESSAGES + 1} more")
    [event] = events_by_task(stack, moto_url)[TASK]
    assert event["detail"]["errorMessages"] == messages
    assert max(events.sizes) < EVENT_ENTRY_BYTES
    assert_neighbour_finished(stack, moto_url)


# 2. Validate before you store, clean up what you stored


@pytest.mark.parametrize("id_first", [True, False], ids=["id-before-results", "id-after-results"])
def test_an_answer_for_another_task_leaves_nothing_under_the_prefix(
    id_first: bool, stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given an answer with another task's id and results, then this task's own answer
    results = [{"type": "Text", "data": base64.b64encode(b"not yours").decode()}] * 2
    foreign: dict[str, Any] = {"taskStatus": "Completed", "results": results}
    foreign = {"id": "someone-else", **foreign} if id_first else {**foreign, "id": "someone-else"}
    api.answer(TASK, json_reply(foreign), json_reply({**GOOD_ANSWER, "id": TASK}))
    # When the first check is made
    handle(sqs_batch_event(stack, [{"taskId": TASK}]))
    # Then it is a transient failure with nothing stored, and the chain goes on
    record = assert_bounded_record(stack, moto_url, TASK)
    assert (record["status"], record["transientFailures"]) == ("Pending", 1)
    assert "another task (someone-else)" in record["lastError"]
    assert result_keys(stack, moto_url, TASK) == []
    assert sum(queue_counts(stack, moto_url)) == 1  # the successor, delayed by the back-off
    # When the next check is made and gets this task's answer
    handle(sqs_batch_event(stack, [{"taskId": TASK, "attempt": 1}]))
    # Then the task completed with its own result only
    record = assert_bounded_record(stack, moto_url, TASK)
    assert (record["status"], len(record["results"])) == ("Completed", 1)


@pytest.mark.parametrize("status_first", [True, False], ids=["status-before-results", "status-after-results"])
def test_results_of_an_answer_with_an_unknown_status_are_not_kept(
    status_first: bool, stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given an answer with an unknown status and results
    results = [{"type": "Pdf", "data": base64.b64encode(b"%PDF-1.7").decode()}] * 3
    answer: dict[str, Any] = {"taskStatus": "Sideways", "results": results}
    if not status_first:
        answer = {"results": results, "taskStatus": "Sideways"}
    api.answer(TASK, json_reply(answer))
    # When
    response = handle(sqs_batch_event(stack, [{"taskId": TASK}]))
    # Then a transient failure, and nothing under the task's prefix
    assert response == {"batchItemFailures": []}
    record = assert_bounded_record(stack, moto_url, TASK)
    assert record["status"] == "Pending" and "no known taskStatus (Sideways)" in record["lastError"]
    assert result_keys(stack, moto_url, TASK) == []


# 3. No check outlives its invocation


# The poll keeps CHECK_MARGIN_SECONDS of the invocation for what follows a check: 3 s are left to the check.
SHORT_INVOCATION_SECONDS = int(CHECK_MARGIN_SECONDS) + 3


RESULTS_OPENED = f'{{"id": "{TASK}", "taskStatus": "Completed", "results": ['.encode()
DATA_OPENED = b'{"taskStatus": "Completed", "results": [{"type": "Text", "data": "'


@pytest.mark.parametrize(
    ("body", "pause"),
    [
        pytest.param(trickle(RESULTS_OPENED), 0.01, id="trickle"),
        pytest.param(endless(DATA_OPENED, b"QUJD" * 16384), 0.005, id="endless-data"),
        pytest.param(endless(b'{"taskStatus": "Pending", "x": "', b"y" * 65536), 0.002, id="endless-string"),
    ],
)
def test_a_body_that_trickles_or_never_ends_is_cut_off_and_the_batch_finishes(
    body: Any, pause: float, stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given a task whose answer never completes (a byte at a time, or data without end)
    api.answer(TASK, streamed_reply(body, pause=pause))
    # When a short invocation checks it with a well-behaved neighbour
    context = LambdaContext(timeout_seconds=SHORT_INVOCATION_SECONDS)
    response = handler.lambda_handler(batch_with_neighbour(stack), context)
    # Then the check was cut off: a transient failure, the chain goes on, no half-written object
    assert response == {"batchItemFailures": []}
    record = assert_bounded_record(stack, moto_url, TASK)
    assert record["status"] == "Pending" and "ran out of" in record["lastError"]
    assert result_keys(stack, moto_url, TASK) == []
    assert sum(queue_counts(stack, moto_url)) == 1  # the task's successor
    # and the API's connection was closed by the poller, not left streaming
    wait_for_streams_to_close(api)
    assert (api.streams_open, api.streams_cut) == (0, 1)
    # and the neighbour finished
    assert_neighbour_finished(stack, moto_url)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(trickle(RESULTS_OPENED), id="trickle"),
        pytest.param(endless(RESULTS_OPENED, b" " * 65536), id="endless-whitespace"),
    ],
)
def test_the_adapter_gives_up_at_until_and_closes_the_connection(body: Any) -> None:
    # Given an API whose answer never ends, and a check with half a second left
    with HostileApi() as api:
        api.answer(TASK, streamed_reply(body, pause=0.01))
        client = AsposeApi(api.url, lambda: Credentials("id", "secret"))
        # When / Then the check gives up, transiently, having stored nothing
        with pytest.raises(RetryLater, match="ran out of time"):
            client.check(
                "RecognizeLabel", TASK, lambda *_: pytest.fail("nothing to store"), until=time.time() + 0.5
            )
        # and the connection is closed: the server's writer stopped
        wait_for_streams_to_close(api)
        assert (api.streams_open, api.streams_cut) == (0, 1)


# 5. Token hygiene


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(token_reply("abc\r\nX-Injected: yes"), "not a bearer token", id="cr-lf"),
        pytest.param(token_reply("jéton-ünicode-€"), "not a bearer token", id="not-latin-1"),
        pytest.param(token_reply("abc", expires_in=float("nan")), "expires_in", id="nan-lifetime"),
        pytest.param(
            streamed_reply(lambda: iter([b'{"access_token": "'] + [b"a" * 65536] * 10_000)),
            "larger than 65536 bytes",
            id="hundreds-of-megabytes",
        ),
    ],
)
def test_a_bad_token_is_transient_never_used_and_never_cached(
    token: Any, reason: str, stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given a token endpoint that answers a bad token
    api.token = token
    api.answer(TASK, json_reply({**GOOD_ANSWER, "id": TASK}))
    # When a check is made
    response = handle(sqs_batch_event(stack, [{"taskId": TASK}]))
    # Then it is a transient failure and no check went out with it
    assert response == {"batchItemFailures": []}
    record = assert_bounded_record(stack, moto_url, TASK)
    assert record["status"] == "Pending" and reason in record["lastError"]
    assert api.checks[TASK] == 0
    # When the endpoint mends and the next check comes
    api.token = token_reply("good-token", expires_in=3600)
    handle(sqs_batch_event(stack, [{"taskId": TASK, "attempt": 1}]))
    # Then a new token was fetched (the bad one was not cached) and the task completed
    assert (api.token_requests, api.checks[TASK]) == (2, 1)
    assert assert_bounded_record(stack, moto_url, TASK)["status"] == "Completed"


def test_a_token_endpoint_that_echoes_the_secret_is_quoted_nowhere(
    stack: Stack, moto_url: str, api: HostileApi, function_log: io.StringIO
) -> None:
    # Given a token endpoint that refuses the credentials and echoes the request, secret included
    api.token = raw_reply(400, f"invalid_client: client_secret={SANDBOX_CLIENT_SECRET}".encode())
    # When
    response = handle(raw_sqs_batch_event(stack, [json.dumps({"taskId": TASK})], ["m-1"]))
    # Then the record fails for redelivery (the DLQ after 5 receives), and the secret is in no log line
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert "token request rejected: HTTP 400" in function_log.getvalue()
    assert SANDBOX_CLIENT_SECRET not in function_log.getvalue()
    assert read_record(stack, moto_url, TASK) is None


# 8. Clear rejections of what cannot be a poll request


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(
            {"version": "0", "id": "e-1", "source": "ocr.tasks", "detail-type": "OCR Task Submitted"},
            "EventBridge event without detail",
            id="eventbridge-without-detail",
        ),
        pytest.param(
            {"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": TASK}}}]},
            "comes from 'aws:s3', not from SQS",
            id="s3",
        ),
        pytest.param(
            {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps({"taskId": TASK})}}]},
            "comes from 'aws:sns', not from SQS",
            id="sns",
        ),
    ],
)
def test_an_event_of_another_shape_is_rejected_with_its_reason_and_touches_nothing(
    event: dict[str, Any],
    reason: str,
    stack: Stack,
    moto_url: str,
    api: HostileApi,
    function_log: io.StringIO,
) -> None:
    # When
    response = handle(event)
    # Then one log line says why; no record, no check, nothing queued or dead-lettered
    rejected = [json.loads(line) for line in function_log.getvalue().splitlines()]
    assert response["action"] == "rejected" and reason in response["reason"]
    assert [line["reason"] for line in rejected if line["message"] == "event rejected"] == [
        response["reason"]
    ]
    assert read_record(stack, moto_url, TASK) is None and api.checks[TASK] == 0
    assert queue_counts(stack, moto_url) == (0, 0) and drain(stack, moto_url, stack.dlq_url) == []


def test_an_eventbridge_detail_nested_thousands_deep_is_rejected_without_a_crash(
    stack: Stack, moto_url: str, api: HostileApi, function_log: io.StringIO
) -> None:
    deep: Any = {"taskId": TASK}
    for _ in range(5000):
        deep = {"requestPayload": {"detail": deep}}
    event = {
        "version": "0",
        "id": "e-2",
        "source": "ocr.tasks",
        "detail-type": "OCR Task Submitted",
        "detail": deep,
    }
    response = handle(event)
    assert response["action"] == "rejected" and "nested deeper" in response["reason"]
    assert read_record(stack, moto_url, TASK) is None


def test_a_failed_eventbridge_invocation_redriven_from_the_dlq_is_checked_whatever_its_wrapper_weighs(
    stack: Stack, moto_url: str, api: HostileApi, events: SizeCheckingEvents
) -> None:
    # Given Lambda's on-failure record of an EventBridge invocation that failed with a long stack trace
    event = {"version": "0", "id": "e-3", "source": "ocr.tasks", "detail-type": "OCR Task Submitted"}
    wrapper = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {**event, "detail": {"taskId": TASK, "endpoint": "RecognizeLabel"}},
        "responsePayload": {"errorMessage": "boom", "stackTrace": ["  File x.py, line 1\n" * 40] * 30},
    }
    api.answer(TASK, json_reply({**GOOD_ANSWER, "id": TASK}))
    # When it is redriven to the poll queue and delivered
    body = json.dumps(wrapper)
    response = handle(raw_sqs_batch_event(stack, [body], ["redriven"]))
    # Then its request was checked and the task finished, although the body is over the request's 8 KiB
    assert len(body) > 8 * 1024 and response == {"batchItemFailures": []}
    assert assert_bounded_record(stack, moto_url, TASK)["status"] == "Completed"
    assert len(events_by_task(stack, moto_url)[TASK]) == 1
