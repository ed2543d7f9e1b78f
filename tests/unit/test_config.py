"""Settings are read once from the environment and fail fast."""

from __future__ import annotations

import pytest

from ocr_poller.config import Settings
from ocr_poller.errors import ConfigError

BASE = {"RESULTS_TABLE": "t", "RESULTS_BUCKET": "b", "POLL_QUEUE_URL": "https://sqs/q"}


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env(BASE)
    assert (
        settings.aspose_base_url,
        settings.poll_initial_delay_seconds,
        settings.poll_max_delay_seconds,
        settings.poll_deadline_seconds,
        settings.results_prefix,
        settings.default_endpoint,
        settings.poll_lag_ratio,
        settings.event_bus_name,
    ) == ("https://api.aspose.cloud", 2, 900, 86400, "results/", "RecognizeLabel", 0.25, "default")


def test_every_variable_is_read() -> None:
    env = {
        **BASE,
        "ASPOSE_BASE_URL": "http://127.0.0.1:9/",
        "ASPOSE_CREDENTIALS_SECRET": "arn:secret",
        "POLL_INITIAL_DELAY_SECONDS": "1",
        "POLL_MAX_DELAY_SECONDS": "60",
        "POLL_DEADLINE_SECONDS": "3600",
        "RESULTS_PREFIX": "ocr/",
        "DEFAULT_ENDPOINT": "RecognizePdf",
        "POLL_LAG_RATIO": "0.5",
        "EVENT_BUS_NAME": "bus",
    }
    settings = Settings.from_env(env)
    assert settings.aspose_base_url == "http://127.0.0.1:9"
    assert (settings.poll_max_delay_seconds, settings.poll_lag_ratio, settings.event_bus_name) == (
        60,
        0.5,
        "bus",
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"RESULTS_TABLE": ""}, "RESULTS_TABLE is required"),
        ({"POLL_QUEUE_URL": " "}, "POLL_QUEUE_URL is required"),
        ({"POLL_MAX_DELAY_SECONDS": "901"}, "outside"),
        ({"POLL_INITIAL_DELAY_SECONDS": "-1"}, "outside"),
        ({"POLL_INITIAL_DELAY_SECONDS": "two"}, "not an integer"),
        ({"POLL_INITIAL_DELAY_SECONDS": "30", "POLL_MAX_DELAY_SECONDS": "10"}, "must not exceed"),
        ({"POLL_LAG_RATIO": "0"}, "outside"),
        ({"POLL_LAG_RATIO": "fast"}, "not a number"),
        ({"DEFAULT_ENDPOINT": "Nope"}, "not a v5 result endpoint"),
        ({"ASPOSE_BASE_URL": "ftp://x"}, "must be an https URL"),
        ({"ASPOSE_BASE_URL": "http://api.aspose.cloud"}, "must be an https URL"),
        ({"ASPOSE_BASE_URL": "https://"}, "must be an https URL"),
        ({"RESULTS_PREFIX": "results"}, "must be empty or end with '/'"),
    ],
)
def test_bad_values_fail_fast_with_the_variable_named(override: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **override})


def test_default_endpoint_is_matched_case_insensitively() -> None:
    assert Settings.from_env({**BASE, "DEFAULT_ENDPOINT": "recognizepdf"}).default_endpoint == "RecognizePdf"


def test_repr_hides_the_client_secret() -> None:
    settings = Settings.from_env({**BASE, "ASPOSE_CLIENT_ID": "me", "ASPOSE_CLIENT_SECRET": "s3cr3t"})
    assert "s3cr3t" not in repr(settings)
