"""The world's truth recovers its own mechanisms from the contract tables.

Statistical checks use a 20,000-customer world (about 3 s to build) and
tolerances of 4 standard errors, so they fail for a broken mechanism, not by
chance.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from winback_ml.config import Offer, load_config
from winback_ml.data.synthetic import World, make_world
from winback_ml.data.truth import TRUE_REASONS

Z = 4.0


@lru_cache(maxsize=1)
def _big() -> World:
    return make_world(20000, seed=5)


@lru_cache(maxsize=1)
def _small() -> World:
    return make_world(3000, seed=7)


def _se(p: float, n: int) -> float:
    return float(np.sqrt(max(p * (1 - p), 1e-6) / max(n, 1)))


def _assignments(w: World) -> pd.DataFrame:
    ep = w.truth.episodes
    a = ep[ep["campaign_id"].notna()].copy()
    a = a[a["assigned_at"] <= w.end - pd.Timedelta(days=30)]  # complete windows only
    # outcome from the contract tables: a reactivation event within 30 days of assignment
    e = w.tables["events"]
    opens = e[e["event_type"].isin(["reactivated", "subscribed"])]
    opens = opens.merge(
        a[["customer_id", "assigned_at"]], on="customer_id", how="inner", validate="many_to_many"
    )
    hit = opens[
        (opens["occurred_at"] > opens["assigned_at"])
        & (opens["occurred_at"] <= opens["assigned_at"] + pd.Timedelta(days=30))
    ]
    key = set(zip(hit["customer_id"], hit["assigned_at"], strict=True))
    a["y"] = [(c, t) in key for c, t in zip(a["customer_id"], a["assigned_at"], strict=True)]
    arms = w.tables["campaign_arms"].drop(columns=["send_delay_days"])
    arms = arms.set_index(["campaign_id", "arm_id"])
    a = a.join(arms, on=["campaign_id", "arm_id"])
    return a


def _truth_p(w: World, a: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """True P(return in 30 d) at assignment without and with the arm's offer."""
    p0 = np.full(len(a), np.nan)
    p1 = np.full(len(a), np.nan)
    for (_, t, ctrl, ot, pct, mon, ch), idx in a.groupby(
        [
            "campaign_id",
            "assigned_at",
            "is_control",
            "offer_type",
            "discount_pct",
            "discount_months",
            "channel",
        ]
    ).indices.items():
        ids = a["customer_id"].to_numpy()[idx]
        p0[idx] = w.truth.p_return(ids, t, 30)
        offer = None if ctrl else Offer(ot, float(pct), int(mon))
        p1[idx] = w.truth.p_return(ids, t, 30, offer, None if ctrl else ch)
    return p0, p1


# ------------------------------------------------------------------------------ stated reasons
def test_unknown_share_of_stated_reasons_matches_the_parameter_per_source():
    w = _big()
    s = w.tables["subscriptions"]
    ep = w.truth.episodes.set_index("subscription_id")
    s = s[s["cancel_reason"].notna()].copy()
    s["voluntary"] = ep.loc[s["subscription_id"], "true_reason"].to_numpy() != "payment_failed"
    share = w.truth.params["unknown_share_by_source"]
    vol = s[s["voluntary"]]
    for src, g in vol.groupby("source"):
        emp = float((g["cancel_reason"] == "unknown").mean())
        assert abs(emp - share[src]) < Z * _se(share[src], len(g)) + 1e-9, (src, emp, len(g))
    # involuntary ends are always stated as payment_failed
    assert (s.loc[~s["voluntary"], "cancel_reason"] == "payment_failed").all()


def test_stated_reasons_agree_with_the_truth_mostly():
    w = _big()
    ep = w.truth.lapses
    known = ep[ep["stated_reason"] != "unknown"]
    agree = float((known["stated_reason"] == known["true_reason"]).mean())
    mis = w.truth.params["misreport_prob"]
    vol = known["true_reason"] != "payment_failed"
    expected = 1 - mis * vol.mean()
    assert abs(agree - expected) < 0.02


