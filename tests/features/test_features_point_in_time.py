"""Point-in-time features: hand-checked values, no leakage from after the date, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.data.loader import load_data
from winback_ml.exceptions import ConfigError, DataContractError
from winback_ml.features import (
    FEATURE_COLUMNS,
    build_churn_scoring_frame,
    build_churn_training_frame,
    build_customer_features,
    build_return_scoring_frame,
    build_return_training_frame,
)

ts = pd.Timestamp


def _tiny() -> dict[str, pd.DataFrame]:
    """Two customers: c1 lapses on 2024-06-01 (too_expensive) and returns 2024-07-15; c2 stays."""
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "signup_at": [ts("2024-01-01"), ts("2024-02-01")],
            "country": ["DE", "US"],
            "language": ["de", "en"],
            "timezone": ["Europe/Berlin", "America/New_York"],
            "email": ["a@example.com", "b@example.com"],
            "phone": [None, None],
            "email_opt_in": [True, False],
            "sms_opt_in": [False, False],
            "acquisition_channel": ["ads", "organic"],
        }
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": ["s1", "s2", "s3"],
            "customer_id": ["c1", "c2", "c1"],
            "source": ["stripe"] * 3,
            "plan_id": ["pro_m", "basic_m", "pro_m"],
            "plan_tier": ["pro", "basic", "pro"],
            "billing_interval": ["month"] * 3,
            "price": [29.0, 9.0, 29.0],
            "currency": ["EUR", "USD", "EUR"],
            "mrr": [31.3, 9.0, 31.3],
            "status": ["cancelled", "active", "active"],
            "started_at": [ts("2024-01-01"), ts("2024-02-01"), ts("2024-07-15")],
            "current_period_end": [ts("2024-06-01"), ts("2024-09-01"), ts("2024-08-15")],
            "cancel_requested_at": [ts("2024-05-20"), pd.NaT, pd.NaT],
            "ended_at": [ts("2024-06-01"), pd.NaT, pd.NaT],
            "cancel_reason": ["too_expensive", None, None],
            "cancel_comment": [None, None, None],
        }
    )
    ev = [
        ("e1", "2024-01-01", "c1", "s1", "subscribed", 29.0, None),
        ("e2", "2024-02-01", "c1", "s1", "renewed", 29.0, None),
        ("e3", "2024-03-01", "c1", "s1", "payment_failed", None, None),
        ("e4", "2024-03-03", "c1", "s1", "payment_recovered", 29.0, None),
        ("e5", "2024-04-01", "c1", "s1", "renewed", 29.0, None),
        ("e6", "2024-05-01", "c1", "s1", "renewed", 29.0, None),
        ("e7", "2024-05-20", "c1", "s1", "cancel_requested", None, None),
        ("e8", "2024-06-01", "c1", "s1", "cancelled", None, "too_expensive"),
        ("e9", "2024-07-15", "c1", "s3", "subscribed", 29.0, None),
        ("e10", "2024-02-01", "c2", "s2", "subscribed", 9.0, None),
        ("e11", "2024-03-01", "c2", "s2", "renewed", 9.0, None),
    ]
    events = pd.DataFrame(
        [
            {
                "event_id": a,
                "occurred_at": ts(b),
                "customer_id": c,
                "subscription_id": d,
                "source": "stripe",
                "event_type": e,
                "amount": f,
                "currency": None if f is None else "EUR",
                "reason": g,
                "detail": None,
            }
            for a, b, c, d, e, f, g in ev
        ]
    )
    weeks = pd.date_range("2024-01-01", "2024-05-27", freq="W-MON")
    usage = pd.DataFrame(
        {
            "customer_id": "c1",
            "week_start": weeks,
            "sessions": np.where(weeks < ts("2024-04-01"), 6, 1),
            "active_minutes": 30.0,
            "features_used": 2,
        }
    )
    tickets = pd.DataFrame(
        {
            "ticket_id": ["t1", "t2", "t3"],
            "customer_id": ["c1", "c1", "c2"],
            "created_at": [ts("2024-03-01"), ts("2024-05-10"), ts("2024-03-05")],
            "category": ["billing", "complaint", "feature_request"],
            "is_complaint": [False, True, False],
            "csat": [4, 2, None],
        }
    )
    return {
        "customers": customers,
        "subscriptions": subscriptions,
        "events": events,
        "usage": usage,
        "support_tickets": tickets,
    }


def test_hand_checked_values_at_the_lapse() -> None:
    f = build_customer_features(_tiny(), ts("2024-06-01"), ["c1", "c2"]).set_index("customer_id")
    assert list(f.columns) == ["at", *FEATURE_COLUMNS]
    c1 = f.loc["c1"]
    assert c1["tenure_days"] == 152.0
    assert c1["n_payment_failures"] == 1 and c1["unrecovered_payment_failure"] == 0
    assert c1["n_past_lapses"] == 1 and c1["last_reason"] == "too_expensive"
    assert c1["is_active"] == 0.0 and c1["days_since_last_end"] == 0.0
    assert c1["cancel_requested_90d"] == 1
    assert c1["n_complaints"] == 1 and c1["n_billing_tickets"] == 1 and c1["mean_csat"] == 3.0
    # complete weeks before 2024-06-01: the last 8 weeks mix 1-session weeks (April on)
    assert c1["sessions_8w"] == pytest.approx(1.0)
    assert c1["usage_trend"] < 0
    assert c1["total_paid"] == 29.0 * 5  # Mar failed, then recovered
    # per session over every complete week: 13 weeks x 6 sessions + 8 x 1, 30 minutes and 2
    # features a week (the week of 2024-05-27 is not complete on 2024-06-01)
    assert c1["log_minutes_per_session"] == pytest.approx(np.log(21 * 30.0 / 86))
    assert c1["features_per_session"] == pytest.approx(21 * 2 / 86)
    c2 = f.loc["c2"]
    assert c2["is_active"] == 1.0 and c2["n_past_lapses"] == 0 and c2["last_reason"] == "none"
    assert np.isnan(c2["log_minutes_per_session"])  # no usage rows: unknown, not 0
    assert c2["n_feature_requests"] == 1
    assert c2["days_to_renewal"] == 0.0 or 0 < c2["days_to_renewal"] <= 31


def test_features_before_the_lapse_do_not_see_it() -> None:
    f = build_customer_features(_tiny(), ts("2024-05-31"), ["c1"]).iloc[0]
    assert f["n_past_lapses"] == 0 and f["is_active"] == 1.0
    assert f["cancel_pending"] == 1.0  # requested on 2024-05-20, still running
    assert f["n_complaints"] == 1


def _mutate_after(tables: dict[str, pd.DataFrame], T: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Change or add every kind of row dated after T (and nothing before)."""
    t = {k: v.copy() for k, v in tables.items()}
    ev = t["events"]
    late = ev["occurred_at"] > T
    ev.loc[late, "event_type"] = "payment_failed"
    ev.loc[late, "amount"] = 1.0
    extra = ev[late].head(50).copy()
    extra["event_id"] = extra["event_id"] + "_x"
    extra["event_type"] = "refunded"
    t["events"] = pd.concat([ev, extra], ignore_index=True)
    if "usage" in t:
        u = t["usage"]
        u.loc[u["week_start"] + pd.Timedelta(days=7) > T, "sessions"] = 999
    if "support_tickets" in t:
        st = t["support_tickets"]
        lt = st["created_at"] > T
        st.loc[lt, "category"] = "complaint"
        st.loc[lt, "is_complaint"] = True
    if "interviews" in t:
        iv = t["interviews"]
        iv.loc[iv["answered_at"] > T, "q7_offer_interest"] = "yes"
    s = t["subscriptions"]
    ended_late = s["ended_at"] > T
    s.loc[ended_late, "cancel_reason"] = "switched_service"
    s.loc[ended_late, "ended_at"] = s.loc[ended_late, "ended_at"] + pd.Timedelta(days=3)
    return t


