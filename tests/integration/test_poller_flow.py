"""The whole poller over HTTP: moto's server for AWS, the emulator for Aspose, the handler fed real events."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3

from ocr_poller import handler
from ocr_poller.aspose import AsposeApi, Credentials, submission_body
from ocr_poller.emulator import Emulator
from ocr_poller.localrun import LocalContext, QueueFeeder, eventbridge_event
from ocr_poller.sandbox import Stack

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
EVENTS = Path(__file__).resolve().parents[2] / "events"

pytestmark = pytest.mark.integration


def submit(emulator: Emulator, endpoint: str, sample: str, result_type: str | None = None) -> str:
    api = AsposeApi(emulator.url, lambda: Credentials("id", "secret"))
    return api.submit(
        endpoint, submission_body(endpoint, (SAMPLES / sample).read_bytes(), result_type=result_type)
    )


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


def run_until_done(stack: Stack, endpoint_url: str, task_ids: list[str], limit: float = 30) -> dict[str, Any]:
    """Feed the poll queue to the handler until every task has a final record and the queue is empty."""
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=stack.region)
    feeder = QueueFeeder(sqs, stack.queue_url, handler.lambda_handler, region=stack.region)
    started = time.monotonic()
    while time.monotonic() - started < limit:
        feeder.feed_once(wait_seconds=0)
        records = {task_id: read_record(stack, endpoint_url, task_id) for task_id in task_ids}
        finished = all(r and r["status"] not in ("Pending", "Processing") for r in records.values())
        if finished and feeder.queue_is_empty():
            return records
        time.sleep(0.1)
    raise AssertionError(f"tasks not finished in {limit} s: {records}")


def read_record(stack: Stack, endpoint_url: str, task_id: str) -> dict[str, Any] | None:
    table = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name=stack.region).Table(
        stack.table_name
    )
    item: dict[str, Any] | None = table.get_item(Key={"taskId": task_id}, ConsistentRead=True).get("Item")
    return item


def s3_body(stack: Stack, endpoint_url: str, key: str) -> bytes:
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=stack.region)
    body: bytes = s3.get_object(Bucket=stack.bucket_name, Key=key)["Body"].read()
    return body


def sqs_batch_event(stack: Stack, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample SQS batch from events/, with our task ids in the bodies."""
    event: dict[str, Any] = json.loads((EVENTS / "sqs_batch.json").read_text())
    template = event["Records"][0]
    event["Records"] = [
        {**template, "messageId": f"msg-{i}", "body": json.dumps(body)} for i, body in enumerate(bodies)
    ]
    return event


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
    label = submit(emulator, "RecognizeLabel", "label.png")
    pdf = submit(emulator, "RecognizePdf", "invoice.pdf", result_type="TextAndPdf")
    event = sqs_batch_event(
        stack, [{"taskId": label, "endpoint": "RecognizeLabel"}, {"taskId": pdf, "endpoint": "RecognizePdf"}]
    )
    # When the batch is handled, then the poll queue is fed to the handler until both end
    response = handler.lambda_handler(event, LocalContext())
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
            {**sample, "detail": {"taskId": task_id, "endpoint": endpoint}}, LocalContext()
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
    handler.lambda_handler(eventbridge_event({"taskId": failing}), LocalContext())
    handler.lambda_handler(eventbridge_event({"taskId": unknown, "endpoint": "RecognizePdf"}), LocalContext())
    records = run_until_done(stack, moto_url, [failing, unknown])
    # Then
    assert records[failing]["status"] == "Error" and records[failing]["errorMessages"]
    assert records[unknown]["status"] == "NotExist" and records[unknown]["attempts"] == 1


def test_expired_token_is_renewed_and_the_check_retried_once(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a warm function holding a token (from checking another task), then the API revokes it
    warm_up = submit(emulator, "RecognizeLabel", "label.png")
    handler.lambda_handler(eventbridge_event({"taskId": warm_up}), LocalContext())
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    emulator.inject(task_id, "unauthorized")
    # When
    handler.lambda_handler(eventbridge_event({"taskId": task_id}), LocalContext())
    records = run_until_done(stack, moto_url, [task_id])
    # Then the 401 cost one extra GET within the same check, not a failed check
    record = records[task_id]
    assert record["status"] == "Completed" and int(record["transientFailures"]) == 0
    assert emulator.checks(task_id) == int(record["attempts"]) + 1
