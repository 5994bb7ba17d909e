"""Benchmark of the synthetic world: time and peak memory of make_world + write.

Target (issue 2): 1,000,000 customers in under 10 minutes and under 8 GB of
memory on 2 cores. Prints the numbers and writes
``benchmarks/results/bench_world.json``: wall seconds, CPU seconds (user +
system: the honest figure on a shared machine, where wall time includes
waiting for the CPU), peak resident memory (``getrusage``) and rows per table.

Usage::

    .venv/bin/python benchmarks/bench_world.py --customers 1000000 --seed 0 --format parquet
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


def _peak_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024**2


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and return its results (also written as JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=("csv", "parquet", "none"), default="parquet")
    ap.add_argument("--out", type=Path, default=None, help="folder to write (default: a temp dir)")
    ap.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "bench_world.json",
    )
    args = ap.parse_args(argv)

    from winback_ml.data.synthetic import make_world

    t0 = time.perf_counter()
    world = make_world(args.customers, args.seed)
    t_make = time.perf_counter() - t0
    rss_make = _peak_rss_gb()
    rows = {k: len(v) for k, v in world.tables.items()}
    t_write = 0.0
    if args.format != "none":
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp) / "world"
            t1 = time.perf_counter()
            world.write(out, fmt=args.format)
            t_write = time.perf_counter() - t1
            size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    else:
        size = 0
    res = {
        "customers": args.customers,
        "seed": args.seed,
        "format": args.format,
        "seconds_make_world": round(t_make, 2),
        "seconds_write": round(t_write, 2),
        "seconds_total": round(t_make + t_write, 2),
        "cpu_seconds": round(_cpu_seconds(), 2),
        "load_average_1m_at_end": round(__import__("os").getloadavg()[0], 2),
        "peak_rss_gb_after_make": round(rss_make, 3),
        "peak_rss_gb": round(_peak_rss_gb(), 3),
        "bytes_written": size,
        "rows": rows,
        "lapses": int(world.truth.episodes["ended_at"].notna().sum()),
        "target": {"seconds_total": 600, "peak_rss_gb": 8.0},
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    res["meets_target"] = bool(res["seconds_total"] < 600 and res["peak_rss_gb"] < 8.0)
    for k in ("seconds_make_world", "seconds_write", "seconds_total", "cpu_seconds", "peak_rss_gb"):
        print(f"{k:<22}{res[k]}")
    for k, v in rows.items():
        print(f"rows.{k:<22}{v:>14,}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.results}")
    return res


if __name__ == "__main__":
    main()
