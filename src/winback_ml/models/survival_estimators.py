"""The four survival methods behind the return and churn models.

* :class:`KaplanMeierSurvival`: one Kaplan-Meier curve per group (e.g. per
  cancel reason), the baseline; groups smaller than ``min_group_size`` use
  the pooled curve.
* :class:`CoxSurvival`: lifelines ``CoxPHFitter`` on standardised, one-hot
  features; the baseline survival is flat after the last observed event, so
  the curve keeps the plateau (cure fraction) the data show.
* :class:`WeibullCureSurvival`: a mixture cure model written here,
  ``S(t | x) = 1 - pi(x) + pi(x) exp(-(t / lambda(x)) ** rho)`` with
  ``pi`` logistic and ``lambda`` log-linear in the features (AFT), fitted by
  maximum likelihood on censored data with scipy (analytic gradient,
  L-BFGS-B). ``cure=False`` gives a plain Weibull AFT.
* :class:`XGBoostAFTSurvival`: XGBoost ``survival:aft`` (normal, logistic or
  extreme errors on log time); right-censored rows have an infinite upper bound.
* :class:`DiscreteHazardSurvival`: a discrete-time hazard model. Time is cut
  into intervals of ``interval_days``; each subject contributes one row per
  interval it was at risk in (person-period data), labelled 1 in the interval
  of its event, and a gradient-boosted classifier (scikit-learn
  ``HistGradientBoostingClassifier``) learns ``h_k(x) = P(event in interval k |
  at risk at its start, x)`` with the interval index as a feature. ``S(t | x)
  = prod (1 - h_k(x))`` over the intervals before ``t``, geometric within an
  interval, and the last interval's hazard beyond the data. No shape is assumed
  (events that cluster at renewal dates are fine). A row censored inside an
  interval counts for the observed share of it (actuarial weight). The
  classifier is XGBoost (``binary:logistic``), so SHAP contributions come free.

These are method bases: the public estimators are the ``*ReturnModel`` and
``*ChurnModel`` classes of :mod:`winback_ml.models.return_model` and
:mod:`winback_ml.models.churn_model`, which add the business outputs.
Durations are days; a duration of 0 is read as half a day for the
parametric likelihoods (an event on the day of the origin).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from winback_ml.exceptions import ModelError
from winback_ml.models.survival import SurvivalModel

__all__ = [
    "KaplanMeierSurvival",
    "CoxSurvival",
    "WeibullCureSurvival",
    "XGBoostAFTSurvival",
    "DiscreteHazardSurvival",
    "kaplan_meier",
]

#: lifelines ConvergenceWarning texts that mean the fit did not settle (others are advice).
_COX_NOT_CONVERGED = ("norm(delta) is still high", "failed to converge", "did not converge")
_MIN_T = 0.5  # days: an event on day 0 counts as half a day in the likelihoods


def kaplan_meier(
    durations: np.ndarray, events: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate: (event times, survival just after each time)."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=float)
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=float)
    if len(d) == 0:
        return np.array([]), np.array([])
    order = np.argsort(d, kind="mergesort")
    d, e, w = d[order], e[order], w[order]
    times, idx = np.unique(d, return_index=True)
    deaths = np.add.reduceat(e * w, idx)
    removed = np.add.reduceat(w, idx)
    at_risk = w.sum() - np.concatenate([[0.0], np.cumsum(removed)[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
    surv = np.cumprod(frac)
    keep = deaths > 0
    return times[keep], surv[keep]


def _step_eval(times: np.ndarray, values: np.ndarray, T: np.ndarray, before: float) -> np.ndarray:
    """Right-continuous step function: value at the last time <= T (``before`` if none)."""
    if len(times) == 0:
        return np.full(T.shape, before, dtype=float)
    pos = np.searchsorted(times, T, side="right") - 1
    vals = np.concatenate([[before], values])
    return vals[pos + 1]


def _entry_days(model: SurvivalModel, X: pd.DataFrame, t: np.ndarray) -> np.ndarray:
    """Delayed-entry days per row (0 = observed from the origin), checked against durations."""
    col = getattr(model, "entry_col", None)
    if not col or col not in X.columns:
        return np.zeros(len(X))
    v = pd.to_numeric(X[col], errors="coerce").fillna(0.0).to_numpy(float)
    bad = (v < 0) | (v > t + 1e-9)
    if bad.any():
        rows = list(X.index[bad][:5])
        raise ModelError(
            f"{type(model).__name__}.fit: column {col!r} (days from the origin to entry) must be "
            f"between 0 and the duration. Got {int(bad.sum())} bad row(s), e.g. {rows}."
        )
    return np.minimum(v, t)


class KaplanMeierSurvival(SurvivalModel):
    """Kaplan-Meier curves by group (see the module docstring)."""

    def _fit(self, X: pd.DataFrame) -> None:
        d = pd.to_numeric(X[self.duration_col]).to_numpy(float)
        e = pd.to_numeric(X[self.event_col]).to_numpy(float)
        pooled = kaplan_meier(d, e)
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        gcol = self.group_col
        if gcol is not None:
            if gcol not in X.columns:
                raise ModelError(
                    f"{type(self).__name__}.fit: group column {gcol!r} is not in the training "
                    f"frame. Got columns {list(X.columns)[:30]}. Fix: pass group_col=None for "
                    "one pooled curve, or add the column."
                )
            g = X[gcol].astype("object").where(X[gcol].notna(), "__missing__").astype(str)
            for level, idx in g.groupby(g).groups.items():
                rows = X.index.get_indexer(idx)
                if len(rows) >= self.min_group_size and e[rows].sum() > 0:
                    curves[str(level)] = kaplan_meier(d[rows], e[rows])
                else:
                    self._warn(
                        f"{type(self).__name__}: group {gcol}={level!r} has {len(rows)} rows "
                        f"(< min_group_size={self.min_group_size}) or no event; it uses the pooled curve."
                    )
        self.model_ = {"pooled": pooled, "groups": curves}
        self.groups_ = sorted(curves)

    @property
    def feature_names_in_(self) -> list[str]:
        self._check_fitted()
        return [self.group_col] if self.group_col else []

    def _survival_at(self, X: pd.DataFrame, T: np.ndarray) -> np.ndarray:
        pooled = self.model_["pooled"]
        out = _step_eval(pooled[0], pooled[1], T, 1.0)
        if self.group_col and self.model_["groups"]:
            if self.group_col not in X.columns:
                raise ModelError(
                    f"{type(self).__name__}: the input is missing column {self.group_col!r} "
                    "that the model was fitted on. Fix: add it (the cancel reason of each lapse)."
                )
            g = X[self.group_col].astype("object").where(X[self.group_col].notna(), "__missing__")
            g = g.astype(str).to_numpy()
            for level, (t, s) in self.model_["groups"].items():
                rows = np.flatnonzero(g == level)
                if len(rows):
                    out[rows] = _step_eval(t, s, T[rows], 1.0)
        return out

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        raise ModelError("Kaplan-Meier curves have no per-feature contributions.")

    def predict_risk_contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Not available for Kaplan-Meier: the one driver is the group itself."""
        self._check_fitted()
        col = self.group_col or "pooled"
        p = 1.0 - self._survival_at(X, np.full((len(X), 1), 90.0))[:, 0]
        return pd.DataFrame({col: p}, index=X.index)


