"""Win-back KPIs as the seed documents define them, with their targets.

The seed's module description tracks *re-subscription rates, ARPU of
recovered accounts and churn-rate reduction*, with targets: reactivation
rate over 15 %, cost per reactivated user under $2.00, average revenue per
recovered user $45.00. This module computes them from the contract tables
(campaigns, arms and assignments, including those the dispatch stage
writes, and the events that show who came back).

Definitions (also in :data:`KPI_DEFINITIONS`, shown in reports)
----------------------------------------------------------------
assignment
    A row of ``campaign_assignments`` of a ``winback`` campaign whose
    attribution window (``attribution_window_days``, default 30) has ended
    by ``as_of``. Later ones are *pending* and left out (counted).
reactivation
    A ``reactivated`` event, or a ``subscribed`` event of a customer who had
    a subscription end before, in ``(assigned_at, assigned_at + window]``.
re-subscription rate
    Reactivations / assignments among *contacted* customers (arms with
    ``is_control = false``). The *holdout rate* is the same among the
    control arm; the *incremental rate* is their difference, with a
    Newcombe 95 % interval. The seed target (> 15 %) is compared with the
    contacted rate; the incremental rate is what the campaign caused.
ARPU of recovered accounts
    Mean ``mrr`` (monthly recurring revenue, reporting currency, list price
    before any win-back discount) of the subscriptions the *contacted*
    reactivated accounts came back on. The discount is a cost (below), so
    it is not subtracted here too. ``net_revenue_90d`` (money actually
    collected in the 90 days after the return, refunds subtracted) is shown
    beside it.
cost per reactivated user
    (contact cost of every contacted assignment + discount cost given) /
    *incremental* reactivations, where incremental = reactivations of the
    contacted - contacted x holdout rate. Discount cost = ``mrr x
    discount_pct / 100 x discount_months`` for ``discount`` and
    ``early_renewal``, ``mrr x discount_months`` (at least one month) for
    ``free_month``, 0 for ``none``/``feature_trial``/``resume_billing``, and
    only for contacted customers who came back (an unredeemed offer costs
    nothing). Infinite when the campaign caused no reactivation. Cost per
    *gross* reactivation (same cost / all contacted reactivations) is shown
    beside it.
churn-rate reduction
    From ``save``/``proactive`` campaigns when there are any: churn rate of
    the holdout - churn rate of the contacted, where churn = a
    ``cancel_requested``, ``cancelled`` or ``expired`` event within
    ``churn_window_days`` (default 90) of assignment. Without such
    campaigns: the monthly churn rate of the active base (subscriptions
    ending in a month / live at its start) over the baseline months minus
    that over the recent months (positive = churn went down).
voluntary / involuntary
    A win-back assignment is *involuntary* when the customer's last ended
    subscription before ``assigned_at`` ended with reason
    ``payment_failed``; *voluntary* otherwise. A churn is involuntary when
    its reason is ``payment_failed``. Every KPI is given for ``all`` and for
    each of the two apart.

Invariants: nothing after ``as_of`` is read (events, assignments,
subscriptions as they stood); timestamps tz-naive UTC; money in the
reporting currency; rates are fractions (0.15 = 15 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.exceptions import DataContractError

__all__ = [
    "KPITargets",
    "SEED_TARGETS",
    "KPI_DEFINITIONS",
    "KPIReport",
    "kpi_outcomes",
    "resubscription_rates",
    "recovered_arpu",
    "cost_per_reactivation",
    "campaign_churn_reduction",
    "monthly_churn_rates",
    "churn_rate_reduction",
    "weekly_kpis",
    "kpi_report",
]


@dataclass(frozen=True)
class KPITargets:
    """Targets of the seed's win-back module (money in the reporting currency)."""

    reactivation_rate: float = 0.15  # more than
    cost_per_reactivation: float = 2.00  # less than
    arpu_recovered: float = 45.00  # at least


SEED_TARGETS = KPITargets()

