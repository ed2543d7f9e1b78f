"""Figure 5a: the cost of one check as the number of tasks in flight grows (moto's server + emulator).

Tasks in flight are what the poller leaves behind between checks: a record in DynamoDB and a
successor message waiting out its SQS delay; they are written directly, in batches. At each level a
sample of due tasks is checked through the real handler, one SQS record per invocation (the event
Lambda builds from the message), so each invocation's time splits exactly into the requests it made
- counted and timed per operation, AWS through botocore, the API through urllib3 - and the poller's
own work. The feeder's ReceiveMessage is left out: in moto it scans the whole queue, and in AWS it is
the event source's, not the function's.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlsplit

from benchmarks.report import Figure, Table
from benchmarks.services import (
    AS_DEPLOYED,
    EmulatorClient,
    child_main,
    deploy,
    emulator,
    function_env,
    moto_server,
    queue_arn,
    run_child,
    sqs_message,
)

COMPLETED_RESULT_BYTES = 2000  # the `large` fault, small: a Completed answer with one result
KINDS = ("requeued", "completed")
SERVICES = {"aspose": "API", "dynamodb": "DynamoDB", "events": "EventBridge", "s3": "S3", "sqs": "SQS"}


def measure(quick: bool) -> dict[str, Any]:
    """Run the child at each level of tasks in flight; its per-level numbers."""
    with moto_server() as moto, emulator(processing_seconds=3600) as emu:
        stack = deploy(moto.url)
        env = function_env(stack, moto.url, emu.url, **AS_DEPLOYED)
        return run_child(
            "benchmarks.scale",
            {
                "emulator": emu.url,
                "levels": [100, 1000] if quick else [100, 1000, 3000],
                "samples": {"requeued": 40 if quick else 100, "completed": 10 if quick else 20},
            },
            env,
        )


def figure(measured: dict[str, Any]) -> Figure:
    """Requests and time per check at each level."""
    levels = measured["levels"]
    operations = sorted({op for level in levels for kind in KINDS for op in level[kind]["calls"]})
    services = sorted({op.split(":")[0] for op in operations})
    counts: list[list[object]] = []
    times: list[list[object]] = []
    for level in levels:
        for kind in KINDS:
            phase = level[kind]
            checks = phase["checks"]
            head = [f"{level['in_flight']:,}", kind, checks]
            counts.append(head + [_fraction(phase["calls"].get(op, 0) / checks) for op in operations])
            by_service = {
                service: sum(ms for op, ms in phase["call_ms"].items() if op.startswith(service + ":"))
                / checks
                for service in services
            }
            times.append(
                head
                + [f"{phase['wall_ms'] / checks:.1f}"]
                + [f"{by_service[service]:.1f}" for service in services]
                + [f"{phase['own_ms'] / checks:.1f}"]
            )
    others = sorted({op for level in levels for op in level["unexpected_calls"]})
    count_table = Table(
        "Figure 5a - requests per check vs tasks in flight (real handler, moto's server + emulator, HTTP)",
        ["in flight", "check", "checks", *[_short(op) for op in operations]],
        counts,
        notes=[
            "Requests counted in the handler's process: botocore for AWS, urllib3 for the API.",
            f"Scans, queries, listings or any request not in the table: {', '.join(others) or 'none'}.",
        ],
    )
    time_table = Table(
        "Figure 5b - milliseconds per check: where the time goes",
        [
            "in flight",
            "check",
            "checks",
            "invocation",
            *[SERVICES.get(s, s) for s in services],
            "poller's own",
        ],
        times,
        notes=[
            "One record per invocation; invocation = handler wall time; a service's column = time inside its "
            "requests; poller's own = the rest (parsing, decisions, serialisation, logging).",
            "Growing SQS (and EventBridge) times are moto's: its SendMessage scans every message waiting in "
            "the queue; the poller's own time and its requests per check stay flat.",
            f"Logs (Powertools INFO + EMF metrics): {measured['log_bytes_per_check']:.0f} bytes per check.",
        ],
    )
    return Figure("scale", [count_table, time_table], measured)


def _fraction(value: float) -> str:
    return f"{value:.2f}" if value else "0"


def _short(operation: str) -> str:
    service, name = operation.split(":", 1)
    prefix = {"dynamodb": "DDB", "sqs": "SQS", "s3": "S3", "events": "EB", "aspose": "API"}.get(
        service, service
    )
    return f"{prefix} {name}"


# --- in the child ----------------------------------------------------------------------------------


class Requests:
    """Counts and times requests while `counting`: AWS ones through botocore, the API's through urllib3."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.counting = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Wrap botocore's and urllib3's request methods (in this benchmark process only)."""
        import urllib3
        from botocore.client import BaseClient

        api_call = BaseClient._make_api_call  # type: ignore[attr-defined]
        urlopen = urllib3.PoolManager.urlopen

        def counted_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            started = time.perf_counter()
            try:
                return api_call(client, operation, params)
            finally:
                self._add(f"{client.meta.service_model.service_name}:{operation}", started)

        def counted_urlopen(
            manager: urllib3.PoolManager, method: str, url: str, *args: Any, **kw: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return urlopen(manager, method, url, *args, **kw)
            finally:
                path = urlsplit(url).path
                self._add(f"aspose:{method} {'check' if path.startswith('/v5.0/') else path}", started)

        BaseClient._make_api_call = counted_api_call  # type: ignore[attr-defined]
        urllib3.PoolManager.urlopen = counted_urlopen  # type: ignore[assignment]

    def clear(self) -> None:
        """Forget what was counted."""
        self.calls.clear()
        self.seconds.clear()

    def _add(self, name: str, started: float) -> None:
        if self.counting:
            with self._lock:
                self.calls[name] += 1
                self.seconds[name] += time.perf_counter() - started


EXPECTED = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "sqs:SendMessage",
    "s3:PutObject",
    "events:PutEvents",
    "aspose:GET check",
}