def test_comments_are_informative_of_the_true_reason():
    w = _big()
    s = w.tables["subscriptions"].set_index("subscription_id")
    ep = w.truth.lapses.set_index("subscription_id")
    c = s.loc[ep.index, "cancel_comment"]
    has = c.notna()
    assert 0.1 < has.mean() < 0.5
    money = c[has].str.contains("expensive|price|cheaper|budget|costs", regex=True)
    tr = ep.loc[has[has].index, "true_reason"]
    assert money[tr == "too_expensive"].mean() > 0.95
    assert money[tr != "too_expensive"].mean() < 0.05


# ------------------------------------------------------------------------------ campaigns
def test_control_arm_return_rate_matches_true_p_return_at_assignment():
    w = _big()
    a = _assignments(w)
    c = a[a["is_control"]]
    p0, _ = _truth_p(w, c)
    pred = float(p0.mean())
    emp = float(c["y"].mean())
    assert len(c) > 1000
    assert abs(emp - pred) < Z * _se(pred, len(c)), (emp, pred, len(c))
    # the truth function agrees with what the simulation used
    np.testing.assert_allclose(p0, c["p_base_at_assignment"].to_numpy(), rtol=1e-12)


def test_empirical_arm_effects_match_the_true_mean_uplift():
    w = _big()
    a = _assignments(w)
    p0, p1 = _truth_p(w, a)
    a["p0"], a["p1"] = p0, p1
    ctrl = a[a["is_control"]]
    c_rate = ctrl["y"].mean()
    c_pred = ctrl["p0"].mean()
    for arm, g in a[~a["is_control"]].groupby("arm_id"):
        emp_uplift = g["y"].mean() - c_rate
        true_uplift = (g["p1"] - g["p0"]).mean() + (g["p0"].mean() - c_pred)
        se = np.sqrt(_se(g["y"].mean(), len(g)) ** 2 + _se(c_rate, len(ctrl)) ** 2)
        assert abs(emp_uplift - true_uplift) < Z * se, (arm, emp_uplift, true_uplift)
    # and the offer arms as a whole are exactly calibrated
    t = a[~a["is_control"]]
    assert abs(t["y"].mean() - t["p1"].mean()) < Z * _se(t["p1"].mean(), len(t))


def test_effects_are_heterogeneous_right_offer_for_right_reason():
    w = _big()
    T = w.truth
    lap = T.lapses
    ids_all = w.tables["customers"]["customer_id"].to_numpy()
    d = T._lapsed_state(ids_all, w.end)[2]
    ids = ids_all[np.isfinite(d) & (d <= 90)]
    tr = T.true_reason(ids, w.end)

    def uplift(offer: Offer, reason: str, channel: str = "multi") -> float:
        sel = ids[tr == reason]
        base = T.p_return(sel, w.end)
        return float(np.mean(T.p_return(sel, w.end, 30, offer, channel) - base))

    assert len(lap) > 0
    disc = Offer("discount", 25, 3)
    assert uplift(disc, "too_expensive") > 2 * uplift(Offer("feature_trial"), "too_expensive")
    assert uplift(Offer("feature_trial"), "missing_features") > 2 * uplift(disc, "missing_features")
    assert uplift(Offer("resume_billing"), "payment_failed") > 0.05
    np.testing.assert_allclose(
        T.uplift(ids, w.end, disc, "multi"),
        T.p_return(ids, w.end, 30, disc, "multi") - T.p_return(ids, w.end),
    )
    assert uplift(Offer("resume_billing"), "too_expensive") == pytest.approx(0.0, abs=1e-12)
    assert uplift(Offer("early_renewal", 15, 12), "contract_ended") > 2 * uplift(
        Offer("none"), "contract_ended"
    )
    # discounts have diminishing returns in depth
    u = [uplift(Offer("discount", p, 3), "too_expensive") for p in (10, 20, 30, 40, 50)]
    steps = np.diff(u)
    assert (steps > 0).all() and (np.diff(steps) < 0).all()


def test_a_channel_without_consent_reaches_nobody():
    w = _small()
    T = w.truth
    c = T.customers
    ids_all = c["customer_id"].to_numpy()
    p = T.p_return(ids_all, w.end)
    no_sms = (c["sms_ok"] == 0).to_numpy() & np.isfinite(p)
    ids = ids_all[no_sms]
    offer = Offer("discount", 30, 3)
    np.testing.assert_array_equal(T.p_return(ids, w.end, 30, offer, "sms"), p[no_sms])
    cfg = load_config(None)
    np.testing.assert_array_equal(
        T.expected_incremental_profit(ids, w.end, offer, "sms", cfg), np.zeros(len(ids))
    )


