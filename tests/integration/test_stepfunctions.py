"""Step Functions workflows waiting on the poller through a task token, run by moto's interpreter.

moto's server executes state machines once configured to (`POST /moto-api/config`); its interpreter
calls SQS and EventBridge on `localhost:$MOTO_PORT`, so the workflow's `sendMessage.waitForTaskToken`
puts a real message on the stack's poll queue. Only the handler, fed that queue as Lambda's event source
would, ends each execution (CONTRACT.md section 9).
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import urllib3
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.localrun import eventbridge_event
from ocr_poller_tools.sandbox import Stack, load_template

from ocr_poller import handler
from ocr_poller.adapters.stepfunctions import REFUSED_TOKEN_CODES
from ocr_poller.observability import logger
from tests.integration.flow import (
    completion_events,
    drain,
    peek,
    result_keys,
    run_until_done,
    s3_body,
    sqs,
    submit,
)
from tests.lambda_context import LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
ROLE_ARN = "arn:aws:iam::123456789012:role/ocr-workflow"


def configure_moto(moto_url: str, *, execute: bool) -> None:
    response = urllib3.PoolManager().request(
        "POST",
        f"{moto_url}/moto-api/config",
        body=json.dumps({"stepfunctions": {"execute_state_machine": execute}}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status in (200, 201), response.data


@pytest.fixture
def sfn(moto_url: str, poller_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SFNClient]:
    """Step Functions on moto's server, executing state machines; its interpreter reaches the same server."""
    monkeypatch.setenv("MOTO_PORT", moto_url.rsplit(":", 1)[1])
    configure_moto(moto_url, execute=True)
    yield boto3.client("stepfunctions", endpoint_url=moto_url)
    configure_moto(moto_url, execute=False)


def readme_machine(resource: str) -> dict[str, Any]:
    """The README's state machine whose wait state uses `resource`, exactly as a user would copy it."""
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    machines = [json.loads(block) for block in blocks if '"StartAt"' in block]
    (machine,) = [m for m in machines if m["States"]["WaitForOcr"]["Resource"] == resource]
    return machine


def wait_on_poll_queue(stack: Stack, **wait_state: Any) -> dict[str, Any]:
    """The README's workflow that waits on the poll queue, pointed at this stack; None drops a field."""
    machine = readme_machine("arn:aws:states:::sqs:sendMessage.waitForTaskToken")
    state = machine["States"]["WaitForOcr"]
    state["Parameters"]["QueueUrl"] = stack.queue_url
    state.update(wait_state)
    machine["States"]["WaitForOcr"] = {name: value for name, value in state.items() if value is not None}
    return machine


