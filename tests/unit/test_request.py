"""Poll request parsing: everything invalid is refused with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocr_poller.errors import Refused
from ocr_poller.request import PollRequest, parse_body, parse_document


def test_minimal_request_takes_the_default_endpoint() -> None:
    assert parse_body('{"taskId": "abc-123"}', default_endpoint="RecognizePdf") == PollRequest(
        "abc-123", "RecognizePdf"
    )


def test_endpoint_is_matched_case_insensitively_and_normalised() -> None:
    request = parse_document({"taskId": "a", "endpoint": "recognizelabel"}, default_endpoint="RecognizePdf")
    assert request.endpoint == "RecognizeLabel"


def test_requeued_message_round_trips() -> None:
    # Given
    request = PollRequest("abc", "DjVu2PDF", for_check=8, task_token="AQCEAAAAKgAAAA...")
    # When
    parsed = parse_body(json.dumps(request.to_message()), default_endpoint="RecognizeLabel")
    # Then
    assert parsed == request


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ('"abc"', "JSON object"),
        ('{"endpoint": "RecognizeLabel"}', "taskId is missing"),
        ('{"taskId": "../x"}', "not a plain identifier"),
        ('{"taskId": "a b"}', "not a plain identifier"),
        ('{"taskId": 42}', "not a plain identifier"),
        ('{"taskId": ""}', "not a plain identifier"),
        ('{"taskId": "a", "endpoint": "RecognizeEverything"}', "not a v5 result endpoint"),
        ('{"taskId": "a", "endpoint": 3}', "not a v5 result endpoint"),
        ('{"taskId": "a", "attempt": -1}', "not a count"),
        ('{"taskId": "a", "attempt": true}', "not a count"),
        ('{"taskId": "a", "taskToken": 42}', "taskToken"),
        ('{"taskId": "a", "taskToken": ""}', "taskToken"),
        ('{"taskId": "' + "a" * 9000 + '"}', "larger than"),
    ],
)
def test_invalid_body_is_refused_with_its_reason(body: str, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        parse_body(body, default_endpoint="RecognizeLabel")


@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused(body: str) -> None:
    try:
        request = parse_body(body, default_endpoint="RecognizeLabel")
    except Refused:
        return
    assert request.task_id.replace("-", "").replace("_", "").isalnum()


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_value_parses_or_is_refused(document: object) -> None:
    try:
        parse_document(document, default_endpoint="RecognizeLabel")
    except Refused:
        pass


def test_a_failed_eventbridge_invocation_redriven_from_the_dlq_is_understood() -> None:
    # Given the record Lambda's on-failure destination writes for a failed EventBridge invocation
    wrapped = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {
            "detail-type": "OCR Task Submitted",
            "detail": {"taskId": "abc", "endpoint": "RecognizePdf"},
        },
        "responsePayload": {"errorMessage": "token request rejected: HTTP 400"},
    }
    # When
    request = parse_body(json.dumps(wrapped), default_endpoint="RecognizeLabel")
    # Then
    assert request == PollRequest("abc", "RecognizePdf")
