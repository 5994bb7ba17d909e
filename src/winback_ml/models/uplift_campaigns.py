"""Evaluate past win-back campaigns: per-arm effects against control, with intervals.

The input of the evaluation is an *assignment frame*: one row per customer
assigned to a campaign arm, with

* ``campaign_id``, ``arm_id``, ``is_control`` (bool), ``customer_id``;
* the outcome columns (``reactivated``: 0/1 within the attribution window,
  ``revenue``: money received after the reactivation, ``contact_cost``);
* optional arm attributes (``offer_type``, ``discount_pct``,
  ``discount_months``, ``channel``) and grouping columns (``segment``,
  ``cancel_reason``, ...).

:func:`build_campaign_outcomes` makes it from contract tables;
:func:`winback_ml.models.minethatdata.load_hillstrom` makes it from the
Hillstrom e-mail test. :func:`evaluate_arms` compares every arm with the
control arm of its campaign (and group).

Statistics
----------
* Binary outcomes: Wilson score interval per arm and Newcombe's hybrid score
  interval (method 10, Newcombe 1998) for the difference arm - control;
  two-sided p-value from the pooled two-proportion z test.
* Continuous outcomes (revenue per assigned customer): Welch normal interval
  of the difference of means.
* Cost per incremental reactivation = arm's total contact cost / (uplift x
  arm size); its interval comes from the uplift interval and is unbounded
  (``inf``) when the uplift interval reaches 0.

Fallbacks are visible, never silent: an arm smaller than ``min_arm_size``
keeps its (wide) interval and gets ``reliable = False`` and a ``note``; a
campaign (or group) without a control arm raises
:class:`~winback_ml.exceptions.DataContractError` unless
``on_missing_control="skip"``, which drops it and says so in
``table.attrs["skipped"]``.

Invariants: timestamps are tz-naive UTC; an assignment whose attribution
window is not over at ``as_of`` is left out (its outcome is not known yet)
and counted in ``attrs["incomplete"]``; no event after ``as_of`` is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from winback_ml.exceptions import DataContractError, ModelError

__all__ = [
    "REVENUE_EVENT_TYPES",
    "wilson_ci",
    "newcombe_diff_ci",
    "welch_diff_ci",
    "reactivation_events",
    "build_campaign_outcomes",
    "evaluate_arms",
    "qini_by_arm",
    "plot_arm_effects",
    "plot_qini_curves",
    "evaluate_campaign_history",
]

#: Events whose ``amount`` is money received (refunds are subtracted).
REVENUE_EVENT_TYPES = ("subscribed", "renewed", "reactivated", "payment_recovered")


def wilson_ci(k: np.ndarray | float, n: np.ndarray | float, conf_level: float = 0.95) -> tuple:
    """Wilson score interval of a proportion ``k / n`` (vectorised)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def newcombe_diff_ci(
    k1: np.ndarray | float,
    n1: np.ndarray | float,
    k0: np.ndarray | float,
    n0: np.ndarray | float,
    conf_level: float = 0.95,
) -> tuple:
    """Newcombe's hybrid score interval for ``k1/n1 - k0/n0`` (method 10)."""
    k1, n1, k0, n0 = (np.asarray(v, dtype=float) for v in (k1, n1, k0, n0))
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson_ci(k1, n1, conf_level)
    l0, u0 = wilson_ci(k0, n0, conf_level)
    d = p1 - p0
    low = d - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return low, high


def welch_diff_ci(
    x1: np.ndarray, x0: np.ndarray, conf_level: float = 0.95
) -> tuple[float, float, float]:
    """Difference of means ``mean(x1) - mean(x0)`` with a Welch normal interval."""
    x1 = np.asarray(x1, dtype=float)
    x0 = np.asarray(x0, dtype=float)
    d = float(x1.mean() - x0.mean())
    v1 = x1.var(ddof=1) / len(x1) if len(x1) > 1 else np.inf
    v0 = x0.var(ddof=1) / len(x0) if len(x0) > 1 else np.inf
    se = float(np.sqrt(v1 + v0))
    z = stats.norm.ppf(0.5 + conf_level / 2)
    return d, d - z * se, d + z * se