# ------------------------------------------------------------------------------ churn and returns
@pytest.mark.parametrize("as_of", ["2024-03-15", "2024-11-30", "2025-06-01"])
def test_p_churn_is_calibrated_against_simulated_outcomes(as_of):
    w = _big()
    t = pd.Timestamp(as_of)
    ids = w.tables["customers"]["customer_id"].to_numpy()
    pc = w.truth.p_churn(ids, t, horizon_days=90)
    act = np.isfinite(pc)
    s = w.tables["subscriptions"]
    live = s[(s["started_at"] <= t) & (s["ended_at"].isna() | (s["ended_at"] > t))]
    live = live.set_index("customer_id")
    assert set(live.index) == set(ids[act])
    y = (live["ended_at"] <= t + pd.Timedelta(days=90)).reindex(ids[act]).to_numpy(bool)
    p = pc[act]
    assert abs(y.mean() - p.mean()) < Z * np.sqrt(np.sum(p * (1 - p))) / len(p)
    q = pd.qcut(p, 4, labels=False, duplicates="drop")
    for b in np.unique(q):
        m = q == b
        assert abs(y[m].mean() - p[m].mean()) < Z * np.sqrt(np.sum(p[m] * (1 - p[m]))) / m.sum()


@pytest.mark.parametrize("as_of", ["2024-06-01", "2025-03-01"])
def test_natural_p_return_is_calibrated(as_of):
    w = _big()
    t = pd.Timestamp(as_of)
    ids = w.tables["customers"]["customer_id"].to_numpy()
    pr = w.truth.p_return(ids, t, within_days=60)
    lap = np.isfinite(pr)
    s = w.tables["subscriptions"]
    nxt = s[s["started_at"] > t].groupby("customer_id")["started_at"].min()
    r = nxt.reindex(ids[lap])
    y = (r <= t + pd.Timedelta(days=60)).to_numpy(bool)
    p = pr[lap]
    assert abs(y.mean() - p.mean()) < Z * np.sqrt(np.sum(p * (1 - p))) / len(p)
    # cure fraction: the return probability falls with days lapsed
    d = w.truth._lapsed_state(ids[lap], t)[2]
    assert p[d > 180].mean() < p[d < 60].mean()


def test_usage_falls_before_an_unused_churn():
    w = _big()
    u = w.tables["usage"]
    lap = w.truth.lapses
    lap = lap[lap["ended_at"] - lap["started_at"] > pd.Timedelta(days=200)]
    m = u.merge(lap[["customer_id", "started_at", "ended_at", "true_reason"]], on="customer_id")
    m = m[(m["week_start"] >= m["started_at"]) & (m["week_start"] < m["ended_at"])]
    wk = (m["ended_at"] - m["week_start"]).dt.days // 7
    m = m.assign(weeks_before=wk)
    last = m[m["weeks_before"] < 4].groupby("true_reason")["sessions"].mean()
    early = m[m["weeks_before"].between(20, 27)].groupby("true_reason")["sessions"].mean()
    ratio = last / early
    assert ratio["unused"] < 0.78
    assert ratio["unused"] < ratio["payment_failed"] - 0.1
    assert last["unused"] < last.drop("unused").min()


def test_tickets_reflect_feature_need_and_satisfaction():
    w = _big()
    tk = w.tables["support_tickets"]
    ep = w.truth.episodes
    lap = w.truth.lapses
    # tickets per subscribed month, by the true reason of the customer's last lapse
    stop = ep["ended_at"].fillna(w.end)
    months = ((stop - ep["started_at"]).dt.days / 30.44).groupby(ep["customer_id"]).sum()
    per = tk.groupby(["customer_id", "category"]).size().unstack(fill_value=0)
    reason = lap.drop_duplicates("customer_id", keep="last").set_index("customer_id")["true_reason"]
    per = per.reindex(reason.index, fill_value=0).div(months.reindex(reason.index), axis=0)
    fr = per["feature_request"].groupby(reason).mean()
    assert fr["missing_features"] > 1.5 * fr.drop("missing_features").mean()
    comp = per["complaint"].groupby(reason).mean()
    assert (
        comp[["customer_service", "low_quality"]].min()
        > 1.5 * comp[["too_expensive", "missing_features", "unused"]].mean()
    )
    assert (tk.loc[tk["category"] == "complaint", "is_complaint"]).all()
    assert not tk.loc[tk["category"] != "complaint", "is_complaint"].any()


