"""Shifted-beta-geometric (sBG) contractual retention model.

Fader & Hardie (2007), "How to project customer retention", J. Interactive
Marketing 21(1); discounted expected residual lifetime (DERL) from Fader &
Hardie (2010), "Customer-base valuation in a contractual setting: the perils
of ignoring heterogeneity", Marketing Science 29(1).

Model: each customer has a constant per-period churn probability ``theta``
drawn from Beta(alpha, beta); a customer churns at the end of a period with
probability ``theta``. With ``T`` the period in which the customer churns,

* ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``, t = 1, 2, ...
* ``S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)``, ``S(0) = 1``.

Invariants: periods are integers counted from 0 (the acquisition period);
``survival_function(t)`` is the share of a cohort still active after ``t``
renewal opportunities; the model is cohort level and carries no covariates.
Discount rates are per period (an annual rate for yearly periods, a monthly
rate for monthly periods). The fitted model keeps no training data.

Example
-------
>>> from winback_ml.ltv.sbg import ShiftedBetaGeometricModel, FADER_HARDIE_2007
>>> m = ShiftedBetaGeometricModel().fit(FADER_HARDIE_2007["regular"][:8])
>>> round(m.alpha_, 3), round(m.beta_, 3)
(0.704, 1.182)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, hyp2f1

from winback_ml.exceptions import ModelError, NotFittedError

__all__ = ["ShiftedBetaGeometricModel", "FADER_HARDIE_2007", "sbg_survival", "sbg_derl"]

#: Customers surviving years 0..12 of the two cohorts of Fader & Hardie (2007),
#: table 1 ("regular" and "high end" segments, 1000 customers each). Fitting
#: years 1..7 gives the paper's estimates: regular alpha 0.704, beta 1.182;
#: high end alpha 0.668, beta 3.806 (the high-end cohort retains better, so
#: its mean churn probability alpha / (alpha + beta) is the lower one).
FADER_HARDIE_2007: dict[str, tuple[int, ...]] = {
    "regular": (1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173),
    "high_end": (1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394),
}


def sbg_survival(alpha: float, beta: float, t: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """``S(t) = B(alpha, beta + t) / B(alpha, beta)`` (share still active after ``t`` periods)."""
    t = np.asarray(t, dtype=float)
    return np.exp(betaln(alpha, beta + t) - betaln(alpha, beta))


def sbg_derl(alpha: float, beta: float, discount_rate: float, n_renewals: int = 0) -> float:
    """Discounted expected residual lifetime (Fader & Hardie 2010, eq. 6).

    For a customer who has made ``n_renewals`` = n - 1 renewals and stands just
    before the decision at the end of period n, the expected number of
    further payments, each discounted to now at ``discount_rate`` per period::

        DERL = sum_{t >= n} S(t) / S(n - 1) / (1 + d) ** (t - n)
             = B(a, b + n) / B(a, b + n - 1) * 2F1(1, b + n; a + b + n; 1 / (1 + d))

    Multiply by the margin per period to get a residual value.
    """
    if discount_rate <= 0:
        raise ModelError(
            f"The 'discount_rate' of sbg_derl must be > 0 (the series diverges for alpha <= 1 "
            f"without discounting). Got {discount_rate!r} instead."
        )
    n = int(n_renewals) + 1
    lead = np.exp(betaln(alpha, beta + n) - betaln(alpha, beta + n - 1))
    return float(lead * hyp2f1(1.0, beta + n, alpha + beta + n, 1.0 / (1.0 + discount_rate)))


class ShiftedBetaGeometricModel:
    """Shifted-beta-geometric cohort retention model fit by maximum likelihood.

    Parameters
    ----------
    alpha_init, beta_init : float
        Starting values of the optimizer (on the log scale internally).

    Attributes
    ----------
    alpha_, beta_ : float
        Maximum-likelihood estimates.
    log_likelihood_ : float
        Log-likelihood at the optimum.
    n_periods_ : int
        Number of observed periods after period 0.

    Notes
    -----
    ``fit`` takes the number of customers still active at the start of each
    period 0..k of a single cohort (``survivors[0]`` is the cohort size). The
    customers lost in period t contribute ``log P(T = t)``; those still active
    after k contribute ``log S(k)``.
    """

    def __init__(self, alpha_init: float = 1.0, beta_init: float = 1.0) -> None:
        self.alpha_init = alpha_init
        self.beta_init = beta_init

    def get_params(self, deep: bool = True) -> dict[str, float]:
        return {"alpha_init": self.alpha_init, "beta_init": self.beta_init}

    def set_params(self, **params: float) -> ShiftedBetaGeometricModel:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, survivors: Sequence[float] | np.ndarray) -> ShiftedBetaGeometricModel:
        """Fit on the survivor counts of one cohort (periods 0..k)."""
        s = np.asarray(survivors, dtype=float)
        if s.ndim != 1 or len(s) < 3:
            raise ModelError(
                "ShiftedBetaGeometricModel.fit needs the survivor counts of at least periods 0..2. "
                f"Got {s.tolist()!r} instead."
            )
        if np.any(~np.isfinite(s)) or np.any(s < 0) or np.any(np.diff(s) > 0) or s[0] <= 0:
            raise ModelError(
                "Survivor counts must be finite, non-negative, non-increasing and start above 0. "
                f"Got {s.tolist()!r} instead. Fix: pass counts of the same cohort, period 0 first."
            )
        lost = -np.diff(s)
        k = len(s) - 1
        t = np.arange(1, k + 1, dtype=float)
        alive = s[-1]

        def nll(theta: np.ndarray) -> float:
            a, b = np.exp(theta)
            log_p = betaln(a + 1, b + t - 1) - betaln(a, b)
            log_s = betaln(a, b + k) - betaln(a, b)
            return -float(np.sum(lost * log_p) + alive * log_s)

        x0 = np.log([self.alpha_init, self.beta_init])
        res = minimize(
            nll, x0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 5000}
        )
        res = minimize(nll, res.x, method="BFGS")
        if not np.all(np.isfinite(res.x)):
            raise ModelError(f"sBG maximum likelihood did not converge: {res.message}")
        self.alpha_, self.beta_ = (float(v) for v in np.exp(res.x))
        self.log_likelihood_ = -float(res.fun)
        self.n_periods_ = k
        return self

    def _check(self) -> None:
        if not hasattr(self, "alpha_"):
            raise NotFittedError(
                "This ShiftedBetaGeometricModel is not fitted yet. Call 'fit' first."
            )

    def survival_function(self, t: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Share of the cohort still active after ``t`` periods."""
        self._check()
        return sbg_survival(self.alpha_, self.beta_, t)

    def retention_rate(self, t: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Period-t retention ``r(t) = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``."""
        self._check()
        t = np.asarray(t, dtype=float)
        return (self.beta_ + t - 1) / (self.alpha_ + self.beta_ + t - 1)

    def churn_probability(self, t: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """``P(T = t)``: probability of churning at the end of period ``t`` (t >= 1)."""
        self._check()
        t = np.asarray(t, dtype=float)
        return np.exp(betaln(self.alpha_ + 1, self.beta_ + t - 1) - betaln(self.alpha_, self.beta_))

    def expected_residual_lifetime(self, discount_rate: float, n_renewals: int = 0) -> float:
        """Discounted expected residual lifetime (DERL) of a customer with ``n_renewals`` renewals."""
        self._check()
        return sbg_derl(self.alpha_, self.beta_, discount_rate, n_renewals)

    def expected_residual_value(
        self, margin_per_period: float, discount_rate: float, n_renewals: int = 0
    ) -> float:
        """``margin_per_period * DERL``: value of a customer still active after ``n_renewals``."""
        return float(margin_per_period) * self.expected_residual_lifetime(discount_rate, n_renewals)
