"""Plain-text tables, the targets' verdicts, and the machine the figures were measured on."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """A titled table of already formatted cells, with notes under it."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The table as aligned text: text columns left, numbers right."""
        cells = [[str(cell) for cell in row] for row in self.rows]
        widths = [
            max(len(str(column)), *(len(row[i]) for row in cells)) for i, column in enumerate(self.columns)
        ]
        numeric = [all(_looks_numeric(row[i]) for row in cells) for i in range(len(self.columns))]

        def line(values: Sequence[str]) -> str:
            parts = [
                value.rjust(width) if is_number else value.ljust(width)
                for value, width, is_number in zip(values, widths, numeric, strict=True)
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, "-" * len(self.title), line([str(c) for c in self.columns])]
        out.append(line(["-" * width for width in widths]))
        out += [line(row) for row in cells]
        out += [f"  * {note}" for note in self.notes]
        return "\n".join(out)


@dataclass(frozen=True)
class Target:
    """One target of the issue and whether the measurement meets it."""

    name: str
    measured: str
    target: str
    met: bool


@dataclass
class Figure:
    """What one figure measured: its tables, its numbers for JSON, its targets."""

    key: str
    tables: list[Table]
    data: dict[str, Any]
    targets: list[Target] = field(default_factory=list)


def machine() -> dict[str, Any]:
    """CPU model, cores and Python of this machine."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for text in cpuinfo.read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def targets_table(figures: Sequence[Figure]) -> Table:
    """Every target with its measurement and verdict."""
    rows: list[Sequence[object]] = [
        [target.name, target.measured, target.target, "met" if target.met else "MISSED"]
        for figure in figures
        for target in figure.targets
    ]
    return Table("Targets", ["figure", "measured", "target", "verdict"], rows)


def _looks_numeric(text: str) -> bool:
    stripped = text.strip().rstrip("%x").replace(",", "").replace("$", "").lstrip("+-")
    return stripped.replace(".", "", 1).isdigit() or stripped in ("", "-", "n/a")
