"""LTV per billing interval: yearly subscribers leave only at renewals and pay the year up front.

The old pooled curve (monthly and yearly returns in one monthly Kaplan-Meier)
underestimated the yearly cohort's LTV by about 40 % on make_world(20000, 1)
(model 297 vs true 489 without an offer); these tests fail on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.config import Offer, load_config
from winback_ml.exceptions import ModelError
from winback_ml.ltv.ltv import (
    PostReturnSurvival,
    expected_ltv,
    ltv_matrix,
    post_return_tenures,
)

AS_OF = pd.Timestamp("2025-06-30")


def _tenures(n, hazard, period, seed, cens_months=36, prefix="c", interval=None):
    """Tenures with a per-renewal hazard: a renewal every ``period`` months."""
    rng = np.random.default_rng(seed)
    n_ren = rng.geometric(hazard, n)  # the renewal at which the customer leaves
    cens = rng.integers(1, cens_months + 1, n)  # months observed when still paying
    left = n_ren * period
    event = left <= cens
    months = np.where(event, left, cens)
    if period == 12:  # an unpaid renewal ends after dunning: up to half a month later
        months = np.where(event & (rng.random(n) < 0.3), months + 1, months)
    t = pd.DataFrame(
        {
            "customer_id": [f"{prefix}{seed}_{i}" for i in range(n)],
            "returned_at": AS_OF - pd.to_timedelta(cens * 30.4375, unit="D"),
            "months": months.astype(int),
            "lapsed_again": event,
        }
    )
    if interval is not None:
        t["billing_interval"] = interval
    return t


def test_renewal_hazards_recovered_per_interval():
    """Yearly customers leave only at month 12, 24, ...; monthly ones every month."""
    month = _tenures(3000, 0.07, 1, 1, prefix="m", interval="month")
    year = _tenures(3000, 0.40, 12, 2, prefix="y", interval="year")
    s = PostReturnSurvival().fit(pd.concat([month, year], ignore_index=True))
    assert s.sources_["month"].startswith("own") and s.sources_["year"].startswith("own")
    assert np.mean(s.renewal_hazards_["month"][:24]) == pytest.approx(0.07, abs=0.008)
    assert s.renewal_hazards_["year"][0] == pytest.approx(0.40, abs=0.04)
    # the yearly curve is flat between renewals and drops by the renewal hazard at 12
    sy = s.survival(36, billing_interval="year")
    assert np.all(sy[:12] == 1.0) and np.all(sy[12:24] == sy[12])
    assert sy[12] == pytest.approx(0.60, abs=0.04) and sy[24] == pytest.approx(0.36, abs=0.05)
    assert np.all(s.hazards_["year"][np.arange(120) % 12 != 11] == 0.0)
    sm = s.survival(36)
    assert np.all(np.diff(sm) < 0) and sm[12] == pytest.approx(0.93**12, abs=0.04)
    # the monthly baseline is what hazard_ always was
    assert np.array_equal(s.hazard_, s.hazards_["month"])


def test_yearly_ltv_closed_form_paid_up_front():
    """A yearly subscriber pays 12 monthly prices at months 0, 12, ...; discounts lower a year."""
    cfg = load_config({"margin": 0.5, "ltv_horizon_months": 24, "annual_discount_rate": 0.1})
    year = _tenures(4000, 0.5, 12, 3, interval="year")
    s = PostReturnSurvival().fit(pd.concat([_tenures(4000, 0.1, 1, 4, interval="month"), year]))
    h = s.renewal_hazards_["year"][0]
    cust = pd.DataFrame({"mrr": [10.0, 10.0], "billing_interval": ["year", "month"]})
    v = expected_ltv(cust, None, cfg, s)
    assert v.iloc[0] == pytest.approx(0.5 * 10 * 12 * (1 + (1 - h) / 1.1))
    sm = s.survival(24)
    assert v.iloc[1] == pytest.approx(0.5 * 10 * np.sum(sm * 1.1 ** (-np.arange(24) / 12)))
    # 20 % off for 3 months: the first year costs 11.4 monthly prices; the bump (none
    # measured: no discount history) leaves the renewal hazard as it is
    d = expected_ltv(cust, Offer("discount", 20, 3), cfg, s)
    assert d.iloc[0] == pytest.approx(0.5 * 10 * (12 - 0.6 + 12 * (1 - h) / 1.1))
    free = expected_ltv(cust, Offer("free_month", 0, 1), cfg, s)
    assert free.iloc[0] == pytest.approx(v.iloc[0] - 0.5 * 10)
    m = ltv_matrix(cust, [Offer("early_renewal", 15, 12)], cfg, s)
    assert m.loc[0, "early_renewal_15pct_12m"] == pytest.approx(
        0.5 * 10 * (12 * 0.85 + 12 * (1 - h) / 1.1)
    )


def test_discount_end_excess_hazard_carries_to_yearly_renewal():
    """The bump measured on monthly discount returners is an additive (cumulative) hazard at
    the renewal where the discount ends: month 3 for monthly, month 12 for yearly."""
    base = _tenures(3000, 0.06, 1, 5, interval="month")
    rng = np.random.default_rng(6)
    n = 1500  # monthly returners on a 3-month discount: extra cumulative hazard 0.3 at month 3
    x = 0.3
    months = np.empty(n, int)
    event = np.empty(n, bool)
    for i in range(n):
        m = 1
        while True:
            h = 1 - (1 - 0.06) * np.exp(-x) if m == 3 else 0.06
            if rng.random() < h:
                months[i], event[i] = m, True
                break
            if m >= 36:
                months[i], event[i] = m, False
                break
            m += 1
    disc = pd.DataFrame(
        {
            "customer_id": [f"d{i}" for i in range(n)],
            "returned_at": AS_OF - pd.Timedelta(days=1200),
            "months": months,
            "lapsed_again": event,
            "billing_interval": "month",
        }
    )
    year = _tenures(2000, 0.4, 12, 7, interval="year")
    s = PostReturnSurvival().fit(
        pd.concat([base, disc, year], ignore_index=True),
        discount_returns=disc[["customer_id", "returned_at"]].assign(discount_months=3),
    )
    assert s.bump_.source == "measured"
    assert s.bump_.excess_hazard == pytest.approx(x, abs=0.07)
    hy = s.renewal_hazards_["year"][0]
    sy0, sy3 = s.survival(24, 0, "year"), s.survival(24, 3, "year")
    assert np.all(sy3[:12] == 1.0)
    assert 1 - sy3[12] == pytest.approx(1 - (1 - hy) * np.exp(-s.bump_.excess_hazard))
    # additive, not multiplied: the yearly renewal hazard is not scaled by the ratio
    assert 1 - sy3[12] < min(1.0, hy * s.bump_.ratio) and sy3[12] < sy0[12]


def test_thin_yearly_stratum_falls_back_to_pooled_curve_with_renewals():
    month = _tenures(3000, 0.07, 1, 8, interval="month")
    year = _tenures(40, 0.4, 12, 9, prefix="y", interval="year", cens_months=14)
    s = PostReturnSurvival(min_stratum_at_risk=30).fit(pd.concat([month, year]))
    n_through = int((year["months"] >= 12).sum())
    assert n_through < 30
    src = s.sources_["year"]
    assert src.startswith("pooled") and "renewal structure" in src and "30 needed" in src
    assert f"only {n_through} of 40" in src and "year: pooled" in s.source_
    # the pooled monthly curve, read at the renewals only
    month_only = np.r_[1.0, np.cumprod(1 - s.hazard_)]
    pooled_km = PostReturnSurvival().fit(pd.concat([month, year]).drop(columns="billing_interval"))
    sp = np.r_[1.0, np.cumprod(1 - pooled_km.hazard_)]
    sy = s.survival(36, billing_interval="year")
    assert sy[12] == pytest.approx(sp[12]) and sy[24] == pytest.approx(sp[24])
    assert np.all(sy[:12] == 1.0) and np.all(sy[13:24] == sy[12])
    assert month_only[12] != pytest.approx(sp[12])  # not the monthly stratum's curve
    # with a threshold it meets, the same stratum is its own
    assert n_through >= 1
    own = PostReturnSurvival(min_stratum_at_risk=n_through).fit(pd.concat([month, year]))
    assert own.sources_["year"].startswith("own")


def test_no_returns_at_all_is_the_prior_per_renewal():
    s = PostReturnSurvival(prior_hazard=0.1).fit(_tenures(3, 0.1, 1, 10, interval="year"))
    assert s.sources_["year"].startswith("prior") and s.sources_["month"].startswith("prior")
    assert s.renewal_hazards_["year"][0] == pytest.approx(1 - 0.9**12)
    assert s.survival(13, billing_interval="year")[12] == pytest.approx(0.9**12)


def test_frame_without_billing_interval_is_monthly():
    cfg = load_config({"margin": 0.8, "ltv_horizon_months": 24})
    t = _tenures(2000, 0.08, 1, 11)
    s = PostReturnSurvival().fit(t)
    assert "no billing_interval column" in s.sources_["month"]
    assert s.n_returns_by_interval_ == {"month": 2000, "year": 0}
    cust = pd.DataFrame({"mrr": [10.0, 30.0]})
    v = expected_ltv(cust, None, cfg, s)
    same = expected_ltv(cust.assign(billing_interval="month"), None, cfg, s)
    assert np.allclose(v, same)
    gap = expected_ltv(cust.assign(billing_interval=[None, np.nan]), None, cfg, s)
    assert np.allclose(gap, same)


def test_bad_billing_interval_is_a_clear_error():
    s = PostReturnSurvival().fit(_tenures(100, 0.1, 1, 12))
    cust = pd.DataFrame({"mrr": [10.0, 10.0], "billing_interval": ["month", "week"]})
    with pytest.raises(ModelError, match=r"'billing_interval'.*\['week'\] at rows \[1\]"):
        expected_ltv(cust, None, None, s)
    with pytest.raises(ModelError, match="billing_interval"):
        s.survival(12, billing_interval="quarter")
    with pytest.raises(ModelError, match="post-return tenures"):
        PostReturnSurvival().fit(_tenures(10, 0.1, 1, 13, interval="week"))


def test_post_return_tenures_carry_the_lapsed_interval():
    ep = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "lapse_number": [1, 2, 1],
            "ended_at": pd.to_datetime(["2023-01-01", "2024-01-20", "2024-03-01"]),
            "returned": [True, False, True],
            "returned_at": pd.to_datetime(["2023-01-15", None, "2024-04-01"]),
            "billing_interval": ["year", "year", "month"],
        }
    )
    t = post_return_tenures(ep, AS_OF).set_index("customer_id")
    assert t.loc["a", "billing_interval"] == "year" and t.loc["a", "months"] == 12
    assert t.loc["b", "billing_interval"] == "month"


@pytest.fixture(scope="module")
def world_ltv():
    """make_world(20000, 1) as of its end: the cohort, the fitted survival, the truth."""
    from winback_ml.cohort import build_lapse_episodes
    from winback_ml.cohort.lapsed import build_lapsed_cohort
    from winback_ml.data.loader import load_data
    from winback_ml.data.synthetic import make_world
    from winback_ml.models.uplift_campaigns import build_campaign_outcomes
    from winback_ml.scoring import _discount_returns

    w = make_world(20000, 1)
    T = w.end
    cfg = load_config(None)
    cd = load_data(w.tables, as_of=T)
    eps = build_lapse_episodes(cd, T)
    cohort = build_lapsed_cohort(cd, T, window_days=cfg.lapsed_window_days).reset_index(drop=True)
    disc = _discount_returns(build_campaign_outcomes(cd, T, cfg.attribution_window_days))
    surv = PostReturnSurvival().fit(post_return_tenures(eps, T), discount_returns=disc)
    return w, cfg, cohort, surv


@pytest.mark.parametrize(
    "offer", [None, Offer("early_renewal", 15, 12), Offer("discount", 20, 3)], ids=str
)
def test_ltv_per_interval_matches_the_truth(world_ltv, offer):
    """Mean model LTV of the lapsed cohort within 8 % of the truth per billing interval.

    Measured (make_world(20000, 1), as of the end, default config): monthly
    +0.8 / -1.2 / -2.8 %, yearly -2.4 / -4.1 / -3.8 % (no offer, early renewal,
    20 % for 3 months); the old pooled curve: yearly -39 / -43 / -44 %.
    """
    w, cfg, cohort, surv = world_ltv
    model = expected_ltv(cohort, offer, cfg, surv).to_numpy()
    truth = w.truth.ltv(
        cohort["customer_id"], offer, cfg.ltv_horizon_months, cfg.margin, cfg.annual_discount_rate
    )
    for b in ("month", "year"):
        k = (cohort["billing_interval"] == b).to_numpy()
        assert k.sum() > 100
        bias = model[k].mean() / truth[k].mean() - 1
        assert abs(bias) < 0.08, (b, bias)
    assert surv.sources_["year"].startswith("own")  # 95 yearly returns through renewal 1
