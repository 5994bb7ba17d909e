"""Point-in-time customer features: for each (customer, date), history before that date only.

:func:`build_customer_features` takes the contract tables and, per row, a
customer and a date ``at`` (one date for all rows, as ``as_of`` when
scoring, or one per row, as the lapse time or the snapshot date when
training). Every feature of a row is computed from rows of the contract
tables dated **at or before** that row's ``at``:

* ``events.occurred_at <= at``, ``support_tickets.created_at <= at``,
  ``interviews.answered_at <= at``;
* usage weeks only once complete: ``week_start + 7 days <= at``
  (``log_minutes_per_session`` and ``features_per_session`` are over every
  complete week so far: stable traits, such as how engrossed a customer is);
* subscriptions started by ``at``; a subscription's end (``ended_at``,
  ``cancel_reason``) only when it happened by ``at``.

Subscription attributes that the contract does not date (``plan_tier``,
``billing_interval``, ``price``, ``mrr``) are read from the row of the
latest subscription started by ``at``; customer attributes (opt-ins,
acquisition channel, country) from the customers table. PII (e-mail, phone,
free text) is never read.

Invariants: one output row per input row, in input order, with
``customer_id`` and ``at`` first and then :data:`FEATURE_COLUMNS`; all
timestamps tz-naive UTC; day counts are float days. Changing or adding any
row dated after a row's ``at`` leaves that row's features unchanged (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.data.loader import ContractData, load_data, to_timestamp
from winback_ml.exceptions import ConfigError, DataContractError

__all__ = [
    "FEATURE_COLUMNS",
    "NUMERIC_FEATURES",
    "CHURN_ONLY_FEATURES",
    "ENGAGEMENT_FEATURES",
    "PAYMENT_PROPENSITY_FEATURES",
    "ENGAGEMENT_PRIOR",
    "PAYMENT_FAILURE_PRIOR",
    "CATEGORICAL_FEATURES",
    "build_customer_features",
    "as_contract_data",
]

_DAY = pd.Timedelta(days=1)
_EARLY = pd.Timestamp("1677-09-22")

#: Categorical features (one-hot encoded by the models).
#: The current subscription's usage trajectory (Poisson log-linear fit, see ``_engagement_fit``).
ENGAGEMENT_FEATURES = [
    "sub_weeks_observed",
    "sessions_4w",
    "engagement_slope",
    "engagement_now",
    "engagement_next_renewal",
    "engagement_90d",
]
#: Payment failures per renewal attempt.
PAYMENT_PROPENSITY_FEATURES = [
    "n_renewal_attempts",
    "payment_failure_propensity",
    "n_payment_failures_sub",
]
#: Features of the running subscription's path to its next renewals, for the churn frames only
#: (the return frames leave them out): the fitted usage trajectory and failures per attempt.
CHURN_ONLY_FEATURES = [*ENGAGEMENT_FEATURES, *PAYMENT_PROPENSITY_FEATURES]

CATEGORICAL_FEATURES = [
    "plan_tier",
    "billing_interval",
    "acquisition_channel",
    "last_reason",
    "offer_interest",
]
#: Numeric features.
NUMERIC_FEATURES = [
    "tenure_days",
    "subscription_age_days",
    "days_to_renewal",
    "price",
    "mrr",
    "is_active",
    "days_since_last_end",
    "n_past_lapses",
    "n_subscriptions",
    "email_opt_in",
    "sms_opt_in",
    "n_payment_failures",
    "n_payment_failures_90d",
    "unrecovered_payment_failure",
    "n_plan_changes",
    "n_refunds",
    "cancel_requested_90d",
    "cancel_pending",
    "days_since_payment_failure",
    "last_paid_ratio",
    "total_paid",
    "sessions_8w",
    "minutes_8w",
    "features_used_8w",
    "sessions_prev",
    "usage_trend",
    "weeks_since_active",
    "log_minutes_per_session",
    "features_per_session",
    "n_tickets_90d",
    "n_complaints",
    "n_complaints_90d",
    "n_feature_requests",
    "n_bug_tickets",
    "n_how_to_tickets",
    "n_billing_tickets",
    "mean_csat",
    "complaint_rate",
    "feature_request_rate",
    "how_to_rate",
    "payment_failure_rate",
    "leave_strength",
    *CHURN_ONLY_FEATURES,
]
#: Every feature column, in output order (after ``customer_id`` and ``at``).
FEATURE_COLUMNS = NUMERIC_FEATURES + CATEGORICAL_FEATURES


def as_contract_data(data: ContractData | Mapping[str, pd.DataFrame]) -> ContractData:
    """``data`` as a typed ContractData (a dict of frames is typed, not validated)."""
    if isinstance(data, ContractData):
        return data
    if isinstance(data, Mapping):
        return load_data(dict(data), validate=False)
    raise ConfigError(
        "The 'data' parameter must be a ContractData (winback_ml.data.loader.load_data) or a "
        f"dict of contract DataFrames. Got {type(data).__name__} instead."
    )


def _keys(cd: ContractData, at: Any, customer_ids: Any) -> pd.DataFrame:
    if customer_ids is None:
        if isinstance(at, pd.Series):
            raise ConfigError(
                "build_customer_features: 'at' is a Series (one date per row), so "
                "'customer_ids' must be given with the same length. Got customer_ids=None."
            )
        ids = cd.customers["customer_id"].to_numpy()
    else:
        ids = np.asarray(
            list(customer_ids)
            if not isinstance(customer_ids, pd.Series)
            else customer_ids.to_numpy(),
            dtype=object,
        )
    if isinstance(at, pd.Series | np.ndarray | list):
        at_s = pd.to_datetime(pd.Series(np.asarray(at)), errors="coerce")
        if getattr(at_s.dt, "tz", None) is not None:
            at_s = at_s.dt.tz_convert("UTC").dt.tz_localize(None)
        if len(at_s) != len(ids):
            raise ConfigError(
                f"build_customer_features: 'at' has {len(at_s)} dates but customer_ids has "
                f"{len(ids)} entries. Give one date per customer row, or a single date."
            )
        if at_s.isna().any():
            bad = int(at_s.isna().sum())
            raise ConfigError(
                f"build_customer_features: 'at' has {bad} missing or unparsable date(s), e.g. at "
                f"position {int(np.flatnonzero(at_s.isna().to_numpy())[0])}. Fix: give every row a date."
            )
        at_v = at_s.to_numpy(dtype="datetime64[ns]")
    else:
        at_v = np.full(len(ids), to_timestamp(at).to_datetime64(), dtype="datetime64[ns]")
    if cd.as_of is not None and len(at_v) and at_v.max() > np.datetime64(cd.as_of):
        raise DataContractError(
            f"build_customer_features: a feature date ({pd.Timestamp(at_v.max())}) is after the "
            f"data's as_of ({cd.as_of}). Fix: use dates at or before as_of."
        )
    return pd.DataFrame({"customer_id": ids, "at": at_v})


def _asof_sums(
    keys: pd.DataFrame,
    rows: pd.DataFrame,
    time_col: str,
    values: list[str],
    lag_days: float = 0.0,
) -> np.ndarray:
    """Per key row: sums of ``values`` over rows with ``time <= at - lag_days`` (same customer).

    Vectorised with one ``merge_asof`` on per-customer cumulative sums.
    """
    return _asof_sums_lags(keys, rows, time_col, values, (lag_days,))[0]


def _asof_sums_lags(
    keys: pd.DataFrame,
    rows: pd.DataFrame,
    time_col: str,
    values: list[str],
    lags_days: Sequence[float],
) -> list[np.ndarray]:
    """:func:`_asof_sums` at several lags; the rows are sorted and summed once."""
    n = len(keys)
    if rows is None or len(rows) == 0:
        return [np.zeros((n, len(values))) for _ in lags_days]
    r = rows[["customer_id", time_col, *values]].dropna(subset=[time_col])
    r = r.sort_values(["customer_id", time_col], kind="mergesort")
    cum = r.groupby("customer_id", sort=False)[values].cumsum()
    cum.columns = [f"__c{i}" for i in range(len(values))]
    right = pd.concat(
        [r[["customer_id"]], r[[time_col]].rename(columns={time_col: "__t"}), cum], axis=1
    )
    right = right.sort_values("__t", kind="mergesort")
    out = []
    for lag in lags_days:
        left = pd.DataFrame(
            {
                "customer_id": keys["customer_id"].to_numpy(),
                "__t": keys["at"].to_numpy() - np.timedelta64(int(lag * 86400), "s"),
                "__i": np.arange(n),
            }
        ).sort_values("__t", kind="mergesort")
        m = pd.merge_asof(left, right, on="__t", by="customer_id", direction="backward")
        m = m.sort_values("__i")
        out.append(m[list(cum.columns)].fillna(0.0).to_numpy(dtype=float))
    return out


def _asof_last(
    keys: pd.DataFrame, rows: pd.DataFrame, time_col: str, cols: list[str]
) -> pd.DataFrame:
    """Per key row: the values of the latest row with ``time <= at`` (same customer)."""
    n = len(keys)
    if rows is None or len(rows) == 0:
        return pd.DataFrame({c: [None] * n for c in [*cols, "__t"]})
    r = rows[["customer_id", time_col, *cols]].dropna(subset=[time_col])
    r = r.rename(columns={time_col: "__t"}).sort_values("__t", kind="mergesort")
    left = pd.DataFrame(
        {
            "customer_id": keys["customer_id"].to_numpy(),
            "__t": keys["at"].to_numpy(),
            "__i": np.arange(n),
        }
    ).sort_values("__t", kind="mergesort")
    r = r.assign(__found=r["__t"])
    m = pd.merge_asof(left, r, on="__t", by="customer_id", direction="backward")
    m = m.sort_values("__i").reset_index(drop=True)
    out = m[cols].copy()
    out["__t"] = m["__found"]
    return out


def _days_to_renewal(started: pd.Series, interval: pd.Series, at: pd.Series) -> np.ndarray:
    """Days from ``at`` to the next renewal boundary of the subscription started at ``started``."""
    from winback_ml.data.loader import add_months

    started = pd.to_datetime(started).reset_index(drop=True)
    at = pd.to_datetime(at).reset_index(drop=True)
    im = np.where(interval.reset_index(drop=True).to_numpy() == "year", 12, 1)
    ok = started.notna().to_numpy()
    out = np.full(len(at), np.nan)
    if not ok.any():
        return out
    st, a, m = started[ok].reset_index(drop=True), at[ok].reset_index(drop=True), im[ok]
    el = ((a - st) / pd.Timedelta(days=30.436875)).to_numpy(float) / m
    k = np.maximum(np.floor(el).astype(np.int64) - 1, 1)
    for _ in range(4):
        nxt = add_months(st, k * m)
        k = np.where((nxt <= a).to_numpy(), k + 1, k)
    nxt = add_months(st, k * m)
    out[ok] = ((nxt - a) / _DAY).to_numpy(float)
    return out


#: Days per month of the engagement fit (the mean Gregorian month).
_MONTH_DAYS = 30.436875
#: Slopes (log weekly sessions per month) searched by the engagement fit, and its prior.
_SLOPE_GRID = np.arange(-1.2, 0.4001, 0.01) + 0.005
ENGAGEMENT_PRIOR = (-0.05, 0.15)
#: Beta prior (failures, successes) of the payment failure propensity per renewal attempt.
PAYMENT_FAILURE_PRIOR = (1.0, 19.0)


def _log_geom_sum(c: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``log(sum_{j=0}^{n-1} exp(c j))`` elementwise (``n >= 1``), stable for any ``c``."""
    c = np.asarray(c, dtype=float)
    n = np.asarray(n, dtype=float)
    small = np.abs(c) < 1e-9
    cs = np.where(small, 1.0, c)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # c > 0: log((e^{cn} - 1) / (e^c - 1)) = c(n-1) + log(-expm1(-cn)) - log(-expm1(-c))
        pos = cs * (n - 1.0) + np.log(-np.expm1(-cs * n)) - np.log(-np.expm1(-cs))
        neg = np.log(np.expm1(cs * n) / np.expm1(cs))
    out = np.where(cs > 0, pos, neg)
    return np.where(small, np.log(n), out)


