"""`ocr-poller local` as users run it: the stack served for other commands; from a non-editable install."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ocr_poller_tools.envfile import read_env_file

from tests.integration.cli_helpers import OCR_POLLER, clean_environment, run_cli

pytestmark = pytest.mark.integration
REPOSITORY = Path(__file__).resolve().parents[2]
LABEL_TEXT = "ACME FREIGHT\nPARCEL 4711"
STARTUP_LIMIT_SECONDS = 60  # a bound on waiting, never asserted as a duration


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no env file; the stack said: {process.communicate()}")
        time.sleep(0.1)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`ocr-poller local --serve --env-file F &`, with short emulated tasks; ready once F exists."""
    env_file = tmp_path / "stack.env"
    process = subprocess.Popen(
        [OCR_POLLER, "local", "--serve", "--env-file", str(env_file), "--processing-seconds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(tmp_path),
    )
    try:
        wait_for_file(env_file, process)
        yield process, env_file
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_served_stack_takes_submit_and_status_to_the_labels_text(
    served: tuple[subprocess.Popen[str], Path], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    process, env_file = served
    variables = read_env_file(env_file)
    env = clean_environment(tmp_path)  # everything comes from the env file
    # When the README's flow runs against it
    submitted = run_cli(
        "submit", str(REPOSITORY / "samples" / "label.png"), "--env-file", str(env_file), env=env
    )
    task_id = submitted.stdout.strip()
    waited = run_cli(
        "status", task_id, "--wait", "--download", str(tmp_path / "out"), "--env-file", str(env_file), env=env
    )
    # Then the label's text is in the folder of its task, its record and its completion event
    assert submitted.returncode == 0, submitted.stderr
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "Completed"
    assert (tmp_path / "out" / task_id / "0-text.txt").read_text() == LABEL_TEXT
    sqs = boto3.client(
        "sqs",
        endpoint_url=variables["AWS_ENDPOINT_URL"],
        region_name=variables["AWS_REGION"],
        aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
    )
    (message,) = sqs.receive_message(QueueUrl=variables["COMPLETION_EVENTS_QUEUE_URL"], WaitTimeSeconds=1)[
        "Messages"
    ]
    event = json.loads(message["Body"])
    assert (event["detail-type"], event["detail"]["taskId"]) == ("OCR Task Completed", task_id)
    # When stopped by a signal
    process.send_signal(stop_signal)
    out, err = process.communicate(timeout=STARTUP_LIMIT_SECONDS)
    # Then it stopped cleanly, and took its env file with it
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert out.splitlines()[-1] == "local stack stopped"
    assert not env_file.exists()


def test_env_file_has_every_variable_the_commands_need(served: tuple[subprocess.Popen[str], Path]) -> None:
    _, env_file = served
    variables = read_env_file(env_file)
    needed = {
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "RESULTS_TABLE",
        "RESULTS_BUCKET",
        "POLL_QUEUE_URL",
        "DEAD_LETTER_QUEUE_URL",
        "ASPOSE_BASE_URL",
        "ASPOSE_CLIENT_ID",
        "ASPOSE_CLIENT_SECRET",
        "EVENT_BUS_NAME",
    }
    assert needed <= {name for name, value in variables.items() if value}
    assert "ASPOSE_CREDENTIALS_SECRET" not in variables
    assert env_file.stat().st_mode & 0o077 == 0  # it holds credentials


def test_local_runs_from_a_non_editable_install(tmp_path: Path) -> None:
    # Given the package installed into a folder of its own, built from a copy of the repository's sources
    # (the build leaves build/ and *.egg-info beside them), links kept as git keeps them
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "template.yaml"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, source / name)
    for folder in ("src", "tools"):
        shutil.copytree(
            REPOSITORY / folder, source / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    target = tmp_path / "installed"
    # The venv's setuptools builds it, so the test needs no package index.
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    env = clean_environment(tmp_path, PYTHONPATH=str(target))
    # When the local run starts from elsewhere, with that copy first on the path
    result = subprocess.run(
        [sys.executable, "-c", "import ocr_poller_tools, sys; print(ocr_poller_tools.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    command = ["-m", "ocr_poller_tools.cli", "local", "--processing-seconds", "1", "--timeout", "60"]
    run = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180
    )
    # Then it is the installed copy that ran, with its own samples and template
    assert Path(result.stdout.strip()).is_relative_to(target)
    assert (target / "ocr_poller_tools" / "template.yaml").read_bytes() == (
        REPOSITORY / "template.yaml"
    ).read_bytes()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ACME FREIGHT" in run.stdout and "1-pdf.pdf" in run.stdout


def test_the_package_ships_the_repositorys_template() -> None:
    # A link, so there is one template to edit; a wheel holds its content (see the test above).
    packaged = REPOSITORY / "tools" / "ocr_poller_tools" / "template.yaml"
    assert packaged.resolve() == (REPOSITORY / "template.yaml").resolve()
