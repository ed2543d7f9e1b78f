"""Dependencies are declared once (pyproject.toml), locked (uv.lock), and shipped as the lock says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "src" / "requirements.txt"
UV = Path(sys.executable).parent / "uv"


def _make(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_lock_is_current_with_pyproject() -> None:
    # Given pyproject.toml's dependencies and uv.lock
    # When uv checks, without the network, that locking again would change nothing
    result = subprocess.run(
        [str(UV), "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    # Then the lock is current
    assert result.returncode == 0, "uv.lock is stale, run `make lock`:\n" + result.stderr


def test_requirements_txt_is_what_make_requirements_writes_from_the_lock(tmp_path: Path) -> None:
    # Given the committed src/requirements.txt
    committed = REQUIREMENTS.read_text()

    # When it is generated again from uv.lock
    result = _make("requirements", f"REQUIREMENTS={tmp_path / 'requirements.txt'}")

    # Then nothing differs
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "requirements.txt").read_text() == committed, "run `make requirements`"


def test_requirements_are_exact_pins_without_the_sdk_or_xray() -> None:
    # Given the requirement lines of src/requirements.txt
    text = REQUIREMENTS.read_text()
    requirements = [line for line in text.splitlines() if line and not line.startswith("#")]

    # When each is parsed into a name and a version
    pins = [re.fullmatch(r"([a-z0-9-]+)==([0-9][0-9a-z.]*)", line) for line in requirements]

    # Then each line is an exact pin; the function's own dependencies are there, the AWS SDK is not
    assert all(pins), requirements
    names = {pin[1] for pin in pins if pin}
    assert {"aws-lambda-powertools", "urllib3"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "aws-xray-sdk"}


def test_function_dependencies_are_declared_once_without_the_tracer_extra() -> None:
    # Given pyproject.toml
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    # When its runtime dependencies are named
    names = [re.match(r"[A-Za-z0-9_.-]+(\[[^]]*\])?", dependency) for dependency in project["dependencies"]]

    # Then they are the function's three, Powertools without an extra (its tracer needs aws-xray-sdk)
    assert sorted(match[0] for match in names if match) == ["aws-lambda-powertools", "boto3", "urllib3"]
