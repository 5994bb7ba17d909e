"""LTV of a returning customer, as a function of the offer and the billing interval.

``expected_ltv = margin * price * sum_{m=0..H-1} S_b(m) * w_b(m) / (1 + r) ** (m / 12)``

* ``price``: the customer's monthly price from the spending history (the
  ``mrr`` of the subscription that lapsed, already the monthly equivalent of a
  yearly price; when absent, total paid divided by months of tenure).
* ``b``: the lapsed subscription's ``billing_interval`` (``month`` or
  ``year``); a returning customer comes back on the same plan. A frame
  without the column is treated as monthly.
* ``S_b(m)``: probability of paying month ``m + 1`` of the post-return tenure
  (``S_b(0) = 1``: a customer pays on return), learnt from the data's past
  reactivations of the same billing interval (``PostReturnSurvival``) by a
  discrete-time Kaplan–Meier estimate of the hazard *per renewal*: a monthly
  subscriber can leave at every month, a yearly one only at months 12, 24, …
  (a yearly customer who leaves between renewals has paid the year: the end
  counts at the next renewal, with one month of slack for dunning). Renewals
  past the data get the mean hazard of the last (up to 6) well-estimated ones.
* ``w_b(m)``: the money paid at month ``m`` in units of ``price``: a monthly
  subscriber pays ``1 - disc(m)`` every month; a yearly one pays the whole
  year up front, ``sum_{i<12} (1 - disc(12k + i))`` at month ``12k`` (a year
  that starts within the horizon counts in full). ``disc(m)`` is the offer's
  discount in its first ``discount_months`` months (a free month is 100 %).
* A stratum (billing interval) gets its own curve when at least
  ``min_stratum_at_risk`` of its past returns (without a discount) were
  observed through its first renewal (month 1 for monthly, month 12 for
  yearly). Otherwise it falls back, visibly (``sources_``), to the *pooled*
  Kaplan–Meier curve of every past return with the stratum's renewal
  structure: ``S(12 j)`` of the pooled curve, flat in between for yearly; and
  with fewer than ``min_at_risk`` past returns at all, to ``prior_hazard``
  per month (``1 - (1 - prior_hazard) ** 12`` per yearly renewal).
* The end of a discount may raise churn. It is *measured* from history,
  pooled over the billing intervals: among customers who came back on a
  discount in a past campaign and were observed up to the renewal where the
  discount ends (month ``discount_months`` for monthly, the next multiple of
  12 for yearly; a yearly customer who leaves mid-year counts at the next
  renewal, as in the baseline), observed over expected departures there (expected = the
  stratum's baseline hazard at that renewal, pooled for monthly over the
  month before, of and after to damp noise), with an exact Poisson interval
  (``bump_``). It enters the survival as an *excess cumulative hazard*
  ``bump_.excess_hazard = max(0, log(sum(1 - h_i) / (exposed - observed)))``
  at that renewal (fewer departures than expected read as noise, never as a
  discount that keeps customers after it ends), ``h -> 1 - (1 - h) exp(-excess)``:
  a cause of leaving of its own, added to the interval's hazard (for a constant monthly hazard this is the
  multiplier ``ratio`` exactly; a multiplier measured on monthly hazards of
  ~0.07 would not carry over to yearly renewal hazards of ~0.5). With fewer
  than ``min_bump_exposure`` exposed customers the bump is 1.0 (no excess)
  and ``bump_.source`` says ``"prior (no evidence)"``; the score summary shows
  it.
* ``margin`` and ``r`` (``annual_discount_rate``) from the business config;
  ``H`` = ``ltv_horizon_months``.

Invariants: months are 30.4375-day months counted from the return; money in
the reporting currency (``mrr``); timestamps tz-naive UTC; nothing after
``as_of`` is read; the fitted model keeps only hazards, never rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.config import BusinessConfig, Offer, load_config
from winback_ml.exceptions import ModelError, NotFittedError

__all__ = [
    "MONTH_DAYS",
    "BILLING_INTERVAL_MONTHS",
    "PostReturnSurvival",
    "BumpEstimate",
    "post_return_tenures",
    "monthly_price",
    "billing_intervals",
    "expected_ltv",
    "ltv_matrix",
]

MONTH_DAYS = 30.4375
#: Months per billing period of each contract ``billing_interval``.
BILLING_INTERVAL_MONTHS: dict[str, int] = {"month": 1, "year": 12}
_DISCOUNT_TYPES = ("discount", "free_month", "early_renewal")
#: A yearly subscriber's end up to this many months after a renewal counts at that renewal
#: (an unpaid renewal ends after the dunning period).
_RENEWAL_SLACK_MONTHS = 1
_TAIL_STEPS = 6


@dataclass(frozen=True)
class BumpEstimate:
    """The discount-end churn effect, with its evidence.

    ``ratio`` (observed / expected departures at the renewal where the discount
    ends) and its exact Poisson interval ``ci_low``-``ci_high`` describe the
    evidence; ``excess_hazard`` (the extra cumulative hazard that reproduces the
    observed count, 0 when not measured) is what the survival uses.
    """

    ratio: float
    ci_low: float
    ci_high: float
    observed: int
    expected: float
    exposed: int
    source: str
    excess_hazard: float = 0.0


def billing_intervals(frame: pd.DataFrame, table: str = "customers") -> pd.Series:
    """The ``billing_interval`` of each row: ``"month"`` when the column is absent or empty.

    Raises
    ------
    ModelError
        When a value is neither ``month`` nor ``year``.
    """
    if "billing_interval" not in frame:
        return pd.Series("month", index=frame.index, dtype=object)
    b = frame["billing_interval"].astype(object).where(frame["billing_interval"].notna(), "month")
    bad = ~b.isin(list(BILLING_INTERVAL_MONTHS))
    if bad.any():
        rows = frame.index[bad.to_numpy()][:5].tolist()
        vals = sorted({str(v) for v in b[bad].tolist()})[:5]
        raise ModelError(
            f"The 'billing_interval' column of {table} must be one of "
            f"{list(BILLING_INTERVAL_MONTHS)}. Got {vals} at rows {rows}. "
            "Fix: map the billing system's intervals to 'month' or 'year' (the data contract)."
        )
    return b


def post_return_tenures(episodes: pd.DataFrame, as_of: Any) -> pd.DataFrame:
    """One row per past return: months paid after it and whether the customer left again.

    Parameters
    ----------
    episodes : DataFrame
        :func:`winback_ml.cohort.build_lapse_episodes` output; lapses and
        returns dated after ``as_of`` are ignored.
    as_of : timestamp

    Returns
    -------
    DataFrame
        ``customer_id``, ``returned_at``, ``months`` (int >= 1 when the
        customer lapsed again; the whole months observed when still paying),
        ``lapsed_again`` (bool), ``billing_interval`` (of the subscription
        that lapsed before the return, the plan the customer comes back on;
        ``"month"`` when the episodes lack the column).
    """
    T = pd.Timestamp(as_of)
    # episodes built at a later date: what happened after as_of is not known at as_of
    e = episodes[episodes["ended_at"] <= T].copy()
    e["returned"] = e["returned"].astype(bool) & (e["returned_at"] <= T)
    e["billing_interval"] = billing_intervals(e, "the lapse episodes").to_numpy()
    e = e.sort_values(["customer_id", "lapse_number"], kind="mergesort")
    ret = e[e["returned"]][["customer_id", "lapse_number", "returned_at", "billing_interval"]]
    nxt = e[["customer_id", "lapse_number", "ended_at"]].assign(
        lapse_number=lambda d: d["lapse_number"] - 1
    )
    m = ret.merge(
        nxt.rename(columns={"ended_at": "next_end"}), on=["customer_id", "lapse_number"], how="left"
    )
    again = m["next_end"].notna()
    days = np.where(again, (m["next_end"] - m["returned_at"]).dt.total_seconds() / 86400.0, 0.0)
    cens = (T - m["returned_at"]).dt.total_seconds() / 86400.0
    months = np.where(
        again, np.maximum(1, np.round(days / MONTH_DAYS)), np.floor(cens / MONTH_DAYS)
    )
    return pd.DataFrame(
        {
            "customer_id": m["customer_id"].to_numpy(),
            "returned_at": m["returned_at"].to_numpy(),
            "months": months.astype(int),
            "lapsed_again": again.to_numpy(),
            "billing_interval": m["billing_interval"].to_numpy(),
        }
    )


def _km_hazard(
    steps: np.ndarray, event: np.ndarray, max_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discrete hazard h[j-1] = P(leave at renewal j | paid through j - 1), events, risk sets.

    ``steps`` is the renewal of the event, or the last renewal passed when censored.
    """
    h = np.full(max_steps, np.nan)
    at_risk = np.zeros(max_steps)
    deaths = np.zeros(max_steps)
    for j in range(1, max_steps + 1):
        r = np.sum(steps >= j)
        d = np.sum((steps == j) & event)
        at_risk[j - 1] = r
        deaths[j - 1] = d
        if r > 0:
            h[j - 1] = d / r
    return h, deaths, at_risk


