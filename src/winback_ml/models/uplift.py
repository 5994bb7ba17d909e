"""Multi-arm uplift learners, uplift metrics and off-policy evaluation.

Vocabulary follows CausalML: ``fit(X, treatment, y)``, ``predict_uplift(X)``,
``qini_curve``, ``auuc_score``, ``uplift_at_k``.

Invariants
----------
* ``treatment`` is an array of arm labels (strings or integers), one per row;
  one label is the control arm (``control_arm``; the default is the label
  ``"control"``, else ``0``, else the first label in sorted order).
* ``predict_uplift(X)`` returns an ``(n, n_arms)`` array: the estimated
  effect of each *treatment* arm (in ``treatment_arms_`` order) against
  control, in the units of ``y`` (a probability difference for a binary y).
* ``predict_outcome(X)`` returns ``(n, n_arms + 1)``: ``E[y | x, arm]`` for
  the control arm first, then the treatment arms.
* The learners keep fitted sub-models only, never the training data.
* The metric functions compare one treatment arm (``treatment == 1``) with
  control (``treatment == 0``); pass a boolean/0-1 array.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(4000, 3))
>>> t = rng.choice(["control", "a"], size=4000)
>>> p = 0.1 + 0.1 * (t == "a") * (X[:, 0] > 0)
>>> y = (rng.random(4000) < p).astype(int)
>>> m = TLearnerUpliftModel(random_state=0).fit(X, t, y)
>>> m.predict_uplift(X).shape
(4000, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from winback_ml.exceptions import ModelError, NotFittedError

__all__ = [
    "BaseUpliftModel",
    "TLearnerUpliftModel",
    "XLearnerUpliftModel",
    "DRLearnerUpliftModel",
    "PolicyValue",
    "qini_curve",
    "uplift_curve",
    "auuc_score",
    "qini_score",
    "uplift_at_k",
    "policy_value_ipw",
    "policy_value_dr",
    "arm_propensities",
]


def _default_classifier(random_state: int | None) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.06,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        random_state=random_state,
    )


def _default_regressor(random_state: int | None) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=100,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=80,
        l2_regularization=1.0,
        random_state=random_state,
    )


def _as_2d(X: Any) -> np.ndarray | pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    a = np.asarray(X)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    return a


def _take(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def _is_binary(y: np.ndarray) -> bool:
    u = np.unique(y)
    return len(u) <= 2 and set(u.tolist()) <= {0, 1}


class _OutcomeModel:
    """A clone of the base estimator that predicts ``E[y | x]`` (a probability for a binary y)."""

    def __init__(self, estimator: BaseEstimator) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: np.ndarray) -> _OutcomeModel:
        y = np.asarray(y)
        self.constant_: float | None = None
        if len(np.unique(y)) < 2:  # all the same: a classifier cannot be fit
            self.constant_ = float(np.mean(y)) if len(y) else 0.0
            return self
        self.model_ = clone(self.estimator).fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        n = len(X)
        if self.constant_ is not None:
            return np.full(n, self.constant_)
        if is_classifier(self.model_):
            return self.model_.predict_proba(X)[:, 1]
        return np.asarray(self.model_.predict(X), dtype=float)


class BaseUpliftModel(BaseEstimator):
    """Shared checks of the multi-arm uplift learners (not used directly)."""

    def _outcome_estimator(self, y: np.ndarray) -> BaseEstimator:
        if self.base_estimator is not None:
            return self.base_estimator
        rs = self.random_state
        return _default_classifier(rs) if _is_binary(y) else _default_regressor(rs)

    def _effect_estimator(self) -> BaseEstimator:
        if getattr(self, "effect_estimator", None) is not None:
            return self.effect_estimator
        return _default_regressor(self.random_state)

    def _check_fit_input(
        self, X: Any, treatment: Any, y: Any
    ) -> tuple[Any, np.ndarray, np.ndarray]:
        X = _as_2d(X)
        t = np.asarray(treatment)
        y = np.asarray(y, dtype=float)
        if not (len(X) == len(t) == len(y)):
            raise ModelError(
                f"X, treatment and y must have the same length. Got {len(X)}, {len(t)} and {len(y)} instead."
            )
        if np.any(~np.isfinite(y)):
            raise ModelError(
                "y has missing or infinite values. Fix: drop or fill those rows before fit."
            )
        labels = sorted(pd.unique(t).tolist(), key=str)
        ctrl = self.control_arm
        if ctrl is None:
            ctrl = "control" if "control" in labels else (0 if 0 in labels else labels[0])
        if ctrl not in labels:
            raise ModelError(
                f"The control arm {ctrl!r} is not among the treatment labels {labels!r}. "
                "Fix: pass control_arm= naming the arm that was not contacted."
            )
        arms = [a for a in labels if a != ctrl]
        if not arms:
            raise ModelError(
                f"Only the control arm {ctrl!r} is present: there is no treatment to compare."
            )
        for a in [ctrl, *arms]:
            n = int(np.sum(t == a))
            if n < self.min_arm_size:
                raise ModelError(
                    f"Arm {a!r} has {n} rows, fewer than min_arm_size={self.min_arm_size}. "
                    "Fix: pool it with a similar arm, drop it, or lower min_arm_size knowingly."
                )
        self.control_arm_ = ctrl
        self.treatment_arms_ = arms
        self.n_features_in_ = X.shape[1]
        return X, t, y

    def _check_fitted(self) -> None:
        if not hasattr(self, "treatment_arms_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call 'fit' first.")

    def predict_uplift(self, X: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def predict_uplift_frame(self, X: Any) -> pd.DataFrame:
        """``predict_uplift`` as a frame with one column per treatment arm."""
        u = self.predict_uplift(X)
        idx = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(u, columns=[str(a) for a in self.treatment_arms_], index=idx)


class TLearnerUpliftModel(BaseUpliftModel):
    """T-learner: one outcome model per arm; uplift = ``mu_arm(x) - mu_control(x)``.

    Parameters
    ----------
    base_estimator : scikit-learn estimator, optional
        Outcome model, cloned per arm. A classifier (``predict_proba``) for a
        binary outcome, else a regressor. Default: histogram gradient boosting.
    control_arm : label, optional
        The control arm's label (see the module docstring for the default).
    min_arm_size : int
        Arms with fewer rows raise :class:`ModelError` at ``fit``.
    random_state : int, optional
    """

    def __init__(
        self,
        base_estimator: BaseEstimator | None = None,
        control_arm: Any = None,
        min_arm_size: int = 30,
        random_state: int | None = None,
    ) -> None:
        self.base_estimator = base_estimator
        self.control_arm = control_arm
        self.min_arm_size = min_arm_size
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> TLearnerUpliftModel:
        X, t, y = self._check_fit_input(X, treatment, y)
        est = self._outcome_estimator(y)
        self.models_ = {}
        for a in [self.control_arm_, *self.treatment_arms_]:
            idx = np.flatnonzero(t == a)
            self.models_[a] = _OutcomeModel(est).fit(_take(X, idx), y[idx])
        return self

    def predict_outcome(self, X: Any) -> np.ndarray:
        """``E[y | x, arm]`` for control then each treatment arm: shape ``(n, n_arms + 1)``."""
        self._check_fitted()
        X = _as_2d(X)
        return np.column_stack(
            [self.models_[a].predict(X) for a in [self.control_arm_, *self.treatment_arms_]]
        )

    def predict_uplift(self, X: Any) -> np.ndarray:
        mu = self.predict_outcome(X)
        return mu[:, 1:] - mu[:, [0]]


class XLearnerUpliftModel(BaseUpliftModel):
    """X-learner (Künzel et al. 2019), one control-vs-arm problem per treatment arm.

    Stage 1 fits outcome models per arm; stage 2 regresses the imputed effects
    ``y - mu_0(x)`` (treated) and ``mu_t(x) - y`` (control) on ``x``; the two
    effect models are blended with the propensity ``g(x) = P(arm t | x, {0, t})``
    (``tau = g * tau_0 + (1 - g) * tau_1``). In a randomized campaign ``g`` is
    the arm's share (``propensity="share"``); pass ``propensity="model"`` to
    fit a logistic regression instead.
    """

    def __init__(
        self,
        base_estimator: BaseEstimator | None = None,
        effect_estimator: BaseEstimator | None = None,
        control_arm: Any = None,
        propensity: str = "share",
        min_arm_size: int = 30,
        random_state: int | None = None,
    ) -> None:
        self.base_estimator = base_estimator
        self.effect_estimator = effect_estimator
        self.control_arm = control_arm
        self.propensity = propensity
        self.min_arm_size = min_arm_size
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> XLearnerUpliftModel:
        X, t, y = self._check_fit_input(X, treatment, y)
        if self.propensity not in ("share", "model"):
            raise ModelError(
                f"The 'propensity' parameter must be 'share' or 'model'. Got {self.propensity!r}."
            )
        est = self._outcome_estimator(y)
        eff = self._effect_estimator()
        i0 = np.flatnonzero(t == self.control_arm_)
        X0, y0 = _take(X, i0), y[i0]
        self.mu_ = {self.control_arm_: _OutcomeModel(est).fit(X0, y0)}
        mu0_model = self.mu_[self.control_arm_]
        self.tau0_, self.tau1_, self.g_ = {}, {}, {}
        for a in self.treatment_arms_:
            i1 = np.flatnonzero(t == a)
            X1, y1 = _take(X, i1), y[i1]
            mu1 = _OutcomeModel(est).fit(X1, y1)
            self.mu_[a] = mu1
            d1 = y1 - mu0_model.predict(X1)
            d0 = mu1.predict(X0) - y0
            self.tau1_[a] = clone(eff).fit(X1, d1)
            self.tau0_[a] = clone(eff).fit(X0, d0)
            if self.propensity == "share":
                self.g_[a] = len(i1) / (len(i1) + len(i0))
            else:
                from sklearn.linear_model import LogisticRegression

                Xa = pd.concat([X0, X1]) if isinstance(X, pd.DataFrame) else np.vstack([X0, X1])
                ta = np.r_[np.zeros(len(i0)), np.ones(len(i1))]
                self.g_[a] = LogisticRegression(max_iter=1000).fit(Xa, ta)
        return self

    def _g(self, a: Any, X: Any) -> np.ndarray:
        g = self.g_[a]
        if isinstance(g, float):
            return np.full(len(X), g)
        return np.clip(g.predict_proba(X)[:, 1], 0.01, 0.99)

    def predict_uplift(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = _as_2d(X)
        cols = []
        for a in self.treatment_arms_:
            g = self._g(a, X)
            cols.append(g * self.tau0_[a].predict(X) + (1 - g) * self.tau1_[a].predict(X))
        return np.column_stack(cols)

    def predict_outcome(self, X: Any) -> np.ndarray:
        """Stage-1 outcome models: ``(n, n_arms + 1)``, control first."""
        self._check_fitted()
        X = _as_2d(X)
        return np.column_stack(
            [self.mu_[a].predict(X) for a in [self.control_arm_, *self.treatment_arms_]]
        )


class DRLearnerUpliftModel(BaseUpliftModel):
    """Doubly robust learner (Kennedy 2023) with cross-fitting.

    For each arm ``a`` the AIPW pseudo-outcome
    ``phi = mu_a(x) - mu_0(x) + 1[T=a] (y - mu_a(x)) / e_a - 1[T=0] (y - mu_0(x)) / e_0``
    is built with outcome models fitted on the other folds, and regressed on
    ``x``. Propensities ``e_a`` are the arm shares (randomized campaigns).
    """

    def __init__(
        self,
        base_estimator: BaseEstimator | None = None,
        effect_estimator: BaseEstimator | None = None,
        control_arm: Any = None,
        n_folds: int = 2,
        min_arm_size: int = 30,
        random_state: int | None = None,
    ) -> None:
        self.base_estimator = base_estimator
        self.effect_estimator = effect_estimator
        self.control_arm = control_arm
        self.n_folds = n_folds
        self.min_arm_size = min_arm_size
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> DRLearnerUpliftModel:
        X, t, y = self._check_fit_input(X, treatment, y)
        est = self._outcome_estimator(y)
        eff = self._effect_estimator()
        arms = [self.control_arm_, *self.treatment_arms_]
        n = len(y)
        self.propensities_ = {a: float(np.mean(t == a)) for a in arms}
        mu = np.zeros((n, len(arms)))
        kf = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.random_state)
        for train, test in kf.split(np.zeros(n)):
            for j, a in enumerate(arms):
                idx = train[t[train] == a]
                mu[test, j] = _OutcomeModel(est).fit(_take(X, idx), y[idx]).predict(_take(X, test))
        self.tau_ = {}
        e0 = self.propensities_[self.control_arm_]
        r0 = (t == self.control_arm_) * (y - mu[:, 0]) / e0
        for j, a in enumerate(self.treatment_arms_, start=1):
            ea = self.propensities_[a]
            phi = mu[:, j] - mu[:, 0] + (t == a) * (y - mu[:, j]) / ea - r0
            self.tau_[a] = clone(eff).fit(X, phi)
        return self

    def predict_uplift(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = _as_2d(X)
        return np.column_stack([self.tau_[a].predict(X) for a in self.treatment_arms_])


# --------------------------------------------------------------------------- metrics


def _metric_input(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    u = np.asarray(uplift, dtype=float)
    t = np.asarray(treatment).astype(bool)
    if not (len(y) == len(u) == len(t)):
        raise ModelError(
            f"y, uplift and treatment must have the same length. Got {len(y)}, {len(u)}, {len(t)}."
        )
    if t.all() or (~t).all():
        raise ModelError(
            "Uplift metrics need both treated (1) and control (0) rows. Got only one group."
        )
    return y, u, t


def _cumulative(y: np.ndarray, u: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    # Sort by predicted uplift, best first; ties keep a stable order.
    order = np.argsort(-u, kind="mergesort")
    y, t = y[order], t[order]
    n_t = np.cumsum(t)
    n_c = np.cumsum(~t)
    y_t = np.cumsum(y * t)
    y_c = np.cumsum(y * ~t)
    return n_t, n_c, y_t, y_c


def qini_curve(y: Any, uplift: Any, treatment: Any, n_points: int | None = 101) -> pd.DataFrame:
    """Qini curve (Radcliffe 2007): incremental outcomes among the top-k targeted.

    ``qini(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k)`` with customers sorted by
    predicted uplift, best first. Returns a frame with ``fraction`` (share of
    customers targeted), ``qini`` (incremental outcomes, in units of ``y``,
    scaled to the treated group) and ``random`` (the straight line of random
    targeting). ``n_points`` subsamples the curve (None = every customer).
    """
    y, u, t = _metric_input(y, uplift, treatment)
    n_t, n_c, y_t, y_c = _cumulative(y, u, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = y_t - np.where(n_c > 0, y_c * n_t / n_c, 0.0)
    n = len(y)
    frac = np.arange(1, n + 1) / n
    frac = np.r_[0.0, frac]
    q = np.r_[0.0, q]
    rand = frac * q[-1]
    df = pd.DataFrame({"fraction": frac, "qini": q, "random": rand})
    if n_points is not None and n + 1 > n_points:
        idx = np.unique(np.round(np.linspace(0, n, n_points)).astype(int))
        df = df.iloc[idx].reset_index(drop=True)
    return df


def uplift_curve(y: Any, uplift: Any, treatment: Any, n_points: int | None = 101) -> pd.DataFrame:
    """Cumulative-gain uplift curve: ``(mean_t(k) - mean_c(k)) * k / n`` per customer of the population.

    ``gain`` at fraction 1 is the average treatment effect; ``random`` is
    the line of random targeting.
    """
    y, u, t = _metric_input(y, uplift, treatment)
    n_t, n_c, y_t, y_c = _cumulative(y, u, t)
    n = len(y)
    k = np.arange(1, n + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.where(
            (n_t > 0) & (n_c > 0), y_t / np.maximum(n_t, 1) - y_c / np.maximum(n_c, 1), 0.0
        )
    gain = np.r_[0.0, diff * k / n]
    frac = np.r_[0.0, k / n]
    df = pd.DataFrame({"fraction": frac, "gain": gain, "random": frac * gain[-1]})
    if n_points is not None and n + 1 > n_points:
        idx = np.unique(np.round(np.linspace(0, n, n_points)).astype(int))
        df = df.iloc[idx].reset_index(drop=True)
    return df


def auuc_score(y: Any, uplift: Any, treatment: Any) -> float:
    """Area under the uplift (cumulative gain) curve above random targeting.

    In units of ``y`` per customer: 0 for a random ranking, positive when the
    ranking puts responders to treatment first. Computed on the full curve.
    """
    c = uplift_curve(y, uplift, treatment, n_points=None)
    return float(np.trapezoid(c["gain"] - c["random"], c["fraction"]))


def qini_score(y: Any, uplift: Any, treatment: Any) -> float:
    """Qini coefficient: area between the Qini curve and random targeting, per treated customer."""
    y_, u, t = _metric_input(y, uplift, treatment)
    c = qini_curve(y_, u, t, n_points=None)
    return float(np.trapezoid(c["qini"] - c["random"], c["fraction"]) / max(int(t.sum()), 1))


def uplift_at_k(y: Any, uplift: Any, treatment: Any, k: float = 0.3) -> float:
    """Observed uplift (mean treated minus mean control) among the top ``k`` share by predicted uplift."""
    if not 0 < k <= 1:
        raise ModelError(f"The 'k' parameter of uplift_at_k must be in (0, 1]. Got {k!r} instead.")
    y, u, t = _metric_input(y, uplift, treatment)
    order = np.argsort(-u, kind="mergesort")
    top = order[: max(1, int(np.ceil(k * len(y))))]
    yt, tt = y[top], t[top]
    if tt.all() or (~tt).all():
        return float("nan")
    return float(yt[tt].mean() - yt[~tt].mean())


# --------------------------------------------------------------------------- policy value


@dataclass(frozen=True)
class PolicyValue:
    """An off-policy value estimate: mean outcome per customer under the policy."""

    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    n_matched: int
    method: str


def arm_propensities(treatment: Any) -> np.ndarray:
    """Each row's probability of its observed arm, taken as the arm's share (randomized assignment)."""
    t = pd.Series(np.asarray(treatment))
    return t.map(t.value_counts(normalize=True)).to_numpy(dtype=float)


def _policy_input(y: Any, treatment: Any, policy: Any, propensity: Any) -> tuple[np.ndarray, ...]:
    y = np.asarray(y, dtype=float)
    t = np.asarray(treatment)
    pi = np.asarray(policy)
    if not (len(y) == len(t) == len(pi)):
        raise ModelError(
            f"y, treatment and policy must have the same length. Got {len(y)}, {len(t)}, {len(pi)}."
        )
    p = arm_propensities(t) if propensity is None else np.asarray(propensity, dtype=float)
    if np.any(p <= 0) or np.any(p > 1) or np.any(~np.isfinite(p)):
        raise ModelError(
            "Propensities must lie in (0, 1]. Fix: pass the assignment probabilities of the campaign."
        )
    unknown = set(pd.unique(pi).tolist()) - set(pd.unique(t).tolist())
    if unknown:
        raise ModelError(
            f"The policy chooses arms never tried in the history: {sorted(map(str, unknown))}. "
            "Their value cannot be estimated off-policy; map them to tried arms or leave them out."
        )
    return y, t, pi, p


def _pv(terms: np.ndarray, n_matched: int, method: str) -> PolicyValue:
    n = len(terms)
    v = float(np.mean(terms))
    se = float(np.std(terms, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return PolicyValue(v, se, v - 1.96 * se, v + 1.96 * se, n, n_matched, method)


def policy_value_ipw(
    y: Any, treatment: Any, policy: Any, propensity: Any = None, self_normalized: bool = False
) -> PolicyValue:
    """Inverse-propensity-weighted value of ``policy`` on a randomized history.

    ``V = mean( 1[T_i = pi_i] * y_i / p_i )`` where ``p_i`` is the probability
    that row i got its observed arm (default: the arm's share). With
    ``self_normalized`` the weights are rescaled to sum to n (SNIPW: less
    variance, a small bias). ``y`` may be any per-customer outcome (a
    reactivation flag, or profit net of contact cost).
    """
    y, t, pi, p = _policy_input(y, treatment, policy, propensity)
    w = (t == pi) / p
    if self_normalized:
        w = w * len(w) / max(w.sum(), 1e-12)
    return _pv(w * y, int((t == pi).sum()), "snipw" if self_normalized else "ipw")


def policy_value_dr(
    y: Any,
    treatment: Any,
    policy: Any,
    mu: pd.DataFrame,
    propensity: Any = None,
) -> PolicyValue:
    """Doubly robust (AIPW) value of ``policy``.

    ``V = mean( mu(x_i, pi_i) + 1[T_i = pi_i] (y_i - mu(x_i, T_i)) / p_i )``.

    Parameters
    ----------
    mu : DataFrame
        Predicted outcome of every row under every arm, one column per arm
        label (``str(label)``), e.g. from ``predict_outcome`` of a T-learner.
        Ideally cross-fitted (predictions for rows not used in training).
    """
    y, t, pi, p = _policy_input(y, treatment, policy, propensity)
    mu = pd.DataFrame(mu)
    cols = {str(c): c for c in mu.columns}
    missing = {str(a) for a in pd.unique(np.r_[t, pi])} - set(cols)
    if missing:
        raise ModelError(
            f"mu lacks predicted outcomes for arms {sorted(missing)}. "
            "Fix: give mu one column per arm label."
        )
    m = mu.rename(columns=lambda c: str(c)).to_numpy(dtype=float)
    pos = {c: i for i, c in enumerate(str(c) for c in mu.columns)}
    rows = np.arange(len(y))
    mu_pi = m[rows, [pos[str(a)] for a in pi]]
    mu_t = m[rows, [pos[str(a)] for a in t]]
    terms = mu_pi + (t == pi) * (y - mu_t) / p
    return _pv(terms, int((t == pi).sum()), "dr")
