"""What ships is what runs: the deployment boundary, and the artifact `sam build` makes, run as in Lambda.

The artifact is built once per session with `make build` (the README's command). It is then imported
and run by a clean Python 3.13 whose only packages are an older boto3 and its own dependencies (the
Lambda runtime's stand-in), with nothing but the artifact on PYTHONPATH; the end-to-end test feeds
it one SQS event against moto's server and the emulator.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.localrun import QueueFeeder
from ocr_poller_tools.sandbox import MotoServer, Stack, deploy_stack, environment, start_moto_server

from benchmarks.artifact import (
    FUNCTION_ENV,
    SDK,
    ArtifactError,
    build,
    lambda_env,
    python313,
    runtime_boto3,
    runtime_venv,
)
from tests.integration.flow import read_record, s3_body, submit

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TEMPLATE_PATH = ROOT / "template.yaml"
# Imports the handler, builds its wiring (the four AWS clients), and tells where everything came from.
IMPORT_PROBE = """
import json, sys
import ocr_poller.handler
ocr_poller.handler.real_wiring()
import boto3, urllib3
loaded = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
print(json.dumps({"loaded": loaded, "boto3": boto3.__version__, "urllib3": urllib3.__version__}))
"""
# Runs the handler on the event in argv[1] (a file) and writes its answer to argv[2], as Lambda would.
HANDLER_RUNNER = """
import json, sys, time, uuid
from ocr_poller.handler import lambda_handler

class Context:
    function_name = "ocr-poller-artifact"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ocr-poller-artifact"
    aws_request_id = str(uuid.uuid4())
    _deadline = time.monotonic() + 300
    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

with open(sys.argv[1]) as event:
    answer = lambda_handler(json.load(event), Context())
with open(sys.argv[2], "w") as out:
    json.dump(answer, out)
"""


def _function_modules() -> set[str]:
    """Every module of the function's package, by its dotted name."""
    package = SRC / "ocr_poller"
    modules = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _run_json(command: list[str], env: dict[str, str], cwd: Path) -> Any:
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the boundary, in the source tree ---------------------------------------------------------------


def test_every_module_of_the_function_is_imported_by_its_handler(tmp_path: Path) -> None:
    # Given a fresh interpreter that sees only src/ and the installed dependencies
    env = lambda_env(SRC, FUNCTION_ENV)

    # When it imports the handler and builds its wiring
    probe = _run_json([sys.executable, "-c", IMPORT_PROBE], env, tmp_path)

    # Then every module under src/ocr_poller was imported, and nothing of the tools or a tracing SDK
    imported = {name for name in probe["loaded"] if name.split(".")[0] == "ocr_poller"}
    assert imported == _function_modules()
    assert not {
        name for name in probe["loaded"] if name.split(".")[0] in ("ocr_poller_tools", "aws_xray_sdk")
    }


def test_nothing_under_src_imports_the_tools() -> None:
    # Given every Python file under src/
    sources = sorted(SRC.rglob("*.py"))

    # When their import statements are read, at any depth
    imported = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in sources
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }

    # Then none names the tools' package
    assert sources
    assert not {entry for entry in imported if entry[1].split(".")[0] == "ocr_poller_tools"}


def test_src_holds_only_the_function_and_its_requirements() -> None:
    # Given src/, CodeUri: what sam build copies into the artifact
    # When its entries are listed (after `pip install -e .`, as every test run has it)
    entries = {path.name for path in SRC.iterdir() if path.name != "__pycache__"}

    # Then it is the package and the requirements sam build installs, nothing else (no egg-info)
    assert entries == {"ocr_poller", "requirements.txt"}


# --- the built artifact -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def python_313() -> Path:
    try:
        return python313()
    except ArtifactError as exc:
        pytest.fail(f"the artifact tests need Python 3.13: {exc}")


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory, python_313: Path) -> Path:
    """The function as `make build` (sam build) makes it."""
    return build(tmp_path_factory.mktemp("sam-build"))


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory, python_313: Path) -> Path:
    """The Lambda runtime's stand-in: a clean Python 3.13 venv with an older boto3; its interpreter."""
    return runtime_venv(tmp_path_factory.mktemp("runtime") / "venv", python_313)