def _measure(arguments: dict[str, Any]) -> dict[str, Any]:
    """In the child: grow the tasks in flight level by level; at each, check a sample through the handler."""
    import boto3

    requests = Requests()
    requests.install()
    from ocr_poller_tools.localrun import LocalContext, sqs_event

    from ocr_poller import handler

    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")
    queue_url, table = os.environ["POLL_QUEUE_URL"], os.environ["RESULTS_TABLE"]
    arn = queue_arn(sqs, queue_url)
    client = EmulatorClient(arguments["emulator"])

    def check(body: dict[str, Any]) -> float:
        message: Any = sqs_message(body)
        started = time.perf_counter()
        response = handler.lambda_handler(sqs_event([message], arn, os.environ["AWS_REGION"]), LocalContext())
        if response != {"batchItemFailures": []}:
            raise RuntimeError(f"the check of {body} failed: {response}")
        return time.perf_counter() - started

    for body in _seed(client, sqs, dynamodb, queue_url, table, count=1, faults=None, enqueue=False):
        check(body)  # warm: token, secret, clients
    levels = []
    in_flight = 0
    sampled: dict[str, str] = {}
    for level in arguments["levels"]:
        background = level - in_flight - sum(arguments["samples"].values())
        _seed(client, sqs, dynamodb, queue_url, table, count=background, faults=None, enqueue=True)
        in_flight = level
        phases: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            fault = {"kind": "large", "size": COMPLETED_RESULT_BYTES} if kind == "completed" else None
            bodies = _seed(
                client,
                sqs,
                dynamodb,
                queue_url,
                table,
                count=arguments["samples"][kind],
                faults=fault,
                enqueue=False,
            )
            requests.clear()
            log_before = _stdout_bytes()
            requests.counting = True
            wall = sum(check(body) for body in bodies)
            requests.counting = False
            phases[kind] = {
                "checks": len(bodies),
                "calls": dict(requests.calls),
                "call_ms": {op: 1000 * seconds for op, seconds in requests.seconds.items()},
                "wall_ms": 1000 * wall,
                "own_ms": 1000 * (wall - sum(requests.seconds.values())),
                "log_bytes": _stdout_bytes() - log_before,
            }
            sampled[kind] = bodies[-1]["taskId"]
        unexpected = sorted({op for phase in phases.values() for op in phase["calls"] if op not in EXPECTED})
        levels.append({"in_flight": level, **phases, "unexpected_calls": unexpected})
    checks = sum(level[kind]["checks"] for level in levels for kind in KINDS)
    return {
        "levels": levels,
        "log_bytes_per_check": sum(level[kind]["log_bytes"] for level in levels for kind in KINDS) / checks,
        "item_bytes": {kind: _item_size(dynamodb, table, task_id) for kind, task_id in sampled.items()},
    }


def _seed(
    client: EmulatorClient,
    sqs: Any,
    dynamodb: Any,
    queue_url: str,
    table: str,
    *,
    count: int,
    faults: dict[str, Any] | None,
    enqueue: bool,
) -> list[dict[str, Any]]:
    """`count` tasks as their first check leaves them: a Pending record and the successor's body, which
    goes on the queue (waiting out SQS's longest delay) when `enqueue`; the bodies."""
    from boto3.dynamodb.types import TypeSerializer

    from ocr_poller.adapters.dynamodb import to_item
    from ocr_poller.model import Status, TaskRecord
    from ocr_poller.request import PollRequest

    serializer = TypeSerializer()
    first_check = time.time() - 60  # a minute into polling: a typical PDF still Processing
    records = [
        TaskRecord(
            client.submit(faults), "RecognizeLabel", Status.PENDING, 1, first_check, first_check, "seed"
        )
        for _ in range(max(0, count))
    ]
    bodies = [PollRequest(r.task_id, r.endpoint, r.check_number + 1).to_message() for r in records]
    for start in range(0, len(records), 25):
        items = [to_item(record, retention_days=30) for record in records[start : start + 25]]
        writes = [
            {"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in item.items()}}} for item in items
        ]
        dynamodb.batch_write_item(RequestItems={table: writes})
    for start in range(0, len(bodies) if enqueue else 0, 10):
        entries = [
            {"Id": str(index), "MessageBody": json.dumps(body), "DelaySeconds": 900}
            for index, body in enumerate(bodies[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    return bodies


def _stdout_bytes() -> int:
    sys.stdout.flush()
    return os.fstat(sys.stdout.fileno()).st_size


def _item_size(dynamodb: Any, table: str, task_id: str) -> int:
    """Approximate DynamoDB size of a task's record: its names and values, as JSON."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    raw = dynamodb.get_item(TableName=table, Key={"taskId": {"S": task_id}}, ConsistentRead=True)["Item"]
    item = {name: deserializer.deserialize(value) for name, value in raw.items()}
    return len(json.dumps(item, default=str).encode())


if __name__ == "__main__":
    child_main(_measure)
