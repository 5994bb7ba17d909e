"""Evaluation of survival models on censored data, and the rule that picks the champion.

Metrics (all on a held-out frame with ``duration_days`` / ``event``):

* :func:`concordance_score`: Harrell's C between a risk score (higher =
  sooner event) and observed durations; 0.5 is chance.
* :func:`brier_score` / :func:`integrated_brier_score`: the Graf et al.
  (1999) inverse-probability-of-censoring-weighted Brier score of ``S(t|x)``,
  integrated over a time grid and divided by its length (lower is better;
  the Kaplan-Meier curve without covariates is the reference).
* :func:`calibration_table`: predicted P(event by ``t``) against the observed
  rate by decile of prediction; "observed" is ``1 - KM(t)`` within the decile,
  so censored rows count correctly. :func:`calibration_error` is the
  row-weighted mean absolute gap.

:func:`time_split` makes the time-based holdout: subjects whose origin
(lapse or snapshot) is before ``cutoff`` train the model with their outcomes
**censored at the cutoff** (nothing after it is seen), the others test it.
:func:`compare_models` fits every candidate on the training part, scores
the holdout and applies :data:`SELECTION_RULE`.

:func:`recovery_metrics` compares predicted probabilities with *known* true
ones (the synthetic world's truth): AUC against outcomes drawn from the true
probabilities (and the AUC the truth itself reaches on the same draws), mean
absolute error and the decile calibration error.

Invariants: durations in days; times tz-naive UTC; predictions are read
through the models' public API only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from winback_ml.exceptions import ModelError
from winback_ml.models.survival_estimators import _step_eval, kaplan_meier

__all__ = [
    "SELECTION_RULE",
    "ENTRY_FEATURES",
    "concordance_score",
    "brier_score",
    "integrated_brier_score",
    "calibration_table",
    "calibration_error",
    "time_split",
    "evaluate_survival_model",
    "compare_models",
    "ModelComparison",
    "plot_calibration",
    "recovery_metrics",
]

#: The stated rule that picks the champion among candidates on the holdout.
SELECTION_RULE = (
    "Holdout: the training frame cut at a date, outcomes after it censored. Return models are "
    "tested as they are used: everyone lapsed and not returned at the cutoff (at most 365 days), "
    "scored given their days lapsed, outcomes observed after the cutoff, at three cutoffs 60 "
    "days apart (metrics averaged); churn models on the snapshots after the cutoff. Among "
    "candidates whose calibration error at the primary horizon is at most "
    "max_calibration_error, choose the lowest Brier score of P(event within the primary "
    "horizon), the probability the business reads (30 days for returns, 90 for churn); break "
    "ties (within 0.0001) by the lower calibration error at that horizon (the probabilities are "
    "multiplied by money downstream). If no candidate is calibrated enough, choose the lowest "
    "calibration error."
)


#: Features known only from a row's entry on (the lapse's interview), and their "unknown" value.
ENTRY_FEATURES: dict[str, Any] = {"offer_interest": "none", "leave_strength": np.nan}


def concordance_score(durations: Any, events: Any, risk: Any) -> float:
    """Harrell's concordance between ``risk`` (higher = sooner) and censored durations."""
    from lifelines.utils import concordance_index

    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=float)
    r = np.asarray(risk, dtype=float)
    if e.sum() == 0:
        raise ModelError("concordance_score: no event in the evaluation data; C is undefined.")
    return float(concordance_index(d, -r, e))


