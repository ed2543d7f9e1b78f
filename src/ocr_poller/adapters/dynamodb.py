"""Task records in DynamoDB (CONTRACT.md section 5): one item per task, written once per check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ocr_poller.errors import Redeliver
from ocr_poller.model import Stage, Status, StoredResult, TaskRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(record: TaskRecord, *, retention_days: int) -> dict[str, Any]:
    """The item's attributes, plain Python values (Decimal for numbers)."""
    item: dict[str, Any] = {
        "taskId": record.task_id,
        "endpoint": record.endpoint,
        "status": record.status.value,
        "attempts": record.check_number,
        "firstCheckAt": _iso(record.first_check_at),
        "lastCheckAt": _iso(record.last_check_at),
        "firstCheckEpoch": _number(record.first_check_at),
        "lastCheckEpoch": _number(record.last_check_at),
        "committedBy": record.committed_by,
        "stage": record.stage.value,
        "leaseExpiresAt": _number(record.lease_expires_at),
        "transientFailures": record.transient_failures,
        # DynamoDB's TTL removes the record this long after its last check.
        "expiresAt": int(record.last_check_at) + retention_days * 86_400,
    }
    if record.status.is_final:
        item["results"] = [result.to_dict() for result in record.results]
    optional: dict[str, Any] = {
        "taskToken": record.task_token,
        "errorMessages": list(record.error_messages),
        "warnings": list(record.warnings),
        "responseStatusCode": record.response_status_code,
        "lastError": record.last_error,
        "retryAfter": None if record.retry_after is None else _number(record.retry_after),
    }
    item.update({name: value for name, value in optional.items() if value})
    return item


def from_item(item: dict[str, Any]) -> TaskRecord:
    """The record read back from the item's plain values."""
    return TaskRecord(
        task_id=item["taskId"],
        endpoint=item["endpoint"],
        status=Status(item["status"]),
        check_number=int(item["attempts"]),
        first_check_at=float(item["firstCheckEpoch"]),
        last_check_at=float(item["lastCheckEpoch"]),
        committed_by=item["committedBy"],
        stage=Stage(item["stage"]),
        lease_expires_at=float(item["leaseExpiresAt"]),
        task_token=item.get("taskToken"),
        results=tuple(_result(result) for result in item.get("results", [])),
        error_messages=tuple(item.get("errorMessages", [])),
        warnings=tuple(item.get("warnings", [])),
        response_status_code=item.get("responseStatusCode"),
        last_error=item.get("lastError"),
        transient_failures=int(item.get("transientFailures", 0)),
        retry_after=float(item["retryAfter"]) if "retryAfter" in item else None,
    )


def _result(entry: dict[str, Any]) -> StoredResult:
    return StoredResult(
        type=entry["type"],
        bucket=entry["bucket"],
        key=entry["key"],
        content_type=entry["contentType"],
        size=int(entry["size"]),
        sha256=entry["sha256"],
        text=entry.get("text"),
        text_truncated=bool(entry.get("textTruncated", False)),
    )


class DynamoRecords:
    """Reads and conditionally writes task records; DynamoDB's failures become `Redeliver`."""

    def __init__(self, table: str, *, retention_days: int = 30, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._retention_days = retention_days
        self._dynamodb = client or boto3.client("dynamodb")

    def get(self, task_id: str) -> TaskRecord | None:
        """The task's record, read consistently, or None before its first check."""
        item = self.item(task_id)
        return None if item is None else from_item(item)

    def item(self, task_id: str) -> dict[str, Any] | None:
        """The task's item as plain values (Decimal numbers), read consistently."""
        with _translated("GetItem"):
            response = self._dynamodb.get_item(TableName=self._table, Key=_key(task_id), ConsistentRead=True)
        if "Item" not in response:
            return None
        return {name: _deserializer.deserialize(value) for name, value in response["Item"].items()}

    def commit(self, record: TaskRecord) -> bool:
        """Write the record of a check unless another delivery already made it (False then)."""
        item = to_item(record, retention_days=self._retention_days)
        return self._conditionally(
            "PutItem",
            lambda: self._dynamodb.put_item(
                TableName=self._table,
                Item={name: _serializer.serialize(value) for name, value in item.items()},
                # Check 1 finds no record (no record holds attempts = 0); check n finds check n - 1.
                ConditionExpression="attribute_not_exists(taskId) OR attempts = :previous",
                ExpressionAttributeValues={":previous": {"N": str(record.check_number - 1)}},
            ),
        )

    def claim(self, record: TaskRecord, *, now: float) -> bool:
        """Take over the effects of a check whose lease ran out (False if the record moved meanwhile)."""
        return self._update(
            record,
            "SET leaseExpiresAt = :lease, committedBy = :by",
            "stage = :sending AND leaseExpiresAt <= :now",
            {
                ":lease": {"N": str(_number(record.lease_expires_at))},
                ":by": {"S": record.committed_by},
                ":sending": {"S": Stage.SENDING.value},
                ":now": {"N": str(_number(now))},
            },
        )

    def mark_sent(self, record: TaskRecord) -> None:
        """Note that the final check's callback and event went out, so no later delivery sends them again."""
        self._update(record, "SET stage = :sent", None, {":sent": {"S": Stage.SENT.value}})

    def release(self, record: TaskRecord) -> None:
        """Give up the lease on a check whose effects failed, so that the next delivery may claim them."""
        self._update(
            record,
            "SET leaseExpiresAt = :zero",
            "stage = :sending AND committedBy = :by",
            {":zero": {"N": "0"}, ":sending": {"S": Stage.SENDING.value}, ":by": {"S": record.committed_by}},
        )

    def _update(self, record: TaskRecord, update: str, condition: str | None, values: dict[str, Any]) -> bool:
        """Update the record if it still holds the same check (and `condition`): False otherwise."""
        same_check = "attempts = :check"
        return self._conditionally(
            "UpdateItem",
            lambda: self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(record.task_id),
                UpdateExpression=update,
                ConditionExpression=f"{same_check} AND {condition}" if condition else same_check,
                ExpressionAttributeValues={":check": {"N": str(record.check_number)}, **values},
            ),
        )

    def _conditionally(self, operation: str, write: Callable[[], object]) -> bool:
        """Run a conditional write: False when its condition failed."""
        with _translated(operation):
            try:
                write()
            except self._dynamodb.exceptions.ConditionalCheckFailedException:
                return False
        return True


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """DynamoDB's failures as the poller's: the record fails and SQS delivers it again."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise Redeliver(f"DynamoDB {operation} failed: {exc}") from exc


def _key(task_id: str) -> dict[str, Any]:
    return {"taskId": {"S": task_id}}


def _number(value: float) -> Decimal:
    return Decimal(str(value))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
