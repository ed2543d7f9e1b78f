"""The few kinds of failure, and what happens next for each: the function's retry rules in one place.

kind            raised for                                          what happens next
--------------  --------------------------------------------------  ------------------------------------
RetryLater      no usable answer this time: 429, 5xx, timeout,      the check is recorded as a transient
                refused connection, a body that is not the          failure; the next check is queued
                documented JSON, a bad token answer, a check that   with back-off (429: Retry-After)
                ran out of the invocation's time
UnusableAnswer  an answer that can never yield the task's results   the task ends `Error` with the reason
                (data that is not Base64, too many results)
Redeliver       AWS refused or failed a call; the credentials were  the record fails: SQS redelivers it
                refused; another live copy of the message is        after the visibility timeout, and
                sending the check's effects                         the DLQ takes it after 5 receives
Refused         a request that can never be valid                   dead-letter queue with the reason
ConfigError     the function's environment is wrong                 the invocation fails until fixed

Adapters translate their library's errors into these at their edge; the domain never sees botocore's
or urllib3's exceptions.
"""

from __future__ import annotations


class PollerError(Exception):
    """Base of the poller's own errors."""


class RetryLater(PollerError):
    """No usable answer this time: record the failure and check again after a back-off."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class UnusableAnswer(PollerError):
    """The answer can never yield the task's results: the task ends `Error`."""


class Redeliver(PollerError):
    """Fail this record so SQS delivers it again later; nothing it did needs undoing."""


class Refused(PollerError):
    """A request that must never reach the API; the message says why."""


class ConfigError(PollerError):
    """The function's environment is missing a variable or holds a bad value."""
