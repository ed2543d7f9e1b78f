"""The deployment artifact as `sam build` makes it, and a Python 3.13 playing the Lambda runtime beside it.

Shared by the artifact tests (tests/infrastructure/test_artifact.py) and the cold-start figure: both
build with `make build` (the README's command) and run the artifact with an older boto3, as Lambda does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTION = "PollerFunction"
SDK = ("boto3", "botocore", "s3transfer")
# Lambda's runtime ships an urllib3 of its own; an old one, so the artifact's (which shadows it) is what runs.
RUNTIME_URLLIB3 = "urllib3<2"
# The contract's required variables, as the function gets them: enough to build the real wiring; no
# request is made with them.
FUNCTION_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "RESULTS_TABLE": "results",
    "RESULTS_BUCKET": "results",
    "POLL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/poll",
    "ASPOSE_CLIENT_ID": "id",
    "ASPOSE_CLIENT_SECRET": "secret",
}


class ArtifactError(RuntimeError):
    """Building the artifact or the runtime's stand-in failed; the message says why."""


def python313() -> Path:
    """Python 3.13, found as `make build` finds it (PATH, then pyenv); ArtifactError if there is none."""
    found = _run(["make", "--no-print-directory", "-s", "python313"], cwd=ROOT)
    return Path(found.strip())


def build(directory: Path) -> Path:
    """`make build` into `directory`; the function's artifact folder."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    env.pop("MAKEFLAGS", None)
    _run(["make", "--no-print-directory", "build", f"BUILD_DIR={directory}"], cwd=ROOT, env=env)
    artifact = directory / FUNCTION
    if not (artifact / "ocr_poller" / "handler.py").is_file():
        raise ArtifactError(f"sam build left no {FUNCTION} with ocr_poller/handler.py in {directory}")
    return artifact


def runtime_boto3() -> str:
    """The boto3 of the runtime's stand-in: pyproject.toml's floor, the oldest the function supports."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = [match[1] for match in map(re.compile(r"boto3>=([0-9.]+)").fullmatch, dependencies) if match]
    if len(floors) != 1:
        raise ArtifactError(f"pyproject.toml declares no single boto3>=X: {dependencies}")
    return floors[0]


def runtime_venv(directory: Path, python: Path) -> Path:
    """A clean Python 3.13 venv holding only an older boto3 (and what it needs), as Lambda's runtime does."""
    _run([str(python), "-m", "venv", "--clear", str(directory)])
    interpreter = directory / "bin" / "python"
    pip = [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, f"boto3=={runtime_boto3()}", RUNTIME_URLLIB3])
    return interpreter


def sdk_pins() -> list[str]:
    """boto3, botocore, s3transfer and what only they need, at the versions uv.lock pins together."""
    runtime = _export(["--prune", "boto3"])
    return [pin for pin in _export([]) if pin not in runtime]


def with_sdk(artifact: Path, directory: Path, python: Path) -> Path:
    """A copy of the artifact with the locked SDK installed in it (the other answer to the SDK question)."""
    copy = directory / f"{FUNCTION}-with-sdk"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(artifact, copy)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    _run([*pip, "--no-compile", "--target", str(copy), *sdk_pins()])
    compileall = [str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    _run([*compileall, str(copy)])  # as `make build` compiles the rest
    return copy


def lambda_env(artifact: Path, variables: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment for a process running the artifact: its code on PYTHONPATH, nothing of ours,
    and no bytecode written (Lambda's code folder is read-only)."""
    kept = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TZ") if name in os.environ}
    return {
        **kept,
        "PYTHONPATH": str(artifact),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(artifact),
        "AWS_LAMBDA_FUNCTION_NAME": "ocr-poller",
        **variables,
    }


def size(folder: Path) -> tuple[int, int]:
    """Files and bytes under a folder."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def zipped_size(folder: Path, scratch: Path) -> int:
    """Bytes of the folder zipped as `sam deploy` uploads it (deflate)."""
    archive = shutil.make_archive(str(scratch / folder.name), "zip", folder)
    return Path(archive).stat().st_size


def _export(arguments: list[str]) -> list[str]:
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv), "export", "--quiet", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"]
    exported = _run([*command, "--no-header", "--no-annotate", *arguments], cwd=ROOT)
    return [line.split(";")[0].strip() for line in exported.splitlines() if line and not line.startswith("#")]


def _run(command: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )
    if completed.returncode != 0:
        raise ArtifactError(
            f"{' '.join(command)} failed (exit {completed.returncode}):\n"
            f"{completed.stderr[-3000:]}{completed.stdout[-2000:]}"
        )
    return completed.stdout
