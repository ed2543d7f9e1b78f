"""The Step Functions adapter: what each answer of Step Functions means for the task (CONTRACT.md 9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from ocr_poller.adapters.stepfunctions import MAX_CAUSE_CHARS, MAX_ERROR_CHARS, StepFunctionsCallbacks
from ocr_poller.errors import Redeliver

TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAf+secret-token"


def client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "SendTaskSuccess")


@dataclass
class FakeSfn:
    """Records each call; raises the scripted error, if any, on every call."""

    error: Exception | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _answer(self, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((action, kwargs))
        if self.error is not None:
            raise self.error
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("success", kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("failure", kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("heartbeat", kwargs)


def callbacks(fake: FakeSfn) -> StepFunctionsCallbacks:
    return StepFunctionsCallbacks(client=cast(Any, fake))


def test_accepted_callbacks_send_the_token_and_answer_no_refusal() -> None:
    # Given Step Functions accepting every call
    fake = FakeSfn()
    adapter = callbacks(fake)

    # When the three callbacks are sent
    answers = (
        adapter.heartbeat(TOKEN),
        adapter.succeed(TOKEN, '{"taskId":"t"}'),
        adapter.fail(TOKEN, "OCR.Error", "the image is empty"),
    )

    # Then each went out with the token and its arguments, and each was accepted
    assert answers == (None, None, None)
    assert fake.calls == [
        ("heartbeat", {"taskToken": TOKEN}),
        ("success", {"taskToken": TOKEN, "output": '{"taskId":"t"}'}),
        ("failure", {"taskToken": TOKEN, "error": "OCR.Error", "cause": "the image is empty"}),
    ]


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
@pytest.mark.parametrize("action", ["heartbeat", "succeed", "fail"])
def test_a_token_step_functions_no_longer_accepts_answers_its_code_and_logs_nothing(
    code: str, action: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given Step Functions refusing the token
    adapter = callbacks(FakeSfn(error=client_error(code, "Task Timed Out")))

    # When a callback is sent
    answer = {
        "heartbeat": lambda: adapter.heartbeat(TOKEN),
        "succeed": lambda: adapter.succeed(TOKEN, "{}"),
        "fail": lambda: adapter.fail(TOKEN, "OCR.NotExist", "unknown task"),
    }[action]()

    # Then the task does not fail: the adapter says why the token was refused, for the check's one log line
    assert answer == code
    assert caplog.records == []


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException", "Rate exceeded"),
        client_error("ServiceUnavailable"),
        client_error("AccessDeniedException", "not authorized to perform states:SendTaskSuccess"),
        client_error("InvalidOutput", "output too large"),
        EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com/"),
        ReadTimeoutError(endpoint_url="https://states.us-east-1.amazonaws.com/"),
    ],
)
def test_any_other_failure_redelivers_the_record_chained_to_its_cause(error: Exception) -> None:
    # Given Step Functions (or the way to it) failing otherwise
    adapter = callbacks(FakeSfn(error=error))

    # When the task's success is sent
    with pytest.raises(Redeliver) as raised:
        adapter.succeed(TOKEN, "{}")

    # Then the record is delivered again later, the botocore error kept as the cause
    assert raised.value.__cause__ is error
    assert str(raised.value).startswith("SendTaskSuccess failed")


def test_a_failure_never_names_the_token() -> None:
    # Given an error message that echoes the token
    adapter = callbacks(FakeSfn(error=client_error("ValidationException", f"bad value '{TOKEN}'")))

    # When a heartbeat is sent
    with pytest.raises(Redeliver) as raised:
        adapter.heartbeat(TOKEN)

    # Then the reason explains without the token, which would let a log reader end the workflow
    assert TOKEN not in str(raised.value)
    assert "ValidationException" in str(raised.value)


def test_error_and_cause_are_capped_to_step_functions_limits_in_utf8_bytes() -> None:
    # Given an error name and a cause far beyond Step Functions' limits, in multi-byte characters
    fake = FakeSfn()
    error = "OCR." + "É" * 300
    cause = "\n".join(["ошибка распознавания"] * 5000)

    # When the failure is sent
    assert callbacks(fake).fail(TOKEN, error, cause) is None

    # Then both fit, counted in UTF-8 bytes, and keep their beginning
    sent = fake.calls[0][1]
    assert len(sent["error"].encode()) <= MAX_ERROR_CHARS and sent["error"].startswith("OCR.ÉÉ")
    assert len(sent["cause"].encode()) <= MAX_CAUSE_CHARS and sent["cause"].startswith("ошибка")
    assert sent["cause"].endswith("…")


def test_a_short_error_and_cause_are_sent_as_they_are() -> None:
    # Given the contract's error name and a few messages
    fake = FakeSfn()

    # When the failure is sent
    callbacks(fake).fail(TOKEN, "OCR.NotExist", "the API does not know this task\nsecond line")

    # Then nothing is cut
    assert fake.calls[0][1]["error"] == "OCR.NotExist"
    assert fake.calls[0][1]["cause"] == "the API does not know this task\nsecond line"
