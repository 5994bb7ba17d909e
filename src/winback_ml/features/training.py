"""Training and scoring frames of the return and churn models.

Return (one row per lapse, from
:func:`winback_ml.cohort.episodes.build_lapse_episodes`):

* :func:`build_return_training_frame`: every lapse at or before ``as_of``;
  features as of the lapse (``at = ended_at``); ``duration_days`` = days to
  the return or to ``as_of`` (censored), ``event`` = returned; ``reason`` =
  the reason known for *that* lapse (:func:`lapse_reasons`): stated on it, else
  inferred by the cohort stage's classifier from that lapse's own behaviour
  (rows dated up to its end), with the ``p_<reason>`` probabilities; a reason
  given per customer describes the customer's latest lapse only.
* :func:`build_return_scoring_frame`: every customer lapsed and not returned
  at ``as_of`` (their latest lapse), same features as of the lapse, plus
  ``days_lapsed`` (days since the lapse at ``as_of``), on which the return
  probability is conditioned.
* The churn-only features (:data:`~winback_ml.features.point_in_time.CHURN_ONLY_FEATURES`:
  the running subscription's usage trajectory and failures per renewal attempt)
  are left out of both return frames.
* Interviews happen 30-90 days *after* a lapse. The answers of the lapse's
  own trusted interview (``offer_interest``, ``leave_strength``) are features
  of the lapse; a training row whose interview came ``entry_days`` after the
  lapse enters observation then (delayed entry: it is known only because the
  customer had not returned by then), which keeps the likelihood free of
  immortal-time bias. Scoring uses the interview when it was answered by
  ``as_of``. So a return frame's row reads data up to ``at + entry_days``
  (training) or ``as_of`` (scoring), never later.

Churn (one row per active customer and snapshot date):

* :func:`build_churn_training_frame`: snapshots at ``as_of - k * spacing_days``
  (k = 1..n); a customer is active at a snapshot when they had started a
  subscription by then and were not in a lapse; features as of the snapshot;
  ``duration_days`` = days to the next lapse or to ``as_of`` (censored),
  ``event`` = lapsed by ``as_of``.
* :func:`build_churn_scoring_frame`: active customers at ``as_of``,
  features as of ``as_of``.

Invariants: ``at`` is the feature date of each row and nothing dated after
it enters its features; outcome columns (``duration_days``, ``event``) use
data up to ``as_of`` only; no PII column is ever present; timestamps are
tz-naive UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.data.loader import ContractData, cut_as_of, to_timestamp
from winback_ml.exceptions import ConfigError, DataContractError
from winback_ml.features.point_in_time import (
    CHURN_ONLY_FEATURES,
    as_contract_data,
    build_customer_features,
)

__all__ = [
    "build_return_training_frame",
    "build_return_scoring_frame",
    "build_churn_training_frame",
    "build_churn_scoring_frame",
    "lapse_episodes",
    "lapse_reasons",
    "reason_proba_columns",
]

_DAY = pd.Timedelta(days=1)


def _cut(
    data: ContractData | Mapping[str, pd.DataFrame], as_of: Any
) -> tuple[ContractData, pd.Timestamp]:
    cd = as_contract_data(data)
    T = to_timestamp(as_of)
    if cd.as_of is not None and T > cd.as_of:
        raise DataContractError(
            f"as_of {T} is after the date the data were loaded at ({cd.as_of}). "
            "Fix: load the data as of a later date, or pick an earlier as_of."
        )
    if cd.as_of is None or T < cd.as_of:
        t = cut_as_of(cd.tables(), T)
        cd = ContractData(**t, as_of=T, missing=list(cd.missing), source=cd.source)  # type: ignore[arg-type]
    return cd, T


def lapse_episodes(data: ContractData | Mapping[str, pd.DataFrame], as_of: Any) -> pd.DataFrame:
    """The cohort stage's lapse episodes as of ``as_of`` (nothing after it is read)."""
    from winback_ml.cohort.episodes import build_lapse_episodes

    cd, T = _cut(data, as_of)
    return build_lapse_episodes(cd, T)


def reason_proba_columns() -> list[str]:
    """``p_<reason>`` for every reason the cohort stage's classifier can give, in its order."""
    from winback_ml.cohort.reasons import REASONS

    return [f"p_{r}" for r in REASONS]


