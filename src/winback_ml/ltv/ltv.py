"""LTV of a returning customer, as a function of the offer.

``expected_ltv = sum_{m=1..H} S_offer(m - 1) * price * (1 - disc(m)) * margin / (1 + r) ** ((m - 1) / 12)``

* ``price``: the customer's monthly price from the spending history (the
  ``mrr`` of the subscription that lapsed; when absent, total paid divided by
  months of tenure).
* ``S_offer(m)``: probability of still paying after ``m`` months of the
  post-return tenure, learnt from the data's past reactivations by a
  discrete-time Kaplan–Meier estimate in months (``PostReturnSurvival``),
  extrapolated past the data with the mean hazard of the last observed
  months. A customer pays month 1 on return, so ``S(0) = 1``.
* ``disc(m)``: the offer's discount in its first ``discount_months`` months
  (a free month is 100 %).
* The end of a discount may raise churn. The hazard of leaving right when
  the discount ends (after month ``discount_months``) is multiplied by
  ``discount_end_bump_``, *measured* from history: observed over expected
  churn at that month among customers who came back on a discount in a past
  campaign (expected = the baseline hazard of customers who came back
  without one, pooled over the month before, of, and after the discount's
  end to damp noise), with an exact Poisson interval. With fewer than ``min_bump_exposure`` such customers, the
  bump falls back to 1.0 and ``bump_source_`` says ``"prior (no evidence)"``;
  the score summary shows it.
* ``margin`` and ``r`` (``annual_discount_rate``) from the business config;
  ``H`` = ``ltv_horizon_months``.

Invariants: months are 30.4375-day months counted from the return; money in
the reporting currency (``mrr``); timestamps tz-naive UTC; nothing after
``as_of`` is read; the fitted model keeps only hazards, never rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.config import BusinessConfig, Offer, load_config
from winback_ml.exceptions import ModelError, NotFittedError

__all__ = [
    "MONTH_DAYS",
    "PostReturnSurvival",
    "BumpEstimate",
    "post_return_tenures",
    "monthly_price",
    "expected_ltv",
    "ltv_matrix",
]

MONTH_DAYS = 30.4375
_DISCOUNT_TYPES = ("discount", "free_month", "early_renewal")


@dataclass(frozen=True)
class BumpEstimate:
    """The discount-end churn multiplier, with its evidence."""

    ratio: float
    ci_low: float
    ci_high: float
    observed: int
    expected: float
    exposed: int
    source: str


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
        ``lapsed_again`` (bool).
    """
    T = pd.Timestamp(as_of)
    # episodes built at a later date: what happened after as_of is not known at as_of
    e = episodes[episodes["ended_at"] <= T].copy()
    e["returned"] = e["returned"].astype(bool) & (e["returned_at"] <= T)
    e = e.sort_values(["customer_id", "lapse_number"], kind="mergesort")
    ret = e[e["returned"]][["customer_id", "lapse_number", "returned_at"]]
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
        }
    )


