"""The whole poller over HTTP: moto's server for AWS, the emulator for Aspose, the handler fed real events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import urllib3
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.localrun import eventbridge_event
from ocr_poller_tools.sandbox import Stack

from ocr_poller import handler
from tests.integration.flow import (
    EVENTS,
    handle,
    run_until_done,
    s3_body,
    submit,
    submit_label_and_pdf,
)
from tests.lambda_context import LambdaContext

pytestmark = pytest.mark.integration


def api_results(emulator: Emulator, endpoint: str, task_id: str) -> list[tuple[str, bytes]]:
    """The emulator's own answer, decoded with json + base64: the oracle for what S3 must hold."""
    http = urllib3.PoolManager()
    token = json.loads(
        http.request(
            "POST",
            f"{emulator.url}/connect/token",
            fields={"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"},
            encode_multipart=False,
        ).data
    )["access_token"]
    answer = json.loads(
        http.request(
            "GET",
            f"{emulator.url}/v5.0/ocr/{endpoint}?id={task_id}",
            headers={"Authorization": f"Bearer {token}"},
        ).data
    )
    return [(result["type"], base64.b64decode(result["data"])) for result in answer["results"]]


def assert_completed_byte_exact(
    stack: Stack, endpoint_url: str, emulator: Emulator, record: dict[str, Any], endpoint: str
) -> None:
    assert record["status"] == "Completed" and record["endpoint"] == endpoint
    expected = api_results(emulator, endpoint, record["taskId"])
    assert [r["type"] for r in record["results"]] == [kind for kind, _ in expected]
    for result, (_, data) in zip(record["results"], expected, strict=True):
        assert s3_body(stack, endpoint_url, result["key"]) == data
        assert int(result["size"]) == len(data)
        assert result["key"].startswith(f"results/{record['taskId']}/")


def test_sqs_batch_carries_a_label_and_a_pdf_to_completed(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a label and a PDF submitted, their poll requests in one SQS batch
    label, pdf, event = submit_label_and_pdf(stack, emulator)
    # When the batch is handled, then the poll queue is fed to the handler until both end
    response = handle(event)
    records = run_until_done(stack, moto_url, [label, pdf])
    # Then
    assert response == {"batchItemFailures": []}
    assert_completed_byte_exact(stack, moto_url, emulator, records[label], "RecognizeLabel")
    assert_completed_byte_exact(stack, moto_url, emulator, records[pdf], "RecognizePdf")
    assert [r["type"] for r in records[pdf]["results"]] == ["Text", "Pdf"]
    assert all(int(r["attempts"]) >= 2 for r in records.values())


def test_eventbridge_event_carries_a_label_and_a_pdf_to_completed(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given the sample EventBridge event, once per submitted task
    label = submit(emulator, "RecognizeLabel", "label.png")
    pdf = submit(emulator, "RecognizePdf", "invoice.pdf", result_type="Pdf")
    sample = json.loads((EVENTS / "eventbridge_task_submitted.json").read_text())
    # When
    for task_id, endpoint in ((label, "RecognizeLabel"), (pdf, "RecognizePdf")):
        result = handler.lambda_handler(
            {**sample, "detail": {"taskId": task_id, "endpoint": endpoint}}, LambdaContext()
        )
        assert result["taskId"] == task_id
    records = run_until_done(stack, moto_url, [label, pdf])
    # Then
    assert_completed_byte_exact(stack, moto_url, emulator, records[label], "RecognizeLabel")
    assert_completed_byte_exact(stack, moto_url, emulator, records[pdf], "RecognizePdf")


def test_error_and_not_exist_are_recorded(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a task the API fails, and an id it never issued
    failing = submit(emulator, "RecognizeLabel", "label.png")
    emulator.inject(failing, "error", times=-1)
    unknown = "0b0b0b0b-0000-4000-8000-000000000000"
    # When
    handler.lambda_handler(eventbridge_event({"taskId": failing}), LambdaContext())
    handler.lambda_handler(
        eventbridge_event({"taskId": unknown, "endpoint": "RecognizePdf"}), LambdaContext()
    )
    records = run_until_done(stack, moto_url, [failing, unknown])
    # Then
    assert records[failing]["status"] == "Error" and records[failing]["errorMessages"]
    assert records[unknown]["status"] == "NotExist" and records[unknown]["attempts"] == 1


def test_expired_token_is_renewed_and_the_check_retried_once(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a warm function holding a token (from checking another task), then the API revokes it
    warm_up = submit(emulator, "RecognizeLabel", "label.png")
    handler.lambda_handler(eventbridge_event({"taskId": warm_up}), LambdaContext())
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    emulator.inject(task_id, "unauthorized")
    # When
    handler.lambda_handler(eventbridge_event({"taskId": task_id}), LambdaContext())
    records = run_until_done(stack, moto_url, [task_id])
    # Then the 401 cost one extra GET within the same check, not a failed check
    record = records[task_id]
    assert record["status"] == "Completed" and int(record["transientFailures"]) == 0
    assert emulator.checks(task_id) == int(record["attempts"]) + 1
