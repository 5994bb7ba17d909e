"""Churn features of the current subscription: usage trajectory and payment-failure propensity.

Known truth: a subscription whose weekly sessions halve every N weeks has the
log-linear slope ``log(0.5) / (N * 7 / 30.44)`` per month; the fit reads only
weeks complete by the date; a short history is shrunk towards the prior.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.features import build_customer_features
from winback_ml.features.point_in_time import (
    ENGAGEMENT_PRIOR,
    PAYMENT_FAILURE_PRIOR,
    _engagement_fit,
    _log_geom_sum,
)

ts = pd.Timestamp
MONTH = 30.436875


def _tables(sessions: np.ndarray, start: str = "2024-01-01") -> dict[str, pd.DataFrame]:
    """One monthly customer, subscribed from ``start`` (a Monday), with these weekly sessions."""
    s0 = ts(start)
    customers = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "signup_at": [s0],
            "country": ["US"],
            "language": ["en"],
            "timezone": ["UTC"],
            "email": [None],
            "phone": [None],
            "email_opt_in": [True],
            "sms_opt_in": [False],
            "acquisition_channel": ["ads"],
        }
    )
    subs = pd.DataFrame(
        {
            "subscription_id": ["s1"],
            "customer_id": ["c1"],
            "source": ["stripe"],
            "plan_id": ["pro_m"],
            "plan_tier": ["pro"],
            "billing_interval": ["month"],
            "price": [29.0],
            "currency": ["USD"],
            "mrr": [29.0],
            "status": ["active"],
            "started_at": [s0],
            "current_period_end": [pd.NaT],
            "cancel_requested_at": [pd.NaT],
            "ended_at": [pd.NaT],
            "cancel_reason": [None],
            "cancel_comment": [None],
        }
    )
    months = pd.date_range(s0, periods=24, freq=pd.DateOffset(months=1))
    kinds = ["subscribed"] + ["renewed"] * 23
    kinds[3] = "payment_failed"
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(months))],
            "occurred_at": months,
            "customer_id": "c1",
            "subscription_id": "s1",
            "source": "stripe",
            "event_type": kinds,
            "amount": 29.0,
            "currency": "USD",
            "reason": None,
            "detail": None,
        }
    )
    weeks = pd.date_range(s0, periods=len(sessions), freq="7D")
    usage = pd.DataFrame(
        {
            "customer_id": "c1",
            "week_start": weeks,
            "sessions": sessions.astype(int),
            "active_minutes": 10.0 * sessions,
            "features_used": 1,
        }
    )
    return {"customers": customers, "subscriptions": subs, "events": events, "usage": usage}


def test_log_geometric_sum_matches_the_direct_sum() -> None:
    for c in (-0.9, -0.05, -1e-12, 0.0, 1e-12, 0.03, 0.4):
        for n in (1, 2, 7, 60):
            direct = np.log(np.exp(c * np.arange(n)).sum())
            assert _log_geom_sum(np.array([c]), np.array([n]))[0] == pytest.approx(direct, 1e-9)


def test_halving_every_n_weeks_gives_the_known_slope() -> None:
    N = 8
    j = np.arange(30)
    sessions = np.round(2000 * 0.5 ** (j / N))
    at = ts("2024-01-01") + pd.Timedelta(weeks=30)  # all 30 weeks complete
    f = build_customer_features(_tables(sessions), at, ["c1"]).iloc[0]
    true_slope = np.log(0.5) / (N * 7 / MONTH)  # -0.377 per month
    assert f["engagement_slope"] == pytest.approx(true_slope, abs=0.011)
    assert f["sub_weeks_observed"] == 30
    # fitted sessions per week at `at` (30 weeks after the start), at +90 days
    assert f["engagement_now"] == pytest.approx(2000 * 0.5 ** (30 / N), rel=0.06)
    assert f["engagement_90d"] == pytest.approx(2000 * 0.5 ** ((30 + 90 / 7) / N), rel=0.08)
    assert f["engagement_90d"] < f["engagement_next_renewal"] < f["engagement_now"]
    assert f["sessions_4w"] == pytest.approx(sessions[-4:].mean())


def test_a_flat_history_has_no_slope_and_its_level() -> None:
    sessions = np.full(40, 5.0)
    f = build_customer_features(_tables(sessions), ts("2024-10-07"), ["c1"]).iloc[0]
    assert abs(f["engagement_slope"]) <= 0.011
    assert f["engagement_now"] == pytest.approx(5.0, rel=0.06)


def test_only_complete_weeks_before_the_date_count() -> None:
    j = np.arange(60)
    sessions = np.round(1000 * 0.5 ** (j / 10))
    at = ts("2024-01-01") + pd.Timedelta(weeks=20, days=3)  # 20 complete weeks
    a = build_customer_features(_tables(sessions), at, ["c1"]).iloc[0]
    assert a["sub_weeks_observed"] == 20
    later = sessions.copy()
    later[20:] = 999  # usage after the date (the week running at `at` included)
    b = build_customer_features(_tables(later), at, ["c1"]).iloc[0]
    cols = ["engagement_slope", "engagement_now", "engagement_next_renewal", "engagement_90d"]
    pd.testing.assert_series_equal(a[cols], b[cols])
    # and the fit reads what was there: the truth halves every 10 weeks
    assert a["engagement_slope"] == pytest.approx(np.log(0.5) / (10 * 7 / MONTH), abs=0.011)


def test_a_short_history_is_shrunk_towards_the_prior() -> None:
    # 3 weeks, sessions 4, 2, 1: halving every week is -2.9 per month if taken at face value
    slope, a = _engagement_fit(
        np.array([3.0]), np.array([7.0]), np.array([0 * 4 + 1 * 2 + 2 * 1]) * 7 / MONTH
    )
    assert ENGAGEMENT_PRIOR[0] - 1e-9 > slope[0] > np.log(0.5) / (7 / MONTH)
    # a long history with the same halving rate is not shrunk
    j = np.arange(20)
    s = 4000 * 0.5 ** (j / 8)
    x = j * 7 / MONTH
    slope_l, _ = _engagement_fit(np.array([20.0]), np.array([s.sum()]), np.array([(x * s).sum()]))
    assert slope_l[0] == pytest.approx(np.log(0.5) / (8 * 7 / MONTH), abs=0.011)
    # no usage week at all: unknown
    none, _ = _engagement_fit(np.array([0.0]), np.array([0.0]), np.array([0.0]))
    assert np.isnan(none[0])


def test_payment_failure_propensity_per_renewal_attempt() -> None:
    t = _tables(np.full(10, 3.0))
    # at 2024-06-15: subscribed Jan, renewals Feb, Mar, May, Jun, failure in Apr: 5 attempts
    f = build_customer_features(t, ts("2024-06-15"), ["c1"]).iloc[0]
    a, b = PAYMENT_FAILURE_PRIOR
    assert f["n_renewal_attempts"] == 5
    assert f["payment_failure_propensity"] == pytest.approx((1 + a) / (5 + a + b))
    assert f["n_payment_failures_sub"] == 1
    # before the failure: none yet, the prior mean shrunk by 2 successful renewals
    g = build_customer_features(t, ts("2024-03-15"), ["c1"]).iloc[0]
    assert g["n_renewal_attempts"] == 2 and g["n_payment_failures_sub"] == 0
    assert g["payment_failure_propensity"] == pytest.approx(a / (2 + a + b))


def test_without_a_subscription_the_engagement_is_unknown() -> None:
    t = _tables(np.full(10, 3.0))
    f = build_customer_features(t, ts("2023-12-01"), ["c1"]).iloc[0]
    assert np.isnan(f["engagement_now"]) and np.isnan(f["engagement_slope"])
    assert np.isnan(f["n_payment_failures_sub"])