def test_interview_answers_follow_the_truth():
    w = _big()
    iv = w.tables["interviews"]
    ep = w.truth.episodes
    done = ep[ep["interviewed_at"].notna()][
        ["customer_id", "interviewed_at", "true_segment", "true_reason"]
    ]
    m = iv.merge(
        done, left_on=["customer_id", "answered_at"], right_on=["customer_id", "interviewed_at"]
    )
    assert len(m) == len(iv)
    good = m[m["quality_score"] >= 3]
    yes = (good["q7_offer_interest"] == "yes").groupby(good["true_segment"]).mean()
    assert yes["hot"] > 0.5 > yes["lost"]
    low = float((iv["quality_score"] < 3).mean())
    assert abs(low - w.truth.params["interview_low_quality"]) < 0.05
    sw = good[good["true_reason"] == "switched_service"]["q5_using_instead"].dropna()
    assert sw.isin(["Taskly", "Boardwise", "PlanHub", "Notely", "FlowDesk", "Trackr"]).all()


# ------------------------------------------------------------------------------ value
def test_ltv_matches_simulated_post_return_revenue():
    w = _big()
    T = w.truth
    horizon = 6
    ep = T.episodes
    ret = ep[(ep["episode"] > 0) & (ep["started_at"] <= w.end - pd.DateOffset(months=horizon))]
    assert len(ret) > 500
    e = w.tables["events"]
    paid = e[e["event_type"].isin(["subscribed", "reactivated", "renewed", "payment_recovered"])]
    paid = paid[paid["subscription_id"].isin(ret["subscription_id"])]
    start = ret.set_index("subscription_id")["started_at"]
    months = (paid["occurred_at"] - paid["subscription_id"].map(start)).dt.days / 30.4375
    fx = T.params["fx_to_usd"]
    usd = paid["amount"] * paid["currency"].map(fx)
    # a payment's month index (recoveries belong to the failed boundary's month)
    k = np.floor(months + 0.2).clip(lower=0)  # renewals sit on month boundaries
    inside = k < horizon
    disc = (1.1) ** (-k / 12)
    realised = (0.8 * usd * disc)[inside].groupby(paid["subscription_id"][inside]).sum()
    realised = realised.reindex(ret["subscription_id"], fill_value=0.0)
    pred = np.zeros(len(ret))
    for (pct, mon), idx in ret.groupby(["offer_pct", "offer_months"]).indices.items():
        ids = ret["customer_id"].to_numpy()[idx]
        if pct == 100:
            offer = Offer("free_month", 0, int(mon))
        elif pct > 0:
            offer = Offer("discount", float(pct), int(mon))
        else:
            offer = None
        pred[idx] = T.ltv(ids, offer, horizon_months=horizon, margin=0.8)
    rel = realised.sum() / pred.sum()
    assert abs(rel - 1) < 0.05, rel


def test_ltv_discounts_and_deal_seekers():
    w = _small()
    T = w.truth
    ids = T.customers["customer_id"].to_numpy()
    base = T.ltv(ids)
    d25 = T.ltv(ids, Offer("discount", 25, 3))
    assert (d25 < base).all()
    ds = T.customers["deal_seeker"].to_numpy() == 1
    drop = 1 - d25 / base
    assert drop[ds].mean() > drop[~ds].mean() + 0.03
    assert T.ltv(ids, Offer("feature_trial")).tolist() == base.tolist()


