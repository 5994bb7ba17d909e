"""Cancellation reasons: the stated one when given, otherwise inferred from behaviour.

Pipeline
--------
1. :func:`reason_features` builds one row of point-in-time features per lapse
   episode: only rows dated at or before the lapse's ``ended_at`` (and so
   never after ``as_of``) are read. Signals: usage in the last 8 weeks
   against weeks 9-26 before the lapse, payment failures, support tickets
   (complaints, feature requests, bugs, billing, how-to) in the last 90 days,
   plan, price and billing interval, tenure and the position in the billing
   term, the cancel request lead time, the provider's end code, and the
   cancel-flow comment (free text).
2. :class:`ReasonClassifier` (scikit-learn estimator) learns reason from those
   features on every lapse up to ``as_of`` whose customer stated a reason
   (all of history, not only the current cohort).
3. :func:`infer_reasons` gives each cohort member a ``cancel_reason``: the
   stated one (``reason_source='stated'``, ``reason_proba=1``) or the
   classifier's top class (``'inferred'``, with its probability).
   Payment failures are involuntary and never inferred away: a stated
   ``payment_failed`` is kept, and a lapse without a stated reason whose last
   payment attempt failed and was never recovered is ``payment_failed``
   (``reason_rule='unrecovered_payment_failure'``).
4. :func:`evaluate_reasons` reports held-out accuracy and the confusion matrix.
5. :func:`refine_reasons` weighs an inferred reason with evidence that comes
   after the lapse, as known when the row is scored: still away after ``d``
   days (:class:`ReasonReturnCurves`, Kaplan-Meier return curves by stated
   reason, censored at the cut-off) and trusted interview answers
   (:class:`InterviewReasonModel`). The scoring plan uses it; the
   classifier's own output (and so :func:`infer_reasons`) is unchanged by it.

Label noise: the labels are *stated* reasons, wrong now and then (mostly
``other``); :class:`ReasonClassifier` corrects for it by EM with the
misreport prior :data:`LABEL_NOISE` (``label_noise=0`` fits the stated
reasons as they are).

PII
---
The ``cancel_comment`` column of :func:`reason_features` and the interview
answers read by :class:`InterviewReasonModel` are free text: used in memory
only (TF-IDF inside the models).
Never log or save that frame; :func:`infer_reasons` returns no text, and the
fitted classifier keeps only the TF-IDF vocabulary (single words and
word pairs with a document frequency of at least ``min_df``), never a comment.

Missing optional tables (no usage, no tickets): their features are zero and
``usage_available`` / ``tickets_available`` are 0, so the classifier falls
back to what is available; ``attrs["missing_signals"]`` names what was absent.
All timestamps are tz-naive UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from winback_ml.cohort._inputs import as_contract_data, require_columns
from winback_ml.cohort._window import Timeline
from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.cohort.lapsed import missing_signals
from winback_ml.data.contract import CANCEL_REASONS
from winback_ml.data.loader import ContractData
from winback_ml.exceptions import LeakageError, ModelError, NotFittedError

__all__ = [
    "REASONS",
    "LABEL_NOISE",
    "NUMERIC_FEATURES",
    "CATEGORICAL_FEATURES",
    "TEXT_FEATURE",
    "ReasonClassifier",
    "ReasonEvaluation",
    "reason_features",
    "reason_training_set",
    "infer_reasons",
    "evaluate_reasons",
    "ReasonReturnCurves",
    "InterviewReasonModel",
    "INTERVIEW_TEXT_COLUMNS",
    "MIN_INTERVIEW_QUALITY",
    "refine_reasons",
    "REASON_EVIDENCE",
]

#: The reasons a classifier may predict (canonical, without ``unknown``).
REASONS: tuple[str, ...] = tuple(r for r in CANCEL_REASONS if r != "unknown")

#: Prior share of stated voluntary reasons that are wrong (cancel-flow answers are quick
#: clicks; a wrong one is most often ``other``): the default ``label_noise`` of
#: :class:`ReasonClassifier`.
LABEL_NOISE = 0.10

#: Usage-derived features (zeros when there is no usage table).
_USAGE_FEATURES: list[str] = [
    "usage_available",
    "sessions_recent",
    "sessions_prior",
    "sessions_trend",
    "minutes_recent",
    "minutes_trend",
    "features_recent",
    "features_trend",
    "weeks_since_active",
    "sessions_spell",
    "features_per_session",
    "minutes_per_session",
]

#: Behaviour at the cancel request (the request, or the last 3 weeks when none was recorded).
_REQUEST_FEATURES: list[str] = [
    "complaints_at_request",
    "feature_requests_at_request",
    "bugs_at_request",
    "billing_at_request",
    "howto_at_request",
    "sessions_after_request",
    "request_usage_drop",
    "weeks_after_request",
    *[f"{k}_trace" for k in ("complaint", "feature_request", "bug", "howto", "billing")],
]

#: Ticket-derived features (zeros, CSAT 3, when there is no tickets table).
_TICKET_FEATURES: list[str] = [
    "tickets_available",
    "complaints_90d",
    "feature_requests_90d",
    "bugs_90d",
    "billing_tickets_90d",
    "howto_tickets_90d",
    "tickets_spell",
    "csat_mean",
    "complaints_per_month",
    "feature_requests_per_month",
    "howto_per_month",
    "bugs_per_month",
]

NUMERIC_FEATURES: list[str] = [
    *_USAGE_FEATURES,
    *_TICKET_FEATURES,
    "n_payment_failures",
    "n_payment_failures_90d",
    "n_payment_recoveries",
    "unrecovered_payment_failure",
    "log_price",
    "log_mrr",
    "yearly",
    "log_tenure_days",
    "log_customer_tenure_days",
    "term_phase",
    "terms_completed",
    "lapse_number",
    "has_cancel_request",
    "log_request_lead_days",
    "log_total_paid",
    "has_comment",
    "last_paid_ratio",
    "min_paid_ratio",
    "discounted_at_end",
    "refund_at_cancel",
    *_REQUEST_FEATURES,
]
CATEGORICAL_FEATURES: list[str] = [
    "plan_tier",
    "billing_interval",
    "source",
    "status",
    "end_detail",
    "acquisition_channel",
]
TEXT_FEATURE = "cancel_comment"

_DAY = pd.Timedelta(days=1)
_WEEK = pd.Timedelta(days=7)


def _usage_features(eps: pd.DataFrame, usage: pd.DataFrame | None) -> pd.DataFrame:
    cols = list(_USAGE_FEATURES)
    out = pd.DataFrame(0.0, index=eps.index, columns=cols)
    if usage is None or usage.empty or eps.empty:
        return out
    # a week is known once complete: week_end = week_start + 7 days must be <= the lapse's end;
    # the windows below are on week_end, queried on week_start shifted by a week
    vals = ["sessions", "active_minutes", "features_used"]
    tl = Timeline(usage, "week_start", vals)
    ids = eps["customer_id"].to_numpy()
    end = eps["ended_at"]
    start = eps["spell_start"].fillna(eps["started_at"])
    lo_recent = np.maximum(end - 8 * _WEEK, start)
    lo_prior = np.maximum(end - 26 * _WEEK, start)
    hi_prior = end - 8 * _WEEK

    def window(lo: pd.Series | None, hi: pd.Series, names: list[str]) -> dict[str, np.ndarray]:
        lo_ = None if lo is None else (lo - _WEEK).to_numpy()
        return tl.sums(ids, lo_, (hi - _WEEK).to_numpy(), names, lo_inclusive=False)

    recent = window(lo_recent, end, vals)
    prior = window(lo_prior, hi_prior, vals)
    spell = window(start, end, vals)
    any_rows = tl.sums(ids, None, (end - _WEEK).to_numpy())["n"] > 0
    # weeks of each window within the spell (calendar weeks, not rows: a week without a row
    # is a week without activity); the sums cover the same clipped windows
    w_recent = ((end - lo_recent) / _WEEK).clip(1, 8).to_numpy()
    w_prior = ((hi_prior - lo_prior) / _WEEK).clip(0, 18).to_numpy()
    has_prior = w_prior >= 1
    wp = np.where(has_prior, w_prior, 1.0)
    out["usage_available"] = any_rows.astype(float)
    for src, name in (
        ("sessions", "sessions"),
        ("active_minutes", "minutes"),
        ("features_used", "features"),
    ):
        r = recent[src] / w_recent
        p = np.where(has_prior, prior[src] / wp, r)
        out[f"{name}_recent"] = r
        if name == "sessions":
            out["sessions_prior"] = p
        out[f"{name}_trend"] = np.log1p(r) - np.log1p(p)
    active = Timeline(usage[usage["sessions"] > 0], "week_start")
    last_start = active.nearest(ids, (end - _WEEK).to_numpy())
    last_active = pd.Series(last_start, index=eps.index) + _WEEK
    # a customer never seen active gets the cap
    out["weeks_since_active"] = ((end - last_active) / _WEEK).fillna(52.0).clip(0, 52).to_numpy()
    w_spell = ((end - start) / _WEEK).clip(lower=1).to_numpy()
    n_sess = spell["sessions"]
    out["sessions_spell"] = n_sess / w_spell
    out["features_per_session"] = spell["features_used"] / np.maximum(n_sess, 1.0)
    out["minutes_per_session"] = spell["active_minutes"] / np.maximum(n_sess, 1.0)
    out.loc[~any_rows, [c for c in cols if c != "weeks_since_active"]] = 0.0
    return out


def _ticket_features(eps: pd.DataFrame, tickets: pd.DataFrame | None) -> pd.DataFrame:
    out = pd.DataFrame(0.0, index=eps.index, columns=_TICKET_FEATURES)
    out["csat_mean"] = 3.0
    if tickets is None or eps.empty:
        return out
    out["tickets_available"] = 1.0
    if tickets.empty:
        return out
    t = tickets[["customer_id", "created_at", "category", "is_complaint", "csat"]].copy()
    t["complaint"] = (
        t["is_complaint"].fillna(False).astype(bool) | (t["category"] == "complaint")
    ).astype(float)
    for cat, name in (
        ("feature_request", "feature_request"),
        ("bug", "bug"),
        ("billing", "billing"),
        ("how_to", "how_to"),
    ):
        t[name] = (t["category"] == cat).astype(float)
    t["csat_n"] = t["csat"].notna().astype(float)
    t["csat_sum"] = pd.to_numeric(t["csat"], errors="coerce").fillna(0.0).astype(float)
    end = eps["ended_at"]
    ids = eps["customer_id"].to_numpy()
    names = ["csat_n", "csat_sum", "complaint", "feature_request", "how_to", "bug", "billing"]
    tl = Timeline(t, "created_at", names)
    a = tl.sums(ids, (end - 90 * _DAY).to_numpy(), end.to_numpy(), names)
    s = tl.sums(ids, eps["spell_start"].to_numpy(), end.to_numpy(), ["n", *names])
    months = (((end - eps["spell_start"]) / _DAY) / 30.4375).clip(lower=1.0).to_numpy()
    out["complaints_per_month"] = s["complaint"] / months
    out["feature_requests_per_month"] = s["feature_request"] / months
    out["howto_per_month"] = s["how_to"] / months
    out["bugs_per_month"] = s["bug"] / months
    out["complaints_90d"] = a["complaint"]
    out["feature_requests_90d"] = a["feature_request"]
    out["bugs_90d"] = a["bug"]
    out["billing_tickets_90d"] = a["billing"]
    out["howto_tickets_90d"] = a["how_to"]
    out["tickets_spell"] = s["n"]
    n = s["csat_n"]
    out["csat_mean"] = np.where(n > 0, s["csat_sum"] / np.maximum(n, 1), 3.0)
    return out


def _request_features(
    eps: pd.DataFrame, usage: pd.DataFrame | None, tickets: pd.DataFrame | None
) -> pd.DataFrame:
    """What the customer did around the cancel request: tickets opened then, usage after it.

    The anchor is the recorded cancel request, or 21 days before the end when
    there is none. Tickets count from 2 days before the anchor to the end;
    usage compares complete weeks after the anchor with the 4 weeks before it
    (``request_usage_drop`` = log1p(after) - log1p(before); 0 without a week
    after). Only rows dated at or before each lapse's end are read.

    ``<category>_trace`` is 1 when a ticket of that category was opened
    within a day after a *recorded* request (and by the end): the mark a
    cancellation leaves at the moment it is made, which the wider window
    above mixes with the customer's ordinary ticket rate.
    """
    out = pd.DataFrame(0.0, index=eps.index, columns=_REQUEST_FEATURES)
    if eps.empty:
        return out
    end = eps["ended_at"]
    req = eps["cancel_requested_at"] if "cancel_requested_at" in eps.columns else None
    anchor = end - 21 * _DAY if req is None else req.fillna(end - 21 * _DAY)
    anchor = anchor.where(anchor <= end, end)
    ids = eps["customer_id"].to_numpy()
    if tickets is not None and not tickets.empty:
        t = tickets[["customer_id", "created_at", "category", "is_complaint"]].copy()
        t["complaint"] = (
            t["is_complaint"].fillna(False).astype(bool) | (t["category"] == "complaint")
        ).astype(float)
        cats = {"feature_request": "feature_requests", "bug": "bugs", "billing": "billing"}
        cats["how_to"] = "howto"
        for cat in cats:
            t[cat] = (t["category"] == cat).astype(float)
        names = ["complaint", *cats]
        tl = Timeline(t, "created_at", names)
        a = tl.sums(ids, (anchor - 2 * _DAY).to_numpy(), end.to_numpy(), names)
        out["complaints_at_request"] = a["complaint"]
        for cat, name in cats.items():
            out[f"{name}_at_request"] = a[cat]
        if req is not None:
            r_hi = (req + _DAY).where(req + _DAY <= end, end)
            b = tl.sums(ids, req.to_numpy(), r_hi.to_numpy(), names)  # NaT (no request): 0
            out["complaint_trace"] = (b["complaint"] > 0).astype(float)
            for cat in cats:
                out[f"{'howto' if cat == 'how_to' else cat}_trace"] = (b[cat] > 0).astype(float)
    if usage is not None and not usage.empty:
        tl = Timeline(usage, "week_start", ["sessions"])
        start = eps["spell_start"].fillna(eps["started_at"])
        # weeks known by the end (week_start + 7 days <= end) that overlap the time after the anchor
        after = tl.sums(
            ids,
            (anchor - _WEEK).to_numpy(),
            (end - _WEEK).to_numpy(),
            ["n", "sessions"],
            lo_inclusive=False,
        )
        lo_b = np.maximum(anchor - 5 * _WEEK, start - _WEEK)
        before = tl.sums(
            ids, lo_b.to_numpy(), (anchor - _WEEK).to_numpy(), ["n", "sessions"], lo_inclusive=False
        )
        n_after = after["n"].astype(float)
        n_before = before["n"].astype(float)
        s_after = np.where(n_after > 0, after["sessions"] / np.maximum(n_after, 1), 0.0)
        s_before = np.where(n_before > 0, before["sessions"] / np.maximum(n_before, 1), s_after)
        out["sessions_after_request"] = s_after
        out["weeks_after_request"] = n_after
        out["request_usage_drop"] = np.where(
            n_after > 0, np.log1p(s_after) - np.log1p(s_before), 0.0
        )
    return out


def _payment_features(eps: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Paid amounts relative to the list price during the spell (discounts show here).

    ``refund_at_cancel`` is 1 when the subscription got a refund from 2 days
    before the cancel request (21 days before the end when none was recorded)
    to the end: money given back as the customer leaves, the mark of a
    cancellation by mistake or billing confusion.
    """
    out = pd.DataFrame(1.0, index=eps.index, columns=["last_paid_ratio", "min_paid_ratio"])
    out["discounted_at_end"] = 0.0
    out["refund_at_cancel"] = 0.0
    ref = events.loc[events["event_type"] == "refunded", ["subscription_id", "occurred_at"]]
    if len(ref) and len(eps):
        end = eps["ended_at"]
        req = eps["cancel_requested_at"] if "cancel_requested_at" in eps.columns else None
        anchor = end - 21 * _DAY if req is None else req.fillna(end - 21 * _DAY)
        anchor = anchor.where(anchor <= end, end)
        k = pd.DataFrame(
            {
                "subscription_id": eps["subscription_id"].to_numpy(),
                "lo": (anchor - 2 * _DAY).to_numpy(),
                "hi": end.to_numpy(),
                "_i": np.arange(len(eps)),
            }
        )
        r = k.merge(ref, on="subscription_id")
        r = r[(r["occurred_at"] >= r["lo"]) & (r["occurred_at"] <= r["hi"])]
        out.iloc[np.unique(r["_i"].to_numpy()), out.columns.get_loc("refund_at_cancel")] = 1.0
    pay = events.loc[
        events["event_type"].isin(("subscribed", "renewed", "reactivated", "payment_recovered"))
        & events["amount"].notna(),
        ["subscription_id", "occurred_at", "amount"],
    ]
    if pay.empty or eps.empty:
        return out
    k = pd.DataFrame(
        {
            "subscription_id": eps["subscription_id"].to_numpy(),
            "lo": eps["spell_start"].to_numpy(),
            "hi": eps["ended_at"].to_numpy(),
            "price": eps["price"].astype(float).to_numpy(),
            "_i": np.arange(len(eps)),
        }
    )
    m = k.merge(pay, on="subscription_id")
    m = m[(m["occurred_at"] >= m["lo"] - _DAY) & (m["occurred_at"] <= m["hi"])]
    if m.empty:
        return out
    m["ratio"] = np.where(m["price"] > 0, m["amount"] / m["price"].where(m["price"] > 0, 1.0), 1.0)
    m = m.sort_values(["_i", "occurred_at"], kind="mergesort")
    g = m.groupby("_i")["ratio"]
    last = g.last()
    low = g.min()
    out.iloc[last.index.to_numpy(), 0] = last.clip(0, 2).to_numpy()
    out.iloc[low.index.to_numpy(), 1] = low.clip(0, 2).to_numpy()
    out["discounted_at_end"] = (out["last_paid_ratio"] < 0.995).astype(float)
    return out


