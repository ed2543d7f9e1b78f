"""Figure 5c: dollars per million tasks at the template's defaults, from what is measured.

Counted per task: the checks of figure 1 (schedule), the AWS requests each kind of check makes as
figure 5a counts them in real runs (scale), the record sizes it read back, and - measured here - the
billed duration and the log bytes of an invocation at the template's defaults: one SQS record per
invocation (what low traffic gives), the API answering in 200 ms, the handler as deployed (INFO logs, EMF
metrics, Lambda's context), under the share of a CPU Lambda gives the template's MemorySize (a cgroup CPU
quota, where this machine allows one). Also measured: invocations of a full batch (the template's
BatchSize, what high traffic gives). Priced beside them: the design's floor at one record per
invocation (the same requests, Lambda billed for the API's 200 ms alone, no log line), and the same
checks in a Lambda that sleeps between them and in a Step Functions workflow whose Wait state replaces
the SQS delay. Free tiers and monthly fixed costs are left out of the totals and named in the notes.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.report import Figure, Table, Target
from benchmarks.services import (
    AS_DEPLOYED,
    LAMBDA_MB_PER_VCPU,
    EmulatorClient,
    aws_client,
    child_main,
    deploy,
    emulator,
    function_env,
    latency_fault,
    memory_size_mb,
    moto_server,
    queue_arn,
    run_child,
    sqs_batch_size,
    sqs_message,
)

PRICES_AS_OF = "us-east-1 list prices as of 2025, from AWS's public price pages; free tiers ignored"
PRICES = {  # dollars per unit
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB request
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand, since the November 2024 reduction
    "dynamodb_read_unit": 0.125 / 1e6,
    "s3_put": 0.005 / 1e3,  # S3 Standard PUT/COPY/POST/LIST
    "eventbridge_event": 1.00 / 1e6,  # custom events, per 64 KB
    "stepfunctions_transition": 0.025 / 1e3,  # standard workflows
    "logs_gb": 0.50,  # CloudWatch Logs ingestion, Standard class
    "xray_trace": 5.00 / 1e6,  # traces recorded
}
TARGET_DOLLARS = 30.0
API_SECONDS = 0.2  # the API latency the template's defaults are priced at
LOG_EVENT_OVERHEAD_BYTES = 26  # CloudWatch Logs counts each event's message plus 26 bytes
XRAY_SAMPLED = 0.05  # X-Ray's default rule past its reservoir of 1 trace a second (Tracing: Active)
RESULTS_PER_LABEL, RESULTS_PER_PDF = 1, 2  # e.g. Text; TextAndPdf
KINDS = ("requeued", "completed")


@dataclass(frozen=True)
class Usage:
    """What one task consumes under one design."""

    lambda_requests: float = 0.0
    gb_seconds: float = 0.0
    sqs_requests: float = 0.0
    read_units: float = 0.0
    write_units: float = 0.0
    s3_puts: float = 0.0
    events: float = 0.0
    transitions: float = 0.0
    log_bytes: float = 0.0
    traces: float = 0.0

    def dollars(self) -> dict[str, float]:
        """Cost per million tasks, per line."""
        per_task = {
            "Lambda requests": self.lambda_requests * PRICES["lambda_request"],
            "Lambda duration (arm64 GB-s)": self.gb_seconds * PRICES["lambda_gb_second_arm64"],
            "SQS requests": self.sqs_requests * PRICES["sqs_request"],
            "DynamoDB reads (RRU)": self.read_units * PRICES["dynamodb_read_unit"],
            "DynamoDB writes (WRU)": self.write_units * PRICES["dynamodb_write_unit"],
            "S3 PUTs": self.s3_puts * PRICES["s3_put"],
            "EventBridge events": self.events * PRICES["eventbridge_event"],
            "Step Functions transitions": self.transitions * PRICES["stepfunctions_transition"],
            "CloudWatch Logs": self.log_bytes / 1e9 * PRICES["logs_gb"],
            "X-Ray traces": self.traces * PRICES["xray_trace"],
        }
        return {line: value * 1e6 for line, value in per_task.items()}


def measure(quick: bool) -> dict[str, Any]:
    """Invocations at the template's defaults, at its MemorySize and at 1,024 MB, one record each, and
    of full batches at its MemorySize: durations, CPU, logs."""
    samples = 8 if quick else 25
    memory_mb, batch_size = memory_size_mb(), sqs_batch_size()
    measured: dict[str, Any] = {"memory_mb": memory_mb, "api_seconds": API_SECONDS, "by_memory": {}}
    for memory in sorted({memory_mb, 1024}):
        measured["by_memory"][str(memory)] = {kind: _measure_kind(kind, samples, memory) for kind in KINDS}
    measured["full_batches"] = {kind: _measure_kind(kind, samples, memory_mb, batch_size) for kind in KINDS}
    return measured


def _measure_kind(kind: str, samples: int, memory_mb: int, records: int = 1) -> dict[str, Any]:
    """`samples` warm invocations of `records` checks of one kind (after one that warms up), in a child."""
    # Re-queued checks find their task still running; completing ones find it done (a label's text).
    # Each check waits API_SECONDS for its answer.
    with moto_server() as moto, emulator(processing_seconds=3600 if kind == "requeued" else 0) as emu:
        stack = deploy(moto.url)
        sqs = aws_client("sqs", moto.url, stack.region)
        client = EmulatorClient(emu.url)
        slow = latency_fault(API_SECONDS)
        tasks = [client.submit(slow) for _ in range((samples + 1) * records)]
        env = function_env(
            stack,
            moto.url,
            emu.url,
            # As deployed: INFO logs and metrics on, Lambda's variables set.
            **AS_DEPLOYED,
            LAMBDA_TASK_ROOT="/var/task",
            AWS_LAMBDA_FUNCTION_NAME="ocr-poller-PollerFunction-AbCdEf123456",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory_mb),
        )
        return run_child(
            "benchmarks.cost",
            {
                "tasks": tasks,
                "kind": kind,
                "queue_arn": queue_arn(sqs, stack.queue_url),
                "region": stack.region,
                "memory_mb": memory_mb,
                "records": records,
            },
            env,
            cpu_share=memory_mb / LAMBDA_MB_PER_VCPU,
        )


def figure(schedule: dict[str, Any], scale: dict[str, Any], timing: dict[str, Any]) -> Figure:
    """Price ours and the two alternatives from the other figures' measurements and this one's."""
    memory_mb = timing["memory_mb"]
    gb = memory_mb / 1024
    checks = schedule["ours_mean_checks"]
    results = schedule["label_share"] * RESULTS_PER_LABEL + (1 - schedule["label_share"]) * RESULTS_PER_PDF
    per_check = _requests_per_check(scale)
    units = {
        kind: (math.ceil(scale["item_bytes"][kind] / 4096), math.ceil(scale["item_bytes"][kind] / 1024))
        for kind in KINDS
    }
    # Per task: checks - 1 re-queued checks and one that completes.
    share = {"requeued": checks - 1, "completed": 1.0}

    def per_task(operation: str) -> float:
        return float(sum(share[kind] * per_check[kind].get(operation, 0) for kind in KINDS))

    def usage(measured: dict[str, Any], memory: int) -> Usage:
        invocations = checks / measured["requeued"]["records"]
        return Usage(
            lambda_requests=invocations,
            gb_seconds=sum(share[kind] * _billed_seconds_per_check(measured[kind]) for kind in KINDS)
            * memory
            / 1024,
            # The submitter's first SendMessage, the successors', and the event source's receive and
            # delete for every invocation.
            sqs_requests=1 + per_task("sqs:SendMessage") + 2 * invocations,
            read_units=sum(
                share[kind] * per_check[kind].get("dynamodb:GetItem", 0) * units[kind][0] for kind in KINDS
            ),
            write_units=sum(
                share[kind]
                * sum(per_check[kind].get(op, 0) for op in ("dynamodb:PutItem", "dynamodb:UpdateItem"))
                * units[kind][1]
                for kind in KINDS
            ),
            s3_puts=results * per_check["completed"].get("s3:PutObject", 0),
            events=per_task("events:PutEvents"),
            # A task's first check is a re-queued one with its own INFO line.
            log_bytes=sum(share[kind] * _log_bytes_per_check(measured[kind]) for kind in KINDS)
            + _first_check_extra_log_bytes(measured["requeued"]),
            traces=invocations * XRAY_SAMPLED,
        )

    single = timing["by_memory"][str(memory_mb)]
    batch_size = timing["full_batches"]["requeued"]["records"]
    ours = usage(single, memory_mb)
    full_batches = usage(timing["full_batches"], memory_mb)
    # This design's floor at one record per invocation: its requests (the contract's, the consistent read,
    # X-Ray's sample) and Lambda billed for the API's answer alone - no CPU, no other latency, no log line.
    floor = replace(ours, gb_seconds=checks * API_SECONDS * gb, log_bytes=0.0)
    requeued_seconds = _billed_seconds_per_check(single["requeued"])
    sleeping_invocations = schedule["ours_mean_invocations_if_sleeping"]
    sleeping = Usage(
        lambda_requests=sleeping_invocations,
        gb_seconds=(schedule["ours_mean_seconds_to_seen"] + requeued_seconds) * gb,
        sqs_requests=3,  # its request arrives once: send, receive, delete
        write_units=units["completed"][1],  # one record, written at the end
        s3_puts=results,
        events=1,
        log_bytes=_log_bytes_per_check(single["completed"]) * sleeping_invocations,
        traces=sleeping_invocations * XRAY_SAMPLED,
    )
    step_functions = Usage(
        lambda_requests=checks,
        gb_seconds=checks * requeued_seconds * gb,
        write_units=units["completed"][1],
        s3_puts=results,
        events=1,
        # Check (Task) and Done? (Choice) per check, Wait between checks, Succeed at the end.
        transitions=3 * checks,
        log_bytes=ours.log_bytes,
        traces=checks * XRAY_SAMPLED,
    )
    ours_name = f"ours ({memory_mb} MB)"
    designs = {
        ours_name: ours,
        f"ours, {batch_size} records an invocation": full_batches,
        "floor at 1 record an invocation": floor,
        "ours at 1024 MB": usage(timing["by_memory"]["1024"], 1024),
        f"Lambda sleeping between checks ({memory_mb} MB)": sleeping,
        f"Step Functions + Wait state ({memory_mb} MB)": step_functions,
    }
    priced = {name: design.dollars() for name, design in designs.items()}
    lines = list(next(iter(priced.values())))
    rows: list[list[object]] = [
        [line, *(_money(priced[name][line]) for name in designs)]
        for line in lines
        if any(priced[name][line] for name in designs)
    ]
    totals = {name: sum(lines_.values()) for name, lines_ in priced.items()}
    rows.append(["total", *(_money(totals[name]) for name in designs)])
    break_even = _records_for(TARGET_DOLLARS, ours, full_batches, batch_size)
    table = Table(
        f"Figure 5c - cost in $ per million tasks at the template's defaults ({PRICES_AS_OF})",
        ["", *designs],
        rows,
        _notes(schedule, scale, timing, per_check, units, results, checks, break_even),
    )
    return Figure(
        "cost",
        [table],
        {
            "prices": PRICES,
            "prices_as_of": PRICES_AS_OF,
            "memory_mb": memory_mb,
            "timing": timing,
            "per_check": per_check,
            "per_million_tasks": {name: {**lines_, "total": totals[name]} for name, lines_ in priced.items()},
            "records_an_invocation_for_target": break_even,
        },
        [
            Target(
                "5c cost per million tasks (template defaults, 1 record an invocation)",
                _money(totals[ours_name]),
                f"<= ${TARGET_DOLLARS:.0f}",
                totals[ours_name] <= TARGET_DOLLARS,
            )
        ],
    )


def _records_for(target: float, single: Usage, full: Usage, batch_size: int) -> int | None:
    """The fewest records an invocation at which ours costs at most `target` (None: not even a full batch).

    Between the two measured points, an invocation's billed duration is taken as growing linearly with its
    records; what each check asks of SQS, DynamoDB, S3 and EventBridge, and its log lines, stay the same.
    """
    invocation_seconds_single = single.gb_seconds / single.lambda_requests
    invocation_seconds_full = full.gb_seconds / full.lambda_requests
    checks = single.lambda_requests
    for records in range(1, batch_size + 1):
        weight = (records - 1) / (batch_size - 1)
        invocations = checks / records
        seconds = invocation_seconds_single + (invocation_seconds_full - invocation_seconds_single) * weight
        usage = replace(
            single,
            lambda_requests=invocations,
            gb_seconds=invocations * seconds,
            sqs_requests=single.sqs_requests - 2 * checks + 2 * invocations,
            traces=invocations * XRAY_SAMPLED,
        )
        if sum(usage.dollars().values()) <= target:
            return records
    return None


def _notes(
    schedule: dict[str, Any],
    scale: dict[str, Any],
    timing: dict[str, Any],
    per_check: dict[str, dict[str, float]],
    units: dict[str, tuple[int, int]],
    results: float,
    checks: float,
    break_even: int | None,
) -> list[str]:
    memory = str(timing["memory_mb"])
    measured = timing["by_memory"][memory]
    batches = timing["full_batches"]
    batch_size = batches["requeued"]["records"]
    limited = all(measured[kind]["cpu_limited"] for kind in KINDS)
    cpu = f"{int(memory) / LAMBDA_MB_PER_VCPU:.0%} of a CPU" if limited else "this machine's CPU, unlimited"
    counts = "; ".join(
        f"{kind}: " + ", ".join(f"{op} {n:.2f}" for op, n in sorted(per_check[kind].items()))
        for kind in KINDS
    )
    return [
        f"Checks per task {checks:.2f} (figure 1: {checks - 1:.2f} re-queued + 1 completing); "
        f"{results:.1f} results per task ({schedule['label_share']:.0%} labels with 1, the rest PDFs with "
        "2).",
        f"Requests per check, as figure 5a counted them: {counts}.",
        f"Records of {scale['item_bytes']['requeued']} / {scale['item_bytes']['completed']} bytes "
        f"(re-queued / completed: {units['requeued'][0]} / {units['completed'][0]} RRU per consistent read, "
        f"{units['requeued'][1]} / {units['completed'][1]} WRU per write).",
        "Invocation, one record, API answering in "
        f"{timing['api_seconds'] * 1000:.0f} ms, at {memory} MB with {cpu}: mean billed "
        + ", ".join(
            f"{kind} {_billed_seconds_per_check(measured[kind]) * 1000:.0f} ms "
            f"(CPU {statistics.fmean(measured[kind]['cpu']) * 1000:.0f} ms)"
            for kind in KINDS
        )
        + "; at 1024 MB: "
        + ", ".join(
            f"{kind} {_billed_seconds_per_check(timing['by_memory']['1024'][kind]) * 1000:.0f} ms"
            for kind in KINDS
        )
        + f"; {batch_size} records an invocation, at {memory} MB: "
        + ", ".join(
            f"{kind} {_billed_seconds_per_check(batches[kind]) * batch_size * 1000:.0f} ms" for kind in KINDS
        )
        + ". Billed = each invocation rounded up to the ms; INIT of the rare cold start left out.",
        "Logs per check as written at INFO (Powertools line + EMF metrics, Lambda context and trace id on "
        "the line), + 26 bytes per event: "
        + ", ".join(f"{kind} {_log_bytes_per_check(measured[kind]):.0f} bytes" for kind in KINDS)
        + f", and a task's first check {_first_check_extra_log_bytes(measured['requeued']):.0f} bytes more"
        + " (routine re-queues write nothing at INFO, and no metric)"
        + "; Lambda's START/END/REPORT lines: none (template: LogFormat JSON, SystemLogLevel WARN).",
        "SQS: the first SendMessage, one per successor, and the event source's ReceiveMessage + "
        "DeleteMessageBatch per invocation. X-Ray: 5% of invocations past the reservoir.",
        "Floor: the same requests, and each invocation billed for the API's 200 ms alone, no log line. "
        "Records an invocation come with traffic (BatchSize "
        f"{batch_size}, no batching window): "
        + (
            f"at least {break_even} on average bring ours to ${TARGET_DOLLARS:.0f} or less"
            if break_even
            else f"not even {batch_size} bring ours to ${TARGET_DOLLARS:.0f}"
        )
        + " (billed time interpolated between the two measured sizes).",
        "Fixed per month, whatever the volume, not in the totals: X-Ray's reservoir (up to 1 trace a "
        "second, ~$13 beyond the free 100,000), the EMF custom metrics ($0.30 each), the secret ($0.40), "
        "the event source's empty long polls (~$0.30); storage of results and records.",
        "Sleeping Lambda: the same checks inside one invocation billed for the whole wait "
        f"({schedule['ours_mean_seconds_to_seen']:.0f} s mean from first check to seen, a new invocation "
        "every 15 min). Step Functions: one Lambda check per loop, 3 state transitions per check; the "
        "execution holds the state.",
    ]


def _billed_seconds_per_check(measured: dict[str, Any]) -> float:
    """Mean billed duration of an invocation (each rounded up to the millisecond), per record in it."""
    billed = statistics.fmean(math.ceil(seconds * 1000) / 1000 for seconds in measured["wall"])
    return billed / int(measured["records"])


def _log_bytes_per_check(measured: dict[str, Any]) -> float:
    """Mean bytes CloudWatch Logs ingests per check."""
    written = measured["log_bytes"] + LOG_EVENT_OVERHEAD_BYTES * measured["log_lines"]
    return float(written) / len(measured["wall"]) / int(measured["records"])


def _first_check_extra_log_bytes(measured: dict[str, Any]) -> float:
    """What a task's first check writes beyond a routine re-queued one."""
    first = measured["first_log_bytes"] + LOG_EVENT_OVERHEAD_BYTES * measured["first_log_lines"]
    return float(first) / len(measured["wall"]) / int(measured["records"]) - _log_bytes_per_check(measured)