def lapse_reasons(
    cd: ContractData,
    T: pd.Timestamp,
    eps: pd.DataFrame,
    reasons: pd.Series | Mapping[str, str] | str | None = "infer",
    classifier: Any = None,
) -> pd.DataFrame:
    """The cancel reason known for each lapse episode, as of that lapse's end.

    Parameters
    ----------
    cd, T : contract data cut at ``T``, and ``T``
    eps : lapse episodes (:func:`lapse_episodes`), one row per lapse
    reasons :
        * ``"infer"`` (default): the stated reason, else the cohort stage's
          :class:`~winback_ml.cohort.reasons.ReasonClassifier` inferred from
          :func:`~winback_ml.cohort.reasons.reason_features` of *that* lapse
          (rows dated up to its end only), else ``payment_failed`` for an
          unrecovered payment failure; plus ``p_<reason>`` probabilities
          (one-hot where the reason is stated or the payment rule applies;
          uniform where no classifier could be fitted: ``reason_source`` =
          ``unknown``).
        * ``None``: the stated reason, else ``unknown``; no probabilities.
        * a Series or mapping of reasons: for lapses without a stated reason.
          Keyed by ``lapse_id``, each applies to its lapse. Keyed by
          ``customer_id`` (as a lapsed cohort gives them), a reason describes the
          customer's **latest** lapse only; earlier lapses keep their stated reason
          or ``unknown`` (they never take a reason that was known only later).
    classifier : a fitted ReasonClassifier to use as is (``"infer"`` only); else
        one is fitted on every lapse up to ``T`` with a stated reason

    Returns
    -------
    DataFrame aligned with ``eps`` (same index): ``reason``, ``reason_source``
    (``stated`` | ``inferred`` | ``unknown``) and, with ``"infer"``, the
    :func:`reason_proba_columns`.
    """
    stated = eps["stated_reason"].astype("object")
    ok = stated.notna() & (stated.astype(str) != "unknown")
    out = pd.DataFrame(index=eps.index)
    if isinstance(reasons, str):
        if reasons != "infer":
            raise ConfigError(
                "The 'reasons' parameter must be 'infer', None, or a Series/mapping of reasons "
                f"keyed by lapse_id or customer_id. Got {reasons!r} instead."
            )
        from winback_ml.cohort.reasons import REASONS, infer_reasons

        if eps.empty:
            out["reason"] = pd.Series(dtype=object)
            out["reason_source"] = pd.Series(dtype=object)
            for c in reason_proba_columns():
                out[c] = pd.Series(dtype=float)
            return out
        inf = infer_reasons(
            cd, eps[["customer_id", "lapse_id"]], T, classifier=classifier, episodes=eps
        )
        r = inf["cancel_reason"].astype(object).to_numpy()
        out["reason"] = np.where(ok.to_numpy(), stated.to_numpy(), r)
        src = np.where(
            ok.to_numpy(),
            "stated",
            np.where(inf["reason_rule"].to_numpy() == "no_model", "unknown", "inferred"),
        )
        out["reason_source"] = src
        P = inf[[f"p_{rr}" for rr in REASONS]].to_numpy(float)
        # no classifier (too few stated lapses up to T): an unstated reason is unknown, i.e.
        # uniform, as the offer model reads it; all-zero "probabilities" would sum to 0
        unknown = (src == "unknown") & (P.sum(axis=1) == 0)
        P[unknown] = 1.0 / len(REASONS)
        for j, rr in enumerate(REASONS):
            out[f"p_{rr}"] = P[:, j]
        return out
    r = stated.where(ok)
    if reasons is not None:
        rs = pd.Series(reasons) if not isinstance(reasons, pd.Series) else reasons
        if rs.index.isin(eps["lapse_id"]).any():
            r = r.where(r.notna(), eps["lapse_id"].map(rs))
        else:
            # keyed by customer: the reason of the customer's latest lapse (as of T), and of no
            # earlier one (an earlier lapse would take a reason known only later: leakage)
            order = eps.sort_values(["customer_id", "ended_at"], kind="mergesort")
            latest = ~order["customer_id"].duplicated(keep="last")
            latest = latest.reindex(eps.index).to_numpy()
            r = r.where(r.notna() | ~latest, eps["customer_id"].map(rs))
    known = r.notna()
    out["reason"] = r.fillna("unknown").astype(str)
    out["reason_source"] = np.where(ok, "stated", np.where(known, "inferred", "unknown"))
    return out