def test_no_leakage_one_date(world_small) -> None:
    T = ts("2025-06-30")
    ids = world_small.tables["customers"]["customer_id"]
    a = build_customer_features(world_small.tables, T, ids)
    b = build_customer_features(_mutate_after(world_small.tables, T), T, ids)
    pd.testing.assert_frame_equal(a, b)


def test_no_leakage_per_row_dates(world_small) -> None:
    rng = np.random.default_rng(0)
    ids = world_small.tables["customers"]["customer_id"].sample(300, random_state=1).to_numpy()
    at = pd.Series(ts("2024-06-01") + pd.to_timedelta(rng.integers(0, 500, len(ids)), unit="D"))
    a = build_customer_features(world_small.tables, at, ids)
    # mutate everything after the earliest date: each row must still ignore what is after its own date
    b = build_customer_features(_mutate_after(world_small.tables, at.max()), at, ids)
    pd.testing.assert_frame_equal(a, b)
    T0 = at.min()
    c = build_customer_features(_mutate_after(world_small.tables, T0), at, ids)
    early = (at == T0).to_numpy()
    pd.testing.assert_frame_equal(a[early].reset_index(drop=True), c[early].reset_index(drop=True))


def test_scoring_frames_and_predictions_ignore_the_future(world_small) -> None:
    from winback_ml.models import WeibullCureReturnModel, XGBoostAFTChurnModel

    T = ts("2025-06-30")
    full = world_small.tables
    mutated = _mutate_after(full, T)
    a = load_data(full, as_of=T, validate=False)
    b = load_data(mutated, as_of=T, validate=False)
    tr_a, tr_b = build_return_training_frame(a, T), build_return_training_frame(b, T)
    pd.testing.assert_frame_equal(tr_a, tr_b)
    sc_a, sc_b = build_return_scoring_frame(a, T), build_return_scoring_frame(b, T)
    pd.testing.assert_frame_equal(sc_a, sc_b)
    m = WeibullCureReturnModel().fit(tr_a)
    np.testing.assert_array_equal(
        m.expected_return_probability(sc_a),
        WeibullCureReturnModel().fit(tr_b).expected_return_probability(sc_b),
    )
    ch_a = build_churn_training_frame(a, T, n_snapshots=2)
    pd.testing.assert_frame_equal(ch_a, build_churn_training_frame(b, T, n_snapshots=2))
    cs_a, cs_b = build_churn_scoring_frame(a, T), build_churn_scoring_frame(b, T)
    pd.testing.assert_frame_equal(cs_a, cs_b)
    cm = XGBoostAFTChurnModel(n_estimators=20).fit(ch_a)
    np.testing.assert_array_equal(
        cm.expected_churn_probability(cs_a), cm.expected_churn_probability(cs_b)
    )


