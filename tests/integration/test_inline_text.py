"""Decoded text where consumers look first: the record and the completion event (CONTRACT.md 5 and 7)."""

from __future__ import annotations

import pytest
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.sandbox import Stack

from ocr_poller import handler
from tests.integration.flow import (
    completion_events,
    handle,
    run_until_done,
    s3_body,
    sqs_batch_event,
    submit,
    submit_label_and_pdf,
)
from tests.lambda_context import LambdaContext

pytestmark = pytest.mark.integration


def test_a_label_and_a_pdf_carry_their_text_in_the_record_and_the_event(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a label and a PDF (Text and Pdf results) submitted and their poll requests on SQS
    label, pdf, event = submit_label_and_pdf(stack, emulator)

    # When both are polled to the end
    handle(event)
    records = run_until_done(stack, moto_url, [label, pdf])

    # Then each Text result's record entry and event entry hold the text S3 holds; the Pdf holds none
    events = {e["detail"]["taskId"]: e["detail"] for e in completion_events(stack, moto_url)}
    for task_id in (label, pdf):
        for stored, announced in zip(records[task_id]["results"], events[task_id]["results"], strict=True):
            if stored["type"] == "Text":
                text = s3_body(stack, moto_url, stored["key"]).decode("utf-8")
                assert stored["text"] == announced["text"] == text != ""
            else:
                assert "text" not in stored and "text" not in announced
            assert "textTruncated" not in stored and "textTruncated" not in announced
    assert "ACME FREIGHT" in records[label]["results"][0]["text"]


def test_a_text_over_inline_text_bytes_stays_in_s3_only(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given INLINE_TEXT_BYTES smaller than the label's text
    monkeypatch.setenv("INLINE_TEXT_BYTES", "8")
    label = submit(emulator, "RecognizeLabel", "label.png")

    # When it is polled to the end
    handler.lambda_handler(sqs_batch_event(stack, [{"taskId": label}]), LambdaContext())
    record = run_until_done(stack, moto_url, [label])[label]

    # Then the record and the event say the text is truncated, and S3 holds it whole
    (stored,) = record["results"]
    (announced,) = completion_events(stack, moto_url)[0]["detail"]["results"]
    assert stored["textTruncated"] is True and announced["textTruncated"] is True
    assert "text" not in stored and "text" not in announced
    assert len(s3_body(stack, moto_url, stored["key"])) == int(stored["size"]) > 8