def _censoring_km(durations: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return kaplan_meier(durations, 1.0 - events)


def brier_score(durations: Any, events: Any, surv_at_t: Any, t: float) -> float:
    """IPCW Brier score at time ``t`` of predicted survival ``S(t | x_i)``."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=float)
    s = np.asarray(surv_at_t, dtype=float)
    gt, gs = _censoring_km(d, e)
    G_T = _step_eval(gt, gs, np.nextafter(d, -np.inf), 1.0)  # G(T-)
    G_t = float(_step_eval(gt, gs, np.array([t]), 1.0)[0])
    died = (d <= t) & (e == 1)
    alive = d > t
    w_died = np.where(died, 1.0 / np.maximum(G_T, 1e-6), 0.0)
    w_alive = np.where(alive, 1.0 / max(G_t, 1e-6), 0.0)
    return float(np.mean(w_died * s**2 + w_alive * (1.0 - s) ** 2))


def integrated_brier_score(
    durations: Any, events: Any, surv: np.ndarray, times: Sequence[float]
) -> float:
    """Integrated IPCW Brier score: ``surv`` is (n, len(times)); trapezoid rule / time span."""
    t = np.asarray(times, dtype=float)
    if len(t) < 2:
        raise ModelError("integrated_brier_score needs at least two times.")
    bs = np.array([brier_score(durations, events, surv[:, j], tj) for j, tj in enumerate(t)])
    return float(np.trapezoid(bs, t) / (t[-1] - t[0]))


def calibration_table(
    durations: Any, events: Any, p_event: Any, t: float, n_bins: int = 10
) -> pd.DataFrame:
    """Predicted against observed P(event by ``t``) by quantile bin of the prediction.

    Columns: ``bin``, ``n``, ``predicted`` (mean), ``observed`` (1 - KM(t) in
    the bin), ``abs_error``.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=float)
    p = np.asarray(p_event, dtype=float)
    ranks = pd.Series(p).rank(method="first").to_numpy()
    bins = np.minimum((ranks - 1) * n_bins // len(p), n_bins - 1).astype(int)
    rows = []
    for b in range(n_bins):
        m = bins == b
        if not m.any():
            continue
        kt, ks = kaplan_meier(d[m], e[m])
        obs = 1.0 - float(_step_eval(kt, ks, np.array([t]), 1.0)[0])
        pred = float(p[m].mean())
        rows.append(
            {
                "bin": b + 1,
                "n": int(m.sum()),
                "predicted": pred,
                "observed": obs,
                "abs_error": abs(pred - obs),
            }
        )
    return pd.DataFrame(rows)


def calibration_error(table: pd.DataFrame) -> float:
    """Row-weighted mean absolute gap of a :func:`calibration_table`."""
    return float(np.average(table["abs_error"], weights=table["n"]))


def time_split(
    frame: pd.DataFrame,
    cutoff: Any,
    origin_col: str = "at",
    duration_col: str = "duration_days",
    event_col: str = "event",
    entry_col: str = "entry_days",
    entry_features: Mapping[str, Any] | None = None,
    *,
    conditional: bool | None = None,
    elapsed_col: str = "days_lapsed",
    max_elapsed_days: float | None = 365.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on subjects with origin before ``cutoff`` (censored at it); test as the model is used.

    **Training part.** A training subject whose event came after the cutoff is
    censored at the cutoff, so the training part uses nothing dated after
    ``cutoff``. A training row that entered observation at or after the cutoff
    (``entry_col``: an interview answered then or later) loses what it learnt
    then: its entry goes back to 0 and ``entry_features`` (column -> value when
    unknown; default the interview features ``offer_interest`` -> "none",
    ``leave_strength`` -> NaN) are reset.

    **Test part**, two designs:

    * ``conditional=True`` (return models; the default for frames with a
      ``lapse_id`` column, as :func:`~winback_ml.features.build_return_training_frame`
      makes): the subjects *at risk at the cutoff*, i.e. lapsed before it and not
      returned (nor censored) by it, at most ``max_elapsed_days`` ago, exactly the
      people a run at the cutoff scores. ``elapsed_col`` holds the days lapsed at
      the cutoff, ``duration_col`` the days from the cutoff to the return or
      censoring (observed after the cutoff only); an interview answered after the
      cutoff is reset as above, one answered by then is kept.
    * ``conditional=False`` (churn models): the subjects whose origin is at or
      after the cutoff, predicted from their origin (entry features reset).
    """
    for c in (origin_col, duration_col, event_col):
        if c not in frame.columns:
            raise ModelError(
                f"time_split: the frame has no column {c!r}. Got {list(frame.columns)[:30]}."
            )
    if conditional is None:
        conditional = "lapse_id" in frame.columns
    cut = pd.Timestamp(cutoff)
    origin = pd.to_datetime(frame[origin_col])
    train = frame[origin < cut].copy()
    room = ((cut - pd.to_datetime(train[origin_col])) / pd.Timedelta(days=1)).to_numpy(float)
    dur = train[duration_col].to_numpy(float)
    if conditional:
        # at risk at the cutoff: the event (or censoring) comes after it
        at_risk = dur > room
        if max_elapsed_days is not None:
            at_risk &= room <= float(max_elapsed_days)
        test = train[at_risk].copy()
        d = room[at_risk]
        test[duration_col] = dur[at_risk] - d
        test.insert(test.columns.get_loc(duration_col), elapsed_col, d)
    else:
        test = frame[origin >= cut].copy()
    after = dur > room
    train[duration_col] = np.minimum(dur, room)
    train[event_col] = np.where(after, 0, train[event_col].to_numpy()).astype(int)
    if entry_col in frame.columns:
        reset = dict(ENTRY_FEATURES if entry_features is None else entry_features)
        # entered at or after the (censored) end: learnt after the cutoff, or no time at risk
        # left after the entry (lifelines refuses entry >= duration)
        ent = train[entry_col].to_numpy(float)
        late = (ent > 0) & (ent >= train[duration_col].to_numpy(float))
        if conditional:
            # known at the cutoff only when the entry came by then
            test_late = test[entry_col].to_numpy(float) > test[elapsed_col].to_numpy(float)
        else:
            # predicted from their origin: what was learnt at entry is not known then
            test_late = test[entry_col].to_numpy(float) > 0
        for part, rows in ((train, late), (test, test_late)):
            if rows.any():
                part.loc[rows, entry_col] = 0.0
                for col, val in reset.items():
                    if col in part.columns:
                        part.loc[rows, col] = val
    if len(train) == 0 or len(test) == 0:
        raise ModelError(
            f"time_split: cutoff {cut} leaves {len(train)} training and {len(test)} test rows. "
            f"Fix: pick a cutoff between {origin.min()} and {origin.max()}."
        )
    return train, test


def _elapsed(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Days already elapsed without the event (the model's elapsed column), else 0."""
    col = getattr(model, "_elapsed_col", None)
    if col and col in X.columns:
        return pd.to_numeric(X[col], errors="coerce").fillna(0.0).to_numpy(float)
    return np.zeros(len(X))


def _prob(model: Any, X: pd.DataFrame, t: float) -> np.ndarray:
    """P(event within ``t``) from the origin, or after the days elapsed (conditional test)."""
    return model.predict_event_probability(X, t, conditional_after=_elapsed(model, X))


def evaluate_survival_model(
    model: Any,
    test: pd.DataFrame,
    horizons: Sequence[float] = (30, 90),
    ibs_times: Sequence[float] | None = None,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Holdout metrics of a fitted model: concordance, IBS, calibration at each horizon.

    When ``test`` has the model's elapsed column (``days_lapsed`` for return
    models, as :func:`time_split` adds with ``conditional=True``), every
    prediction is conditional on no event during those days and durations count
    from there.

    Returns a dict with ``concordance``, ``ibs``, ``calibration_error_<h>``,
    ``brier_<h>`` (floats) and ``calibration_<h>`` (tables).
    """
    d = test[model.duration_col].to_numpy(float)
    e = test[model.event_col].to_numpy(float)
    hmax = float(max(horizons))
    out: dict[str, Any] = {"n_test": int(len(test)), "n_test_events": int(e.sum())}
    out["concordance"] = concordance_score(d, e, _prob(model, test, hmax))
    times = np.asarray(
        ibs_times if ibs_times is not None else np.linspace(1, 2 * hmax, 30), dtype=float
    )
    times = times[times <= max(d.max(), times[0] + 1)]
    el = _elapsed(model, test)
    surv = model._survival_at(test, el[:, None] + times[None, :])
    if el.any():  # conditional on no event during the elapsed days
        surv = surv / np.maximum(model._survival_at(test, el[:, None]), 1e-12)
    out["ibs"] = integrated_brier_score(d, e, surv, times)
    for h in horizons:
        p = _prob(model, test, h)
        tab = calibration_table(d, e, p, h, n_bins=n_bins)
        out[f"calibration_{int(h)}"] = tab
        out[f"calibration_error_{int(h)}"] = calibration_error(tab)
        out[f"brier_{int(h)}"] = brier_score(d, e, 1.0 - p, h)
    return out


@dataclass
class ModelComparison:
    """Result of :func:`compare_models`: one metrics row per candidate and the choice."""

    table: pd.DataFrame
    chosen: str
    rule: str
    models: dict[str, Any] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def compare_models(
    candidates: Mapping[str, Any],
    frame: pd.DataFrame,
    cutoff: Any,
    origin_col: str = "at",
    horizons: Sequence[float] = (30, 90),
    primary_horizon: float | None = None,
    max_calibration_error: float = 0.05,
    *,
    conditional: bool | None = None,
    max_elapsed_days: float | None = 365.0,
    n_cutoffs: int | None = None,
    cutoff_step_days: float = 60.0,
) -> ModelComparison:
    """Fit each candidate (a clone) before each cutoff, evaluate on the holdout, choose.

    The holdout is :func:`time_split`'s (``conditional`` and ``max_elapsed_days``
    are passed on): for return frames, everyone lapsed and not returned at the
    cutoff, scored given their days lapsed, outcomes observed after the cutoff.
    With ``n_cutoffs`` > 1 (default 3 for the conditional holdout, else 1) the
    comparison is repeated at ``cutoff``, ``cutoff - cutoff_step_days``, ... (rolling
    origins) and the table holds each metric's mean over the cutoffs
    (``n_cutoffs`` column); ``models`` and ``details`` are those of ``cutoff``
    itself. A candidate whose fit raises :class:`ModelError` is reported in
    ``failures`` (and in the table) and not chosen. The choice follows
    :data:`SELECTION_RULE` at ``primary_horizon`` (default: the first horizon).
    """
    if not candidates:
        raise ModelError("compare_models: no candidate model given.")
    first = next(iter(candidates.values()))
    cut0 = pd.Timestamp(cutoff)
    if conditional is None:
        conditional = "lapse_id" in frame.columns
    k = int(n_cutoffs if n_cutoffs is not None else (3 if conditional else 1))
    if k < 1:
        raise ModelError(f"n_cutoffs must be at least 1. Got {n_cutoffs!r} instead.")
    splits = []
    for i in range(k):
        c = cut0 - pd.Timedelta(days=float(cutoff_step_days) * i)
        try:
            splits.append(
                time_split(
                    frame,
                    c,
                    origin_col,
                    first.duration_col,
                    first.event_col,
                    conditional=conditional,
                    max_elapsed_days=max_elapsed_days,
                )
            )
        except ModelError:
            if i == 0:
                raise
            break  # earlier cutoffs leave nothing to train or test on: use the ones so far
    ph = int(primary_horizon if primary_horizon is not None else horizons[0])
    rows, models, details, failures = [], {}, {}, {}
    for name, est in candidates.items():
        per: list[dict[str, Any]] = []
        try:
            for j, (train, test) in enumerate(splits):
                m = clone(est)
                m.fit(train)
                met = evaluate_survival_model(m, test, horizons)
                if j == 0:
                    models[name], details[name] = m, met
                    n_warn = len(getattr(m, "fit_warnings_", []))
                per.append(
                    {
                        "n_train": len(train),
                        "n_test": len(test),
                        **{k_: v for k_, v in met.items() if isinstance(v, float | int)},
                    }
                )
        except ModelError as exc:
            models.pop(name, None)
            details.pop(name, None)
            failures[name] = str(exc)
            rows.append({"model": name, "status": "failed"})
            continue
        row: dict[str, Any] = {"model": name, "status": "ok"}
        row.update(pd.DataFrame(per).mean(numeric_only=True).to_dict())
        row["n_cutoffs"] = len(per)
        row["fit_warnings"] = n_warn
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[table["status"] == "ok"]
    if ok.empty:
        raise ModelError(f"compare_models: every candidate failed: {failures}")
    ce = f"calibration_error_{ph}"
    score = f"brier_{ph}"
    eligible = ok[ok[ce] <= max_calibration_error]
    if eligible.empty:
        chosen = str(ok.sort_values(ce).iloc[0]["model"])
    else:
        best = eligible[score].min()
        near = eligible[eligible[score] <= best + 1e-4]
        # a tie on the Brier score goes to the better calibrated probabilities: the business
        # multiplies them by money (expected profit, LTV)
        chosen = str(
            near.sort_values([ce, "concordance"], ascending=[True, False]).iloc[0]["model"]
        )
    table["chosen"] = table["model"] == chosen
    return ModelComparison(table, chosen, SELECTION_RULE, models, details, failures)


def plot_calibration(comparison: ModelComparison, horizon: int = 30) -> Any:
    """Predicted against observed P(event by ``horizon``) by decile, one line per candidate."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, det in comparison.details.items():
        tab = det.get(f"calibration_{horizon}")
        if tab is None or tab.empty:
            continue
        ax.plot(tab["predicted"], tab["observed"], marker="o", label=name)
        top = max(top, float(tab[["predicted", "observed"]].max().max()))
    top = top * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel(f"predicted P(event within {horizon} days)")
    ax.set_ylabel("observed (1 - Kaplan-Meier) by decile")
    ax.set_title(f"Holdout calibration at {horizon} days (chosen: {comparison.chosen})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def recovery_metrics(p_true: Any, p_hat: Any, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """How well predicted probabilities recover known true probabilities.

    Parameters
    ----------
    p_true : array of true probabilities (e.g. ``WorldTruth.p_churn``), no NaN
    p_hat : array of predicted probabilities, aligned with ``p_true``
    draws : outcomes drawn from ``p_true`` this many times (fixed ``seed``)
    seed : seed of the draws

    Returns
    -------
    dict
        ``auc`` (mean AUC of ``p_hat`` over the draws), ``auc_truth`` (of
        ``p_true`` on the same draws: the AUC no model can beat on average),
        ``auc_gap`` (``auc_truth - auc``), ``mae`` (mean ``|p_hat - p_true|``),
        ``decile_cal`` (mean over deciles of ``p_hat`` of |mean predicted - mean
        true|) and ``mean_gap`` (mean ``p_hat - p_true``).
    """
    from sklearn.metrics import roc_auc_score

    t = np.asarray(p_true, dtype=float)
    h = np.asarray(p_hat, dtype=float)
    if t.shape != h.shape or t.ndim != 1 or len(t) < 10:
        raise ModelError(
            "recovery_metrics: p_true and p_hat must be 1-d arrays of the same length (at least "
            f"10). Got shapes {t.shape} and {h.shape}."
        )
    if np.isnan(t).any() or np.isnan(h).any():
        raise ModelError(
            "recovery_metrics: p_true or p_hat has NaN (e.g. at position "
            f"{int(np.flatnonzero(np.isnan(t) | np.isnan(h))[0])}). Fix: drop those rows first."
        )
    rng = np.random.default_rng(seed)
    a_hat, a_true = [], []
    for _ in range(int(draws)):
        y = rng.random(len(t)) < t
        if y.all() or not y.any():
            continue
        a_hat.append(roc_auc_score(y, h))
        a_true.append(roc_auc_score(y, t))
    q = pd.qcut(pd.Series(h).rank(method="first"), 10, labels=False)
    g = pd.DataFrame({"q": q, "t": t, "h": h}).groupby("q").mean()
    auc, auc_t = float(np.mean(a_hat)), float(np.mean(a_true))
    return {
        "auc": auc,
        "auc_truth": auc_t,
        "auc_gap": auc_t - auc,
        "mae": float(np.abs(h - t).mean()),
        "decile_cal": float((g["h"] - g["t"]).abs().mean()),
        "mean_gap": float(h.mean() - t.mean()),
    }
