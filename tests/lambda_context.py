"""The Lambda context object the handler and Powertools read, for tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    function_name: str = "ocr-poller-test"
    memory_limit_in_mb: int = 1024
    timeout_seconds: int = 300
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
