"""deploy_stack builds in moto's server, over HTTP, what template.yaml declares."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from ocr_poller_tools.sandbox import (
    COMPLETION_EVENT_SOURCE,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    MotoServer,
    Stack,
    deploy_stack,
    load_template,
)

pytestmark = pytest.mark.integration

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"
TEMPLATE = load_template(TEMPLATE_PATH)
TASK_ID = "c4b60313-4f78-45f8-b708-069eb98dc22e"


def _properties(logical_id: str) -> Any:
    return TEMPLATE["Resources"][logical_id]["Properties"]


def _put_event(stack: Stack, source: str, detail_type: str) -> None:
    answer = boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.event_bus_name,
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps({"taskId": TASK_ID, "status": "Completed"}),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0


@pytest.mark.usefixtures("aws_env")
def test_poll_queue_has_the_templates_redrive_policy_and_timeouts(stack: Stack) -> None:
    # Given a deployed stack
    sqs = boto3.client("sqs")
    dlq = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["QueueArn"])["Attributes"]

    # When the poll queue's attributes are read
    attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]

    # Then they are the template's, with the redrive pointing at the stack's dead-letter queue
    template_queue = _properties("PollQueue")
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": template_queue["RedrivePolicy"]["maxReceiveCount"],
    }
    assert attributes["VisibilityTimeout"] == str(template_queue["VisibilityTimeout"])
    assert attributes["SqsManagedSseEnabled"] == "true"


@pytest.mark.usefixtures("aws_env")
def test_dead_letter_queue_keeps_messages_as_long_as_the_template_says(stack: Stack) -> None:
    # Given a deployed stack
    sqs = boto3.client("sqs")

    # When the dead-letter queue's retention is read
    answer = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["MessageRetentionPeriod"])

    # Then it is the template's
    expected = str(_properties("DeadLetterQueue")["MessageRetentionPeriod"])
    assert answer["Attributes"]["MessageRetentionPeriod"] == expected


@pytest.mark.usefixtures("aws_env")
def test_table_has_the_templates_key_and_time_to_live(stack: Stack) -> None:
    # Given a deployed stack
    dynamodb = boto3.client("dynamodb")

    # When the table is described
    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]

    # Then its key and TTL are the template's
    template_table = _properties("ResultsTable")
    assert table["KeySchema"] == template_table["KeySchema"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": template_table["TimeToLiveSpecification"]["AttributeName"],
    }


@pytest.mark.usefixtures("aws_env")
def test_bucket_blocks_public_access_and_encrypts(stack: Stack) -> None:
    # Given a deployed stack
    s3 = boto3.client("s3")

    # When the bucket's settings are read
    public_access = s3.get_public_access_block(Bucket=stack.bucket_name)["PublicAccessBlockConfiguration"]
    (rule,) = s3.get_bucket_encryption(Bucket=stack.bucket_name)["ServerSideEncryptionConfiguration"]["Rules"]

    # Then they are the template's
    template_bucket = _properties("ResultsBucket")
    (template_rule,) = template_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert public_access == template_bucket["PublicAccessBlockConfiguration"]
    assert rule.get("ApplyServerSideEncryptionByDefault") == template_rule["ServerSideEncryptionByDefault"]


@pytest.mark.usefixtures("aws_env")
def test_completion_events_on_the_bus_arrive_in_the_events_queue(stack: Stack) -> None:
    # Given a deployed stack
    sqs = boto3.client("sqs")

    # When a completion event is put on its bus
    _put_event(stack, COMPLETION_EVENT_SOURCE, "OCR Task Completed")

    # Then EventBridge delivers it to the events queue
    answer = sqs.receive_message(QueueUrl=stack.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    (message,) = answer["Messages"]
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == (COMPLETION_EVENT_SOURCE, "OCR Task Completed")
    assert event["detail"]["taskId"] == TASK_ID


@pytest.mark.usefixtures("aws_env")
def test_events_from_other_sources_are_not_forwarded(stack: Stack) -> None:
    # Given a deployed stack
    sqs = boto3.client("sqs")

    # When a trigger event, not a completion event, is put on its bus
    _put_event(stack, "ocr.tasks", "OCR Task Submitted")

    # Then the events queue stays empty
    answer = sqs.receive_message(QueueUrl=stack.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert answer.get("Messages", []) == []


@pytest.mark.usefixtures("aws_env")
def test_stacks_on_one_server_do_not_see_each_others_events(moto_server: MotoServer, stack: Stack) -> None:
    # Given a second stack on the same server
    other = deploy_stack(moto_server.url, TEMPLATE_PATH, name_suffix=uuid.uuid4().hex[:12])
    sqs = boto3.client("sqs")

    # When a completion event is put on the first stack's bus
    _put_event(stack, COMPLETION_EVENT_SOURCE, "OCR Task Completed")

    # Then the second stack's events queue does not receive it
    answer = sqs.receive_message(QueueUrl=other.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert answer.get("Messages", []) == []


def test_aws_env_points_default_clients_at_the_stack(aws_env: dict[str, str], stack: Stack) -> None:
    # Given the function's environment set for the stack
    # When clients are built the way the handler builds them, with no explicit endpoint or credentials
    table = boto3.client("dynamodb").describe_table(TableName=aws_env["RESULTS_TABLE"])["Table"]
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=aws_env["ASPOSE_CREDENTIALS_SECRET"])

    # Then they reach the stack's table and its credentials secret in moto
    assert table.get("TableName") == stack.table_name
    assert json.loads(secret["SecretString"]) == {
        "clientId": SANDBOX_CLIENT_ID,
        "clientSecret": SANDBOX_CLIENT_SECRET,
    }


def test_the_stack_knows_the_templates_memory_and_timeout_for_the_context_of_local_invocations(
    stack: Stack,
) -> None:
    # Given the template's function
    function = _properties("PollerFunction")
    # Then the stack carries what Lambda's context would say of it
    assert (stack.function_memory_mb, stack.function_timeout_seconds) == (
        function["MemorySize"],
        function["Timeout"],
    )
