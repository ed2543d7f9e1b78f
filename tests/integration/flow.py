"""Shared by the integration tests: submit to the emulator, drive the poll queue, read what is left."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.localrun import QueueFeeder, sqs_event
from ocr_poller_tools.sandbox import Stack
from ocr_poller_tools.submission import SubmittingApi, submission_body

from ocr_poller import handler
from ocr_poller.adapters.aspose import Credentials
from tests.lambda_context import LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

VISIBILITY_TIMEOUT_SECONDS = 1800  # the poll queue's, as in template.yaml
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
EVENTS = Path(__file__).resolve().parents[2] / "events"


def submit(emulator: Emulator, endpoint: str, sample: str, result_type: str | None = None) -> str:
    api = SubmittingApi(emulator.url, lambda: Credentials("id", "secret"))
    return api.submit(
        endpoint, submission_body(endpoint, (SAMPLES / sample).read_bytes(), result_type=result_type)
    )


def submit_label_and_pdf(stack: Stack, emulator: Emulator) -> tuple[str, str, dict[str, Any]]:
    """A label (a Text result) and a PDF (Text and Pdf) submitted; their ids and their poll requests in
    one SQS batch."""
    label = submit(emulator, "RecognizeLabel", "label.png")
    pdf = submit(emulator, "RecognizePdf", "invoice.pdf", result_type="TextAndPdf")
    requests = [{"taskId": label, "endpoint": "RecognizeLabel"}, {"taskId": pdf, "endpoint": "RecognizePdf"}]
    return label, pdf, sqs_batch_event(stack, requests)


def run_until_done(stack: Stack, endpoint_url: str, task_ids: list[str], limit: float = 30) -> dict[str, Any]:
    """Feed the poll queue to the handler until every task has a final record and the queue is empty."""
    feeder = poll_queue_feeder(stack, endpoint_url)
    started = time.monotonic()
    while time.monotonic() - started < limit:
        feeder.feed_once(wait_seconds=0)
        records = {task_id: read_record(stack, endpoint_url, task_id) for task_id in task_ids}
        finished = all(r and r["status"] not in ("Pending", "Processing") for r in records.values())
        if finished and feeder.queue_is_empty():
            return records
        time.sleep(0.1)
    raise AssertionError(f"tasks not finished in {limit} s: {records}")


def poll_queue_feeder(stack: Stack, endpoint_url: str) -> QueueFeeder:
    """The poll queue fed to the handler as Lambda's event source does."""
    return QueueFeeder(sqs(stack, endpoint_url), stack.queue_url, handler.lambda_handler, region=stack.region)


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


def sqs_batch_event(
    stack: Stack, requests: list[dict[str, Any]], message_ids: list[str] | None = None
) -> dict[str, Any]:
    """The sample SQS batch from events/, with our requests as the bodies (message ids msg-0, msg-1, …)."""
    return raw_sqs_batch_event(stack, [json.dumps(request) for request in requests], message_ids)


def raw_sqs_batch_event(
    stack: Stack, bodies: list[str], message_ids: list[str] | None = None
) -> dict[str, Any]:
    """The sample SQS batch from events/ with these bodies, as they are."""
    event: dict[str, Any] = json.loads((EVENTS / "sqs_batch.json").read_text())
    template = event["Records"][0]
    ids = message_ids or [f"msg-{i}" for i in range(len(bodies))]
    event["Records"] = [
        {**template, "messageId": message_id, "body": body}
        for message_id, body in zip(ids, bodies, strict=True)
    ]
    return event


def sqs(stack: Stack, endpoint_url: str) -> SQSClient:
    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=stack.region)


def handle(event: dict[str, Any]) -> Any:
    """Invoke the handler as Lambda does, with a fresh context."""
    return handler.lambda_handler(event, LambdaContext())


def handle_later(monkeypatch: pytest.MonkeyPatch, event: dict[str, Any]) -> Any:
    """Invoke the handler as SQS's redelivery of a failed message would: after the visibility timeout."""
    clock = handler.real_wiring().collaborators.clock
    rewire(monkeypatch, clock=lambda: clock() + VISIBILITY_TIMEOUT_SECONDS)
    return handle(event)


def redeliver(stack: Stack, endpoint_url: str, messages: list[MessageTypeDef]) -> Any:
    """Hand messages received from the poll queue to the handler (again), as the SQS event source does."""
    arn = sqs(stack, endpoint_url).get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])
    return handle(sqs_event(messages, arn["Attributes"]["QueueArn"], stack.region))


def peek(stack: Stack, endpoint_url: str, queue_url: str) -> list[MessageTypeDef]:
    """The visible messages of a queue, left on it (received with no visibility timeout)."""
    return (
        sqs(stack, endpoint_url)
        .receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        .get("Messages", [])
    )


def drain(stack: Stack, endpoint_url: str, queue_url: str) -> list[MessageTypeDef]:
    """Every visible message of a queue, deleted from it."""
    client = sqs(stack, endpoint_url)
    drained: list[MessageTypeDef] = []
    while batch := client.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
        drained += batch
    return drained


def queue_counts(stack: Stack, endpoint_url: str) -> tuple[int, int]:
    """Messages of the poll queue visible now, and delayed."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    attributes = sqs(stack, endpoint_url).get_queue_attributes(
        QueueUrl=stack.queue_url,
        AttributeNames=names,  # type: ignore[arg-type]
    )["Attributes"]
    visible, delayed = (int(attributes[name]) for name in names)
    return visible, delayed


def completion_events(stack: Stack, endpoint_url: str) -> list[dict[str, Any]]:
    """The events the poller put on the stack's bus so far (consumed)."""
    return [json.loads(message["Body"]) for message in drain(stack, endpoint_url, stack.events_queue_url)]


def result_keys(stack: Stack, endpoint_url: str, task_id: str) -> list[str]:
    """Keys of the objects under the task's prefix in the results bucket."""
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=stack.region)
    listing = s3.list_objects_v2(Bucket=stack.bucket_name, Prefix=f"results/{task_id}/")
    return sorted(item["Key"] for item in listing.get("Contents", []))


def rewire(monkeypatch: pytest.MonkeyPatch, **adapters: object) -> None:
    """Have the handler use its real collaborators except these (e.g. wrapped to crash), for this test."""
    real = handler.real_wiring()
    rewired = replace(real, collaborators=replace(real.collaborators, **adapters))
    monkeypatch.setattr(handler, "real_wiring", lambda: rewired)