class CoxSurvival(SurvivalModel):
    """Cox proportional hazards through lifelines (see the module docstring)."""

    def _fit(self, X: pd.DataFrame) -> None:
        from lifelines import CoxPHFitter
        from lifelines.exceptions import ConvergenceError

        self._make_encoder(X, standardize=True, drop_first=True)
        Z = self.encoder_.transform(X, type(self).__name__)
        names = list(self.encoder_.names_)  # real names: lifelines messages then name them
        df = pd.DataFrame(Z, columns=names)
        df["_T"] = np.maximum(pd.to_numeric(X[self.duration_col]).to_numpy(float), 0.0)
        df["_E"] = pd.to_numeric(X[self.event_col]).to_numpy(int)
        entry = _entry_days(self, X, df["_T"].to_numpy())
        use_entry = bool((entry > 0).any())
        if use_entry:
            # entered at its end: no time at risk, nothing for the partial likelihood (and
            # lifelines refuses entry >= duration)
            empty = (entry > 0) & (entry >= df["_T"].to_numpy())
            if empty.any():
                self._warn(
                    f"{type(self).__name__}: {int(empty.sum())} row(s) enter observation at their "
                    f"end ({self.entry_col} == {self.duration_col}); no time at risk, left out."
                )
                df, entry = df.loc[~empty].reset_index(drop=True), entry[~empty]
            df["_W"] = entry
        from lifelines.exceptions import ConvergenceWarning

        penalizers = [self.penalizer, max(self.penalizer * 10, 0.01), 0.1, 1.0]
        last: Any = None
        cph = None
        for i, pen in enumerate(penalizers):
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    fitter = CoxPHFitter(penalizer=pen)
                    fitter.fit(
                        df,
                        "_T",
                        "_E",
                        entry_col="_W" if use_entry else None,
                        fit_options={"max_steps": self.max_steps},
                    )
            except (ConvergenceError, np.linalg.LinAlgError, ValueError) as exc:
                last = exc
                continue
            conv = [
                w
                for w in caught
                if issubclass(w.category, ConvergenceWarning)
                and any(k in str(w.message) for k in _COX_NOT_CONVERGED)
            ]
            if conv:  # lifelines warns (does not raise) when Newton-Raphson did not settle
                last = str(conv[0].message).strip().splitlines()[0]
                continue
            if i > 0:
                self._warn(
                    f"{type(self).__name__}: the fit did not converge with penalizer="
                    f"{self.penalizer}; fell back to penalizer={pen}. ({last})"
                )
            self.penalizer_ = pen
            cph = fitter
            break
        if cph is None:
            raise ModelError(
                f"{type(self).__name__}.fit: lifelines CoxPHFitter did not converge even with "
                f"penalizer 1.0 ({last}). Fix: drop collinear features or use another model."
            )
        self.model_ = cph
        self.coef_ = pd.Series(cph.params_.to_numpy(), index=self.encoder_.names_)
        self._beta = cph.params_.to_numpy(float)
        self._mean = np.asarray(cph._norm_mean, dtype=float).reshape(-1)
        H0 = cph.baseline_cumulative_hazard_
        self._h0_t = H0.index.to_numpy(float)
        self._h0 = H0.iloc[:, 0].to_numpy(float)

    def _log_ph(self, X: pd.DataFrame) -> np.ndarray:
        Z = self.encoder_.transform(X, type(self).__name__)
        return (Z - self._mean) @ self._beta

    def _survival_at(self, X: pd.DataFrame, T: np.ndarray) -> np.ndarray:
        ph = np.exp(self._log_ph(X))
        H = _step_eval(self._h0_t, self._h0, T, 0.0)
        return np.exp(-H * ph[:, None])

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        Z = self.encoder_.transform(X, type(self).__name__)
        return (Z - self._mean) * self._beta

    def _time_at_survival(self, X: pd.DataFrame, d: np.ndarray, q: float) -> np.ndarray:
        ph = np.exp(self._log_ph(X))
        H_d = _step_eval(self._h0_t, self._h0, d, 0.0)
        target = H_d - np.log(q) / ph  # H0(t) at which S(t) = q S(d)
        pos = np.searchsorted(self._h0, target, side="left")
        ok = pos < len(self._h0)
        out = np.full(len(d), np.inf)
        out[ok] = np.maximum(self._h0_t[pos[ok]], d[ok])
        return out


