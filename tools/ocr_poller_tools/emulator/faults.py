"""Faults injected into a task's next status checks, described in Python, JSON or an HTTP header."""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast

N = TypeVar("N", int, float)

MIB = 1024 * 1024
FOREVER = -1
RESPONSE_STATUS_CODES = (
    "Ok",
    "PartiallyNotFound",
    "NoAnyResultData",
    "ResultDataLost",
    "TaskNotFound",
    "NotReady",
    "Error",
)


class FaultKind(StrEnum):
    """What goes wrong on a faulty status check."""

    LATENCY = "latency"  # answer normally after `seconds`
    UNAUTHORIZED = "unauthorized"  # 401, and every token issued so far stops working
    THROTTLE = "throttle"  # 429 with Retry-After
    SERVER_ERROR = "server-error"  # `status` (5xx)
    NOT_JSON = "not-json"  # 200 with an HTML page
    BAD_BASE64 = "bad-base64"  # Completed, the result's data is not Base64
    ERROR = "error"  # taskStatus Error with `message`
    EMPTY = "empty"  # Completed without results, responseStatusCode `code`
    LARGE = "large"  # Completed with one result of `size` bytes, streamed
    TIMEOUT = "timeout"  # hold the connection for `seconds`, then close it without an answer


_DEFAULT_SECONDS = {FaultKind.LATENCY: 1.0, FaultKind.TIMEOUT: 60.0}


class FaultError(ValueError):
    """A fault description that cannot be used; the message says why."""


@dataclass(frozen=True)
class Fault:
    """One fault and the checks it lasts; parameters its kind does not use are ignored."""

    kind: FaultKind
    times: int = 1  # status checks it lasts; FOREVER (-1) never wears off
    seconds: float | None = None  # latency: delay (default 1); timeout: how long the connection hangs (60)
    status: int = 500  # server-error: the HTTP status
    retry_after: float = 1.0  # throttle: the delay Retry-After asks for
    http_date: bool = False  # throttle: Retry-After as an HTTP date instead of delta-seconds
    code: str = "NoAnyResultData"  # empty: the responseStatusCode
    message: str = "Emulated recognition error"  # error: the error message
    size: int = 200 * MIB  # large: bytes of the one result
    result_type: str | None = None  # large, bad-base64: the result's type (default: the task's first)

    def __post_init__(self) -> None:
        checks = [
            (self.times == FOREVER or self.times >= 1, "times must be -1 (forever) or at least 1"),
            (self.seconds is None or 0 <= self.seconds < math.inf, "seconds must be 0 or more"),
            (500 <= self.status <= 599, "status must be a 5xx HTTP status"),
            (0 <= self.retry_after < math.inf, "retry_after must be 0 or more"),
            (self.code in RESPONSE_STATUS_CODES, f"code must be one of {', '.join(RESPONSE_STATUS_CODES)}"),
            (self.size >= 0, "size must be 0 or more"),
            (self.result_type is None or self.result_type != "", "result_type must not be empty"),
        ]
        for valid, reason in checks:
            if not valid:
                raise FaultError(reason)

    @property
    def delay(self) -> float:
        """Seconds of latency, or of holding the connection for a timeout."""
        return self.seconds if self.seconds is not None else _DEFAULT_SECONDS.get(self.kind, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The fault as JSON, as the emulator's debug endpoint shows it."""
        return dataclasses.asdict(self) | {"kind": str(self.kind)}


def make_fault(kind: str, **params: object) -> Fault:
    """A fault from its kind's name and parameters given as JSON values or header strings."""
    try:
        fault_kind = FaultKind(kind)
    except ValueError:
        raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(FaultKind)}") from None
    unknown = sorted(set(params) - set(_PARAMETERS))
    if unknown:
        raise FaultError(f"unknown fault parameter(s) {', '.join(unknown)}; known: {', '.join(_PARAMETERS)}")
    converted = {name: _PARAMETERS[name](name, value) for name, value in params.items()}
    return Fault(fault_kind, **cast(dict[str, Any], converted))


def fault_from_json(document: object) -> Fault:
    """A fault from `{"kind": ..., "times": ..., other parameters}`."""
    if not isinstance(document, Mapping) or not isinstance(document.get("kind"), str):
        raise FaultError('a fault is a JSON object with a string "kind"')
    params = {str(name): value for name, value in document.items() if name != "kind"}
    return make_fault(document["kind"], **params)


def parse_fault_header(value: str) -> list[Fault]:
    """Faults from an X-Emulator-Fault header: `kind[;param=value]...`, several separated by commas."""
    faults = []
    for spec in value.split(","):
        kind, *assignments = (part.strip() for part in spec.split(";"))
        params: dict[str, object] = {}
        for assignment in filter(None, assignments):
            name, equals, param = assignment.partition("=")
            if not equals:
                raise FaultError(f"fault parameter {assignment!r} is not name=value")
            params[name.strip()] = param.strip()
        faults.append(make_fault(kind, **params))
    return faults


@dataclass
class _Pending:
    fault: Fault
    left: int  # checks it still affects; FOREVER never runs out


class FaultQueue:
    """A task's pending faults: each check takes the first one, which wears off after `times` checks."""

    def __init__(self) -> None:
        self._pending: deque[_Pending] = deque()

    def add(self, fault: Fault) -> None:
        """Queue a fault behind those already pending."""
        self._pending.append(_Pending(fault, fault.times))

    def take(self) -> Fault | None:
        """The fault of this check, if any, counting it as used once."""
        if not self._pending:
            return None
        head = self._pending[0]
        if head.left != FOREVER:
            head.left -= 1
            if head.left == 0:
                self._pending.popleft()
        return head.fault

    def describe(self) -> list[dict[str, Any]]:
        """The pending faults as JSON, with the checks each still affects (-1: forever)."""
        return [pending.fault.to_dict() | {"remaining": pending.left} for pending in self._pending]


def _integer(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _from_text(name, value, int, "an integer")


def _number(name: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _from_text(name, value, float, "a number")


def _from_text(name: str, value: object, parse: Callable[[str], N], kind: str) -> N:
    """A parameter given as text (a header's `name=value`), read with `parse`."""
    if isinstance(value, str):
        try:
            return parse(value)
        except ValueError:
            pass
    raise FaultError(f"{name} must be {kind}")


def _boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise FaultError(f"{name} must be true or false")


def _text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    raise FaultError(f"{name} must be a string")


_PARAMETERS: dict[str, Callable[[str, object], object]] = {
    "times": _integer,
    "seconds": _number,
    "status": _integer,
    "retry_after": _number,
    "http_date": _boolean,
    "code": _text,
    "message": _text,
    "size": _integer,
    "result_type": _text,
}
