"""Benchmark: normalise 1,000,000 webhook bodies of mixed providers.

Target (issue 3): at least 20,000 events/s on 2 cores.

Bodies are generated in memory (``winback_ml.intake.samples.make_webhook_stream``:
Stripe basil and legacy, Chargebee, Recurly envelopes, Apple JWS, Google
envelopes, one provider in five each) in chunks by two worker processes; only
:func:`winback_ml.intake.normalize` (parse, map, check) is timed. Apple bodies
are decoded unverified in the main run; a second, smaller run measures Apple
with signature verification, and a third the full ledger (SQLite store) for
reference.

Reported: events/s on wall-clock time of the two workers (what this machine
gave), events per CPU-second (what one core does when it is not shared) and
peak RSS of the parent and of the largest worker. On a machine shared with
other jobs the wall-clock figure understates the 2-core throughput; the CPU
figure and ``load_average`` are printed so the two can be told apart.

Usage::

    python benchmarks/bench_intake.py [--bodies 1000000] [--workers 2] [--seed 1]

Writes ``benchmarks/results/bench_intake.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_intake.json"
CHUNK_SUBSCRIPTIONS = 1500  # about 7,000 bodies per chunk


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _worker(args: tuple[int, int, int]) -> dict:
    worker, n_bodies, seed = args
    from winback_ml.intake import normalize
    from winback_ml.intake.samples import make_webhook_stream

    done = events = 0
    wall = cpu = 0.0
    per_provider: dict[str, list[float]] = {}
    chunk = 0
    while done < n_bodies:
        bodies, _ = make_webhook_stream(
            CHUNK_SUBSCRIPTIONS, seed=seed * 1_000_003 + worker * 10_007 + chunk
        )
        bodies = bodies[: n_bodies - done]
        chunk += 1
        w0, c0 = time.perf_counter(), time.process_time()
        for provider, body in bodies:
            events += len(normalize(provider, body).events)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        done += len(bodies)
        for provider, _b in bodies:
            per_provider.setdefault(provider, [0])[0] += 1
    return {
        "worker": worker,
        "bodies": done,
        "events": events,
        "normalize_wall_s": wall,
        "normalize_cpu_s": cpu,
        "peak_rss_mb": _rss_mb(),
        "bodies_per_provider": {k: v[0] for k, v in per_provider.items()},
    }


def _apple_verified(n: int) -> dict:
    from winback_ml.intake import normalize
    from winback_ml.intake.samples import TestPKI, make_webhook_stream

    pki = TestPKI.create()
    bodies, _ = make_webhook_stream(n // 4, seed=5, providers=("apple",), pki=pki)
    w0, c0 = time.perf_counter(), time.process_time()
    ev = sum(len(normalize("apple", b, apple_root=pki.root_pem).events) for _, b in bodies)
    return {
        "bodies": len(bodies),
        "events": ev,
        "events_per_s_wall": round(ev / (time.perf_counter() - w0)),
        "events_per_cpu_s": round(ev / max(time.process_time() - c0, 1e-9)),
    }


def _ledger(n_subs: int) -> dict:
    from winback_ml.intake import IntakeLedger
    from winback_ml.intake.samples import make_webhook_stream

    bodies, _ = make_webhook_stream(n_subs, seed=9)
    with tempfile.TemporaryDirectory() as tmp:
        led = IntakeLedger(f"sqlite:///{tmp}/bench.db")
        led.create_schema()
        w0, c0 = time.perf_counter(), time.process_time()
        outs = [led.ingest(p, b) for p, b in bodies]
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        w1 = time.perf_counter()
        for p, b in bodies:
            led.ingest(p, b)
        dup_wall = time.perf_counter() - w1
        led.store.dispose()
    ev = sum(len(o.event_ids) for o in outs)
    return {
        "bodies": len(bodies),
        "events": ev,
        "ms_per_body_wall": round(1000 * wall / len(bodies), 2),
        "ms_per_body_cpu": round(1000 * cpu / len(bodies), 2),
        "duplicate_ms_per_body_wall": round(1000 * dup_wall / len(bodies), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bodies", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--apple-verified", type=int, default=4000)
    ap.add_argument("--ledger-subscriptions", type=int, default=400)
    args = ap.parse_args()

    t0 = time.perf_counter()
    load0 = os.getloadavg()
    share = [
        args.bodies // args.workers + (1 if i < args.bodies % args.workers else 0)
        for i in range(args.workers)
    ]
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        res = pool.map(_worker, [(i, share[i], args.seed) for i in range(args.workers)])
    total_wall = time.perf_counter() - t0
    bodies = sum(r["bodies"] for r in res)
    events = sum(r["events"] for r in res)
    wall = max(r["normalize_wall_s"] for r in res)
    cpu = sum(r["normalize_cpu_s"] for r in res)
    per_provider: dict[str, int] = {}
    for r in res:
        for k, v in r["bodies_per_provider"].items():
            per_provider[k] = per_provider.get(k, 0) + v
    out = {
        "bodies": bodies,
        "events": events,
        "workers": args.workers,
        "seed": args.seed,
        "bodies_per_provider": per_provider,
        "normalize_wall_s": round(wall, 2),
        "normalize_cpu_s": round(cpu, 2),
        "events_per_s_wall": round(events / wall),
        "events_per_cpu_s": round(events / cpu),
        "events_per_s_2_cores_from_cpu": round(2 * events / cpu),
        "total_wall_s_incl_generation": round(total_wall, 1),
        "peak_rss_mb_worker": round(max(r["peak_rss_mb"] for r in res), 1),
        "peak_rss_mb_parent": round(_rss_mb(), 1),
        "load_average_start": [round(x, 2) for x in load0],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "target_events_per_s": 20_000,
    }
    print(f"normalised {bodies:,} bodies -> {events:,} events with {args.workers} workers")
    print(
        f"  wall (normalisation only, slowest worker): {wall:8.1f} s  -> {out['events_per_s_wall']:,} events/s"
    )
    print(
        f"  CPU  (normalisation, all workers):         {cpu:8.1f} s  -> {out['events_per_cpu_s']:,} events per CPU-s"
    )
    print(
        f"  peak RSS: worker {out['peak_rss_mb_worker']} MB, parent {out['peak_rss_mb_parent']} MB"
    )
    print(
        f"  load average {out['load_average_start']} -> {out['load_average_end']} on {os.cpu_count()} CPUs"
    )
    if args.apple_verified:
        out["apple_verified"] = _apple_verified(args.apple_verified)
        print(f"apple with signature verification: {out['apple_verified']}")
    if args.ledger_subscriptions:
        out["ledger_sqlite"] = _ledger(args.ledger_subscriptions)
        print(f"full ledger on SQLite (store + normalise + upsert): {out['ledger_sqlite']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
