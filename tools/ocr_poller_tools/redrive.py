"""Moves the dead-letter queue back to the poll queue, except requests the function can never accept."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ocr_poller.errors import Refused
from ocr_poller.request import parse_body
from ocr_poller_tools.stackclient import StackClient, aws_errors, one_line

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

REJECT_REASON = "rejectReason"  # the message attribute the function sets on the requests it refuses
# Long enough to list a large queue once: a message already seen stays hidden until the end of the run.
HIDE_SECONDS = 300


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue and what redrive makes of it."""

    message_id: str
    task_id: str | None
    reject_reason: str | None  # the function's reason, when it refused the request
    invalid: str | None  # why the function's parser refuses the body today; None if it accepts it
    moved: bool


def redrive(
    stack: StackClient,
    *,
    dry_run: bool = False,
    include_invalid: bool = False,
    on_message: Callable[[DeadLetter], None] = lambda letter: None,
) -> list[DeadLetter]:
    """Move each dead letter to the poll queue (send, then delete) unless the function would reject it.

    Validity is decided by the function's own parser, so a request refused under older rules but valid
    now goes back; one that can never be valid stays unless `include_invalid`. Messages left behind are
    made visible again at the end. A dry run moves nothing.
    """
    dlq_url = stack.check_queue("DEAD_LETTER_QUEUE_URL")
    poll_url = stack.check_queue("POLL_QUEUE_URL")
    default_endpoint = stack.variables.get("DEFAULT_ENDPOINT") or "RecognizeLabel"
    seen: list[DeadLetter] = []
    kept: list[MessageTypeDef] = []
    ids: set[str] = set()
    try:
        while batch := _receive(stack, dlq_url):
            for message in batch:
                if message["MessageId"] in ids:  # SQS may deliver a message twice
                    continue
                ids.add(message["MessageId"])
                letter = _classify(message, default_endpoint)
                move = not dry_run and (letter.invalid is None or include_invalid)
                if move:
                    _move(stack, message, poll_url, dlq_url)
                else:
                    kept.append(message)
                letter = replace(letter, moved=move)
                seen.append(letter)
                on_message(letter)
    finally:
        _show_again(stack, dlq_url, kept)
    return seen


def _receive(stack: StackClient, dlq_url: str) -> list[MessageTypeDef]:
    with aws_errors(f"queue {dlq_url}"):
        return stack.sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=HIDE_SECONDS,
            MessageAttributeNames=["All"],
        ).get("Messages", [])


def reject_reason(message: MessageTypeDef) -> str | None:
    """The function's reason for refusing the request, when it did."""
    attributes = message.get("MessageAttributes") or {}
    return attributes[REJECT_REASON].get("StringValue") if REJECT_REASON in attributes else None


def _classify(message: MessageTypeDef, default_endpoint: str) -> DeadLetter:
    body = message.get("Body", "")
    try:
        task_id: str | None = parse_body(body, default_endpoint=default_endpoint).task_id
        invalid = None
    except Refused as exc:
        task_id, invalid = _task_id_of(body), str(exc)
    return DeadLetter(message["MessageId"], task_id, reject_reason(message), invalid, moved=False)


def _task_id_of(body: str) -> str | None:
    """The taskId an invalid body names, if any, for the listing."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        return None
    task_id = document.get("taskId") if isinstance(document, dict) else None
    return one_line(str(task_id), 80) if task_id is not None else None


def _move(stack: StackClient, message: MessageTypeDef, poll_url: str, dlq_url: str) -> None:
    """Send first, delete second: a crash between them leaves a duplicate, which the function tolerates."""
    attributes = {
        name: value for name, value in message.get("MessageAttributes", {}).items() if name != REJECT_REASON
    }
    with aws_errors(f"queue {poll_url}"):
        if attributes:
            stack.sqs.send_message(
                QueueUrl=poll_url, MessageBody=message["Body"], MessageAttributes=attributes
            )
        else:
            stack.sqs.send_message(QueueUrl=poll_url, MessageBody=message["Body"])
    with aws_errors(f"queue {dlq_url}"):
        stack.sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])


def _show_again(stack: StackClient, dlq_url: str, kept: list[MessageTypeDef]) -> None:
    """Make the messages left in the dead-letter queue visible again now, not after HIDE_SECONDS."""
    for start in range(0, len(kept), 10):
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
            for index, message in enumerate(kept[start : start + 10])
        ]
        with aws_errors(f"queue {dlq_url}"):
            stack.sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=entries)  # type: ignore[arg-type]
