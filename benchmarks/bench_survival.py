"""Benchmark: fit and score the survival models at 100,000 and 1,000,000 lapsed histories.

Feature frames are synthesised directly at that scale (a 1M-customer world
is too slow to build here) from a known cure model with the shape of the
real return frame: 20 numeric features, a cancel reason with 11 levels,
durations censored by follow-up; the churn models' frames add a renewal
schedule (``billing_interval``, ``days_to_renewal``: :func:`with_renewal_schedule`). Each (model, size) runs in its own
subprocess so that its peak resident memory (``ru_maxrss``) is its own.

Measured per run: fit seconds, score seconds (``expected_return_probability``
with ``days_lapsed``, or for churn ``expected_churn_probability`` +
``expected_churn_date`` + top drivers as in ``build_churn_risk``), peak RSS
in MiB. Goal: score 1,000,000 customers in under 60 s on 2 cores.

Usage::

    python benchmarks/bench_survival.py            # all runs, writes results/bench_survival.json
    python benchmarks/bench_survival.py --quick    # 100k only
    python benchmarks/bench_survival.py --only discrete_hazard_churn   # some models, merged

The discrete-time hazard model is fitted on the first 200,000 rows (``n_fit``) and
scored on all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_frame", "with_renewal_schedule", "run_one", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "bench_survival.json"
REASONS = [f"r{i}" for i in range(11)]


def make_frame(n: int, seed: int = 0, n_numeric: int = 20) -> pd.DataFrame:
    """A return-model frame of ``n`` lapses from a known cure model (see the module docstring)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_numeric)).astype(np.float64)
    reason = rng.integers(0, len(REASONS), n)
    g = np.linspace(-1, 1, len(REASONS))[reason] + X[:, 0] * 0.8 - X[:, 1] * 0.4 - 0.5
    pi = 1 / (1 + np.exp(-g))
    lam = np.exp(3.0 + 0.3 * X[:, 2] - 0.2 * X[:, 3])
    t = np.where(rng.random(n) < pi, lam * rng.weibull(1.1, n), np.inf)
    follow = rng.uniform(5, 540, n)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_numeric)])
    df["reason"] = np.asarray(REASONS, dtype=object)[reason]
    df["duration_days"] = np.minimum(t, follow)
    df["event"] = (t <= follow).astype(int)
    df["days_lapsed"] = rng.uniform(0, 90, n)
    return df


def with_renewal_schedule(df: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """A churn frame's renewal schedule: ``billing_interval`` (a quarter annual) and
    ``days_to_renewal`` (uniform within the period), which the discrete-time hazard model
    turns into per-interval renewal features (so the benchmark times that path too)."""
    rng = np.random.default_rng(seed)
    annual = rng.random(len(df)) < 0.25
    out = df.copy()
    out["billing_interval"] = np.where(annual, "year", "month").astype(object)
    out["days_to_renewal"] = rng.random(len(df)) * np.where(annual, 365.0, 30.0)
    return out


def _model(name: str):
    from winback_ml.models.churn_model import (
        DiscreteHazardChurnModel,
        WeibullCureChurnModel,
        XGBoostAFTChurnModel,
    )
    from winback_ml.models.return_model import (
        CoxReturnModel,
        KaplanMeierReturnModel,
        WeibullCureReturnModel,
        XGBoostAFTReturnModel,
    )

    return {
        "kaplan_meier_return": KaplanMeierReturnModel(),
        "cox_return": CoxReturnModel(),
        "weibull_cure_return": WeibullCureReturnModel(),
        "xgboost_aft_return": XGBoostAFTReturnModel(n_estimators=200),
        "weibull_churn": WeibullCureChurnModel(),
        "xgboost_aft_churn": XGBoostAFTChurnModel(n_estimators=200),
        "discrete_hazard_churn": DiscreteHazardChurnModel(n_estimators=200),
    }[name]


#: Models fitted on a sample of at most this many rows (then scored on all): the discrete-time
#: hazard model expands each row into one row per 30-day interval (person-period data).
FIT_SAMPLE = {"discrete_hazard_churn": 200_000}


def run_one(name: str, n: int) -> dict:
    """Fit and score one model on ``n`` rows in this process; return timings and peak RSS."""
    import warnings

    from winback_ml.models.churn_model import top_drivers

    warnings.simplefilter("ignore")
    df = make_frame(n)
    if name.endswith("_churn"):
        df = with_renewal_schedule(df)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m = _model(name)
    n_fit = min(n, FIT_SAMPLE.get(name, n))
    t0 = time.perf_counter()
    m.fit(df.iloc[:n_fit])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if name.endswith("_churn"):
        p = m.expected_churn_probability(df, within_days=90)
        m.expected_churn_date(df, "2025-12-31")
        top_drivers(m.predict_risk_contributions(df), 3)
    else:
        p = m.expected_return_probability(df, within_days=30)
    score_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": name,
        "n": n,
        "n_fit": n_fit,
        "fit_s": round(fit_s, 2),
        "score_s": round(score_s, 2),
        "score_rows_per_s": int(n / max(score_s, 1e-9)),
        "peak_rss_mib": round(peak, 1),
        "data_rss_mib": round(rss_data, 1),
        "mean_p": round(float(np.mean(p)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k rows only")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="MODEL",
        help="run these models only; their rows replace the same rows of the results file",
    )
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return 0
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    plan = []
    for n in sizes:
        for name in (
            "kaplan_meier_return",
            "weibull_cure_return",
            "xgboost_aft_return",
            "weibull_churn",
            "xgboost_aft_churn",
            "discrete_hazard_churn",
        ):
            plan.append((name, n))
        if n <= 100_000:
            plan.append(("cox_return", n))  # lifelines Cox at 1M: ~64 s fit (STACK.md), skipped
    if args.only:
        plan = [(m, n) for m, n in plan if m in args.only]
    rows = []
    for name, n in plan:
        r = subprocess.run(
            [sys.executable, __file__, "--one", name, str(n)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if r.returncode != 0:
            row = {"model": name, "n": n, "error": r.stderr.strip().splitlines()[-1:]}
        else:
            row = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.only and RESULTS.exists():  # keep the other models' earlier rows
        done = {(r["model"], r["n"]) for r in rows}
        old = json.loads(RESULTS.read_text()).get("runs", [])
        rows = [r for r in old if (r.get("model"), r.get("n")) not in done] + rows
    out = {
        "benchmark": "bench_survival",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load_average_at_end": os.getloadavg(),
        "goal": "score 1,000,000 customers in under 60 s on 2 cores",
        "runs": rows,
    }
    scored_1m = [r for r in rows if r.get("n") == 1_000_000 and "score_s" in r]
    if scored_1m:
        out["goal_met"] = all(r["score_s"] < 60 for r in scored_1m)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
