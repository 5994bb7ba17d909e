"""The lapsed cohort as of a date: who left recently and has not come back.

A customer is *lapsed* as of ``as_of`` when their latest lapse (see
:mod:`winback_ml.cohort.episodes`) ended within ``window_days`` before
``as_of`` (``0 <= as_of - ended_at <= window_days``) and they have not
returned by ``as_of``; a customer with any subscription open at ``as_of`` is
never lapsed.

Contact window (from the seed on win-back interviews)
-----------------------------------------------------
``days_lapsed`` is whole days since access ended, at ``as_of``:

========== ============ ===================================================
window     days_lapsed  meaning
========== ============ ===================================================
too_soon   0-13         still emotional: exit-interview answers, not win-back
early      14-29        cooling off; allowed, not yet the best moment
prime      30-90        the seed's window: frustration cooled, switching cost
                        not yet locked in
late       over 90      past the window; the seed warns that past 120 days
                        switching costs dominate (``past_120_days``)
========== ============ ===================================================

The seed fixes "too soon < 14", "prime 30-90" and "late > 120"; it leaves
14-29 and 91-120 open. We call 14-29 ``early`` and put 91-120 in ``late``
(outside the seed's 30-90 window), and flag the seed's hard line with
``past_120_days``. With the default 90-day window ``late`` never appears.

Invariants: one row per lapsed customer, sorted by ``customer_id``;
timestamps tz-naive UTC; no PII column (no e-mail, phone or free text, only
``has_email``/``has_phone`` and consent flags ``can_email`` (opt-in and an
address), ``can_sms`` (opt-in and a phone), ``can_in_app`` (billed through an
app store: :data:`APP_SOURCES`)). ``attrs["missing_signals"]``
lists the optional tables (``usage``, ``support_tickets``, ``interviews``)
that were absent, so callers can say what they could not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.cohort._inputs import as_contract_data
from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.data.loader import ContractData
from winback_ml.exceptions import ConfigError, LeakageError

__all__ = [
    "CONTACT_WINDOWS",
    "APP_SOURCES",
    "SIGNAL_TABLES",
    "COHORT_COLUMNS",
    "contact_window",
    "missing_signals",
    "build_lapsed_cohort",
]

#: (label, first day, last day) of each contact window; ``None`` = open-ended.
CONTACT_WINDOWS: tuple[tuple[str, int, int | None], ...] = (
    ("too_soon", 0, 13),
    ("early", 14, 29),
    ("prime", 30, 90),
    ("late", 91, None),
)

#: Billing sources whose customers have the app installed (reachable in-app).
APP_SOURCES = ("app_store", "google_play")

#: Optional tables the cohort stage reads, and what each one feeds.
SIGNAL_TABLES = {
    "usage": "usage trend before the lapse (reasons: unused, too_complex)",
    "support_tickets": "complaints and feature requests (reasons: customer_service, missing_features)",
    "interviews": "interview answers (segments)",
}

COHORT_COLUMNS = [
    "customer_id",
    "lapse_id",
    "subscription_id",
    "lapse_number",
    "ended_at",
    "days_lapsed",
    "contact_window",
    "past_120_days",
    "status",
    "stated_reason",
    "end_detail",
    "cancel_requested_at",
    "plan_id",
    "plan_tier",
    "billing_interval",
    "price",
    "mrr",
    "currency",
    "source",
    "started_at",
    "spell_start",
    "tenure_days",
    "customer_tenure_days",
    "n_payment_failures",
    "n_payment_failures_90d",
    "n_payment_recoveries",
    "unrecovered_payment_failure",
    "total_paid",
    "country",
    "language",
    "timezone",
    "email_opt_in",
    "sms_opt_in",
    "has_email",
    "has_phone",
    "can_email",
    "can_sms",
    "can_in_app",
]


def contact_window(days_lapsed: pd.Series | np.ndarray) -> np.ndarray:
    """The contact window label of each ``days_lapsed`` (see :data:`CONTACT_WINDOWS`)."""
    d = np.asarray(days_lapsed, dtype="float64")
    out = np.full(d.shape, None, dtype=object)
    for label, lo, hi in CONTACT_WINDOWS:
        m = d >= lo
        if hi is not None:
            m &= d <= hi
        out[m] = label
    return out


def missing_signals(data: ContractData) -> list[str]:
    """The optional tables of :data:`SIGNAL_TABLES` that ``data`` lacks."""
    return [t for t in SIGNAL_TABLES if getattr(data, t) is None]


def build_lapsed_cohort(
    data: ContractData | Mapping[str, pd.DataFrame],
    as_of: Any = None,
    window_days: int = 90,
    episodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per customer lapsed as of ``as_of``, with plan, money, payments and consent.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    as_of : date or timestamp, optional
        The run date (default ``data.as_of``, else the latest timestamp in the data).
    window_days : int
        How far back a lapse may have ended (the config's ``lapsed_window_days``).
    episodes : DataFrame, optional
        The output of :func:`~winback_ml.cohort.episodes.build_lapse_episodes`
        for the same data and ``as_of``, to avoid building it twice.

    Returns
    -------
    DataFrame
        Columns :data:`COHORT_COLUMNS`; ``attrs``: ``as_of``, ``window_days``,
        ``missing_signals``.

    Examples
    --------
    >>> from winback_ml.data.synthetic import make_world  # doctest: +SKIP
    >>> w = make_world(2000, seed=7)  # doctest: +SKIP
    >>> cohort = build_lapsed_cohort(w.tables, as_of="2025-06-30")  # doctest: +SKIP
    >>> cohort["contact_window"].value_counts()  # doctest: +SKIP
    """
    if isinstance(window_days, bool) or not isinstance(window_days, (int, np.integer)):
        raise ConfigError(
            f"The 'window_days' parameter of build_lapsed_cohort must be an int. "
            f"Got {window_days!r} instead."
        )
    if window_days < 0:
        raise ConfigError(
            f"The 'window_days' parameter of build_lapsed_cohort must be >= 0. "
            f"Got {window_days} instead. Use e.g. 90 (the seed's window) or 180 to see 'late' ones."
        )
    cd, T = as_contract_data(data, as_of)
    if episodes is None:
        eps = build_lapse_episodes(cd, T)
    else:
        eps = episodes
        built = eps.attrs.get("as_of")
        stale = built is not None and pd.Timestamp(built) != T
        if stale or (built is None and len(eps) and eps["ended_at"].max() > T):
            raise LeakageError(
                f"The 'episodes' frame given to build_lapsed_cohort was built as of {built} "
                f"(latest end {eps['ended_at'].max() if len(eps) else None}), not as of {T}: its "
                "days lapsed and returns would be wrong. Fix: build the episodes with the same "
                "as_of, build_lapse_episodes(data, as_of), or pass episodes=None."
            )
    last = eps.drop_duplicates("customer_id", keep="last")
    in_window = ~last["returned"].astype(bool) & (last["days_observed"] <= window_days)
    c = last[in_window].copy()
    c["days_lapsed"] = np.floor(c["days_observed"].astype("float64")).astype("int64")
    c["contact_window"] = contact_window(c["days_lapsed"])
    c["past_120_days"] = c["days_lapsed"] > 120
    cust = cd.customers.drop_duplicates("customer_id").set_index("customer_id")
    for col in ("country", "language", "timezone"):
        c[col] = c["customer_id"].map(cust[col])
    c["email_opt_in"] = c["customer_id"].map(cust["email_opt_in"]).fillna(False).astype(bool)
    c["sms_opt_in"] = c["customer_id"].map(cust["sms_opt_in"]).fillna(False).astype(bool)
    c["has_email"] = c["customer_id"].map(cust["email"].notna()).fillna(False).astype(bool)
    c["has_phone"] = c["customer_id"].map(cust["phone"].notna()).fillna(False).astype(bool)
    c["can_email"] = c["email_opt_in"] & c["has_email"]
    c["can_sms"] = c["sms_opt_in"] & c["has_phone"]
    # in-app messages need no marketing opt-in but an installed app: customers billed
    # through an app store (a business with its own app can set the column itself)
    c["can_in_app"] = c["source"].isin(APP_SOURCES).to_numpy()
    out = c[COHORT_COLUMNS].sort_values("customer_id", kind="mergesort").reset_index(drop=True)
    out.attrs.update(as_of=T, window_days=int(window_days), missing_signals=missing_signals(cd))
    return out
