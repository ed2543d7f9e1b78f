"""The function on this machine, as Lambda runs it: moto's server with the template's resources, the
emulator (or the real API), the handler wired to them and fed real event shapes. `LocalStack` starts and
stops it; `LocalRun` is the demo of `ocr-poller local`; `serve` keeps the stack up for other commands."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, Any

import boto3
from ruamel.yaml.error import YAMLError

from ocr_poller.adapters.aspose import Credentials
from ocr_poller.config import Settings
from ocr_poller.errors import ConfigError
from ocr_poller.handler import lambda_handler
from ocr_poller.observability import logger as function_logger
from ocr_poller.wiring import Wiring
from ocr_poller_tools import sandbox
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.envfile import write_env_file
from ocr_poller_tools.errors import ToolError
from ocr_poller_tools.redrive import reject_reason
from ocr_poller_tools.stackclient import RUNNING, StackClient
from ocr_poller_tools.submission import SubmittingApi, submission_body

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageTypeDef

PACKAGE = resources.files("ocr_poller_tools")
PROGRESS_SECONDS = 10  # a waiting local run says so at least this often
EMULATOR_CLIENT_ID = "local"

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    function_name: str = "ocr-poller-local"
    memory_limit_in_mb: int = 1024
    timeout_seconds: int = 300
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def sqs_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source builds from received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def eventbridge_event(
    detail: dict[str, Any], *, source: str = "ocr.tasks", detail_type: str = "OCR Task Submitted"
) -> dict[str, Any]:
    """The event an EventBridge rule delivers to its Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


