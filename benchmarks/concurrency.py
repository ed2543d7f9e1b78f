"""Figure 3: an SQS batch of ten requests against an API answering in 300 ms, through the real handler.

The handler (batch.check_batch) runs warm in a child process with the function's environment;
moto's server and the emulator (`latency` fault on every check) run in processes of their own.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.report import Figure, Table, Target
from benchmarks.services import (
    EmulatorClient,
    aws_client,
    child_main,
    deploy,
    emulator,
    function_env,
    latency_fault,
    moto_server,
    queue_arn,
    run_child,
    sqs_message,
)

API_SECONDS = 0.3
BATCH = 10
TARGET_RATIO = 1.5


def figure(quick: bool) -> Figure:
    """Median time of a one-request batch and of a ten-request batch, and their ratio."""
    repeats = 3 if quick else 7
    with moto_server() as moto, emulator(processing_seconds=3600) as emu:
        stack = deploy(moto.url)
        sqs = aws_client("sqs", moto.url, stack.region)
        client = EmulatorClient(emu.url)
        slow = latency_fault(API_SECONDS)
        rounds = [
            {"single": [client.submit(slow)], "batch": [client.submit(slow) for _ in range(BATCH)]}
            for _ in range(repeats + 1)  # the first round warms the function up
        ]
        measured = run_child(
            "benchmarks.concurrency",
            {
                "rounds": rounds,
                "queue_arn": queue_arn(sqs, stack.queue_url),
                "region": stack.region,
                "servers": [moto.pid, emu.pid],
            },
            function_env(stack, moto.url, emu.url),
        )
        successors = _queued(sqs, stack.queue_url)
    single = statistics.median(measured["single"])
    batch = statistics.median(measured["batch"])
    ratio = batch / single
    table = Table(
        f"Figure 3 - SQS batches through the handler, API answering in {API_SECONDS * 1000:.0f} ms "
        f"(median of {repeats} warm invocations)",
        ["invocation", "median", "min", "max", "per check", "CPU per check", "servers' CPU per check"],
        [_row(measured, "single", 1), _row(measured, "batch", BATCH)]
        + [["ratio batch / single", f"{ratio:.2f}x", "", "", "", "", ""]],
        notes=[
            "handler.lambda_handler with SQS events (localrun.sqs_event), in a child process; each check "
            "makes the requests of figure 5a (a GET of the emulator, `latency` fault of 300 ms; DynamoDB "
            "and SQS on moto's server, over HTTP).",
            "CPU per check: CPU time of the handler's process (all threads) during the invocation / checks - "
            "the part the GIL serialises; servers' CPU: that of moto's server and the emulator, which share "
            "this machine's two cores with it (sampled from /proc at 10 ms resolution).",
            f"Every request succeeded (no batchItemFailures): {'yes' if measured['no_failures'] else 'NO'}; "
            f"successors on the poll queue: {successors} of {(repeats + 1) * (BATCH + 1)} requests.",
            f"Target: a batch of {BATCH} takes <= {TARGET_RATIO}x a single request.",
        ],
    )
    return Figure(
        "concurrency",
        [table],
        {
            **{f"{name}_seconds": values for name, values in measured.items() if name != "no_failures"},
            "ratio": ratio,
        },
        [
            Target(
                "3 concurrency: batch of 10 / single",
                f"{ratio:.2f}x",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
            )
        ],
    )


def _row(measured: dict[str, Any], kind: str, size: int) -> list[object]:
    times = measured[kind]
    return [
        f"batch of {size}",
        f"{statistics.median(times) * 1000:.0f} ms",
        f"{min(times) * 1000:.0f} ms",
        f"{max(times) * 1000:.0f} ms",
        f"{statistics.median(times) * 1000 / size:.0f} ms",
        f"{statistics.median(measured[kind + '_cpu']) * 1000 / size:.1f} ms",
        f"{statistics.median(measured[kind + '_servers']) * 1000 / size:.1f} ms",
    ]


def _queued(sqs: Any, queue_url: str, patience: float = 30.0) -> int:
    """Messages on the queue, counted once no delay is running: moto counts the visible and the delayed
    ones one after the other, so a message whose delay ends in between would be in neither."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    give_up = time.monotonic() + patience
    while True:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        if attributes.get("ApproximateNumberOfMessagesDelayed", "0") == "0" or time.monotonic() > give_up:
            return sum(int(attributes.get(name, "0")) for name in names)
        time.sleep(0.5)


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(arguments: dict[str, Any]) -> dict[str, Any]:
    """In the child: one warm-up round, then time each batch."""
    from ocr_poller_tools.localrun import LocalContext, sqs_event

    from ocr_poller import handler

    def servers_cpu() -> float:
        return sum(_process_cpu_seconds(pid) for pid in arguments["servers"])

    def invoke(task_ids: list[str]) -> tuple[float, float, float, bool]:
        messages: list[Any] = [
            sqs_message({"taskId": task_id, "endpoint": "RecognizeLabel"}) for task_id in task_ids
        ]
        event = sqs_event(messages, arguments["queue_arn"], arguments["region"])
        started, cpu, servers = time.perf_counter(), time.process_time(), servers_cpu()
        response = handler.lambda_handler(event, LocalContext())
        ok = response == {"batchItemFailures": []}
        return time.perf_counter() - started, time.process_time() - cpu, servers_cpu() - servers, ok

    measured: dict[str, list[float]] = {
        kind + part: [] for kind in ("single", "batch") for part in ("", "_cpu", "_servers")
    }
    no_failures = True
    for index, round_ in enumerate(arguments["rounds"]):
        for kind in ("single", "batch"):
            seconds, cpu, servers, ok = invoke(round_[kind])
            no_failures = no_failures and ok
            if index:  # the first round warms the function up
                measured[kind].append(seconds)
                measured[f"{kind}_cpu"].append(cpu)
                measured[f"{kind}_servers"].append(servers)
    return {**measured, "no_failures": no_failures}


if __name__ == "__main__":
    child_main(_measure)