def reactivation_events(events: pd.DataFrame) -> pd.DataFrame:
    """Reactivations per the contract: ``reactivated`` events, and ``subscribed``
    events of a customer who had a subscription end (``cancelled``/``expired``) before.

    Returns ``customer_id``, ``occurred_at``, ``subscription_id``, sorted by time.
    """
    ev = events[["customer_id", "occurred_at", "event_type", "subscription_id"]]
    ends = ev[ev["event_type"].isin(["cancelled", "expired"])]
    first_end = ends.groupby("customer_id")["occurred_at"].min()
    react = ev[ev["event_type"] == "reactivated"]
    subs = ev[ev["event_type"] == "subscribed"]
    subs = subs[subs["occurred_at"] > subs["customer_id"].map(first_end)]
    out = pd.concat([react, subs], ignore_index=True)
    return out[["customer_id", "occurred_at", "subscription_id"]].sort_values(
        ["customer_id", "occurred_at"], kind="mergesort"
    )


def build_campaign_outcomes(
    data: Any,
    as_of: Any = None,
    attribution_window_days: int = 30,
    revenue_days: int = 90,
) -> pd.DataFrame:
    """One row per campaign assignment with the outcome read from ``events``.

    Parameters
    ----------
    data : ContractData or dict of DataFrames
        Needs ``campaigns``, ``campaign_arms``, ``campaign_assignments`` and
        ``events``.
    as_of : timestamp, optional
        Nothing after it is read. Assignments whose attribution window ends
        after ``as_of`` are left out (``attrs["incomplete"]`` counts them).
    attribution_window_days : int
        A reactivation in ``(assigned_at, assigned_at + window]`` counts.
    revenue_days : int
        Revenue: amounts of the customer's revenue events in
        ``[reactivated_at, reactivated_at + revenue_days]`` (clipped at
        ``as_of``), minus refunds, for reactivated customers only.

    Returns
    -------
    DataFrame
        The assignment columns, the arm columns, ``reactivated`` (0/1),
        ``reactivated_at``, ``revenue``, ``window_end``.
    """
    tables = data.tables() if hasattr(data, "tables") else dict(data)
    for name in ("campaign_arms", "campaign_assignments", "events"):
        if tables.get(name) is None:
            raise DataContractError(
                f"Campaign evaluation needs the table {name!r}, which is absent. "
                "Fix: export campaigns, campaign_arms and campaign_assignments (optional together) and events."
            )
    arms = tables["campaign_arms"]
    asg = tables["campaign_assignments"].copy()
    ev = tables["events"]
    as_of_ts = pd.Timestamp(as_of) if as_of is not None else getattr(data, "as_of", None)
    if as_of_ts is not None:
        ev = ev[ev["occurred_at"] <= as_of_ts]
        asg = asg[asg["assigned_at"] <= as_of_ts]
    window = pd.Timedelta(days=int(attribution_window_days))
    asg["window_end"] = asg["assigned_at"] + window
    n_incomplete = 0
    if as_of_ts is not None:
        done = asg["window_end"] <= as_of_ts
        n_incomplete = int((~done).sum())
        asg = asg[done]
    df = asg.merge(arms, on=["campaign_id", "arm_id"], how="left", validate="many_to_one")
    if df["is_control"].isna().any():
        bad = df.loc[df["is_control"].isna(), ["campaign_id", "arm_id"]].drop_duplicates()
        raise DataContractError(
            "campaign_assignments names arms missing from campaign_arms: "
            f"{bad.head(5).to_dict('records')}. Fix: add the arms or correct arm_id."
        )
    df["is_control"] = df["is_control"].astype(bool)
    re = reactivation_events(ev).rename(columns={"occurred_at": "reactivated_at"})
    m = df[["campaign_id", "customer_id", "assigned_at", "window_end"]].merge(
        re[["customer_id", "reactivated_at"]], on="customer_id", how="inner"
    )
    m = m[(m["reactivated_at"] > m["assigned_at"]) & (m["reactivated_at"] <= m["window_end"])]
    first = m.groupby(["campaign_id", "customer_id"])["reactivated_at"].min()
    df = df.merge(
        first.rename("reactivated_at").reset_index(), on=["campaign_id", "customer_id"], how="left"
    )
    df["reactivated"] = df["reactivated_at"].notna().astype(int)
    # Revenue following the reactivation.
    rev_ev = ev[ev["event_type"].isin([*REVENUE_EVENT_TYPES, "refunded"]) & ev["amount"].notna()]
    rev_ev = rev_ev.assign(
        signed=np.where(rev_ev["event_type"] == "refunded", -1.0, 1.0)
        * rev_ev["amount"].astype(float)
    )
    r = df.loc[df["reactivated"] == 1, ["campaign_id", "customer_id", "reactivated_at"]].merge(
        rev_ev[["customer_id", "occurred_at", "signed"]], on="customer_id", how="inner"
    )
    horizon = r["reactivated_at"] + pd.Timedelta(days=int(revenue_days))
    keep = (r["occurred_at"] >= r["reactivated_at"]) & (r["occurred_at"] <= horizon)
    rev = r[keep].groupby(["campaign_id", "customer_id"])["signed"].sum().rename("revenue")
    df = df.merge(rev.reset_index(), on=["campaign_id", "customer_id"], how="left")
    df["revenue"] = df["revenue"].fillna(0.0)
    df.attrs["incomplete"] = n_incomplete
    df.attrs["attribution_window_days"] = int(attribution_window_days)
    df.attrs["revenue_days"] = int(revenue_days)
    return df.reset_index(drop=True)