def _engagement_fit(
    n_weeks: np.ndarray,
    total: np.ndarray,
    moment: np.ndarray,
    prior: tuple[float, float] = ENGAGEMENT_PRIOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Penalised Poisson log-linear fit of weekly sessions against time, from sufficient stats.

    Weeks ``j = 0..n-1`` of a subscription (every week counts; a week without a
    row had no session) have sessions ``s_j ~ Poisson(exp(a + b x_j))`` with
    ``x_j = j * 7 / 30.44`` months since the first week. Given ``n``,
    ``S = sum s_j`` and ``M = sum x_j s_j``, the profile log-likelihood of the
    slope is ``b M - S log sum_j exp(b x_j)`` (a geometric sum), maximised with
    a normal prior ``N(prior[0], prior[1]^2)`` on ``b`` (per month) over a grid
    of 0.01; a short history is shrunk towards the prior, a long one is not.

    Returns
    -------
    slope, log_rate0
        ``b`` (per month) and ``a`` (log sessions per week in the first week;
        half a session is added to ``S`` so that a silent history stays finite).
    """
    n = np.asarray(n_weeks, dtype=float)
    S = np.asarray(total, dtype=float)
    M = np.asarray(moment, dtype=float)
    b0, sd = prior
    delta = 7.0 / _MONTH_DAYS
    slope = np.full(len(n), np.nan)
    a = np.full(len(n), np.nan)
    ok = n >= 1
    idx = np.flatnonzero(ok)
    step = 50_000
    for lo in range(0, len(idx), step):
        ii = idx[lo : lo + step]
        g = _SLOPE_GRID[None, :]
        lg = _log_geom_sum(g * delta, n[ii, None])
        ll = g * M[ii, None] - S[ii, None] * lg - (g - b0) ** 2 / (2.0 * sd**2)
        best = np.argmax(ll, axis=1)
        b = _SLOPE_GRID[best]
        slope[ii] = b
        a[ii] = np.log(S[ii] + 0.5) - lg[np.arange(len(ii)), best]
    return slope, a


_NO_SUB = pd.Timestamp("1970-01-01")
_TAU_REF = np.datetime64("2000-01-01T00:00:00", "ns")
_ENGAGEMENT_FEATURES = [
    "sub_weeks_observed",
    "engagement_slope",
    "engagement_now",
    "engagement_next_renewal",
    "engagement_90d",
]


def _before(t: pd.Series, fill: pd.Timestamp) -> np.ndarray:
    """``t`` minus one nanosecond (so that ``<=`` means strictly before ``t``); NaT -> ``fill``."""
    v = pd.to_datetime(pd.Series(t)).fillna(fill).to_numpy(dtype="datetime64[ns]")
    return v - np.timedelta64(1, "ns")


def _asof_first_after(
    keys: pd.DataFrame, t: np.ndarray, rows: pd.DataFrame, time_col: str
) -> np.ndarray:
    """Per key row: the earliest ``time_col`` at or after ``t`` (same customer), else NaT."""
    n = len(keys)
    r = rows[["customer_id", time_col]].dropna().rename(columns={time_col: "__t"})
    r = r.sort_values("__t", kind="mergesort").assign(__found=lambda d: d["__t"])
    left = pd.DataFrame(
        {"customer_id": keys["customer_id"].to_numpy(), "__t": t, "__i": np.arange(n)}
    ).sort_values("__t", kind="mergesort")
    m = pd.merge_asof(left, r, on="__t", by="customer_id", direction="forward")
    return m.sort_values("__i")["__found"].to_numpy(dtype="datetime64[ns]")


def _subscription_engagement(
    K: pd.DataFrame,
    u: pd.DataFrame,
    started: pd.Series,
    days_to_renewal: np.ndarray,
    hi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Usage trajectory of each row's current subscription (weeks complete by ``at``).

    The weeks from the subscription's first usage week to its last complete one
    by ``at`` (a missing week counts as no session) give the penalised Poisson
    fit of :func:`_engagement_fit`; its fitted weekly sessions at ``at``, at the
    next renewal boundary and 90 days on are the engagement features (an
    engagement that decays shows in the slope long before the sessions reach 0).
    ``hi`` holds each row's sums of ``s`` and ``ts`` over the usage weeks done by ``at``.
    """
    n = len(K)
    at = K["at"].to_numpy(dtype="datetime64[ns]")
    has_sub = pd.Series(started).notna().to_numpy()
    st = pd.to_datetime(pd.Series(started)).fillna(_NO_SUB).to_numpy(dtype="datetime64[ns]")
    week = np.timedelta64(7, "D")
    first = _asof_first_after(K, st, u, "week_start")
    last = (
        pd.to_datetime(_asof_last(K, u, "done", ["s"])["__t"]).to_numpy(dtype="datetime64[ns]")
        - week
    )
    ok = has_sub & ~np.isnat(first) & ~np.isnat(last) & (first + week <= at)
    ok &= ~np.isnat(last) & (last >= np.where(np.isnat(first), last, first))
    n_w = np.zeros(n)
    n_w[ok] = ((last[ok] - first[ok]) / week).astype(float) + 1.0
    # sums over the window: (done <= at) minus (week_start before the subscription's start)
    ref = _TAU_REF
    uu = u[["customer_id", "week_start", "s", "ts"]]
    lo = _asof_sums(
        pd.DataFrame({"customer_id": K["customer_id"].to_numpy(), "at": _before(started, _NO_SUB)}),
        uu,
        "week_start",
        ["s", "ts"],
    )
    S = np.where(ok, hi[:, 0] - lo[:, 0], 0.0)
    first_m = np.where(ok, (first - ref) / np.timedelta64(1, "D") / _MONTH_DAYS, 0.0)
    M = np.where(ok, (hi[:, 1] - lo[:, 1]) - first_m * S, 0.0)
    slope, a = _engagement_fit(n_w, np.maximum(S, 0.0), np.maximum(M, 0.0))

    # months from the first week's start to a date; fitted sessions per week then
    # "now" is ``at``, or the end of the last usage week when the subscription has ended
    # (a week without a row is a week without a session, so only a gap of 3+ weeks is an end)
    gone = ok & (at - np.where(ok, last, at) > 3 * week)
    now_t = np.where(gone, last + week, at)

    def rate_at(days_after_now: np.ndarray | float) -> np.ndarray:
        x = ((now_t - first) / np.timedelta64(1, "D") + days_after_now) / _MONTH_DAYS
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(ok, np.exp(np.minimum(a + slope * x, 5.0)), np.nan)

    dtr = np.where(np.isfinite(days_to_renewal), days_to_renewal, np.nan)
    return {
        "sub_weeks_observed": np.where(has_sub, n_w, np.nan),
        "engagement_slope": np.where(ok, slope, np.nan),
        "engagement_now": rate_at(0.0),
        "engagement_next_renewal": rate_at(dtr),
        "engagement_90d": rate_at(90.0),
    }


def build_customer_features(
    data: ContractData | Mapping[str, pd.DataFrame],
    at: pd.Timestamp | str | pd.Series | np.ndarray | Sequence[Any],
    customer_ids: Sequence[str] | pd.Series | None = None,
) -> pd.DataFrame:
    """Point-in-time features of customers at dates (see the module docstring).

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    at : one date for every row, or one date per row (aligned with ``customer_ids``)
    customer_ids : customers to describe (repeats allowed: one row per entry);
        None = every customer of ``data`` (then ``at`` must be one date).

    Returns
    -------
    DataFrame
        ``customer_id``, ``at`` and :data:`FEATURE_COLUMNS`, one row per input
        row in input order (index 0..n-1).

    Examples
    --------
    >>> from winback_ml.data.synthetic import make_world  # doctest: +SKIP
    >>> w = make_world(500, seed=1)  # doctest: +SKIP
    >>> f = build_customer_features(w.tables, "2025-06-30")  # doctest: +SKIP
    """
    cd = as_contract_data(data)
    K = _keys(cd, at, customer_ids)
    at_v = K["at"]
    out = pd.DataFrame({"customer_id": K["customer_id"].to_numpy(), "at": at_v.to_numpy()})

    # ---- customer attributes
    cust = cd.customers.drop_duplicates("customer_id").set_index("customer_id")
    signup = K["customer_id"].map(cust["signup_at"])
    out["tenure_days"] = ((at_v - signup) / _DAY).clip(lower=0).to_numpy()
    for c in ("email_opt_in", "sms_opt_in"):
        out[c] = K["customer_id"].map(cust[c]).astype(float).to_numpy()
    out["acquisition_channel"] = K["customer_id"].map(cust["acquisition_channel"]).to_numpy()

    # ---- subscriptions: the latest started by at, and ends known by at
    subs = cd.subscriptions
    last_sub = _asof_last(
        K, subs, "started_at", ["plan_tier", "billing_interval", "price", "mrr", "ended_at"]
    )
    out["plan_tier"] = last_sub["plan_tier"].to_numpy()
    out["billing_interval"] = last_sub["billing_interval"].to_numpy()
    out["price"] = pd.to_numeric(last_sub["price"], errors="coerce").to_numpy(float)
    out["mrr"] = pd.to_numeric(last_sub["mrr"], errors="coerce").to_numpy(float)
    started = pd.to_datetime(last_sub["__t"])
    out["subscription_age_days"] = ((at_v - started) / _DAY).to_numpy()
    out["days_to_renewal"] = _days_to_renewal(started, last_sub["billing_interval"], at_v)
    n_subs = _asof_sums(K, subs.assign(__one=1.0), "started_at", ["__one"])[:, 0]
    out["n_subscriptions"] = n_subs

    # ---- lifecycle events (dated, immutable)
    ev = cd.events
    et = ev["event_type"]
    ends = ev[et.isin(("cancelled", "expired"))]
    # ends of a customer are counted once per end time (a cancelled + expired pair is one lapse)
    ends = ends.drop_duplicates(["customer_id", "subscription_id", "occurred_at"])
    subs_end = subs.loc[
        subs["ended_at"].notna(), ["customer_id", "subscription_id", "ended_at", "cancel_reason"]
    ]
    subs_end = subs_end.rename(columns={"ended_at": "occurred_at", "cancel_reason": "reason"})
    all_ends = pd.concat(
        [ends[["customer_id", "subscription_id", "occurred_at", "reason"]], subs_end],
        ignore_index=True,
    ).drop_duplicates(["customer_id", "subscription_id", "occurred_at"])
    all_ends["reason"] = all_ends["reason"].where(all_ends["reason"] != "unknown", None)
    out["n_past_lapses"] = _asof_sums(K, all_ends.assign(__one=1.0), "occurred_at", ["__one"])[:, 0]
    last_end = _asof_last(K, all_ends, "occurred_at", ["reason"])
    out["last_reason"] = (
        last_end["reason"].where(last_end["__t"].notna(), "none").fillna("unknown").to_numpy()
    )
    last_end_t = pd.to_datetime(last_end["__t"])
    out["days_since_last_end"] = ((at_v - last_end_t) / _DAY).to_numpy()
    starts = pd.concat(
        [
            subs[["customer_id", "started_at"]].rename(columns={"started_at": "t"}),
            ev.loc[et.isin(("subscribed", "reactivated")), ["customer_id", "occurred_at"]].rename(
                columns={"occurred_at": "t"}
            ),
        ],
        ignore_index=True,
    )
    last_start = pd.to_datetime(_asof_last(K, starts.assign(x=1), "t", ["x"])["__t"])
    active = last_start.notna() & (last_end_t.isna() | (last_start > last_end_t))
    out["is_active"] = active.astype(float).to_numpy()

    flags = pd.DataFrame(
        {
            "customer_id": ev["customer_id"],
            "occurred_at": ev["occurred_at"],
            "pf": (et == "payment_failed").astype(float),
            "pr": et.isin(("payment_recovered",)).astype(float),
            "pc": (et == "plan_changed").astype(float),
            "rf": (et == "refunded").astype(float),
            "cr": (et == "cancel_requested").astype(float),
            "rn": (et == "renewed").astype(float),
            "paid": np.where(
                et.isin(("subscribed", "renewed", "reactivated", "payment_recovered")),
                pd.to_numeric(ev["amount"], errors="coerce").fillna(0.0),
                0.0,
            )
            - np.where(
                et == "refunded",
                pd.to_numeric(ev["amount"], errors="coerce").abs().fillna(0.0),
                0.0,
            ),
        }
    )
    cols = ["pf", "pr", "pc", "rf", "cr", "paid", "rn"]
    now = _asof_sums(K, flags, "occurred_at", cols)
    ago90 = _asof_sums(K, flags, "occurred_at", cols, lag_days=90)
    out["n_payment_failures"] = now[:, 0]
    out["n_payment_failures_90d"] = now[:, 0] - ago90[:, 0]
    out["n_plan_changes"] = now[:, 2]
    out["n_refunds"] = now[:, 3]
    out["cancel_requested_90d"] = now[:, 4] - ago90[:, 4]
    out["total_paid"] = now[:, 5]
    # a renewal attempt either renews or fails (a recovered failure is one attempt)
    attempts = now[:, 6] + now[:, 0]
    out["n_renewal_attempts"] = attempts
    fa, fb = PAYMENT_FAILURE_PRIOR
    out["payment_failure_propensity"] = (now[:, 0] + fa) / (attempts + fa + fb)
    # failures of the current subscription: all failures minus those before it started
    sub_keys = pd.DataFrame(
        {"customer_id": K["customer_id"].to_numpy(), "at": _before(started, _NO_SUB)}
    )
    pre = _asof_sums(sub_keys, flags, "occurred_at", ["pf"])
    out["n_payment_failures_sub"] = np.where(started.notna(), now[:, 0] - pre[:, 0], np.nan)
    pay = ev[
        et.isin(("payment_failed", "payment_recovered", "renewed", "subscribed", "reactivated"))
    ]
    last_pay = _asof_last(K, pay, "occurred_at", ["event_type"])
    out["unrecovered_payment_failure"] = (
        (last_pay["event_type"] == "payment_failed").astype(float).to_numpy()
    )
    last_pf = pd.to_datetime(
        _asof_last(K, ev[et == "payment_failed"], "occurred_at", ["event_type"])["__t"]
    )
    out["days_since_payment_failure"] = ((at_v - last_pf) / _DAY).to_numpy()
    last_req = pd.to_datetime(
        _asof_last(K, ev[et == "cancel_requested"], "occurred_at", ["event_type"])["__t"]
    )
    out["cancel_pending"] = (
        (active & last_req.notna() & (last_req >= last_start.fillna(_EARLY)))
        .astype(float)
        .to_numpy()
    )
    paid_ev = ev[
        et.isin(("subscribed", "renewed", "reactivated", "payment_recovered"))
        & ev["amount"].notna()
    ]
    last_amt = pd.to_numeric(
        _asof_last(K, paid_ev, "occurred_at", ["amount"])["amount"], errors="coerce"
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = last_amt.to_numpy(float) / out["price"].to_numpy(float)
    out["last_paid_ratio"] = np.where(np.isfinite(ratio), ratio, np.nan)

    # ---- usage: complete weeks only (week_start + 7 days <= at)
    if cd.usage is not None and len(cd.usage):
        u = cd.usage.assign(
            done=cd.usage["week_start"] + pd.Timedelta(days=7),
            s=pd.to_numeric(cd.usage["sessions"], errors="coerce").fillna(0.0).astype(float),
            m=pd.to_numeric(cd.usage["active_minutes"], errors="coerce").fillna(0.0).astype(float),
            f=pd.to_numeric(cd.usage["features_used"], errors="coerce").fillna(0.0).astype(float),
            act=(pd.to_numeric(cd.usage["sessions"], errors="coerce").fillna(0) > 0).astype(float),
        )
        # ts: sessions x months since 2000 (the engagement fit's first moment)
        tau = (u["week_start"].to_numpy(dtype="datetime64[ns]") - _TAU_REF) / np.timedelta64(1, "D")
        u["ts"] = tau / _MONTH_DAYS * u["s"].to_numpy(float)
        now, w8, w26, w4 = _asof_sums_lags(K, u, "done", ["s", "m", "f", "ts"], (0, 56, 182, 28))
        out["sessions_8w"] = (now[:, 0] - w8[:, 0]) / 8.0
        out["minutes_8w"] = (now[:, 1] - w8[:, 1]) / 8.0
        out["features_used_8w"] = (now[:, 2] - w8[:, 2]) / 8.0
        out["sessions_prev"] = (w8[:, 0] - w26[:, 0]) / 18.0
        out["usage_trend"] = np.log1p(out["sessions_8w"]) - np.log1p(out["sessions_prev"])
        # per-session intensity over every complete week so far: stable traits of the customer
        # (how long a session lasts, how many features it touches), not of the current period
        with np.errstate(invalid="ignore", divide="ignore"):
            has = (now[:, 0] > 0) & (now[:, 1] > 0)
            out["log_minutes_per_session"] = np.where(
                has, np.log(np.where(has, now[:, 1], 1.0) / np.maximum(now[:, 0], 1.0)), np.nan
            )
            out["features_per_session"] = np.where(
                now[:, 0] > 0, now[:, 2] / np.maximum(now[:, 0], 1.0), np.nan
            )
        out["sessions_4w"] = (now[:, 0] - w4[:, 0]) / 4.0
        eng = _subscription_engagement(
            K, u, started, out["days_to_renewal"].to_numpy(float), now[:, [0, 3]]
        )
        for c, v in eng.items():
            out[c] = v
        last_act = pd.to_datetime(_asof_last(K, u[u["act"] > 0], "done", ["s"])["__t"])
        wsa = ((at_v - last_act) / pd.Timedelta(days=7)).to_numpy()
        out["weeks_since_active"] = np.where(np.isnan(wsa), 104.0, np.minimum(wsa, 104.0))
    else:
        for c in (
            "sessions_8w",
            "minutes_8w",
            "features_used_8w",
            "sessions_prev",
            "usage_trend",
            "weeks_since_active",
            "log_minutes_per_session",
            "features_per_session",
            "sessions_4w",
            *_ENGAGEMENT_FEATURES,
        ):
            out[c] = np.nan

    # ---- support tickets
    if cd.support_tickets is not None and len(cd.support_tickets):
        st = cd.support_tickets
        cat = st["category"]
        tf = pd.DataFrame(
            {
                "customer_id": st["customer_id"],
                "created_at": st["created_at"],
                "n": 1.0,
                "cmp": (st["is_complaint"].astype(bool) | (cat == "complaint")).astype(float),
                "fr": (cat == "feature_request").astype(float),
                "bug": (cat == "bug").astype(float),
                "bill": (cat == "billing").astype(float),
                "how": (cat == "how_to").astype(float),
                "cs": pd.to_numeric(st["csat"], errors="coerce").fillna(0.0).astype(float),
                "csn": pd.to_numeric(st["csat"], errors="coerce").notna().astype(float),
            }
        )
        tcols = ["n", "cmp", "fr", "bug", "bill", "cs", "csn", "how"]
        now = _asof_sums(K, tf, "created_at", tcols)
        ago = _asof_sums(K, tf, "created_at", tcols, lag_days=90)
        out["n_tickets_90d"] = now[:, 0] - ago[:, 0]
        out["n_complaints"] = now[:, 1]
        out["n_complaints_90d"] = now[:, 1] - ago[:, 1]
        out["n_feature_requests"] = now[:, 2]
        out["n_bug_tickets"] = now[:, 3]
        out["n_billing_tickets"] = now[:, 4]
        out["n_how_to_tickets"] = now[:, 7]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_csat"] = np.where(now[:, 6] > 0, now[:, 5] / np.maximum(now[:, 6], 1), np.nan)
    else:
        for c in (
            "n_tickets_90d",
            "n_complaints",
            "n_complaints_90d",
            "n_feature_requests",
            "n_bug_tickets",
            "n_billing_tickets",
            "n_how_to_tickets",
            "mean_csat",
        ):
            out[c] = np.nan

    # ---- rates per 30 days of tenure: proxies of stable traits (counts grow with tenure)
    months = np.maximum(out["tenure_days"].to_numpy(float), 30.0) / 30.0
    out["complaint_rate"] = out["n_complaints"].to_numpy(float) / months
    out["feature_request_rate"] = out["n_feature_requests"].to_numpy(float) / months
    out["how_to_rate"] = out["n_how_to_tickets"].to_numpy(float) / months
    out["payment_failure_rate"] = out["n_payment_failures"].to_numpy(float) / months

    # ---- interviews (trusted answers only: quality_score >= 3); no free text is read
    if cd.interviews is not None and len(cd.interviews):
        iv = cd.interviews
        iv = iv.loc[
            pd.to_numeric(iv["quality_score"], errors="coerce") >= 3,
            ["customer_id", "answered_at", "q7_offer_interest", "q4_leave_strength"],
        ]
        li = _asof_last(K, iv, "answered_at", ["q7_offer_interest", "q4_leave_strength"])
        out["offer_interest"] = (
            li["q7_offer_interest"].where(li["__t"].notna(), "none").fillna("none").to_numpy()
        )
        out["leave_strength"] = pd.to_numeric(li["q4_leave_strength"], errors="coerce").to_numpy(
            float
        )
    else:
        out["offer_interest"] = "none"
        out["leave_strength"] = np.nan

    return out[["customer_id", "at", *FEATURE_COLUMNS]]
