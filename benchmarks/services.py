"""The local stack in processes of its own, so what the benchmark measures is the poller's alone.

moto's server and the Aspose emulator each run in a child process on 127.0.0.1; measurements that
import the handler run in a child process too, with the function's environment, and hand back JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import urllib3
from ocr_poller_tools.sandbox import (
    SANDBOX_ACCESS_KEY_ID,
    SANDBOX_SECRET_ACCESS_KEY,
    Stack,
    deploy_stack,
    environment,
    function_properties,
    load_template,
)
from ocr_poller_tools.submission import SubmittingApi, submission_body

from ocr_poller.adapters.aspose import Credentials

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
LABEL = ROOT / "samples" / "label.png"
CLIENT = Credentials("benchmark", "benchmark-secret")  # the emulator accepts any credentials
START_TIMEOUT_SECONDS = 60
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, writable by root where allowed
CFS_PERIOD_US = 100_000
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives a whole vCPU at 1,769 MB, and a share in proportion below

# Quiet, as a benchmark needs it; the scale figure turns logs and metrics back on to weigh them.
QUIET = {
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
# As deployed: INFO logs and EMF metrics on, so their volume and cost can be weighed; tracing stays off.
AS_DEPLOYED = {"POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_DISABLED": "false"}


class ServiceError(RuntimeError):
    """A service or a measuring child process failed."""


class Service:
    """A child process serving HTTP on loopback; `url` is read from the first line it prints."""

    def __init__(self, command: list[str], banner: str) -> None:
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        line = self._process.stdout.readline() if self._process.stdout else ""
        if banner not in line:
            self.stop()
            raise ServiceError(f"{' '.join(command)} did not start: {line!r}")
        self.url = line.split(banner, 1)[1].strip()
        self.pid = self._process.pid

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


@contextmanager
def moto_server() -> Iterator[Service]:
    """moto's server in its own process (it keeps every uploaded object in its memory)."""
    service = Service([sys.executable, "-m", "benchmarks.services", "moto"], "moto serving on ")
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def emulator(processing_seconds: float) -> Iterator[Service]:
    """The Aspose emulator in its own process; its request log goes nowhere."""
    command = [
        sys.executable,
        "-m",
        "ocr_poller_tools.emulator",
        "--port",
        "0",
        "--processing-seconds",
        str(processing_seconds),
    ]
    service = Service(command, "serving on ")
    try:
        yield service
    finally:
        service.stop()


def memory_size_mb() -> int:
    """The function's MemorySize in template.yaml."""
    return int(function_properties(load_template(TEMPLATE))["MemorySize"])


def sqs_batch_size() -> int:
    """The most records template.yaml's SQS event source hands one invocation."""
    for source in function_properties(load_template(TEMPLATE))["Events"].values():
        if source["Type"] == "SQS":
            return int(source["Properties"]["BatchSize"])
    raise ServiceError("template.yaml's function has no SQS event source")


def deploy(moto_url: str) -> Stack:
    """A fresh deployment of template.yaml's resources in moto."""
    return deploy_stack(moto_url, TEMPLATE, name_suffix=uuid.uuid4().hex[:12])


def aws_client(service: str, moto_url: str, region: str) -> Any:
    """A boto3 client of the sandbox, for the benchmark's own reads and writes."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=SANDBOX_ACCESS_KEY_ID,
        aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY,
        region_name=region,
    )
    return session.client(service, endpoint_url=moto_url)  # type: ignore[call-overload]


def queue_arn(sqs: Any, queue_url: str) -> str:
    """The ARN of a queue, as the event source names it in each record."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def latency_fault(seconds: float) -> dict[str, Any]:
    """The emulator's fault that makes every check of a task wait `seconds` for its answer."""
    return {"kind": "latency", "seconds": seconds, "times": -1}


def sqs_message(body: Mapping[str, Any]) -> dict[str, Any]:
    """A received SQS message carrying `body`, for localrun.sqs_event to turn into Lambda's record."""
    return {"MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex, "Body": json.dumps(body)}


def function_env(stack: Stack, moto_url: str, emulator_url: str, **overrides: str) -> dict[str, str]:
    """The environment of the function for this stack and emulator, as Lambda would set it."""
    return environment(stack, moto_url, ASPOSE_BASE_URL=emulator_url, **(QUIET | overrides))


class EmulatorClient:
    """Submits tasks and queues faults for them, as a test would."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._api = SubmittingApi(url, lambda: CLIENT)
        self._http = urllib3.PoolManager(maxsize=4)
        self._body = submission_body("RecognizeLabel", LABEL.read_bytes())

    def submit(self, fault: Mapping[str, Any] | None = None) -> str:
        """A new RecognizeLabel task, with a fault for its next checks when given; its id."""
        task_id = self._api.submit("RecognizeLabel", self._body)
        if fault is not None:
            response = self._http.request(
                "POST",
                f"{self._url}/emulator/tasks/{task_id}/faults",
                body=json.dumps(fault).encode(),
                headers={"Content-Type": "application/json"},
            )
            if response.status != 201:
                raise ServiceError(f"fault {fault} refused: HTTP {response.status} {response.data[:200]!r}")
        return task_id


def run_child(
    module: str, arguments: Mapping[str, Any], env: Mapping[str, str], cpu_share: float | None = None
) -> dict[str, Any]:
    """Run `python -m module` with the JSON arguments in a fresh interpreter; the JSON it wrote back.

    The child's stdout (the handler's logs, when they are on) goes to a file whose size it may read.
    With `cpu_share`, the child gets that share of one CPU, as Lambda gives a function for its memory,
    where this machine lets a cgroup say so (OCR_BENCH_CPU_LIMITED=1 in its environment then).
    """
    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as scratch, cpu_limit(cpu_share) as group:
        result_path = Path(scratch) / "result.json"
        with open(Path(scratch) / "stdout.log", "wb") as stdout:
            completed = subprocess.run(
                [sys.executable, "-m", module, json.dumps(dict(arguments)), str(result_path)],
                env={**os.environ, **env, "OCR_BENCH_CPU_LIMITED": "1" if group else "0"},
                cwd=ROOT,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
                preexec_fn=(lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None,
            )
        if completed.returncode != 0 or not result_path.exists():
            raise ServiceError(f"{module} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(result_path.read_text())
        return result


@contextmanager
def cpu_limit(share: float | None) -> Iterator[Path | None]:
    """A cgroup (v1 cpu controller) whose processes get `share` of one CPU; None where none can be made."""
    if share is None or not CGROUP_CPU.is_dir():
        yield None
        return
    group = CGROUP_CPU / f"ocr-bench-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(max(1000, round(share * CFS_PERIOD_US))))
    except OSError:
        with suppress(OSError):
            group.rmdir()
        yield None
        return
    try:
        yield group
    finally:
        with suppress(OSError):
            group.rmdir()  # its only process has exited


def child_main(measure: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Entry point of a measuring child: measure(arguments) -> JSON-able dict, written to argv[2]."""
    arguments = json.loads(sys.argv[1])
    Path(sys.argv[2]).write_text(json.dumps(measure(arguments)))


def _serve_moto() -> None:
    """Serve moto on a free loopback port until terminated; the first line printed is the URL."""
    import signal
    import threading

    from ocr_poller_tools.sandbox import start_moto_server

    server = start_moto_server()
    print(f"moto serving on {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__" and sys.argv[1:] == ["moto"]:
    _serve_moto()