KPI_DEFINITIONS: dict[str, str] = {
    "resubscription_rate": (
        "Contacted win-back assignments (window over by as_of) that reactivated within the "
        "attribution window, divided by those assignments. Target: more than 15 %."
    ),
    "holdout_rate": "The same rate in the randomized holdout (control arm, not contacted).",
    "incremental_rate": (
        "Re-subscription rate minus holdout rate: the reactivations the contact caused, "
        "per contacted customer (Newcombe 95 % interval)."
    ),
    "arpu_recovered": (
        "Mean MRR (list price, reporting currency) of the subscriptions on which contacted "
        "customers came back. Discounts are counted as cost, not subtracted here. Target: $45.00."
    ),
    "net_revenue_90d": (
        "Mean money collected from a recovered account in the 90 days after its return "
        "(refunds subtracted; less when 90 days have not passed by as_of)."
    ),
    "cost_per_reactivation": (
        "(Contact cost of all contacted assignments + discount revenue given to the contacted "
        "who returned) / incremental reactivations (contacted reactivations minus contacted "
        "x holdout rate). Infinite when nothing was caused. Target: under $2.00."
    ),
    "cost_per_gross_reactivation": (
        "The same cost divided by all contacted reactivations (also those who would have "
        "returned anyway)."
    ),
    "churn_rate_reduction": (
        "Holdout churn rate minus contacted churn rate in save/proactive campaigns (churn = a "
        "cancel request or end within 90 days); without such campaigns, the active base's "
        "monthly churn rate in the baseline months minus the recent months. Positive = less churn."
    ),
    "voluntary_involuntary": (
        "Involuntary = the lapse (or churn) had reason payment_failed; voluntary = any other "
        "reason. Each KPI is given for all, voluntary and involuntary apart."
    ),
}

_CHURN_EVENTS = ("cancel_requested", "cancelled", "expired")


def _tables(data: Any) -> tuple[dict[str, pd.DataFrame], pd.Timestamp | None]:
    if hasattr(data, "tables") and callable(data.tables):
        return data.tables(), getattr(data, "as_of", None)
    if isinstance(data, Mapping):
        return {k: v for k, v in data.items() if v is not None}, None
    raise DataContractError(
        f"KPIs need ContractData or a dict of contract tables. Got {type(data).__name__}. "
        "Fix: pass load_data(...) or world.tables."
    )


def _resolve_as_of(tables: dict[str, pd.DataFrame], as_of: Any, data_as_of: Any) -> pd.Timestamp:
    if as_of is not None:
        ts = pd.Timestamp(as_of)
        if data_as_of is not None and ts > pd.Timestamp(data_as_of):
            raise DataContractError(
                f"KPIs as of {ts} were asked of data loaded as of {pd.Timestamp(data_as_of)}: "
                "what happened in between is not in the data, so windows would close with "
                "their returns missing. Fix: pass as_of no later than the data's, or load the "
                "data with load_data(source, as_of=...) at the report date."
            )
        return ts
    if data_as_of is not None:
        return pd.Timestamp(data_as_of)
    return tables["events"]["occurred_at"].max().normalize() + pd.Timedelta(days=1)


def _discount_cost(
    mrr: pd.Series, offer: pd.Series, pct: pd.Series, months: pd.Series
) -> pd.Series:
    pct = pd.to_numeric(pct, errors="coerce").fillna(0.0).astype(float)
    months = pd.to_numeric(months, errors="coerce").fillna(0.0).astype(float)
    mrr = pd.to_numeric(mrr, errors="coerce").fillna(0.0).astype(float)
    out = np.where(
        offer.isin(["discount", "early_renewal"]),
        mrr * pct / 100.0 * months,
        np.where(offer == "free_month", mrr * np.maximum(months, 1.0), 0.0),
    )
    return pd.Series(out, index=mrr.index, dtype=float)


