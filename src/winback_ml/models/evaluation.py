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
]

#: The stated rule that picks the champion among candidates on the holdout.
SELECTION_RULE = (
    "Among candidates whose calibration error at the primary horizon is at most "
    "max_calibration_error, choose the lowest integrated Brier score; break ties "
    "(within 0.0005) by the higher concordance. If no candidate is calibrated enough, "
    "choose the lowest calibration error."
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on subjects with origin before ``cutoff`` (censored at it), test on the rest.

    A training subject whose event came after the cutoff is censored at the
    cutoff, so the training part uses nothing dated after ``cutoff``. A
    training row that entered observation at or after the cutoff (``entry_col``:
    an interview answered then or later) loses what it learnt then: its entry goes
    back to 0 and ``entry_features`` (column -> value when unknown; default
    the interview features ``offer_interest`` -> "none", ``leave_strength``
    -> NaN) are reset. Test rows are predicted from their origin, so their
    entry features are reset the same way.
    """
    for c in (origin_col, duration_col, event_col):
        if c not in frame.columns:
            raise ModelError(
                f"time_split: the frame has no column {c!r}. Got {list(frame.columns)[:30]}."
            )
    cut = pd.Timestamp(cutoff)
    origin = pd.to_datetime(frame[origin_col])
    train = frame[origin < cut].copy()
    test = frame[origin >= cut].copy()
    room = ((cut - pd.to_datetime(train[origin_col])) / pd.Timedelta(days=1)).to_numpy(float)
    dur = train[duration_col].to_numpy(float)
    after = dur > room
    train[duration_col] = np.minimum(dur, room)
    train[event_col] = np.where(after, 0, train[event_col].to_numpy()).astype(int)
    if entry_col in frame.columns:
        reset = dict(ENTRY_FEATURES if entry_features is None else entry_features)
        # entered at or after the (censored) end: learnt after the cutoff, or no time at risk
        # left after the entry (lifelines refuses entry >= duration)
        ent = train[entry_col].to_numpy(float)
        late = (ent > 0) & (ent >= train[duration_col].to_numpy(float))
        # test rows are predicted from their origin: what was learnt at entry is not known then
        for part, rows in ((train, late), (test, test[entry_col].to_numpy(float) > 0)):
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


def _prob(model: Any, X: pd.DataFrame, t: float) -> np.ndarray:  # from the origin
    return model.predict_event_probability(X, t, conditional_after=0.0)


def evaluate_survival_model(
    model: Any,
    test: pd.DataFrame,
    horizons: Sequence[float] = (30, 90),
    ibs_times: Sequence[float] | None = None,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Holdout metrics of a fitted model: concordance, IBS, calibration at each horizon.

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
    surv = model._survival_at(test, np.broadcast_to(times[None, :], (len(test), len(times))))
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
) -> ModelComparison:
    """Fit each candidate (a clone) on the pre-cutoff part, evaluate on the rest, choose.

    A candidate whose fit raises :class:`ModelError` is reported in
    ``failures`` (and in the table) and not chosen. The choice follows
    :data:`SELECTION_RULE` with the calibration error at ``primary_horizon``
    (default: the first horizon).
    """
    if not candidates:
        raise ModelError("compare_models: no candidate model given.")
    first = next(iter(candidates.values()))
    train, test = time_split(frame, cutoff, origin_col, first.duration_col, first.event_col)
    ph = int(primary_horizon if primary_horizon is not None else horizons[0])
    rows, models, details, failures = [], {}, {}, {}
    for name, est in candidates.items():
        m = clone(est)
        try:
            m.fit(train)
            met = evaluate_survival_model(m, test, horizons)
        except ModelError as exc:
            failures[name] = str(exc)
            rows.append({"model": name, "status": "failed"})
            continue
        models[name] = m
        details[name] = met
        row = {"model": name, "status": "ok", "n_train": len(train), "n_test": len(test)}
        row.update({k: v for k, v in met.items() if isinstance(v, float | int)})
        row["fit_warnings"] = len(getattr(m, "fit_warnings_", []))
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[table["status"] == "ok"]
    if ok.empty:
        raise ModelError(f"compare_models: every candidate failed: {failures}")
    ce = f"calibration_error_{ph}"
    eligible = ok[ok[ce] <= max_calibration_error]
    if eligible.empty:
        chosen = str(ok.sort_values(ce).iloc[0]["model"])
    else:
        best_ibs = eligible["ibs"].min()
        near = eligible[eligible["ibs"] <= best_ibs + 5e-4]
        chosen = str(near.sort_values("concordance", ascending=False).iloc[0]["model"])
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