def reason_features(
    data: ContractData | Mapping[str, pd.DataFrame],
    episodes: pd.DataFrame | None = None,
    as_of: Any = None,
) -> pd.DataFrame:
    """Point-in-time features of each lapse episode, for the reason classifier.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    episodes : DataFrame, optional
        From :func:`~winback_ml.cohort.episodes.build_lapse_episodes` (built when None).
    as_of : date or timestamp, optional
        The run date. Each episode only sees rows dated at or before its own
        ``ended_at`` (which is at or before ``as_of``).

    Returns
    -------
    DataFrame
        Indexed like ``episodes``: ``lapse_id``, ``customer_id``,
        ``stated_reason``, :data:`NUMERIC_FEATURES`,
        :data:`CATEGORICAL_FEATURES` and :data:`TEXT_FEATURE` (PII: keep in
        memory, never log). ``attrs["missing_signals"]`` lists the absent tables.
    """
    cd, T = as_contract_data(data, as_of)
    eps = build_lapse_episodes(cd, T) if episodes is None else episodes
    require_columns(
        eps,
        ["lapse_id", "customer_id", "subscription_id", "ended_at", "spell_start", "status"],
        "The 'episodes' frame",
    )
    if len(eps) and eps["ended_at"].max() > T:
        raise LeakageError(
            f"episodes end after as_of={T} (latest {eps['ended_at'].max()}). Build the episodes "
            "with the same as_of as the features."
        )
    f = pd.DataFrame(index=eps.index)
    f["lapse_id"] = eps["lapse_id"]
    f["customer_id"] = eps["customer_id"]
    f["stated_reason"] = eps["stated_reason"]
    f["ended_at"] = eps["ended_at"]  # not a feature: for time-ordered evaluation
    f = pd.concat(
        [
            f,
            _usage_features(eps, cd.usage),
            _ticket_features(eps, cd.support_tickets),
            _request_features(eps, cd.usage, cd.support_tickets),
        ],
        axis=1,
    )
    for c in ("n_payment_failures", "n_payment_failures_90d", "n_payment_recoveries"):
        f[c] = eps[c].astype(float)
    f["unrecovered_payment_failure"] = eps["unrecovered_payment_failure"].astype(float)
    f["log_price"] = np.log1p(eps["price"].astype(float).fillna(0.0))
    f["log_mrr"] = np.log1p(eps["mrr"].astype(float).fillna(0.0))
    yearly = (eps["billing_interval"] == "year").to_numpy()
    f["yearly"] = yearly.astype(float)
    tenure = eps["tenure_days"].astype(float).fillna(0.0).clip(lower=0)
    f["log_tenure_days"] = np.log1p(tenure)
    f["log_customer_tenure_days"] = np.log1p(
        eps["customer_tenure_days"].astype(float).fillna(0.0).clip(lower=0)
    )
    # position in the billing term at the end: 0 = on a term boundary, 0.5 = mid-term
    period = np.where(yearly, 365.25, 30.4375)
    terms = tenure / period
    frac = terms - np.round(terms)
    f["term_phase"] = np.abs(frac)
    f["terms_completed"] = np.floor(terms + 0.02)
    f["lapse_number"] = eps["lapse_number"].astype(float)
    req = eps["cancel_requested_at"]
    f["has_cancel_request"] = req.notna().astype(float)
    lead = ((eps["ended_at"] - req) / _DAY).fillna(0.0).clip(lower=0)
    f["log_request_lead_days"] = np.log1p(lead)
    f["log_total_paid"] = np.log1p(eps["total_paid"].astype(float).fillna(0.0).clip(lower=0))
    f = pd.concat([f, _payment_features(eps, cd.events)], axis=1)
    acq = eps["customer_id"].map(
        cd.customers.drop_duplicates("customer_id").set_index("customer_id")["acquisition_channel"]
    )
    f["acquisition_channel"] = acq.astype(object).where(acq.notna(), "none").astype(str)
    for c in ("plan_tier", "billing_interval", "source", "status", "end_detail"):
        f[c] = eps[c].astype(object).where(eps[c].notna(), "none").astype(str)
    # the comment belongs to the end recorded on the subscription row only
    comment = eps["subscription_id"].map(
        cd.subscriptions.drop_duplicates("subscription_id").set_index("subscription_id")[
            "cancel_comment"
        ]
    )
    if "from_subscription_row" in eps.columns:
        comment = comment.where(eps["from_subscription_row"].astype(bool))
    f[TEXT_FEATURE] = comment.where(comment.notna(), "").astype(str)
    f["has_comment"] = (f[TEXT_FEATURE].str.strip() != "").astype(float)
    f.attrs["missing_signals"] = missing_signals(cd)
    f.attrs["as_of"] = T
    return f


