"""The template's parameters repeat the code's defaults: this keeps the copies equal to the one source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocr_poller_tools.sandbox import load_template

from ocr_poller.config import Settings

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"
REQUIRED = {"RESULTS_TABLE": "t", "RESULTS_BUCKET": "b", "POLL_QUEUE_URL": "https://sqs/q"}


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("ASPOSE_BASE_URL", "aspose_base_url"),
        ("POLL_INITIAL_DELAY_SECONDS", "poll_initial_delay_seconds"),
        ("POLL_MAX_DELAY_SECONDS", "poll_max_delay_seconds"),
        ("POLL_DEADLINE_SECONDS", "poll_deadline_seconds"),
        ("POLL_LAG_RATIO", "poll_lag_ratio"),
        ("RESULTS_PREFIX", "results_prefix"),
        ("DEFAULT_ENDPOINT", "default_endpoint"),
        ("EVENT_BUS_NAME", "event_bus_name"),
        ("RECORD_RETENTION_DAYS", "record_retention_days"),
        ("INLINE_TEXT_BYTES", "inline_text_bytes"),
    ],
)
def test_each_parameter_default_is_the_codes(variable: str, attribute: str) -> None:
    # Given the parameter behind a variable of the function, and the code's default for that variable
    template: dict[str, Any] = load_template(TEMPLATE_PATH)
    function = next(
        resource
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    )
    parameter = template["Parameters"][function["Properties"]["Environment"]["Variables"][variable]["Ref"]]
    code_default = getattr(Settings.from_env(REQUIRED), attribute)
    # When the parameter's default is read as the function would read it
    from_template = getattr(Settings.from_env({**REQUIRED, variable: str(parameter["Default"])}), attribute)
    # Then the two agree
    assert from_template == code_default