def test_training_frame_outcomes(world_small) -> None:
    T = ts("2025-06-30")
    tr = build_return_training_frame(world_small.tables, T)
    assert tr["lapse_id"].is_unique
    assert (tr["duration_days"] >= 0).all() and set(tr["event"].unique()) <= {0, 1}
    assert (
        tr["at"] + pd.to_timedelta(tr["duration_days"], unit="D") <= T + pd.Timedelta(seconds=1)
    ).all()
    assert (tr["entry_days"] <= tr["duration_days"]).all()
    assert not {"email", "phone", "cancel_comment"} & set(tr.columns)
    ch = build_churn_training_frame(world_small.tables, T, n_snapshots=3, spacing_days=60)
    assert (ch["at"] < T).all() and (ch["duration_days"] > 0).all()
    # churned customers are the active ones who lapsed by T
    assert 0.05 < ch["event"].mean() < 0.95


def test_errors_are_clear(world_small) -> None:
    with pytest.raises(ConfigError, match="one date per customer row"):
        build_customer_features(world_small.tables, pd.Series([ts("2025-01-01")] * 3), ["a", "b"])
    with pytest.raises(ConfigError, match="customer_ids"):
        build_customer_features(world_small.tables, pd.Series([ts("2025-01-01")]))
    cut = load_data(world_small.tables, as_of="2025-01-01", validate=False)
    with pytest.raises(DataContractError, match="after the data's as_of"):
        build_customer_features(cut, "2025-06-01")
    with pytest.raises(ConfigError, match="ContractData"):
        build_customer_features([1, 2], "2025-06-01")