def build_return_training_frame(
    data: ContractData | Mapping[str, pd.DataFrame],
    as_of: Any,
    reasons: pd.Series | Mapping[str, str] | str | None = "infer",
    censor_at_contact: bool = True,
    reason_classifier: Any = None,
) -> pd.DataFrame:
    """One row per lapse at or before ``as_of``: features at the lapse, duration and event.

    The return model predicts the *natural* return (no contact). A lapse that
    was assigned to a contacted (non-control) arm of a past campaign before
    returning is censored at the assignment when ``censor_at_contact`` (the
    default): what happened after the contact says nothing about the natural
    return. Control-arm lapses stay uncensored. Campaign assignment is random
    given the lapse, so this censoring is uninformative.

    Parameters
    ----------
    data : ContractData or dict of contract frames (cut at ``as_of`` here)
    as_of : the run date
    reasons : ``"infer"`` (default), None, or reasons keyed by ``lapse_id`` or
        ``customer_id``: see :func:`lapse_reasons`. Each lapse gets the reason known
        for *that* lapse, never one of a later lapse of the same customer.
    censor_at_contact : censor at a contacted-arm campaign assignment (above)
    reason_classifier : a fitted ReasonClassifier for ``reasons="infer"``

    Returns
    -------
    DataFrame
        ``lapse_id``, ``customer_id``, ``at`` (the lapse), ``duration_days``,
        ``event``, ``entry_days``, ``reason``, ``reason_source``, ``lapse_number``,
        the ``p_<reason>`` columns (with ``"infer"``) and the feature columns.
    """
    cd, T = _cut(data, as_of)
    from winback_ml.cohort.episodes import build_lapse_episodes

    eps = build_lapse_episodes(cd, T).reset_index(drop=True)
    if eps.empty:
        raise DataContractError(
            f"No lapse at or before {T}: nothing to train a return model on. Fix: use data "
            "with cancelled or expired subscriptions, or a later as_of."
        )
    feats = build_customer_features(cd, eps["ended_at"], eps["customer_id"])
    duration = eps["days_observed"].to_numpy(float)
    event = eps["returned"].astype(int).to_numpy()
    if censor_at_contact:
        duration, event = _censor_at_contact(cd, eps, duration, event)
    stop = eps["ended_at"] + pd.to_timedelta(duration, unit="D")
    iv = _lapse_interview(cd, eps, stop)
    entry = ((iv["answered_at"] - eps["ended_at"]) / _DAY).fillna(0.0).to_numpy(float)
    out = pd.DataFrame(
        {
            "lapse_id": eps["lapse_id"].to_numpy(),
            "duration_days": duration,
            "event": event,
            "entry_days": np.minimum(entry, duration),
            "lapse_number": eps["lapse_number"].to_numpy(float),
        }
    )
    out = _with_reasons(out, lapse_reasons(cd, T, eps, reasons, reason_classifier))
    feats = _with_interview(feats, iv)
    return pd.concat(
        [
            feats[["customer_id", "at"]],
            out,
            feats.drop(columns=["customer_id", "at", *_NOT_AT_LAPSE]),
        ],
        axis=1,
    )


def _with_reasons(out: pd.DataFrame, lr: pd.DataFrame) -> pd.DataFrame:
    """``out`` with the reason columns inserted after ``entry_days`` / ``days_lapsed``."""
    lr = lr.reset_index(drop=True)
    pos = 4 if "entry_days" in out.columns else 2
    left, right = out.iloc[:, :pos], out.iloc[:, pos:]
    return pd.concat([left, lr, right], axis=1)


#: Features that carry no information at the moment of a lapse (constant there), and the
#: churn features of the running subscription's path to its next renewals (usage trajectory,
#: failures per renewal attempt): they are not in the return frames (on the 20,000-customer
#: world they cost the cure model 0.003 AUC against the truth and bring nothing).
_NOT_AT_LAPSE = [
    "is_active",
    "days_since_last_end",
    "cancel_pending",
    "days_to_renewal",
    *CHURN_ONLY_FEATURES,
]