def _renewal_steps(months: np.ndarray, event: np.ndarray, period: int) -> np.ndarray:
    """Renewal index of each tenure: of the end (event) or the last one passed (censored).

    A yearly customer who leaves between renewals has paid the year: the end
    counts at the next renewal, except within ``_RENEWAL_SLACK_MONTHS`` after
    one (dunning), where it counts at that renewal.
    """
    months = np.asarray(months, dtype=float)
    if period == 1:
        return months.astype(int)
    ev_step = np.maximum(1, np.ceil((months - _RENEWAL_SLACK_MONTHS) / period))
    return np.where(event, ev_step, np.floor(months / period)).astype(int)


def _extrapolate(h: np.ndarray, at_risk: np.ndarray, min_at_risk: int, fallback: float):
    """Keep steps with ``min_at_risk`` at risk; later steps get the mean of the last 6 kept."""
    good = np.flatnonzero(at_risk >= min_at_risk)
    last = int(good.max()) + 1 if len(good) else 0
    tail = float(np.nanmean(h[max(0, last - _TAIL_STEPS) : last])) if last else float(fallback)
    if not np.isfinite(tail):
        tail = float(fallback)
    out = np.where(np.arange(len(h)) < last, np.nan_to_num(h, nan=tail), tail)
    return out, last, tail


