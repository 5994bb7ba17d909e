"""Figures the notebooks show (a notebook calls these; it defines no functions itself).

Every ``plot_*`` returns a matplotlib ``Figure`` and draws only what it is
given; every ``*_curve``/``*_frame`` helper returns the numbers behind a
figure, so a test can check them. Rates are fractions, money is in the
reporting currency, timestamps tz-naive UTC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "return_curves_by_reason",
    "plot_return_curves_by_reason",
    "model_return_curves",
    "plot_segment_mix",
    "plot_calibration",
    "expected_spend",
    "profit_budget_curve",
    "plot_profit_vs_budget",
    "plot_kpi_trend",
    "plot_monthly_churn",
    "plot_kpi_summary",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)  # no-op inside Jupyter's inline backend
    import matplotlib.pyplot as plt

    return plt


def return_curves_by_reason(
    episodes: pd.DataFrame,
    reason_col: str = "stated_reason",
    max_days: int = 180,
    min_lapses: int = 20,
) -> pd.DataFrame:
    """Kaplan-Meier share returned by day since lapse, per cancellation reason.

    ``episodes`` is :func:`winback_ml.cohort.episodes.build_lapse_episodes`
    output (``returned``, ``days_to_return``, ``days_observed``). Reasons
    with fewer than ``min_lapses`` lapses are pooled into ``other (small)``.
    Involuntary (``payment_failed``) stays its own curve.

    Returns
    -------
    DataFrame with ``reason``, ``day``, ``returned_share`` (1 - KM), ``n``.
    """
    from winback_ml.models.survival_estimators import kaplan_meier

    e = episodes.copy()
    reason = e[reason_col].fillna("unknown").astype(str)
    counts = reason.value_counts()
    small = counts[counts < min_lapses].index
    reason = reason.where(~reason.isin(small), "other (small)")
    dur = np.where(
        e["returned"].astype(bool),
        e["days_to_return"].astype(float),
        e["days_observed"].astype(float),
    )
    ev = e["returned"].astype(bool).to_numpy()
    days = np.arange(0, max_days + 1)
    rows = []
    for r in sorted(reason.unique()):
        m = (reason == r).to_numpy()
        t, s = kaplan_meier(dur[m], ev[m])
        idx = np.searchsorted(t, days, side="right") - 1
        surv = np.where(idx >= 0, s[np.clip(idx, 0, None)] if len(s) else 1.0, 1.0)
        rows.append(
            pd.DataFrame(
                {"reason": r, "day": days, "returned_share": 1.0 - surv, "n": int(m.sum())}
            )
        )
    return (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["reason", "day", "returned_share", "n"])
    )


def model_return_curves(
    model: Any,
    frame: pd.DataFrame,
    reason_col: str = "reason",
    max_days: int = 180,
    min_lapses: int = 20,
    max_rows_per_reason: int = 300,
    step_days: int = 2,
    random_state: int = 0,
) -> pd.DataFrame:
    """A fitted return model's mean predicted share returned by day since lapse, per reason.

    ``frame`` is a return training frame (features at the lapse). Reasons
    with more than ``max_rows_per_reason`` lapses are averaged over a fixed
    random sample of that size (the curve is a mean; this keeps feature
    models fast). Same columns as :func:`return_curves_by_reason`, so the
    same plot draws both.
    """
    days = np.arange(0, max_days + 1, step_days, dtype=float)
    rng = np.random.default_rng(random_state)
    rows = []
    for r, idx in frame.groupby(reason_col).indices.items():
        if len(idx) < min_lapses:
            continue
        sub = (
            idx
            if len(idx) <= max_rows_per_reason
            else rng.choice(idx, max_rows_per_reason, replace=False)
        )
        surv = model.predict_survival_function(
            frame.iloc[np.sort(sub)], times=days, conditional_after=0.0
        )
        share = 1.0 - surv.to_numpy().mean(axis=1)
        rows.append(
            pd.DataFrame({"reason": r, "day": days, "returned_share": share, "n": len(idx)})
        )
    if not rows:
        return pd.DataFrame(columns=["reason", "day", "returned_share", "n"])
    return pd.concat(rows, ignore_index=True)


def plot_return_curves_by_reason(curves: pd.DataFrame, window_days: int = 30) -> Any:
    """Share of lapsed customers back after *d* days, one line per reason."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r, g in curves.groupby("reason", sort=True):
        ls = "--" if r == "payment_failed" else "-"
        ax.step(
            g["day"], g["returned_share"], where="post", ls=ls, label=f"{r} (n={g['n'].iloc[0]})"
        )
    ax.axvline(window_days, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("days since the lapse")
    ax.set_ylabel("share returned (Kaplan-Meier)")
    ax.set_title("Natural returns by cancellation reason (dashed: involuntary)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_segment_mix(segments: pd.DataFrame, reasons: pd.DataFrame | None = None) -> Any:
    """Segment sizes (hot/warm/lost/misclassified), stacked by cancellation reason."""
    plt = _plt()
    df = segments[["customer_id", "segment"]].copy()
    if reasons is not None and "cancel_reason" in reasons.columns:
        df["reason"] = reasons["cancel_reason"].to_numpy()
    else:
        df["reason"] = "all"
    tab = pd.crosstab(df["segment"], df["reason"])
    order = [s for s in ("hot", "warm", "lost", "misclassified") if s in tab.index]
    tab = tab.reindex(order + [s for s in tab.index if s not in order])
    fig, ax = plt.subplots(figsize=(7, 4))
    tab.plot(kind="bar", stacked=True, ax=ax, width=0.7, colormap="tab20")
    ax.set_ylabel("lapsed customers")
    ax.set_xlabel("")
    ax.set_title("Segment mix of the lapsed cohort, by reason")
    ax.legend(fontsize=7, ncol=2, title="reason", title_fontsize=8)
    ax.tick_params(axis="x", rotation=0)
    fig.tight_layout()
    return fig


def plot_calibration(tables: dict[str, pd.DataFrame], title: str = "Calibration") -> Any:
    """Predicted against observed probability per bin, one line per model or horizon.

    ``tables`` maps a label to a :func:`winback_ml.models.evaluation.calibration_table`.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    hi = 0.0
    for label, t in tables.items():
        ax.plot(t["predicted"], t["observed"], marker="o", label=label)
        hi = max(hi, float(t["predicted"].max()), float(t["observed"].max()))
    hi = min(1.0, hi * 1.1 + 0.01)
    ax.plot([0, hi], [0, hi], color="grey", ls="--", lw=0.8)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed (Kaplan-Meier)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def expected_spend(targets: pd.DataFrame, mrr: pd.Series, config: Any) -> pd.Series:
    """Expected spend per target: contact cost of its channel + expected discount given.

    Expected discount = ``p_return_offer x mrr x discount`` (``discount_pct``
    x ``discount_months`` for discounts and early renewal, ``discount_months``
    full months for ``free_month``), as the KPI module counts cost. ``mrr``
    is indexed by ``customer_id``. Zero for targets not contacted.
    """
    t = targets
    m = t["customer_id"].map(mrr).astype(float).fillna(0.0).to_numpy()
    pct = t["discount_pct"].astype(float).fillna(0.0).to_numpy()
    months = t["discount_months"].astype(float).fillna(0.0).to_numpy()
    kind = t["offer_type"].astype(str).to_numpy()
    disc = np.where(
        np.isin(kind, ["discount", "early_renewal"]),
        m * pct / 100 * months,
        np.where(kind == "free_month", m * np.maximum(months, 1), 0.0),
    )
    cost = t["channel"].map(config.contact_cost).astype(float).fillna(0.0).to_numpy()
    out = np.where(
        t["contact"].astype(bool), cost + t["p_return_offer"].to_numpy(float) * disc, 0.0
    )
    return pd.Series(out, index=t.index)


def profit_budget_curve(targets: pd.DataFrame, spend: pd.Series) -> pd.DataFrame:
    """Cumulative expected incremental profit against cumulative expected spend, by rank.

    Contacting customers in ``rank`` order, what each budget buys. Returns
    ``rank``, ``spend`` (cumulative), ``profit`` (cumulative expected
    incremental profit), ``incremental_reactivations`` (cumulative).
    """
    t = targets[targets["contact"].astype(bool)].copy()
    t["spend"] = spend.loc[t.index]
    t = t.sort_values("rank")
    return pd.DataFrame(
        {
            "rank": t["rank"].to_numpy(),
            "spend": t["spend"].cumsum().to_numpy(),
            "profit": t["expected_incremental_profit"].cumsum().to_numpy(),
            "incremental_reactivations": (t["p_return_offer"] - t["p_return_base"])
            .cumsum()
            .to_numpy(),
        }
    )


def plot_profit_vs_budget(curve: pd.DataFrame, budget: float | None = None) -> Any:
    """Expected incremental profit bought by each budget (contacting in rank order)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(np.r_[0, curve["spend"]], np.r_[0, curve["profit"]], color="tab:green")
    ax.set_xlabel("expected spend (contact + discount given)")
    ax.set_ylabel("expected incremental profit")
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {budget:,.0f}")
        ax.legend()
    ax2 = ax.twinx()
    ax2.plot(np.r_[0, curve["spend"]], np.r_[0, curve["incremental_reactivations"]],
             color="tab:blue", alpha=0.5)  # fmt: skip
    ax2.set_ylabel("expected incremental reactivations", color="tab:blue")
    ax.set_title("Profit against budget (targets in rank order)")
    fig.tight_layout()
    return fig


def plot_kpi_trend(weekly: pd.DataFrame, targets: Any) -> Any:
    """Weekly re-subscription rate, cost per reactivation and ARPU against the seed targets."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    w = weekly.copy()
    ax = axes[0]
    ax.plot(w["week"], w["resubscription_rate"], marker="o", label="contacted")
    ax.plot(w["week"], w["holdout_rate"], marker=".", ls=":", label="holdout")
    ax.axhline(targets.reactivation_rate, color="tab:red", ls="--", label="target > 15 %")
    ax.set_title("Re-subscription rate")
    ax.legend(fontsize=8)
    ax = axes[1]
    cost = w["cost_per_reactivation"].replace([np.inf, -np.inf], np.nan)
    ax.plot(w["week"], cost, marker="o")
    ax.axhline(targets.cost_per_reactivation, color="tab:red", ls="--", label="target < $2.00")
    ax.set_yscale("log")
    ax.set_title("Cost per incremental reactivation")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(w["week"], w["arpu_recovered"], marker="o")
    ax.axhline(targets.arpu_recovered, color="tab:red", ls="--", label="target $45.00")
    ax.set_title("ARPU of recovered accounts")
    ax.legend(fontsize=8)
    for a in axes:
        a.tick_params(axis="x", rotation=45, labelsize=7)
    fig.suptitle("KPI trend by week of contact")
    fig.tight_layout()
    return fig


def plot_monthly_churn(monthly: pd.DataFrame) -> Any:
    """Monthly churn rate of the active base, voluntary and involuntary stacked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = monthly["month"].dt.strftime("%Y-%m")
    ax.bar(x, monthly["voluntary_rate"], label="voluntary")
    ax.bar(x, monthly["involuntary_rate"], bottom=monthly["voluntary_rate"], label="involuntary")
    ax.set_ylabel("churn rate (ended / live at month start)")
    ax.set_title("Monthly churn of the active base")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_kpi_summary(summary: pd.DataFrame) -> Any:
    """The seed KPIs (all, voluntary, involuntary) as bars against their targets."""
    plt = _plt()
    kpis = [
        ("resubscription_rate", "re-subscription rate", 100.0, "%"),
        ("cost_per_reactivation", "cost per incremental reactivation", 1.0, "$"),
        ("arpu_recovered", "ARPU of recovered accounts", 1.0, "$"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    groups = ["all", "voluntary", "involuntary"]
    for ax, (k, title, scale, unit) in zip(axes, kpis, strict=True):
        s = summary[summary["kpi"] == k].set_index("group").reindex(groups)
        vals = s["value"].astype(float).replace([np.inf, -np.inf], np.nan) * scale
        colors = [
            "tab:green" if m is True else ("tab:red" if m is False else "tab:gray")
            for m in s["met"]
        ]
        ax.bar(groups, vals.fillna(0.0), color=colors)
        for i, v in enumerate(s["value"]):
            if pd.isna(v):
                label = "n/a"
            elif np.isinf(v):
                label = "inf"
            else:
                label = f"{v * scale:,.1f} %" if unit == "%" else f"${v * scale:,.2f}"
            ax.text(i, (0 if pd.isna(vals.iloc[i]) else vals.iloc[i]), label, ha="center",
                    va="bottom", fontsize=8)  # fmt: skip
        tgt = s["target"].dropna()
        if len(tgt):
            ax.axhline(float(tgt.iloc[0]) * scale, color="black", ls="--", lw=1)
        ax.set_title(title, fontsize=10)
    fig.suptitle("Seed KPIs against targets (green: met, red: not met, dashed: target)")
    fig.tight_layout()
    return fig