def _km_hazard(
    months: np.ndarray, event: np.ndarray, max_months: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discrete monthly hazard h[m-1] = P(leave after month m | paid m months), events, risk sets."""
    h = np.full(max_months, np.nan)
    at_risk = np.zeros(max_months)
    deaths = np.zeros(max_months)
    for m in range(1, max_months + 1):
        r = np.sum(months >= m)
        d = np.sum((months == m) & event)
        at_risk[m - 1] = r
        deaths[m - 1] = d
        if r > 0:
            h[m - 1] = d / r
    return h, deaths, at_risk


class PostReturnSurvival:
    """Survival of the post-return tenure, learnt from past reactivations.

    Parameters
    ----------
    max_months : int
        Months of hazard kept (longer horizons repeat the tail hazard).
    min_at_risk : int
        A month's hazard is estimated from data only with at least this many
        customers at risk; later months use the mean hazard of the last 6
        well-estimated months.
    min_bump_exposure : int
        Customers back on a discount needed to measure the discount-end bump.
    prior_hazard : float
        Monthly hazard used when there are no past returns at all (a stated
        fallback: ``source_ == "prior"``).

    Attributes
    ----------
    hazard_ : ndarray (max_months,)
        Baseline monthly hazard (customers back without a discount).
    bump_ : BumpEstimate
    n_returns_ : int
    source_ : str
    """

    def __init__(
        self,
        max_months: int = 120,
        min_at_risk: int = 30,
        min_bump_exposure: int = 30,
        prior_hazard: float = 0.08,
    ) -> None:
        self.max_months = max_months
        self.min_at_risk = min_at_risk
        self.min_bump_exposure = min_bump_exposure
        self.prior_hazard = prior_hazard

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "max_months": self.max_months,
            "min_at_risk": self.min_at_risk,
            "min_bump_exposure": self.min_bump_exposure,
            "prior_hazard": self.prior_hazard,
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
            ``customer_id``, ``returned_at``, ``months``, ``lapsed_again``.
        discount_returns : DataFrame, optional
            ``customer_id``, ``returned_at``, ``discount_months``: returns that
            followed a discount offer of a past campaign. They are left out of
            the baseline and used to measure the discount-end bump.
        """
        t = tenures.copy()
        t["discount_months"] = 0
        if discount_returns is not None and len(discount_returns):
            key = ["customer_id", "returned_at"]
            d = discount_returns[[*key, "discount_months"]].drop_duplicates(key)
            t = t.drop(columns="discount_months").merge(d, on=key, how="left")
            t["discount_months"] = t["discount_months"].fillna(0).astype(int)
        base = t[t["discount_months"] == 0]
        self.n_returns_ = int(len(t))
        M = int(self.max_months)
        if len(base) < self.min_at_risk:
            self.hazard_ = np.full(M, float(self.prior_hazard))
            self.smoothed_hazard_ = self.hazard_.copy()
            self.source_ = f"prior (only {len(base)} past returns without a discount; hazard {self.prior_hazard}/month)"
        else:
            h, d, r = _km_hazard(base["months"].to_numpy(), base["lapsed_again"].to_numpy(bool), M)
            # smoothed baseline (months k-1..k+1 pooled) for the bump's expected count
            dk = np.convolve(d, np.ones(3), mode="same")
            rk = np.convolve(r, np.ones(3), mode="same")
            self.smoothed_hazard_ = np.where(rk > 0, dk / np.maximum(rk, 1), np.nan)
            good = np.flatnonzero(r >= self.min_at_risk)
            last = int(good.max()) + 1 if len(good) else 0
            tail = (
                float(np.nanmean(h[max(0, last - 6) : last])) if last else float(self.prior_hazard)
            )
            h = np.where(np.arange(M) < last, np.nan_to_num(h, nan=tail), tail)
            self.hazard_ = h
            self.n_months_estimated_ = last
            self.source_ = f"Kaplan-Meier of {len(base)} past returns ({last} months estimated, tail hazard {tail:.3f})"
        self.bump_ = self._measure_bump(t[t["discount_months"] > 0])
        return self

    def _measure_bump(self, disc: pd.DataFrame) -> BumpEstimate:
        from scipy import stats

        if len(disc):
            d = disc["discount_months"].to_numpy(int)
            exposed = (disc["months"].to_numpy() >= d) & (d <= len(self.hazard_))
        else:
            exposed = np.zeros(0, bool)
        n_exp = int(exposed.sum())
        if n_exp < self.min_bump_exposure:
            return BumpEstimate(
                1.0, 0.0, np.inf, 0, 0.0, n_exp, f"prior (no evidence: {n_exp} exposed)"
            )
        dd = disc[exposed]
        k = dd["discount_months"].to_numpy(int)
        obs = int(((dd["months"].to_numpy() == k) & dd["lapsed_again"].to_numpy(bool)).sum())
        hs = np.where(np.isfinite(self.smoothed_hazard_), self.smoothed_hazard_, self.hazard_)
        exp_ = float(hs[k - 1].sum())
        ratio = obs / exp_ if exp_ > 0 else np.inf
        # exact Poisson interval of the observed count, divided by the expected
        lo = stats.chi2.ppf(0.025, 2 * obs) / 2 / exp_ if obs > 0 else 0.0
        hi = stats.chi2.ppf(0.975, 2 * obs + 2) / 2 / exp_
        return BumpEstimate(float(ratio), float(lo), float(hi), obs, exp_, n_exp, "measured")

    @property
    def discount_end_bump_(self) -> float:
        self._check()
        return self.bump_.ratio

    def _check(self) -> None:
        if not hasattr(self, "hazard_"):
            raise NotFittedError("This PostReturnSurvival is not fitted yet. Call 'fit' first.")

    def survival(self, horizon_months: int, discount_months: int = 0) -> np.ndarray:
        """``S(m)`` for m = 0..horizon-1: probability of paying month m + 1 after the return."""
        self._check()
        H = int(horizon_months)
        h = np.resize(self.hazard_, max(H, len(self.hazard_)))[:H].copy()
        if len(self.hazard_) < H:
            h[len(self.hazard_) :] = self.hazard_[-1]
        if 0 < discount_months <= H - 1:
            h[discount_months - 1] = min(1.0, h[discount_months - 1] * self.bump_.ratio)
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
        One row per customer with ``mrr`` (or ``total_paid`` and ``tenure_days``).
    offer : Offer or None
        None or ``offer_type == "none"`` (and non-discount offers): full price.
    config : BusinessConfig, dict or None
        ``margin``, ``ltv_horizon_months``, ``annual_discount_rate``.
    survival : PostReturnSurvival
        Fitted post-return survival.

    Returns
    -------
    Series aligned with ``customers``.
    """
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    H = int(cfg.ltv_horizon_months)
    disc_pct, disc_m = 0.0, 0
    if offer is not None and offer.offer_type in _DISCOUNT_TYPES:
        disc_pct, disc_m = offer.effective_discount_pct, int(offer.discount_months)
    s = survival.survival(H, disc_m)
    pay = np.ones(H)
    pay[: min(disc_m, H)] = 1.0 - disc_pct / 100.0
    factor = float(np.sum(s * pay * _discount_factor(H, cfg.annual_discount_rate)))
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