class WeibullCureSurvival(SurvivalModel):
    """Mixture cure model with a Weibull AFT latency (see the module docstring)."""

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        Z = self.encoder_.transform(X, type(self).__name__)
        return np.column_stack([np.ones(len(Z)), Z])

    def _entry(self, X: pd.DataFrame, t: np.ndarray) -> np.ndarray:
        return _entry_days(self, X, t)

    def _fit(self, X: pd.DataFrame) -> None:
        self._make_encoder(X, standardize=True, drop_first=True)
        Z = self._design(X)
        t = np.maximum(pd.to_numeric(X[self.duration_col]).to_numpy(float), _MIN_T)
        e = pd.to_numeric(X[self.event_col]).to_numpy(float)
        n, p = Z.shape
        cure = bool(self.cure)
        logt = np.log(t)
        pen = float(self.penalizer)
        entry = self._entry(X, t)
        tr = np.flatnonzero(entry > 0)
        log_entry = np.log(entry[tr]) if len(tr) else np.array([])

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            if cure:
                return theta[:p], theta[p : 2 * p], theta[-1]
            return np.array([]), theta[:p], theta[-1]

        def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
            g, b, a = unpack(theta)
            rho = np.exp(a)
            xb = Z @ b
            logu = rho * (logt - xb)
            u = np.exp(np.minimum(logu, 50.0))
            if cure:
                zg = Z @ g
                log_pi = -np.logaddexp(0.0, -zg)
                pi = np.exp(log_pi)
            else:
                log_pi = np.zeros(n)
                pi = np.ones(n)
            emu = np.exp(-u)
            # events: log pi + log rho - log t + log u - u
            ll_e = log_pi + a - logt + logu - u
            # censored: log(1 - pi + pi e^-u)
            D = np.maximum(1.0 - pi + pi * emu, 1e-300)
            ll_c = np.log(D)
            ll = np.where(e == 1, ll_e, ll_c)
            # gradients of ll w.r.t. the linear predictors
            dlogu = np.where(e == 1, 1.0 - u, -pi * emu * u / D)  # d ll / d log u
            d_xb = dlogu * (-rho)
            d_a = np.where(e == 1, 1.0, 0.0) + dlogu * logu
            if cure:
                d_zg = np.where(e == 1, 1.0 - pi, pi * (1.0 - pi) * (emu - 1.0) / D)
            if len(tr):
                # delayed entry (left truncation): subtract log S(entry)
                pt = pi[tr]
                logu_t = rho * (log_entry - xb[tr])
                u_t = np.exp(np.minimum(logu_t, 50.0))
                emu_t = np.exp(-u_t)
                D_t = np.maximum(1.0 - pt + pt * emu_t, 1e-300)
                ll = ll.copy()
                ll[tr] -= np.log(D_t)
                dl_t = pt * emu_t * u_t / D_t
                d_xb = d_xb.copy()
                d_xb[tr] += dl_t * (-rho)
                d_a = d_a.copy()
                d_a[tr] += dl_t * logu_t
                if cure:
                    d_zg = d_zg.copy()
                    d_zg[tr] -= pt * (1.0 - pt) * (emu_t - 1.0) / D_t
            w = np.ones(p)
            w[0] = 0.0  # no penalty on intercepts
            grad_b = -(Z.T @ d_xb) / n + pen * w * b
            grad_a = -d_a.sum() / n
            obj = -ll.sum() / n + 0.5 * pen * np.sum(w * b * b)
            if cure:
                grad_g = -(Z.T @ d_zg) / n + pen * w * g
                obj += 0.5 * pen * np.sum(w * g * g)
                return obj, np.concatenate([grad_g, grad_b, [grad_a]])
            return obj, np.concatenate([grad_b, [grad_a]])

        ev_t = t[e == 1]
        b0 = np.zeros(p)
        b0[0] = np.log(np.median(ev_t)) if len(ev_t) else np.log(np.median(t))
        frac = float(e.mean())
        starts = []
        if cure:
            for pi0 in (min(max(frac * 1.5, 0.05), 0.95), 0.5):
                g0 = np.zeros(p)
                g0[0] = special.logit(pi0)
                starts.append(np.concatenate([g0, b0, [0.0]]))
        else:
            starts.append(np.concatenate([b0, [0.0]]))
        best = None
        for x0 in starts:
            res = optimize.minimize(
                nll, x0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter}
            )
            if (
                best is None
                or (res.success and res.fun < best.fun)
                or (not best.success and res.success)
            ):
                best = res
            if res.success:
                break
        assert best is not None
        if not best.success or not np.all(np.isfinite(best.x)):
            grad_norm = float(np.max(np.abs(best.jac))) if best.jac is not None else np.nan
            if not np.all(np.isfinite(best.x)) or grad_norm > 1e-2:
                raise ModelError(
                    f"{type(self).__name__}.fit: maximum likelihood did not converge "
                    f"({best.message}; max |gradient| {grad_norm:.3g}). Fix: raise max_iter or "
                    "penalizer, drop extreme features, or use CoxReturnModel."
                )
            self._warn(
                f"{type(self).__name__}: optimizer stopped with '{best.message}' but the "
                f"gradient is small (max |gradient| {grad_norm:.3g}); the fit is kept."
            )
        g, b, a = unpack(best.x)
        self.model_ = best
        self.shape_ = float(np.exp(a))
        names = ["intercept", *self.encoder_.names_]
        self.scale_coef_ = pd.Series(b, index=names)
        self.cure_coef_ = pd.Series(g, index=names) if cure else None
        self.log_likelihood_ = float(-best.fun * n)

    def _params(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        Z = self._design(X)
        lam = np.exp(Z @ self.scale_coef_.to_numpy())
        if self.cure_coef_ is None:
            pi = np.ones(len(Z))
        else:
            pi = special.expit(Z @ self.cure_coef_.to_numpy())
        return pi, lam

    def predict_susceptible_probability(self, X: pd.DataFrame) -> np.ndarray:
        """pi(x): probability that the subject ever has the event (1 - cure fraction)."""
        self._check_fitted()
        return self._params(X)[0]

    def _survival_at(self, X: pd.DataFrame, T: np.ndarray) -> np.ndarray:
        pi, lam = self._params(X)
        Tm = np.maximum(T, 0.0)
        su = np.exp(-((Tm / lam[:, None]) ** self.shape_))
        return 1.0 - pi[:, None] + pi[:, None] * su

    def _time_at_survival(self, X: pd.DataFrame, d: np.ndarray, q: float) -> np.ndarray:
        pi, lam = self._params(X)
        s_d = 1.0 - pi + pi * np.exp(-((np.maximum(d, 0.0) / lam) ** self.shape_))
        rest = (q * s_d - (1.0 - pi)) / pi  # exp(-u) at the target
        out = np.full(len(d), np.inf)
        ok = rest > 0
        u = -np.log(np.minimum(rest[ok], 1.0))
        out[ok] = lam[ok] * u ** (1.0 / self.shape_)
        return out

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Contribution to log-odds of the event within 90 days, linearised per feature."""
        Z = self._design(X)[:, 1:]
        b = self.scale_coef_.to_numpy()[1:]
        contrib = -self.shape_ * Z * b  # shorter scale = sooner event
        if self.cure_coef_ is not None:
            contrib = contrib + Z * self.cure_coef_.to_numpy()[1:]
        return contrib


def _xgb_tree_params(est: Any, **task: Any) -> dict[str, Any]:
    """XGBoost parameters of a boosted estimator: its tree settings plus the task's."""
    return {
        **task,
        "tree_method": "hist",
        "learning_rate": float(est.learning_rate),
        "max_depth": int(est.max_depth),
        "min_child_weight": float(est.min_child_weight),
        "subsample": float(est.subsample),
        "lambda": 1.0,
        "nthread": int(est.n_jobs),
        "seed": int(est.random_state or 0),
        "verbosity": 0,
    }


class XGBoostAFTSurvival(SurvivalModel):
    """XGBoost accelerated failure time model (see the module docstring)."""

    def _fit(self, X: pd.DataFrame) -> None:
        import xgboost as xgb

        self._make_encoder(X, standardize=False, drop_first=False)
        Z = self.encoder_.transform(X, type(self).__name__)
        t = np.maximum(pd.to_numeric(X[self.duration_col]).to_numpy(float), _MIN_T)
        e = pd.to_numeric(X[self.event_col]).to_numpy(int)
        lower = t
        upper = np.where(e == 1, t, np.inf)
        dtrain = xgb.DMatrix(Z, feature_names=_safe_names(self.encoder_.names_))
        dtrain.set_float_info("label_lower_bound", lower)
        dtrain.set_float_info("label_upper_bound", upper)
        params = _xgb_tree_params(
            self,
            objective="survival:aft",
            eval_metric="aft-nloglik",
            aft_loss_distribution=self.distribution,
            aft_loss_distribution_scale=float(self.sigma),
        )
        booster = xgb.train(params, dtrain, num_boost_round=int(self.n_estimators))
        self.model_ = booster
        nll = booster.eval(dtrain)
        self.train_nloglik_ = float(nll.split(":")[-1])
        if not np.isfinite(self.train_nloglik_):
            raise ModelError(
                f"{type(self).__name__}.fit: the training loss is not finite ({nll}). "
                "Fix: check durations, lower learning_rate, or change sigma."
            )

    def _margin(self, X: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        Z = self.encoder_.transform(X, type(self).__name__)
        d = xgb.DMatrix(Z, feature_names=_safe_names(self.encoder_.names_), nthread=self.n_jobs)
        return self.model_.predict(d, output_margin=True)

    def _cdf(self, z: np.ndarray) -> np.ndarray:
        if self.distribution == "normal":
            return stats.norm.cdf(z)
        if self.distribution == "logistic":
            return special.expit(z)
        return 1.0 - np.exp(-np.exp(z))  # extreme (Gumbel minimum)

    def _survival_at(self, X: pd.DataFrame, T: np.ndarray) -> np.ndarray:
        mu = self._margin(X)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(T, 1e-9)) - mu[:, None]) / float(self.sigma)
        s = 1.0 - self._cdf(z)
        return np.where(T <= 0, 1.0, s)

    def _ppf(self, p: np.ndarray) -> np.ndarray:
        if self.distribution == "normal":
            return stats.norm.ppf(p)
        if self.distribution == "logistic":
            return special.logit(p)
        return np.log(-np.log1p(-p))

    def _time_at_survival(self, X: pd.DataFrame, d: np.ndarray, q: float) -> np.ndarray:
        mu = self._margin(X)
        with np.errstate(divide="ignore"):
            z_d = (np.log(np.maximum(d, 1e-9)) - mu) / float(self.sigma)
        s_d = np.where(d <= 0, 1.0, 1.0 - self._cdf(z_d))
        F = np.clip(1.0 - q * s_d, 1e-15, 1 - 1e-15)
        return np.exp(mu + float(self.sigma) * self._ppf(F))

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        Z = self.encoder_.transform(X, type(self).__name__)
        d = xgb.DMatrix(Z, feature_names=_safe_names(self.encoder_.names_), nthread=self.n_jobs)
        exact = bool(getattr(self, "exact_contributions", False))
        contrib = self.model_.predict(d, pred_contribs=True, approx_contribs=not exact)[:, :-1]
        return -contrib  # contributions to log time; shorter time = more risk


