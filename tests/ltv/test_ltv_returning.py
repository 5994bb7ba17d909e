"""LTV of a returning customer: survival learnt from past returns, measured discount-end bump."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.config import Offer, load_config
from winback_ml.exceptions import ModelError, NotFittedError
from winback_ml.ltv.ltv import (
    MONTH_DAYS,
    PostReturnSurvival,
    expected_ltv,
    ltv_matrix,
    monthly_price,
    post_return_tenures,
)

AS_OF = pd.Timestamp("2025-06-30")


def _simulate_tenures(n, hazard, seed, bump=1.0, disc_months=0, cens_months=36):
    """Geometric post-return tenure with an optional churn bump when a discount ends."""
    rng = np.random.default_rng(seed)
    months = np.empty(n, int)
    event = np.empty(n, bool)
    for i in range(n):
        m = 1
        while True:
            h = hazard * (bump if (disc_months and m == disc_months) else 1.0)
            if rng.random() < min(h, 1):
                months[i], event[i] = m, True
                break
            if m >= cens_months:
                months[i], event[i] = m, False
                break
            m += 1
    return pd.DataFrame(
        {
            "customer_id": [f"s{seed}_{i}" for i in range(n)],
            "returned_at": AS_OF - pd.Timedelta(days=400),
            "months": months,
            "lapsed_again": event,
        }
    )


def test_post_return_tenures_from_episodes():
    ep = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "lapse_number": [1, 2, 1, 1],
            "ended_at": pd.to_datetime(["2024-01-01", "2024-08-01", "2024-03-01", "2024-05-01"]),
            "returned": [True, False, True, False],
            "returned_at": pd.to_datetime(["2024-02-01", None, "2024-04-01", None]),
        }
    )
    t = post_return_tenures(ep, AS_OF).set_index("customer_id")
    assert t.loc["a", "lapsed_again"] and t.loc["a", "months"] == round(182 / MONTH_DAYS)
    assert not t.loc["b", "lapsed_again"]
    assert t.loc["b", "months"] == int((AS_OF - pd.Timestamp("2024-04-01")).days // MONTH_DAYS)
    assert "c" not in t.index  # never returned


def test_post_return_tenures_ignore_what_came_after_as_of():
    """Episodes built at a later date must give the tenures known at as_of (no negative
    months, no lapse-again seen from the future)."""
    ep = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "d"],
            "lapse_number": [1, 2, 1, 1],
            "ended_at": pd.to_datetime(["2025-01-01", "2025-09-01", "2025-05-01", "2025-08-01"]),
            "returned": [True, False, True, True],
            "returned_at": pd.to_datetime(["2025-02-01", None, "2025-08-01", "2025-08-15"]),
        }
    )
    t = post_return_tenures(ep, AS_OF).set_index("customer_id")
    assert list(t.index) == ["a"]  # b returned, d lapsed after as_of
    assert not t.loc["a", "lapsed_again"]  # its second lapse is after as_of: censored
    assert t.loc["a", "months"] == int((AS_OF - pd.Timestamp("2025-02-01")).days // MONTH_DAYS)
    assert (t["months"] >= 0).all()


def test_survival_recovers_hazard_and_bump():
    base = _simulate_tenures(3000, 0.06, 1)
    disc = _simulate_tenures(1500, 0.06, 2, bump=3.0, disc_months=3)
    disc_returns = disc[["customer_id", "returned_at"]].assign(discount_months=3)
    s = PostReturnSurvival().fit(pd.concat([base, disc]), discount_returns=disc_returns)
    assert np.mean(s.hazard_[:24]) == pytest.approx(0.06, abs=0.008)
    b = s.bump_
    assert b.source == "measured" and b.ci_low < 3.0 < b.ci_high
    assert s.discount_end_bump_ == pytest.approx(3.0, rel=0.25)
    # survival with a 3-month discount drops faster right after month 3
    s0, s3 = s.survival(12), s.survival(12, discount_months=3)
    assert np.allclose(s0[:3], s3[:3]) and s3[3] < s0[3] * 0.9


def test_no_discount_history_is_a_stated_prior():
    s = PostReturnSurvival().fit(_simulate_tenures(500, 0.1, 3))
    assert s.bump_.ratio == 1.0 and s.bump_.source.startswith("prior")
    empty = PostReturnSurvival(prior_hazard=0.2).fit(_simulate_tenures(5, 0.1, 4))
    assert empty.sources_["month"].startswith("prior") and np.allclose(empty.hazard_, 0.2)
    assert "prior" in empty.source_


def test_expected_ltv_closed_form():
    cfg = load_config({"margin": 0.5, "ltv_horizon_months": 12, "annual_discount_rate": 0.0})
    s = PostReturnSurvival(prior_hazard=0.1).fit(_simulate_tenures(0, 0.1, 5))  # prior: h = 0.1
    cust = pd.DataFrame({"mrr": [10.0, 20.0]})
    surv = 0.9 ** np.arange(12)
    full = expected_ltv(cust, None, cfg, s)
    assert full.iloc[0] == pytest.approx(10 * 0.5 * surv.sum())
    assert full.iloc[1] == pytest.approx(2 * full.iloc[0])
    d = expected_ltv(cust, Offer("discount", 25, 3), cfg, s)
    pay = np.r_[np.full(3, 0.75), np.ones(9)]
    assert d.iloc[0] == pytest.approx(10 * 0.5 * np.sum(surv * pay))
    free = expected_ltv(cust, Offer("free_month", 0, 1), cfg, s)
    assert free.iloc[0] == pytest.approx(10 * 0.5 * (surv.sum() - 1.0))
    # discounting lowers value; non-discount offers leave it unchanged
    cfg_r = load_config({"margin": 0.5, "ltv_horizon_months": 12, "annual_discount_rate": 0.2})
    assert expected_ltv(cust, None, cfg_r, s).iloc[0] < full.iloc[0]
    m = ltv_matrix(cust, [Offer("feature_trial"), Offer("discount", 25, 3)], cfg, s)
    assert list(m.columns) == ["no_offer", "feature_trial", "discount_25pct_3m"]
    assert (m["feature_trial"] == m["no_offer"]).all()


def test_price_fallback_and_errors():
    c = pd.DataFrame(
        {"mrr": [0.0, 12.0], "total_paid": [120.0, 0.0], "tenure_days": [10 * MONTH_DAYS, 30]}
    )
    assert monthly_price(c).tolist() == pytest.approx([12.0, 12.0])
    with pytest.raises(ModelError, match="monthly price"):
        monthly_price(pd.DataFrame({"mrr": [np.nan]}))
    with pytest.raises(NotFittedError):
        PostReturnSurvival().survival(12)
