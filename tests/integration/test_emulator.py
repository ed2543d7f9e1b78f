"""The Aspose.OCR Cloud v5 emulator over HTTP: driven by the official SDK, and by urllib3 for its faults."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
import wave
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aspose_ocr_cloud as sdk
import pytest
import urllib3
from aspose_ocr_cloud import rest
from aspose_ocr_cloud.models import (
    Language,
    OCRRecognizeLabelBody,
    OCRRecognizePdfBody,
    OCRResponse,
    OCRSettingsRecognizeLabel,
    OCRSettingsRecognizePdf,
    ResultType,
)
from ocr_poller_tools.emulator import (
    ENDPOINTS,
    FAULT_HEADER,
    Emulator,
    FaultError,
    UnknownTask,
    large_result,
    make_fault,
)

from ocr_poller.request import ENDPOINTS as POLLER_ENDPOINTS

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LABEL = (SAMPLES / "label.png").read_bytes()
INVOICE = (SAMPLES / "invoice.pdf").read_bytes()
LABEL_TEXT = "ACME FREIGHT\nPARCEL 4711"
CLI_CLIENT_ID = "demo-client"
CLI_CLIENT_SECRET = "s3cr3t-never-logged"
PROCESSING = 10.0
STATUS_ORDER = ["Pending", "Processing", "Completed"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the emulator as the CLI starts it, driven by the official SDK ---------------------------------------


@dataclass(frozen=True)
class Served:
    url: str
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("emulator") / "stderr.log"
    command = [sys.executable, "-m", "ocr_poller_tools.emulator", "--port", "0", "--processing-seconds", "1"]
    command += ["--client-id", CLI_CLIENT_ID, "--client-secret", CLI_CLIENT_SECRET]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        # Port 0 lets the OS pick a free port; the emulator prints its address once it is listening.
        assert process.stdout is not None
        address = process.stdout.readline().split()[-1]
        assert address.startswith("http://127.0.0.1:")
        yield Served(address, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def sdk_client(url: str) -> sdk.ApiClient:
    """An SDK client with a token; SDK 24.11 has no token flow, so its own transport fetches one."""
    configuration = sdk.Configuration(host=url)
    response = rest.RESTClientObject(configuration).request(
        "POST",
        f"{url}/connect/token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        post_params=[
            ("grant_type", "client_credentials"),
            ("client_id", CLI_CLIENT_ID),
            ("client_secret", CLI_CLIENT_SECRET),
        ],
    )
    response.read()
    assert response.status == 200
    configuration.access_token = json.loads(response.data)["access_token"]
    return sdk.ApiClient(configuration)


def poll(get: Callable[[], OCRResponse]) -> tuple[list[str], OCRResponse]:
    """Check until the task leaves Pending/Processing; the statuses seen and the last answer."""
    seen: list[str] = []
    for _ in range(200):
        answer = get()
        seen.append(answer.task_status.value)
        if seen[-1] not in ("Pending", "Processing"):
            return seen, answer
        time.sleep(0.05)  # the CLI emulator completes tasks after one second
    raise AssertionError(f"still {seen[-1]} after {len(seen)} checks")


def test_sdk_reads_the_label_text_the_png_carries(served: Served) -> None:
    # Given
    api = sdk.RecognizeLabelApi(sdk_client(served.url))
    settings = OCRSettingsRecognizeLabel(language=Language.ENGLISH, resultType=ResultType.TEXT)
    # When
    task_id = api.post_recognize_label(OCRRecognizeLabelBody(image=b64(LABEL), settings=settings))
    seen, answer = poll(lambda: api.get_recognize_label(id=task_id))
    # Then
    assert uuid.UUID(task_id).version == 4
    assert seen[0] == "Pending"
    assert seen == sorted(seen, key=STATUS_ORDER.index)
    assert (answer.id, answer.task_status, answer.response_status_code) == (task_id, "Completed", "Ok")
    assert answer.results is not None
    assert [result.type for result in answer.results] == ["Text"]
    assert base64.b64decode(answer.results[0].data).decode("utf-8") == LABEL_TEXT


def test_sdk_gets_text_and_the_searchable_pdf_of_a_pdf(served: Served) -> None:
    # Given
    api = sdk.RecognizePdfApi(sdk_client(served.url))
    settings = OCRSettingsRecognizePdf(resultType=ResultType.TEXTANDPDF)
    # When
    task_id = api.post_recognize_pdf(OCRRecognizePdfBody(image=b64(INVOICE), settings=settings))
    _, answer = poll(lambda: api.get_recognize_pdf(id=task_id))
    # Then
    assert answer.task_status == "Completed"
    assert answer.results is not None
    text, pdf = answer.results
    assert (text.type, pdf.type) == ("Text", "Pdf")
    assert base64.b64decode(text.data).decode().splitlines()[0] == "INVOICE 2024-0042"
    assert base64.b64decode(pdf.data) == INVOICE


def test_sdk_sees_not_exist_for_an_unknown_task(served: Served) -> None:
    # Given
    api = sdk.RecognizeLabelApi(sdk_client(served.url))
    unknown = str(uuid.uuid4())
    # When
    answer = api.get_recognize_label(id=unknown)
    # Then
    assert (answer.id, answer.task_status, answer.response_status_code) == (
        unknown,
        "NotExist",
        "TaskNotFound",
    )
    assert not answer.results


def test_sdk_reads_a_tasks_status_without_its_results(served: Served) -> None:
    # Given a label task, and the SDK's utilities API on the same client
    client = sdk_client(served.url)
    settings = OCRSettingsRecognizeLabel(resultType=ResultType.TEXT)
    task_id = sdk.RecognizeLabelApi(client).post_recognize_label(
        OCRRecognizeLabelBody(image=b64(LABEL), settings=settings)
    )
    utilities = sdk.UtilitiesApi(client)
    # When its status is read until it ends, and an unknown id's once
    seen, answer = poll(lambda: utilities.get_task_status(id=task_id))
    unknown = utilities.get_task_status(id=str(uuid.uuid4()))
    # Then the statuses are the result endpoint's, and no answer carries results
    assert seen[0] == "Pending" and seen == sorted(seen, key=STATUS_ORDER.index)
    assert (answer.id, answer.task_status, answer.response_status_code) == (task_id, "Completed", "Ok")
    assert answer.results is None
    assert (unknown.task_status, unknown.response_status_code, unknown.results) == (
        "NotExist",
        "TaskNotFound",
        None,
    )
    # And the result endpoint still has the results
    final = sdk.RecognizeLabelApi(client).get_recognize_label(id=task_id)
    assert final.results is not None
    assert base64.b64decode(final.results[0].data).decode("utf-8") == LABEL_TEXT


def test_sdk_without_a_token_is_unauthorized(served: Served) -> None:
    # Given
    api = sdk.RecognizeLabelApi(sdk.ApiClient(sdk.Configuration(host=served.url, access_token="made-up")))
    body = OCRRecognizeLabelBody(image=b64(LABEL), settings=OCRSettingsRecognizeLabel())
    # When
    with pytest.raises(sdk.ApiException) as raised:
        api.post_recognize_label(body)
    # Then
    assert raised.value.status == 401


def test_cli_logs_one_line_per_request_and_never_the_token_or_secret(served: Served) -> None:
    # Given
    client = sdk_client(served.url)
    token = client.configuration.access_token
    probe = str(uuid.uuid4())
    # When
    sdk.RecognizeLabelApi(client).get_recognize_label(id=probe)
    # Then
    log = served.log.read_text()
    assert f"GET /v5.0/ocr/RecognizeLabel?id={probe} 200" in log
    assert "POST /connect/token 200" in log
    assert token not in log
    assert CLI_CLIENT_SECRET not in log


# --- the emulator in-process, with a fake clock, over plain urllib3 ------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Client:
    """A raw HTTP client of the emulator."""

    http: urllib3.PoolManager
    url: str
    token: str = ""

    def fetch_token(
        self, client_id: str = "someone", client_secret: str = "anything"
    ) -> urllib3.BaseHTTPResponse:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        return self.http.request("POST", f"{self.url}/connect/token", fields=form, encode_multipart=False)

    def login(self) -> Client:
        self.token = json.loads(self.fetch_token().data)["access_token"]
        return self

    def check(
        self, task_id: str, endpoint: str = "RecognizeLabel", **options: Any
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.http.request(
            "GET", f"{self.url}/v5.0/ocr/{endpoint}?id={task_id}", headers=headers, **options
        )

    def submit(
        self, endpoint: str, body: bytes, headers: dict[str, str] | None = None
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request("POST", f"{self.url}/v5.0/ocr/{endpoint}", body=body, headers=headers)

    def statuses(self, task_id: str, count: int) -> list[int]:
        return [self.check(task_id).status for _ in range(count)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(processing_seconds=PROCESSING, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def client(emulator: Emulator) -> Client:
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))
    return Client(http, emulator.url).login()


def label_task(emulator: Emulator, **options: Any) -> str:
    return emulator.submit("RecognizeLabel", {"image": b64(LABEL)}, **options)


def completed(
    client: Client, clock: FakeClock, task_id: str, endpoint: str = "RecognizeLabel"
) -> dict[str, Any]:
    clock.now += PROCESSING
    answer: dict[str, Any] = json.loads(client.check(task_id, endpoint).data)
    assert answer["taskStatus"] == "Completed"
    return answer


def decoded(answer: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(result["type"], base64.b64decode(result["data"], validate=True)) for result in answer["results"]]


def test_the_emulator_has_every_endpoint_the_poller_knows() -> None:
    assert set(ENDPOINTS) == set(POLLER_ENDPOINTS)


def test_root_describes_the_emulator(client: Client) -> None:
    # When
    response = client.http.request("GET", f"{client.url}/")
    # Then
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert all(endpoint in response.data.decode() for endpoint in ENDPOINTS)


def test_a_task_is_pending_then_processing_then_completed_as_the_clock_runs(
    emulator: Emulator, clock: FakeClock, client: Client
) -> None:
    # Given
    task_id = label_task(emulator)
    answers = []
    # When
    for elapsed in (0.0, 0.4 * PROCESSING, 0.6 * PROCESSING, PROCESSING):
        clock.now = 1_000.0 + elapsed
        answers.append(json.loads(client.check(task_id).data))
    # Then
    assert [(a["taskStatus"], a["responseStatusCode"]) for a in answers] == [
        ("Pending", "NotReady"),
        ("Pending", "NotReady"),
        ("Processing", "NotReady"),
        ("Completed", "Ok"),
    ]
    assert [a["results"] for a in answers[:3]] == [None, None, None]
    assert decoded(answers[3]) == [("Text", LABEL_TEXT.encode())]
    assert {a["id"] for a in answers} == {task_id}
    assert emulator.checks(task_id) == 4


def test_routes_are_case_insensitive_and_tasks_belong_to_their_endpoint(
    emulator: Emulator, client: Client
) -> None:
    # Given
    task_id = label_task(emulator)
    # When
    same = json.loads(client.check(task_id, endpoint="recognizelabel").data)
    other = json.loads(client.check(task_id, endpoint="RecognizeImage").data)
    # Then
    assert same["taskStatus"] == "Pending"
    assert (other["taskStatus"], other["responseStatusCode"]) == ("NotExist", "TaskNotFound")


def _text(data: bytes) -> None:
    assert data.decode("utf-8")


def _pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-1.4\n") and data.endswith(b"%%EOF\n")


def _hocr(data: bytes) -> None:
    assert b'class="ocr_page"' in data and b"PARCEL 4711" in data


def _json(data: bytes) -> None:
    assert isinstance(json.loads(data), dict)


def _csv(data: bytes) -> None:
    assert list(csv.reader(io.StringIO(data.decode()))) == [["ACME", "FREIGHT"], ["PARCEL", "4711"]]


def _excel(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as workbook:
        assert b"PARCEL" in workbook.read("xl/worksheets/sheet1.xml")
        assert "xl/workbook.xml" in workbook.namelist()


def _png(data: bytes) -> None:
    assert data == LABEL


def _regions(data: bytes) -> None:
    assert json.loads(data) == [[0, 0, 336, 112]]


def _wav(data: bytes) -> None:
    with wave.open(io.BytesIO(data)) as audio:
        assert audio.getnframes() > 0


VALID = {
    "Text": _text,
    "Pdf": _pdf,
    "Hocr": _hocr,
    "JSON": _json,
    "Csv": _csv,
    "Excel": _excel,
    "ImagePNG": _png,
    "Other": _regions,
    "WavFile": _wav,
}
TWO_REGIONS = [
    {"rect": {"topLeftX": 0, "topLeftY": 0, "bottomRightX": 9, "bottomRightY": 9}, "order": n} for n in (0, 1)
]


@pytest.mark.parametrize(
    ("endpoint", "body", "types"),
    [
        ("RecognizeImage", {"image": b64(LABEL)}, ["Text"]),
        (
            "RecognizeImage",
            {"image": b64(LABEL), "settings": {"resultType": "TextAndPdfAndHocr"}},
            ["Text", "Pdf", "Hocr"],
        ),
        ("RecognizeLabel", {"image": b64(LABEL), "settings": {"resultType": "Hocr"}}, ["Hocr"]),
        ("RecognizeReceipt", {"image": b64(LABEL), "settings": {"resultType": "JSON"}}, ["JSON"]),
        ("RecognizeRegions", {"image": b64(LABEL), "settings": {"regions": TWO_REGIONS}}, ["Text", "Text"]),
        ("RecognizeTable", {"image": b64(LABEL)}, ["Text"]),
        (
            "RecognizeTable",
            {"image": b64(LABEL), "settings": {"resultTypeTable": "CsvAndExcel"}},
            ["Csv", "Excel"],
        ),
        ("RecognizeAndParseInvoice", {"image": b64(LABEL), "settings": {}}, ["JSON"]),
        ("IdentifyFont", {"image": b64(LABEL)}, ["Text"]),
        ("DetectRegions", {"image": b64(LABEL)}, ["Other"]),
        ("BinarizeImage", {"image": b64(LABEL)}, ["ImagePNG"]),
        ("DeskewImage", {"image": b64(LABEL)}, ["ImagePNG"]),
        ("DewarpImage", {"image": b64(LABEL)}, ["ImagePNG"]),
        ("UpscaleImage", {"image": b64(LABEL)}, ["ImagePNG"]),
        ("DjVu2PDF", {"image": b64(LABEL), "settings": {"resultType": "Pdf"}}, ["Pdf"]),
        ("ConvertTextToSpeech", {"text": "Parcel 4711", "settings": {"resultType": "Wav"}}, ["WavFile"]),
    ],
)
def test_results_have_the_types_the_endpoint_and_settings_ask_for(
    emulator: Emulator,
    clock: FakeClock,
    client: Client,
    endpoint: str,
    body: dict[str, Any],
    types: list[str],
) -> None:
    # Given
    task_id = emulator.submit(endpoint, body)
    # When
    results = decoded(completed(client, clock, task_id, endpoint))
    # Then
    assert [kind for kind, _ in results] == types
    for kind, data in results:
        VALID[kind](data)


@pytest.mark.parametrize(
    ("result_type", "types"),
    [("Text", ["Text"]), ("Pdf", ["Pdf"]), ("Hocr", ["Hocr"]), ("PdfAndHocr", ["Pdf", "Hocr"])],
)
def test_a_pdf_is_its_own_searchable_pdf(
    emulator: Emulator, clock: FakeClock, client: Client, result_type: str, types: list[str]
) -> None:
    # Given
    task_id = emulator.submit(
        "RecognizePdf", {"image": b64(INVOICE), "settings": {"resultType": result_type}}
    )
    # When
    results = decoded(completed(client, clock, task_id, "RecognizePdf"))
    # Then
    assert [kind for kind, _ in results] == types
    assert all(data == INVOICE for kind, data in results if kind == "Pdf")


def test_a_submit_answers_the_task_id_as_plain_text(emulator: Emulator, client: Client) -> None:
    # When
    response = client.submit("RecognizeLabel", json.dumps({"image": b64(LABEL)}).encode())
    # Then
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    task_id = response.data.decode()
    assert json.loads(client.check(task_id).data)["taskStatus"] == "Pending"


@pytest.mark.parametrize(
    ("endpoint", "body", "status"),
    [
        ("RecognizeLabel", b"not json", 400),
        ("RecognizeLabel", b"[]", 400),
        ("RecognizeLabel", b"{}", 400),
        ("RecognizeLabel", b'{"image": "***"}', 400),
        (
            "RecognizeLabel",
            json.dumps({"image": b64(LABEL), "settings": {"resultType": "Word"}}).encode(),
            400,
        ),
        (
            "RecognizeTable",
            json.dumps({"image": b64(LABEL), "settings": {"resultTypeTable": "Pdf"}}).encode(),
            400,
        ),
        ("ConvertTextToSpeech", b'{"text": ""}', 400),
        ("RecognizeEverything", json.dumps({"image": b64(LABEL)}).encode(), 404),
    ],
)
def test_a_bad_submit_is_rejected(client: Client, endpoint: str, body: bytes, status: int) -> None:
    # When
    response = client.submit(endpoint, body)
    # Then
    assert response.status == status
    assert json.loads(response.data)["status"] == status


def test_checks_and_submits_without_a_live_token_are_unauthorized(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    anonymous = Client(client.http, client.url)
    forged = Client(client.http, client.url, token="forged")
    # When
    answers = [anonymous.check(task_id), forged.check(task_id), anonymous.submit("RecognizeLabel", b"{}")]
    # Then
    assert [answer.status for answer in answers] == [401, 401, 401]
    assert answers[0].headers["WWW-Authenticate"].startswith("Bearer")
    assert emulator.checks(task_id) == 2


def test_a_token_expires_after_its_lifetime(emulator: Emulator, clock: FakeClock, client: Client) -> None:
    # Given
    answer = json.loads(client.fetch_token().data)
    client.token = answer["access_token"]
    task_id = label_task(emulator)
    # When
    clock.now += answer["expires_in"]
    # Then
    assert (answer["token_type"], answer["expires_in"]) == ("Bearer", 3600)
    assert client.check(task_id).status == 401


def test_fixed_credentials_reject_any_other_client(clock: FakeClock) -> None:
    # Given
    with Emulator(client_id="the-id", client_secret="the-secret", clock=clock) as emulator:
        client = Client(urllib3.PoolManager(retries=False), emulator.url)
        # When
        wrong_secret = client.fetch_token("the-id", "guess")
        wrong_id = client.fetch_token("other", "the-secret")
        right = client.fetch_token("the-id", "the-secret")
        bad_grant = client.http.request(
            "POST", f"{emulator.url}/connect/token", fields={"grant_type": "password"}
        )
    # Then
    assert [wrong_secret.status, wrong_id.status, right.status, bad_grant.status] == [400, 400, 200, 400]
    assert json.loads(wrong_secret.data) == json.loads(wrong_id.data) == {"error": "invalid_client"}
    assert json.loads(bad_grant.data) == {"error": "unsupported_grant_type"}
    assert json.loads(right.data)["access_token"]


def test_checks_count_every_get_of_a_task_id(emulator: Emulator, client: Client) -> None:
    # Given
    task_id, untouched, unknown = label_task(emulator), label_task(emulator), str(uuid.uuid4())
    # When
    client.statuses(task_id, 3)
    client.check(unknown)
    described = json.loads(client.http.request("GET", f"{client.url}/emulator/tasks/{task_id}").data)
    # Then
    assert (emulator.checks(task_id), emulator.checks(untouched), emulator.checks(unknown)) == (3, 0, 1)
    assert described == {
        "id": task_id,
        "checks": 3,
        "endpoint": "RecognizeLabel",
        "taskStatus": "Pending",
        "faults": [],
    }


# --- faults ------------------------------------------------------------------------------------------------


def test_latency_delays_an_otherwise_normal_answer(emulator: Emulator, client: Client) -> None:
    # Given
    slow, brief = label_task(emulator), label_task(emulator)
    emulator.inject(slow, "latency", seconds=30)
    emulator.inject(brief, "latency", seconds=0.01)
    # When
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.check(slow, timeout=urllib3.Timeout(connect=5, read=0.2))
    answer = client.check(brief)
    # Then
    assert json.loads(answer.data)["taskStatus"] == "Pending"
    assert client.check(slow).status == 200


def test_timeout_holds_the_connection_then_closes_it_unanswered(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "timeout", seconds=30)
    emulator.inject(task_id, "timeout", seconds=0)
    # When
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.check(task_id, timeout=urllib3.Timeout(connect=5, read=0.2))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        client.check(task_id)
    # Then
    assert client.check(task_id).status == 200


def test_unauthorized_revokes_every_token_issued_so_far(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "unauthorized")
    # When
    first, again = client.check(task_id), client.check(task_id)
    renewed = client.login().check(task_id)
    # Then
    assert (first.status, again.status, renewed.status) == (401, 401, 200)


@pytest.mark.parametrize(("params", "expected"), [({"retry_after": 6.2}, "7"), ({}, "1")])
def test_throttle_answers_429_with_retry_after_seconds(
    emulator: Emulator, client: Client, params: dict[str, Any], expected: str
) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "throttle", **params)
    # When
    response = client.check(task_id)
    # Then
    assert (response.status, response.headers["Retry-After"]) == (429, expected)


def test_throttle_can_give_retry_after_as_an_http_date(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "throttle", retry_after=120, http_date=True)
    # When
    response = client.check(task_id)
    # Then
    assert response.status == 429
    assert response.headers["Retry-After"].endswith(" GMT")
    assert parsedate_to_datetime(response.headers["Retry-After"]).tzinfo is not None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_answers_the_status_asked_for(emulator: Emulator, client: Client, status: int) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "server-error", status=status)
    # When / Then
    assert client.statuses(task_id, 2) == [status, 200]


def test_not_json_answers_200_with_an_html_page(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "not-json")
    # When
    response = client.check(task_id)
    # Then
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        json.loads(response.data)


def test_bad_base64_completes_with_data_no_decoder_accepts(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "bad-base64")
    # When
    answer = json.loads(client.check(task_id).data)
    # Then
    assert (answer["taskStatus"], answer["responseStatusCode"]) == ("Completed", "Ok")
    [result] = answer["results"]
    assert result["type"] == "Text"
    with pytest.raises(binascii.Error):
        base64.b64decode(result["data"], validate=True)
    with pytest.raises(binascii.Error):
        base64.b64decode(result["data"])


def test_error_ends_the_task_with_the_message(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "error", message="Scanner jammed")
    # When
    answer = json.loads(client.check(task_id).data)
    # Then
    assert (answer["taskStatus"], answer["responseStatusCode"]) == ("Error", "Error")
    assert answer["error"]["messages"] == ["Scanner jammed"]


@pytest.mark.parametrize("code", ["NoAnyResultData", "ResultDataLost", "PartiallyNotFound"])
def test_empty_completes_without_results(emulator: Emulator, client: Client, code: str) -> None:
    # Given
    task_id = label_task(emulator)
    emulator.inject(task_id, "empty", code=code)
    # When
    answer = json.loads(client.check(task_id).data)
    # Then
    assert (answer["taskStatus"], answer["responseStatusCode"], answer["results"]) == ("Completed", code, [])


def test_large_streams_the_result_the_public_generator_gives(emulator: Emulator, client: Client) -> None:
    # Given
    size = 20 * 1024 * 1024 + 1  # not a multiple of 3: the last Base64 quantum is padded
    task_id = emulator.submit("RecognizePdf", {"image": b64(INVOICE), "settings": {"resultType": "Pdf"}})
    emulator.inject(task_id, "large", size=size)
    expected = hashlib.sha256()
    for chunk in large_result(size):
        expected.update(chunk)
    # When
    response = client.check(task_id, endpoint="RecognizePdf")
    # Then
    assert int(response.headers["Content-Length"]) == len(response.data)
    answer = json.loads(response.data)
    [(kind, data)] = decoded(answer)
    assert (answer["taskStatus"], kind, len(data)) == ("Completed", "Pdf", size)
    assert hashlib.sha256(data).hexdigest() == expected.hexdigest()


def test_a_fault_lasts_its_times_and_faults_apply_in_order(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(
        emulator, fault=[make_fault("throttle", times=2), make_fault("server-error", status=502)]
    )
    forever = label_task(emulator, fault=make_fault("server-error", times=-1))
    # When / Then
    assert client.statuses(task_id, 4) == [429, 429, 502, 200]
    assert client.statuses(forever, 4) == [500, 500, 500, 500]


def test_faults_can_be_injected_and_inspected_over_http(emulator: Emulator, client: Client) -> None:
    # Given
    task_id = label_task(emulator)
    faults_url = f"{client.url}/emulator/tasks/{task_id}/faults"
    # When
    injected = client.http.request(
        "POST", faults_url, json={"kind": "throttle", "times": 2, "retry_after": 3}
    )
    pending = json.loads(client.http.request("GET", f"{client.url}/emulator/tasks/{task_id}").data)["faults"]
    statuses = client.statuses(task_id, 3)
    # Then
    assert injected.status == 201
    assert [(f["kind"], f["remaining"], f["retry_after"]) for f in pending] == [("throttle", 2, 3.0)]
    assert statuses == [429, 429, 200]


def test_a_submit_header_asks_for_faults_of_the_new_task(client: Client) -> None:
    # Given
    body = json.dumps({"image": b64(LABEL)}).encode()
    header = {FAULT_HEADER: "throttle;retry_after=3, server-error;status=503;times=1"}
    # When
    task_id = client.submit("RecognizeLabel", body, headers=header).data.decode()
    # Then
    assert client.statuses(task_id, 3) == [429, 503, 200]


@pytest.mark.parametrize(
    "fault",
    [{"kind": "meteor"}, {"kind": "throttle", "retry_after": "soon"}, {"kind": "latency", "colour": 1}, {}],
)
def test_a_bad_fault_is_rejected_over_http(emulator: Emulator, client: Client, fault: dict[str, Any]) -> None:
    # Given
    task_id = label_task(emulator)
    # When
    response = client.http.request("POST", f"{client.url}/emulator/tasks/{task_id}/faults", json=fault)
    # Then
    assert response.status == 400
    assert json.loads(response.data)["error"]


def test_a_bad_fault_header_rejects_the_submit(client: Client) -> None:
    # When
    headers = {FAULT_HEADER: "throttle;retry_after"}
    response = client.submit("RecognizeLabel", json.dumps({"image": b64(LABEL)}).encode(), headers=headers)
    # Then
    assert response.status == 400


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("empty", {"code": "Fine"}),
        ("server-error", {"status": 404}),
        ("throttle", {"times": 0}),
        ("nope", {}),
    ],
)
def test_make_fault_rejects_what_it_cannot_apply(kind: str, params: dict[str, Any]) -> None:
    with pytest.raises(FaultError):
        make_fault(kind, **params)


def test_faults_need_a_known_task(emulator: Emulator, client: Client) -> None:
    # Given
    unknown = str(uuid.uuid4())
    # When
    response = client.http.request(
        "POST", f"{client.url}/emulator/tasks/{unknown}/faults", json={"kind": "empty"}
    )
    # Then
    assert response.status == 404
    with pytest.raises(UnknownTask):
        emulator.inject(unknown, "empty")