_ARM_ATTRS = ("offer_type", "discount_pct", "discount_months", "channel", "message_variant")


def evaluate_arms(
    outcomes: pd.DataFrame,
    outcome: str = "reactivated",
    revenue: str | None = "revenue",
    cost: str | None = "contact_cost",
    by: str | Sequence[str] | None = None,
    min_arm_size: int = 50,
    conf_level: float = 0.95,
    on_missing_control: str = "raise",
) -> pd.DataFrame:
    """Every arm against its campaign's control arm, overall or per group.

    Parameters
    ----------
    outcomes : DataFrame
        An assignment frame (see the module docstring).
    outcome : str
        A 0/1 column (reactivation, visit, conversion) or a numeric one.
    revenue : str or None
        Money per assigned customer (0 when no reactivation).
    cost : str or None
        Contact cost per assigned customer.
    by : str or list of str, optional
        Extra grouping columns (``segment``, ``cancel_reason``): the
        comparison is made within each group.
    min_arm_size : int
        Arms (or their control) smaller than this are flagged unreliable.
    on_missing_control : {"raise", "skip"}

    Returns
    -------
    DataFrame
        One row per (campaign, group, treatment arm): ``n``, ``n_control``,
        ``rate``, ``rate_control``, ``uplift`` with ``uplift_ci_low`` /
        ``uplift_ci_high``, ``p_value``, revenue per assigned customer
        (``revenue_per_customer``, ``revenue_per_customer_control``,
        ``revenue_uplift`` with interval), ``cost_per_customer``,
        ``incremental_reactivations``, ``cost_per_incremental_reactivation``
        (with interval), ``reliable`` and ``note``.
    """
    if on_missing_control not in ("raise", "skip"):
        raise ModelError(
            f"on_missing_control must be 'raise' or 'skip'. Got {on_missing_control!r}."
        )
    by_cols = [by] if isinstance(by, str) else list(by or [])
    need = ["campaign_id", "arm_id", "is_control", outcome, *by_cols]
    need += [c for c in (revenue, cost) if c is not None]
    missing = [c for c in need if c not in outcomes.columns]
    if missing:
        raise DataContractError(
            f"The assignment frame lacks columns {missing}. Expected {need}. "
            "Fix: build it with build_campaign_outcomes or load_hillstrom."
        )
    y_all = outcomes[outcome].astype(float)
    binary = bool(set(pd.unique(y_all.dropna())) <= {0.0, 1.0})
    attrs = [c for c in _ARM_ATTRS if c in outcomes.columns]
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    keys = ["campaign_id", *by_cols]
    for key, g in outcomes.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True))
        ctrl = g[g["is_control"].astype(bool)]
        if ctrl.empty:
            msg = (
                f"Campaign group ({label}) has no control arm (is_control = true), so its effect "
                "cannot be measured. Fix: keep a randomized control arm, or evaluate without this campaign."
            )
            if on_missing_control == "raise":
                raise DataContractError(msg)
            skipped.append(msg)
            continue
        y0 = ctrl[outcome].astype(float).to_numpy()
        n0, k0 = len(y0), float(y0.sum())
        r0 = ctrl[revenue].astype(float).to_numpy() if revenue else None
        for arm_id, a in g[~g["is_control"].astype(bool)].groupby("arm_id", sort=True):
            y1 = a[outcome].astype(float).to_numpy()
            n1, k1 = len(y1), float(y1.sum())
            row: dict[str, Any] = dict(zip(keys, key, strict=True))
            row["arm_id"] = arm_id
            for c in attrs:
                row[c] = a[c].iloc[0]
            row.update(n=n1, n_control=n0, rate=k1 / n1, rate_control=k0 / n0)
            if binary:
                lo, hi = newcombe_diff_ci(k1, n1, k0, n0, conf_level)
                pooled = (k1 + k0) / (n1 + n0)
                se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
                diff = k1 / n1 - k0 / n0
                z = diff / se if se > 0 else 0.0
                row.update(uplift=diff, uplift_ci_low=float(lo), uplift_ci_high=float(hi))
            else:
                diff, lo, hi = welch_diff_ci(y1, y0, conf_level)
                se = (hi - diff) / stats.norm.ppf(0.5 + conf_level / 2)
                z = diff / se if se > 0 else 0.0
                row.update(uplift=diff, uplift_ci_low=lo, uplift_ci_high=hi)
            row["p_value"] = float(2 * stats.norm.sf(abs(z)))
            if revenue:
                r1 = a[revenue].astype(float).to_numpy()
                d, rlo, rhi = welch_diff_ci(r1, r0, conf_level)
                row.update(
                    revenue_per_customer=float(r1.mean()),
                    revenue_per_customer_control=float(r0.mean()),
                    revenue_uplift=d,
                    revenue_uplift_ci_low=rlo,
                    revenue_uplift_ci_high=rhi,
                )
            inc = row["uplift"] * n1
            row["incremental_reactivations"] = inc
            if cost:
                c1 = a[cost].astype(float)
                total = float(c1.sum()) if c1.notna().all() else float("nan")
                row["cost_per_customer"] = total / n1
                row["cost_total"] = total
                with np.errstate(divide="ignore", invalid="ignore"):
                    cpir = total / inc if inc > 0 else float("inf")
                    cpir_lo = (
                        total / (row["uplift_ci_high"] * n1)
                        if row["uplift_ci_high"] > 0
                        else float("inf")
                    )
                    cpir_hi = (
                        total / (row["uplift_ci_low"] * n1)
                        if row["uplift_ci_low"] > 0
                        else float("inf")
                    )
                row.update(
                    cost_per_incremental_reactivation=cpir,
                    cost_per_incremental_reactivation_ci_low=cpir_lo,
                    cost_per_incremental_reactivation_ci_high=cpir_hi,
                )
            notes = []
            if n1 < min_arm_size or n0 < min_arm_size:
                notes.append(
                    f"arm has {n1} and control {n0} customers (< min_arm_size {min_arm_size}): "
                    "the interval is wide, do not act on it"
                )
            if row["uplift_ci_low"] <= 0 <= row["uplift_ci_high"]:
                notes.append("effect not distinguishable from 0 at this confidence")
            row["reliable"] = n1 >= min_arm_size and n0 >= min_arm_size
            row["note"] = "; ".join(notes)
            rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["skipped"] = skipped
    table.attrs["outcome"] = outcome
    table.attrs["conf_level"] = conf_level
    return table