def create(sfn: SFNClient, definition: dict[str, Any]) -> str:
    """A new state machine; moto parses its definition, which takes seconds the first time."""
    return sfn.create_state_machine(
        name=f"ocr-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]


def start(sfn: SFNClient, machine_arn: str, task_id: str, endpoint: str = "RecognizeLabel") -> str:
    """An execution waiting for the task; its ARN."""
    execution = sfn.start_execution(
        stateMachineArn=machine_arn, input=json.dumps({"taskId": task_id, "endpoint": endpoint})
    )
    return execution["executionArn"]


def finished(sfn: SFNClient, execution_arn: str, limit: float = 30) -> DescribeExecutionOutputTypeDef:
    """The execution once it has left RUNNING."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution still running after {limit} s")


def await_message(stack: Stack, endpoint_url: str, limit: float = 30) -> dict[str, Any]:
    """The body of the first message the workflow put on the poll queue, left there."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        messages = peek(stack, endpoint_url, stack.queue_url)
        if messages:
            body: dict[str, Any] = json.loads(messages[0]["Body"])
            return body
        time.sleep(0.1)
    raise AssertionError("the workflow sent no message to the poll queue")


def task_result(sfn: SFNClient, execution_arn: str) -> Any:
    """What the waiting state received: the output of its TaskSucceeded event."""
    history = sfn.get_execution_history(executionArn=execution_arn)["events"]
    (succeeded,) = [event for event in history if event["type"] == "TaskSucceeded"]
    return json.loads(succeeded["taskSucceededEventDetails"]["output"])


def label_text(stack: Stack, endpoint_url: str, record: dict[str, Any]) -> str:
    """The label's text as S3 holds it."""
    (result,) = record["results"]
    return s3_body(stack, endpoint_url, result["key"]).decode("utf-8")


def test_a_completed_task_ends_the_workflow_with_the_event_detail_as_output(
    stack: Stack, moto_url: str, emulator: Emulator, sfn: SFNClient
) -> None:
    # Given a label submitted to Aspose and a workflow waiting for it on the poll queue
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    execution_arn = start(sfn, create(sfn, wait_on_poll_queue(stack)), task_id)
    assert "taskToken" in await_message(stack, moto_url)

    # When the poll queue is fed to the handler until the task ends, its log at INFO
    logger.setLevel("INFO")
    record = run_until_done(stack, moto_url, [task_id])[task_id]

    # Then the workflow succeeded with the completion event's detail: S3 locations and the label's text
    execution = finished(sfn, execution_arn)
    assert execution["status"] == "SUCCEEDED", execution.get("error")
    (event,) = completion_events(stack, moto_url)
    assert task_result(sfn, execution_arn) == event["detail"]
    output = json.loads(execution["output"])
    assert output == {"taskId": task_id, "results": event["detail"]["results"]}
    text = label_text(stack, moto_url, record)
    assert "ACME FREIGHT" in text
    assert [(r["bucket"], r["key"], r["text"]) for r in output["results"]] == [
        (stack.bucket_name, record["results"][0]["key"], text)
    ]
    # and the record holds the text too, the object exists, no request is left
    assert record["status"] == "Completed" and record["results"][0]["text"] == text
    assert result_keys(stack, moto_url, task_id) == [record["results"][0]["key"]]
    assert drain(stack, moto_url, stack.dlq_url) == []


@pytest.mark.parametrize(
    ("failure", "error", "status"),
    [("error", "OCR.Error", "Error"), ("unknown-id", "OCR.NotExist", "NotExist")],
)
def test_a_failed_task_fails_the_workflow_with_the_ocr_error(
    stack: Stack, moto_url: str, emulator: Emulator, sfn: SFNClient, failure: str, error: str, status: str
) -> None:
    # Given a task that ends in Error (the emulator's fault) or that Aspose does not know, and a workflow
    if failure == "error":
        task_id = submit(emulator, "RecognizeLabel", "label.png")
        answer = urllib3.PoolManager().request(
            "POST", f"{emulator.url}/emulator/tasks/{task_id}/faults", json={"kind": "error"}
        )
        assert answer.status in (200, 201, 204), answer.data
    else:
        task_id = str(uuid.uuid4())
    execution_arn = start(sfn, create(sfn, wait_on_poll_queue(stack)), task_id)
    await_message(stack, moto_url)

    # When the poll queue is fed to the handler until the task ends, its log at INFO
    logger.setLevel("INFO")
    record = run_until_done(stack, moto_url, [task_id])[task_id]

    # Then the workflow failed with OCR.<status>, and the task ended as usual: record and one event
    execution = finished(sfn, execution_arn)
    # (moto's server drops SendTaskFailure's cause; the unit tests check what is sent as it)
    assert (execution["status"], execution.get("error")) == ("FAILED", error)
    assert record["status"] == status and record["errorMessages"]
    (event,) = completion_events(stack, moto_url)
    assert (event["detail-type"], event["detail"]["status"]) == ("OCR Task Failed", status)
    assert result_keys(stack, moto_url, task_id) == []


def test_heartbeats_keep_a_long_task_alive_past_heartbeat_seconds(
    stack: Stack, moto_url: str, sfn: SFNClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a workflow whose waiting state fails when it hears nothing for 6 s, a label that takes 15 s,
    # checks one to two seconds apart, and a warm function (its clients built, as in a warm container)
    machine = create(sfn, wait_on_poll_queue(stack, HeartbeatSeconds=6))
    with Emulator(processing_seconds=15.0, log_requests=False) as slow:
        monkeypatch.setenv("ASPOSE_BASE_URL", slow.url)
        monkeypatch.setenv("POLL_INITIAL_DELAY_SECONDS", "2")
        handler.real_wiring()
        task_id = submit(slow, "RecognizeLabel", "label.png")
        execution_arn = start(sfn, machine, task_id)
        await_message(stack, moto_url)

        # When the poll queue is fed to the handler until the task ends
        started = time.monotonic()
        record = run_until_done(stack, moto_url, [task_id])[task_id]
        took = time.monotonic() - started

    # Then the running checks' heartbeats carried the workflow past HeartbeatSeconds to the task's end
    assert took > 6 and int(record["attempts"]) >= 2
    execution = finished(sfn, execution_arn)
    assert execution["status"] == "SUCCEEDED", execution.get("error")
    assert json.loads(execution["output"])["results"][0]["text"] == label_text(stack, moto_url, record)


@pytest.mark.parametrize("token", ["timed-out", "bogus"])
def test_a_token_step_functions_refuses_never_fails_the_task(
    stack: Stack, moto_url: str, emulator: Emulator, sfn: SFNClient, token: str, function_log: io.StringIO
) -> None:
    # Given a poll request whose token Step Functions no longer accepts: its workflow timed out
    # before the first check, or it was never a token
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    if token == "timed-out":
        machine = create(sfn, wait_on_poll_queue(stack, HeartbeatSeconds=None, TimeoutSeconds=1))
        execution_arn = start(sfn, machine, task_id)
        await_message(stack, moto_url)
        execution = finished(sfn, execution_arn)
        assert (execution["status"], execution.get("error")) == ("FAILED", "States.Timeout")
    else:
        body = {"taskId": task_id, "endpoint": "RecognizeLabel", "taskToken": "not-a-token"}
        sqs(stack, moto_url).send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(body))

    # When the poll queue is fed to the handler until the task ends
    record = run_until_done(stack, moto_url, [task_id])[task_id]

    # Then the task completed as if no workflow waited: record with text, object, event, nothing retried
    assert record["status"] == "Completed"
    text = label_text(stack, moto_url, record)
    assert record["results"][0]["text"] == text
    assert result_keys(stack, moto_url, task_id) == [record["results"][0]["key"]]
    (event,) = completion_events(stack, moto_url)
    assert event["detail"]["status"] == "Completed" and event["detail"]["results"][0]["text"] == text
    assert drain(stack, moto_url, stack.dlq_url) == []
    # And the log says so once, on the task's line, with Step Functions' code and never the token
    lines = [json.loads(line) for line in function_log.getvalue().splitlines()]
    refusals = [line for line in lines if "refused the task token" in json.dumps(line)]
    assert [(line["taskId"], line["message"]) for line in refusals] == [(task_id, "poll request finished")]
    assert refusals[0]["reason"].split(": ")[-1] in REFUSED_TOKEN_CODES
    assert "not-a-token" not in function_log.getvalue()


def test_a_workflow_can_wait_through_the_trigger_event_instead_of_the_queue(
    stack: Stack, moto_url: str, emulator: Emulator, sfn: SFNClient
) -> None:
    # Given the template's trigger (source and detail-type) routed from the stack's bus to a queue that
    # stands in for the function's EventBridge target
    parameters = load_template(TEMPLATE_PATH)["Parameters"]
    source, detail_type = (parameters[name]["Default"] for name in ("TriggerSource", "TriggerDetailType"))
    events = boto3.client("events", endpoint_url=moto_url)
    target_url = sqs(stack, moto_url).create_queue(QueueName=f"trigger-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    target_arn = sqs(stack, moto_url).get_queue_attributes(QueueUrl=target_url, AttributeNames=["QueueArn"])
    rule = f"trigger-{uuid.uuid4().hex[:12]}"
    events.put_rule(
        Name=rule,
        EventBusName=stack.event_bus_name,
        EventPattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
    )
    events.put_targets(
        Rule=rule,
        EventBusName=stack.event_bus_name,
        Targets=[{"Id": "function", "Arn": target_arn["Attributes"]["QueueArn"]}],
    )
    # and the README's workflow that puts the trigger event with its token and waits, on the stack's bus
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    definition = readme_machine("arn:aws:states:::events:putEvents.waitForTaskToken")
    (entry,) = definition["States"]["WaitForOcr"]["Parameters"]["Entries"]
    assert (entry["Source"], entry["DetailType"]) == (source, detail_type)
    entry["EventBusName"] = stack.event_bus_name
    execution_arn = start(sfn, create(sfn, definition), task_id)

    # When the trigger event is handed to the function as EventBridge would, then the poll queue
    started = time.monotonic()
    while not (delivered := drain(stack, moto_url, target_url)) and time.monotonic() - started < 30:
        time.sleep(0.1)
    (trigger,) = [json.loads(message["Body"]) for message in delivered]
    handler.lambda_handler(eventbridge_event(trigger["detail"]), LambdaContext())
    record = run_until_done(stack, moto_url, [task_id])[task_id]

    # Then the workflow succeeded with the S3 location and the label's text
    execution = finished(sfn, execution_arn)
    assert execution["status"] == "SUCCEEDED", execution.get("error")
    output = json.loads(execution["output"])
    assert output["results"][0]["key"] == record["results"][0]["key"]
    assert output["results"][0]["text"] == label_text(stack, moto_url, record)
