"""Step Functions task token callbacks (CONTRACT.md section 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ocr_poller.errors import Redeliver
from ocr_poller.limits import capped

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

# The token is no longer waited on: the workflow timed out, ended, or never existed.
_REFUSED = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
MAX_ERROR_CHARS = 256
MAX_CAUSE_BYTES = 32_768


class StepFunctionsCallbacks:
    """Sends heartbeats and the outcome to a workflow waiting on a task token."""

    def __init__(self, *, client: SFNClient | None = None) -> None:
        self._sfn = client or boto3.client("stepfunctions")

    def heartbeat(self, token: str) -> bool:
        """Tell the workflow the task is still being polled."""
        return self._call("SendTaskHeartbeat", lambda: self._sfn.send_task_heartbeat(taskToken=token))

    def succeed(self, token: str, output: str) -> bool:
        """Resume the workflow with the task's completion detail as its output."""
        return self._call(
            "SendTaskSuccess", lambda: self._sfn.send_task_success(taskToken=token, output=output)
        )

    def fail(self, token: str, error: str, cause: str) -> bool:
        """Fail the workflow's task with `error` (OCR.<status>) and the API's messages as the cause."""
        return self._call(
            "SendTaskFailure",
            lambda: self._sfn.send_task_failure(
                taskToken=token, error=error[:MAX_ERROR_CHARS], cause=capped(cause, MAX_CAUSE_BYTES)
            ),
        )

    @staticmethod
    def _call(operation: str, send: Callable[[], object]) -> bool:
        """True when Step Functions took the call, False when it refused the token; else Redeliver."""
        try:
            send()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _REFUSED:
                return False
            raise Redeliver(f"Step Functions {operation} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise Redeliver(f"Step Functions {operation} failed: {exc}") from exc
        return True