@dataclass
class QueueFeeder:
    """Receives a batch, invokes the handler, deletes what succeeded: Lambda's SQS event source, in small."""

    sqs: SQSClient
    queue_url: str
    handler: Handler
    region: str = "us-east-1"
    batch_size: int = 10
    on_error: Callable[[str], None] = lambda message: None
    context: Callable[[], Any] = LocalContext  # a fresh context per invocation, as Lambda passes

    def __post_init__(self) -> None:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]

    def feed_once(self, wait_seconds: int = 1) -> int:
        """Handle one batch; return how many messages it held."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        try:
            response = self.handler(sqs_event(messages, self.queue_arn, self.region), self.context())
        except Exception as exc:  # Lambda, too, takes any error as a failed invocation
            # The whole batch failed: SQS delivers it again after the queue's visibility timeout.
            self.on_error(f"the function failed on a batch of {len(messages)}: {type(exc).__name__}: {exc}")
            return len(messages)
        failed = {failure["itemIdentifier"] for failure in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    def queue_is_empty(self) -> bool:
        """No message visible, delayed or in flight."""
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)[
            "Attributes"
        ]
        return all(int(attributes.get(name) or 0) == 0 for name in names)


@contextmanager
def template_file(path: Path | None = None) -> Iterator[Path]:
    """`path`, or the template.yaml shipped in this package (in a checkout, a link to the repository's)."""
    if path is not None:
        if not path.is_file():
            raise ToolError(f"{path}: no such template")
        yield path
        return
    template = PACKAGE / "template.yaml"
    if not template.is_file():
        raise ToolError("this installation has no template.yaml; pass --template PATH")
    with resources.as_file(template) as packaged:
        yield packaged


def sample(name: str) -> bytes:
    """A sample file shipped in this package (samples/ in the repository)."""
    return (PACKAGE / "samples" / name).read_bytes()


@dataclass(frozen=True)
class ApiAccess:
    """Where the function finds the Aspose API, and with which credentials."""

    base_url: str
    credentials: Credentials


class LocalStack:
    """moto's server with the template's resources, the emulator (unless a real API is given), and the
    function's wiring for them; the stack's variables never pass through this process's environment."""

    def __init__(
        self,
        moto: sandbox.MotoServer,
        stack: sandbox.Stack,
        api: ApiAccess,
        emulator: Emulator | None,
        cleanup: ExitStack,
        log_level: str = "WARNING",
    ) -> None:
        self.moto = moto
        self.stack = stack
        self.api = api
        self.emulator = emulator
        self._cleanup = cleanup
        # Everything the other commands need to reach this stack: the env file's content.
        self.variables = {
            **sandbox.environment(
                stack,
                moto.url,
                ASPOSE_BASE_URL=api.base_url,
                ASPOSE_CLIENT_ID=api.credentials.client_id,
                ASPOSE_CLIENT_SECRET=api.credentials.client_secret,
            ),
            "COMPLETION_EVENTS_QUEUE_URL": stack.events_queue_url,
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
        # Credentials go to the function directly: the stack's secret would be read through the environment.
        self.variables.pop("ASPOSE_CREDENTIALS_SECRET", None)
        try:
            settings = Settings.from_env(self.variables)
        except ConfigError as exc:
            raise ToolError(f"the function's settings: {exc}") from exc
        session = boto3.session.Session(
            aws_access_key_id=sandbox.SANDBOX_ACCESS_KEY_ID,
            aws_secret_access_key=sandbox.SANDBOX_SECRET_ACCESS_KEY,
            region_name=stack.region,
        )
        self.wiring = Wiring.from_settings(settings, session=session, endpoint_url=moto.url)
        self.client = StackClient(self.variables, "the local stack")
        self._discard = cleanup.enter_context(open(os.devnull, "w"))  # closed with the stack

    @classmethod
    def start(
        cls,
        template: Path,
        *,
        api: ApiAccess | None = None,
        processing_seconds: float = 6.0,
        aws_port: int = 0,
        api_port: int = 0,
        log_level: str = "WARNING",
    ) -> LocalStack:
        """Start moto (port 0: any free port), create the template's resources, start the emulator."""
        with ExitStack() as cleanup:
            _check_port_free(aws_port, "--aws-port")
            moto = sandbox.start_moto_server(aws_port)
            cleanup.callback(moto.stop)
            try:
                stack = sandbox.deploy_stack(moto.url, template, name_suffix="local")
            except (sandbox.SandboxError, YAMLError, OSError, ValueError) as exc:
                raise ToolError(f"{template}: cannot build the stack: {exc}") from exc
            emulator = None
            if api is None:
                secret = secrets.token_urlsafe(16)
                try:
                    emulator = Emulator(
                        port=api_port,
                        processing_seconds=processing_seconds,
                        client_id=EMULATOR_CLIENT_ID,
                        client_secret=secret,
                        log_requests=False,
                    ).start()
                except OSError as exc:
                    raise ToolError(f"--api-port {api_port}: {exc.strerror}") from exc
                cleanup.callback(emulator.stop)
                api = ApiAccess(emulator.url, Credentials(EMULATOR_CLIENT_ID, secret))
            cleanup.callback(function_logger.setLevel, function_logger.log_level)
            function_logger.setLevel(log_level)
            local = cls(moto, stack, api, emulator, cleanup, log_level)
            local._cleanup = cleanup.pop_all()  # built whole: from now on the stack stops them
        return local

    def invoke(self, event: dict[str, Any], context: Any = None) -> Any:
        """Run the handler on one event with this stack's wiring, as Lambda would."""
        # In Lambda, CloudWatch reads the metrics Powertools prints; here they would only flood the terminal.
        with redirect_stdout(self._discard):
            return lambda_handler(event, context or self.context(), self.wiring)

    def context(self) -> LocalContext:
        """The context Lambda would pass the template's function."""
        return LocalContext(
            memory_limit_in_mb=self.stack.function_memory_mb,
            timeout_seconds=self.stack.function_timeout_seconds,
        )

    def feeder(self, on_error: Callable[[str], None] = lambda message: None) -> QueueFeeder:
        """The poll queue fed to the function, as Lambda's SQS event source does."""
        return QueueFeeder(
            self.client.sqs,
            self.stack.queue_url,
            self.invoke,
            region=self.stack.region,
            on_error=on_error,
            context=self.context,
        )

    def aspose(self) -> SubmittingApi:
        """A client of the stack's API, for submissions."""
        return SubmittingApi(self.api.base_url, lambda: self.api.credentials)

    def stop(self) -> None:
        """Stop the emulator and moto's server; everything in them is gone."""
        self._cleanup.close()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _check_port_free(port: int, option: str) -> None:
    """moto's server binds in its own thread and would hang on a taken port: ask before it tries."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ToolError(f"{option} {port}: {exc.strerror}") from exc


def serve(local: LocalStack, env_file: Path, out: IO[str]) -> int:
    """Feed the poll queue to the function until SIGINT or SIGTERM; the env file exists while it runs."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    feeder = local.feeder(on_error=lambda message: print(message, file=out, flush=True))
    written = False
    try:
        write_env_file(env_file, local.variables)
        written = True
        print(
            f"local stack ready: AWS (moto) at {local.moto.url}, Aspose API at {local.api.base_url};"
            f" variables in {env_file}; Ctrl-C or SIGTERM stops it",
            file=out,
            flush=True,
        )
        while not stopping.is_set():
            feeder.feed_once(wait_seconds=1)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if written:
            env_file.unlink(missing_ok=True)  # no file, no stack: a script never reads a stale one
    print("local stack stopped", file=out, flush=True)
    return 0


@dataclass(frozen=True)
class Tracked:
    """A task the local run follows, and how it is shown."""

    name: str
    task_id: str
    endpoint: str


@dataclass
class LocalRun:
    """The demo: submit the samples (or take a real task), feed the queue until every task ends, report."""

    local: LocalStack
    out: IO[str]
    timeout: float = 120.0
    tracked: list[Tracked] = field(default_factory=list)

    def run_samples(self) -> int:
        """The label's request on SQS, the PDF's as an EventBridge event; 0 when both end Completed."""
        api = self.local.aspose()
        label = api.submit("RecognizeLabel", submission_body("RecognizeLabel", sample("label.png")))
        pdf_body = submission_body("RecognizePdf", sample("invoice.pdf"), result_type="TextAndPdf")
        pdf = api.submit("RecognizePdf", pdf_body)
        self._print(f"submitted samples/label.png as {label} and samples/invoice.pdf as {pdf}")
        self.tracked += [
            Tracked("label.png  (SQS)", label, "RecognizeLabel"),
            Tracked("invoice.pdf (EventBridge)", pdf, "RecognizePdf"),
        ]
        self.local.client.enqueue(label, "RecognizeLabel")
        self.local.invoke(eventbridge_event({"taskId": pdf, "endpoint": "RecognizePdf"}))
        return self._finish()

    def run_task(self, task_id: str, endpoint: str) -> int:
        """Poll one task of the stack's API; 0 when it ends Completed."""
        self.tracked.append(Tracked(task_id, task_id, endpoint))
        self.local.client.enqueue(task_id, endpoint)
        return self._finish()

    def _finish(self) -> int:
        records = self._watch()
        self._report(records)
        ended = {task.task_id: records.get(task.task_id, {}).get("status") for task in self.tracked}
        failed = {task_id: status for task_id, status in ended.items() if status != "Completed"}
        if not failed:
            return 0
        if any(status is None or status in RUNNING for status in failed.values()):
            raise ToolError(f"gave up after {self.timeout:g} s with tasks still running: {sorted(failed)}")
        described = ", ".join(f"{task_id} ended {status}" for task_id, status in failed.items())
        raise ToolError(described)

    def _watch(self) -> dict[str, dict[str, Any]]:
        """Feed the queue until every task ended; print each status change, progress, and rejections."""
        feeder = self.local.feeder(on_error=self._print)
        started = last_line = time.monotonic()
        records: dict[str, dict[str, Any]] = {}
        while time.monotonic() - started < self.timeout:
            feeder.feed_once(wait_seconds=1)
            self._raise_on_dead_letters()
            for task in self.tracked:
                record = self.local.client.record(task.task_id)
                if record is None:
                    continue
                changed = records.get(task.task_id, {}).get("status") != record["status"]
                records[task.task_id] = record
                if changed:
                    last_line = self._progress(started, task.name, record)
            running = [t for t in self.tracked if records.get(t.task_id, {}).get("status") in RUNNING]
            if time.monotonic() - last_line >= PROGRESS_SECONDS:
                for task in running:
                    last_line = self._progress(started, task.name, records[task.task_id], "still")
            if len(records) == len(self.tracked) and not running and feeder.queue_is_empty():
                break
        return records

    def _raise_on_dead_letters(self) -> None:
        """A request of ours in the dead-letter queue never ends: say why now rather than at the timeout."""
        sqs = self.local.client.sqs
        messages = sqs.receive_message(
            QueueUrl=self.local.stack.dlq_url, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        for message in messages:
            reason = reject_reason(message)
            raise ToolError(
                f"the function sent the request {message['Body'][:100]} to the dead-letter queue: "
                + (reason or "its checks failed too often")
            )

    def _progress(self, started: float, name: str, record: dict[str, Any], still: str = "") -> float:
        now = time.monotonic()
        status = f"{still} {record['status']}".strip()
        failing = f"  (last failure: {record['lastError']})" if record.get("lastError") else ""
        self._print(
            f"[{now - started:6.1f}s] {name:26} {status:16} after {record['attempts']} check(s){failing}"
        )
        return now

    def _report(self, records: dict[str, dict[str, Any]]) -> None:
        s3 = self.local.client.s3
        for task in self.tracked:
            record = records.get(task.task_id)
            if record is None:
                continue
            self._print(
                f"\n{task.name}: task {task.task_id} {record['status']} after {record['attempts']} check(s)"
            )
            for message in record.get("errorMessages", []):
                self._print(f"  error: {message}")
            for result in record.get("results", []):
                location = f"s3://{result['bucket']}/{result['key']}"
                self._print(f"  {location}  {result['contentType']}  {result['size']} bytes")
                if result["contentType"].startswith("text/plain"):
                    body = s3.get_object(Bucket=result["bucket"], Key=result["key"])["Body"].read()
                    self._print("    " + body.decode("utf-8", "replace").strip().replace("\n", "\n    "))
        events = self.local.client.sqs.receive_message(
            QueueUrl=self.local.stack.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in events.get("Messages", []):
            event = json.loads(message["Body"])
            self._print(f"\nevent {event.get('detail-type')!r}: {json.dumps(event.get('detail', {}))[:200]}")

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