def _requests_per_check(scale: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean requests per check of each kind, over every level measured."""
    kinds: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        phases = [level[kind] for level in scale["levels"]]
        checks = sum(phase["checks"] for phase in phases)
        operations = {op for phase in phases for op in phase["calls"] if not op.startswith("aspose:")}
        kinds[kind] = {op: sum(phase["calls"].get(op, 0) for phase in phases) / checks for op in operations}
    return kinds


def _money(value: float) -> str:
    return f"${value:,.2f}" if value else "-"


# --- in the child ----------------------------------------------------------------------------------


def _measure(arguments: dict[str, Any]) -> dict[str, Any]:
    """In the child: one invocation per group of `records` tasks; the first warms the function up."""
    from ocr_poller_tools.localrun import LocalContext, sqs_event

    from ocr_poller import handler

    memory_mb, records, tasks = arguments["memory_mb"], arguments["records"], arguments["tasks"]
    measured: dict[str, Any] = {
        "records": records,
        "wall": [],
        "cpu": [],
        "log_bytes": 0,
        "log_lines": 0,
        "first_log_bytes": 0,
        "first_log_lines": 0,
    }

    def event(group: list[str], attempt: int | None = None) -> Any:
        hint = {} if attempt is None else {"attempt": attempt}
        messages: list[Any] = [
            sqs_message({"taskId": task, "endpoint": "RecognizeLabel", **hint}) for task in group
        ]
        return sqs_event(messages, arguments["queue_arn"], arguments["region"])

    for index in range(len(tasks) // records):
        group = tasks[index * records : (index + 1) * records]
        measuring = index > 0  # the first warms the function up
        checks = event(group)
        if arguments["kind"] == "requeued":
            # A task's first check writes more at INFO than the routine ones after it: measured apart.
            logs_before = _stdout()
            handler.lambda_handler(checks, LocalContext(function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"]))
            logs_after = _stdout()
            if measuring:
                measured["first_log_bytes"] += logs_after[0] - logs_before[0]
                measured["first_log_lines"] += logs_after[1] - logs_before[1]
            checks = event(group, attempt=1)
        # Lambda sets the trace header per invocation; Powertools puts it on every log line.
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0"
        # Lambda's context, as the deployed function gets it.
        context = LocalContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"], memory_limit_in_mb=memory_mb
        )
        logs_before = _stdout()
        started, cpu = time.perf_counter(), time.process_time()
        response = handler.lambda_handler(checks, context)
        wall, used = time.perf_counter() - started, time.process_time() - cpu
        logs_after = _stdout()
        if response != {"batchItemFailures": []}:
            raise RuntimeError(f"the checks of {group} failed: {response}")
        if measuring:
            measured["wall"].append(wall)
            measured["cpu"].append(used)
            measured["log_bytes"] += logs_after[0] - logs_before[0]
            measured["log_lines"] += logs_after[1] - logs_before[1]
    measured["cpu_limited"] = os.environ.get("OCR_BENCH_CPU_LIMITED") == "1"
    return measured


def _stdout() -> tuple[int, int]:
    """Bytes and lines written to stdout so far (a file: see run_child)."""
    sys.stdout.flush()
    with open(f"/proc/self/fd/{sys.stdout.fileno()}", "rb") as written:
        data = written.read()
    return len(data), data.count(b"\n")


if __name__ == "__main__":
    child_main(_measure)