def qini_by_arm(
    frame: pd.DataFrame,
    X: pd.DataFrame,
    outcome: str = "reactivated",
    learner: Any = None,
    test_size: float = 0.5,
    random_state: int = 0,
    k: float = 0.3,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Fit a multi-arm uplift learner on half the rows; Qini curves per arm on the other half.

    Parameters
    ----------
    frame : DataFrame
        An assignment frame of *one* campaign (``arm_id``, ``is_control``, ``outcome``).
    X : DataFrame
        Numeric features aligned with ``frame``.
    learner : uplift model, optional
        Default: :class:`~winback_ml.models.uplift.TLearnerUpliftModel`.

    Returns
    -------
    curves : dict arm -> Qini curve frame (see :func:`qini_curve`)
    scores : DataFrame with ``arm_id``, ``auuc``, ``qini``, ``uplift_at_k``, ``k``, ``n_test``
    """
    from sklearn.model_selection import train_test_split

    from winback_ml.models.uplift import (
        TLearnerUpliftModel,
        auuc_score,
        qini_curve,
        qini_score,
        uplift_at_k,
    )

    if frame["campaign_id"].nunique() != 1:
        raise ModelError(
            "qini_by_arm takes one campaign at a time. Fix: filter frame on campaign_id."
        )
    ctrl_ids = frame.loc[frame["is_control"].astype(bool), "arm_id"].unique()
    if len(ctrl_ids) != 1:
        raise DataContractError(
            f"qini_by_arm needs exactly one control arm; found {list(ctrl_ids)}. Fix: mark one arm is_control."
        )
    treat = frame["arm_id"].astype(str).to_numpy()
    y = frame[outcome].astype(float).to_numpy()
    idx_tr, idx_te = train_test_split(
        np.arange(len(frame)), test_size=test_size, random_state=random_state, stratify=treat
    )
    model = learner if learner is not None else TLearnerUpliftModel(random_state=random_state)
    model.set_params(control_arm=str(ctrl_ids[0]))
    model.fit(X.iloc[idx_tr], treat[idx_tr], y[idx_tr])
    u = model.predict_uplift(X.iloc[idx_te])
    curves: dict[str, pd.DataFrame] = {}
    rows = []
    for j, arm in enumerate(model.treatment_arms_):
        sel = np.isin(treat[idx_te], [arm, str(ctrl_ids[0])])
        yy = y[idx_te][sel]
        tt = (treat[idx_te][sel] == arm).astype(int)
        uu = u[sel, j]
        curves[arm] = qini_curve(yy, uu, tt)
        rows.append(
            {
                "arm_id": arm,
                "auuc": auuc_score(yy, uu, tt),
                "qini": qini_score(yy, uu, tt),
                "uplift_at_k": uplift_at_k(yy, uu, tt, k),
                "ate_test": float(yy[tt == 1].mean() - yy[tt == 0].mean()),
                "k": k,
                "n_test": int(sel.sum()),
            }
        )
    return curves, pd.DataFrame(rows)


def plot_arm_effects(
    table: pd.DataFrame, path: str | Path | None = None, title: str | None = None
) -> Any:
    """Horizontal bars of each arm's uplift with its interval; saved to ``path`` when given."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = [
        " / ".join(str(v) for v in r if pd.notna(v))
        for r in table[[c for c in ("campaign_id", "arm_id") if c in table.columns]].itertuples(
            index=False
        )
    ]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(table) + 1.5))
    yy = np.arange(len(table))
    err = np.vstack(
        [table["uplift"] - table["uplift_ci_low"], table["uplift_ci_high"] - table["uplift"]]
    )
    colors = [
        "tab:blue" if r else "tab:gray"
        for r in table.get("reliable", pd.Series(True, index=table.index))
    ]
    ax.barh(yy, table["uplift"], xerr=err, color=colors, alpha=0.8, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(yy, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"uplift in {table.attrs.get('outcome', 'outcome')} vs control (95 % CI)")
    ax.set_title(title or "Arm effects against control")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_qini_curves(
    curves: dict[str, pd.DataFrame], path: str | Path | None = None, title: str | None = None
) -> Any:
    """Qini curve per arm with the random-targeting line; saved to ``path`` when given."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for arm, c in curves.items():
        (line,) = ax.plot(c["fraction"], c["qini"], label=str(arm))
        ax.plot(c["fraction"], c["random"], ls="--", color=line.get_color(), lw=0.8)
    ax.set_xlabel("share of customers targeted (by predicted uplift)")
    ax.set_ylabel("incremental outcomes (Qini)")
    ax.set_title(title or "Qini curves per arm (dashed: random)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def evaluate_campaign_history(
    data: Any,
    output_dir: str | Path,
    as_of: Any = None,
    config: Any = None,
    min_arm_size: int = 50,
    random_state: int = 0,
) -> dict[str, Path]:
    """Evaluate every past campaign and write tables and plots under ``output_dir``.

    Writes

    * ``arms.csv``: every arm of every campaign against its control (a
      campaign without a control arm is left out and named in
      ``skipped_campaigns.txt``);
    * ``arms_pooled.csv``: arms pooled by offer type across campaigns (each
      campaign randomises with the same control share, so pooling keeps the
      comparison fair), with ``arms_pooled_by_reason.csv`` (reason at
      assignment: stated, else inferred) and
      ``arms_pooled_by_window.csv`` (contact window of the days lapsed at
      assignment; the hot/warm/lost segments are a scoring-time notion that
      would need interviews answered after the assignment, so the history is
      split by what was known then);
    * ``arm_effects.png``, ``qini.png`` (T-learner Qini curves per pooled
      offer type on a held-out half) and ``qini_scores.csv``.

    Returns the paths written.
    """
    from winback_ml.config import load_config
    from winback_ml.data.loader import ContractData, load_data
    from winback_ml.models.uplift import TLearnerUpliftModel
    from winback_ml.models.uplift_offer import offer_training_frame

    cfg = config if hasattr(config, "attribution_window_days") else load_config(config)
    cd = data if isinstance(data, ContractData) else load_data(data, as_of=as_of)
    T = pd.Timestamp(as_of) if as_of is not None else (cd.as_of or cd.events["occurred_at"].max())
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf = offer_training_frame(cd, T, cfg.attribution_window_days)
    if tf.empty:
        raise DataContractError(
            "No campaign assignment with a completed attribution window before as_of. "
            "Fix: pass a later --as-of or data with past campaigns."
        )
    files: dict[str, Path] = {}
    arms = evaluate_arms(tf, min_arm_size=min_arm_size, on_missing_control="skip")
    files["arms"] = out / "arms.csv"
    arms.to_csv(files["arms"], index=False)
    if arms.attrs.get("skipped"):
        files["skipped"] = out / "skipped_campaigns.txt"
        files["skipped"].write_text("\n".join(arms.attrs["skipped"]) + "\n")
    pooled = tf.assign(
        campaign_id="pooled",
        arm_id=np.where(tf["is_control"], "control", tf["offer_type"].astype(str)),
    )
    pooled = pooled.drop(
        columns=[
            c
            for c in ("discount_pct", "discount_months", "channel", "message_variant")
            if c in pooled
        ]
    )
    pooled["contact_window"] = pd.cut(
        pooled["days_lapsed"],
        [-1, 13, 29, 90, np.inf],
        labels=["too_soon", "early", "prime", "late"],
    ).astype(str)
    for name, by in (
        ("arms_pooled", None),
        ("arms_pooled_by_reason", "cancel_reason"),
        ("arms_pooled_by_window", "contact_window"),
    ):
        t = evaluate_arms(pooled, by=by, min_arm_size=min_arm_size, on_missing_control="skip")
        files[name] = out / f"{name}.csv"
        t.to_csv(files[name], index=False)
        if by is None:
            plot_arm_effects(
                t, out / "arm_effects.png", title="Pooled arm effects on reactivation (95 % CI)"
            )
            files["arm_effects_png"] = out / "arm_effects.png"
    feats = [c for c in tf.columns if c.startswith("p_")] + [
        "days_lapsed",
        "can_email",
        "can_sms",
        "app_customer",
        "log_mrr",
        "yearly",
        "coupon",
        "returned_before",
    ]
    try:
        curves, scores = qini_by_arm(
            pooled.reset_index(drop=True),
            pooled[feats].reset_index(drop=True).astype(float),
            learner=TLearnerUpliftModel(random_state=random_state, min_arm_size=10),
            random_state=random_state,
        )
        plot_qini_curves(curves, out / "qini.png", title="Qini per offer type (held-out half)")
        files["qini_png"] = out / "qini.png"
        files["qini_scores"] = out / "qini_scores.csv"
        scores.to_csv(files["qini_scores"], index=False)
    except (ModelError, ValueError) as e:
        (out / "qini_skipped.txt").write_text(f"Qini curves not computed: {e}\n")
        files["qini_skipped"] = out / "qini_skipped.txt"
    return files
