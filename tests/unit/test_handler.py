"""The handler alone: event shapes told apart, exact batch responses, with in-memory collaborators."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ocr_poller import handler
from ocr_poller.config import Settings
from ocr_poller.wiring import Wiring
from tests.lambda_context import LambdaContext
from tests.unit.fakes import CrashOnce, FakeApi, Reply, World

EVENTS = Path(__file__).resolve().parents[2] / "events"
SETTINGS = Settings(results_table="t", results_bucket="b", poll_queue_url="https://sqs/q")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """The handler wired to fakes instead of AWS and Aspose."""
    world = World(FakeApi([Reply("Pending")]))
    monkeypatch.setattr(handler, "real_wiring", lambda: Wiring(world.deps, SETTINGS.max_concurrent_checks))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return world


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def test_sqs_batch_checks_every_record(world: World) -> None:
    # Given the sample batch of a label and a PDF task
    event = sample("sqs_batch.json")
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then
    assert response == {"batchItemFailures": []}
    assert sorted(endpoint for endpoint, _ in world.api.calls) == ["RecognizeLabel", "RecognizePdf"]
    assert sorted(request.endpoint for request, _ in world.queue.sent) == ["RecognizeLabel", "RecognizePdf"]


def test_a_record_that_fails_is_reported_alone(
    world: World, monkeypatch: pytest.MonkeyPatch, function_log: io.StringIO
) -> None:
    # Given a batch where writing the first record's check fails (DynamoDB down, say)
    crashing = replace(world.deps, records=CrashOnce(world.records, "commit"))
    monkeypatch.setattr(handler, "real_wiring", lambda: Wiring(crashing, SETTINGS.max_concurrent_checks))
    event = sample("sqs_batch.json")
    event["Records"] = event["Records"][:1] + [
        {**event["Records"][1], "body": json.dumps({"taskId": "other-task", "endpoint": "RecognizePdf"})}
    ]
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then exactly the record whose commit crashed is retried
    failed = response["batchItemFailures"]
    assert len(failed) == 1 and failed[0]["itemIdentifier"] in {r["messageId"] for r in event["Records"]}
    # And logged once, with its message id and the exception's traceback
    lines = [json.loads(line) for line in function_log.getvalue().splitlines()]
    (logged,) = [line for line in lines if line["level"] == "ERROR"]
    assert logged["messageId"] == failed[0]["itemIdentifier"]
    assert logged["message"] == "record failed: SQS delivers it again" and "Traceback" in logged["exception"]
    assert len(world.queue.sent) == 1


def test_poison_records_are_rejected_and_do_not_fail_the_batch(world: World) -> None:
    # Given the sample batch mixing valid and invalid bodies
    event = sample("sqs_batch_with_poison.json")
    valid = [r for r in event["Records"] if _is_valid(r["body"])]
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then
    assert response == {"batchItemFailures": []}
    assert len(world.queue.rejected) == len(event["Records"]) - len(valid)
    assert len(world.api.calls) == len(valid)


def test_copies_of_one_message_in_a_concurrent_batch_make_one_successor(world: World) -> None:
    # Given the same request three times in one batch
    event = sample("sqs_batch.json")
    record = event["Records"][0]
    event["Records"] = [{**record, "messageId": f"copy-{i}"} for i in range(3)]
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then
    assert response == {"batchItemFailures": []}
    assert len(world.queue.sent) == 1


def test_eventbridge_event_is_checked_once(world: World) -> None:
    # Given
    event = sample("eventbridge_task_submitted.json")
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then
    assert response == {"action": "requeued", "taskId": event["detail"]["taskId"]}
    assert len(world.api.calls) == 1


def s3_event() -> dict[str, Any]:
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "s3": {"object": {"key": "k"}}}]}


def sns_event() -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": '{"taskId": "abc"}'}}]}


def kinesis_event() -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:kinesis", "kinesis": {"data": "eyJ0YXNrSWQiOiAiYWJjIn0="}}]}


def deep_detail_event() -> dict[str, Any]:
    deep: Any = {"taskId": "abc"}
    for _ in range(5000):
        deep = {"requestPayload": {"detail": deep}}
    return {**sample("eventbridge_task_submitted.json"), "detail": deep}


def mixed_batch() -> dict[str, Any]:
    event = sample("sqs_batch.json")
    event["Records"].append(s3_event()["Records"][0])
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param({"hello": "world"}, "neither an SQS batch nor an EventBridge event", id="unknown"),
        pytest.param(["a", "list"], "an event must be a JSON object, not list", id="not-an-object"),
        pytest.param(
            {k: v for k, v in sample("eventbridge_task_submitted.json").items() if k != "detail"},
            "EventBridge event without detail",
            id="eventbridge-without-detail",
        ),
        pytest.param(
            deep_detail_event(), "detail is nested deeper than 32 levels", id="nested-thousands-deep"
        ),
        pytest.param(s3_event(), "record 0 comes from 'aws:s3', not from SQS", id="s3"),
        pytest.param(sns_event(), "record 0 comes from 'aws:sns', not from SQS", id="sns"),
        pytest.param(kinesis_event(), "record 0 comes from 'aws:kinesis', not from SQS", id="kinesis"),
        pytest.param(mixed_batch(), "record 2 comes from 'aws:s3'", id="sqs-and-s3"),
        pytest.param({"Records": []}, "Records is not a list of SQS records", id="no-records"),
        pytest.param({"Records": "x"}, "Records is not a list of SQS records", id="records-not-a-list"),
        pytest.param(
            {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, "has no messageId or body", id="no-id"
        ),
    ],
)
def test_an_event_that_cannot_be_a_poll_request_is_rejected_with_one_logged_reason(
    event: Any, reason: str, world: World, function_log: io.StringIO
) -> None:
    # Given the function's log captured (function_log)
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then no crash, nothing checked, and one log line that says why
    lines = [json.loads(line) for line in function_log.getvalue().splitlines()]
    rejections = [line for line in lines if line["message"] == "event rejected"]
    assert response["action"] == "rejected" and reason in response["reason"]
    assert [line["reason"] for line in rejections] == [response["reason"]]
    assert world.api.calls == [] and world.queue.sent == []


def test_a_failed_eventbridge_invocation_redriven_through_the_queue_is_checked(world: World) -> None:
    # Given Lambda's on-failure record of the sample event, with a long error, as an SQS message body
    wrapper = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted"},
        "requestPayload": sample("eventbridge_task_submitted.json"),
        "responsePayload": {"errorMessage": "boom " * 4000},
    }
    event = sample("sqs_batch.json")
    event["Records"] = [{**event["Records"][0], "body": json.dumps(wrapper)}]
    # When
    response = handler.lambda_handler(event, LambdaContext())
    # Then its request was checked, although the body is over the 8 KiB cap of a request
    assert response == {"batchItemFailures": []}
    assert world.api.calls == [("RecognizePdf", "0b9e2f6c-7d41-4a83-9c5e-1f2a3b4c5d6e")]


def _is_valid(body: str) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(document, dict)
        and isinstance(document.get("taskId"), str)
        and document["taskId"].replace("-", "").isalnum()
        and document.get("endpoint", "RecognizeLabel") in {"RecognizeLabel", "RecognizePdf"}
    )


def test_a_single_record_is_logged_with_its_message_id_and_the_next_invocation_without_it(
    world: World, function_log: io.StringIO
) -> None:
    # Given a batch of one record (checked on the invocation's own thread), the log captured (function_log)
    single = sample("sqs_batch.json")
    single["Records"] = single["Records"][:1]
    # When it is checked, then an EventBridge event is
    handler.lambda_handler(single, LambdaContext())
    handler.lambda_handler(sample("eventbridge_task_submitted.json"), LambdaContext())
    # Then each line names its own delivery only
    first, second = (json.loads(line) for line in function_log.getvalue().splitlines())
    assert first["messageId"] == single["Records"][0]["messageId"] and "eventId" not in first
    assert second["eventId"] == sample("eventbridge_task_submitted.json")["id"] and "messageId" not in second
