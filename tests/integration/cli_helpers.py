"""Running `ocr-poller` as a user does: its own process, variables from an env file or a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ocr_poller_tools.envfile import write_env_file
from ocr_poller_tools.sandbox import Stack, environment

BIN = Path(sys.executable).parent
OCR_POLLER = str(BIN / "ocr-poller")


def clean_environment(home: Path, **variables: str) -> dict[str, str]:
    """No AWS variables, no AWS profile (HOME is empty), no instance metadata: only what the test gives."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true", **variables}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OCR_POLLER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy() if env is None else env,
    )


def stack_env_file(path: Path, stack: Stack, moto_url: str, **overrides: str) -> Path:
    """An env file for a test stack, as `local --serve` writes one (the stack's secret left out)."""
    variables = environment(stack, moto_url, **overrides)
    variables.pop("ASPOSE_CREDENTIALS_SECRET", None)
    write_env_file(path, {name: value for name, value in variables.items() if value})
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """The command failed with one `ocr-poller: error:` line naming the fragments, last, and no traceback.

    Progress lines (`status --wait`) may come before it.
    """
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(("ocr-poller: error", "Traceback"))]
    assert result.returncode != 0, result
    assert errors == lines[-1:] and lines[-1].startswith("ocr-poller: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
