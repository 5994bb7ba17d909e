"""Per-arm campaign evaluation: intervals, coverage, fallbacks and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.exceptions import DataContractError
from winback_ml.models.uplift_campaigns import evaluate_arms, newcombe_diff_ci, wilson_ci


def test_newcombe_matches_published_example():
    # Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 - 48/80, method 10.
    lo, hi = newcombe_diff_ci(56, 70, 48, 80)
    assert float(lo) == pytest.approx(0.0524, abs=1e-4)
    assert float(hi) == pytest.approx(0.3339, abs=1e-4)
    lo, hi = wilson_ci(0, 10)
    assert float(lo) == 0 and float(hi) == pytest.approx(0.2775, abs=1e-4)


def _frame(n_ctrl, n_arm, p0, p1, rng, cost=0.01):
    rows = []
    for arm, n, p, ctrl in (("ctrl", n_ctrl, p0, True), ("disc", n_arm, p1, False)):
        y = (rng.random(n) < p).astype(int)
        rows.append(
            pd.DataFrame(
                {
                    "campaign_id": "c1",
                    "arm_id": arm,
                    "is_control": ctrl,
                    "customer_id": [f"{arm}{i}" for i in range(n)],
                    "reactivated": y,
                    "revenue": y * 45.0,
                    "contact_cost": 0.0 if ctrl else cost,
                    "segment": rng.choice(["hot", "warm"], size=n),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_interval_coverage_is_nominal():
    rng = np.random.default_rng(3)
    hits = 0
    reps = 300
    for _ in range(reps):
        t = evaluate_arms(_frame(400, 400, 0.05, 0.09, rng))
        hits += t["uplift_ci_low"].iloc[0] <= 0.04 <= t["uplift_ci_high"].iloc[0]
    assert 0.91 <= hits / reps <= 0.99


def test_money_columns_and_groups():
    rng = np.random.default_rng(4)
    f = _frame(5000, 5000, 0.05, 0.10, rng, cost=0.02)
    t = evaluate_arms(f).iloc[0]
    inc = t["uplift"] * t["n"]
    assert t["incremental_reactivations"] == pytest.approx(inc)
    assert t["cost_per_incremental_reactivation"] == pytest.approx(0.02 * 5000 / inc)
    assert (
        t["cost_per_incremental_reactivation_ci_low"]
        < t["cost_per_incremental_reactivation"]
        < t["cost_per_incremental_reactivation_ci_high"]
    )
    assert t["revenue_uplift"] == pytest.approx(45.0 * t["uplift"])
    by = evaluate_arms(f, by="segment")
    assert sorted(by["segment"]) == ["hot", "warm"]
    assert by["n"].sum() == 5000


def test_small_arm_is_flagged_not_hidden():
    rng = np.random.default_rng(5)
    t = evaluate_arms(_frame(20, 15, 0.1, 0.3, rng), min_arm_size=50).iloc[0]
    assert not t["reliable"]
    assert "min_arm_size" in t["note"]
    assert t["uplift_ci_high"] - t["uplift_ci_low"] > 0.3  # honestly wide


def test_no_uplift_gives_unbounded_cost():
    rng = np.random.default_rng(6)
    f = _frame(2000, 2000, 0.05, 0.05, rng)
    f.loc[f["arm_id"] == "disc", "reactivated"] = 0
    t = evaluate_arms(f).iloc[0]
    assert t["cost_per_incremental_reactivation"] == np.inf
    assert t["cost_per_incremental_reactivation_ci_low"] == np.inf


def test_campaign_without_control():
    rng = np.random.default_rng(7)
    f = _frame(100, 100, 0.1, 0.2, rng)
    f2 = f[~f["is_control"]].assign(campaign_id="c2")
    both = pd.concat([f, f2])
    with pytest.raises(DataContractError, match="no control arm"):
        evaluate_arms(both)
    t = evaluate_arms(both, on_missing_control="skip")
    assert set(t["campaign_id"]) == {"c1"}
    assert "c2" in t.attrs["skipped"][0]
    with pytest.raises(DataContractError, match="lacks columns"):
        evaluate_arms(f.drop(columns="reactivated"))
