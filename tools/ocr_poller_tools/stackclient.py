"""What the commands do with a deployed or local stack, found through its variables: AWS clients that fail
fast, task records with plain numbers, poll requests, downloads. Every AWS failure becomes a ToolError."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from ocr_poller_tools.errors import ToolError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# A command talks to AWS a handful of times; a wrong endpoint should fail in seconds, not minutes.
CLI_AWS_CONFIG = Config(connect_timeout=2, read_timeout=20, retries={"mode": "standard", "max_attempts": 2})
RUNNING = ("Pending", "Processing")

_NOT_FOUND = {
    "ResourceNotFoundException": "no such table",
    "AWS.SimpleQueueService.NonExistentQueue": "no such queue",
    "QueueDoesNotExist": "no such queue",
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such object",
}
_REFUSED = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "AccessDenied"}
_deserializer = TypeDeserializer()


class StackClient:
    """The stack named by `variables` (the function's own names: RESULTS_TABLE, POLL_QUEUE_URL, …)."""

    def __init__(self, variables: Mapping[str, str], source: str = "the environment") -> None:
        self.variables = variables
        self.source = source  # where the variables come from, for messages

    def required(self, name: str) -> str:
        """A variable the command cannot do without."""
        value = self.variables.get(name, "").strip()
        if not value:
            raise ToolError(f"{name} is not set in {self.source}")
        return value

    @cached_property
    def session(self) -> boto3.session.Session:
        """A session from the variables, checked to have a region and credentials."""
        env = self.variables
        with aws_errors("AWS"):
            session = boto3.session.Session(
                aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
                region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
                profile_name=env.get("AWS_PROFILE") or None,
            )
            if session.region_name is None:
                raise ToolError(
                    f"no AWS region: set AWS_REGION in {self.source} (or a region in your profile)"
                )
            if session.get_credentials() is None:
                raise ToolError(
                    f"no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in {self.source},"
                    " or AWS_PROFILE"
                )
        return session

    @property
    def endpoint_url(self) -> str | None:
        return self.variables.get("AWS_ENDPOINT_URL") or None

    @cached_property
    def sqs(self) -> SQSClient:
        return self.session.client("sqs", endpoint_url=self.endpoint_url, config=CLI_AWS_CONFIG)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self.session.client("dynamodb", endpoint_url=self.endpoint_url, config=CLI_AWS_CONFIG)

    @cached_property
    def s3(self) -> S3Client:
        return self.session.client("s3", endpoint_url=self.endpoint_url, config=CLI_AWS_CONFIG)

    @cached_property
    def secrets(self) -> SecretsManagerClient:
        return self.session.client("secretsmanager", endpoint_url=self.endpoint_url, config=CLI_AWS_CONFIG)

    # --- the poll queue -----------------------------------------------------------------------------

    def check_queue(self, name: str = "POLL_QUEUE_URL") -> str:
        """The queue's URL, once AWS has confirmed the queue exists and these credentials reach it."""
        url = self.required(name)
        with aws_errors(f"queue {url}"):
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url

    def enqueue(self, task_id: str, endpoint: str) -> None:
        """Put the task's poll request on the poll queue."""
        url = self.required("POLL_QUEUE_URL")
        body = json.dumps({"taskId": task_id, "endpoint": endpoint})
        with aws_errors(f"queue {url}"):
            self.sqs.send_message(QueueUrl=url, MessageBody=body)

    # --- task records and results -------------------------------------------------------------------

    def record(self, task_id: str) -> dict[str, Any] | None:
        """The task's record, numbers as int or float; None before its first check."""
        table = self.required("RESULTS_TABLE")
        with aws_errors(f"table {table}"):
            item = self.dynamodb.get_item(
                TableName=table, Key={"taskId": {"S": task_id}}, ConsistentRead=True
            ).get("Item")
        if item is None:
            return None
        return {name: plain(_deserializer.deserialize(value)) for name, value in item.items()}

    def wait(
        self,
        task_id: str,
        *,
        interval: float = 1.0,
        timeout: float = 0.0,
        on_change: Callable[[dict[str, Any] | None], None] = lambda record: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any] | None:
        """Read the record until the task ends (or `timeout` seconds pass, 0: no limit); the last one read."""
        started = time.monotonic()
        last: dict[str, Any] | None = None
        seen: object = object()  # nothing read yet: the first reading is reported, record or not
        while True:
            last = self.record(task_id)
            state = None if last is None else (last["status"], last.get("attempts"))
            if state != seen:
                seen = state
                on_change(last)
            if last is not None and last["status"] not in RUNNING:
                return last
            if timeout and time.monotonic() - started >= timeout:
                return last
            sleep(interval)

    def download(self, record: Mapping[str, Any], folder: Path) -> list[Path]:
        """Each stored result of the task into `folder`/<taskId>/, named as in S3; the paths written."""
        target = folder / record["taskId"]
        for path in (folder, target):
            if path.exists() and not path.is_dir():
                raise ToolError(f"{path} exists and is not a folder")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ToolError(f"cannot create {target}: {exc.strerror}") from exc
        written = []
        for result in record.get("results", []):
            path = target / Path(result["key"]).name
            with aws_errors(f"s3://{result['bucket']}/{result['key']}"):
                self.s3.download_file(result["bucket"], result["key"], str(path))
            written.append(path)
        return written


def plain(value: Any) -> Any:
    """DynamoDB's Decimals as int or float, inside lists and maps too (JSON prints numbers as numbers)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: plain(item) for name, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [plain(item) for item in value]
    return value


@contextmanager
def aws_errors(subject: str) -> Iterator[None]:
    """Turn botocore's errors about `subject` (a table, a queue, …) into one-line ToolErrors."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), one_line(error.get("Message", ""))
        if code in _NOT_FOUND:
            raise ToolError(f"{subject}: {_NOT_FOUND[code]} ({message or code})") from exc
        if code in _REFUSED:
            raise ToolError(f"AWS refused the credentials for {subject}: {code}: {message}") from exc
        raise ToolError(f"{subject}: {exc.operation_name} failed: {code}: {message}") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ToolError(f"no usable AWS credentials for {subject}: {one_line(str(exc))}") from exc
    except NoRegionError as exc:
        raise ToolError("no AWS region: set AWS_REGION") from exc
    except ProfileNotFound as exc:
        raise ToolError(one_line(str(exc))) from exc
    except (ConnectionError, ReadTimeoutError) as exc:  # refused, timed out, closed, unknown host
        raise ToolError(f"cannot reach AWS for {subject}: {one_line(str(exc))}") from exc
    except BotoCoreError as exc:
        raise ToolError(f"{subject}: {one_line(str(exc))}") from exc


def one_line(text: str, limit: int = 300) -> str:
    """Text fit for a one-line message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
