"""The offer optimizer: for each lapsed customer, the offer and channel worth their cost.

For every customer ``i`` and every candidate ``a = (offer, channel)`` of the
business config's catalog x channels, the expected incremental profit is

``eip_i(a) = P(return | a) * LTV(offer) - contact_cost(channel) - P(return | no contact) * LTV(no offer)``

Every customer who returns within the attribution window after a contact
gets the offer, so ``P(return | a) * LTV(offer)`` already charges the
discount to those who would have come back anyway.

Algorithm
---------
1. **Eligibility.** A channel is a candidate only with consent: ``email``
   needs ``can_email``, ``sms`` needs ``can_sms``, ``in_app`` needs
   ``can_in_app``, ``multi`` (e-mail and SMS) needs both. Candidates whose
   response is unknown (``uplift_fn`` returns NaN: an offer the history never
   tried) are dropped and listed in ``attrs["excluded"]``.
2. **Unconstrained choice.** Each customer takes the candidate with the
   highest ``eip``; a customer whose best ``eip`` is not above
   ``min_profit`` (default 0) is left alone (``contact = False``).
3. **Constraints** (only when set). The expected *spend* of a candidate is
   its contact cost plus its expected incentive cost, the list-price revenue
   given away to returners (``P(return | a) * (LTV(no offer) - LTV(offer)) /
   margin``). Its expected incremental reactivations are
   ``P(return | a) - P(return | no contact)``.

   * ``budget``: total expected spend <= budget;
   * ``max_cost_per_reactivation``: total expected spend / total expected
     incremental reactivations <= the cap (the KPI "cost per reactivated user").

   Both are handled by Lagrangian relaxation: each customer maximises
   ``eip - lam * spend - mu * (spend - cap * dreact)`` over its candidates
   and "no contact" (value 0); ``lam`` and ``mu`` are found by bisection
   (the smallest multipliers that satisfy the constraints), so a customer
   may be moved to a cheaper offer rather than dropped. Because the
   relaxed problem is discrete, a final greedy pass removes the contacts
   with the lowest ``eip`` per unit of spend until both constraints hold
   exactly, and then re-adds left-out positive contacts that still fit.
4. **Ranking.** Contacted customers first, by ``eip`` descending (rank 1 =
   contact first); then everyone left alone.

The output is the contract's ``targets`` table (columns
:data:`TARGET_COLUMNS`, in order); ``attrs["summary"]`` holds the totals.

Invariants: one row per customer of the cohort; ``contact = False`` rows
have ``offer_type = "none"``, ``p_return_offer = p_return_base`` and
``expected_incremental_profit = 0``; money in the reporting currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.config import BusinessConfig, Offer, load_config
from winback_ml.exceptions import OptimizationError

__all__ = [
    "TARGET_COLUMNS",
    "CHANNEL_CONSENT",
    "Candidate",
    "candidate_table",
    "optimize_offers",
    "policy_totals",
]

TARGET_COLUMNS = [
    "customer_id",
    "segment",
    "cancel_reason",
    "reason_source",
    "days_lapsed",
    "p_return_base",
    "p_return_offer",
    "expected_ltv",
    "contact",
    "offer_type",
    "discount_pct",
    "discount_months",
    "channel",
    "expected_incremental_profit",
    "rank",
    "model_version",
]

#: Consent columns a channel needs (all of them).
CHANNEL_CONSENT: dict[str, tuple[str, ...]] = {
    "email": ("can_email",),
    "sms": ("can_sms",),
    "in_app": ("can_in_app",),
    "multi": ("can_email", "can_sms"),
}

LtvFn = Callable[[pd.DataFrame, Offer | None], np.ndarray]
ResponseFn = Callable[[pd.DataFrame, Offer, str], np.ndarray]


@dataclass(frozen=True)
class Candidate:
    """One (offer, channel) candidate."""

    offer: Offer
    channel: str

    @property
    def key(self) -> str:
        return f"{self.offer.key}@{self.channel}"


def _consent(cohort: pd.DataFrame, channel: str) -> np.ndarray:
    cols = CHANNEL_CONSENT[channel]
    missing = [c for c in cols if c not in cohort.columns]
    if missing:
        raise OptimizationError(
            f"The cohort lacks consent columns {missing} needed for channel {channel!r}. "
            "Fix: build it with winback_ml.cohort.build_lapsed_cohort (can_email, can_sms, can_in_app)."
        )
    ok = np.ones(len(cohort), dtype=bool)
    for c in cols:
        ok &= _consent_flags(cohort, c)
    return ok


_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", ""}


def _consent_flags(cohort: pd.DataFrame, col: str) -> np.ndarray:
    """A consent column as booleans; missing = no consent; anything unreadable is refused.

    ``astype(bool)`` would read the string ``"False"`` (a cohort read back from
    CSV) as consent, so text is parsed, never cast.
    """
    s = cohort[col]
    if s.dtype == bool:
        return s.to_numpy()
    v = s.astype("object")
    missing = v.isna().to_numpy()
    text = v.where(~missing, "").map(lambda x: str(x).strip().lower())
    yes = text.isin(_TRUE).to_numpy()
    no = text.isin(_FALSE).to_numpy() | missing
    bad = ~(yes | no)
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        ids = cohort["customer_id"].iloc[rows].tolist() if "customer_id" in cohort else []
        raise OptimizationError(
            f"The cohort's consent column {col!r} holds {int(bad.sum())} value(s) that are not "
            f"booleans, e.g. {v.iloc[rows].tolist()} at rows {rows.tolist()} (customers {ids}). "
            "Fix: use True/False (or 1/0) for consent; missing means no consent."
        )
    return yes


def candidate_table(
    cohort: pd.DataFrame,
    p_base: np.ndarray,
    ltv_fn: LtvFn,
    response_fn: ResponseFn,
    config: BusinessConfig,
) -> dict[str, Any]:
    """Evaluate every eligible candidate for every customer.

    Returns a dict with ``candidates`` (list of :class:`Candidate`), and
    arrays of shape ``(n, k)``: ``eip``, ``p1``, ``ltv``, ``spend``,
    ``dreact``, ``cost``; ``ltv0`` (n,), and ``excluded`` (list of str).
    Ineligible cells have ``eip = -inf``.
    """
    n = len(cohort)
    p0 = np.asarray(p_base, dtype=float)
    if p0.shape != (n,) or np.any(~np.isfinite(p0)) or np.any((p0 < 0) | (p0 > 1)):
        raise OptimizationError(
            f"p_base must hold one probability in [0, 1] per cohort row ({n}). "
            "Got missing, out-of-range or misaligned values. Fix: pass P(return | no contact) per customer."
        )
    ltv0 = np.asarray(ltv_fn(cohort, None), dtype=float)
    if ltv0.shape != (n,) or np.any(~np.isfinite(ltv0)):
        raise OptimizationError("ltv_fn(cohort, None) must return one finite value per customer.")
    cands: list[Candidate] = []
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("eip", "p1", "ltv", "spend", "dreact", "cost")
    }
    excluded: list[str] = []
    consent = {ch: _consent(cohort, ch) for ch in config.channels}
    ltv_cache: dict[Offer, np.ndarray] = {}
    margin = max(config.margin, 1e-12)
    for offer in config.offer_catalog():
        if offer not in ltv_cache:
            l1 = np.asarray(ltv_fn(cohort, offer), dtype=float)
            if l1.shape != (n,) or np.any(~np.isfinite(l1)):
                raise OptimizationError(
                    f"ltv_fn(cohort, {offer.key}) must return one finite value per customer "
                    f"({n}); got shape {l1.shape} with missing or infinite values."
                )
            ltv_cache[offer] = l1
        l1 = ltv_cache[offer]
        for ch in config.channels:
            p1 = np.asarray(response_fn(cohort, offer, ch), dtype=float)
            if p1.shape != (n,):
                raise OptimizationError(
                    f"response_fn returned shape {p1.shape} for {offer.key}@{ch}; expected ({n},)."
                )
            out_of_range = ~np.isnan(p1) & ~((p1 >= 0) & (p1 <= 1))
            if out_of_range.any():
                rows = np.flatnonzero(out_of_range)[:5]
                raise OptimizationError(
                    f"response_fn returned {int(out_of_range.sum())} value(s) outside [0, 1] for "
                    f"{offer.key}@{ch}, e.g. {p1[rows].tolist()} for customers "
                    f"{cohort['customer_id'].iloc[rows].tolist()}. Fix: return P(return | contact) "
                    "per customer (NaN where the offer is unknown)."
                )
            if np.all(np.isnan(p1)):
                excluded.append(f"{offer.key}@{ch}: no evidence in the campaign history")
                continue
            cost = float(config.contact_cost[ch])
            ok = consent[ch] & np.isfinite(p1)
            eip = np.where(ok, p1 * l1 - cost - p0 * ltv0, -np.inf)
            incentive = np.where(ok, p1 * np.maximum(ltv0 - l1, 0.0) / margin, 0.0)
            cands.append(Candidate(offer, ch))
            cols["eip"].append(eip)
            cols["p1"].append(np.where(ok, p1, np.nan))
            cols["ltv"].append(l1)
            cols["spend"].append(np.where(ok, cost + incentive, 0.0))
            cols["dreact"].append(np.where(ok, p1 - p0, 0.0))
            cols["cost"].append(np.full(n, cost))
    if not cands:
        raise OptimizationError(
            "No (offer, channel) candidate has evidence in the campaign history. "
            f"Excluded: {excluded[:5]}. Fix: run a randomized campaign with these offers, or change 'offers'."
        )
    out: dict[str, Any] = {k: np.column_stack(v) for k, v in cols.items()}
    out.update(candidates=cands, ltv0=ltv0, p0=p0, excluded=excluded)
    return out


def _choose(
    eip: np.ndarray,
    spend: np.ndarray,
    dreact: np.ndarray,
    lam: float,
    mu: float,
    cap: float,
    min_profit: float,
) -> np.ndarray:
    """Index of the chosen candidate per row, -1 for no contact."""
    score = eip - lam * spend - mu * (spend - cap * dreact)
    j = np.argmax(score, axis=1)
    best = score[np.arange(len(j)), j]
    raw = eip[np.arange(len(j)), j]
    return np.where((best > 0) & (raw > min_profit), j, -1)


def _totals(choice: np.ndarray, t: dict[str, Any]) -> tuple[float, float, float]:
    rows = np.flatnonzero(choice >= 0)
    c = choice[rows]
    return (
        float(t["eip"][rows, c].sum()),
        float(t["spend"][rows, c].sum()),
        float(t["dreact"][rows, c].sum()),
    )


def _feasible(spend: float, dreact: float, budget: float | None, cap: float | None) -> bool:
    if budget is not None and spend > budget + 1e-9:
        return False
    if cap is not None and spend > cap * dreact + 1e-9:
        return False
    return True


def _bisect(f_ok: Callable[[float], bool], hi: float = 1.0) -> float:
    """Smallest multiplier m >= 0 with f_ok(m) (assumes monotone feasibility)."""
    if f_ok(0.0):
        return 0.0
    while not f_ok(hi):
        hi *= 4
        if hi > 1e9:
            return hi
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if f_ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _constrained_choice(
    t: dict[str, Any], budget: float | None, cap: float | None, min_profit: float
) -> np.ndarray:
    eip, spend, dreact = t["eip"], t["spend"], t["dreact"]
    capv = float(cap) if cap is not None else 0.0
    lam = mu = 0.0
    choice = _choose(eip, spend, dreact, 0.0, 0.0, capv, min_profit)
    for _ in range(3):  # alternate the two multipliers
        if cap is not None:
            mu = _bisect(
                lambda m, lam=lam: _feasible(
                    *_totals(_choose(eip, spend, dreact, lam, m, capv, min_profit), t)[1:],
                    None,
                    cap,
                )
            )
        if budget is not None:
            lam = _bisect(
                lambda m, mu=mu: _feasible(
                    *_totals(_choose(eip, spend, dreact, m, mu, capv, min_profit), t)[1:],
                    budget,
                    None,
                )
            )
        choice = _choose(eip, spend, dreact, lam, mu, capv, min_profit)
        if _feasible(*_totals(choice, t)[1:], budget, cap):
            break
    # exact feasibility: drop the least profitable per unit of spend, then refill
    rows = np.flatnonzero(choice >= 0)
    sp = t["spend"][rows, choice[rows]]
    ep = t["eip"][rows, choice[rows]]
    ratio = np.where(sp > 0, ep / np.maximum(sp, 1e-12), np.inf)
    order = rows[np.argsort(ratio, kind="stable")]
    for r in order:
        if _feasible(*_totals(choice, t)[1:], budget, cap):
            break
        choice[r] = -1
    # refill: unconstrained-best contacts left out, best ratio first, if they still fit
    free = _choose(eip, spend, dreact, 0.0, 0.0, capv, min_profit)
    left = np.flatnonzero((choice < 0) & (free >= 0))
    if len(left):
        sp = t["spend"][left, free[left]]
        ep = t["eip"][left, free[left]]
        ratio = np.where(sp > 0, ep / np.maximum(sp, 1e-12), np.inf)
        _, s_tot, d_tot = _totals(choice, t)
        for k in np.argsort(-ratio, kind="stable"):
            r = left[k]
            s_new = s_tot + t["spend"][r, free[r]]
            d_new = d_tot + t["dreact"][r, free[r]]
            if _feasible(s_new, d_new, budget, cap):
                choice[r] = free[r]
                s_tot, d_tot = s_new, d_new
    return choice


def optimize_offers(
    cohort: pd.DataFrame,
    p_base: np.ndarray | pd.Series,
    ltv_fn: LtvFn,
    uplift_fn: ResponseFn,
    config: BusinessConfig | dict | None = None,
    model_version: str = "",
    min_profit: float = 0.0,
) -> pd.DataFrame:
    """Choose offer, discount and channel per lapsed customer; return the ranked ``targets``.

    Parameters
    ----------
    cohort : DataFrame
        One row per lapsed customer with ``customer_id``, ``segment``,
        ``cancel_reason``, ``reason_source``, ``days_lapsed`` and the consent
        columns ``can_email``, ``can_sms``, ``can_in_app``.
    p_base : array (n,)
        P(return within the attribution window | no contact).
    ltv_fn : callable ``(cohort, offer or None) -> array (n,)``
        Margin value if the customer returns on ``offer`` (None: no offer).
    uplift_fn : callable ``(cohort, offer, channel) -> array (n,)``
        P(return within the window | contacted with ``offer`` on ``channel``);
        all-NaN for a candidate without evidence (it is then excluded).
    config : BusinessConfig, dict or None
        Catalog, channels, contact costs, ``budget``, ``max_cost_per_reactivation``.
    model_version : str
        Written to every row (registry name and version of each model used).
    min_profit : float
        Contact only when the expected incremental profit exceeds this.

    Returns
    -------
    DataFrame
        Columns :data:`TARGET_COLUMNS`; ``attrs["summary"]`` (dict) and
        ``attrs["excluded"]`` (candidates dropped for lack of evidence).
    """
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    need = ["customer_id", "segment", "cancel_reason", "reason_source", "days_lapsed"]
    missing = [c for c in need if c not in cohort.columns]
    if missing:
        raise OptimizationError(
            f"The cohort lacks columns {missing}. Expected at least {need} and the consent columns. "
            "Fix: build it with the cohort stage (lapsed cohort, reasons, segments)."
        )
    cohort = cohort.reset_index(drop=True)
    days = pd.to_numeric(cohort["days_lapsed"], errors="coerce")
    bad = days.isna() | (days < 0)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5]
        raise OptimizationError(
            f"The cohort's 'days_lapsed' must be a number >= 0 on every row; {int(bad.sum())} "
            f"row(s) are missing, negative or not numbers, e.g. rows {rows.tolist()} (customers "
            f"{cohort['customer_id'].iloc[rows].tolist()}). Fix: build the cohort with "
            "winback_ml.cohort.build_lapsed_cohort."
        )
    n = len(cohort)
    if n == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in TARGET_COLUMNS})
        empty.attrs["summary"] = policy_totals(empty)
        empty.attrs["excluded"] = []
        return empty
    t = candidate_table(cohort, np.asarray(p_base, dtype=float), ltv_fn, uplift_fn, cfg)
    if cfg.budget is None and cfg.max_cost_per_reactivation is None:
        choice = _choose(t["eip"], t["spend"], t["dreact"], 0.0, 0.0, 0.0, min_profit)
    else:
        choice = _constrained_choice(t, cfg.budget, cfg.max_cost_per_reactivation, min_profit)
    rows = np.arange(n)
    contact = choice >= 0
    c = np.where(contact, choice, 0)
    cands = t["candidates"]
    offer_type = np.where(contact, [cands[k].offer.offer_type for k in c], "none")
    pct = np.where(contact, [cands[k].offer.discount_pct for k in c], 0.0)
    months = np.where(contact, [cands[k].offer.discount_months for k in c], 0)
    # the channel of a left-alone customer: the first one they consented to (informative only)
    default_ch = []
    cons = {ch: _consent(cohort, ch) for ch in cfg.channels}
    for i in range(n):
        default_ch.append(next((ch for ch in cfg.channels if cons[ch][i]), cfg.channels[0]))
    channel = np.where(contact, [cands[k].channel for k in c], default_ch)
    p1 = np.where(contact, t["p1"][rows, c], t["p0"])
    ltv = np.where(contact, t["ltv"][rows, c], t["ltv0"])
    eip = np.where(contact, t["eip"][rows, c], 0.0)
    out = pd.DataFrame(
        {
            "customer_id": cohort["customer_id"].astype(str).to_numpy(),
            "segment": cohort["segment"].to_numpy(),
            "cancel_reason": cohort["cancel_reason"].to_numpy(),
            "reason_source": cohort["reason_source"].to_numpy(),
            "days_lapsed": days.astype(int).to_numpy(),
            "p_return_base": t["p0"],
            "p_return_offer": p1,
            "expected_ltv": ltv,
            "contact": contact,
            "offer_type": offer_type,
            "discount_pct": pct.astype(float),
            "discount_months": months.astype(int),
            "channel": channel,
            "expected_incremental_profit": eip,
        }
    )
    spend = np.where(contact, t["spend"][rows, c], 0.0)
    cost = np.where(contact, t["cost"][rows, c], 0.0)
    order = np.lexsort((out["customer_id"].to_numpy(), -eip, ~contact))
    out = out.iloc[order].reset_index(drop=True)
    out["rank"] = np.arange(1, n + 1)
    out["model_version"] = model_version
    out = out[TARGET_COLUMNS]
    out.attrs["excluded"] = t["excluded"]
    summ = policy_totals(out)
    summ["expected_spend"] = float(spend.sum())
    summ["expected_contact_cost"] = float(cost.sum())
    summ["expected_incentive_cost"] = float(spend.sum() - cost.sum())
    summ["budget"] = cfg.budget
    summ["max_cost_per_reactivation"] = cfg.max_cost_per_reactivation
    inc = summ["expected_incremental_reactivations"]
    summ["expected_cost_per_incremental_reactivation"] = (
        float(spend.sum() / inc) if inc > 0 else None
    )
    out.attrs["summary"] = summ
    return out


def policy_totals(targets: pd.DataFrame) -> dict[str, Any]:
    """Totals of a targets frame under its own model estimates."""
    if targets.empty:
        return {
            "customers": 0,
            "contacted": 0,
            "expected_reactivations": 0.0,
            "expected_incremental_reactivations": 0.0,
            "expected_incremental_profit": 0.0,
        }
    c = targets["contact"].astype(bool)
    return {
        "customers": int(len(targets)),
        "contacted": int(c.sum()),
        "expected_reactivations": float(targets["p_return_offer"].sum()),
        "expected_incremental_reactivations": float(
            (targets["p_return_offer"] - targets["p_return_base"]).sum()
        ),
        "expected_incremental_profit": float(targets["expected_incremental_profit"].sum()),
        "offers": {str(k): int(v) for k, v in targets.loc[c, "offer_type"].value_counts().items()},
        "channels": {str(k): int(v) for k, v in targets.loc[c, "channel"].value_counts().items()},
    }
