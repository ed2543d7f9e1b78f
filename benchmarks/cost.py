"""Figure 5c: dollars per million tasks, from the measured checks, durations and requests.

Ours is priced at two batch sizes (Lambda hands the function 1 to 10 due messages at a time), beside
a Lambda that sleeps between the same checks and a Step Functions standard workflow whose Wait state
replaces the SQS delay. Free tiers are left out.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Any

from ocr_poller_tools.sandbox import load_template

from benchmarks.report import Figure, Table
from benchmarks.services import TEMPLATE

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
PLATFORM_LOG_BYTES = 350  # Lambda's own START, END and REPORT lines per invocation (estimate)
XRAY_SAMPLED = 0.05  # X-Ray's default rule: 1 request a second, then 5% (Tracing: Active)
RESULTS_PER_LABEL, RESULTS_PER_PDF = 1, 2  # e.g. Text; TextAndPdf


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


def figure(
    schedule: dict[str, Any], concurrency: dict[str, Any], scale: dict[str, Any], peak_rss_mib: float | None
) -> Figure:
    """Price ours and the two alternatives from the other figures' measurements."""
    memory_gb = _memory_mb() / 1024
    checks = schedule["ours_mean_checks"]
    single = statistics.median(concurrency["single_seconds"])
    batch = statistics.median(concurrency["batch_seconds"])
    per_check = _requests_per_check(scale)
    results = schedule["label_share"] * RESULTS_PER_LABEL + (1 - schedule["label_share"]) * RESULTS_PER_PDF
    read_units = math.ceil(max(scale["item_bytes"].values()) / 4096)
    write_units = math.ceil(max(scale["item_bytes"].values()) / 1024)
    log_per_check = scale["log_bytes_per_check"]
    requeued, completed = per_check["requeued"], per_check["completed"]
    # Per task: checks - 1 re-queued checks and one that completes.
    ddb_reads = (checks - 1) * requeued.get("dynamodb:GetItem", 0) + completed.get("dynamodb:GetItem", 0)
    ddb_writes = sum(
        (checks - 1) * requeued.get(op, 0) + completed.get(op, 0)
        for op in ("dynamodb:PutItem", "dynamodb:UpdateItem")
    )
    sends = (checks - 1) * requeued.get("sqs:SendMessage", 0) + completed.get("sqs:SendMessage", 0)

    def ours(batch_size: int, seconds: float) -> Usage:
        invocations = checks / batch_size
        return Usage(
            lambda_requests=invocations,
            gb_seconds=invocations * math.ceil(seconds * 1000) / 1000 * memory_gb,
            # The first request's SendMessage, the successors', and the event source's receive + delete.
            sqs_requests=1 + sends + 2 * invocations,
            read_units=ddb_reads * read_units,
            write_units=ddb_writes * write_units,
            s3_puts=results,
            events=1,
            log_bytes=checks * log_per_check + invocations * PLATFORM_LOG_BYTES,
            traces=invocations * XRAY_SAMPLED,
        )

    sleeping_invocations = schedule["ours_mean_invocations_if_sleeping"]
    sleeping = Usage(
        lambda_requests=sleeping_invocations,
        gb_seconds=(schedule["ours_mean_seconds_to_seen"] + single) * memory_gb,
        sqs_requests=3,  # its request arrives once: send, receive, delete
        write_units=write_units,  # one record, written at the end
        s3_puts=results,
        events=1,
        log_bytes=checks * log_per_check + sleeping_invocations * PLATFORM_LOG_BYTES,
        traces=sleeping_invocations * XRAY_SAMPLED,
    )
    step_functions = Usage(
        lambda_requests=checks,
        gb_seconds=checks * math.ceil(single * 1000) / 1000 * memory_gb,
        write_units=write_units,
        s3_puts=results,
        events=1,
        # Check (Task) and Done? (Choice) per check, Wait between checks, Succeed at the end.
        transitions=3 * checks,
        log_bytes=checks * (log_per_check + PLATFORM_LOG_BYTES),
        traces=checks * XRAY_SAMPLED,
    )
    designs = {
        "ours, 1 check/invocation": ours(1, single),
        "ours, 10 checks/invocation": ours(10, batch),
        "Lambda sleeping between checks": sleeping,
        "Step Functions + Wait state": step_functions,
    }
    priced = {name: usage.dollars() for name, usage in designs.items()}
    lines = list(next(iter(priced.values())))
    rows: list[list[object]] = [
        [line, *(_money(priced[name][line]) for name in designs)]
        for line in lines
        if any(priced[name][line] for name in designs)
    ]
    rows.append(["total", *(_money(sum(priced[name].values())) for name in designs)])
    # The same designs with less memory: duration is billed per GB, everything else stays.
    smaller = {"ours, 1 check/invocation": 256, "ours, 10 checks/invocation": 256}
    smaller |= {"Lambda sleeping between checks": 128, "Step Functions + Wait state": 256}
    small_totals = {
        name: sum(
            replace(designs[name], gb_seconds=designs[name].gb_seconds * mb / 1024 / memory_gb)
            .dollars()
            .values()
        )
        for name, mb in smaller.items()
    }
    rows.append(
        [
            "total with less memory",
            *(f"{_money(small_totals[name])} ({smaller[name]} MB)" for name in designs),
        ]
    )
    table = Table(
        f"Figure 5c - cost in $ per million tasks ({PRICES_AS_OF})",
        ["", *designs],
        rows,
        [
            f"Inputs: {checks:.2f} checks per task (figure 1, ours); invocation {single * 1000:.0f} ms for 1 "
            f"check, {batch * 1000:.0f} ms for 10 (figure 3, API answering in 300 ms); MemorySize "
            f"{memory_gb * 1024:.0f} MB (template.yaml); requests per check from figure 5a; records of "
            f"{max(scale['item_bytes'].values())} bytes ({read_units} RRU / {write_units} WRU); "
            f"{results:.1f} results per task; {log_per_check:.0f} log bytes per check + "
            f"{PLATFORM_LOG_BYTES} per invocation.",
            f"Sleeping Lambda: the same checks inside one invocation billed for the whole wait "
            f"({schedule['ours_mean_seconds_to_seen']:.0f} s mean from first check to seen, a new invocation "
            "every 15 min), one record write at the end.",
            "Step Functions: one Lambda check per loop, 3 state transitions per check; the record is written "
            "once; the execution holds the state.",
            ("" if peak_rss_mib is None else f"Figure 2 peaked at {peak_rss_mib:.0f} MiB of RSS. ")
            + "With less memory, Lambda's CPU share shrinks too, which lengthens the CPU-bound part of each "
            "check (figure 3); the last row reprices the duration alone.",
            "Prices per unit: Lambda arm64 $0.0000133334/GB-s, $0.20/M requests; SQS $0.40/M; DynamoDB "
            "on-demand $0.625/M WRU, $0.125/M RRU; S3 PUT $0.005/1k; EventBridge $1/M; Step Functions "
            "$0.025/1k transitions; CloudWatch Logs $0.50/GB; X-Ray $5/M traces (5% sampled).",
        ],
    )
    return Figure(
        "cost",
        [table],
        {
            "prices": PRICES,
            "prices_as_of": PRICES_AS_OF,
            "memory_mb": memory_gb * 1024,
            "per_million_tasks": {
                name: {**lines_, "total": sum(lines_.values())} for name, lines_ in priced.items()
            },
        },
    )


def _memory_mb() -> int:
    """The function's MemorySize in template.yaml."""
    for resource in load_template(TEMPLATE)["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            return int(resource["Properties"]["MemorySize"])
    raise ValueError("template.yaml has no function")


def _requests_per_check(scale: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean requests per check of each kind, over every level measured."""
    kinds: dict[str, dict[str, float]] = {}
    for kind in ("requeued", "completed"):
        phases = [level[kind] for level in scale["levels"]]
        checks = sum(phase["checks"] for phase in phases)
        operations = {op for phase in phases for op in phase["calls"]}
        kinds[kind] = {op: sum(phase["calls"].get(op, 0) for phase in phases) / checks for op in operations}
    return kinds


def _money(value: float) -> str:
    return f"${value:,.2f}" if value else "-"