def reason_training_set(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The rows of ``features`` with a stated reason, and those reasons (the labels)."""
    require_columns(features, ["stated_reason"], "The 'features' frame")
    m = features["stated_reason"].notna() & features["stated_reason"].isin(REASONS)
    return features[m], features.loc[m, "stated_reason"].astype(str)


class ReasonClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression on behaviour, plan and cancel-comment text.

    Numeric features are imputed (median) and standardised, categorical ones
    one-hot encoded, and the comment turned into TF-IDF word uni- and
    bigrams; one regularised multinomial logistic regression reads them all.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression.
    use_text : bool
        Read the cancel comment (``text_col``); when no training row has a
        comment the text part is dropped automatically.
    text_col : str
        Name of the free-text column.
    min_df : int
        Minimum number of comments a word must appear in (keeps rare, possibly
        identifying words out of the vocabulary).
    max_text_features : int
        Size cap of the TF-IDF vocabulary.
    class_weight : None or 'balanced'
        Passed to the logistic regression.
    max_iter : int
        Solver iterations.
    tol : float
        Stopping tolerance of the solver (1e-3 fits 100k-customer histories in
        seconds with the accuracy of 1e-4).
    label_noise : float in [0, 1)
        Prior share of stated (voluntary) reasons that are wrong. The labels
        are the *stated* reasons, so a plain fit learns P(stated | x); with
        ``label_noise > 0`` the fit is corrected towards P(true | x) by EM
        (:meth:`_denoise`): each training row's true reason has the posterior
        ``P(r | x, stated s) ~ P(r | x) M[r, s]``, with the misreport matrix
        ``M[r, r] = 1 - label_noise``, a share ``noise_to_other`` of the
        wrong answers on ``other`` and the rest spread evenly over the other
        voluntary reasons (``payment_failed`` is recorded by billing, never
        misreported); the model is refitted on those soft labels
        (``noise_iter`` times). 0 fits the stated reasons as they are.
    noise_to_other : float in [0, 1]
        Share of the wrong answers that land on ``other``.
    noise_iter : int
        EM steps (each one refit of the logistic regression, warm-started from the previous
        coefficients).

    Attributes
    ----------
    classes_ : ndarray of str
    pipeline_ : sklearn Pipeline
    text_used_ : bool
    numeric_features_, categorical_features_ : list of str
    relabelled_share_ : float
        Mean posterior probability that a training row's stated reason is
        wrong (0 without ``label_noise``).

    Examples
    --------
    >>> feats = reason_features(world.tables, as_of="2025-06-30")  # doctest: +SKIP
    >>> X, y = reason_training_set(feats)  # doctest: +SKIP
    >>> clf = ReasonClassifier().fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X).shape  # doctest: +SKIP
    """

    def __init__(
        self,
        C: float = 1.0,
        use_text: bool = True,
        text_col: str = TEXT_FEATURE,
        min_df: int = 3,
        max_text_features: int = 5000,
        class_weight: str | None = None,
        max_iter: int = 2000,
        tol: float = 1e-3,
        label_noise: float = LABEL_NOISE,
        noise_to_other: float = 0.5,
        noise_iter: int = 5,
    ) -> None:
        self.C = C
        self.use_text = use_text
        self.text_col = text_col
        self.min_df = min_df
        self.max_text_features = max_text_features
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.label_noise = label_noise
        self.noise_to_other = noise_to_other
        self.noise_iter = noise_iter

    def _columns(self, X: pd.DataFrame) -> tuple[list[str], list[str]]:
        num = [c for c in NUMERIC_FEATURES if c in X.columns]
        cat = [c for c in CATEGORICAL_FEATURES if c in X.columns]
        return num, cat

    def fit(self, X: pd.DataFrame, y: Any) -> ReasonClassifier:
        """Fit on features (from :func:`reason_features`) and stated reasons ``y``."""
        from sklearn.compose import ColumnTransformer
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline, make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if (
            not 0.0 <= float(self.label_noise) < 1.0
            or not 0.0 <= float(self.noise_to_other) <= 1
            or int(self.noise_iter) != self.noise_iter
            or self.noise_iter < 0
        ):
            raise ModelError(
                "ReasonClassifier needs 0 <= label_noise < 1, 0 <= noise_to_other <= 1 and an "
                f"integer noise_iter >= 0. Got label_noise={self.label_noise!r}, "
                f"noise_to_other={self.noise_to_other!r}, noise_iter={self.noise_iter!r}."
            )
        if not isinstance(X, pd.DataFrame):
            raise ModelError(
                "The 'X' parameter of ReasonClassifier.fit must be a DataFrame from "
                f"reason_features. Got {type(X).__name__} instead."
            )
        y = pd.Series(np.asarray(y, dtype=object), index=X.index)
        if len(X) != len(y):
            raise ModelError(f"X has {len(X)} rows but y has {len(y)}. Pass one label per row.")
        bad = ~y.isin(REASONS)
        if bad.any():
            raise ModelError(
                f"y must hold canonical reasons {list(REASONS)} (not 'unknown'). Got "
                f"{sorted(set(map(str, y[bad])))[:5]} in {int(bad.sum())} row(s). Drop rows "
                "without a stated reason (see reason_training_set)."
            )
        if y.nunique() < 2:
            raise ModelError(
                f"ReasonClassifier needs at least 2 distinct stated reasons to learn from. Got "
                f"{sorted(y.unique())} in {len(y)} row(s). Collect more cancel-flow answers, or "
                "use the stated reasons alone."
            )
        num, cat = self._columns(X)
        if not num and not cat:
            raise ModelError(
                "X has none of the reason features. Build it with winback_ml.cohort.reasons."
                f"reason_features. Got columns {list(X.columns)[:20]}."
            )
        parts: list = []
        if num:
            parts.append(
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num)
            )
        if cat:
            parts.append(("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=5), cat))
        text = self._text(X)
        n_docs = int((text.str.strip() != "").sum()) if text is not None else 0
        self.text_used_ = bool(self.use_text and n_docs >= max(self.min_df, 2))
        if self.text_used_:
            parts.append(
                (
                    "txt",
                    TfidfVectorizer(
                        ngram_range=(1, 2),
                        min_df=self.min_df,
                        max_features=self.max_text_features,
                        sublinear_tf=True,
                        strip_accents="unicode",
                    ),
                    self.text_col,
                )
            )
        self.numeric_features_, self.categorical_features_ = num, cat
        self.pipeline_ = Pipeline(
            [
                ("features", ColumnTransformer(parts, sparse_threshold=1.0)),
                (
                    "model",
                    LogisticRegression(
                        C=self.C,
                        class_weight=self.class_weight,
                        max_iter=self.max_iter,
                        tol=self.tol,
                    ),
                ),
            ]
        )
        try:
            self.pipeline_.fit(self._prepare(X), y.to_numpy())
        except ValueError as e:
            if self.text_used_ and ("vocabulary" in str(e) or "no terms remain" in str(e)):
                self.text_used_ = False
                self.pipeline_.set_params(
                    features__transformers=[p for p in parts if p[0] != "txt"]
                )
                self.pipeline_.fit(self._prepare(X), y.to_numpy())
            else:
                raise ModelError(f"ReasonClassifier could not be fitted: {e}") from e
        if self.text_used_:
            # scikit-learn < 1.8 keeps the words cut by min_df/max_features in ``stop_words_``:
            # the rare, possibly identifying ones. Never keep them on the model.
            vec = self.pipeline_.named_steps["features"].named_transformers_["txt"]
            if hasattr(vec, "stop_words_"):
                vec.stop_words_ = None
        self.relabelled_share_ = 0.0
        if self.label_noise > 0 and self.noise_iter > 0:
            self._denoise(X, y.to_numpy())
        self.classes_ = self.pipeline_.classes_
        self.n_features_in_ = len(num) + len(cat) + int(self.text_used_)
        return self

    def misreport_matrix(self, classes: Any) -> np.ndarray:
        """``M[r, s]`` = P(stated ``s`` | true ``r``) over ``classes`` (rows sum to 1).

        See ``label_noise``. A wrong answer goes to ``other`` with share
        ``noise_to_other`` and evenly to the other voluntary classes with the
        rest; when ``other`` is not among the classes (or for a true
        ``other``) it is spread evenly. ``payment_failed`` is never
        misreported and never the wrong answer.
        """
        cls = [str(c) for c in classes]
        K = len(cls)
        M = np.zeros((K, K))
        vol = [i for i, c in enumerate(cls) if c != "payment_failed"]
        io = cls.index("other") if "other" in cls else -1
        m = float(self.label_noise)
        for a in range(K):
            if a not in vol or len(vol) < 2:
                M[a, a] = 1.0
                continue
            rest = [b for b in vol if b != a]
            M[a, a] = 1.0 - m
            if io >= 0 and a != io:
                M[a, io] += m * self.noise_to_other
                spread = [b for b in rest if b != io]
                share = m * (1.0 - self.noise_to_other)
                if spread:
                    M[a, spread] += share / len(spread)
                else:
                    M[a, io] += share
            else:
                M[a, rest] += m / len(rest)
        return M

    def _denoise(self, X: pd.DataFrame, y: np.ndarray) -> None:
        """EM on the stated labels: refit on ``P(true r | x, stated s)`` as soft labels.

        The feature transform (scaling, one-hot, TF-IDF vocabulary) stays as
        fitted on the rows themselves; only the logistic regression is
        refitted, on each row repeated once per reason with a posterior of at
        least 1 % (weights = the posterior, renormalised), and always once with its
        stated reason (even below 1 %: every stated reason stays a class of the model, and
        the warm start keeps its shape). ``relabelled_share_`` is read from the posterior
        under the final fit, before any truncation.
        """
        feats = self.pipeline_.named_steps["features"]
        model = self.pipeline_.named_steps["model"]
        Z = feats.transform(self._prepare(X))
        if hasattr(Z, "tocsr"):
            Z = Z.tocsr()
        cls = np.asarray(model.classes_, dtype=object)
        col = {c: i for i, c in enumerate(cls)}
        s_idx = np.array([col[v] for v in y])
        M = self.misreport_matrix(cls)
        # each EM step starts from the previous coefficients (a few solver iterations each)
        warm = model.get_params().get("warm_start", False)
        model.set_params(warm_start=True)
        own = np.eye(len(cls), dtype=bool)[s_idx]

        def posterior() -> np.ndarray:
            P = np.zeros((len(y), len(cls)))
            P[:, np.searchsorted(cls, model.classes_)] = model.predict_proba(Z)
            Q = P * M[:, s_idx].T
            tot = Q.sum(axis=1, keepdims=True)
            return np.where(tot > 0, Q / np.where(tot > 0, tot, 1.0), own.astype(float))

        try:
            for _ in range(int(self.noise_iter)):
                Q = posterior()
                # a rare stated reason whose rows all fall below 1 % would drop out of the
                # classes (and break the warm start): the stated reason is always kept
                Q = np.where((Q >= 0.01) | own, Q, 0.0)
                Q /= Q.sum(axis=1, keepdims=True)
                rows, cols = np.nonzero(Q)
                model.fit(Z[rows], cls[cols], sample_weight=Q[rows, cols])
        finally:
            model.set_params(warm_start=warm)
        self.relabelled_share_ = float(np.mean(1.0 - posterior()[own]))

    def _text(self, X: pd.DataFrame) -> pd.Series | None:
        if self.text_col not in X.columns:
            return None
        return X[self.text_col].fillna("").astype(str)

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        if self.text_col in X.columns:
            X[self.text_col] = X[self.text_col].fillna("").astype(str)
        elif getattr(self, "text_used_", False):
            X[self.text_col] = ""
        for c in getattr(self, "categorical_features_", []):
            if c not in X.columns:
                X[c] = "none"
            X[c] = X[c].astype(object).where(X[c].notna(), "none").astype(str)
        for c in getattr(self, "numeric_features_", []):
            if c not in X.columns:
                X[c] = np.nan
        return X

    def _check(self) -> None:
        if not hasattr(self, "pipeline_"):
            raise NotFittedError(
                "This ReasonClassifier is not fitted yet. Call 'fit' with reason_features "
                "and stated reasons first."
            )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of each reason in :attr:`classes_`, one row per row of ``X``."""
        self._check()
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)))
        return self.pipeline_.predict_proba(self._prepare(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most probable reason of each row."""
        p = self.predict_proba(X)
        return self.classes_[np.argmax(p, axis=1)] if len(p) else np.array([], dtype=object)


@dataclass
class ReasonEvaluation:
    """Held-out quality of the reason classifier.

    ``confusion`` has true reasons as rows and predicted reasons as columns
    (counts); ``per_class`` has precision, recall and support per reason.
    """

    accuracy: float
    top2_accuracy: float
    balanced_accuracy: float
    baseline_accuracy: float
    n_train: int
    n_test: int
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Numbers only (no frames), e.g. for MLflow metrics or a JSON report."""
        return {
            "accuracy": self.accuracy,
            "top2_accuracy": self.top2_accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


def _score(
    y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, baseline: float, n_train: int
) -> ReasonEvaluation:
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    pred = classes[np.argmax(proba, axis=1)]
    top2 = classes[np.argsort(-proba, axis=1)[:, :2]]
    labels = sorted(set(y_true) | set(pred))
    cm = confusion_matrix(y_true, pred, labels=labels)
    conf = pd.DataFrame(
        cm,
        index=pd.Index(labels, name="true"),
        columns=pd.Index(labels, name="predicted"),
    )
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    per = pd.DataFrame(
        {
            "precision": np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0),
            "recall": np.divide(tp, support, out=np.zeros_like(tp), where=support > 0),
            "support": support,
        },
        index=pd.Index(labels, name="reason"),
    )
    return ReasonEvaluation(
        accuracy=float(np.mean(pred == y_true)),
        top2_accuracy=float(np.mean((top2 == y_true[:, None]).any(axis=1))),
        balanced_accuracy=float(balanced_accuracy_score(y_true, pred)),
        baseline_accuracy=baseline,
        n_train=n_train,
        n_test=len(y_true),
        confusion=conf,
        per_class=per,
        classes=[str(c) for c in classes],
    )


def evaluate_reasons(
    features: pd.DataFrame,
    classifier: ReasonClassifier | None = None,
    test_size: float = 0.25,
    random_state: int = 0,
    split: str = "random",
) -> ReasonEvaluation:
    """Held-out accuracy and confusion matrix of the classifier on stated reasons.

    The lapses with a stated reason are split into train and test; the
    classifier is fitted on train and scored on test. ``split='random'``
    draws the test set at random (stratified when every reason has at least 2
    lapses); ``split='time'`` tests on the latest ``test_size`` share of
    lapses (by ``ended_at``) after training on the earlier ones, as a
    deployed model would be used. ``baseline_accuracy`` is what always
    guessing the most common training reason scores on the test set.

    Parameters
    ----------
    features : DataFrame from :func:`reason_features` (all lapses up to ``as_of``).
    classifier : an unfitted :class:`ReasonClassifier` (default settings when None).
    test_size : float in (0, 1)
    random_state : int
    split : ``'random'`` or ``'time'``
    """
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    X, y = reason_training_set(features)
    if len(y) < 10:
        raise ModelError(
            f"Only {len(y)} lapse(s) have a stated reason; at least 10 are needed to hold some "
            "out. Evaluate on a longer history or a larger business."
        )
    if not 0 < test_size < 1:
        raise ModelError(f"test_size must be in (0, 1). Got {test_size!r} instead.")
    if split == "time":
        require_columns(X, ["ended_at"], "The 'features' frame (split='time')")
        order = np.argsort(X["ended_at"].to_numpy(), kind="stable")
        cut = int(round(len(order) * (1 - test_size)))
        tr, te = order[:cut], order[cut:]
        Xtr, Xte, ytr, yte = X.iloc[tr], X.iloc[te], y.iloc[tr], y.iloc[te]
        if ytr.nunique() < 2:
            raise ModelError("The earlier lapses hold fewer than 2 reasons; use split='random'.")
    elif split == "random":
        counts = y.value_counts()
        strat = y if counts.min() >= 2 else None
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=test_size, random_state=random_state, stratify=strat
        )
    else:
        raise ModelError(f"split must be 'random' or 'time'. Got {split!r} instead.")
    clf = clone(classifier) if classifier is not None else ReasonClassifier()
    clf.fit(Xtr, ytr)
    baseline = float(ytr.value_counts(normalize=True).iloc[0])
    maj = ytr.value_counts().index[0]
    base_on_test = float(np.mean(yte.to_numpy() == maj))
    ev = _score(yte.to_numpy(), clf.predict_proba(Xte), clf.classes_, base_on_test, len(ytr))
    ev.baseline_accuracy = base_on_test if len(yte) else baseline
    return ev


def infer_reasons(
    data: ContractData | Mapping[str, pd.DataFrame],
    cohort: pd.DataFrame,
    as_of: Any = None,
    classifier: ReasonClassifier | None = None,
    episodes: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    min_train: int = 30,
) -> pd.DataFrame:
    """The cancellation reason of each cohort member: stated, or inferred from behaviour.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    cohort : DataFrame from :func:`~winback_ml.cohort.lapsed.build_lapsed_cohort`
        (``customer_id`` and ``lapse_id`` are used).
    as_of : date or timestamp, optional
    classifier : ReasonClassifier, optional
        A fitted one is used as is; an unfitted one (or None: default
        settings) is fitted on every lapse up to ``as_of`` with a stated reason.
    episodes, features : DataFrame, optional
        Already built episodes / :func:`reason_features` for the same ``as_of``.
    min_train : int
        Fewest stated lapses to fit a classifier; with fewer, unstated
        reasons stay ``unknown`` (``reason_rule='no_model'``).

    Returns
    -------
    DataFrame
        One row per cohort member, in cohort order: ``customer_id``,
        ``lapse_id``, ``cancel_reason``, ``reason_source`` (``stated`` |
        ``inferred``), ``reason_proba``, ``reason_rule`` (``stated`` |
        ``classifier`` | ``unrecovered_payment_failure`` | ``no_model``) and
        ``p_<reason>`` for every reason of :data:`REASONS` (one-hot for
        stated reasons). ``attrs``: ``missing_signals``, ``n_train``,
        ``classifier`` (the fitted one, or None).
    """
    from sklearn.base import clone

    require_columns(cohort, ["customer_id", "lapse_id"], "The 'cohort' frame")
    cd, T = as_contract_data(data, as_of)
    if features is None:
        eps = build_lapse_episodes(cd, T) if episodes is None else episodes
        features = reason_features(cd, eps, T)
    f = features.set_index("lapse_id")
    missing = ~cohort["lapse_id"].isin(f.index)
    if missing.any():
        raise ModelError(
            f"{int(missing.sum())} cohort lapse(s) have no features, e.g. "
            f"{list(cohort.loc[missing, 'lapse_id'].head(3))}. Build the cohort, episodes and "
            "features from the same data and as_of."
        )
    fx = f.loc[cohort["lapse_id"].to_numpy()]
    X, y = reason_training_set(features)
    clf: ReasonClassifier | None
    if classifier is not None and hasattr(classifier, "pipeline_"):
        clf = classifier
    elif len(y) >= min_train and y.nunique() >= 2:
        clf = clone(classifier) if classifier is not None else ReasonClassifier()
        clf.fit(X, y)
    else:
        clf = None
    out = pd.DataFrame(
        {"customer_id": cohort["customer_id"].to_numpy(), "lapse_id": cohort["lapse_id"].to_numpy()}
    )
    stated = fx["stated_reason"].to_numpy(dtype=object)
    is_stated = pd.notna(stated) & np.isin(stated.astype(str), REASONS)
    probs = np.zeros((len(out), len(REASONS)))
    if clf is not None and len(out):
        p = clf.predict_proba(fx)
        col = {r: i for i, r in enumerate(REASONS)}
        for j, r in enumerate(clf.classes_):
            probs[:, col[r]] = p[:, j]
    top = np.array(REASONS, dtype=object)[np.argmax(probs, axis=1)] if len(out) else []
    reason = np.where(is_stated, stated, top if clf is not None else "unknown")
    proba = np.where(is_stated, 1.0, probs.max(axis=1) if clf is not None else np.nan)
    rule = np.where(is_stated, "stated", "classifier" if clf is not None else "no_model")
    unrec = fx["unrecovered_payment_failure"].to_numpy(dtype=float) > 0
    invol = ~is_stated & unrec
    reason = np.where(invol, "payment_failed", reason)
    proba = np.where(invol, 1.0, proba)
    rule = np.where(invol, "unrecovered_payment_failure", rule)
    out["cancel_reason"] = reason.astype(object)
    out["reason_source"] = np.where(is_stated, "stated", "inferred").astype(object)
    out["reason_proba"] = proba.astype(float)
    out["reason_rule"] = rule.astype(object)
    onehot = np.zeros_like(probs)
    for i, r in enumerate(REASONS):
        onehot[:, i] = (reason == r).astype(float)
    final = np.where((is_stated | invol)[:, None], onehot, probs)
    for i, r in enumerate(REASONS):
        out[f"p_{r}"] = final[:, i]
    out.attrs.update(
        missing_signals=features.attrs.get("missing_signals", missing_signals(cd)),
        n_train=int(len(y)),
        classifier=clf,
        as_of=T,
    )
    return out


# ----------------------------------------------------------------------------------------
# evidence that arrives after the lapse: time away without a return, interview answers
# ----------------------------------------------------------------------------------------
def _km_on_grid(dur: np.ndarray, event: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival at the (day) points of ``grid`` (ties: events before censoring)."""
    if len(dur) == 0:
        return np.ones(len(grid))
    order = np.lexsort((~event, dur))
    d, e = dur[order], event[order]
    at_risk = len(d) - np.arange(len(d))
    s = np.cumprod(np.where(e, 1.0 - 1.0 / at_risk, 1.0))
    idx = np.searchsorted(d, grid, side="right") - 1
    return np.where(idx >= 0, s[np.clip(idx, 0, None)], 1.0)


class ReasonReturnCurves:
    """Share of lapses still away ``d`` days after the end, by stated reason.

    Reasons differ in how many come back and how fast (an accidental
    cancellation is mostly undone within days; a switch to a competitor
    rarely is). A customer still away after ``d`` days is evidence:
    ``P(r | x, away after d) ~ P(r | x) S_r(d)`` (:func:`refine_reasons`).

    ``S_r`` is the Kaplan-Meier curve of the time to any return (natural or
    after a campaign: the cohort lives with the same campaigns) of the lapses
    with stated reason ``r`` that ended by ``cutoff``; a return after
    ``cutoff`` is censored at ``cutoff``, so nothing after it is read. A
    reason with ``n`` lapses is shrunk towards the pooled curve:
    ``(n S_r + shrink S) / (n + shrink)``; a reason never stated gets the
    pooled curve (no evidence either way).

    Parameters
    ----------
    shrink : float
        Pseudo-count of the pooled curve in each reason's curve.
    max_days : int
        Curves are kept on days ``0 .. max_days`` (later days read the last).

    Attributes
    ----------
    curves_ : DataFrame
        Index days, one column per reason of :data:`REASONS`.
    n_by_reason_ : dict of reason -> number of lapses
    cutoff_ : Timestamp
    """

    def __init__(self, shrink: float = 20.0, max_days: int = 730) -> None:
        self.shrink = shrink
        self.max_days = max_days

    def fit(self, episodes: pd.DataFrame, cutoff: Any) -> ReasonReturnCurves:
        """Fit on lapse episodes (``stated_reason``, ``ended_at``, ``returned_at``) up to ``cutoff``."""
        require_columns(
            episodes, ["stated_reason", "ended_at", "returned_at"], "The 'episodes' frame"
        )
        if self.shrink < 0 or int(self.max_days) < 1:
            raise ModelError(
                f"ReasonReturnCurves needs shrink >= 0 and max_days >= 1. Got shrink={self.shrink!r}"
                f", max_days={self.max_days!r}."
            )
        cut = pd.Timestamp(cutoff)
        e = episodes[episodes["stated_reason"].isin(REASONS) & (episodes["ended_at"] <= cut)]
        back = (e["returned_at"].notna() & (e["returned_at"] <= cut)).to_numpy()
        stop = e["returned_at"].where(back, cut)
        dur = ((stop - e["ended_at"]) / _DAY).to_numpy(float).clip(min=0.0)
        grid = np.arange(int(self.max_days) + 1)
        pooled = _km_on_grid(dur, back, grid)
        reason = e["stated_reason"].astype(str).to_numpy()
        cols: dict[str, np.ndarray] = {}
        self.n_by_reason_ = {}
        for r in REASONS:
            m = reason == r
            n = int(m.sum())
            self.n_by_reason_[r] = n
            own = _km_on_grid(dur[m], back[m], grid) if n else pooled
            cols[r] = (n * own + self.shrink * pooled) / max(n + self.shrink, 1e-12)
        self.curves_ = pd.DataFrame(cols, index=pd.Index(grid, name="days"))
        self.cutoff_ = cut
        return self

    def survival(self, days: Any) -> np.ndarray:
        """``S_r(d)`` for each ``d`` of ``days``: shape ``(len(days), len(REASONS))``."""
        if not hasattr(self, "curves_"):
            raise NotFittedError("ReasonReturnCurves is not fitted yet. Call 'fit' first.")
        d = np.asarray(days, dtype=float)
        if np.any(~np.isfinite(d)) or np.any(d < 0):
            raise ModelError(
                "days lapsed must be finite and >= 0. Got "
                f"{d[~np.isfinite(d) | (d < 0)][:3].tolist()}. Compute them as at - ended_at."
            )
        i = np.clip(np.floor(d).astype(int), 0, int(self.max_days))
        return self.curves_.to_numpy()[i]


#: Evidence after the lapse that :func:`refine_reasons` can weigh (``days_lapsed``: still away
#: after so many days; ``interviews``: trusted interview answers).
REASON_EVIDENCE: tuple[str, ...] = ("days_lapsed", "interviews")

#: Interview answers read by :class:`InterviewReasonModel` (free text: PII, memory only).
INTERVIEW_TEXT_COLUMNS: tuple[str, ...] = (
    "q1_cancel_story",
    "q2_breaking_point",
    "q3_tried_before",
    "q6_return_conditions",
    "q8_ideal_product",
)
#: Interviews with a lower ``quality_score`` are not trusted (the segments' rule).
MIN_INTERVIEW_QUALITY = 3


def _interview_text(iv: pd.DataFrame) -> pd.Series:
    out = pd.Series("", index=iv.index, dtype=object)
    for c in INTERVIEW_TEXT_COLUMNS:
        if c in iv.columns:
            out = out + " " + iv[c].astype(object).where(iv[c].notna(), "").astype(str)
    return out.str.strip()


def _interviews_of_lapses(
    interviews: pd.DataFrame, lapses: pd.DataFrame, at: pd.Series, min_quality: int
) -> pd.DataFrame:
    """The latest trusted interview of each lapse answered after its end and by its ``at``.

    ``lapses`` holds ``customer_id``, ``ended_at`` (one row per query, any
    order); returns ``_q`` (the query's position) and ``text`` for the
    queries that have one.
    """
    iv = interviews[["customer_id", "answered_at"]].copy()
    iv["text"] = _interview_text(interviews)
    if "quality_score" in interviews.columns:
        q = pd.to_numeric(interviews["quality_score"], errors="coerce")
        iv = iv[(q >= min_quality).to_numpy()]
    q = pd.DataFrame(
        {
            "customer_id": lapses["customer_id"].to_numpy(),
            "ended_at": lapses["ended_at"].to_numpy(),
            "at": pd.to_datetime(pd.Series(np.asarray(at))).to_numpy(),
            "_q": np.arange(len(lapses)),
        }
    )
    m = q.merge(iv, on="customer_id")
    m = m[(m["answered_at"] > m["ended_at"]) & (m["answered_at"] <= m["at"])]
    m = m.sort_values(["_q", "answered_at"], kind="mergesort").drop_duplicates("_q", keep="last")
    return m[["_q", "text"]]


class InterviewReasonModel:
    """What a trusted win-back interview says about the cancel reason.

    Interview answers (q1 story, q2 breaking point, q3 what they tried, q6
    return conditions, q8 ideal product) are free text; TF-IDF word uni- and
    bigrams (document frequency at least ``min_df``) and a multinomial
    logistic regression learn the *stated* reason from the trusted
    (``quality_score >= min_quality``) interviews of lapses with a stated
    voluntary reason, answered by ``cutoff``. For an interviewed lapse whose
    reason is inferred, :meth:`likelihood_ratio` gives
    ``P_iv(r | answers) / P_iv(r)``, the factor by which the answers move
    the behaviour's probabilities (:func:`refine_reasons`). A reason never
    stated among the interviewed keeps a factor of 1 (no view on it).

    PII: answers are used in memory only; the fitted model keeps the
    vocabulary (words of at least ``min_df`` interviews), never an answer.

    Parameters
    ----------
    min_quality : int
    min_df : int
    C : float
    min_train : int
        Fewest usable interviews to fit; with fewer, :attr:`fitted_` is False
        and every factor is 1.
    """

    def __init__(
        self,
        min_quality: int = MIN_INTERVIEW_QUALITY,
        min_df: int = 3,
        C: float = 1.0,
        min_train: int = 30,
    ) -> None:
        self.min_quality = min_quality
        self.min_df = min_df
        self.C = C
        self.min_train = min_train

    def fit(
        self, interviews: pd.DataFrame | None, episodes: pd.DataFrame, cutoff: Any
    ) -> InterviewReasonModel:
        """Fit on interviews answered by ``cutoff`` of lapses (``episodes``) with a stated reason."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.fitted_ = False
        self.n_train_ = 0
        cut = pd.Timestamp(cutoff)
        if interviews is None or interviews.empty or episodes.empty:
            return self
        episodes = episodes.reset_index(drop=True)  # the next-lapse lookup needs a unique index
        require_columns(interviews, ["customer_id", "answered_at"], "The 'interviews' table")
        require_columns(
            episodes, ["customer_id", "ended_at", "stated_reason"], "The 'episodes' frame"
        )
        e = episodes[
            episodes["stated_reason"].isin(REASONS)
            & (episodes["stated_reason"] != "payment_failed")
            & (episodes["ended_at"] <= cut)
        ].reset_index(drop=True)
        if e.empty:
            return self
        # the interview of a lapse: answered after its end, before the next lapse's end
        nxt = (
            episodes.sort_values("ended_at", kind="mergesort")
            .groupby("customer_id")["ended_at"]
            .shift(-1)
        )
        nxt = nxt.reindex(episodes.index)
        e_next = nxt.loc[
            episodes.index[
                episodes["stated_reason"].isin(REASONS)
                & (episodes["stated_reason"] != "payment_failed")
                & (episodes["ended_at"] <= cut)
            ]
        ].to_numpy()
        at = pd.Series(e_next).fillna(cut).clip(upper=cut)
        m = _interviews_of_lapses(interviews, e, at, self.min_quality)
        m = m[m["text"].str.strip() != ""]
        y = e["stated_reason"].astype(str).to_numpy()[m["_q"].to_numpy()]
        if len(m) < self.min_train or len(set(y)) < 2:
            return self
        vec = TfidfVectorizer(
            ngram_range=(1, 2), min_df=self.min_df, sublinear_tf=True, strip_accents="unicode"
        )
        try:
            Xt = vec.fit_transform(m["text"])
        except ValueError:  # no word in min_df interviews
            return self
        if hasattr(vec, "stop_words_"):
            vec.stop_words_ = None
        lr = LogisticRegression(C=self.C, max_iter=2000).fit(Xt, y)
        self.vectorizer_, self.model_ = vec, lr
        self.classes_ = np.asarray(lr.classes_, dtype=object)
        self.prior_ = np.array([np.mean(y == c) for c in self.classes_])
        self.n_train_ = int(len(y))
        self.fitted_ = True
        return self

    def likelihood_ratio(self, texts: pd.Series) -> np.ndarray:
        """``P_iv(r | answers) / P_iv(r)`` per answer text: shape ``(n, len(REASONS))``."""
        out = np.ones((len(texts), len(REASONS)))
        if not getattr(self, "fitted_", False) or len(texts) == 0:
            return out
        p = self.model_.predict_proba(self.vectorizer_.transform(texts.fillna("").astype(str)))
        for j, c in enumerate(self.classes_):
            out[:, REASONS.index(c)] = p[:, j] / max(self.prior_[j], 1e-12)
        return out

    def interviewed(
        self, interviews: pd.DataFrame | None, lapses: pd.DataFrame, at: Any
    ) -> np.ndarray:
        """Which lapses (``customer_id``, ``ended_at``) have a trusted interview by ``at``.

        Needs no fit: a caller can skip fitting when nobody would be refined.
        """
        out = np.zeros(len(lapses), dtype=bool)
        if interviews is None or interviews.empty or not len(lapses):
            return out
        require_columns(lapses, ["customer_id", "ended_at"], "The 'lapses' frame")
        at_s = pd.Series(
            np.asarray(at) if np.ndim(at) else np.repeat(pd.Timestamp(at), len(lapses))
        )
        out[_interviews_of_lapses(interviews, lapses, at_s, self.min_quality)["_q"].to_numpy()] = (
            True
        )
        return out

    def ratios_for(
        self, interviews: pd.DataFrame | None, lapses: pd.DataFrame, at: Any
    ) -> np.ndarray:
        """Factors for lapses (``customer_id``, ``ended_at``) given interviews answered by ``at``.

        ``at`` is one time or one per lapse (the time each row is scored: the
        run date for the cohort, the assignment for a past campaign row). A
        lapse without a trusted interview answered after its end and by
        ``at`` gets factors of 1.
        """
        out = np.ones((len(lapses), len(REASONS)))
        if not getattr(self, "fitted_", False) or interviews is None or interviews.empty:
            return out
        require_columns(lapses, ["customer_id", "ended_at"], "The 'lapses' frame")
        at_s = pd.Series(
            np.asarray(at) if np.ndim(at) else np.repeat(pd.Timestamp(at), len(lapses))
        )
        m = _interviews_of_lapses(interviews, lapses, at_s, self.min_quality)
        if len(m):
            out[m["_q"].to_numpy()] = self.likelihood_ratio(m["text"])
        return out


def refine_reasons(
    reasons: pd.DataFrame,
    days_lapsed: Any = None,
    curves: ReasonReturnCurves | None = None,
    interview_ratio: np.ndarray | None = None,
) -> pd.DataFrame:
    """Inferred reason probabilities updated with what was seen after the lapse.

    For the rows whose reason the classifier inferred (``reason_rule ==
    'classifier'``): ``p_r ~ p_r * S_r(days_lapsed) * interview_ratio_r``
    (:class:`ReasonReturnCurves`, :meth:`InterviewReasonModel.ratios_for`),
    renormalised; ``cancel_reason`` and ``reason_proba`` follow the new
    top reason. Stated reasons, the payment rule and ``no_model`` rows are
    unchanged. ``days_lapsed`` must be measured at the time the row is
    scored (never later): the run date for the cohort, the assignment for a
    campaign row.

    Parameters
    ----------
    reasons : DataFrame from :func:`infer_reasons`
    days_lapsed : array-like, one per row (needed with ``curves``)
    curves : fitted ReasonReturnCurves, optional
    interview_ratio : ndarray ``(len(reasons), len(REASONS))``, optional

    Returns
    -------
    DataFrame like ``reasons`` (a copy; ``attrs`` kept, plus
    ``refined`` = the number of inferred rows weighed with the evidence; a row lapsed
    0 days reads ``S_r(0) = 1`` and keeps its probabilities).
    """
    out = reasons.copy()
    out.attrs.update(reasons.attrs)
    cols = [f"p_{r}" for r in REASONS]
    require_columns(
        out, ["reason_rule", "cancel_reason", "reason_proba", *cols], "The 'reasons' frame"
    )
    m = (out["reason_rule"] == "classifier").to_numpy()
    out.attrs["refined"] = 0
    if not m.any() or (curves is None and interview_ratio is None):
        return out
    P = out[cols].to_numpy(float)
    F = np.ones_like(P)
    if curves is not None:
        if days_lapsed is None:
            raise ModelError("refine_reasons needs days_lapsed (one per row) with curves.")
        d = np.asarray(days_lapsed, dtype=float)
        if d.shape != (len(out),):
            raise ModelError(
                f"days_lapsed has shape {d.shape}; pass one value per row ({len(out)})."
            )
        F[m] *= curves.survival(d[m])
    if interview_ratio is not None:
        ir = np.asarray(interview_ratio, dtype=float)
        if ir.shape != P.shape:
            raise ModelError(
                f"interview_ratio has shape {ir.shape}; expected {P.shape} (rows x REASONS)."
            )
        F[m] *= ir[m]
    Q = P[m] * F[m]
    tot = Q.sum(axis=1, keepdims=True)
    Q = np.where(tot > 0, Q / np.where(tot > 0, tot, 1.0), P[m])
    P[m] = Q
    for j, c in enumerate(cols):
        out[c] = P[:, j]
    top = np.array(REASONS, dtype=object)[np.argmax(P, axis=1)]
    out["cancel_reason"] = np.where(m, top, out["cancel_reason"].to_numpy(dtype=object))
    out["reason_proba"] = np.where(m, P.max(axis=1), out["reason_proba"].to_numpy(float))
    out.attrs["refined"] = int(m.sum())
    return out