def _lapse_type(asg: pd.DataFrame, subs: pd.DataFrame) -> pd.Series:
    """voluntary/involuntary/none per assignment from the last subscription ended before it."""
    ended = subs.loc[subs["ended_at"].notna(), ["customer_id", "ended_at", "cancel_reason"]]
    left = asg[["customer_id", "assigned_at"]].reset_index().sort_values("assigned_at")
    right = ended.sort_values("ended_at")
    m = pd.merge_asof(
        left,
        right,
        left_on="assigned_at",
        right_on="ended_at",
        by="customer_id",
        direction="backward",
        allow_exact_matches=True,
    ).set_index("index")
    kind = np.where(
        m["ended_at"].isna(),
        "none",
        np.where(m["cancel_reason"] == "payment_failed", "involuntary", "voluntary"),
    )
    return pd.Series(kind, index=m.index).reindex(asg.index)


def kpi_outcomes(
    data: Any,
    as_of: Any = None,
    *,
    attribution_window_days: int = 30,
    objectives: tuple[str, ...] = ("winback",),
) -> pd.DataFrame:
    """One row per win-back assignment whose attribution window is over, with its outcome.

    Parameters
    ----------
    data : ContractData or dict of contract tables (campaign tables needed).
    as_of : only what is known by then is read; default ``data.as_of`` or
        midnight after the last event.
    attribution_window_days : a reactivation this soon after assignment counts.
    objectives : campaign objectives kept (``winback`` by default).

    Returns
    -------
    DataFrame with the assignment and arm columns, ``objective``,
    ``reactivated`` (0/1), ``reactivated_at``, ``revenue`` (collected in
    the 90 days after the return), ``return_mrr``, ``discount_cost``,
    ``lapse_type`` (``voluntary``/``involuntary``/``none``) and
    ``contacted`` (= not control). ``attrs["pending"]`` counts the
    assignments whose window was still open at ``as_of``.

    Raises
    ------
    DataContractError
        The campaign tables are absent.
    """
    from winback_ml.models.uplift_campaigns import build_campaign_outcomes

    tables, data_as_of = _tables(data)
    missing = [n for n in ("campaigns", "campaign_arms", "campaign_assignments") if n not in tables]
    if missing:
        raise DataContractError(
            f"The KPIs need the campaign tables; {missing} absent. Export campaigns, "
            "campaign_arms and campaign_assignments (the dispatch stage writes assignments too)."
        )
    ts = _resolve_as_of(tables, as_of, data_as_of)
    camp = tables["campaigns"][["campaign_id", "objective"]].drop_duplicates("campaign_id")
    keep = set(camp.loc[camp["objective"].isin(objectives), "campaign_id"])
    sub = dict(tables)
    asg_all = tables["campaign_assignments"]
    asg_all = asg_all[asg_all["assigned_at"] <= ts]
    sub["campaign_assignments"] = asg_all[asg_all["campaign_id"].isin(keep)]
    out = build_campaign_outcomes(
        sub, ts, attribution_window_days=attribution_window_days, revenue_days=90
    )
    pending = int(out.attrs.get("incomplete", 0))
    out = out.merge(camp, on="campaign_id", how="left")
    out["contacted"] = ~out["is_control"].astype(bool)
    subs = tables["subscriptions"]
    ev = tables["events"]
    ev = ev[ev["occurred_at"] <= ts]
    # the subscription each returner came back on: the first reactivation event in the window
    from winback_ml.models.uplift_campaigns import reactivation_events

    re = reactivation_events(ev).rename(columns={"occurred_at": "reactivated_at"})
    back = out.loc[out["reactivated"] == 1, ["campaign_id", "customer_id", "reactivated_at"]]
    back = back.merge(re, on=["customer_id", "reactivated_at"], how="left")
    back = back.drop_duplicates(["campaign_id", "customer_id"])
    mrr = subs.drop_duplicates("subscription_id").set_index("subscription_id")["mrr"]
    back["return_mrr"] = back["subscription_id"].map(mrr).astype(float)
    out = out.merge(
        back[["campaign_id", "customer_id", "return_mrr"]],
        on=["campaign_id", "customer_id"],
        how="left",
    )
    for col, default in (("discount_pct", 0.0), ("discount_months", 0), ("offer_type", "none")):
        if col not in out.columns:
            out[col] = default
    got = (out["reactivated"] == 1) & out["contacted"]
    out["discount_cost"] = np.where(
        got,
        _discount_cost(
            out["return_mrr"], out["offer_type"], out["discount_pct"], out["discount_months"]
        ),
        0.0,
    )
    out["lapse_type"] = _lapse_type(out, subs) if len(out) else pd.Series(dtype=object)
    out.attrs["pending"] = pending
    out.attrs["as_of"] = ts
    out.attrs["attribution_window_days"] = int(attribution_window_days)
    return out


