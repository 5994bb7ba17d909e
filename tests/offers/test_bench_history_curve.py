"""benchmarks/bench_policy.py's learning curve: the response model refitted on shares of the
campaign history, valued under the world's truth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from winback_ml.data.synthetic import make_world
from winback_ml.scoring import build_plan

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_policy.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_policy", _BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_history_curve_full_share_is_the_plan_and_smaller_shares_are_drawn():
    bench = _bench()
    w = make_world(3000, seed=12)
    plan = build_plan(w.tables, w.end, None)
    cfg, T = plan.config, w.truth
    ids = plan.cohort["customer_id"].to_numpy()
    v_oracle = T.policy_value(T.oracle_policy(ids, w.end, cfg), w.end, cfg)
    v_plan = T.policy_value(plan.targets, w.end, cfg) / v_oracle

    hc = bench.history_curve(w, plan, cfg, (0.5, 1.0), repeats=2)

    # share 1 refits the plan's own model on the whole history: the plan's policy value
    assert hc["1"]["values"] == [pytest.approx(v_plan, abs=1e-4)]
    assert hc["1"]["assignments"] == [len(plan.training)]
    # share 0.5: two seeded draws of half the customers, each valued under the truth
    half = hc["0.5"]
    assert len(half["values"]) == 2
    assert all(np.isfinite(v) and v <= 1.0 for v in half["values"])
    assert half["mean"] == pytest.approx(np.mean(half["values"]), abs=1e-4)
    n_cust = plan.training["customer_id"].nunique()
    for kept in half["assignments"]:  # every assignment of half the customers
        assert round(0.5 * n_cust) <= kept < len(plan.training)
    # the same seed draws the same subsets
    assert bench.history_curve(w, plan, cfg, (0.5,), repeats=2)["0.5"] == half
    with pytest.raises(ValueError, match="history shares"):
        bench.history_curve(w, plan, cfg, (0.0,))
