"""Figure 4: cold start - importing the handler in a fresh interpreter, against boto3 + Powertools alone.

Each sample is a new `python -c` process timing its own imports with perf_counter (interpreter start-up
excluded). All scripts run round-robin, so a busy moment of this shared machine hits them alike, and
the medians are compared.

4: in the development venv (Python of this process). Bytecode for every module comes from a private
cache filled by a first, untimed run (PYTHONPYCACHEPREFIX), so no row pays for compiling - except the
one that shows that cost.
4c: the deployed shape - the artifact `make build` makes, run by Python 3.13 beside the older boto3
the runtime stands in for (benchmarks/artifact.py), no bytecode written (Lambda's code folder is
read-only); and the other answer to the SDK question, the same artifact with boto3, botocore and
s3transfer shipped in it. Skipped, with a note, where Python 3.13 is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import artifact
from benchmarks.report import Figure, Table, Target
from benchmarks.services import QUIET, ROOT

TARGET_RATIO = 1.2
BASELINE = "import boto3, aws_lambda_powertools"
HANDLER = "import ocr_poller.handler"
# The first invocation's own work: the handler builds its clients; the baseline builds the same ones.
HANDLER_WIRED = HANDLER + "\nocr_poller.handler.real_wiring()"
BASELINE_CLIENTS = (
    BASELINE + "\nsession = boto3.session.Session()\n"
    "clients = [session.client(name) for name in ('s3', 'dynamodb', 'sqs', 'events')]"
)
# As in Lambda: Powertools sees LAMBDA_TASK_ROOT and the function's name.
LAMBDA_ENV = artifact.FUNCTION_ENV | {
    "LAMBDA_TASK_ROOT": str(ROOT / "src"),
    "AWS_LAMBDA_FUNCTION_NAME": "ocr-poller",
}
LOCAL_ENV = artifact.FUNCTION_ENV | QUIET


@dataclass(frozen=True)
class Script:
    """One timed program: an interpreter, the code, its environment."""

    python: str
    code: str
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Case:
    """A row: the handler's script and the baseline's."""

    name: str
    ours: Script
    baseline: Script


def figure(quick: bool) -> Figure:
    """Median import times of the handler and of the baseline, their ratio, and related cases."""
    samples = 5 if quick else 21
    with tempfile.TemporaryDirectory(prefix="ocr-bench-coldstart-") as scratch:
        cache = str(Path(scratch) / "pyc")
        venv_cases = _venv_cases(cache)
        built, missing = _artifact_cases(Path(scratch))
        cases = venv_cases + [case for case, _ in built]
        scripts = sorted({script for case in cases for script in (case.ours, case.baseline)}, key=repr)
        times: dict[Script, list[float]] = {script: [] for script in scripts}
        for script in scripts:
            _time(script)  # fills the bytecode cache and the page cache
        for _ in range(samples):
            for script in scripts:
                times[script].append(_time(script))
        offenders = _import_offenders(cache)
    measured = [_measured(case, times) for case in cases]
    rows = [_row(case, numbers) for case, numbers in zip(cases, measured, strict=True)]
    main_ratio = measured[0]["ratio"]
    tables = [
        Table(
            "Figure 4 - cold start: importing the handler vs `import boto3, aws_lambda_powertools` "
            "(development venv)",
            ["case", "handler", "baseline", "ratio", "ratio of minimums", "round ratios 25-75%"],
            rows[: len(venv_cases)],
            [
                f"Medians of {samples} fresh interpreters per script (python {sys.version.split()[0]}), run "
                "round-robin; time measured inside each process around the imports only. Round by round the "
                "ratio varies (quartiles shown): this two-core machine is shared.",
                f"baseline = {BASELINE} (imports only, nothing instantiated), in the same interpreter and "
                "environment as the handler's row; the contract's variables set; Lambda env = "
                "LAMBDA_TASK_ROOT and AWS_LAMBDA_FUNCTION_NAME set too.",
                "The handler imports no tracing SDK (Lambda traces it: Tracing: Active), and of Powertools "
                "only Logger, Metrics, batch, parameters and typing, each by its own module.",
                "The last row adds the first invocation's own work: the handler builds its clients "
                "(wiring.py), the baseline the same four.",
                f"Target: import of ocr_poller.handler <= {TARGET_RATIO}x the baseline.",
            ],
        ),
    ]
    targets = [
        Target(
            "4 cold start: import handler / boto3+Powertools",
            f"{main_ratio:.2f}x",
            f"<= {TARGET_RATIO}x",
            main_ratio <= TARGET_RATIO,
        )
    ]
    artifact_rows: dict[str, Any] = {}
    if built:
        deployed = measured[len(venv_cases)]
        table_rows = []
        deployed_rows = zip(built, measured[len(venv_cases) :], rows[len(venv_cases) :], strict=True)
        for (case, sizes), numbers, row in deployed_rows:
            artifact_rows[case.name] = {**sizes, **numbers}
            table_rows.append(
                [
                    *row[:4],
                    sizes["files"],
                    f"{sizes['bytes'] / 1e6:.1f} MB",
                    f"{sizes['zip_bytes'] / 1e6:.1f} MB",
                ]
            )
        tables.append(
            Table(
                "Figure 4c - cold start of the deployed artifact (Python 3.13, the runtime's boto3 "
                f"{artifact.runtime_boto3()}): the AWS SDK left to the runtime, or shipped",
                ["artifact", "handler", "baseline", "ratio", "files", "unpacked", "zipped"],
                table_rows,
                [
                    "`make build` (sam build + bytecode), run with nothing but the artifact on PYTHONPATH by "
                    "a clean Python 3.13 venv holding only that boto3, PYTHONDONTWRITEBYTECODE=1 as on "
                    "Lambda's read-only code folder. baseline = the same imports in the same interpreter and "
                    "environment (Powertools from the artifact; boto3 from wherever that artifact takes it).",
                    "SDK shipped: the locked boto3, botocore, s3transfer (+ python-dateutil, six) installed "
                    "into a copy of the artifact and compiled alike. Without bytecode: the artifact as "
                    "`sam build` alone leaves it, which Lambda compiles again at every cold start.",
                    "Lambda also downloads and unpacks the zip before INIT; that grows with its size.",
                ],
            )
        )
        targets.append(
            Target(
                "4c cold start: deployed artifact / boto3+Powertools",
                f"{deployed['ratio']:.2f}x",
                f"<= {TARGET_RATIO}x",
                deployed["ratio"] <= TARGET_RATIO,
            )
        )
    elif missing:
        tables[0].notes.append(f"Figure 4c skipped: {missing}")
    if main_ratio > TARGET_RATIO:
        tables.append(
            Table(
                "Figure 4b - python -X importtime (Lambda env): what the handler imports beyond the baseline",
                ["package", "modules", "own import time"],
                [[package, count, f"{own / 1000:.1f} ms"] for package, count, own in offenders],
            )
        )
    return Figure(
        "coldstart",
        tables,
        {
            "samples": samples,
            "cases": [
                {"name": case.name.strip(), **numbers}
                for case, numbers in zip(venv_cases, measured, strict=False)
            ],
            "artifact": artifact_rows,
            "artifact_skipped": missing,
            "importtime_offenders": offenders,
        },
        targets,
    )


def _venv_cases(cache: str) -> list[Case]:
    """The development venv's rows: Lambda env, sources compiled at import, and with the clients built."""
    python = sys.executable
    lambda_env = _frozen(_env(LAMBDA_ENV) | {"PYTHONPYCACHEPREFIX": cache})
    # Installed packages keep their own .pyc files; our sources, without any, compile every time.
    uncompiled = _frozen(_env(LAMBDA_ENV) | {"PYTHONDONTWRITEBYTECODE": "1"})
    return [
        Case(
            "import ocr_poller.handler (Lambda env)",
            Script(python, HANDLER, lambda_env),
            Script(python, BASELINE, lambda_env),
        ),
        Case(
            "  our sources without .pyc",
            Script(python, HANDLER, uncompiled),
            Script(python, BASELINE, uncompiled),
        ),
        Case(
            "import + build the 4 AWS clients",
            Script(python, HANDLER_WIRED, lambda_env),
            Script(python, BASELINE_CLIENTS, lambda_env),
        ),
    ]


