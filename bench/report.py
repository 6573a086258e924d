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
# The sections of latest.md, in order: `python -m bench`'s (bench/__main__.py), then
# `python -m bench.cluster_ingest`'s.
ORDER = ("ingest", "pipeline", "freshness", "query", "live", "persons", "dashboard", "replication")


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


def commit() -> str:
    """The checkout's commit (with "+changes" when the tree differs from it), for each section's header."""
    git = ["git", "-C", str(RESULTS.parent.parent)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return f"{head or 'unknown'}{'+changes' if dirty.stdout.strip() else ''}"


@dataclass
class Section:
    """One section of one run: when, at which commit and scale, how long, and its figures."""

    name: str
    started: datetime
    seconds: float
    scale: float
    figures: list[Figure]
    commit: str  # the tree measured: `commit()` when the run started
    load: tuple[float, float]  # the 1-minute load average when the section started and ended

    def as_dict(self, info: dict[str, Any]) -> dict[str, Any]:
        return {
            "started_at": self.started.isoformat(),
            "seconds": round(self.seconds, 1),
            "scale": self.scale,
            "commit": self.commit,
            "load_average": [round(x, 1) for x in self.load],
            "machine": info,
            "figures": [f.as_dict() for f in self.figures],
        }


def previous_sections(path: Path) -> dict[str, dict[str, Any]]:
    """The sections an earlier run left in latest.json (none from the file's older, unsectioned form)."""
    try:
        sections = json.loads(path.read_text()).get("sections", {})
    except (OSError, ValueError):
        return {}
    return sections if isinstance(sections, dict) else {}


def write(sections: list[Section], total: Figure, out_dir: Path = RESULTS) -> Path:
    """latest.json and latest.md: this run's sections replace the same sections of the previous files,
    the others stay as they were measured (each with its own date, commit and time), in ORDER; `total`
    is this run's wall time."""
    order = ORDER
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    merged = previous_sections(out_dir / "latest.json")
    merged.update({section.name: section.as_dict(info) for section in sections})
    names = [name for name in order if name in merged] + [name for name in merged if name not in order]
    payload = {
        "finished_at": datetime.now(UTC).isoformat(),
        "last_run": {"sections": [section.name for section in sections], "total": total.as_dict()},
        "sections": {name: merged[name] for name in names},
    }
    (out_dir / "latest.json").write_text(json.dumps(payload, indent=2))
    ran = ", ".join(section.name for section in sections) or "no section (earlier figures rewritten)"
    met = (
        ""
        if total.met is None
        else (" (target " + total.target + " s: " + ("met" if total.met else "**missed**") + ")")
    )
    lines = [
        "# Benchmark",
        "",
        "Each figure is the median of the runs listed; the figures of one section come from one run, and",
        "sections run at different times are not comparable with each other (the machine is shared: each",
        "section gives its own date, commit and machine). Query targets apply to the data as streamed; the",
        "settled rows show what merges give later.",
        "",
        f"Last run: {ran}, {fmt(total.median)} s{met}.",
        "",
        "| section | run at (UTC) | commit | scale | wall time (s) | load average (start, end) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        section = merged[name]
        load = ", ".join(f"{x:.1f}" for x in section.get("load_average", [])) or "not recorded"
        lines.append(
            f"| [{name}](#{name}) | {section['started_at'][:16].replace('T', ' ')} | {section['commit']} "
            f"| {section['scale']} | {fmt(section['seconds'])} | {load} |"
        )
    for name in names:
        section = merged[name]
        host = section["machine"]
        lines += [
            "",
            f"## {name}",
            "",
            f"Run {section['started_at'][:16].replace('T', ' ')} UTC at {section['commit']}, scale "
            f"{section['scale']}, {fmt(section['seconds'])} s; {host['cpu']}, {host['cores']} "
            f"cores, {host['memory_gib']} GiB, Python {host['python']}.",
            "",
            "| figure | median | unit | runs | target | met |",
            "|---|---|---|---|---|---|",
        ]
        figures = section["figures"]
        for f in figures:
            met_text = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            runs = ", ".join(fmt(r) for r in f["runs"])
            median = statistics.median(f["runs"]) if f["runs"] else float("nan")
            lines.append(
                f"| {f['name']} | {fmt(median)} | {f['unit']} | {runs} | {f['target']} | {met_text} |"
            )
        notes = [f"- {f['name']}: {f['note']}" for f in figures if f["note"]]
        if notes:
            lines += ["", "Notes:", *notes]
    if (out_dir / "scale.md").exists():
        lines += ["", "Growth with the data (`make bench-scale`, its own run): [scale.md](scale.md)."]
    (out_dir / "latest.md").write_text("\n".join(lines) + "\n")
    return out_dir / "latest.md"