def _pins(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file."""
    return {
        _canonical(match[1]): match[2]
        for match in re.finditer(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", requirements.read_text(), re.MULTILINE)
    }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _compiled(path: Path) -> bool:
    """A .pyc of Python 3.13 whose source lies beside its __pycache__ folder."""
    return (
        path.parent.name == "__pycache__"
        and path.name.endswith(".cpython-313.pyc")
        and (path.parent.parent / (path.name.split(".")[0] + ".py")).is_file()
    )


def test_artifact_holds_the_function_and_exactly_the_pinned_dependencies(artifact: Path) -> None:
    # Given the built artifact and the distributions installed in it
    records = {path.parent.name: path for path in artifact.glob("*.dist-info/RECORD")}
    installed = {
        _canonical(name): version
        for name, version in (folder.removesuffix(".dist-info").rsplit("-", 1) for folder in records)
    }
    owned = {
        (artifact / line.split(",")[0]).resolve()
        for record in records.values()
        for line in record.read_text().splitlines()
        if line
    }
    function_files = {
        path.relative_to(SRC)
        for path in (SRC / "ocr_poller").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }

    # When every file of the artifact is accounted for (bytecode beside its source)
    shipped = {path.relative_to(artifact) for path in artifact.rglob("*") if path.is_file()}
    sources = {path for path in shipped if not _compiled(artifact / path)}
    ours = {path for path in sources if path.parts[0] == "ocr_poller"}
    unaccounted = {path.as_posix() for path in sources - ours if (artifact / path).resolve() not in owned}
    uncompiled = {
        path.as_posix()
        for path in sources
        if path.suffix == ".py"
        and not (artifact / path.parent / "__pycache__" / f"{path.stem}.cpython-313.pyc").is_file()
    }

    # Then it is our package as in src/, the requirements file and the pinned distributions (no SDK, no
    # X-Ray), every module compiled for Python 3.13
    assert ours == function_files
    assert unaccounted == {"requirements.txt"}
    assert installed == _pins(SRC / "requirements.txt")
    assert not set(installed) & {*SDK, "aws-xray-sdk", "ocr-result-poller"}
    assert not uncompiled


def test_artifact_imports_alone_beside_an_older_boto3(artifact: Path, runtime: Path, tmp_path: Path) -> None:
    # Given Python 3.13 with the runtime's older boto3, and the artifact alone on its path
    env = lambda_env(artifact, FUNCTION_ENV)

    # When it imports the handler and builds its AWS clients
    probe = _run_json([str(runtime), "-c", IMPORT_PROBE], env, tmp_path)
    check = subprocess.run(
        [str(runtime), "-m", "pip", "check"], env=env, cwd=tmp_path, capture_output=True, text=True
    )

    # Then our code and pins come from the artifact, the SDK from the runtime, and together they agree
    files = {name: Path(file) for name, file in probe["loaded"].items() if file}
    ours = {name: file for name, file in files.items() if name.split(".")[0] == "ocr_poller"}
    assert set(ours) == _function_modules()
    assert all(file.is_relative_to(artifact) for file in ours.values())
    assert probe["boto3"] == runtime_boto3()
    assert not files["boto3"].is_relative_to(artifact) and not files["botocore"].is_relative_to(artifact)
    assert files["urllib3"].is_relative_to(artifact)
    assert probe["urllib3"] == _pins(SRC / "requirements.txt")["urllib3"]
    assert not {name for name in files if name.split(".")[0] in ("ocr_poller_tools", "aws_xray_sdk", "moto")}
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MotoServer, Stack, Emulator]]:
    """moto's server with the template's resources, and the emulator, whose tasks take a few checks."""
    server = start_moto_server()
    try:
        stack = deploy_stack(server.url, TEMPLATE_PATH, name_suffix=uuid.uuid4().hex[:12])
        for name, value in environment(stack, server.url).items():  # the test's own boto3 calls go to moto
            monkeypatch.setenv(name, value)
        # A clock that ticks 0.1 s per reading: a task takes a few checks, however fast the machine.
        with Emulator(processing_seconds=0.5, clock=itertools.count(0.0, 0.1).__next__) as emulator:
            yield server, stack, emulator
    finally:
        server.stop()


def test_one_sqs_event_runs_end_to_end_from_the_artifact(
    artifact: Path,
    runtime: Path,
    sandbox: tuple[MotoServer, Stack, Emulator],
    tmp_path: Path,
) -> None:
    # Given a submitted label, and the artifact run by the runtime's stand-in in the stack's environment
    server, stack, emulator = sandbox
    task_id = submit(emulator, "RecognizeLabel", "label.png")
    env = lambda_env(
        artifact,
        environment(stack, server.url, ASPOSE_BASE_URL=emulator.url, POLL_INITIAL_DELAY_SECONDS="0"),
    )
    invocations: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any], context: object) -> Any:
        (tmp_path / "event.json").write_text(json.dumps(event))
        command = [
            str(runtime),
            "-c",
            HANDLER_RUNNER,
            str(tmp_path / "event.json"),
            str(tmp_path / "out.json"),
        ]
        completed = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        invocations.append(json.loads((tmp_path / "out.json").read_text()))
        return invocations[-1]

    sqs = boto3.client("sqs", endpoint_url=server.url, region_name=stack.region)
    feeder = QueueFeeder(sqs, stack.queue_url, invoke, region=stack.region)

    # When its poll request goes on the queue, and the queue is fed to the artifact until it is empty
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"taskId": task_id}))
    deadline = time.monotonic() + 60
    while not (feeder.feed_once(wait_seconds=0) == 0 and feeder.queue_is_empty()):
        assert time.monotonic() < deadline, f"the queue did not drain: {invocations}"

    # Then each invocation checked once (re-queuing while Processing), and the last stored, recorded and
    # announced the label's text
    record = read_record(stack, server.url, task_id)
    assert len(invocations) >= 2
    assert invocations == [{"batchItemFailures": []}] * len(invocations)
    assert record is not None and record["status"] == "Completed"
    assert int(record["attempts"]) == len(invocations)
    (result,) = record["results"]
    assert s3_body(stack, server.url, result["key"]).decode().startswith("ACME FREIGHT")
    events = sqs.receive_message(QueueUrl=stack.events_queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["detail"]["status"] for m in events] == ["Completed"]
