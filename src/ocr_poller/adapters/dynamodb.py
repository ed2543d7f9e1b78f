"""Task records in DynamoDB (CONTRACT.md section 5): one item per task, written once per check."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ocr_poller.model import Status, StoredResult, TaskRecord

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
        "attempts": record.attempts,
        "firstCheckAt": _iso(record.first_check_at),
        "lastCheckAt": _iso(record.last_check_at),
        "firstCheckEpoch": Decimal(str(record.first_check_at)),
        "lastCheckEpoch": Decimal(str(record.last_check_at)),
        "committedBy": record.committed_by,
        "transientFailures": record.transient_failures,
        "announced": record.announced,
        # DynamoDB's TTL removes the record this long after its last check.
        "expiresAt": int(record.last_check_at) + retention_days * 86_400,
    }
    if record.status.is_final:
        item["results"] = [result.to_dict() for result in record.results]
    optional: dict[str, Any] = {
        "errorMessages": list(record.error_messages),
        "warnings": list(record.warnings),
        "responseStatusCode": record.response_status_code,
        "lastError": record.last_error,
        "retryAfter": None if record.retry_after is None else Decimal(str(record.retry_after)),
    }
    item.update({name: value for name, value in optional.items() if value})
    return item


def from_item(item: dict[str, Any]) -> TaskRecord:
    """The record read back from the item's plain values."""
    return TaskRecord(
        task_id=item["taskId"],
        endpoint=item["endpoint"],
        status=Status(item["status"]),
        attempts=int(item["attempts"]),
        first_check_at=float(item["firstCheckEpoch"]),
        last_check_at=float(item["lastCheckEpoch"]),
        committed_by=item["committedBy"],
        results=tuple(
            StoredResult(
                type=result["type"],
                bucket=result["bucket"],
                key=result["key"],
                content_type=result["contentType"],
                size=int(result["size"]),
                sha256=result["sha256"],
            )
            for result in item.get("results", [])
        ),
        error_messages=tuple(item.get("errorMessages", [])),
        warnings=tuple(item.get("warnings", [])),
        response_status_code=item.get("responseStatusCode"),
        last_error=item.get("lastError"),
        transient_failures=int(item.get("transientFailures", 0)),
        retry_after=float(item["retryAfter"]) if "retryAfter" in item else None,
        announced=bool(item.get("announced", False)),
    )


class DynamoRecords:
    """Reads and conditionally writes task records."""

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
        response = self._dynamodb.get_item(TableName=self._table, Key=_key(task_id), ConsistentRead=True)
        if "Item" not in response:
            return None
        return {name: _deserializer.deserialize(value) for name, value in response["Item"].items()}

    def commit(self, record: TaskRecord, *, previous_attempts: int) -> bool:
        """Write the record of a check unless another delivery already made it (False then)."""
        item = to_item(record, retention_days=self._retention_days)
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={name: _serializer.serialize(value) for name, value in item.items()},
                ConditionExpression="attribute_not_exists(taskId) OR attempts = :previous",
                ExpressionAttributeValues={":previous": {"N": str(previous_attempts)}},
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_announced(self, task_id: str, attempts: int) -> None:
        """Note that check `attempts` sent its successor or its event, so a redelivery sends neither again."""
        # A later check may already have replaced the record; its own effects are not this check's to mark.
        with suppress(self._dynamodb.exceptions.ConditionalCheckFailedException):
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(task_id),
                UpdateExpression="SET announced = :true",
                ConditionExpression="attempts = :attempts",
                ExpressionAttributeValues={":true": {"BOOL": True}, ":attempts": {"N": str(attempts)}},
            )


def _key(task_id: str) -> dict[str, Any]:
    return {"taskId": {"S": task_id}}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