def _to_month_grid(step_hazard: np.ndarray, period: int, max_months: int) -> np.ndarray:
    """Per-renewal hazards on the month grid: h[m - 1] is nonzero only at renewals m = period j."""
    g = np.zeros(max_months)
    idx = np.arange(period, max_months + 1, period)
    g[idx - 1] = step_hazard[: len(idx)]
    return g


class PostReturnSurvival:
    """Survival of the post-return tenure per billing interval, learnt from past reactivations.

    Parameters
    ----------
    max_months : int
        Months of hazard kept (longer horizons repeat the tail hazard).
    min_at_risk : int
        A renewal's hazard is estimated from data only with at least this many
        customers at risk; later renewals use the mean hazard of the last 6
        well-estimated ones. Fewer past returns than this in all strata
        together: the prior.
    min_bump_exposure : int
        Customers back on a discount needed to measure the discount-end bump.
    prior_hazard : float
        Monthly hazard used when there are no past returns at all (a stated
        fallback: ``sources_[interval]`` starts with ``"prior"``).
    min_stratum_at_risk : int
        A billing interval gets its own curve when at least this many of its
        past returns were observed through its first renewal (month 1 for
        monthly, month 12 for yearly); otherwise the pooled curve with the
        interval's renewal structure (``sources_`` says which).

    Attributes
    ----------
    hazards_ : dict[str, ndarray (max_months,)]
        Per billing interval: ``h[m - 1]`` = P(leave after paying month m | paid
        m months), baseline (customers back without a discount). Yearly
        hazards are 0 except at months 12, 24, ...
    renewal_hazards_ : dict[str, ndarray]
        The same per renewal (``max_months // period`` of them).
    hazard_ : ndarray (max_months,)
        ``hazards_["month"]`` (the monthly baseline).
    sources_ : dict[str, str]
        How each interval's curve was obtained: ``"own"``, ``"pooled"`` or ``"prior"``
        with the evidence.
    n_returns_by_interval_ : dict[str, int]
        Past returns (without a discount) per interval.
    bump_ : BumpEstimate
    n_returns_ : int
    source_ : str
        One line: every interval's source.
    """

    def __init__(
        self,
        max_months: int = 120,
        min_at_risk: int = 30,
        min_bump_exposure: int = 30,
        prior_hazard: float = 0.08,
        min_stratum_at_risk: int = 30,
    ) -> None:
        self.max_months = max_months
        self.min_at_risk = min_at_risk
        self.min_bump_exposure = min_bump_exposure
        self.prior_hazard = prior_hazard
        self.min_stratum_at_risk = min_stratum_at_risk

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "max_months": self.max_months,
            "min_at_risk": self.min_at_risk,
            "min_bump_exposure": self.min_bump_exposure,
            "prior_hazard": self.prior_hazard,
            "min_stratum_at_risk": self.min_stratum_at_risk,
        }

    def fit(
        self,
        tenures: pd.DataFrame,
        discount_returns: pd.DataFrame | None = None,
    ) -> PostReturnSurvival:
        """Fit from :func:`post_return_tenures` output.

        Parameters
        ----------
        tenures : DataFrame
            ``customer_id``, ``returned_at``, ``months``, ``lapsed_again`` and
            optionally ``billing_interval`` (absent: every return is monthly).
        discount_returns : DataFrame, optional
            ``customer_id``, ``returned_at``, ``discount_months``: returns that
            followed a discount offer of a past campaign. They are left out of
            the baseline and used to measure the discount-end bump.
        """
        if int(self.max_months) < 12:
            raise ModelError(
                f"PostReturnSurvival(max_months={self.max_months}) keeps no yearly renewal. "
                "Fix: use max_months of at least 12 (default 120)."
            )
        t = tenures.copy()
        t["billing_interval"] = billing_intervals(t, "the post-return tenures").to_numpy()
        t["discount_months"] = 0
        if discount_returns is not None and len(discount_returns):
            key = ["customer_id", "returned_at"]
            d = discount_returns[[*key, "discount_months"]].drop_duplicates(key)
            t = t.drop(columns="discount_months").merge(d, on=key, how="left")
            t["discount_months"] = t["discount_months"].fillna(0).astype(int)
        base = t[t["discount_months"] == 0]
        self.n_returns_ = int(len(t))
        M = int(self.max_months)
        months = base["months"].to_numpy()
        event = base["lapsed_again"].to_numpy(bool)
        # the pooled curve (every interval): the fallback of a thin stratum
        if len(base) < self.min_at_risk:
            pooled = np.full(M, float(self.prior_hazard))
            pooled_src = (
                f"prior (only {len(base)} past returns without a discount; "
                f"hazard {self.prior_hazard}/month)"
            )
            pooled_kind = "prior"
        else:
            h, _, r = _km_hazard(months, event, M)
            pooled, last, tail = _extrapolate(h, r, self.min_at_risk, self.prior_hazard)
            pooled_src = (
                f"pooled Kaplan-Meier of {len(base)} past returns of every interval "
                f"({last} months estimated, tail hazard {tail:.3f})"
            )
            pooled_kind = "pooled"
        self.hazards_: dict[str, np.ndarray] = {}
        self.renewal_hazards_: dict[str, np.ndarray] = {}
        self.sources_: dict[str, str] = {}
        self.n_returns_by_interval_: dict[str, int] = {}
        self.smoothed_hazards_: dict[str, np.ndarray] = {}
        self.n_months_estimated_ = 0
        for b, period in BILLING_INTERVAL_MONTHS.items():
            k = (base["billing_interval"] == b).to_numpy()
            n_b = int(k.sum())
            self.n_returns_by_interval_[b] = n_b
            n_steps = M // period
            steps = _renewal_steps(months[k], event[k], period)
            h, d, r = _km_hazard(steps, event[k], n_steps)
            first = int(r[0]) if n_steps else 0
            if n_steps and first >= max(self.min_stratum_at_risk, 1):
                # renewal 1 is always kept (min_stratum_at_risk may be below min_at_risk)
                need = min(self.min_at_risk, first)
                step_h, last, tail = _extrapolate(h, r, need, self.prior_hazard)
                unit = "months" if period == 1 else "yearly renewals"
                self.sources_[b] = (
                    f"own: Kaplan-Meier of {n_b} past {b}ly returns ({first} observed through "
                    f"renewal 1; {last} {unit} estimated, tail hazard {tail:.3f}"
                    + (")" if period == 1 else f"/renewal; renewal-1 hazard {step_h[0]:.3f})")
                )
                if period == 1:
                    self.n_months_estimated_ = last
                    # smoothed baseline (months k-1..k+1 pooled) for the bump's expected count
                    dk = np.convolve(d, np.ones(3), mode="same")
                    rk = np.convolve(r, np.ones(3), mode="same")
                    sm = np.where(rk > 0, dk / np.maximum(rk, 1), np.nan)
                else:
                    sm = step_h.copy()  # one renewal per year: no neighbours to pool
            else:
                if pooled_kind == "prior":
                    step_h = np.full(n_steps, 1.0 - (1.0 - float(self.prior_hazard)) ** period)
                else:
                    s = np.r_[1.0, np.cumprod(1.0 - pooled)]
                    idx = np.arange(period, n_steps * period + 1, period)
                    step_h = 1.0 - s[idx] / np.maximum(s[idx - period], 1e-300)
                self.sources_[b] = (
                    f"{pooled_kind}: {pooled_src}"
                    + ("" if period == 1 else " with the yearly renewal structure")
                    + (
                        f" (only {first} of {n_b} past {b}ly returns observed through renewal 1;"
                        f" {self.min_stratum_at_risk} needed)"
                    )
                )
                sm = step_h.copy()
            self.renewal_hazards_[b] = step_h
            self.hazards_[b] = _to_month_grid(step_h, period, M)
            self.smoothed_hazards_[b] = _to_month_grid(sm, period, M)
        self.hazard_ = self.hazards_["month"]
        self.smoothed_hazard_ = self.smoothed_hazards_["month"]
        if "billing_interval" not in tenures:
            self.sources_["month"] += " (no billing_interval column: every return taken as monthly)"
        self.source_ = "; ".join(f"{b}: {s}" for b, s in self.sources_.items())
        self.bump_ = self._measure_bump(t[t["discount_months"] > 0])
        return self

    def _end_month(self, discount_months: np.ndarray, billing_interval: np.ndarray) -> np.ndarray:
        """Month of the renewal where a discount of ``discount_months`` ends."""
        period = np.array([BILLING_INTERVAL_MONTHS[b] for b in billing_interval], dtype=int)
        d = np.asarray(discount_months, dtype=int)
        return (np.ceil(d / period) * period).astype(int)

    def _measure_bump(self, disc: pd.DataFrame) -> BumpEstimate:
        from scipy import stats

        M = len(self.hazard_)
        if len(disc):
            b = disc["billing_interval"].to_numpy(object)
            e = self._end_month(disc["discount_months"].to_numpy(int), b)
            ev_all = disc["lapsed_again"].to_numpy(bool)
            # the renewal month of the end, or of the last renewal passed: the same step the
            # baseline counts (a yearly customer who leaves mid-year leaves at the renewal)
            reach = np.zeros(len(disc), int)
            for name, period in BILLING_INTERVAL_MONTHS.items():
                k = b == name
                if k.any():
                    steps = _renewal_steps(disc["months"].to_numpy()[k], ev_all[k], period)
                    reach[k] = steps * period
            exposed = (reach >= e) & (e <= M)
        else:
            exposed = np.zeros(0, bool)
            reach = np.zeros(0, int)
        n_exp = int(exposed.sum())
        if n_exp < self.min_bump_exposure:
            return BumpEstimate(
                1.0, 0.0, np.inf, 0, 0.0, n_exp, f"prior (no evidence: {n_exp} exposed)", 0.0
            )
        dd = disc[exposed]
        b = dd["billing_interval"].to_numpy(object)
        e = e[exposed]
        ev = dd["lapsed_again"].to_numpy(bool)
        left_at = reach[exposed]
        hs = np.empty(len(dd))
        for name in BILLING_INTERVAL_MONTHS:
            k = b == name
            if not k.any():
                continue
            sm = self.smoothed_hazards_[name]
            hs[k] = np.where(np.isfinite(sm[e[k] - 1]), sm[e[k] - 1], self.hazards_[name][e[k] - 1])
        obs = int(((left_at == e) & ev).sum())
        exp_ = float(hs.sum())
        ratio = obs / exp_ if exp_ > 0 else np.inf
        # exact Poisson interval of the observed count, divided by the expected
        lo = stats.chi2.ppf(0.025, 2 * obs) / 2 / exp_ if obs > 0 else 0.0
        hi = stats.chi2.ppf(0.975, 2 * obs + 2) / 2 / exp_
        # excess cumulative hazard x with sum_i 1 - (1 - h_i) exp(-x) = observed
        stay = float(np.sum(1.0 - np.minimum(hs, 1.0)))
        excess = math.log(stay / (n_exp - obs)) if 0 < n_exp - obs and stay > 0 else np.inf
        # the end of a discount may raise churn; fewer departures than expected are noise, not
        # a discount that keeps customers after it ends: no negative excess
        excess = max(0.0, excess)
        return BumpEstimate(
            float(ratio), float(lo), float(hi), obs, exp_, n_exp, "measured", float(excess)
        )

    @property
    def discount_end_bump_(self) -> float:
        self._check()
        return self.bump_.ratio

    def _check(self) -> None:
        if not hasattr(self, "hazards_"):
            raise NotFittedError("This PostReturnSurvival is not fitted yet. Call 'fit' first.")

    def survival(
        self, horizon_months: int, discount_months: int = 0, billing_interval: str = "month"
    ) -> np.ndarray:
        """``S(m)`` for m = 0..horizon-1: probability of paying month m + 1 after the return.

        Parameters
        ----------
        horizon_months : int
        discount_months : int
            Months of a discount: the renewal where it ends gets the measured
            excess hazard (``bump_.excess_hazard``).
        billing_interval : {"month", "year"}
            A yearly curve is flat between renewals (months 12, 24, ...).
        """
        self._check()
        if billing_interval not in BILLING_INTERVAL_MONTHS:
            raise ModelError(
                f"The 'billing_interval' parameter of PostReturnSurvival.survival must be one of "
                f"{list(BILLING_INTERVAL_MONTHS)}. Got {billing_interval!r} instead."
            )
        period = BILLING_INTERVAL_MONTHS[billing_interval]
        H = int(horizon_months)
        base = self.hazards_[billing_interval]
        M = len(base)
        if H <= M:
            h = base[:H].copy()
        else:  # repeat the last renewal's hazard at every later renewal
            h = np.zeros(H)
            h[:M] = base
            last = self.renewal_hazards_[billing_interval][-1]
            ren = np.arange(period, H + 1, period)
            h[ren[ren > M] - 1] = last
        if discount_months > 0:
            e = int(self._end_month(np.array([discount_months]), np.array([billing_interval]))[0])
            if e <= H - 1:
                x = self.bump_.excess_hazard
                h[e - 1] = float(np.clip(1.0 - (1.0 - h[e - 1]) * math.exp(-x), 0.0, 1.0))
        return np.r_[1.0, np.cumprod(1 - h)[: H - 1]]


