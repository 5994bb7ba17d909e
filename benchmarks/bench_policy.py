"""Benchmark: exact expected incremental profit of the scoring policy against the world's truth.

For each seed, build a synthetic world, run :func:`winback_ml.scoring.build_plan`
as of the world's end (the same code as ``winback score``), and compute with
the world's truth the exact expected incremental profit of

* ``policy``: the optimizer's targets;
* ``oracle``: the truth's best offer x channel per customer;
* ``playbook``: the reason playbook (:func:`winback_ml.cohort.playbook.playbook_policy`);
* ``blanket``: 25 % off for 3 months to every lapsed customer, on the first
  channel they consented to.

Prints the ratios and writes ``benchmarks/results/bench_policy.json``.

Usage::

    python benchmarks/bench_policy.py --seeds 1 2 3 --customers 20000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from winback_ml.cohort.playbook import playbook_policy
from winback_ml.config import load_config
from winback_ml.data.synthetic import make_world
from winback_ml.scoring import BLANKET_OFFER, _first_consented, build_plan, policy_frame

__all__ = ["run_seed", "main"]

OUT = Path(__file__).resolve().parent / "results" / "bench_policy.json"


def run_seed(seed: int, customers: int, config: dict | None = None) -> dict:
    """One world: the four policies' exact expected incremental profit and the ratios."""
    cfg = load_config(config)
    t0 = time.perf_counter()
    w = make_world(customers, seed)
    t_world = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = build_plan(w.tables, w.end, cfg)
    t_plan = time.perf_counter() - t0
    T, as_of, coh = w.truth, w.end, plan.cohort
    ids = coh["customer_id"].to_numpy()
    v_policy = T.policy_value(plan.targets, as_of, cfg)
    oracle = T.oracle_policy(ids, as_of, cfg)
    v_oracle = T.policy_value(oracle, as_of, cfg)
    v_playbook = T.policy_value(playbook_policy(coh, cfg), as_of, cfg)
    chans = _first_consented(coh, cfg)
    blanket = policy_frame(
        coh, [BLANKET_OFFER if c else None for c in chans], [c or "email" for c in chans]
    )
    v_blanket = T.policy_value(blanket, as_of, cfg)
    claimed = plan.targets.attrs["summary"]["expected_incremental_profit"]
    tg = plan.targets
    return {
        "seed": seed,
        "customers": customers,
        "lapsed_scored": int(len(coh)),
        "contacted": int(tg["contact"].sum()),
        "oracle_contacted": int(oracle["contact"].sum()),
        "profit": {
            "policy": round(v_policy, 2),
            "oracle": round(v_oracle, 2),
            "playbook": round(v_playbook, 2),
            "blanket_25pct_3m": round(v_blanket, 2),
            "policy_claimed_by_its_models": round(claimed, 2),
        },
        "ratios": {
            "policy_over_oracle": round(v_policy / v_oracle, 4) if v_oracle else None,
            "policy_over_playbook": round(v_policy / v_playbook, 4) if v_playbook else None,
            "policy_over_blanket": round(v_policy / v_blanket, 4) if v_blanket else None,
            "playbook_over_oracle": round(v_playbook / v_oracle, 4) if v_oracle else None,
        },
        "offers_chosen": {
            str(k): int(v) for k, v in tg.loc[tg["contact"], "offer_type"].value_counts().items()
        },
        "seconds": {
            "make_world": round(t_world, 2),
            "build_plan": round(t_plan, 2),
            **plan.timings,
        },
        "notes": plan.notes,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    runs = []
    for s in a.seeds:
        r = run_seed(s, a.customers)
        runs.append(r)
        q = r["ratios"]
        print(
            f"seed {s}: policy {r['profit']['policy']:,.0f}  oracle {r['profit']['oracle']:,.0f}  "
            f"playbook {r['profit']['playbook']:,.0f}  blanket {r['profit']['blanket_25pct_3m']:,.0f}  |  "
            f"policy/oracle {q['policy_over_oracle']:.3f}  policy/playbook {q['policy_over_playbook']:.3f}  "
            f"policy/blanket {q['policy_over_blanket']:.3f}  ({r['seconds']['build_plan']:.0f} s)",
            flush=True,
        )
    ratios = {
        k: round(float(np.mean([r["ratios"][k] for r in runs])), 4)
        for k in (
            "policy_over_oracle",
            "policy_over_playbook",
            "policy_over_blanket",
            "playbook_over_oracle",
        )
    }
    res = {
        "benchmark": "bench_policy",
        "customers": a.customers,
        "seeds": a.seeds,
        "mean_ratios": ratios,
        "goals": {"policy_over_oracle": 0.90, "policy_over_playbook": 1.15},
        "runs": runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))
    print(f"mean ratios: {ratios}; wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
