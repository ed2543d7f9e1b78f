"""Poll request parsing: everything invalid is refused with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocr_poller.errors import Refused
from ocr_poller.limits import MAX_TASK_TOKEN_BYTES
from ocr_poller.request import (
    MAX_BODY_BYTES,
    MAX_CHECK_HINT,
    PollRequest,
    nesting_error,
    parse_body,
    parse_document,
)


def test_minimal_request_takes_the_default_endpoint() -> None:
    assert parse_body('{"taskId": "abc-123"}', default_endpoint="RecognizePdf") == PollRequest(
        "abc-123", "RecognizePdf"
    )


def test_endpoint_is_matched_case_insensitively_and_normalised() -> None:
    request = parse_document({"taskId": "a", "endpoint": "recognizelabel"}, default_endpoint="RecognizePdf")
    assert request.endpoint == "RecognizeLabel"


@pytest.mark.parametrize("token", [None, "AQCEAAAAKgAAAAMAAAAAAAAAA+/=" * 10, "t" * MAX_TASK_TOKEN_BYTES])
def test_requeued_message_round_trips(token: str | None) -> None:
    # Given
    request = PollRequest("abc", "DjVu2PDF", for_check=8, task_token=token)
    # When
    message = request.to_message()
    parsed = parse_body(json.dumps(message), default_endpoint="RecognizeLabel")
    # Then the poller never emits a message its own validator refuses
    assert parsed == request
    assert ("taskToken" in message) == (token is not None) and "firstCheckAt" not in message


def test_the_largest_hints_the_poller_emits_still_parse() -> None:
    request = PollRequest(
        "a" * 128, "RecognizeAndParseInvoice", MAX_CHECK_HINT + 1, "t" * MAX_TASK_TOKEN_BYTES
    )
    assert parse_body(json.dumps(request.to_message()), default_endpoint="RecognizeLabel") == request


@pytest.mark.parametrize("first_check_at", [1700000000.5, "yesterday", None, [1, 2]])
def test_first_check_at_of_older_messages_is_ignored(first_check_at: object) -> None:
    body = json.dumps({"taskId": "a", "attempt": 3, "firstCheckAt": first_check_at})
    assert parse_body(body, default_endpoint="RecognizeLabel") == PollRequest("a", "RecognizeLabel", 4)


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
        ('{"taskId": "a", "attempt": 1000000001}', "not a count"),
        ('{"taskId": "a", "attempt": 2.0}', "not a count"),
        ('{"taskId": "a", "taskToken": ""}', "not a Step Functions task token"),
        ('{"taskId": "a", "taskToken": 7}', "not a Step Functions task token"),
        ('{"taskId": "a", "taskToken": "to ken"}', "not a Step Functions task token"),
        ('{"taskId": "a", "taskToken": "tok\\r\\nen"}', "not a Step Functions task token"),
        ('{"taskId": "a", "taskToken": "' + "t" * 2049 + '"}', "not a Step Functions task token"),
        ('{"taskId": "' + "a" * 9000 + '"}', "larger than"),
        ("x" * 9000, "larger than"),
        ("[" * 4000 + "]" * 4000, "not JSON"),
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


def on_failure_record(detail: object, *, error_bytes: int = 100) -> dict[str, object]:
    """What Lambda's on-failure destination writes for a failed EventBridge invocation."""
    return {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {"detail-type": "OCR Task Submitted", "source": "ocr.tasks", "detail": detail},
        "responsePayload": {"errorMessage": "x" * error_bytes, "stackTrace": ["  File ...\n"] * 50},
    }


def test_the_body_cap_applies_to_the_request_not_to_lambdas_wrapper() -> None:
    # Given a wrapper of 40 KiB (a long error and stack trace) around a small request with a task token
    detail = {"taskId": "abc", "endpoint": "RecognizePdf", "taskToken": "T" * 1024}
    body = json.dumps(on_failure_record(detail, error_bytes=40_000))
    # When
    request = parse_body(body, default_endpoint="RecognizeLabel")
    # Then
    assert len(body) > MAX_BODY_BYTES
    assert request == PollRequest("abc", "RecognizePdf", task_token="T" * 1024)


def test_a_wrapped_request_over_the_cap_is_refused() -> None:
    body = json.dumps(on_failure_record({"taskId": "abc", "padding": "x" * MAX_BODY_BYTES}))
    with pytest.raises(Refused, match="request is larger than 8192 bytes"):
        parse_body(body, default_endpoint="RecognizeLabel")


def test_a_wrapper_inside_a_wrapper_is_refused_without_recursing() -> None:
    # Given wrappers nested three thousand deep, as a decoded document (an EventBridge detail)
    document: object = {"taskId": "abc"}
    for _ in range(3000):
        document = on_failure_record(document)
    # When / Then
    with pytest.raises(Refused, match="on-failure record inside another one"):
        parse_document(document, default_endpoint="RecognizeLabel")


def test_a_detail_nested_thousands_deep_is_refused_without_recursing() -> None:
    deep: object = "x"
    for _ in range(5000):
        deep = [deep]
    assert nesting_error({"taskId": "a", "deep": deep}) == "nested deeper than 32 levels"
    with pytest.raises(Refused, match="nested deeper"):
        parse_document({"taskId": "a", "deep": deep}, default_endpoint="RecognizeLabel")


def test_an_eventbridge_detail_over_the_cap_is_refused() -> None:
    with pytest.raises(Refused, match="larger than 8192"):
        parse_document({"taskId": "a", "padding": "é" * 5000}, default_endpoint="RecognizeLabel")
