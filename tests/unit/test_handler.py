"""The handler alone: event shapes told apart, exact batch responses, with in-memory collaborators."""

from __future__ import annotations

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


def test_a_record_that_fails_is_reported_alone(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_unknown_event_shape_is_refused(world: World) -> None:
    with pytest.raises(handler.UnknownEventError, match="unsupported event"):
        handler.lambda_handler({"hello": "world"}, LambdaContext())


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
