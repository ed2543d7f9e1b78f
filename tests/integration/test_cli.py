"""Each error path of `ocr-poller` is one line, non-zero; status and redrive against moto's server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ocr_poller_tools.cli import main
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.localrun import eventbridge_event
from ocr_poller_tools.sandbox import Stack

from ocr_poller import handler
from tests.integration.cli_helpers import (
    OCR_POLLER,
    assert_one_line_error,
    clean_environment,
    run_cli,
    stack_env_file,
)
from tests.integration.flow import SAMPLES, drain, peek, raw_sqs_batch_event, run_until_done, submit
from tests.lambda_context import LambdaContext

pytestmark = pytest.mark.integration
LABEL = str(SAMPLES / "label.png")
UNKNOWN_TASK = "0d0d0d0d-0000-4000-8000-000000000000"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard: nothing listens there


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def env_file(tmp_path: Path, stack: Stack, moto_url: str, emulator: Emulator) -> Path:
    return stack_env_file(
        tmp_path / "stack.env",
        stack,
        moto_url,
        ASPOSE_BASE_URL=emulator.url,
        ASPOSE_CLIENT_ID="id",
        ASPOSE_CLIENT_SECRET="secret",
        POLL_INITIAL_DELAY_SECONDS="0",
    )


def completed_task(stack: Stack, moto_url: str, emulator: Emulator) -> str:
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    handler.lambda_handler(eventbridge_event({"taskId": task_id}), LambdaContext())
    run_until_done(stack, moto_url, [task_id])
    return task_id


# --- AWS itself: region, credentials, reachability, unknown resources ---------------------------------


def test_no_region_is_one_line(tmp_path: Path) -> None:
    # Given variables without any region, and no AWS profile
    env = clean_environment(
        tmp_path, RESULTS_TABLE="t", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    # When
    result = run_cli("status", UNKNOWN_TASK, env=env)
    # Then
    assert_one_line_error(result, "no AWS region", "AWS_REGION")


def test_no_credentials_is_one_line(tmp_path: Path) -> None:
    # Given a region but no credentials anywhere
    env = clean_environment(tmp_path, RESULTS_TABLE="t", AWS_REGION="us-east-1")
    # When
    result = run_cli("status", UNKNOWN_TASK, env=env)
    # Then
    assert_one_line_error(result, "no AWS credentials")


def test_unreachable_aws_fails_fast_in_one_line(tmp_path: Path) -> None:
    # Given an endpoint nothing listens on
    env = clean_environment(
        tmp_path,
        RESULTS_TABLE="t",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=CLOSED_PORT_URL,
    )
    # When
    result = run_cli("status", UNKNOWN_TASK, env=env)
    # Then
    assert_one_line_error(result, "cannot reach AWS", CLOSED_PORT_URL)


def test_unknown_table_is_one_line(env_file: Path, tmp_path: Path) -> None:
    # Given the stack's variables with a table that does not exist
    variables = env_file.read_text().replace("RESULTS_TABLE=", "RESULTS_TABLE=no-such-table-")
    wrong = tmp_path / "wrong.env"
    wrong.write_text(variables)
    # When
    result = run_cli("status", UNKNOWN_TASK, "--env-file", str(wrong), env=clean_environment(tmp_path))
    # Then
    assert_one_line_error(result, "no such table")


def test_submit_checks_the_queue_before_it_creates_a_task(env_file: Path, tmp_path: Path) -> None:
    # Given an unknown poll queue, and an API nobody could reach anyway
    variables = env_file.read_text().replace("pollqueue-", "no-such-queue-")
    variables = "\n".join(
        f"ASPOSE_BASE_URL={CLOSED_PORT_URL}" if line.startswith("ASPOSE_BASE_URL=") else line
        for line in variables.splitlines()
    )
    wrong = tmp_path / "wrong.env"
    wrong.write_text(variables)
    # When
    result = run_cli("submit", LABEL, "--env-file", str(wrong), env=clean_environment(tmp_path))
    # Then the queue is what it complains about: the API was never asked to create a task
    assert_one_line_error(result, "no such queue")
    assert result.stdout == ""


def test_submit_without_a_poll_queue_creates_no_task(env_file: Path, tmp_path: Path) -> None:
    # Given no POLL_QUEUE_URL
    variables = [line for line in env_file.read_text().splitlines() if not line.startswith("POLL_QUEUE_URL=")]
    wrong = tmp_path / "wrong.env"
    wrong.write_text("\n".join(variables))
    # When
    code = main(["submit", LABEL, "--env-file", str(wrong)])
    # Then
    assert code == 1


def test_status_of_an_id_the_poller_would_reject_says_why_at_once(tmp_path: Path) -> None:
    result = run_cli("status", "../x", "--wait", env=clean_environment(tmp_path))
    assert_one_line_error(result, "rejects", "'../x' is not a plain identifier")


def test_submit_of_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    result = run_cli("submit", str(tmp_path), env=clean_environment(tmp_path))
    assert_one_line_error(result, "a folder, not a file")


def test_missing_env_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("status", UNKNOWN_TASK, "--env-file", str(tmp_path / "absent.env"))
    assert_one_line_error(result, "absent.env: no such env file")


# --- ports, folders, pipes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["emulator", "--port", "{port}"],
        ["local", "--serve", "--env-file", "{tmp}/stack.env", "--aws-port", "{port}"],
        ["local", "--serve", "--env-file", "{tmp}/stack.env", "--api-port", "{port}"],
    ],
    ids=["emulator", "local-aws-port", "local-api-port"],
)
def test_a_port_in_use_is_one_line(args: list[str], taken_port: int, tmp_path: Path) -> None:
    # When
    result = run_cli(*(arg.format(port=taken_port, tmp=tmp_path) for arg in args), timeout=60)
    # Then
    assert_one_line_error(result, str(taken_port), "in use")
    assert not (tmp_path / "stack.env").exists()


def test_download_into_an_existing_file_is_one_line(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, env_file: Path, tmp_path: Path
) -> None:
    # Given a completed task, and a file where the download folder should be
    task_id = completed_task(stack, moto_url, emulator)
    occupied = tmp_path / "results"
    occupied.write_text("not a folder")
    # When
    result = run_cli("status", task_id, "--download", str(occupied), "--env-file", str(env_file))
    # Then
    assert_one_line_error(result, str(occupied), "not a folder")
    assert occupied.read_text() == "not a folder"


def test_a_closed_pipe_is_one_line(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, env_file: Path, tmp_path: Path
) -> None:
    # Given a record to print, and an output pipe whose reader has already gone (`status … | head`)
    task_id = completed_task(stack, moto_url, emulator)
    reader, writer = os.pipe()
    os.close(reader)
    # When
    try:
        result = subprocess.run(
            [OCR_POLLER, "status", task_id, "--env-file", str(env_file)],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=clean_environment(tmp_path),
        )
    finally:
        os.close(writer)
    # Then
    assert_one_line_error(result, "output was closed")


# --- status: numbers, --wait, --download, exit statuses -------------------------------------------------


def test_status_prints_numbers_as_numbers_and_downloads_per_task(
    stack: Stack, moto_url: str, emulator: Emulator, poller_env: None, env_file: Path, tmp_path: Path
) -> None:
    # Given a completed task
    task_id = completed_task(stack, moto_url, emulator)
    # When
    result = run_cli(
        "status", task_id, "--download", str(tmp_path / "out"), "--env-file", str(env_file),
        env=clean_environment(tmp_path),
    )  # fmt: skip
    # Then
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "Completed"
    assert type(record["attempts"]) is int and type(record["firstCheckEpoch"]) is float
    assert type(record["results"][0]["size"]) is int
    assert (tmp_path / "out" / task_id / "0-text.txt").read_text() == "ACME FREIGHT\nPARCEL 4711"


def test_status_wait_ends_non_zero_for_a_failed_task(
    emulator: Emulator, poller_env: None, env_file: Path, stack: Stack, moto_url: str, tmp_path: Path
) -> None:
    # Given a task the API ends in Error, its chain driven to the end
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    emulator.inject(task_id, "error", times=-1, message="Image is too dark")
    handler.lambda_handler(eventbridge_event({"taskId": task_id}), LambdaContext())
    run_until_done(stack, moto_url, [task_id])
    # When
    result = run_cli(
        "status", task_id, "--wait", "--env-file", str(env_file), env=clean_environment(tmp_path)
    )
    # Then
    assert json.loads(result.stdout)["status"] == "Error"
    assert_one_line_error(result, f"task {task_id} ended Error: Image is too dark")


def test_status_of_a_running_task_without_wait_says_so(
    emulator: Emulator, poller_env: None, env_file: Path, tmp_path: Path
) -> None:
    # Given a task checked once (Pending)
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    handler.lambda_handler(eventbridge_event({"taskId": task_id}), LambdaContext())
    # When
    result = run_cli("status", task_id, "--env-file", str(env_file), env=clean_environment(tmp_path))
    # Then
    assert result.returncode == 3
    assert json.loads(result.stdout)["status"] == "Pending"
    assert_one_line_error(result, "still Pending")


# --- local: what it can know at once -------------------------------------------------------------------


def test_local_with_a_rejected_task_id_says_why_at_once(tmp_path: Path) -> None:
    result = run_cli("local", "--task-id", "../etc", "--timeout", "600", env=clean_environment(tmp_path))
    assert_one_line_error(result, "rejects", "'../etc' is not a plain identifier")


def test_local_with_a_task_that_does_not_exist_exits_non_zero(tmp_path: Path) -> None:
    # Given an API (the emulator) that never issued the task
    with Emulator() as api:
        env = clean_environment(
            tmp_path, ASPOSE_BASE_URL=api.url, ASPOSE_CLIENT_ID="id", ASPOSE_CLIENT_SECRET="secret"
        )
        # When
        result = run_cli("local", "--task-id", UNKNOWN_TASK, "--timeout", "60", env=env)
    # Then
    assert f"{UNKNOWN_TASK}: task {UNKNOWN_TASK} NotExist after 1 check(s)" in result.stdout
    assert_one_line_error(result, f"{UNKNOWN_TASK} ended NotExist")


def test_local_with_a_broken_template_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources: [unclosed\n")
    result = run_cli("local", "--template", str(broken), env=clean_environment(tmp_path))
    assert_one_line_error(result, f"{broken}: cannot build the stack")


def test_local_serve_needs_an_env_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("local", "--serve", env=clean_environment(tmp_path)), "--env-file")


def test_local_serve_refuses_a_folder_for_its_env_file_before_starting(tmp_path: Path) -> None:
    result = run_cli("local", "--serve", "--env-file", str(tmp_path), env=clean_environment(tmp_path))
    assert_one_line_error(result, f"{tmp_path} is a folder")
    assert "ready" not in result.stdout


# --- redrive -------------------------------------------------------------------------------------------


def test_redrive_moves_what_can_succeed_and_leaves_the_invalid(
    stack: Stack, moto_url: str, poller_env: None, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a request the function rejected (its reason beside it) and one that failed too often
    handler.lambda_handler(raw_sqs_batch_event(stack, ['{"taskId": "../x"}']), LambdaContext())
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=stack.region)
    retryable = json.dumps({"taskId": str(uuid.uuid4()), "endpoint": "RecognizePdf"})
    sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=retryable)
    capsys.readouterr()

    # When listed only
    assert main(["redrive", "--dry-run", "--env-file", str(env_file)]) == 0
    listing = capsys.readouterr().out
    # Then nothing moved, both are listed with their reasons, and both are visible again at once
    assert "would move" in listing and "left (invalid)" in listing
    assert "taskId '../x' is not a plain identifier" in listing
    assert len(peek(stack, moto_url, stack.dlq_url)) == 2
    assert peek(stack, moto_url, stack.queue_url) == []

    # When redriven
    assert main(["redrive", "--env-file", str(env_file)]) == 0
    # Then the retryable request is on the poll queue as it was, and the invalid one stays in the DLQ
    (moved,) = drain(stack, moto_url, stack.queue_url)
    assert moved["Body"] == retryable and "MessageAttributes" not in moved
    (left,) = peek(stack, moto_url, stack.dlq_url)
    assert json.loads(left["Body"]) == {"taskId": "../x"}

    # When redriven with the invalid ones
    assert main(["redrive", "--include-invalid", "--env-file", str(env_file)]) == 0
    # Then the DLQ is empty and the invalid request is back on the poll queue, without its old reason
    assert peek(stack, moto_url, stack.dlq_url) == []
    (back,) = drain(stack, moto_url, stack.queue_url)
    assert json.loads(back["Body"]) == {"taskId": "../x"} and "MessageAttributes" not in back


def test_redrive_without_a_dead_letter_queue_is_one_line(env_file: Path, tmp_path: Path) -> None:
    lines = env_file.read_text().splitlines()
    variables = [line for line in lines if not line.startswith("DEAD_LETTER_QUEUE_URL=")]
    wrong = tmp_path / "wrong.env"
    wrong.write_text("\n".join(variables))
    result = run_cli("redrive", "--env-file", str(wrong), env=clean_environment(tmp_path))
    assert_one_line_error(result, f"DEAD_LETTER_QUEUE_URL is not set in {wrong}")


# --- the command line itself ---------------------------------------------------------------------------


def test_help_shows_the_defaults() -> None:
    result = run_cli("local", "--help")
    assert result.returncode == 0
    assert "(default: 6.0)" in result.stdout and "(default: RecognizeLabel)" in result.stdout


def test_a_usage_error_is_one_line(tmp_path: Path) -> None:
    result = run_cli("status", env=clean_environment(tmp_path))
    assert result.returncode == 2
    assert_one_line_error(result, "status: the following arguments are required: TASK_ID")
