"""Settings parsed once from the environment (CONTRACT.md section 2)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from ocr_poller.errors import ConfigError, Refused
from ocr_poller.limits import DEFAULT_INLINE_TEXT_BYTES, INLINE_TEXT_BUDGET_BYTES
from ocr_poller.request import canonical_endpoint
from ocr_poller.schedule import SQS_MAX_DELAY_SECONDS, Backoff

N = TypeVar("N", int, float)

DEFAULT_ASPOSE_BASE_URL = "https://api.aspose.cloud"


@dataclass(frozen=True)
class Settings:
    """Everything the poller reads from its environment."""

    results_table: str
    results_bucket: str
    poll_queue_url: str
    dead_letter_queue_url: str | None = None
    aspose_base_url: str = DEFAULT_ASPOSE_BASE_URL
    aspose_credentials_secret: str | None = None
    aspose_client_id: str | None = None
    aspose_client_secret: str | None = field(default=None, repr=False)
    # The schedule's defaults are the delay policy's own.
    poll_initial_delay_seconds: int = Backoff.initial
    poll_max_delay_seconds: int = Backoff.maximum
    poll_deadline_seconds: int = 86_400  # Aspose keeps results a day
    poll_lag_ratio: float = Backoff.lag_ratio
    results_prefix: str = "results/"
    default_endpoint: str = "RecognizeLabel"
    event_bus_name: str = "default"
    record_retention_days: int = 30
    max_concurrent_checks: int = 10
    inline_text_bytes: int = DEFAULT_INLINE_TEXT_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the variables of the contract; raise ConfigError on the first bad one."""
        env = os.environ if env is None else env
        settings = cls(
            results_table=_required(env, "RESULTS_TABLE"),
            results_bucket=_required(env, "RESULTS_BUCKET"),
            poll_queue_url=_required(env, "POLL_QUEUE_URL"),
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL") or None,
            aspose_base_url=env.get("ASPOSE_BASE_URL", cls.aspose_base_url).rstrip("/"),
            aspose_credentials_secret=env.get("ASPOSE_CREDENTIALS_SECRET") or None,
            aspose_client_id=env.get("ASPOSE_CLIENT_ID") or None,
            aspose_client_secret=env.get("ASPOSE_CLIENT_SECRET") or None,
            poll_initial_delay_seconds=_integer(
                env, "POLL_INITIAL_DELAY_SECONDS", cls.poll_initial_delay_seconds, 0, SQS_MAX_DELAY_SECONDS
            ),
            poll_max_delay_seconds=_integer(
                env, "POLL_MAX_DELAY_SECONDS", cls.poll_max_delay_seconds, 1, SQS_MAX_DELAY_SECONDS
            ),
            poll_deadline_seconds=_integer(
                env, "POLL_DEADLINE_SECONDS", cls.poll_deadline_seconds, 1, 10 * 86_400
            ),
            poll_lag_ratio=_ratio(env, "POLL_LAG_RATIO", cls.poll_lag_ratio),
            results_prefix=env.get("RESULTS_PREFIX", cls.results_prefix),
            default_endpoint=_endpoint(env.get("DEFAULT_ENDPOINT", cls.default_endpoint)),
            event_bus_name=env.get("EVENT_BUS_NAME", cls.event_bus_name),
            record_retention_days=_integer(env, "RECORD_RETENTION_DAYS", cls.record_retention_days, 1, 3650),
            max_concurrent_checks=_integer(env, "MAX_CONCURRENT_CHECKS", cls.max_concurrent_checks, 1, 64),
            # Above the budget of all inline texts together, a single text could never be kept.
            inline_text_bytes=_integer(
                env, "INLINE_TEXT_BYTES", cls.inline_text_bytes, 0, INLINE_TEXT_BUDGET_BYTES
            ),
        )
        if settings.poll_initial_delay_seconds > settings.poll_max_delay_seconds:
            raise ConfigError("POLL_INITIAL_DELAY_SECONDS must not exceed POLL_MAX_DELAY_SECONDS")
        _check_base_url(settings.aspose_base_url)
        if settings.results_prefix and not settings.results_prefix.endswith("/"):
            # A prefix that is not a folder would let result keys (and the role's grant) reach its siblings.
            raise ConfigError(f"RESULTS_PREFIX={settings.results_prefix!r} must be empty or end with '/'")
        return settings


def _endpoint(name: str) -> str:
    try:
        return canonical_endpoint(name)
    except Refused as exc:
        raise ConfigError(f"DEFAULT_ENDPOINT: {exc}") from exc


def _check_base_url(url: str) -> None:
    """https, or plain http to this machine only (the emulator): the client secret travels in the body."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(f"ASPOSE_BASE_URL={url!r} must be an https URL (http only for 127.0.0.1)")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int, "an integer")


def _ratio(env: Mapping[str, str], name: str, default: float) -> float:
    # Strictly positive: a zero ratio would check every `initial` seconds forever.
    return _number(env, name, default, 1e-6, 10.0, float, "a number")


def _number(
    env: Mapping[str, str], name: str, default: N, low: N, high: N, parse: Callable[[str], N], kind: str
) -> N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not {kind}") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low:g}..{high:g}")
    return value
