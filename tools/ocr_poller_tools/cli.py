"""The `ocr-poller` command: the emulator, the local run, submit and status."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocr_poller.config import DEFAULT_ASPOSE_BASE_URL
from ocr_poller.request import ENDPOINTS

if TYPE_CHECKING:
    from ocr_poller.adapters.dynamodb import DynamoRecords

SAMPLES = Path(__file__).resolve().parent / "samples"
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


PROGRESS_SECONDS = 10  # a waiting local run says so at least this often
_RUNNING = ("Pending", "Processing")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except CliError as exc:
        print(f"ocr-poller: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr-poller", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    emulator = commands.add_parser("emulator", help="serve an Aspose.OCR Cloud v5 emulator on 127.0.0.1")
    emulator.add_argument("--port", type=int, default=8089, help="port on 127.0.0.1 (0: any free port)")
    emulator.add_argument(
        "--processing-seconds", type=float, default=3.0, help="time until a task is Completed"
    )
    emulator.add_argument("--client-id", help="accept only this client id (default: any)")
    emulator.add_argument("--client-secret", help="accept only this client secret (default: any)")
    emulator.set_defaults(run=_emulator)

    local = commands.add_parser(
        "local",
        help="run the poller on this machine: moto's AWS server, the emulator (or the real API), the handler",
    )
    local.add_argument("--processing-seconds", type=float, default=6.0, help="emulated task duration")
    local.add_argument("--task-id", help="poll this real task instead (needs ASPOSE_CLIENT_ID/SECRET)")
    local.add_argument("--endpoint", default="RecognizeLabel", choices=ENDPOINTS, metavar="ENDPOINT")
    local.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    local.add_argument("--template", type=Path, default=TEMPLATE)
    local.set_defaults(run=_local)

    submit = commands.add_parser("submit", help="send a file to the API and enqueue its poll request")
    submit.add_argument("file", type=Path)
    submit.add_argument("--endpoint", default="RecognizeLabel", choices=ENDPOINTS, metavar="ENDPOINT")
    submit.add_argument("--result-type", help="settings.resultType, e.g. Text, Pdf, TextAndPdf, Hocr")
    submit.add_argument("--no-enqueue", action="store_true", help="only print the task id")
    submit.set_defaults(run=_submit)

    status = commands.add_parser("status", help="show a task's record and stored results")
    status.add_argument("task_id")
    status.add_argument("--download", type=Path, metavar="DIR", help="fetch the stored results into DIR")
    status.set_defaults(run=_status)
    return parser


def _emulator(args: argparse.Namespace) -> int:
    from ocr_poller_tools.emulator import main_emulator

    main_emulator(args.port, args.processing_seconds, args.client_id, args.client_secret)
    return 0


@dataclass(frozen=True)
class _Tracked:
    name: str
    task_id: str


def _local(args: argparse.Namespace) -> int:
    """Everything on loopback: moto's server with the template's resources, the emulator, the handler."""
    import boto3

    from ocr_poller.adapters.aspose import AsposeApi, Credentials, submission_body
    from ocr_poller_tools import sandbox
    from ocr_poller_tools.localrun import LocalContext, QueueFeeder, eventbridge_event

    if not args.template.is_file():
        raise CliError(f"{args.template}: no such template (run from the repository, or pass --template)")
    if args.task_id:
        client_id, client_secret = _env_credentials()
    moto = sandbox.start_moto_server()
    stack = sandbox.deploy_stack(moto.url, args.template, name_suffix="local")
    emulator = None
    if args.task_id:
        base_url = os.environ.get("ASPOSE_BASE_URL", DEFAULT_ASPOSE_BASE_URL)
    else:
        from ocr_poller_tools.emulator import Emulator

        emulator = Emulator(processing_seconds=args.processing_seconds, log_requests=False).start()
        client_id, client_secret, base_url = "local", "local-secret", emulator.url
    os.environ.update(
        sandbox.environment(
            stack,
            moto.url,
            ASPOSE_BASE_URL=base_url,
            ASPOSE_CLIENT_ID=client_id,
            ASPOSE_CLIENT_SECRET=client_secret,
            POWERTOOLS_LOG_LEVEL=os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            POWERTOOLS_METRICS_DISABLED="true",
        )
    )
    os.environ.pop("ASPOSE_CREDENTIALS_SECRET", None)
    from ocr_poller import handler

    print(f"moto's AWS server: {moto.url}; Aspose API: {base_url}")
    sqs = boto3.client("sqs", endpoint_url=moto.url, region_name=stack.region)
    tracked: list[_Tracked] = []
    try:
        if args.task_id:
            tracked.append(_Tracked(args.endpoint, args.task_id))
            _enqueue(sqs, stack.queue_url, args.task_id, args.endpoint)
        else:
            api = AsposeApi(base_url, lambda: Credentials(client_id, client_secret))
            label = api.submit(
                "RecognizeLabel", submission_body("RecognizeLabel", (SAMPLES / "label.png").read_bytes())
            )
            pdf = api.submit(
                "RecognizePdf",
                submission_body(
                    "RecognizePdf", (SAMPLES / "invoice.pdf").read_bytes(), result_type="TextAndPdf"
                ),
            )
            tracked += [_Tracked("label.png  (SQS)", label), _Tracked("invoice.pdf (EventBridge)", pdf)]
            print(f"submitted samples/label.png as {label} and samples/invoice.pdf as {pdf}")
            _enqueue(sqs, stack.queue_url, label, "RecognizeLabel")
            handler.lambda_handler(
                eventbridge_event({"taskId": pdf, "endpoint": "RecognizePdf"}), LocalContext()
            )
        feeder = QueueFeeder(sqs, stack.queue_url, handler.lambda_handler, region=stack.region)
        records = _watch(feeder, _records(), tracked, args.timeout)
        _report(records, tracked, stack, moto.url)
    finally:
        if emulator is not None:
            emulator.stop()
        moto.stop()
    finished = len(records) == len(tracked) and all(r["status"] not in _RUNNING for r in records.values())
    return 0 if finished else 1


def _env_credentials() -> tuple[str, str]:
    client_id, client_secret = os.environ.get("ASPOSE_CLIENT_ID"), os.environ.get("ASPOSE_CLIENT_SECRET")
    if not client_id or not client_secret:
        raise CliError(
            "polling a real task needs ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET in the environment"
        )
    return client_id, client_secret


def _enqueue(sqs: Any, queue_url: str, task_id: str, endpoint: str) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"taskId": task_id, "endpoint": endpoint}))


def _watch(
    feeder: Any, table: DynamoRecords, tracked: list[_Tracked], timeout: float
) -> dict[str, dict[str, Any]]:
    """Feed the queue to the handler until every task ended; print each status change, and progress."""
    started = last_line = time.monotonic()
    records: dict[str, dict[str, Any]] = {}
    while time.monotonic() - started < timeout:
        feeder.feed_once(wait_seconds=1)
        for task in tracked:
            record = table.item(task.task_id)
            if record is None:
                continue
            changed = records.get(task.task_id, {}).get("status") != record["status"]
            records[task.task_id] = record
            if changed:
                last_line = _progress(started, task.name, record)
        running = [task for task in tracked if records.get(task.task_id, {}).get("status") in _RUNNING]
        if time.monotonic() - last_line >= PROGRESS_SECONDS:
            for task in running:
                last_line = _progress(started, task.name, records[task.task_id], "still")
        if len(records) == len(tracked) and not running and feeder.queue_is_empty():
            break
    else:
        print(f"gave up after {timeout:g} s; tasks still running are left on the queue")
    return records


def _progress(started: float, name: str, record: dict[str, Any], still: str = "") -> float:
    now = time.monotonic()
    status = f"{still} {record['status']}".strip()
    print(f"[{now - started:6.1f}s] {name:26} {status:16} after {int(record['attempts'])} check(s)")
    return now


def _records() -> DynamoRecords:
    """The task records of RESULTS_TABLE, one client for all reads."""
    from ocr_poller.adapters.dynamodb import DynamoRecords

    return DynamoRecords(os.environ["RESULTS_TABLE"])


def _report(
    records: dict[str, dict[str, Any]], tracked: list[_Tracked], stack: Any, endpoint_url: str
) -> None:
    import boto3

    s3 = boto3.client("s3")
    for task in tracked:
        record = records.get(task.task_id)
        if record is None:
            continue
        print(f"\n{task.name}: task {task.task_id} {record['status']} after {record['attempts']} check(s)")
        for message in record.get("errorMessages", []):
            print(f"  error: {message}")
        for result in record.get("results", []):
            print(
                f"  s3://{result['bucket']}/{result['key']}  {result['contentType']}  {result['size']} bytes"
            )
            if result["contentType"].startswith("text/plain"):
                body = s3.get_object(Bucket=result["bucket"], Key=result["key"])["Body"].read()
                print("    " + body.decode("utf-8", "replace").strip().replace("\n", "\n    "))
    sqs = boto3.client("sqs")
    events = sqs.receive_message(QueueUrl=stack.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    for message in events.get("Messages", []):
        event = json.loads(message["Body"])
        print(f"\nevent {event.get('detail-type')!r}: {json.dumps(event.get('detail', {}))[:200]}")


def _submit(args: argparse.Namespace) -> int:
    """Send a file to the API (ASPOSE_BASE_URL) and put its poll request on POLL_QUEUE_URL."""
    from ocr_poller.adapters.aspose import AsposeApi, SubmitError, submission_body
    from ocr_poller.errors import ConfigError, Redeliver, RetryLater
    from ocr_poller.wiring import credentials_provider

    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    base_url = os.environ.get("ASPOSE_BASE_URL", DEFAULT_ASPOSE_BASE_URL).rstrip("/")
    try:
        credentials = credentials_provider(
            secret_name=os.environ.get("ASPOSE_CREDENTIALS_SECRET"),
            client_id=os.environ.get("ASPOSE_CLIENT_ID"),
            client_secret=os.environ.get("ASPOSE_CLIENT_SECRET"),
        )
        body = submission_body(args.endpoint, args.file.read_bytes(), result_type=args.result_type)
        task_id = AsposeApi(base_url, credentials).submit(args.endpoint, body)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    except RetryLater as exc:
        raise CliError(f"cannot reach the API at {base_url}: {exc}") from exc
    except (SubmitError, Redeliver) as exc:
        raise CliError(str(exc)) from exc
    print(task_id)
    if not args.no_enqueue:
        queue_url = os.environ.get("POLL_QUEUE_URL")
        if not queue_url:
            raise CliError("set POLL_QUEUE_URL to enqueue the poll request (or pass --no-enqueue)")
        import boto3

        _enqueue(boto3.client("sqs"), queue_url, task_id, args.endpoint)
        print(f"poll request queued on {queue_url}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    """Print the task's record (RESULTS_TABLE) and optionally download its results."""
    if not os.environ.get("RESULTS_TABLE"):
        raise CliError("set RESULTS_TABLE (and the usual AWS variables) to read task records")
    record = _records().item(args.task_id)
    if record is None:
        raise CliError(f"no record for task {args.task_id}")
    print(json.dumps(record, indent=2, default=str))
    if args.download:
        import boto3

        s3 = boto3.client("s3")
        args.download.mkdir(parents=True, exist_ok=True)
        for result in record.get("results", []):
            target = args.download / Path(result["key"]).name
            s3.download_file(result["bucket"], result["key"], str(target))
            print(f"downloaded {target} ({result['size']} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
