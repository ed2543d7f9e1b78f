"""Step Functions task token callbacks (CONTRACT.md section 9): success, failure, heartbeat.

A token Step Functions no longer accepts (the workflow timed out, was stopped, or the token is not one)
is answered with Step Functions' code, which the check's outcome logs: it never fails the task, whose
results are stored and announced as usual. Any other failure of the call is AWS's, and the record is
delivered again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ocr_poller.errors import Redeliver
from ocr_poller.limits import MAX_REASON_BYTES, capped

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

# Step Functions' limits on SendTaskFailure (characters; capping UTF-8 bytes keeps within them).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768
# The answers that say the token is over: the waiting state timed out, its execution ended, or the
# token was never one. Retrying cannot change them.
REFUSED_TOKEN_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


class StepFunctionsCallbacks:
    """Answers a workflow waiting on a task token: None when Step Functions took the answer, else its code."""

    def __init__(self, *, client: SFNClient | None = None) -> None:
        self._sfn = client or boto3.client("stepfunctions")

    def heartbeat(self, token: str) -> str | None:
        """Tell the waiting state the task is still running (resets its HeartbeatSeconds)."""
        return self._call("SendTaskHeartbeat", token, lambda: self._sfn.send_task_heartbeat(taskToken=token))

    def succeed(self, token: str, output: str) -> str | None:
        """End the waiting state successfully with `output` (a JSON document) as its result."""
        return self._call(
            "SendTaskSuccess", token, lambda: self._sfn.send_task_success(taskToken=token, output=output)
        )

    def fail(self, token: str, error: str, cause: str) -> str | None:
        """End the waiting state with `error` (e.g. `OCR.Error`) and `cause`, capped to their limits."""
        return self._call(
            "SendTaskFailure",
            token,
            lambda: self._sfn.send_task_failure(
                taskToken=token, error=capped(error, MAX_ERROR_CHARS), cause=capped(cause, MAX_CAUSE_CHARS)
            ),
        )

    def _call(self, action: str, token: str, send: Callable[[], dict[str, Any]]) -> str | None:
        try:
            send()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in REFUSED_TOKEN_CODES:
                return code
            raise Redeliver(_reason(f"{action} failed: {code} {error.get('Message', '')}", token)) from exc
        except BotoCoreError as exc:
            raise Redeliver(_reason(f"{action} failed: {exc}", token)) from exc
        return None


def _reason(text: str, token: str) -> str:
    """A failure's explanation for the logs, without the token (whoever holds it can end the workflow)."""
    return capped(text.replace(token, "<taskToken>").strip(), MAX_REASON_BYTES)
