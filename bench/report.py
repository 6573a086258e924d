"""Benchmark figures: each a median of several runs, with its unit and target; JSON and markdown out."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    name: str
    unit: str
    runs: list[float]
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median": round(self.median, 3)}


def machine() -> dict[str, Any]:
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory_kib = int(meminfo.read_text().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[:1]
    versions = {name: version(name) for name in ("chdb", "aiokafka", "faust-streaming", "fastapi", "duckdb")}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
        "java": java[0] if java else "",
        "kernel": platform.release(),
        "packages": versions,
    }


def version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"


def write(figures: list[Figure], scale: float, started: datetime, out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    payload = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "scale": scale,
        "machine": info,
        "figures": [f.as_dict() for f in figures],
    }
    (out_dir / "latest.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Benchmark ({started:%Y-%m-%d %H:%M} UTC, scale {scale})",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; Python {info['python']}.",
        "Each figure is the median of the runs listed; all figures come from the same `make bench` run.",
        "Query targets apply to the data as streamed; the settled rows show what merges give later.",
        "",
        "| figure | median | unit | runs | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        runs = ", ".join(fmt(r) for r in f.runs)
        lines.append(f"| {f.name} | {fmt(f.median)} | {f.unit} | {runs} | {f.target} | {met} |")
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "Notes:", *notes]
    if (out_dir / "scale.md").exists():
        lines += ["", "Growth with the data (`make bench-scale`, its own run): [scale.md](scale.md)."]
    (out_dir / "latest.md").write_text("\n".join(lines) + "\n")
    return out_dir / "latest.md"