def _artifact_cases(scratch: Path) -> tuple[list[tuple[Case, dict[str, int]]], str | None]:
    """The deployed artifact's rows with their sizes, or why there are none."""
    try:
        python = artifact.python313()
        built = artifact.build(scratch / "build")
        runtime = str(artifact.runtime_venv(scratch / "runtime", python))
        with_sdk = artifact.with_sdk(built, scratch, python)
        uncompiled = scratch / "PollerFunction-sources-only"
        shutil.copytree(built, uncompiled, ignore=shutil.ignore_patterns("__pycache__"))
    except artifact.ArtifactError as exc:
        return [], str(exc).splitlines()[0]
    cases = []
    for name, folder in (
        ("SDK from the runtime (as deployed)", built),
        ("SDK shipped (boto3 + botocore + s3transfer)", with_sdk),
        ("SDK from the runtime, without bytecode", uncompiled),
    ):
        env = _frozen(artifact.lambda_env(folder, artifact.FUNCTION_ENV))
        files, size = artifact.size(folder)
        sizes = {"files": files, "bytes": size, "zip_bytes": artifact.zipped_size(folder, scratch)}
        cases.append((Case(name, Script(runtime, HANDLER, env), Script(runtime, BASELINE, env)), sizes))
    return cases, None


def _measured(case: Case, times: Mapping[Script, list[float]]) -> dict[str, Any]:
    ours, baseline = times[case.ours], times[case.baseline]
    return {
        "handler_seconds": ours,
        "baseline_seconds": baseline,
        "ratio": statistics.median(ours) / statistics.median(baseline),
    }