def test_oracle_beats_blanket_discount_and_playbook_and_values_agree():
    w = _big()
    T = w.truth
    cfg = load_config(None)
    ids_all = w.tables["customers"]["customer_id"].to_numpy()
    d = T._lapsed_state(ids_all, w.end)[2]
    ids = ids_all[np.isfinite(d) & (d <= 90)]
    orc = T.oracle_policy(ids, w.end, cfg)
    v_orc = T.policy_value(orc, w.end, cfg)
    assert v_orc == pytest.approx(orc["expected_incremental_profit"].sum(), rel=1e-9)
    blanket = pd.DataFrame(
        {
            "customer_id": ids,
            "contact": True,
            "offer_type": "discount",
            "discount_pct": 25.0,
            "discount_months": 3,
            "channel": "multi",
        }
    )
    v_blanket = T.policy_value(blanket, w.end, cfg)
    s = w.tables["subscriptions"].sort_values("started_at")
    stated = s.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    stated = stated.loc[ids, "cancel_reason"].to_numpy()
    play = {
        "payment_failed": ("resume_billing", 0.0, 0),
        "contract_ended": ("early_renewal", 15.0, 12),
        "missing_features": ("feature_trial", 0.0, 0),
        "too_expensive": ("discount", 25.0, 3),
    }
    rows = [play.get(r, ("none", 0.0, 0)) for r in stated]
    playbook = pd.DataFrame(
        {
            "customer_id": ids,
            "contact": True,
            "offer_type": [r[0] for r in rows],
            "discount_pct": [r[1] for r in rows],
            "discount_months": [r[2] for r in rows],
            "channel": "multi",
        }
    )
    v_play = T.policy_value(playbook, w.end, cfg)
    assert v_play > v_blanket > 0
    assert v_orc > 1.3 * v_play
    # the oracle is the best per customer: no single offer does better for anyone
    for offer, ch in [(Offer("discount", 25, 3), "multi"), (Offer("resume_billing"), "email")]:
        eip = T.expected_incremental_profit(ids, w.end, offer, ch, cfg)
        assert (eip <= orc["expected_incremental_profit"].to_numpy() + 1e-9).all()


def test_oracle_honours_the_budget():
    w = _small()
    T = w.truth
    ids = w.tables["customers"]["customer_id"].to_numpy()
    cfg = load_config({"budget": 50.0})
    pol = T.oracle_policy(ids, w.end, cfg)
    free = T.oracle_policy(ids, w.end, load_config(None))
    assert pol["contact"].sum() < free["contact"].sum()
    spent = 0.0
    for (ot, pct, mon, ch), g in pol[pol["contact"]].groupby(
        ["offer_type", "discount_pct", "discount_months", "channel"]
    ):
        parts = T._eip_parts(g["customer_id"], w.end, Offer(ot, pct, mon), ch, cfg)
        spent += float(np.sum(parts["cost"] + parts["incentive"]))
    assert spent <= 50.0 + 1e-6
    assert T.policy_value(pol, w.end, cfg) <= T.policy_value(free, w.end, cfg)


def test_truth_functions_are_deterministic_and_nan_where_not_applicable():
    w = _small()
    T = w.truth
    ids = w.tables["customers"]["customer_id"].to_numpy()
    a = T.p_return(ids, w.end)
    b = T.p_return(ids, w.end)
    np.testing.assert_array_equal(a, b)
    pc = T.p_churn(ids, w.end)
    # exactly one of lapsed / active at the end for everyone who has signed up
    assert (np.isfinite(a) ^ np.isfinite(pc)).all()
    assert ((a >= 0) & (a <= 1))[np.isfinite(a)].all()
    r = T.true_reason(ids, w.end)
    assert set(r[np.isfinite(a)]) <= set(TRUE_REASONS)
    # before anyone signed up, nothing applies
    early = T.p_return(ids, w.start)
    assert np.isnan(early).all()
    assert all(x is None for x in T.true_reason(ids, w.start))
    # true_reason as of an earlier date only sees lapses by then
    mid = pd.Timestamp("2024-06-30")
    rm = T.true_reason(ids, mid)
    lap = T.lapses
    seen = set(lap.loc[lap["ended_at"] <= mid, "customer_id"])
    assert {i for i, x in zip(ids, rm, strict=True) if x is not None} == seen