def _lapse_interview(cd: ContractData, eps: pd.DataFrame, stop: pd.Series) -> pd.DataFrame:
    """The latest trusted interview (quality >= 3) of each lapse, answered in [ended_at, stop]."""
    cols = ["answered_at", "q7_offer_interest", "q4_leave_strength"]
    out = pd.DataFrame(
        {
            "answered_at": pd.Series(pd.NaT, index=range(len(eps)), dtype="datetime64[ns]"),
            "q7_offer_interest": pd.Series(None, index=range(len(eps)), dtype=object),
            "q4_leave_strength": np.nan,
        }
    )
    if cd.interviews is None or cd.interviews.empty or eps.empty:
        return out
    iv = cd.interviews
    iv = iv.loc[pd.to_numeric(iv["quality_score"], errors="coerce") >= 3, ["customer_id", *cols]]
    k = pd.DataFrame(
        {
            "i": np.arange(len(eps)),
            "customer_id": eps["customer_id"].to_numpy(),
            "start": eps["ended_at"].to_numpy(),
            "stop": pd.to_datetime(pd.Series(stop)).to_numpy(),
        }
    )
    m = k.merge(iv, on="customer_id")
    m = m[(m["answered_at"] >= m["start"]) & (m["answered_at"] <= m["stop"])]
    m = m.sort_values("answered_at").drop_duplicates("i", keep="last").set_index("i")
    out.loc[m.index, "answered_at"] = m["answered_at"].to_numpy()
    out.loc[m.index, "q7_offer_interest"] = m["q7_offer_interest"].to_numpy()
    out.loc[m.index, "q4_leave_strength"] = pd.to_numeric(
        m["q4_leave_strength"], errors="coerce"
    ).to_numpy(float)
    return out


def _with_interview(feats: pd.DataFrame, iv: pd.DataFrame) -> pd.DataFrame:
    """Interview features of *this* lapse (not of an earlier one)."""
    f = feats.copy()
    known = iv["answered_at"].notna().to_numpy()
    f["offer_interest"] = np.where(known, iv["q7_offer_interest"].fillna("none").to_numpy(), "none")
    f["leave_strength"] = iv["q4_leave_strength"].to_numpy(float)
    return f


