"""Benchmark: load + validate + cut as_of, and a store round trip, on a synthetic world.

Usage: python benchmarks/bench_loader.py [--customers 200000] [--seed 1] [--store-customers 50000]

Prints seconds and peak memory per step and writes benchmarks/results/bench_loader.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from winback_ml.data.loader import load_data
from winback_ml.data.store import Store
from winback_ml.data.synthetic import make_world

RESULTS = Path(__file__).resolve().parent / "results" / "bench_loader.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn, out: dict):
    t0 = time.perf_counter()
    res = fn()
    dt = time.perf_counter() - t0
    out[label] = {"seconds": round(dt, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(f"{label:<32} {dt:8.2f} s   peak RSS {peak_rss_mb():8.0f} MB", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--store-customers", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out: dict = {
        "customers": args.customers,
        "store_customers": args.store_customers,
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory() as tmp:
        world = timed("make_world", lambda: make_world(args.customers, args.seed), out)
        rows = sum(len(df) for df in world.tables.values())
        out["rows_total"] = rows
        timed("write parquet", lambda: world.write(Path(tmp) / "w", fmt="parquet"), out)
        data = timed("load_data (parquet, validate)", lambda: load_data(Path(tmp) / "w"), out)
        as_of = data.events["occurred_at"].max() - pd.Timedelta(days=180)
        timed("load_data as_of (cut)", lambda: load_data(Path(tmp) / "w", as_of=as_of), out)
        out["validate_rows_per_s"] = round(rows / out["load_data (parquet, validate)"]["seconds"])
        small = make_world(args.store_customers, args.seed)
        n_small = sum(len(df) for df in small.tables.values())
        store = Store(f"sqlite:///{tmp}/bench.db")
        timed("store.write (sqlite)", lambda: store.write(small.tables), out)
        timed("store.read (sqlite)", store.read, out)
        out["store_rows"] = n_small
        out["store_write_rows_per_s"] = round(n_small / out["store.write (sqlite)"]["seconds"])
    print(
        f"validated {rows:,} rows at {out['validate_rows_per_s']:,} rows/s; stored {n_small:,} rows at "
        f"{out['store_write_rows_per_s']:,} rows/s"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
