"""The project's benchmark: every figure as a table, and optionally as JSON.

    .venv/bin/python -m benchmarks.run [--quick] [--json PATH] [--only NAME[,NAME...]]

Figures: schedule (1), memory (2), concurrency (3), coldstart (4, 4c: the built artifact), scale (5a, 5b)
and cost (5c, which needs schedule and scale). On two cores the full run takes about 12 minutes, --quick
about 5. Numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import coldstart, concurrency, cost, memory, polling, scale
from benchmarks.report import Figure, machine, targets_table

FIGURES = ("schedule", "memory", "concurrency", "coldstart", "scale", "cost")
NEEDED = {"cost": ("schedule", "scale")}  # figures whose numbers another figure prices


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen figures, print their tables and the targets, write JSON if asked."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (about 5 minutes)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every number to PATH")
    parser.add_argument(
        "--only", default=",".join(FIGURES), help=f"comma-separated subset of {', '.join(FIGURES)}"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    chosen += [needed for name in list(chosen) for needed in NEEDED.get(name, ()) if needed not in chosen]

    host = machine()
    started = time.perf_counter()
    _print(
        f"ocr-result-poller benchmark ({'quick' if args.quick else 'full'} run, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
        f"machine: {host['cpu']}, {host['cores']} cores; {host['implementation']} {host['python']}; "
        f"{host['platform']}\n"
    )
    runners: dict[str, Callable[[], Figure]] = {
        "schedule": lambda: polling.figure(args.quick),
        "memory": lambda: memory.figure(args.quick),
        "concurrency": lambda: concurrency.figure(args.quick),
        "coldstart": lambda: coldstart.figure(args.quick),
        "scale": lambda: scale.figure(scale.measure(args.quick)),
    }
    figures: dict[str, Figure] = {}
    seconds: dict[str, float] = {}
    for name in FIGURES:
        if name not in chosen or name == "cost":
            continue
        figure_started = time.perf_counter()
        figures[name] = runners[name]()
        seconds[name] = time.perf_counter() - figure_started
        _show(figures[name], seconds[name])
    if "cost" in chosen:
        figure_started = time.perf_counter()
        timing = cost.measure(args.quick)
        figures["cost"] = cost.figure(figures["schedule"].data, figures["scale"].data, timing)
        seconds["cost"] = time.perf_counter() - figure_started
        _show(figures["cost"], seconds["cost"])
    _print(targets_table(list(figures.values())).render())
    total = time.perf_counter() - started
    _print(f"\ntotal {total:.0f} s")
    if args.json:
        document: dict[str, Any] = {
            "machine": host,
            "quick": args.quick,
            "seconds": seconds | {"total": total},
            "figures": {name: figure.data for name, figure in figures.items()},
            "targets": [
                {"name": t.name, "measured": t.measured, "target": t.target, "met": t.met}
                for figure in figures.values()
                for t in figure.targets
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
        _print(f"numbers written to {args.json}")
    return 0


def _show(figure: Figure, seconds: float | None) -> None:
    for table in figure.tables:
        _print(table.render() + "\n")
    if seconds is not None:
        _print(f"({figure.key}: {seconds:.0f} s)\n")


def _print(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