def _censor_at_contact(
    cd: ContractData, eps: pd.DataFrame, duration: np.ndarray, event: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Censor lapses at their first contacted-arm campaign assignment (see above)."""
    if cd.campaign_assignments is None or cd.campaign_arms is None or cd.campaign_assignments.empty:
        return duration, event
    arms = cd.campaign_arms[["campaign_id", "arm_id", "is_control"]]
    a = cd.campaign_assignments.merge(arms, on=["campaign_id", "arm_id"], how="left")
    a = a[~a["is_control"].fillna(False).astype(bool)][["customer_id", "assigned_at"]]
    if a.empty:
        return duration, event
    k = pd.DataFrame(
        {
            "i": np.arange(len(eps)),
            "customer_id": eps["customer_id"].to_numpy(),
            "start": eps["ended_at"].to_numpy(),
            "stop": (eps["ended_at"] + pd.to_timedelta(duration, unit="D")).to_numpy(),
        }
    )
    m = k.merge(a, on="customer_id")
    m = m[(m["assigned_at"] >= m["start"]) & (m["assigned_at"] < m["stop"])]
    first = m.groupby("i")["assigned_at"].min()
    if first.empty:
        return duration, event
    idx = first.index.to_numpy()
    d = duration.copy()
    e = event.copy()
    d[idx] = ((first - k.loc[idx, "start"].to_numpy()) / _DAY).to_numpy(float)
    e[idx] = 0
    return d, e


def build_return_scoring_frame(
    data: ContractData | Mapping[str, pd.DataFrame],
    as_of: Any,
    reasons: pd.Series | Mapping[str, str] | str | None = "infer",
    max_days_lapsed: float | None = None,
    reason_classifier: Any = None,
) -> pd.DataFrame:
    """Customers lapsed and not returned at ``as_of``: features at the lapse plus ``days_lapsed``.

    ``max_days_lapsed`` keeps only lapses at most that many days old (the
    contract's ``lapsed_window_days``); None keeps all. ``reasons`` and
    ``reason_classifier`` as in :func:`build_return_training_frame` (use the same
    choice for training and scoring: ``"infer"`` adds the ``p_<reason>`` columns).
    """
    cd, T = _cut(data, as_of)
    from winback_ml.cohort.episodes import build_lapse_episodes

    all_eps = build_lapse_episodes(cd, T)
    lr = lapse_reasons(cd, T, all_eps, reasons, reason_classifier)
    eps = all_eps[~all_eps["returned"].astype(bool)]
    eps = eps.sort_values(["customer_id", "ended_at"]).drop_duplicates("customer_id", keep="last")
    if max_days_lapsed is not None:
        eps = eps[eps["days_observed"] <= float(max_days_lapsed)]
    lr = lr.loc[eps.index].reset_index(drop=True)
    eps = eps.reset_index(drop=True)
    feats = build_customer_features(cd, eps["ended_at"], eps["customer_id"])
    iv = _lapse_interview(cd, eps, pd.Series(T, index=eps.index))
    out = pd.DataFrame(
        {
            "lapse_id": eps["lapse_id"].to_numpy(),
            "days_lapsed": eps["days_observed"].to_numpy(float),
            "lapse_number": eps["lapse_number"].to_numpy(float),
        }
    )
    out = _with_reasons(out, lr)
    feats = _with_interview(feats, iv)
    return pd.concat(
        [
            feats[["customer_id", "at"]],
            out,
            feats.drop(columns=["customer_id", "at", *_NOT_AT_LAPSE]),
        ],
        axis=1,
    )


def _active_at(cd: ContractData, eps: pd.DataFrame, s: pd.Timestamp) -> np.ndarray:
    """Customer ids with a subscription started by ``s`` and not in a lapse at ``s``."""
    subs = cd.subscriptions
    started = set(subs.loc[subs["started_at"] <= s, "customer_id"])
    lapsed = eps[(eps["ended_at"] <= s) & (eps["returned_at"].isna() | (eps["returned_at"] > s))]
    return np.array(sorted(started - set(lapsed["customer_id"])), dtype=object)


def build_churn_training_frame(
    data: ContractData | Mapping[str, pd.DataFrame],
    as_of: Any,
    n_snapshots: int = 6,
    spacing_days: int = 45,
    snapshots: list[Any] | None = None,
) -> pd.DataFrame:
    """Active customers at past snapshot dates: features then, time to the next lapse.

    Parameters
    ----------
    data, as_of : as in :func:`build_return_training_frame`
    n_snapshots, spacing_days : snapshots at ``as_of - k * spacing_days``, k = 1..n
    snapshots : explicit snapshot dates (each before ``as_of``) instead

    Returns
    -------
    DataFrame
        ``customer_id``, ``at`` (the snapshot), ``duration_days``, ``event``
        and the feature columns. A customer appears once per snapshot at which
        they were active.
    """
    cd, T = _cut(data, as_of)
    from winback_ml.cohort.episodes import build_lapse_episodes

    eps = build_lapse_episodes(cd, T)
    dates = (
        [to_timestamp(s) for s in snapshots]
        if snapshots is not None
        else [T - pd.Timedelta(days=k * spacing_days) for k in range(1, n_snapshots + 1)]
    )
    bad = [d for d in dates if d >= T]
    if bad:
        raise DataContractError(f"Snapshot dates must be before as_of {T}. Got {bad}.")
    parts = []
    ends = eps[["customer_id", "ended_at"]].sort_values("ended_at")
    for s in sorted(dates):
        ids = _active_at(cd, eps, s)
        if len(ids) == 0:
            continue
        k = pd.DataFrame({"customer_id": ids, "at": s})
        nxt = (
            ends[ends["ended_at"] > s]
            .drop_duplicates("customer_id", keep="first")
            .set_index("customer_id")["ended_at"]
        )
        end = k["customer_id"].map(nxt)
        k["duration_days"] = ((end.fillna(T) - s) / _DAY).to_numpy(float)
        k["event"] = end.notna().astype(int).to_numpy()
        parts.append(k)
    if not parts:
        raise DataContractError(f"No active customer at any snapshot {dates}: nothing to train on.")
    keys = pd.concat(parts, ignore_index=True)
    feats = build_customer_features(cd, keys["at"], keys["customer_id"])
    return pd.concat(
        [
            keys[["customer_id", "at", "duration_days", "event"]],
            feats.drop(columns=["customer_id", "at", "is_active"]),
        ],
        axis=1,
    )


def build_churn_scoring_frame(
    data: ContractData | Mapping[str, pd.DataFrame], as_of: Any
) -> pd.DataFrame:
    """Active customers at ``as_of`` with their features as of ``as_of``."""
    cd, T = _cut(data, as_of)
    from winback_ml.cohort.episodes import build_lapse_episodes

    eps = build_lapse_episodes(cd, T)
    ids = _active_at(cd, eps, T)
    return build_customer_features(cd, T, ids).drop(columns=["is_active"])