def _row(case: Case, numbers: Mapping[str, Any]) -> list[object]:
    ours, baseline = numbers["handler_seconds"], numbers["baseline_seconds"]
    # Samples of one round ran back to back, so their ratio shows how much the machine's load moved it.
    low, _, high = statistics.quantiles([a / b for a, b in zip(ours, baseline, strict=True)], n=4)
    return [
        case.name,
        f"{statistics.median(ours) * 1000:.0f} ms",
        f"{statistics.median(baseline) * 1000:.0f} ms",
        f"{numbers['ratio']:.2f}x",
        f"{min(ours) / min(baseline):.2f}x",
        f"{low:.2f}-{high:.2f}",
    ]


def _time(script: Script) -> float:
    """Seconds the script's imports take in a fresh interpreter."""
    timed = (
        f"import time\n_started = time.perf_counter()\n{script.code}\nprint(time.perf_counter() - _started)"
    )
    with tempfile.TemporaryDirectory(prefix="ocr-bench-cwd-") as cwd:  # nothing importable from the cwd
        completed = subprocess.run(
            [script.python, "-c", timed],
            env=dict(script.env),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"{script.code!r} failed:\n{completed.stderr[-2000:]}")
    return float(completed.stdout.strip().splitlines()[-1])


def _import_offenders(cache: str, top: int = 10) -> list[tuple[str, int, int]]:
    """Packages the handler's import loads and the baseline's does not: (package, modules, own us)."""
    ours, baseline = _import_times(HANDLER, cache), _import_times(BASELINE, cache)
    packages: dict[str, list[int]] = {}
    for module, own in ours.items():
        if module not in baseline:
            parts = module.split(".")
            # Powertools by utility (its top level is in the baseline), anything else by package.
            package = ".".join(parts[:3]) if parts[0] == "aws_lambda_powertools" else parts[0]
            totals = packages.setdefault(package, [0, 0])
            totals[0] += 1
            totals[1] += own
    ranked = sorted(packages.items(), key=lambda item: item[1][1], reverse=True)
    return [(package, count, own) for package, (count, own) in ranked[:top]]


def _import_times(code: str, cache: str) -> dict[str, int]:
    """Own import time in microseconds of every module `code` imports (python -X importtime)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=_env(LAMBDA_ENV) | {"PYTHONPYCACHEPREFIX": cache},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    times = {}
    for line in completed.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            times[match[2]] = int(match[1])
    return times


def _env(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without AWS, Powertools or bytecode settings, plus these variables."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_", "_X_AMZN", "PYTHONDONTWRITEBYTECODE"))
        and name not in ("PYTHONPYCACHEPREFIX", "PYTHONPATH")
    }
    return kept | dict(variables)


def _frozen(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(env.items()))