class DiscreteHazardSurvival(SurvivalModel):
    """Gradient-boosted discrete-time hazard model (see the module docstring)."""

    def _n_intervals(self, t: np.ndarray) -> int:
        k = int(np.ceil(float(np.max(t)) / float(self.interval_days)))
        if self.max_intervals is not None:
            k = min(k, int(self.max_intervals))
        return max(k, 1)

    def _fit(self, X: pd.DataFrame) -> None:
        w = float(self.interval_days)
        if not np.isfinite(w) or w <= 0:
            raise ModelError(
                f"The 'interval_days' parameter of {type(self).__name__} must be a number of "
                f"days > 0. Got {self.interval_days!r} instead."
            )
        self._make_encoder(X, standardize=False, drop_first=False)
        Z = self.encoder_.transform(X, type(self).__name__)
        t = np.maximum(pd.to_numeric(X[self.duration_col]).to_numpy(float), 0.0)
        e = pd.to_numeric(X[self.event_col]).to_numpy(int)
        entry = _entry_days(self, X, t)
        K = self._n_intervals(t)
        # person-period rows: interval k of subject i while at risk in it
        first = np.minimum(np.floor(entry / w).astype(int), K - 1)
        # an event exactly on a boundary belongs to the interval it ends
        last = np.where(
            e == 1,
            np.maximum(np.ceil(t / w).astype(int) - 1, 0),
            np.floor(t / w).astype(int),
        )
        last = np.minimum(last, K - 1)
        n_per = np.maximum(last - first + 1, 0)
        rows = np.repeat(np.arange(len(t)), n_per)
        offset = np.arange(len(rows)) - np.repeat(np.cumsum(n_per) - n_per, n_per)
        k = first[rows] + offset
        lo, hi = k * w, (k + 1) * w
        ev_in = (e[rows] == 1) & (t[rows] > lo - 1e-9) & (t[rows] <= hi + 1e-9)
        ev_in &= k == last[rows]
        # exposure within the interval: from max(entry, lo) to min(t, hi); events count whole
        start = np.maximum(entry[rows], lo)
        stop = np.minimum(t[rows], hi)
        weight = np.where(ev_in, 1.0, np.clip((stop - start) / w, 0.0, 1.0))
        keep = weight > 0
        rows, k, y, weight = rows[keep], k[keep], ev_in[keep].astype(int), weight[keep]
        if y.sum() == 0 or y.sum() == len(y):
            raise ModelError(
                f"{type(self).__name__}.fit: every person-period row has the same label "
                f"({int(y.sum())} events in {len(y)} rows). Fix: widen the training window or "
                "use the Kaplan-Meier baseline."
            )
        import xgboost as xgb

        renew = self._renewal_inputs(X)
        self.renewal_features_ = renew is not None
        cols = [Z[rows], k.astype(float)]
        if renew is not None:
            cols.append(_renewals_in_interval(renew[0][rows], renew[1][rows], k, w))
        dtrain = xgb.DMatrix(
            np.column_stack(cols), label=y, weight=weight, feature_names=self._names()
        )
        params = _xgb_tree_params(self, objective="binary:logistic", eval_metric="logloss")
        clf = xgb.train(params, dtrain, num_boost_round=int(self.n_estimators))
        self.model_ = clf
        self.n_intervals_ = K
        self.n_person_periods_ = int(len(y))

    def _names(self) -> list[str]:
        names = [*_safe_names(self.encoder_.names_), "interval"]
        if getattr(self, "renewal_features_", False):
            names += list(_RENEWAL_FEATURES)
        return names

    def _renewal_inputs(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
        """Days to the next renewal and the billing period (days) per row, when ``X`` has them.

        None when ``renewal_col`` / ``period_col`` is None or absent (the model
        then has the interval index only). ``period_col`` holds ``month`` /
        ``year`` (or a number of days); anything else is an unknown period (NaN).
        """
        rc = getattr(self, "renewal_col", None)
        pc = getattr(self, "period_col", None)
        if rc is None or pc is None or rc not in X.columns or pc not in X.columns:
            return None
        dtr = pd.to_numeric(X[rc], errors="coerce").to_numpy(float)
        per = X[pc]
        if pd.api.types.is_numeric_dtype(per):
            pdays = per.to_numpy(float)
        else:
            pdays = per.map({"month": 30.436875, "year": 365.2425}).to_numpy(float)
        return dtr, pdays

    def _matrix(
        self, Z: np.ndarray, K: int, renew: tuple[np.ndarray, np.ndarray] | None = None
    ) -> Any:
        import xgboost as xgb

        n = len(Z)
        k = np.tile(np.arange(K, dtype=float), n)
        cols = [np.repeat(Z, K, axis=0), k]
        if getattr(self, "renewal_features_", False):
            if renew is None:
                nan = np.full(n, np.nan)
                renew = (nan, nan)
            dtr = np.repeat(renew[0], K)
            per = np.repeat(renew[1], K)
            cols.append(_renewals_in_interval(dtr, per, k, float(self.interval_days)))
        return xgb.DMatrix(
            np.column_stack(cols), feature_names=self._names(), nthread=int(self.n_jobs)
        )

    def _hazards(
        self,
        Z: np.ndarray,
        renew: tuple[np.ndarray, np.ndarray] | None = None,
        K: int | None = None,
    ) -> np.ndarray:
        """h_k(x) for every row of the encoded matrix and interval k < K: (n, K).

        ``K`` defaults to every modelled interval; a smaller one (the intervals a
        horizon needs) predicts fewer person-period rows.
        """
        K = self.n_intervals_ if K is None else max(1, min(int(K), self.n_intervals_))
        h = self.model_.predict(self._matrix(Z, K, renew)).reshape(len(Z), K)
        return np.clip(h, 0.0, 1.0 - 1e-9)

    def _survival_from_hazards(self, h: np.ndarray, T: np.ndarray) -> np.ndarray:
        w = float(self.interval_days)
        K = h.shape[1]
        logq = np.log1p(-h)
        logS_b = np.concatenate([np.zeros((len(h), 1)), np.cumsum(logq, axis=1)], axis=1)
        Tm = np.maximum(np.asarray(T, dtype=float), 0.0)
        kk = np.minimum(np.floor(Tm / w).astype(int), K - 1)
        r = np.arange(len(h))[:, None]
        logS = logS_b[r, kk] + (Tm / w - kk) * logq[r, kk]
        return np.exp(logS)

    def _survival_at(self, X: pd.DataFrame, T: np.ndarray) -> np.ndarray:
        Z = self.encoder_.transform(X, type(self).__name__)
        renew = self._renewal_inputs(X) if getattr(self, "renewal_features_", False) else None
        T = np.asarray(T, dtype=float)
        out = np.empty(T.shape, dtype=float)
        # only the intervals the times reach (P(churn within 90 days) needs 3 of 12)
        t_max = float(np.nanmax(T)) if T.size else 0.0
        K = int(min(self.n_intervals_, np.floor(max(t_max, 0.0) / float(self.interval_days)) + 1))
        step = max(1, 200_000 // max(K, 1))  # bounded memory
        for a in range(0, len(Z), step):
            b = min(a + step, len(Z))
            r = None if renew is None else (renew[0][a:b], renew[1][a:b])
            out[a:b] = self._survival_from_hazards(self._hazards(Z[a:b], r, K), T[a:b])
        return out

    def _time_at_survival(self, X: pd.DataFrame, d: np.ndarray, q: float) -> np.ndarray:
        """Time ``t`` with ``S(t) = q S(d)`` per row, in closed form: ``log S`` is piecewise
        linear in ``t`` (geometric within an interval, the last hazard beyond the data)."""
        Z = self.encoder_.transform(X, type(self).__name__)
        renew = self._renewal_inputs(X) if getattr(self, "renewal_features_", False) else None
        d = np.asarray(d, dtype=float)
        w = float(self.interval_days)
        out = np.empty(len(Z), dtype=float)
        step = max(1, 200_000 // max(self.n_intervals_, 1))
        for a in range(0, len(Z), step):
            b = min(a + step, len(Z))
            r = None if renew is None else (renew[0][a:b], renew[1][a:b])
            h = self._hazards(Z[a:b], r)
            K = h.shape[1]
            logq = np.log1p(-h)
            logS_b = np.concatenate([np.zeros((len(h), 1)), np.cumsum(logq, axis=1)], axis=1)
            target = np.log(q) + np.log(
                np.maximum(self._survival_from_hazards(h, d[a:b, None])[:, 0], 1e-300)
            )
            # first interval whose end is at or below the target (the last one runs on forever)
            below = logS_b[:, 1:K] <= target[:, None]
            k = np.where(below.any(axis=1), below.argmax(axis=1), K - 1)
            rows = np.arange(len(h))
            lq = logq[rows, k]
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = (target - logS_b[rows, k]) / lq
            t = w * (k + np.where(lq < 0, frac, np.inf))
            out[a:b] = np.where(np.isfinite(t), np.maximum(t, d[a:b]), np.inf)
        return out

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per encoded column: its SHAP contribution to the log-odds of the hazard, averaged
        over the intervals within ``contribution_days`` (the interval index itself left out).
        Exact TreeSHAP when ``exact_contributions``, else the fast approximate attribution."""
        Z = self.encoder_.transform(X, type(self).__name__)
        K = int(
            min(
                self.n_intervals_,
                max(1, np.ceil(float(self.contribution_days) / float(self.interval_days))),
            )
        )
        exact = bool(getattr(self, "exact_contributions", False))
        renew = self._renewal_inputs(X) if getattr(self, "renewal_features_", False) else None
        out = np.zeros_like(Z)
        step = max(1, 200_000 // K)
        for a in range(0, len(Z), step):
            b = min(a + step, len(Z))
            r = None if renew is None else (renew[0][a:b], renew[1][a:b])
            c = self.model_.predict(
                self._matrix(Z[a:b], K, r), pred_contribs=True, approx_contribs=not exact
            )
            out[a:b] = c[:, : Z.shape[1]].reshape(b - a, K, Z.shape[1]).mean(axis=1)
        return out


#: Per-interval features of the discrete-time hazard model when the renewal schedule is known.
_RENEWAL_FEATURES = ("renewals_in_interval", "renewal_offset_days")


def _renewals_in_interval(
    days_to_renewal: np.ndarray, period_days: np.ndarray, k: np.ndarray, width: float
) -> np.ndarray:
    """Renewal boundaries in interval ``k`` (``[k w, (k + 1) w)`` days from the origin).

    Boundaries fall at ``d, d + p, d + 2p, ...`` (``d`` days to the next renewal,
    ``p`` the billing period). Returns two columns: how many fall in the
    interval, and the days from the interval's start to the first of them (NaN
    when none, or when ``d`` or ``p`` is unknown).
    """
    d = np.asarray(days_to_renewal, dtype=float)
    p = np.asarray(period_days, dtype=float)
    lo = np.asarray(k, dtype=float) * width
    hi = lo + width
    ok = np.isfinite(d) & np.isfinite(p) & (p > 0)
    ps = np.where(ok, p, 1.0)
    ds = np.where(ok, d, 0.0)
    j0 = np.maximum(np.ceil((lo - ds) / ps), 0.0)
    j1 = np.maximum(np.ceil((hi - ds) / ps), 0.0)
    n = np.where(ok, np.maximum(j1 - j0, 0.0), np.nan)
    off = np.where(ok & (n > 0), ds + j0 * ps - lo, np.nan)
    return np.column_stack([n, off])


def _safe_names(names: Sequence[str]) -> list[str]:
    return [n.replace("[", "(").replace("]", ")").replace("<", "lt") for n in names]