def test_oracle_honours_max_cost_per_reactivation():
    w = _small()
    T = w.truth
    ids = w.tables["customers"]["customer_id"].to_numpy()
    cap = 5.0
    cfg = load_config({"max_cost_per_reactivation": cap})
    pol = T.oracle_policy(ids, w.end, cfg)
    free = T.oracle_policy(ids, w.end, load_config(None))
    assert 0 < pol["contact"].sum()
    for (ot, pct, mon, ch), g in pol[pol["contact"]].groupby(
        ["offer_type", "discount_pct", "discount_months", "channel"]
    ):
        parts = T._eip_parts(g["customer_id"], w.end, Offer(ot, pct, mon), ch, cfg)
        spend = parts["cost"] + parts["incentive"]
        assert (spend <= cap * (parts["p1"] - parts["p0"]) + 1e-12).all()
    assert T.policy_value(pol, w.end, cfg) <= T.policy_value(free, w.end, cfg)
    # cheap offers (no discount) remain: the cap removes deep discounts first
    assert (pol.loc[pol["contact"], "discount_pct"] == 0).mean() >= (
        free.loc[free["contact"], "discount_pct"] == 0
    ).mean()


@pytest.mark.parametrize("as_of", ["2024-05-17 12:00", "2025-02-01"])
def test_truth_as_of_uses_nothing_after_as_of(as_of):
    """Blank out everything after as_of: every as_of answer stays the same."""
    from winback_ml.data.truth import WorldTruth

    w = _small()
    T = w.truth
    t = pd.Timestamp(as_of)
    ep = T.episodes[T.episodes["started_at"] <= t].copy()
    for col in ("ended_at", "cancel_requested_at", "returned_at", "assigned_at", "interviewed_at"):
        ep.loc[ep[col] > t, col] = pd.NaT
    future_end = ep["ended_at"].isna()
    ep.loc[future_end, ["cure_prob", "return_rate"]] = np.nan
    # a reason is only known once the cancel request is made
    unknown_yet = future_end & ep["cancel_requested_at"].isna()
    ep.loc[unknown_yet, ["true_reason", "stated_reason"]] = None
    pf = T.payment_failures[T.payment_failures["failed_at"] <= t].copy()
    pf.loc[pf["recovered_at"] > t, "recovered_at"] = pd.NaT
    cut = WorldTruth(T.customers, ep.reset_index(drop=True), pf, T.params, T.end)
    ids = T.customers["customer_id"].to_numpy()
    cfg = load_config(None)
    np.testing.assert_array_equal(cut.p_churn(ids, t), T.p_churn(ids, t))
    np.testing.assert_array_equal(cut.p_return(ids, t), T.p_return(ids, t))
    offer = Offer("discount", 20, 3)
    np.testing.assert_array_equal(
        cut.p_return(ids, t, 30, offer, "email"), T.p_return(ids, t, 30, offer, "email")
    )
    np.testing.assert_array_equal(
        cut.expected_incremental_profit(ids, t, offer, "multi", cfg),
        T.expected_incremental_profit(ids, t, offer, "multi", cfg),
    )
    assert list(cut.true_reason(ids, t)) == list(T.true_reason(ids, t))


def test_p_return_counts_a_campaign_whose_window_is_still_open():
    """As of 8 days after a campaign, treated customers still convert: the truth knows."""
    w = _big()
    T = w.truth
    ep = T.episodes
    a = ep[ep["campaign_id"].notna() & (ep["uplift_at_assignment"] > 0)]
    ys, ps, p_fresh = [], [], []
    for _cid, g in a.groupby("campaign_id"):
        t = g["assigned_at"].iloc[0] + pd.Timedelta(days=8)
        if t + pd.Timedelta(days=20) > w.end:
            continue
        g = g[g["returned_at"].isna() | (g["returned_at"] > t)]
        ids = g["customer_id"].to_numpy()
        ps.append(T.p_return(ids, t, 20))
        ys.append((g["returned_at"] > t) & (g["returned_at"] <= t + pd.Timedelta(days=20)))
        # what the natural process alone would say
        pi, mu = g["cure_prob"].to_numpy(), g["return_rate"].to_numpy()
        d = ((t - g["ended_at"]).dt.total_seconds() / 86400).to_numpy()
        p_fresh.append(
            pi * (np.exp(-mu * d) - np.exp(-mu * (d + 20))) / (1 - pi + pi * np.exp(-mu * d))
        )
    p = np.concatenate(ps)
    y = np.concatenate([v.to_numpy(bool) for v in ys])
    nat = np.concatenate(p_fresh)
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(y.mean() - p.mean()) < Z * se, (y.mean(), p.mean())
    assert y.mean() - nat.mean() > Z * se  # the natural process alone falls short
