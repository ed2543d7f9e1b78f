"""Figure 2: one Completed answer holding a large result, streamed to S3 by the real adapters.

The check runs in a fresh child process: the real AsposeApi against the emulator (its own process,
`large` fault) and the real S3ResultStore against moto's server (its own process, so the uploaded
object is not in the measured memory). Peak RSS is the kernel's high-water mark (VmHWM in
/proc/self/status), reset through /proc/self/clear_refs just before the check: exact, no sampling.
"""

from __future__ import annotations

import gc
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.report import Figure, Table, Target
from benchmarks.services import (
    CLIENT,
    LAMBDA_MB_PER_VCPU,
    EmulatorClient,
    aws_client,
    child_main,
    deploy,
    emulator,
    function_env,
    memory_size_mb,
    moto_server,
    run_child,
)
from ocr_poller.model import StoredResult

MIB = 1024 * 1024
TARGET_GROWTH_MIB = 64
TARGET_SHARE_OF_MEMORY_SIZE = 0.75  # the process's peak RSS, of the function's MemorySize


def figure(quick: bool) -> Figure:
    """Store a 200 MiB result twice (first check of the process, then warm); quick runs do the same."""
    size = 200 * MIB
    memory_size = memory_size_mb()
    with moto_server() as moto, emulator(processing_seconds=3600) as emu:
        stack = deploy(moto.url)
        client = EmulatorClient(emu.url)
        tasks = [client.submit({"kind": "large", "size": size}) for _ in range(2)]
        measured = run_child(
            "benchmarks.memory",
            {"emulator": emu.url, "bucket": stack.bucket_name, "tasks": tasks},
            function_env(stack, moto.url, emu.url),
            # Lambda's CPU for the template's MemorySize, so the time is what the function would take.
            cpu_share=memory_size / LAMBDA_MB_PER_VCPU,
        )
        runs = measured["runs"]
        stored = [_s3_sha256(moto.url, stack.region, stack.bucket_name, run["key"]) for run in runs]
    expected = _expected_sha256(size)
    exact = all(
        sha == expected == run["sha256"] and run["size"] == size
        for sha, run in zip(stored, runs, strict=True)
    )
    for run in runs:
        run["growth_mib"] = (run["peak_kib"] - run["baseline_kib"]) / 1024
        run["mib_per_second"] = size / MIB / run["seconds"]
    growth = max(run["growth_mib"] for run in runs)
    # The whole process: the handler imported and wired, then each check's high-water mark.
    peak_mib = max([measured["imported_peak_kib"], *(run["peak_kib"] for run in runs)]) / 1024
    share = peak_mib / memory_size
    table = Table(
        f"Figure 2 - a Completed answer holding a {size // MIB} MiB result ({size:,} bytes; "
        f"{size * 4 / 3 / MIB:.0f} MiB of Base64 on the wire), streamed to S3",
        ["check", "RSS before", "peak RSS", "growth", "time", "throughput", "S3 requests", "byte-exact"],
        [
            [
                name,
                f"{run['baseline_kib'] / 1024:.1f} MiB",
                f"{run['peak_kib'] / 1024:.1f} MiB",
                f"{run['growth_mib']:.1f} MiB",
                f"{run['seconds']:.2f} s",
                f"{run['mib_per_second']:.1f} MiB/s",
                ", ".join(f"{op.replace('MultipartUpload', '')} x{n}" for op, n in run["s3_calls"].items()),
                "yes" if sha == expected == run["sha256"] else "NO",
            ]
            for name, run, sha in zip(("first in the process", "second (warm)"), runs, stored, strict=True)
        ],
        notes=[
            "Real AsposeApi + S3ResultStore in a fresh child process; emulator (`large` fault) and moto's "
            "server each in a process of their own, over HTTP on 127.0.0.1. The child gets the share of a "
            f"CPU Lambda gives MemorySize ({memory_size} MB / {LAMBDA_MB_PER_VCPU} MB per vCPU), where "
            f"this machine allows a cgroup quota: {'yes' if measured['cpu_limited'] else 'NO, unlimited'}.",
            "Peak RSS = VmHWM of the child from /proc/self/status, reset through /proc/self/clear_refs just "
            "before the check (exact kernel high-water mark, no sampling); growth = peak - VmRSS before.",
            "Byte-exact: sha256 of the object read back from moto = sha256 of emulator.large_result(size) "
            "= the sha256 the store computed on the way.",
            "The child imports ocr_poller.handler and builds its wiring (the four AWS clients) first, as "
            f"a warm function has: {measured['imported_peak_kib'] / 1024:.1f} MiB peak before any check. "
            "Lambda's runtime client (awslambdaric) adds a few MiB of its own to a Python process like it.",
            f"Process peak RSS {peak_mib:.1f} MiB = {share:.0%} of MemorySize {memory_size} MB "
            "(template.yaml).",
            f"Targets: growth <= {TARGET_GROWTH_MIB} MiB; process peak <= "
            f"{TARGET_SHARE_OF_MEMORY_SIZE:.0%} of MemorySize.",
        ],
    )
    return Figure(
        "memory",
        [table],
        {
            "size_bytes": size,
            "runs": runs,
            "byte_exact": exact,
            "imported_peak_kib": measured["imported_peak_kib"],
            "process_peak_mib": peak_mib,
            "memory_size_mb": memory_size,
        },
        [
            Target(
                "2 memory: process peak RSS / MemorySize",
                f"{peak_mib:.0f} MiB / {memory_size} MB = {share:.0%}",
                f"<= {TARGET_SHARE_OF_MEMORY_SIZE:.0%}",
                peak_mib <= TARGET_SHARE_OF_MEMORY_SIZE * memory_size,
            ),
            Target(
                "2 memory: peak RSS growth (200 MiB)",
                f"{growth:.1f} MiB",
                f"<= {TARGET_GROWTH_MIB} MiB",
                growth <= TARGET_GROWTH_MIB,
            ),
            Target("2 memory: stored byte-exact", "yes" if exact else "no", "sha256 equal", exact),
        ],
    )


