"""Figure 1: checks per task and promise kept, for our schedule, naive ones and the exact optima."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from benchmarks.report import Figure, Table, Target
from benchmarks.schedule_sim import (
    Cadence,
    IdealOptimum,
    Schedule,
    ScheduleStats,
    SimTask,
    TaskMix,
    TaskOutcome,
    Timing,
    clairvoyant,
    make_tasks,
    replay,
    summarize,
)
from ocr_poller.schedule import Backoff

SEED = 2025
TARGET_RATIO = 1.05
TARGET_ON_TIME = 0.99
LAMBDA_MAX_SECONDS = 900  # a Lambda that sleeps between checks needs a new invocation every 15 minutes


def figure(quick: bool) -> Figure:
    """Replay the task mix through every schedule; tables of the comparison, the trade-off, the timing."""
    count, side_count = (4_000, 2_000) if quick else (20_000, 10_000)
    mix, timing, ours = TaskMix(), Timing(), Backoff()
    promise = _promise(ours)
    tasks = make_tasks(count, mix, timing, SEED)
    ideal = IdealOptimum.build(ours.initial, ours.lag_ratio, max(task.run_time for task in tasks) + 1)

    schedules = [
        Schedule(f"ours: schedule.py (margin {ours.margin:g} s, jitter {ours.jitter:g})", ours),
        Schedule("every 1.5 s (delays 1 s, 2 s in turn)", Cadence(delays=(1, 2))),
        Schedule("every 2 s", Cadence(delays=(2,))),
        Schedule("doubling 2, 4, 8, ... s (max 900)", Cadence(delays=(2,), doubling=True)),
    ]
    outcomes = {schedule.name: _replay_all(tasks, schedule, promise) for schedule in schedules}
    stats = [summarize(name, tasks, results) for name, results in outcomes.items()]
    ideal_stats = summarize(
        "optimum: whole-second delays, no latency",
        tasks,
        [TaskOutcome(ideal.checks(t.run_time), 0, 0) for t in tasks],
    )
    best_stats = summarize(
        "optimum under the same timing (clairvoyant)", tasks, [clairvoyant(t, promise=promise) for t in tasks]
    )
    comparison = _comparison_table(
        stats + [ideal_stats, best_stats], ideal_stats, best_stats, mix, timing, count, ours
    )

    side = tasks[:side_count]
    side_ideal = summarize("", side, [TaskOutcome(ideal.checks(t.run_time), 0, 0) for t in side])
    side_best = summarize("", side, [clairvoyant(t, promise=promise) for t in side])
    variants = [replace(ours, margin=margin) for margin in (0.0, 0.25, 0.5, 0.75, 1.0)]
    variants.append(replace(ours, jitter=0.0))
    tradeoff_rows = []
    for variant in variants:
        result = summarize("", side, _replay_all(side, Schedule("", variant), promise))
        tradeoff_rows.append(
            [
                f"margin {variant.margin:g} s, jitter {variant.jitter:g}"
                + ("  <- schedule.py" if variant == ours else ""),
                f"{result.mean_checks:.3f}",
                f"{result.on_time:.2%}",
                f"{result.mean_checks / side_ideal.mean_checks:.3f}x",
                f"{result.mean_checks / side_best.mean_checks:.3f}x",
            ]
        )
    tradeoff = Table(
        f"Figure 1b - our schedule's trade-off: margin kept for delivery vs checks ({side_count:,} tasks)",
        ["Backoff", "checks/task", "on time", "vs optimum (no latency)", "vs optimum (same timing)"],
        tradeoff_rows,
        ["margin: seconds taken off each growing gap for what follows the SQS delay (delivery, invocation)."],
    )

    sensitivity_rows = []
    for name, delivery in (
        ("fast event source: U(0, 0.2) s", (0.0, 0.2)),
        ("U(0, 1) s (the model above)", (0.0, 1.0)),
        ("batching window 1 s: U(1, 1.2) s", (1.0, 1.2)),
    ):
        variant_timing = replace(timing, delivery=delivery)
        variant_tasks = make_tasks(side_count, mix, variant_timing, SEED)
        result = summarize("", variant_tasks, _replay_all(variant_tasks, Schedule("", ours), promise))
        best = summarize("", variant_tasks, [clairvoyant(t, promise=promise) for t in variant_tasks])
        sensitivity_rows.append(
            [
                name,
                f"{result.mean_checks:.3f}",
                f"{result.on_time:.2%}",
                f"{best.mean_checks:.3f}",
                f"{result.mean_checks / best.mean_checks:.3f}x",
                f"{result.mean_checks / side_ideal.mean_checks:.3f}x",
            ]
        )
    sensitivity = Table(
        f"Figure 1c - our schedule vs the delivery latency after the SQS delay ({side_count:,} tasks)",
        [
            "delivery latency",
            "checks/task",
            "on time",
            "optimum (same timing)",
            "vs it",
            "vs optimum (no latency)",
        ],
        sensitivity_rows,
        [
            "A batching window on the SQS event source makes Lambda wait for a fuller batch at low traffic; "
            "the last row models a 1 s window, which is why template.yaml sets none (0).",
        ],
    )

    ours_stats = stats[0]
    seen_after = [
        task.run_time + outcome.lag for task, outcome in zip(tasks, outcomes[schedules[0].name], strict=True)
    ]
    ratio_ideal = ours_stats.mean_checks / ideal_stats.mean_checks
    ratio_best = ours_stats.mean_checks / best_stats.mean_checks
    data: dict[str, Any] = {
        "tasks": count,
        "mix": mix.describe(),
        "timing": timing.describe(),
        "schedules": [s.as_dict() for s in stats],
        "optimum_no_latency": ideal_stats.as_dict(),
        "optimum_same_timing": best_stats.as_dict(),
        "ratio_to_optimum": ratio_ideal,
        "ratio_to_same_timing_optimum": ratio_best,
        "tradeoff": tradeoff_rows,
        "sensitivity": sensitivity_rows,
        "ours_mean_checks": ours_stats.mean_checks,
        "ours_mean_seconds_to_seen": statistics.fmean(seen_after),
        "ours_mean_invocations_if_sleeping": statistics.fmean(
            math.ceil(s / LAMBDA_MAX_SECONDS) for s in seen_after
        ),
        "label_share": mix.label_share,
    }
    targets = [
        Target(
            "1 schedule: checks / optimum (no latency)",
            f"{ratio_ideal:.3f}x",
            f"<= {TARGET_RATIO}x",
            ratio_ideal <= TARGET_RATIO,
        ),
        Target(
            "1 schedule: checks / optimum (same timing)",
            f"{ratio_best:.3f}x",
            f"<= {TARGET_RATIO}x",
            ratio_best <= TARGET_RATIO,
        ),
        Target(
            "1 schedule: tasks seen within the promise",
            f"{ours_stats.on_time:.2%}",
            f">= {TARGET_ON_TIME:.0%}",
            ours_stats.on_time >= TARGET_ON_TIME,
        ),
    ]
    return Figure("schedule", [comparison, tradeoff, sensitivity], data, targets)


def _promise(backoff: Backoff) -> Callable[[float], float]:
    def promise(run_time: float) -> float:
        return max(float(backoff.initial), backoff.lag_ratio * run_time)

    return promise


def _replay_all(
    tasks: Sequence[SimTask], schedule: Schedule, promise: Callable[[float], float]
) -> list[TaskOutcome]:
    random.seed(SEED)  # Backoff's jitter draws from the module's generator: the same draws for every run
    return [replay(task, schedule, promise=promise) for task in tasks]


def _comparison_table(
    stats: Sequence[ScheduleStats],
    ideal: ScheduleStats,
    best: ScheduleStats,
    mix: TaskMix,
    timing: Timing,
    count: int,
    ours: Backoff,
) -> Table:
    rows = [
        [
            s.name,
            f"{s.mean_checks:.3f}",
            f"{s.mean_checks_label:.2f}",
            f"{s.mean_checks_pdf:.2f}",
            f"{s.on_time:.2%}",
            f"{s.late_p99:+.2f} s",
            f"{s.mean_checks / ideal.mean_checks:.3f}x",
            f"{s.mean_checks / best.mean_checks:.3f}x",
        ]
        for s in stats
    ]
    return Table(
        f"Figure 1 - poll schedules over {count:,} simulated tasks (promise: seen within "
        f"max({ours.initial} s, {ours.lag_ratio:g} x run time) of completing)",
        [
            "schedule",
            "checks/task",
            "labels",
            "PDFs",
            "on time",
            "p99 lag-promise",
            "vs optimum (no latency)",
            "vs optimum (same timing)",
        ],
        rows,
        [
            f"Task mix: {mix.describe()}; run time counted from the first check.",
            f"Timing per check: {timing.describe()}.",
            "Replayed through poll.process_body (request parsing, conditional record write, decision table, "
            "Backoff.delay) with fakes on a simulated clock; nothing sleeps. Checks/task include the first "
            "check and the one that sees Completed.",
            "SQS delays are whole seconds, so `every 1.5 s` alternates 1 s and 2 s delays; the naive "
            "schedules ignore the time spent in the invocation.",
            "optimum (no latency): the fewest checks for each run time when a check happens the instant its "
            "whole-second delay ends - t(k+1) = t(k) + max(2, floor(0.25 t(k))), exact, pointwise optimal.",
            "same-timing optimum: the fewest checks keeping the promise for every task when each delay is "
            "chosen knowing the delivery and invocation times to come (greedy, exact per task; a lower bound "
            "for any schedule that never misses under this timing).",
            "p99 lag-promise: 99th percentile of (seen - completed) - promise; negative = early.",
        ],
    )
