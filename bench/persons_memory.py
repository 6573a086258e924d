"""The stream processor's memory for persons: the distinct-id numbers it caches and the resolver's link
graph. Rerun with:

    python -m bench.persons_memory [--ids 1000000] [--links 200000]

Each structure is filled as the processor fills it, in a fresh process: `DistinctIdNumbers` with `ids`
distinct ids and their stream numbers (its default capacity is 1M), and a `Resolver` with `links`
links `anonymous id -> user id` taken as a rebuild takes them (the graph, each linked id's number, the
answers written). Ids are UUID texts (36 characters, as Segment's anonymous ids), the longest common
kind, so the figures are an upper bound for shorter ids. Measured as the process's resident memory
before and after (what the machine pays, allocator overhead included), or with `--traced` as Python's
own allocations (tracemalloc, exact for these pure-Python structures).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from deploy.kafka.broker import REPO
from services.stream.persons import DistinctIdNumbers
from services.stream.resolver import Resolver
from shared.contracts.persons import Link, distinct_number

MIB = 2**20


def ids(count: int, salt: int) -> list[str]:
    """`count` distinct UUID-shaped ids (a multiplicative hash of the index: fast, and no two alike)."""
    texts = (f"{(n * 0x9E3779B97F4A7C15F39CC0605CEDC835 + salt) % 2**128:032x}" for n in range(count))
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in texts]


def numbers_cache(count: int) -> Any:
    """A DistinctIdNumbers holding `count` ids, as after a stream of first events (numbers from
    positions in 16 partitions)."""
    cache = DistinctIdNumbers(None, capacity=max(count, 1))  # type: ignore[arg-type]  # no lookups here
    wanted = ids(count, 1)
    for start in range(0, count, 10_000):
        cache.remember(
            {i: distinct_number(n % 16, n, 0) for n, i in enumerate(wanted[start : start + 10_000], start)}
        )
    return cache


def resolver_state(count: int) -> Any:
    """A Resolver after a rebuild over `count` links anon -> user: the graph, the numbers of its ids,
    and what it wrote (one override per anonymous id)."""
    anonymous, users = ids(count, 2), ids(count, 3)
    moment = datetime(2023, 1, 1, tzinfo=UTC)
    links = [
        Link(moment + timedelta(seconds=n), uuid.uuid4(), a, u, "signup", moment + timedelta(seconds=n))
        for n, (a, u) in enumerate(zip(anonymous, users, strict=True))
    ]
    resolver = Resolver(None)  # type: ignore[arg-type]  # no ClickHouse: the state only
    moved = resolver.graph.add(links)
    del links  # the graph keeps each link; the list was only the read
    resolver.numbers.update({i: distinct_number(n % 16, n, 0) for n, i in enumerate([*anonymous, *users])})
    resolver.written.update({i: resolver.answer(i) for i in moved})
    return resolver


def measure(build: Callable[[int], Any], count: int, traced: bool) -> dict[str, float]:
    """MiB the structure holds: the RSS growth, or (`traced`) Python's own allocations (tracemalloc,
    whose bookkeeping would inflate the RSS, so never both in one run)."""
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    if traced:
        tracemalloc.start()
    kept = build(count)
    gc.collect()
    if traced:
        allocated, _ = tracemalloc.get_traced_memory()
        return {"count": count, "mib": allocated / MIB}
    rss_after = process.memory_info().rss
    del kept
    return {"count": count, "mib": (rss_after - rss_before) / MIB}


STRUCTURES: dict[str, Callable[[int], Any]] = {"numbers": numbers_cache, "resolver": resolver_state}


def in_fresh_process(structure: str, count: int, traced: bool = False) -> dict[str, float]:
    """One structure measured in its own process, so its RSS growth is its own."""
    command = [sys.executable, "-m", "bench.persons_memory", "--structure", structure, "--count", str(count)]
    command += ["--traced"] if traced else []
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return dict(json.loads(done.stdout))


def figures(ids: int = 1_000_000, links: int = 200_000, traced: bool = False) -> dict[str, dict[str, float]]:
    """RSS growth (or Python's allocations) of the numbers cache at `ids` and the resolver at `links`."""
    return {
        "numbers": in_fresh_process("numbers", ids, traced),
        "resolver": in_fresh_process("resolver", links, traced),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--links", type=int, default=200_000)
    parser.add_argument("--traced", action="store_true", help="Python's allocations instead of RSS")
    parser.add_argument("--structure", choices=sorted(STRUCTURES), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.structure:
        print(json.dumps(measure(STRUCTURES[args.structure], args.count, args.traced)))
        return
    what = "allocated by Python" if args.traced else "of RSS"
    for name, result in figures(args.ids, args.links, args.traced).items():
        print(f"{name}: {result['count']:,} -> {result['mib']:.0f} MiB {what}")


if __name__ == "__main__":
    main()