def monthly_price(customers: pd.DataFrame) -> pd.Series:
    """Monthly price of each customer from the spending history.

    ``mrr`` of the lapsed subscription; when missing or 0, ``total_paid``
    divided by the months of ``tenure_days``.
    """
    price = (
        customers["mrr"].astype(float)
        if "mrr" in customers
        else pd.Series(np.nan, index=customers.index)
    )
    if "total_paid" in customers and "tenure_days" in customers:
        months = np.maximum(customers["tenure_days"].astype(float) / MONTH_DAYS, 1.0)
        alt = customers["total_paid"].astype(float) / months
        price = price.where(price > 0, alt)
    if price.isna().any():
        bad = customers.loc[price.isna()].index[:5].tolist()
        raise ModelError(
            f"No monthly price for customers at rows {bad}: 'mrr' and 'total_paid' are missing. "
            "Fix: pass the lapsed cohort (build_lapsed_cohort), which carries both."
        )
    return price


def _discount_factor(horizon: int, annual_rate: float) -> np.ndarray:
    return (1.0 + annual_rate) ** (-np.arange(horizon) / 12.0)


def _payments(horizon: int, period: int, disc_pct: float, disc_months: int) -> np.ndarray:
    """Money paid at each month 0..horizon-1, in monthly prices: a period is paid up front."""
    monthly = np.ones(((horizon + period - 1) // period) * period)
    monthly[: min(disc_months, len(monthly))] = 1.0 - disc_pct / 100.0
    pay = np.zeros(horizon)
    starts = np.arange(0, horizon, period)
    pay[starts] = monthly.reshape(-1, period).sum(axis=1)[: len(starts)]
    return pay


def expected_ltv(
    customers: pd.DataFrame,
    offer: Offer | None,
    config: BusinessConfig | dict | None,
    survival: PostReturnSurvival,
) -> pd.Series:
    """Margin value (discounted, over the horizon) of each customer if they return on ``offer``.

    Parameters
    ----------
    customers : DataFrame
        One row per customer with ``mrr`` (or ``total_paid`` and ``tenure_days``)
        and ``billing_interval`` (``month``/``year``; a frame without it, or a
        missing value, is taken as monthly).
    offer : Offer or None
        None or ``offer_type == "none"`` (and non-discount offers): full price.
    config : BusinessConfig, dict or None
        ``margin``, ``ltv_horizon_months``, ``annual_discount_rate``.
    survival : PostReturnSurvival
        Fitted post-return survival.

    Returns
    -------
    Series aligned with ``customers``.

    Raises
    ------
    ModelError
        A ``billing_interval`` other than ``month``/``year``, or no price.
    """
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    H = int(cfg.ltv_horizon_months)
    disc_pct, disc_m = 0.0, 0
    if offer is not None and offer.offer_type in _DISCOUNT_TYPES:
        disc_pct, disc_m = offer.effective_discount_pct, int(offer.discount_months)
        if offer.offer_type == "free_month":
            disc_m = max(disc_m, 1)  # a free month is at least one month (as the world bills it)
    rate = _discount_factor(H, cfg.annual_discount_rate)
    interval = billing_intervals(customers)
    factor = pd.Series(0.0, index=customers.index)
    for b, period in BILLING_INTERVAL_MONTHS.items():
        k = (interval == b).to_numpy()
        if k.any():
            s = survival.survival(H, disc_m, b)
            factor[k] = float(np.sum(s * _payments(H, period, disc_pct, disc_m) * rate))
    return monthly_price(customers) * cfg.margin * factor


def ltv_matrix(
    customers: pd.DataFrame,
    offers: list[Offer],
    config: BusinessConfig | dict | None,
    survival: PostReturnSurvival,
) -> pd.DataFrame:
    """:func:`expected_ltv` for each offer: one column per ``offer.key``, plus ``"no_offer"``."""
    cols = {"no_offer": expected_ltv(customers, None, config, survival)}
    for o in offers:
        cols[o.key] = expected_ltv(customers, o, config, survival)
    return pd.DataFrame(cols, index=customers.index)
