"""A structured offer-response model: P(return | customer, offer, channel) for any catalog offer.

Past campaigns try a handful of arms (a plain message, a few discounts, a
free month, ...), while the optimizer must price every offer of the catalog
on every channel. This model pools every campaign's arms through a
structure that generalises across discount depths and lengths:

``P(return | x, offer, channel) = 1 - (1 - p0'(x)) * (1 - u)``, ``u = 1 - exp(-v)``,

``v = reach(channel | consent) * sum_r pi_r(x) R[r, type] * D(pct, months) * exp(-gamma * days_lapsed / 100 + beta_g . z(x))``

* ``p0'(x) = sigmoid(logit p0(x) + c_0 + c . z(x))``: P(return | no contact)
  from the base return model (an offset), recalibrated on the randomized
  control arms of the same campaigns (``calibrate_base``; control rows are
  fitted with ``v = 0``), so a base model that is off in level, or blind
  to a covariate, does not bias the offers' effects;
* ``pi_r(x)``: the probability that the customer left for reason ``r``
  (one-hot for a stated reason, the reason classifier's probabilities for an
  inferred one, so the response is the expectation over the reasons);
* ``R[r, type] = exp(a_type + b_{r,type})``: response of reason ``r`` to an
  offer type; ``b`` is shrunk to 0 (an L2 penalty) so a reason with few
  customers borrows the offer type's average;
* ``D = (1 - exp(-pct / kappa)) * (1 - exp(-months / tau))`` for discounts
  (diminishing returns in depth and length, both scales learnt and shrunk on
  the log scale towards a stated prior ``dose_prior`` = 20 %, 2 months: a
  few hundred price-driven customers per arm cannot pin the length scale
  down alone), 1 otherwise: untried depths and lengths inside the tried
  range are interpolated, outside it they are clamped to the nearest tried
  value (stated in ``attrs``);
* ``reach``: e-mail ``can_email * sigmoid(rho_email)``, SMS likewise,
  in-app ``sigmoid(rho_in_app + rho_app * app_customer)`` (in-app messages
  reach users of the app platforms best), multi ``1 - (1 - r_email)(1 - r_sms)``;
  the logits shrink towards ``logit(reach_prior)`` (0.5): the data tell
  channels apart, the prior keeps the level off 1, where only the costs
  would tell channels apart;
* ``gamma``: decay of the response with the days lapsed; ``beta_g . z``:
  covariate effects (standardised), one vector per group of
  :data:`BETA_GROUPS` (offers that cut the price; the rest), plus a
  deviation per offer type for the covariates of :data:`TYPE_COVARIATES`
  (feature requests for the feature trial). ``z``
  (:data:`Z_FEATURES`): log MRR, yearly plan, coupon-site acquisition,
  earlier returns, basic tier, and behaviour read from the lapse's reason
  features (dated at or before its end): log active minutes per session
  (how engrossed the customer was), feature requests per year, whether a
  discounted price was paid before. A covariate that is missing (no usage
  or tickets table) reads as the training average.

Fit by penalised maximum likelihood (L-BFGS, analytic gradient) on the
campaign history (:func:`offer_training_frame`). An offer type or channel
that the history never tried gets NaN (no evidence), never a number.

Invariants: days in days; money plays no role here; rows keep the input
order; the fitted model stores parameters only, never rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from winback_ml.cohort.reasons import LABEL_NOISE, REASON_EVIDENCE
from winback_ml.config import Offer
from winback_ml.data.contract import CANCEL_REASONS, CHANNELS
from winback_ml.exceptions import ConfigError, ModelError, NotFittedError

__all__ = [
    "REASONS",
    "OFFER_TYPES_CONTACT",
    "Z_FEATURES",
    "BETA_GROUPS",
    "TYPE_COVARIATES",
    "StructuredOfferResponseModel",
    "MISREPORT_PRIOR",
    "behaviour_rows",
    "reason_posterior",
    "offer_features",
    "offer_training_frame",
    "refine_with_evidence",
    "check_reason_evidence",
]

REASONS: tuple[str, ...] = tuple(r for r in CANCEL_REASONS if r != "unknown")
OFFER_TYPES_CONTACT: tuple[str, ...] = (
    "none",
    "discount",
    "free_month",
    "feature_trial",
    "resume_billing",
    "early_renewal",
)
#: Offer types that share covariate effects (:class:`StructuredOfferResponseModel`'s
#: ``beta_groups``): offers that cut the price now (price sensitivity shows in the plan, coupon
#: acquisition and past discounts) share one vector, every other type another. Measured on
#: 20k worlds, seeds 1-3: policy / oracle 0.887 with these two groups, 0.868 with the feature
#: trial as a third group, 0.858 with early renewal among the price offers, 0.832 per type.
BETA_GROUPS: dict[str, str] = {"discount": "price", "free_month": "price"}
#: Covariates whose effect on one offer type may deviate from its group's (one coefficient
#: each, shrunk to 0 like the others): feature requests show feature need, which moves the
#: feature trial (the seed's "missing features -> a trial of those modules") and nothing
#: else of the "other" group. As a covariate group of its own the trial lost the shared
#: effects (20k seeds 1-3: 0.879-0.916 against 0.896-0.919); as one deviation it gains
#: 0 to +0.6 points on eight worlds (docs/economics.md, session 4).
TYPE_COVARIATES: dict[str, tuple[str, ...]] = {"feature_trial": ("feature_requests",)}
Z_FEATURES: tuple[str, ...] = (
    "log_mrr",
    "yearly",
    "coupon",
    "returned_before",
    "basic_tier",
    "log_minutes_per_session",
    "feature_requests",
    "discounted_before",
)
#: Columns of :func:`winback_ml.cohort.reasons.reason_features` that feed the covariates.
_BEHAVIOUR_COLUMNS: tuple[str, ...] = (
    "usage_available",
    "minutes_per_session",
    "tickets_available",
    "feature_requests_per_month",
    "min_paid_ratio",
)
_APP_SOURCES = ("app_store", "google_play")


#: Prior share of stated (voluntary) reasons that are wrong: cancel-flow answers are quick
#: clicks, and a wrong one is most often ``other``. See :func:`reason_posterior`. The same
#: quantity as the reason classifier's label noise, so one constant holds it.
MISREPORT_PRIOR = LABEL_NOISE


def reason_posterior(
    reasons: pd.DataFrame,
    classifier: Any,
    features: pd.DataFrame,
    misreport: float = MISREPORT_PRIOR,
) -> pd.DataFrame:
    """Reason probabilities that weigh a stated reason against the behaviour.

    A stated reason is usually right, not always. For a row whose reason was
    stated (``reason_rule == "stated"``, not ``payment_failed``: the billing
    system records that one), ``P(r | stated s, x)`` is proportional to
    ``P_clf(r | x) * ((1 - misreport) if r == s else misreport / (K - 1))``
    (``K`` reasons): the stated reason wins unless the behaviour makes
    another reason far more likely. A stated ``other`` carries no reason,
    so it keeps only the classifier's view (``other`` included).

    A classifier fitted with ``label_noise > 0`` learnt ``P(true r | x)``
    (not the inflated ``P(stated other | x)``); its own misreport matrix
    (:meth:`~winback_ml.cohort.reasons.ReasonClassifier.misreport_matrix`,
    with ``misreport`` as the noise) is then the likelihood:
    ``P(r | stated s, x) ~ P_clf(r | x) M[r, s]``, a stated ``other``
    included (a wrong answer lands on ``other`` most often). A stated
    reason that is not among the classifier's classes (it never saw that
    reason stated, e.g. an early quarterly refit) stays one-hot: the
    classifier gives it probability 0 only for lack of examples. Inferred
    rows are unchanged; without a classifier nothing changes.

    Parameters
    ----------
    reasons : DataFrame
        :func:`winback_ml.cohort.reasons.infer_reasons` output.
    classifier : fitted ReasonClassifier or None
    features : DataFrame
        :func:`winback_ml.cohort.reasons.reason_features` rows aligned with ``reasons``.
    misreport : float in [0, 1)

    Returns
    -------
    DataFrame like ``reasons`` with adjusted ``p_<reason>`` columns.
    """
    from sklearn.base import clone

    if not 0.0 <= misreport < 1.0:
        raise ModelError(f"misreport must be in [0, 1). Got {misreport!r} instead.")
    out = reasons.copy()
    if classifier is None or not len(out) or misreport == 0.0:
        return out
    rule = out["reason_rule"].astype(object).to_numpy()
    stated = out["cancel_reason"].astype(object).to_numpy()
    # a reason the classifier never saw stated (an early quarterly refit, a rare reason) has
    # P_clf = 0, so the posterior would drop the customer's own answer for no evidence at all:
    # the classifier has no view on it, and the stated reason stays as it is
    known = set(np.asarray(classifier.classes_, dtype=object).tolist()) | {"other"}
    m = (rule == "stated") & (stated != "payment_failed") & np.isin(stated, list(known))
    if not m.any():
        return out
    proba = classifier.predict_proba(features.iloc[np.flatnonzero(m)])
    col = {r: i for i, r in enumerate(REASONS)}
    P = np.zeros((int(m.sum()), len(REASONS)))
    for j, r in enumerate(classifier.classes_):
        if r in col:
            P[:, col[r]] = proba[:, j]
    K = len(REASONS)
    s_idx = np.array([col.get(r, -1) for r in stated[m]])
    rows = np.arange(len(s_idx))
    ok = s_idx >= 0
    if float(getattr(classifier, "label_noise", 0.0) or 0.0) > 0 and hasattr(
        classifier, "misreport_matrix"
    ):
        M = clone(classifier).set_params(label_noise=misreport).misreport_matrix(REASONS)
        lik = M[:, np.where(ok, s_idx, 0)].T
    else:
        lik = np.full_like(P, misreport / (K - 1))
        lik[rows[ok], s_idx[ok]] = 1.0 - misreport
        lik[stated[m] == "other"] = 1.0
    post = P * lik
    tot = post.sum(axis=1, keepdims=True)
    post = np.where(tot > 0, post / np.where(tot > 0, tot, 1.0), lik / lik.sum(1, keepdims=True))
    for r, j in col.items():
        v = out[f"p_{r}"].to_numpy(float).copy()
        v[m] = post[:, j]
        out[f"p_{r}"] = v
    return out


def refine_with_evidence(
    data: Any,
    episodes: pd.DataFrame,
    reasons: pd.DataFrame,
    lapses: pd.DataFrame,
    cutoff: Any,
    days_lapsed: Any,
    at: Any,
    evidence: tuple[str, ...] = REASON_EVIDENCE,
) -> pd.DataFrame:
    """Inferred reasons refined with what came after the lapse, as known at ``cutoff`` / ``at``.

    ``"days_lapsed"``: :class:`~winback_ml.cohort.reasons.ReasonReturnCurves`
    fitted on the lapses (and returns) up to ``cutoff``, read at each row's
    ``days_lapsed``; ``"interviews"``:
    :class:`~winback_ml.cohort.reasons.InterviewReasonModel` fitted on the
    interviews answered by ``cutoff``, applied to each row's trusted
    interview answered after its lapse and by its ``at``. See
    :func:`~winback_ml.cohort.reasons.refine_reasons` (only inferred rows
    change). Without the interviews table that part is skipped.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    episodes : lapse episodes (all of them; each model reads only what ended by ``cutoff``)
    reasons : :func:`~winback_ml.cohort.reasons.infer_reasons` rows
    lapses : ``customer_id``, ``ended_at`` aligned with ``reasons``
    cutoff : the models' training cut-off
    days_lapsed : one per row, measured at the row's ``at``
    at : the time each row is scored (one, or one per row)
    evidence : subset of :data:`~winback_ml.cohort.reasons.REASON_EVIDENCE`
        (a name outside it is a ConfigError, not silently skipped)

    Returns
    -------
    DataFrame like ``reasons``; ``attrs["evidence_used"]`` names the evidence that was
    weighed (``"interviews"`` only when some inferred row had a trusted interview to read).
    """
    from winback_ml.cohort.reasons import (
        InterviewReasonModel,
        ReasonReturnCurves,
        refine_reasons,
    )

    evidence = check_reason_evidence(evidence)
    if not evidence or not len(reasons):
        out = reasons.copy()
        out.attrs["evidence_used"] = ()
        return out
    curves = ReasonReturnCurves().fit(episodes, cutoff) if "days_lapsed" in evidence else None
    ratio = None
    if "interviews" in evidence:
        iv = data.table("interviews") if hasattr(data, "table") else dict(data).get("interviews")
        ivm = InterviewReasonModel()
        inferred = (reasons["reason_rule"] == "classifier").to_numpy()
        # fit only when some inferred row has a trusted interview to read
        if iv is not None and len(iv) and (ivm.interviewed(iv, lapses, at) & inferred).any():
            ivm.fit(iv, episodes, cutoff)
            if ivm.fitted_:
                ratio = ivm.ratios_for(iv, lapses, at)
    out = refine_reasons(reasons, days_lapsed if curves is not None else None, curves, ratio)
    used = ("days_lapsed",) if curves is not None else ()
    out.attrs["evidence_used"] = used + (("interviews",) if ratio is not None else ())
    return out


def check_reason_evidence(evidence: Any) -> tuple[str, ...]:
    """``evidence`` as a tuple of names of :data:`~winback_ml.cohort.reasons.REASON_EVIDENCE`.

    Raises
    ------
    ConfigError
        For a single string (``"interviews"`` is not ``("interviews",)``) or an unknown name.
    """
    if evidence is None:
        return ()
    if isinstance(evidence, str):
        raise ConfigError(
            f"reason_evidence must be a tuple of names from {list(REASON_EVIDENCE)}, not the "
            f"string {evidence!r}. Write ({evidence!r},)."
        )
    ev = tuple(evidence)
    bad = sorted({str(e) for e in ev} - set(REASON_EVIDENCE))
    if bad:
        raise ConfigError(
            f"reason_evidence must be a subset of {list(REASON_EVIDENCE)}. Got {bad}; fix the "
            "name or pass () for no evidence."
        )
    return ev


def offer_features(
    frame: pd.DataFrame,
    reasons: pd.DataFrame | None = None,
    behaviour: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Model inputs of customers (cohort rows or campaign assignments).

    Parameters
    ----------
    frame : DataFrame
        ``days_lapsed``, ``can_email``, ``can_sms``, ``source``, ``mrr``,
        ``billing_interval``, ``lapse_number``; optional
        ``acquisition_channel`` and ``plan_tier``; and either ``p_<reason>``
        columns or ``cancel_reason``.
    reasons : DataFrame, optional
        :func:`winback_ml.cohort.reasons.infer_reasons` output aligned with
        ``frame`` (its ``p_<reason>`` columns are used).
    behaviour : DataFrame, optional
        Rows of :func:`winback_ml.cohort.reasons.reason_features` of each
        row's lapse, aligned with ``frame`` (dated at or before the lapse's
        end): ``minutes_per_session`` (how engrossed the customer was),
        ``feature_requests_per_month``, ``min_paid_ratio`` (paid a discounted
        price before), ``usage_available``, ``tickets_available``. Without it
        (or without the usage / tickets tables) those covariates are NaN and
        the model reads them as the training average.

    Returns
    -------
    DataFrame aligned with ``frame``: ``p_<reason>`` for every reason,
    ``days_lapsed``, ``can_email``, ``can_sms``, ``app_customer`` and the raw
    covariates of :data:`Z_FEATURES`.
    """
    need = ["days_lapsed", "can_email", "can_sms", "source", "mrr", "billing_interval"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ModelError(
            f"offer_features needs columns {need}; missing {missing}. "
            "Fix: pass the lapsed cohort (build_lapsed_cohort) or offer_training_frame output."
        )
    out = pd.DataFrame(index=frame.index)
    src = reasons if reasons is not None else frame
    pcols = [f"p_{r}" for r in REASONS]
    if all(c in src.columns for c in pcols):
        P = src[pcols].to_numpy(float)
        if reasons is not None:
            P = P.reshape(len(frame), len(REASONS))
    elif "cancel_reason" in src.columns:
        r = src["cancel_reason"].astype(object).to_numpy()
        P = np.column_stack([(r == k).astype(float) for k in REASONS])
    else:
        raise ModelError("offer_features needs p_<reason> columns or 'cancel_reason'.")
    s = P.sum(axis=1, keepdims=True)
    P = np.where(s > 0, P / np.where(s > 0, s, 1), 1.0 / len(REASONS))  # unknown -> uniform
    for j, c in enumerate(pcols):
        out[c] = P[:, j]
    out["days_lapsed"] = frame["days_lapsed"].astype(float).to_numpy()
    out["can_email"] = frame["can_email"].fillna(False).astype(float).to_numpy()
    out["can_sms"] = frame["can_sms"].fillna(False).astype(float).to_numpy()
    out["app_customer"] = frame["source"].isin(_APP_SOURCES).astype(float).to_numpy()
    out["log_mrr"] = np.log1p(frame["mrr"].astype(float).fillna(0.0).to_numpy())
    out["yearly"] = (frame["billing_interval"] == "year").astype(float).to_numpy()
    acq = (
        frame["acquisition_channel"]
        if "acquisition_channel" in frame
        else pd.Series("", index=frame.index)
    )
    out["coupon"] = (acq == "coupon_site").astype(float).to_numpy()
    ln = frame["lapse_number"] if "lapse_number" in frame else pd.Series(1, index=frame.index)
    out["returned_before"] = (ln.astype(float) > 1).astype(float).to_numpy()
    tier = frame["plan_tier"] if "plan_tier" in frame else pd.Series(np.nan, index=frame.index)
    out["basic_tier"] = np.where(tier.isna(), np.nan, (tier == "basic").astype(float))
    n = len(frame)
    b = behaviour if behaviour is not None else frame

    def col(name: str) -> np.ndarray:
        if name not in b.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(pd.Series(b[name].to_numpy()), errors="coerce").to_numpy(float)

    usage = col("usage_available") > 0 if "usage_available" in b.columns else np.ones(n, bool)
    tickets = col("tickets_available") > 0 if "tickets_available" in b.columns else np.ones(n, bool)
    mps = col("minutes_per_session")
    out["log_minutes_per_session"] = np.where(
        usage & (mps > 0), np.log(np.maximum(mps, 1e-9)), np.nan
    )
    out["feature_requests"] = np.where(
        tickets, np.log1p(12.0 * col("feature_requests_per_month")), np.nan
    )
    mpr = col("min_paid_ratio")
    out["discounted_before"] = np.where(np.isnan(mpr), np.nan, (mpr < 0.995).astype(float))
    return out


def offer_training_frame(
    data: Any,
    as_of: Any,
    attribution_window_days: int = 30,
    episodes: pd.DataFrame | None = None,
    reason_classifier: Any = None,
    features: pd.DataFrame | None = None,
    reason_refit: str = "Q",
    misreport: float = MISREPORT_PRIOR,
    reason_evidence: tuple[str, ...] = REASON_EVIDENCE,
) -> pd.DataFrame:
    """One row per past campaign assignment with the customer's state at assignment.

    The lapse of each assignment is the customer's latest lapse ended at or
    before ``assigned_at``. Its reason is what could be known *at the
    assignment*: the stated one, or the probabilities of a reason classifier
    fitted only on lapses that ended (with a stated reason) before the
    assignment, applied to features dated at or before the lapse's end. The
    classifier is refitted at the start of each period of ``reason_refit``
    (a pandas period alias, default quarters ``"Q"``): an assignment uses
    the one fitted at the latest period start at or before its
    ``assigned_at``, so a row never depends on the run date or on anything
    that happened after its assignment. With fewer stated lapses than the
    classifier needs before a period start, unstated reasons of that period
    stay ``unknown`` (uniform probabilities; counted in
    ``attrs["reasons_without_model"]``). Outcome:
    :func:`winback_ml.models.uplift_campaigns.build_campaign_outcomes`.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    as_of : the run date; assignments whose window is not over are left out
    attribution_window_days : int
    episodes : lapse episodes as of ``as_of`` (built when None)
    reason_classifier : ReasonClassifier, optional
        Template of the classifier (its parameters are used; a fitted one is
        cloned and refitted per period, never used as is: it may have learnt
        from lapses after an assignment).
    features : DataFrame, optional
        :func:`winback_ml.cohort.reasons.reason_features` of ``episodes``
        (built when None).
    reason_refit : str
        Pandas period alias of the classifier's refits (``"Q"``, ``"M"``, ...).
    misreport : float
        Prior share of wrong stated reasons (:func:`reason_posterior`; 0 keeps
        stated reasons one-hot).
    reason_evidence : tuple of str
        Evidence after the lapse that refines inferred reasons
        (:func:`refine_with_evidence`), as known at the assignment: return
        curves and interview model fitted up to the refit date, days lapsed
        at the assignment, interviews answered by it. Empty: none.

    Returns
    -------
    DataFrame
        The assignment and arm columns, ``reactivated``, ``revenue``,
        ``lapse_id``, ``days_lapsed`` (at assignment), ``reason_cutoff`` (the
        classifier's training cut-off) and the columns of
        :func:`offer_features`; ``attrs["dropped"]`` counts assignments with
        no lapse before them (left out).
    """
    from sklearn.base import clone

    from winback_ml.cohort import build_lapse_episodes
    from winback_ml.cohort.reasons import (
        ReasonClassifier,
        infer_reasons,
        reason_features,
        reason_training_set,
    )
    from winback_ml.models.uplift_campaigns import build_campaign_outcomes

    reason_evidence = check_reason_evidence(reason_evidence)
    out = build_campaign_outcomes(data, as_of, attribution_window_days)
    if out.empty:
        return out
    eps = build_lapse_episodes(data, as_of) if episodes is None else episodes
    e = eps[["customer_id", "lapse_id", "ended_at"]].sort_values("ended_at", kind="mergesort")
    o = out.sort_values("assigned_at", kind="mergesort").reset_index(drop=True)
    m = pd.merge_asof(
        o, e, left_on="assigned_at", right_on="ended_at", by="customer_id", direction="backward"
    )
    dropped = int(m["lapse_id"].isna().sum())
    m = m[m["lapse_id"].notna()].reset_index(drop=True)
    ep = eps.set_index("lapse_id")
    for c in ("source", "mrr", "billing_interval", "lapse_number", "plan_tier"):
        m[c] = m["lapse_id"].map(ep[c])
    m["days_lapsed"] = (m["assigned_at"] - m["ended_at"]).dt.total_seconds() / 86400.0
    tables = data.tables() if hasattr(data, "tables") else dict(data)
    cust = tables["customers"].drop_duplicates("customer_id").set_index("customer_id")
    m["can_email"] = (
        m["customer_id"].map(cust["email_opt_in"] & cust["email"].notna()).fillna(False)
    )
    m["can_sms"] = m["customer_id"].map(cust["sms_opt_in"] & cust["phone"].notna()).fillna(False)
    m["acquisition_channel"] = m["customer_id"].map(cust["acquisition_channel"])
    feats = reason_features(data, eps, as_of) if features is None else features
    # the reason as known at each assignment: a classifier fitted on stated lapses ended by the
    # latest refit date at or before the assignment (never the run date's classifier)
    try:
        cut = m["assigned_at"].dt.to_period(reason_refit).dt.start_time
    except (ValueError, TypeError, AttributeError) as e:
        raise ConfigError(
            "The 'reason_refit' parameter must be a pandas period alias such as 'Q' "
            f"(quarters) or 'M' (months). Got {reason_refit!r} instead ({e})."
        ) from e
    m["reason_cutoff"] = cut
    template = reason_classifier if reason_classifier is not None else ReasonClassifier()
    X_all, y_all = reason_training_set(feats)
    parts: list[pd.DataFrame] = []
    without_model = 0
    fx = feats.drop_duplicates("lapse_id").set_index("lapse_id")
    for c in sorted(cut.unique()):
        rows = np.flatnonzero((cut == c).to_numpy())
        known = (X_all["ended_at"] <= c).to_numpy()
        clf = None
        if known.sum() >= 30 and y_all[known].nunique() >= 2:
            clf = clone(template).fit(X_all[known], y_all[known])
        sub = m.iloc[rows][["customer_id", "lapse_id"]]
        r = infer_reasons(
            data, sub, as_of, classifier=clf, episodes=eps, features=feats, min_train=10**12
        )
        if misreport:
            r = reason_posterior(r, clf, fx.loc[sub["lapse_id"].to_numpy()], misreport)
        if reason_evidence and clf is not None:
            part = m.iloc[rows]
            r = refine_with_evidence(
                data,
                eps,
                r,
                part[["customer_id", "ended_at"]],
                c,
                part["days_lapsed"].to_numpy(float),
                part["assigned_at"].to_numpy(),
                reason_evidence,
            )
        r.index = rows
        without_model += int((r["reason_rule"] == "no_model").sum())
        parts.append(r)
    rs = pd.concat(parts).sort_index()
    feats_o = offer_features(m, rs.reset_index(drop=True), behaviour=behaviour_rows(feats, m))
    m = pd.concat([m, feats_o.drop(columns=[c for c in feats_o.columns if c in m.columns])], axis=1)
    m["cancel_reason"] = rs["cancel_reason"].to_numpy()
    m["reason_source"] = rs["reason_source"].to_numpy()
    m.attrs["dropped"] = dropped
    m.attrs["reasons_without_model"] = without_model
    m.attrs["reason_classifier"] = None
    return m


def behaviour_rows(features: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`reason_features` (by ``lapse_id``) aligned with ``frame``."""
    f = features.drop_duplicates("lapse_id").set_index("lapse_id")
    cols = [c for c in _BEHAVIOUR_COLUMNS if c in f.columns]
    return f.reindex(frame["lapse_id"].to_numpy())[cols].reset_index(drop=True)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


class StructuredOfferResponseModel:
    """Penalised-likelihood offer-response model (see the module docstring).

    Parameters
    ----------
    penalty_reason : float
        L2 penalty on the reason deviations ``b`` (pooling to the offer type).
    penalty_beta : float
        L2 penalty on covariate effects and on ``gamma``.
    min_type_rows : int
        An offer type (or channel) tried on fewer assignments is "untried":
        its predictions are NaN.
    max_iter : int
    z_features : tuple of str, optional
        Covariates of the response (standardised; missing = the training
        average). Default :data:`Z_FEATURES`.
    beta_by_type : bool
        One covariate vector per offer type; default False: one per group of
        ``beta_groups``.
    prior_pairs : dict reason -> offer type, optional
        Prior belief (e.g. the reason playbook) that this offer type works
        better for this reason: its deviation ``b`` shrinks towards
        ``prior_log_lift`` instead of 0. The data override it; the prior only
        matters where a reason has few customers.
    prior_log_lift : float
        The prior's log response ratio (1.5: about 4.5 times the type's average).
    penalty_reach : float
        L2 penalty pulling the reach logits of e-mail, SMS and in-app (for app
        customers) towards ``logit(reach_prior)`` (or their mean).
    calibrate_base : bool
        Recalibrate ``p0`` on the control arms (see the module docstring).
    reach_prior : float or None
        Reach that the channels' logits shrink towards (None: their mean).
    dose_prior : (float, float)
        Prior discount depth scale ``kappa`` (percent) and length scale
        ``tau`` (months).
    penalty_dose : float
        L2 penalty on ``log kappa``, ``log tau`` around the prior.
    beta_groups : dict offer type -> group name, optional
        Offer types sharing covariate effects (default :data:`BETA_GROUPS`);
        types not named form one more group.
    type_covariates : dict offer type -> covariate names, optional
        Covariates whose effect on that offer type may deviate from its
        group's: one coefficient each, added to the group's and shrunk to 0
        with ``penalty_beta`` (default :data:`TYPE_COVARIATES`: feature
        requests for the feature trial). A name that is not among
        ``z_features`` is skipped; none with ``beta_by_type``.
    """

    def __init__(
        self,
        penalty_reason: float = 2.0,
        penalty_beta: float = 2.0,
        min_type_rows: int = 30,
        max_iter: int = 500,
        z_features: tuple[str, ...] | None = None,
        beta_by_type: bool = False,
        prior_pairs: dict[str, str] | None = None,
        prior_log_lift: float = 1.5,
        penalty_reach: float = 2.0,
        calibrate_base: bool = True,
        reach_prior: float | None = 0.5,
        dose_prior: tuple[float, float] = (20.0, 2.0),
        penalty_dose: float = 2.0,
        beta_groups: dict[str, str] | None = None,
        type_covariates: dict[str, tuple[str, ...]] | None = TYPE_COVARIATES,
    ) -> None:
        self.penalty_reason = penalty_reason
        self.penalty_beta = penalty_beta
        self.min_type_rows = min_type_rows
        self.max_iter = max_iter
        self.z_features = z_features
        self.beta_by_type = beta_by_type
        self.prior_pairs = prior_pairs
        self.prior_log_lift = prior_log_lift
        self.penalty_reach = penalty_reach
        self.calibrate_base = calibrate_base
        self.reach_prior = reach_prior
        self.dose_prior = dose_prior
        self.penalty_dose = penalty_dose
        self.beta_groups = beta_groups
        self.type_covariates = type_covariates

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "penalty_reason": self.penalty_reason,
            "penalty_beta": self.penalty_beta,
            "min_type_rows": self.min_type_rows,
            "max_iter": self.max_iter,
            "z_features": self.z_features,
            "beta_by_type": self.beta_by_type,
            "prior_pairs": self.prior_pairs,
            "prior_log_lift": self.prior_log_lift,
            "penalty_reach": self.penalty_reach,
            "calibrate_base": self.calibrate_base,
            "reach_prior": self.reach_prior,
            "dose_prior": self.dose_prior,
            "penalty_dose": self.penalty_dose,
            "beta_groups": self.beta_groups,
            "type_covariates": self.type_covariates,
        }

    def set_params(self, **params: Any) -> StructuredOfferResponseModel:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    # ------------------------------------------------------------------ layout
    _nR, _nT = len(REASONS), len(OFFER_TYPES_CONTACT)

    @property
    def _zcols(self) -> tuple[str, ...]:
        return tuple(self.z_features) if self.z_features is not None else Z_FEATURES

    @property
    def _nZ(self) -> int:
        return len(self._zcols)

    def _group_of_type(self) -> np.ndarray:
        """Covariate group of each offer type (index into the rows of ``beta``)."""
        if self.beta_by_type:
            return np.arange(self._nT)
        groups = self.beta_groups if self.beta_groups is not None else BETA_GROUPS
        names = sorted(set(groups.values()))
        other = len(names)
        return np.array(
            [names.index(groups[t]) if t in groups else other for t in OFFER_TYPES_CONTACT]
        )

    @property
    def _nG(self) -> int:
        return int(self._group_of_type().max()) + 1

    def _type_cov(self) -> list[tuple[int, int]]:
        """(offer type index, covariate index) of each type-specific deviation."""
        out = []
        if self.beta_by_type:  # every type has its own vector already
            return out
        for t, cols in (self.type_covariates or {}).items():
            if t not in OFFER_TYPES_CONTACT:
                raise ConfigError(
                    f"type_covariates names the offer type {t!r}. Fix: use one of "
                    f"{list(OFFER_TYPES_CONTACT)}."
                )
            for c in cols:
                if c not in self._zcols:
                    # a covariate left out of z_features has no deviation either
                    continue
                out.append((list(OFFER_TYPES_CONTACT).index(t), list(self._zcols).index(c)))
        return out

    def _group(self, X: dict[str, np.ndarray]) -> np.ndarray:
        return self._group_of_type()[X["t"]]

    def _slices(self) -> dict[str, slice]:
        nR, nT, nZ = self._nR, self._nT, self._nZ
        sizes = [
            ("a", nT),
            ("b", nR * nT),
            ("kappa", 1),
            ("tau", 1),
            ("rho", 4),
            ("gamma", 1),
            ("beta", self._nG * nZ),
            ("delta", len(self._type_cov())),
            ("c", (1 + nZ) if self.calibrate_base else 0),
        ]
        out, i = {}, 0
        for k, s in sizes:
            out[k] = slice(i, i + s)
            i += s
        out["_n"] = slice(0, i)
        return out

    def _zraw(self, F: pd.DataFrame) -> np.ndarray:
        # a covariate column that is absent (an older feature frame, no usage table) is NaN:
        # it reads as the training average, never as a made-up value
        cols = [
            F[c].astype(float).to_numpy() if c in F.columns else np.full(len(F), np.nan)
            for c in self._zcols
        ]
        return np.column_stack(cols) if cols else np.zeros((len(F), 0))

    def _z(self, F: pd.DataFrame) -> np.ndarray:
        # a missing covariate (no usage or tickets table, no plan tier) reads as the average
        return np.nan_to_num((self._zraw(F) - self.z_mean_) / self.z_std_, nan=0.0)

    @staticmethod
    def _design(
        F: pd.DataFrame,
        offer_type: np.ndarray,
        pct: np.ndarray,
        months: np.ndarray,
        channel: np.ndarray,
    ) -> dict[str, np.ndarray]:
        t_idx = np.array([OFFER_TYPES_CONTACT.index(t) for t in offer_type])
        ch = np.asarray(channel, dtype=object)
        return {
            "P": F[[f"p_{r}" for r in REASONS]].to_numpy(float),
            "t": t_idx,
            "pct": np.asarray(pct, float),
            "mon": np.asarray(months, float),
            "is_disc": (np.asarray(offer_type, dtype=object) == "discount"),
            "ch": ch,
            "ce": F["can_email"].to_numpy(float),
            "cs": F["can_sms"].to_numpy(float),
            "app": F["app_customer"].to_numpy(float),
            "d": F["days_lapsed"].to_numpy(float) / 100.0,
            "treated": np.ones(len(F)),
        }

    def _v_parts(
        self, theta: np.ndarray, X: dict[str, np.ndarray], z: np.ndarray
    ) -> dict[str, np.ndarray]:
        s = self._slices()
        nR, nT, nZ = self._nR, self._nT, self._nZ
        a = theta[s["a"]]
        b = theta[s["b"]].reshape(nR, nT)
        kappa = np.exp(theta[s["kappa"]][0])
        tau = np.exp(theta[s["tau"]][0])
        rho = theta[s["rho"]]
        gamma = theta[s["gamma"]][0]
        beta = theta[s["beta"]].reshape(self._nG, nZ)
        n = len(X["t"])
        Rm = np.exp(a[None, :] + b)  # (nR, nT)
        contrib = X["P"] * Rm[:, X["t"]].T  # (n, nR)
        S = contrib.sum(axis=1)
        ep = np.exp(-X["pct"] / kappa)
        em = np.exp(-X["mon"] / tau)
        D = np.where(X["is_disc"], (1 - ep) * (1 - em), 1.0)
        se, ss = _sigmoid(rho[0]), _sigmoid(rho[1])
        sa = _sigmoid(rho[2] + rho[3] * X["app"])
        re, rs = X["ce"] * se, X["cs"] * ss
        ch = X["ch"]
        reach = np.select(
            [ch == "email", ch == "sms", ch == "in_app", ch == "multi"],
            [re, rs, sa, 1 - (1 - re) * (1 - rs)],
            default=0.0,
        )
        g = self._group(X)
        lin = -gamma * X["d"] + np.einsum("ij,ij->i", z, beta[g])
        delta = theta[s["delta"]]
        for k, (ti, ci) in enumerate(self._type_cov()):
            lin = lin + (X["t"] == ti) * z[:, ci] * delta[k]
        E = np.exp(np.clip(lin, -30, 30))
        v = reach * S * D * E * X["treated"]
        return dict(
            v=v,
            S=S,
            contrib=contrib,
            D=D,
            ep=ep,
            em=em,
            kappa=kappa,
            tau=tau,
            se=se,
            ss=ss,
            sa=sa,
            re=re,
            rs=rs,
            reach=reach,
            E=E,
            g=g,
            n=np.array(n),
        )

    def _nll(
        self,
        theta: np.ndarray,
        X: dict[str, np.ndarray],
        z: np.ndarray,
        y: np.ndarray,
        p0: np.ndarray,
    ) -> tuple[float, np.ndarray]:
        s = self._slices()
        nR, nT, nZ = self._nR, self._nT, self._nZ
        q = self._v_parts(theta, X, z)
        v = q["v"]
        ev, dev = self._survive(v)
        p0 = self._base(theta, z, p0)
        p = 1 - (1 - p0) * ev
        p = np.clip(p, 1e-12, 1 - 1e-12)
        ll = y * np.log(p) + (1 - y) * np.log(1 - p)
        dl_dp = y / p - (1 - y) / (1 - p)
        w = -dl_dp * (1 - p0) * dev  # dNLL/dv
        grad = np.zeros_like(theta)
        if self.calibrate_base:
            g_eta = -dl_dp * ev * p0 * (1 - p0)
            cs = s["c"].start
            grad[cs] = g_eta.sum()
            grad[cs + 1 : s["c"].stop] = z.T @ g_eta
        wv = w * v
        # a, b
        ga = np.bincount(X["t"], weights=wv, minlength=nT)
        share = np.divide(
            q["contrib"],
            q["S"][:, None],
            out=np.zeros_like(q["contrib"]),
            where=q["S"][:, None] > 0,
        )
        gb = np.zeros((nR, nT))
        for t in range(nT):
            m = X["t"] == t
            if m.any():
                gb[:, t] = (wv[m, None] * share[m]).sum(axis=0)
        grad[s["a"]] = ga
        grad[s["b"]] = gb.ravel()
        # kappa, tau (discount rows only)
        dm = X["is_disc"]
        with np.errstate(divide="ignore", invalid="ignore"):
            xk = X["pct"] / q["kappa"]
            dlogD_k = np.where(dm, -q["ep"] * xk / (1 - q["ep"]), 0.0)
            xt = X["mon"] / q["tau"]
            dlogD_t = np.where(dm, -q["em"] * xt / (1 - q["em"]), 0.0)
        grad[s["kappa"]] = np.nansum(wv * dlogD_k)
        grad[s["tau"]] = np.nansum(wv * dlogD_t)
        # reach
        rest = np.divide(v, q["reach"], out=np.zeros_like(v), where=q["reach"] > 0)
        ch = X["ch"]
        de = X["ce"] * q["se"] * (1 - q["se"])
        ds = X["cs"] * q["ss"] * (1 - q["ss"])
        da = q["sa"] * (1 - q["sa"])
        dr_e = np.select([ch == "email", ch == "multi"], [de, de * (1 - q["rs"])], default=0.0)
        dr_s = np.select([ch == "sms", ch == "multi"], [ds, ds * (1 - q["re"])], default=0.0)
        dr_a = np.where(ch == "in_app", da, 0.0)
        rho_s = s["rho"].start
        grad[rho_s] = np.sum(w * rest * dr_e)
        grad[rho_s + 1] = np.sum(w * rest * dr_s)
        grad[rho_s + 2] = np.sum(w * rest * dr_a)
        grad[rho_s + 3] = np.sum(w * rest * dr_a * X["app"])
        grad[s["gamma"]] = np.sum(wv * -X["d"])
        gbeta = np.zeros((self._nG, nZ))
        for gi in range(self._nG):
            m = q["g"] == gi
            if m.any():
                gbeta[gi] = (wv[m, None] * z[m]).sum(axis=0)
        grad[s["beta"]] = gbeta.ravel()
        gd = np.zeros(len(self._type_cov()))
        for k, (ti, ci) in enumerate(self._type_cov()):
            gd[k] = np.sum(wv * (X["t"] == ti) * z[:, ci])
        grad[s["delta"]] = gd
        # penalties: b shrinks to its prior (0, or prior_log_lift for a prior pair);
        # the reach of e-mail, SMS and in-app (for app customers) shrink to their mean
        b = theta[s["b"]] - self._b_prior()
        rho = theta[s["rho"]]
        x = np.array([rho[0], rho[1], rho[2] + rho[3]])
        ref = (
            x.mean()
            if self.reach_prior is None
            else np.log(self.reach_prior / (1 - self.reach_prior))
        )
        dx = 2 * self.penalty_reach * (x - ref)
        grad[rho_s] += dx[0]
        grad[rho_s + 1] += dx[1]
        grad[rho_s + 2] += dx[2]
        grad[rho_s + 3] += dx[2]
        beta = theta[s["beta"]]
        gam = theta[s["gamma"]]
        pen = (
            self.penalty_reach * np.sum((x - ref) ** 2)
            + self.penalty_reason * np.sum(b**2)
            + self.penalty_beta * (np.sum(beta**2) + np.sum(gam**2))
            + 0.01 * np.sum(theta[s["a"]] ** 2)
        )
        grad[s["b"]] += 2 * self.penalty_reason * b
        grad[s["beta"]] += 2 * self.penalty_beta * beta
        dl = theta[s["delta"]]
        pen += self.penalty_beta * np.sum(dl**2)
        grad[s["delta"]] += 2 * self.penalty_beta * dl
        grad[s["gamma"]] += 2 * self.penalty_beta * gam
        grad[s["a"]] += 0.02 * theta[s["a"]]
        # the dose-response scales shrink (log scale) towards the prior depth / length scales
        for k, prior in zip(("kappa", "tau"), self.dose_prior, strict=True):
            dev = theta[s[k]][0] - np.log(prior)
            pen += self.penalty_dose * dev**2
            grad[s[k]] += 2 * self.penalty_dose * dev
        if self.calibrate_base:
            c = theta[s["c"]][1:]
            pen += self.penalty_beta * np.sum(c**2)
            grad[s["c"].start + 1 : s["c"].stop] += 2 * self.penalty_beta * c
        return float(-ll.sum() + pen), grad

    def _base(self, theta: np.ndarray, z: np.ndarray, p0: np.ndarray) -> np.ndarray:
        """P(return | no contact): the base model's ``p0``, recalibrated on the control arms."""
        if not self.calibrate_base:
            return p0
        c = theta[self._slices()["c"]]
        q = np.clip(p0, 1e-6, 1 - 1e-6)
        return _sigmoid(np.log(q / (1 - q)) + c[0] + z @ c[1:])

    @staticmethod
    def _survive(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``1 - u = exp(-v)`` (the contact does not convert) and ``-d(1 - u)/dv``."""
        ev = np.exp(-v)
        return ev, ev

    def _b_prior(self) -> np.ndarray:
        prior = np.zeros((self._nR, self._nT))
        for r, t in (self.prior_pairs or {}).items():
            if r in REASONS and t in OFFER_TYPES_CONTACT:
                prior[REASONS.index(r), OFFER_TYPES_CONTACT.index(t)] = self.prior_log_lift
        return prior.ravel()

    # ------------------------------------------------------------------ API
    def fit(self, frame: pd.DataFrame, p0: np.ndarray) -> StructuredOfferResponseModel:
        """Fit on :func:`offer_training_frame` rows; ``p0`` = P(return | no contact) of each row."""
        need = [
            "is_control",
            "offer_type",
            "discount_pct",
            "discount_months",
            "channel",
            "reactivated",
        ]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise ModelError(
                f"StructuredOfferResponseModel.fit needs columns {need}; missing {missing}."
            )
        p0 = np.clip(np.asarray(p0, dtype=float), 0.0, 0.999)
        if p0.shape != (len(frame),) or np.any(~np.isfinite(p0)):
            raise ModelError("p0 must hold one finite probability per training row.")
        ctl = frame["is_control"].astype(bool).to_numpy()
        if ctl.sum() == 0:
            raise ModelError(
                "The campaign history has no control (not contacted) customers, so no offer's effect "
                "can be told apart from natural returns. Fix: keep a randomized control arm."
            )
        tr = frame[~ctl]
        counts = tr["offer_type"].value_counts()
        self.tried_types_ = sorted(
            t for t in OFFER_TYPES_CONTACT if counts.get(t, 0) >= self.min_type_rows
        )
        chc = tr["channel"].value_counts()
        self.tried_channels_ = sorted(c for c in CHANNELS if chc.get(c, 0) >= self.min_type_rows)
        disc = tr[tr["offer_type"] == "discount"]
        self.discount_range_ = (
            (float(disc["discount_pct"].min()), float(disc["discount_pct"].max()))
            if len(disc)
            else (0.0, 0.0)
        )
        self.months_range_ = (
            (float(disc["discount_months"].min()), float(disc["discount_months"].max()))
            if len(disc)
            else (0.0, 0.0)
        )
        fit_rows = frame if self.calibrate_base else tr
        treated = ~ctl if self.calibrate_base else np.ones(len(tr), bool)
        raw = self._zraw(fit_rows)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        self.z_mean_ = np.nan_to_num(mean, nan=0.0)
        self.z_std_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        y = fit_rows["reactivated"].to_numpy(float)
        X = self._design(
            fit_rows,
            fit_rows["offer_type"].to_numpy(object),
            fit_rows["discount_pct"].to_numpy(float),
            fit_rows["discount_months"].to_numpy(float),
            fit_rows["channel"].to_numpy(object),
        )
        X["treated"] = treated.astype(float)
        z = self._z(fit_rows)
        s = self._slices()
        theta0 = np.zeros(s["_n"].stop)
        theta0[s["a"]] = np.log(0.05)
        theta0[s["kappa"]] = np.log(15.0)
        theta0[s["tau"]] = np.log(2.0)
        res = minimize(
            self._nll,
            theta0,
            args=(X, z, y, p0 if self.calibrate_base else p0[~ctl]),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        if not np.all(np.isfinite(res.x)):
            raise ModelError(f"The offer-response model did not converge: {res.message}")
        self.theta_ = res.x
        self.converged_ = bool(res.success)
        self.n_train_ = int(len(tr))
        self.n_control_ = int(ctl.sum())
        self.nll_ = float(res.fun)
        return self

    def _check(self) -> None:
        if not hasattr(self, "theta_"):
            raise NotFittedError(
                "This StructuredOfferResponseModel is not fitted yet. Call 'fit' first."
            )

    def response_table(self) -> pd.DataFrame:
        """``R[reason, offer type]``: fitted response of a fully reached customer (untried types NaN)."""
        self._check()
        s = self._slices()
        a = self.theta_[s["a"]]
        b = self.theta_[s["b"]].reshape(self._nR, self._nT)
        R = pd.DataFrame(
            np.exp(a[None, :] + b), index=list(REASONS), columns=list(OFFER_TYPES_CONTACT)
        )
        for t in OFFER_TYPES_CONTACT:
            if t not in self.tried_types_:
                R[t] = np.nan
        return R

    @property
    def reach_(self) -> dict[str, float]:
        self._check()
        rho = self.theta_[self._slices()["rho"]]
        return {
            "email": float(_sigmoid(rho[0])),
            "sms": float(_sigmoid(rho[1])),
            "in_app_other": float(_sigmoid(rho[2])),
            "in_app_app_customer": float(_sigmoid(rho[2] + rho[3])),
        }

    def predict_return_probability(
        self,
        features: pd.DataFrame,
        offer: Offer,
        channel: str,
        p0: np.ndarray,
        base_calibrated: bool = False,
    ) -> np.ndarray:
        """P(return within the attribution window | contacted with ``offer`` on ``channel``).

        ``features`` from :func:`offer_features`; ``p0`` aligned with it: the
        base return model's P(return | no contact), or, with
        ``base_calibrated=True``, that probability already recalibrated
        (:meth:`expected_base_probability`, the targets' ``p_return_base``).
        NaN for an offer type or channel the history never tried.
        """
        self._check()
        n = len(features)
        p0 = np.asarray(p0, dtype=float)
        if offer.offer_type not in self.tried_types_ or channel not in self.tried_channels_:
            return np.full(n, np.nan)
        pct = (
            float(np.clip(offer.discount_pct, *self.discount_range_))
            if offer.offer_type == "discount"
            else float(offer.discount_pct)
        )
        mon = (
            float(np.clip(offer.discount_months, *self.months_range_))
            if offer.offer_type == "discount"
            else float(offer.discount_months)
        )
        X = self._design(
            features,
            np.full(n, offer.offer_type, dtype=object),
            np.full(n, pct),
            np.full(n, mon),
            np.full(n, channel, dtype=object),
        )
        z = self._z(features)
        v = self._v_parts(self.theta_, X, z)["v"]
        base = p0 if base_calibrated else self._base(self.theta_, z, p0)
        return 1 - (1 - base) * self._survive(v)[0]

    def expected_base_probability(self, features: pd.DataFrame, p0: np.ndarray) -> np.ndarray:
        """P(return | no contact) after the recalibration on the control arms (``p0`` as is
        when ``calibrate_base`` is False)."""
        self._check()
        return self._base(self.theta_, self._z(features), np.asarray(p0, dtype=float))
