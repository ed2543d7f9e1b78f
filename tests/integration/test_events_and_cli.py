"""Completion events over moto's EventBridge, and the `ocr-poller` command against moto and the emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import urllib3
from ocr_poller_tools.cli import main
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.localrun import eventbridge_event
from ocr_poller_tools.sandbox import Stack

from ocr_poller import handler
from tests.integration.flow import (
    SAMPLES,
    completion_events,
    read_record,
    run_until_done,
    sqs_batch_event,
    submit,
)
from tests.lambda_context import LambdaContext

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def test_one_event_per_finished_task_with_its_results(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a completed label, a failed task and an unknown id
    label = submit(emulator, "RecognizeLabel", "label.png")
    failing = submit(emulator, "RecognizeLabel", "label.png")
    emulator.inject(failing, "error", times=-1, message="Image is too dark")
    unknown = "0c0c0c0c-0000-4000-8000-000000000000"
    # When
    for task_id in (label, failing, unknown):
        handler.lambda_handler(eventbridge_event({"taskId": task_id}), LambdaContext())
    records = run_until_done(stack, moto_url, [label, failing, unknown])
    # Then
    events = {event["detail"]["taskId"]: event for event in completion_events(stack, moto_url)}
    assert sorted(events) == sorted([label, failing, unknown])
    assert all(event["source"] == "ocr.poller" for event in events.values())
    assert events[label]["detail-type"] == "OCR Task Completed"
    assert events[label]["detail"]["results"] == json.loads(
        json.dumps(records[label]["results"], default=int)
    )
    assert events[failing]["detail-type"] == "OCR Task Failed"
    assert events[failing]["detail"]["errorMessages"] == ["Image is too dark"]
    assert (events[unknown]["detail-type"], events[unknown]["detail"]["status"]) == (
        "OCR Task Failed",
        "NotExist",
    )


def test_duplicate_final_messages_announce_once(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None
) -> None:
    # Given a task whose final check is delivered three times (three message ids, one body)
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    run = {"taskId": task_id, "endpoint": "RecognizeLabel"}
    handler.lambda_handler(sqs_batch_event(stack, [run]), LambdaContext())
    run_until_done(stack, moto_url, [task_id])
    record = read_record(stack, moto_url, task_id)
    assert record is not None
    last = {**run, "attempt": int(record["attempts"]) - 1, "firstCheckAt": float(record["firstCheckEpoch"])}
    # When
    response = handler.lambda_handler(sqs_batch_event(stack, [last, last, last]), LambdaContext())
    # Then
    assert response == {"batchItemFailures": []}
    assert [event["detail"]["taskId"] for event in completion_events(stack, moto_url)] == [task_id]


def run_cli(*args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [str(BIN / "ocr-poller"), *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    return result.returncode, result.stdout, result.stderr


def test_submit_sends_the_file_and_enqueues_its_poll_request(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the function's environment (credentials from the stack's secret)
    # When
    code = main(
        ["submit", str(SAMPLES / "invoice.pdf"), "--endpoint", "RecognizePdf", "--result-type", "Pdf"]
    )
    # Then
    task_id = capsys.readouterr().out.strip()
    assert code == 0 and emulator.checks(task_id) == 0
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=stack.region)
    (message,) = sqs.receive_message(QueueUrl=stack.queue_url)["Messages"]
    assert json.loads(message["Body"]) == {"taskId": task_id, "endpoint": "RecognizePdf"}


@pytest.mark.parametrize(
    ("args", "env", "error"),
    [
        (["submit", "missing.png"], {}, "missing.png: no such file"),
        (
            ["submit", str(SAMPLES / "label.png")],
            {"ASPOSE_BASE_URL": "http://127.0.0.1:9"},
            "cannot reach the API",
        ),
        (["status", "nope"], {}, "no record for task nope"),
        (["local", "--task-id", "abc"], {}, "needs ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET"),
        (["local", "--template", "nope.yaml"], {}, "nope.yaml: no such template"),
    ],
)
def test_cli_errors_are_clear(
    args: list[str],
    env: dict[str, str],
    error: str,
    poller_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # When
    code = main(args)
    # Then
    assert code == 1
    assert error in capsys.readouterr().err


def test_submit_with_rejected_credentials_says_so(
    poller_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an API that accepts only other credentials
    with Emulator(client_id="right", client_secret="right") as strict:
        monkeypatch.setenv("ASPOSE_BASE_URL", strict.url)
        monkeypatch.delenv("ASPOSE_CREDENTIALS_SECRET")
        monkeypatch.setenv("ASPOSE_CLIENT_ID", "wrong")
        monkeypatch.setenv("ASPOSE_CLIENT_SECRET", "wrong")
        # When
        code = main(["submit", str(SAMPLES / "label.png"), "--no-enqueue"])
    # Then
    assert code == 1
    assert "token request rejected: HTTP 4" in capsys.readouterr().err


def test_status_prints_the_record_and_downloads_the_results(
    stack: Stack,
    moto_url: str,
    emulator: Emulator,
    poller_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a completed task
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    handler.lambda_handler(eventbridge_event({"taskId": task_id}), LambdaContext())
    run_until_done(stack, moto_url, [task_id])
    capsys.readouterr()
    # When
    code = main(["status", task_id, "--download", str(tmp_path)])
    # Then
    assert code == 0
    assert json.loads(capsys.readouterr().out)["status"] == "Completed"
    assert (tmp_path / task_id / "0-text.txt").read_text() == "ACME FREIGHT\nPARCEL 4711"


def test_emulator_command_serves_the_api() -> None:
    # Given
    process = subprocess.Popen(
        [str(BIN / "ocr-poller"), "emulator", "--port", "0", "--processing-seconds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        # When
        description = urllib3.request("GET", f"{url}/", timeout=5).data.decode()
    finally:
        process.terminate()
        process.wait(timeout=10)
    # Then
    assert "/v5.0/ocr/" in description


def test_local_run_takes_both_samples_to_completed() -> None:
    # When the README's main job runs with a short emulated processing time
    code, out, err = run_cli("local", "--processing-seconds", "2", "--timeout", "60")
    # Then
    assert code == 0, err[-2000:]
    assert len(re.findall(r"\] .+ Completed +after \d+ check", out)) == 2
    assert "ACME FREIGHT" in out and "1-pdf.pdf" in out
    assert out.count("event 'OCR Task Completed'") == 2
