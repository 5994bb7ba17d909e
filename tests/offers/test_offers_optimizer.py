"""The optimizer against hand-computable truth, consent, budget and cost caps."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from winback_ml.config import Offer, load_config
from winback_ml.exceptions import OptimizationError
from winback_ml.offers.optimizer import TARGET_COLUMNS, optimize_offers

CFG = {
    "offers": [
        {"offer_type": "none"},
        {"offer_type": "discount", "discount_pct": [10, 30], "discount_months": [3]},
    ],
    "channels": ["email", "sms", "multi"],
    "contact_cost": {"email": 0.01, "sms": 0.05, "multi": 0.06},
}


def _cohort(n=4, **consent):
    d = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "segment": "warm",
            "cancel_reason": "too_expensive",
            "reason_source": "stated",
            "days_lapsed": 40,
            "can_email": True,
            "can_sms": False,
            "can_in_app": False,
            "mrr": 20.0,
        }
    )
    for k, v in consent.items():
        d[k] = v
    return d


def ltv_fn(cohort, offer):
    base = cohort["mrr"].to_numpy() * 10.0
    if offer is None or offer.offer_type != "discount":
        return base
    return base * (1 - offer.discount_pct / 100 * 0.3)  # 3 of 10 months discounted


def make_response(table):
    """table: customer index -> {offer_key: p}, channel multiplies."""
    reach = {"email": 1.0, "sms": 0.8, "multi": 1.1}

    def fn(cohort, offer, channel):
        return np.array([min(1, table[i][offer.key] * reach[channel]) for i in range(len(cohort))])

    return fn


def brute_force(cohort, p0, ltv, resp, cfg):
    out = []
    for i in range(len(cohort)):
        best, arg = 0.0, None
        for o, ch in itertools.product(cfg.offer_catalog(), cfg.channels):
            if ch in ("sms", "multi") and not cohort["can_sms"].iloc[i]:
                continue
            if ch in ("email", "multi") and not cohort["can_email"].iloc[i]:
                continue
            v = (
                resp(cohort, o, ch)[i] * ltv(cohort, o)[i]
                - cfg.contact_cost[ch]
                - p0[i] * ltv(cohort, None)[i]
            )
            if v > best:
                best, arg = v, (o.key, ch)
        out.append((arg, best))
    return out


def test_matches_brute_force_and_contract_columns():
    cfg = load_config(CFG)
    cohort = _cohort(4, can_sms=[False, True, True, False])
    p0 = np.array([0.05, 0.05, 0.30, 0.10])
    table = [
        {"none": 0.06, "discount_10pct_3m": 0.07, "discount_30pct_3m": 0.20},  # discount pays
        {"none": 0.15, "discount_10pct_3m": 0.16, "discount_30pct_3m": 0.17},  # plain message pays
        {
            "none": 0.30,
            "discount_10pct_3m": 0.32,
            "discount_30pct_3m": 0.34,
        },  # would come back anyway
        {
            "none": 0.10,
            "discount_10pct_3m": 0.10,
            "discount_30pct_3m": 0.10,
        },  # no effect: leave alone
    ]
    resp = make_response(table)
    t = optimize_offers(cohort, p0, ltv_fn, resp, cfg, model_version="m/1")
    assert list(t.columns) == TARGET_COLUMNS
    bf = brute_force(cohort, p0, ltv_fn, resp, cfg)
    got = t.set_index("customer_id")
    for i, (arg, best) in enumerate(bf):
        row = got.loc[f"c{i}"]
        if arg is None:
            assert not row["contact"] and row["expected_incremental_profit"] == 0
            assert row["offer_type"] == "none" and row["p_return_offer"] == row["p_return_base"]
        else:
            assert row["contact"]
            key = Offer(row["offer_type"], row["discount_pct"], row["discount_months"]).key
            assert (key, row["channel"]) == arg
            assert row["expected_incremental_profit"] == pytest.approx(best)
    # c2 would come back anyway: a discount would be money thrown away, and it is not chosen.
    assert got.loc["c2", "offer_type"] != "discount_30pct_3m"
    assert not got.loc["c3", "contact"]
    # ranking: contacted first by profit
    ranked = t[t["contact"]]["expected_incremental_profit"].to_numpy()
    assert np.all(np.diff(ranked) <= 0) and t["rank"].tolist() == [1, 2, 3, 4]
    assert (t["model_version"] == "m/1").all()
    s = t.attrs["summary"]
    assert s["contacted"] == int(t["contact"].sum())
    assert s["expected_incremental_profit"] == pytest.approx(sum(b for _, b in bf))


def test_channels_only_with_consent():
    cfg = load_config(CFG)
    cohort = _cohort(3, can_email=[True, False, False], can_sms=[False, True, False])
    table = [{"none": 0.5, "discount_10pct_3m": 0.5, "discount_30pct_3m": 0.5}] * 3
    t = optimize_offers(cohort, np.zeros(3), ltv_fn, make_response(table), cfg).set_index(
        "customer_id"
    )
    assert t.loc["c0", "channel"] == "email"
    assert t.loc["c1", "channel"] == "sms"
    assert not t.loc["c2", "contact"]  # no consent at all: never contacted


def test_consent_read_from_text_is_parsed_not_cast():
    """A cohort read back from CSV holds "False": casting it to bool would read consent."""
    cfg = load_config(CFG)
    cohort = _cohort(
        4,
        can_email=["False", "True", "0", None],
        can_sms=["false", "FALSE", "no", np.nan],
    )
    table = [{"none": 0.5, "discount_10pct_3m": 0.5, "discount_30pct_3m": 0.5}] * 4
    t = optimize_offers(cohort, np.zeros(4), ltv_fn, make_response(table), cfg).set_index(
        "customer_id"
    )
    assert t.loc["c1", "contact"] and t.loc["c1", "channel"] == "email"
    assert not t.loc[["c0", "c2", "c3"], "contact"].any()
    with pytest.raises(OptimizationError, match="can_email.*maybe"):
        optimize_offers(
            _cohort(2, can_email=["maybe", True]), np.zeros(2), ltv_fn, make_response(table), cfg
        )


def _random_problem(n, seed):
    rng = np.random.default_rng(seed)
    cohort = _cohort(n, can_sms=rng.random(n) < 0.5)
    cohort["mrr"] = rng.uniform(5, 60, n)
    p0 = rng.uniform(0, 0.3, n)
    table = []
    for i in range(n):
        a = rng.uniform(0, 0.1)
        b = rng.uniform(0, 0.3)
        table.append(
            {
                "none": p0[i] + a,
                "discount_10pct_3m": p0[i] + a + b / 2,
                "discount_30pct_3m": p0[i] + a + b,
            }
        )
    return cohort, p0, make_response(table)


def test_budget_and_cost_cap_are_respected_and_profit_is_monotone():
    cohort, p0, resp = _random_problem(400, 1)
    free = optimize_offers(cohort, p0, ltv_fn, resp, load_config(CFG))
    s_free = free.attrs["summary"]
    prev = np.inf
    for frac in (0.5, 0.2, 0.05):
        budget = s_free["expected_spend"] * frac
        t = optimize_offers(cohort, p0, ltv_fn, resp, load_config({**CFG, "budget": budget}))
        s = t.attrs["summary"]
        assert s["expected_spend"] <= budget + 1e-6
        assert s["expected_incremental_profit"] <= prev + 1e-9
        assert s["expected_incremental_profit"] > 0
        prev = s["expected_incremental_profit"]
    # A cap on cost per incremental reactivation
    cap = s_free["expected_cost_per_incremental_reactivation"] * 0.5
    t = optimize_offers(
        cohort, p0, ltv_fn, resp, load_config({**CFG, "max_cost_per_reactivation": cap})
    )
    s = t.attrs["summary"]
    assert s["expected_cost_per_incremental_reactivation"] <= cap + 1e-6
    assert s["expected_incremental_profit"] > 0.5 * s_free["expected_incremental_profit"]
    # Lagrangian + greedy is near the best possible under the budget (LP bound on a tiny problem)
    budget = s_free["expected_spend"] * 0.3
    t = optimize_offers(cohort, p0, ltv_fn, resp, load_config({**CFG, "budget": budget}))
    assert t.attrs["summary"]["expected_incremental_profit"] >= 0.9 * _lp_bound(
        cohort, p0, resp, budget
    )


def _lp_bound(cohort, p0, resp, budget):
    """Fractional relaxation: an upper bound on profit under the budget."""
    from scipy.optimize import linprog

    from winback_ml.offers.optimizer import candidate_table

    t = candidate_table(cohort, p0, ltv_fn, resp, load_config(CFG))
    eip, spend = t["eip"], t["spend"]
    n, k = eip.shape
    ok = np.isfinite(eip) & (eip > 0)
    c = -np.where(ok, eip, 0).ravel()
    A = [np.where(ok, spend, 0).ravel()]
    b = [budget]
    rows = np.zeros((n, n * k))
    for i in range(n):
        rows[i, i * k : (i + 1) * k] = 1
    res = linprog(c, A_ub=np.vstack([A[0], rows]), b_ub=np.r_[b, np.ones(n)], bounds=(0, 1))
    return -res.fun


def test_untried_offer_is_excluded_visibly():
    cfg = load_config(CFG)
    cohort = _cohort(2)

    def resp(cohort, offer, channel):
        if offer.key == "discount_30pct_3m":
            return np.full(len(cohort), np.nan)  # never tried
        return np.full(len(cohort), 0.5)

    t = optimize_offers(cohort, np.zeros(2), ltv_fn, resp, cfg)
    assert not (t["discount_pct"] == 30).any()
    assert any("discount_30pct_3m" in e for e in t.attrs["excluded"])


def test_bad_inputs():
    cfg = load_config(CFG)
    cohort = _cohort(2)
    resp = make_response([{"none": 0.1, "discount_10pct_3m": 0.1, "discount_30pct_3m": 0.1}] * 2)
    with pytest.raises(OptimizationError, match="p_base"):
        optimize_offers(cohort, np.array([0.1, 1.5]), ltv_fn, resp, cfg)
    with pytest.raises(OptimizationError, match="lacks columns"):
        optimize_offers(cohort.drop(columns="segment"), np.zeros(2), ltv_fn, resp, cfg)
    with pytest.raises(OptimizationError, match="days_lapsed.*c1"):
        optimize_offers(cohort.assign(days_lapsed=[3, None]), np.zeros(2), ltv_fn, resp, cfg)
    with pytest.raises(OptimizationError, match="consent"):
        optimize_offers(cohort.drop(columns="can_sms"), np.zeros(2), ltv_fn, resp, cfg)
    with pytest.raises(OptimizationError, match="outside \\[0, 1\\].*c1"):
        optimize_offers(cohort, np.zeros(2), ltv_fn, lambda c, o, ch: np.array([0.2, 1.7]), cfg)
    with pytest.raises(OptimizationError, match="ltv_fn\\(cohort, none\\) must return"):
        optimize_offers(
            cohort,
            np.zeros(2),
            lambda c, o: ltv_fn(c, o) if o is None else np.array([1.0, np.nan]),
            resp,
            cfg,
        )
    with pytest.raises(OptimizationError, match="No \\(offer, channel\\)"):
        optimize_offers(cohort, np.zeros(2), ltv_fn, lambda c, o, ch: np.full(len(c), np.nan), cfg)