def _s3_sha256(endpoint_url: str, region: str, bucket: str, key: str) -> str:
    s3 = aws_client("s3", endpoint_url, region)
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def _expected_sha256(size: int) -> str:
    from ocr_poller_tools.emulator import large_result

    digest = hashlib.sha256()
    for chunk in large_result(size):
        digest.update(chunk)
    return digest.hexdigest()


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match[1])


def _measure(arguments: dict[str, Any]) -> dict[str, Any]:
    """In the child: each task checked once, memory and time measured around the check alone."""
    import os
    from collections import Counter

    import boto3

    import ocr_poller.handler  # noqa: F401  (every module of the function, as a warm one has them)
    from ocr_poller.adapters.aspose import AsposeApi
    from ocr_poller.adapters.s3 import S3ResultStore
    from ocr_poller.wiring import real_wiring

    real_wiring()  # its clients built
    gc.collect()
    imported_peak = _status_kib("VmHWM")
    s3 = boto3.client("s3")
    calls: Counter[str] = Counter()
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.update([model.name]))
    store = S3ResultStore(arguments["bucket"], os.environ.get("RESULTS_PREFIX", "results/"), client=s3)
    api = AsposeApi(arguments["emulator"], lambda: CLIENT)
    runs = []
    for task_id in arguments["tasks"]:

        def sink(index: int, kind: str, chunks: Iterator[bytes], task_id: str = task_id) -> StoredResult:
            return store.put(task_id, index, kind, chunks)

        calls.clear()
        gc.collect()
        baseline = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        started = time.perf_counter()
        answer = api.check("RecognizeLabel", task_id, sink, until=time.time() + 600)
        seconds = time.perf_counter() - started
        peak = _status_kib("VmHWM")
        (result,) = answer.results
        runs.append(
            {
                "baseline_kib": baseline,
                "peak_kib": peak,
                "seconds": seconds,
                "key": result.key,
                "size": result.size,
                "sha256": result.sha256,
                "s3_calls": dict(calls),
            }
        )
    return {
        "runs": runs,
        "imported_peak_kib": imported_peak,
        "cpu_limited": os.environ.get("OCR_BENCH_CPU_LIMITED") == "1",
    }


if __name__ == "__main__":
    child_main(_measure)