def _groups(outcomes: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    groups = [("all", outcomes)]
    for kind in ("voluntary", "involuntary"):
        groups.append((kind, outcomes[outcomes["lapse_type"] == kind]))
    return groups


def resubscription_rates(outcomes: pd.DataFrame, conf_level: float = 0.95) -> pd.DataFrame:
    """Contacted, holdout and incremental re-subscription rates, all and by lapse type.

    Returns
    -------
    DataFrame indexed by ``group`` (``all``, ``voluntary``, ``involuntary``)
    with ``n_contacted``, ``n_holdout``, ``reactivated_contacted``,
    ``reactivated_holdout``, ``resubscription_rate`` (with Wilson
    ``rate_ci_low``/``rate_ci_high``), ``holdout_rate``,
    ``incremental_rate`` (with Newcombe ``incr_ci_low``/``incr_ci_high``),
    ``incremental_reactivations``. Rates are NaN where a side is empty.
    """
    from winback_ml.models.uplift_campaigns import newcombe_diff_ci, wilson_ci

    rows = []
    for name, g in _groups(outcomes):
        contacted = g["contacted"].astype(bool).to_numpy()
        t = g.loc[contacted]
        c = g.loc[~contacted]
        n1, k1 = len(t), float(t["reactivated"].sum())
        n0, k0 = len(c), float(c["reactivated"].sum())
        r1 = k1 / n1 if n1 else np.nan
        r0 = k0 / n0 if n0 else np.nan
        lo, hi = wilson_ci(k1, n1, conf_level) if n1 else (np.nan, np.nan)
        if n1 and n0:
            dlo, dhi = newcombe_diff_ci(k1, n1, k0, n0, conf_level)
        else:
            dlo = dhi = np.nan
        rows.append(
            {
                "group": name,
                "n_contacted": n1,
                "n_holdout": n0,
                "reactivated_contacted": int(k1),
                "reactivated_holdout": int(k0),
                "resubscription_rate": r1,
                "rate_ci_low": float(lo),
                "rate_ci_high": float(hi),
                "holdout_rate": r0,
                "incremental_rate": r1 - r0,
                "incr_ci_low": float(dlo),
                "incr_ci_high": float(dhi),
                "incremental_reactivations": k1 - n1 * r0 if n0 else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("group")


def recovered_arpu(outcomes: pd.DataFrame) -> pd.DataFrame:
    """ARPU (mean return MRR) and mean 90-day net revenue of recovered contacted accounts.

    Returns a DataFrame indexed by ``group`` with ``n_recovered``,
    ``arpu_recovered``, ``arpu_ci_low``/``arpu_ci_high`` (normal 95 %) and
    ``net_revenue_90d``.
    """
    rows = []
    for name, g in _groups(outcomes):
        r = g.loc[g["contacted"].astype(bool).to_numpy() & (g["reactivated"] == 1).to_numpy()]
        x = r["return_mrr"].dropna().astype(float)
        n = len(x)
        mean = float(x.mean()) if n else np.nan
        se = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        rows.append(
            {
                "group": name,
                "n_recovered": len(r),
                "arpu_recovered": mean,
                "arpu_ci_low": mean - 1.96 * se,
                "arpu_ci_high": mean + 1.96 * se,
                "net_revenue_90d": float(r["revenue"].mean()) if len(r) else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("group")


def cost_per_reactivation(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Cost per incremental (and per gross) reactivation, all and by lapse type.

    Returns a DataFrame indexed by ``group`` with ``contact_cost``,
    ``discount_cost``, ``total_cost``, ``incremental_reactivations``,
    ``cost_per_reactivation`` (per incremental; ``inf`` when none were
    caused) and ``cost_per_gross_reactivation``.
    """
    rates = resubscription_rates(outcomes)
    rows = []
    for name, g in _groups(outcomes):
        t = g.loc[g["contacted"].astype(bool).to_numpy()]
        contact = float(t["contact_cost"].astype(float).sum())
        disc = float(t["discount_cost"].sum())
        total = contact + disc
        incr = rates.loc[name, "incremental_reactivations"]
        gross = float(t["reactivated"].sum())
        if pd.isna(incr) or len(t) == 0:
            per = np.nan
        elif incr <= 0:
            per = np.inf
        else:
            per = total / incr
        rows.append(
            {
                "group": name,
                "contact_cost": contact,
                "discount_cost": disc,
                "total_cost": total,
                "incremental_reactivations": incr,
                "cost_per_reactivation": per,
                "cost_per_gross_reactivation": total / gross if gross else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("group")


def campaign_churn_reduction(
    data: Any, as_of: Any = None, *, churn_window_days: int = 90
) -> pd.DataFrame:
    """Holdout minus contacted churn rate in ``save``/``proactive`` campaigns.

    Churn = a ``cancel_requested``/``cancelled``/``expired`` event in
    ``(assigned_at, assigned_at + churn_window_days]``; only assignments
    whose window is over by ``as_of`` count. Involuntary = the churn event's
    reason is ``payment_failed``.

    Returns a DataFrame indexed by ``group`` (``all``, ``voluntary``,
    ``involuntary``: which churns are counted) with ``n_contacted``,
    ``n_holdout``, ``churn_contacted``, ``churn_holdout`` and
    ``churn_rate_reduction`` (holdout - contacted); empty when there are no
    such campaigns.
    """
    tables, data_as_of = _tables(data)
    cols = ["n_contacted", "n_holdout", "churn_contacted", "churn_holdout", "churn_rate_reduction"]
    if not all(n in tables for n in ("campaigns", "campaign_arms", "campaign_assignments")):
        return pd.DataFrame(columns=cols).rename_axis("group")
    ts = _resolve_as_of(tables, as_of, data_as_of)
    camp = tables["campaigns"]
    keep = set(camp.loc[camp["objective"].isin(["save", "proactive"]), "campaign_id"])
    asg = tables["campaign_assignments"]
    asg = asg[asg["campaign_id"].isin(keep)]
    window = pd.Timedelta(days=int(churn_window_days))
    asg = asg[asg["assigned_at"] + window <= ts]
    if asg.empty:
        return pd.DataFrame(columns=cols).rename_axis("group")
    arms = tables["campaign_arms"][["campaign_id", "arm_id", "is_control"]]
    a = asg.merge(arms, on=["campaign_id", "arm_id"], how="left")
    if a["is_control"].isna().any():  # unknown arm: neither contacted nor holdout is known
        bad = a.loc[a["is_control"].isna(), ["campaign_id", "arm_id"]].drop_duplicates()
        raise DataContractError(
            "campaign_assignments names arms missing from campaign_arms: "
            f"{bad.head(5).to_dict('records')}. Fix: add the arms or correct arm_id."
        )
    ev = tables["events"]
    ev = ev[(ev["occurred_at"] <= ts) & ev["event_type"].isin(_CHURN_EVENTS)]
    m = a[["campaign_id", "customer_id", "assigned_at"]].merge(
        ev[["customer_id", "occurred_at", "reason"]], on="customer_id"
    )
    m = m[(m["occurred_at"] > m["assigned_at"]) & (m["occurred_at"] <= m["assigned_at"] + window)]
    first = m.sort_values("occurred_at").drop_duplicates(["campaign_id", "customer_id"])
    a = a.merge(
        first[["campaign_id", "customer_id", "reason"]].assign(churned=1),
        on=["campaign_id", "customer_id"],
        how="left",
    )
    a["churned"] = a["churned"].fillna(0).astype(int)
    invol = a["reason"] == "payment_failed"
    rows = []
    for name, flag in (
        ("all", a["churned"] == 1),
        ("voluntary", (a["churned"] == 1) & ~invol),
        ("involuntary", (a["churned"] == 1) & invol),
    ):
        t = ~a["is_control"].astype(bool)
        c1 = float(flag[t].mean()) if t.any() else np.nan
        c0 = float(flag[~t].mean()) if (~t).any() else np.nan
        rows.append(
            {
                "group": name,
                "n_contacted": int(t.sum()),
                "n_holdout": int((~t).sum()),
                "churn_contacted": c1,
                "churn_holdout": c0,
                "churn_rate_reduction": c0 - c1,
            }
        )
    return pd.DataFrame(rows).set_index("group")


def monthly_churn_rates(data: Any, as_of: Any = None, *, months: int = 12) -> pd.DataFrame:
    """Monthly churn rate of the active base over the last complete months before ``as_of``.

    For each calendar month: ``active_start`` = subscriptions started before
    the month and not ended before it; ``churned`` = those of them whose
    ``ended_at`` falls in the month; ``churn_rate`` = churned / active,
    split into ``voluntary_rate`` and ``involuntary_rate`` (reason
    ``payment_failed``).
    """
    tables, data_as_of = _tables(data)
    ts = _resolve_as_of(tables, as_of, data_as_of)
    s = tables["subscriptions"]
    started = s["started_at"]
    ended = s["ended_at"].where(s["ended_at"] <= ts)
    last = (ts.normalize() - pd.offsets.MonthBegin(1)) if ts.day != 1 else ts.normalize()
    starts = pd.date_range(end=last - pd.offsets.MonthBegin(1), periods=months, freq="MS")
    invol = s["cancel_reason"] == "payment_failed"
    rows = []
    for m0 in starts:
        m1 = m0 + pd.offsets.MonthBegin(1)
        live = (started < m0) & (ended.isna() | (ended >= m0))
        gone = live & ended.notna() & (ended < m1)
        n = int(live.sum())
        rows.append(
            {
                "month": m0,
                "active_start": n,
                "churned": int(gone.sum()),
                "churn_rate": gone.sum() / n if n else np.nan,
                "voluntary_rate": (gone & ~invol).sum() / n if n else np.nan,
                "involuntary_rate": (gone & invol).sum() / n if n else np.nan,
            }
        )
    return pd.DataFrame(rows)


def churn_rate_reduction(
    data: Any, as_of: Any = None, *, recent_months: int = 3, baseline_months: int = 3
) -> pd.DataFrame:
    """Churn-rate reduction: from save/proactive campaigns, else recent vs baseline months.

    Returns a DataFrame indexed by ``group`` with ``churn_rate_reduction``,
    ``baseline`` and ``current`` rates and ``basis`` (``"holdout"`` or
    ``"baseline_period"``).
    """
    camp = campaign_churn_reduction(data, as_of)
    if len(camp) and camp.loc["all", "n_holdout"] > 0:
        out = camp.rename(columns={"churn_holdout": "baseline", "churn_contacted": "current"})
        out["basis"] = "holdout"
        return out[["churn_rate_reduction", "baseline", "current", "basis"]]
    m = monthly_churn_rates(data, as_of, months=recent_months + baseline_months)
    recent = m.tail(recent_months)
    base = m.head(baseline_months)
    rows = []
    for name, col in (
        ("all", "churn_rate"),
        ("voluntary", "voluntary_rate"),
        ("involuntary", "involuntary_rate"),
    ):
        b, c = float(base[col].mean()), float(recent[col].mean())
        rows.append(
            {
                "group": name,
                "churn_rate_reduction": b - c,
                "baseline": b,
                "current": c,
                "basis": "baseline_period",
            }
        )
    return pd.DataFrame(rows).set_index("group")


def weekly_kpis(outcomes: pd.DataFrame) -> pd.DataFrame:
    """KPIs per week of assignment (weeks start on Monday): the trend frame.

    Columns: ``week``, ``n_contacted``, ``n_holdout``,
    ``resubscription_rate``, ``holdout_rate``, ``incremental_rate``,
    ``arpu_recovered``, ``cost_per_reactivation``.
    """
    cols = [
        "week",
        "n_contacted",
        "n_holdout",
        "resubscription_rate",
        "holdout_rate",
        "incremental_rate",
        "arpu_recovered",
        "cost_per_reactivation",
    ]
    if outcomes.empty:
        return pd.DataFrame(columns=cols)
    o = outcomes.copy()
    o["week"] = o["assigned_at"].dt.normalize() - pd.to_timedelta(
        o["assigned_at"].dt.dayofweek, unit="D"
    )
    rows = []
    for week, g in o.groupby("week", sort=True):
        r = resubscription_rates(g).loc["all"]
        a = recovered_arpu(g).loc["all"]
        c = cost_per_reactivation(g).loc["all"]
        rows.append(
            {
                "week": week,
                "n_contacted": int(r["n_contacted"]),
                "n_holdout": int(r["n_holdout"]),
                "resubscription_rate": r["resubscription_rate"],
                "holdout_rate": r["holdout_rate"],
                "incremental_rate": r["incremental_rate"],
                "arpu_recovered": a["arpu_recovered"],
                "cost_per_reactivation": c["cost_per_reactivation"],
            }
        )
    return pd.DataFrame(rows, columns=cols)


@dataclass
class KPIReport:
    """Every KPI, against the seed targets, with definitions.

    Attributes
    ----------
    summary : one row per (kpi, group): ``value``, ``ci_low``, ``ci_high``,
        ``target``, ``direction`` (``>``, ``<``, ``>=`` or ""), ``met``
        (bool or None when there is no target or no value), ``n``.
    rates, arpu, cost, churn : the frames of the functions above.
    weekly : :func:`weekly_kpis`.
    monthly_churn : :func:`monthly_churn_rates`.
    outcomes : :func:`kpi_outcomes` (one row per assignment; no PII).
    as_of, pending : the date and the assignments still in their window.
    definitions : :data:`KPI_DEFINITIONS`.
    notes : what could not be computed and why.
    """

    summary: pd.DataFrame
    rates: pd.DataFrame
    arpu: pd.DataFrame
    cost: pd.DataFrame
    churn: pd.DataFrame
    weekly: pd.DataFrame
    monthly_churn: pd.DataFrame
    outcomes: pd.DataFrame
    as_of: pd.Timestamp
    pending: int = 0
    targets: KPITargets = SEED_TARGETS
    definitions: dict[str, str] = field(default_factory=lambda: dict(KPI_DEFINITIONS))
    notes: list[str] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        """The four seed KPIs (group ``all``) as plain floats, for logging."""
        s = self.summary[self.summary["group"] == "all"].set_index("kpi")["value"]
        return {k: float(v) for k, v in s.items() if pd.notna(v)}


def _met(value: float, target: float | None, direction: str) -> bool | None:
    if target is None or pd.isna(target) or value is None or pd.isna(value):
        return None
    if direction == ">":
        return bool(value > target)
    if direction == "<":
        return bool(value < target)
    return bool(value >= target)


def kpi_report(
    data: Any,
    as_of: Any = None,
    *,
    config: Any = None,
    targets: KPITargets = SEED_TARGETS,
) -> KPIReport:
    """All win-back KPIs as of a date, against the seed targets.

    Parameters
    ----------
    data : ContractData (preferably loaded with ``as_of``) or dict of tables.
    as_of : default ``data.as_of`` or midnight after the last event.
    config : a :class:`~winback_ml.config.BusinessConfig` (its
        ``attribution_window_days``) or None for the defaults.
    targets : default the seed's (> 15 %, < $2.00, $45.00).

    Examples
    --------
    >>> from winback_ml.data.synthetic import make_world  # doctest: +SKIP
    >>> rep = kpi_report(make_world(2000, 1).tables)  # doctest: +SKIP
    >>> rep.summary[["kpi", "group", "value", "target", "met"]]  # doctest: +SKIP
    """
    window = int(getattr(config, "attribution_window_days", 30) or 30)
    tables, data_as_of = _tables(data)
    ts = _resolve_as_of(tables, as_of, data_as_of)
    notes: list[str] = []
    try:
        outcomes = kpi_outcomes(data, ts, attribution_window_days=window)
    except DataContractError as e:
        notes.append(f"Campaign KPIs not computed: {e}")
        outcomes = pd.DataFrame(
            columns=[
                "campaign_id",
                "customer_id",
                "arm_id",
                "assigned_at",
                "contact_cost",
                "contacted",
                "reactivated",
                "return_mrr",
                "revenue",
                "discount_cost",
                "lapse_type",
            ]
        )
        outcomes["assigned_at"] = pd.to_datetime(outcomes["assigned_at"])
    pending = int(outcomes.attrs.get("pending", 0))
    if pending:
        notes.append(
            f"{pending} assignments are still inside their {window}-day attribution window at "
            f"{ts.date()} and are not counted yet."
        )
    rates = resubscription_rates(outcomes)
    arpu = recovered_arpu(outcomes)
    cost = cost_per_reactivation(outcomes)
    churn = churn_rate_reduction(data, ts)
    if len(churn) and churn["basis"].iloc[0] == "baseline_period":
        notes.append(
            "No save/proactive campaign with a holdout: churn-rate reduction compares the active "
            "base's monthly churn rate in the 3 months before the last 3 with the last 3."
        )
    rows = []
    for g in ("all", "voluntary", "involuntary"):
        r, a, c = rates.loc[g], arpu.loc[g], cost.loc[g]
        rows += [
            ("resubscription_rate", g, r["resubscription_rate"], r["rate_ci_low"],
             r["rate_ci_high"], targets.reactivation_rate, ">", r["n_contacted"]),
            ("holdout_rate", g, r["holdout_rate"], np.nan, np.nan, None, "", r["n_holdout"]),
            ("incremental_rate", g, r["incremental_rate"], r["incr_ci_low"], r["incr_ci_high"],
             None, "", r["n_contacted"]),
            ("arpu_recovered", g, a["arpu_recovered"], a["arpu_ci_low"], a["arpu_ci_high"],
             targets.arpu_recovered, ">=", a["n_recovered"]),
            ("net_revenue_90d", g, a["net_revenue_90d"], np.nan, np.nan, None, "",
             a["n_recovered"]),
            ("cost_per_reactivation", g, c["cost_per_reactivation"], np.nan, np.nan,
             targets.cost_per_reactivation, "<", r["n_contacted"]),
            ("cost_per_gross_reactivation", g, c["cost_per_gross_reactivation"], np.nan, np.nan,
             None, "", r["n_contacted"]),
        ]  # fmt: skip
        if g in churn.index:
            ch = churn.loc[g]
            rows.append(
                ("churn_rate_reduction", g, ch["churn_rate_reduction"], np.nan, np.nan, 0.0, ">",
                 np.nan)
            )  # fmt: skip
    summary = pd.DataFrame(
        rows, columns=["kpi", "group", "value", "ci_low", "ci_high", "target", "direction", "n"]
    )
    summary["met"] = pd.Series(
        [
            _met(v, t, d)
            for v, t, d in zip(
                summary["value"], summary["target"], summary["direction"], strict=True
            )
        ],
        index=summary.index,
        dtype=object,
    )
    summary["definition"] = summary["kpi"].map(KPI_DEFINITIONS)
    return KPIReport(
        summary=summary,
        rates=rates,
        arpu=arpu,
        cost=cost,
        churn=churn,
        weekly=weekly_kpis(outcomes),
        monthly_churn=monthly_churn_rates(data, ts),
        outcomes=outcomes,
        as_of=ts,
        pending=pending,
        targets=targets,
        notes=notes,
    )
