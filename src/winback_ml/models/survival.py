"""Shared machinery of the survival models: feature encoding and the survival-curve API.

Every survival model of winback_ml (return after a lapse, churn of an active
customer) is a scikit-learn style estimator built on :class:`SurvivalModel`:

* ``__init__`` stores its keyword arguments verbatim; ``fit(X)`` validates,
  fits and returns ``self``; fitted attributes end in ``_``; the wrapped
  lifelines / xgboost / scipy object is ``model_``.
* ``X`` is one data frame per fit: one row per subject (a lapse episode or an
  active-customer snapshot) holding ``duration_col`` (days, >= 0),
  ``event_col`` (1 = the event happened, 0 = censored) and the feature
  columns. Column names are constructor arguments with canonical defaults.
* A model's survival function ``S(t | x)`` is the probability that the event
  has **not** happened ``t`` days after the origin (the lapse, or the
  snapshot). Cure models let ``S`` level off above zero: many lapsed
  customers never return.
* Probabilities conditional on time already elapsed without the event
  (``conditional_after``) are ``1 - S(d + w) / S(d)``.

Invariants: durations are in days (float); all timestamps handled here are
tz-naive UTC; no method reads anything but the frame it is given, so the
models themselves cannot see the future.

Errors: too few events, no usable feature, a missing column at predict time
raise :class:`~winback_ml.exceptions.ModelError` with expected / got / fix.
A constant feature is dropped, with a warning that is logged and kept in
``fit_warnings_`` (and logged to MLflow by :func:`winback_ml.tracking.mlflow.log_fit`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from winback_ml.exceptions import ModelError, NotFittedError

__all__ = [
    "SurvivalModel",
    "FeatureEncoder",
    "ReturnModelMixin",
    "ChurnModelMixin",
    "DEFAULT_EXCLUDED_COLUMNS",
    "check_survival_frame",
]

logger = logging.getLogger(__name__)

#: Columns that are never used as features even when ``feature_cols`` is None
#: (identifiers, dates and outcome columns of the frames :mod:`winback_ml.features` builds).
DEFAULT_EXCLUDED_COLUMNS = (
    "customer_id",
    "subscription_id",
    "episode_id",
    "lapse_id",
    "at",
    "ended_at",
    "returned_at",
    "snapshot_at",
    "churned_at",
    "returned",
    "churned",
    "days_to_return",
    "days_observed",
    "days_lapsed",
    "duration_days",
    "event",
    "entry_days",
)


def check_survival_frame(
    X: Any, duration_col: str, event_col: str, *, who: str, min_events: int
) -> pd.DataFrame:
    """Validate a training frame; return it (a DataFrame) or raise ModelError."""
    if not isinstance(X, pd.DataFrame):
        raise ModelError(
            f"{who}.fit expects a pandas DataFrame with columns {duration_col!r}, "
            f"{event_col!r} and the features. Got {type(X).__name__} instead."
        )
    missing = [c for c in (duration_col, event_col) if c not in X.columns]
    if missing:
        raise ModelError(
            f"{who}.fit: the training frame is missing column(s) {missing}. "
            f"Got columns {list(X.columns)[:20]}. Fix: pass duration_col= / event_col= "
            "naming your columns, or build the frame with winback_ml.features."
        )
    if len(X) == 0:
        raise ModelError(f"{who}.fit: the training frame is empty. Fix: widen the training window.")
    d = pd.to_numeric(X[duration_col], errors="coerce")
    bad = d.isna() | (d < 0) | ~np.isfinite(d)
    if bad.any():
        rows = list(X.index[bad][:5])
        raise ModelError(
            f"{who}.fit: column {duration_col!r} must hold finite durations in days >= 0. "
            f"Got {int(bad.sum())} bad value(s), e.g. at rows {rows}. Fix: drop or repair those rows."
        )
    e = pd.to_numeric(X[event_col], errors="coerce")
    bad_e = ~e.isin([0, 1])
    if bad_e.any():
        rows = list(X.index[bad_e][:5])
        raise ModelError(
            f"{who}.fit: column {event_col!r} must be 0/1 (1 = event observed). "
            f"Got {int(bad_e.sum())} other value(s), e.g. at rows {rows}."
        )
    n_events = int(e.sum())
    if n_events < min_events:
        raise ModelError(
            f"{who}.fit: too few events to fit: expected at least min_events={min_events}, "
            f"got {n_events} events in {len(X)} rows. Fix: widen the training window, lower "
            "min_events, or use the Kaplan-Meier baseline."
        )
    return X


class FeatureEncoder:
    """Turn a frame of mixed features into a float matrix, the same way at fit and predict.

    Numeric columns: missing values take the training median; optionally
    standardised. Categorical columns (object, category, string): one-hot on
    the levels seen in training (``drop_first`` drops the most frequent level
    for linear models); unseen levels encode as the reference. Constant
    columns are dropped with a warning recorded in ``warnings_``.
    """

    def __init__(
        self,
        feature_cols: Sequence[str] | None,
        categorical_cols: Sequence[str] | None,
        exclude: Sequence[str],
        *,
        standardize: bool = True,
        drop_first: bool = True,
        max_levels: int = 30,
    ) -> None:
        self.feature_cols = feature_cols
        self.categorical_cols = categorical_cols
        self.exclude = tuple(exclude)
        self.standardize = standardize
        self.drop_first = drop_first
        self.max_levels = max_levels

    def fit(self, X: pd.DataFrame, who: str) -> FeatureEncoder:
        if self.feature_cols is None:
            cols = [
                c
                for c in X.columns
                if c not in self.exclude and not pd.api.types.is_datetime64_any_dtype(X[c])
            ]
        else:
            cols = list(self.feature_cols)
            missing = [c for c in cols if c not in X.columns]
            if missing:
                raise ModelError(
                    f"{who}.fit: feature column(s) {missing} are not in the training frame. "
                    f"Got columns {list(X.columns)[:30]}."
                )
        if self.categorical_cols is None:
            cats = [
                c
                for c in cols
                if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
            ]
        else:
            cats = [c for c in self.categorical_cols if c in cols]
        self.warnings_: list[str] = []
        self.input_cols_: list[str] = []
        self.numeric_: list[str] = []
        self.median_: dict[str, float] = {}
        self.mean_: dict[str, float] = {}
        self.scale_: dict[str, float] = {}
        self.levels_: dict[str, list[str]] = {}
        self.names_: list[str] = []
        self.source_: list[str] = []  # original column of each encoded column
        for c in cols:
            if c in cats:
                s = X[c].astype("object").where(X[c].notna(), "__missing__").astype(str)
                counts = s.value_counts()
                if len(counts) > 50 and len(counts) > 0.5 * len(s):
                    self._warn(
                        f"{who}: feature {c!r} has {len(counts)} distinct values in {len(s)} rows "
                        "(an identifier?); dropped. Fix: pass feature_cols= without it."
                    )
                    continue
                if len(counts) <= 1:
                    self._warn(
                        f"{who}: feature {c!r} is constant ({counts.index.tolist()}); dropped."
                    )
                    continue
                levels = counts.index.tolist()[: self.max_levels]
                keep = levels[1:] if self.drop_first else levels
                self.levels_[c] = keep
                self.input_cols_.append(c)
                for lv in keep:
                    self.names_.append(f"{c}={lv}")
                    self.source_.append(c)
            else:
                v = pd.to_numeric(X[c], errors="coerce").astype(float)
                if v.notna().sum() == 0:
                    self._warn(f"{who}: feature {c!r} is all missing; dropped.")
                    continue
                med = float(np.nanmedian(v))
                v = v.fillna(med)
                sd = float(v.std(ddof=0))
                if not np.isfinite(sd) or sd == 0.0:
                    self._warn(f"{who}: feature {c!r} is constant ({med:g}); dropped.")
                    continue
                self.input_cols_.append(c)
                self.numeric_.append(c)
                self.median_[c] = med
                self.mean_[c] = float(v.mean()) if self.standardize else 0.0
                self.scale_[c] = sd if self.standardize else 1.0
                self.names_.append(c)
                self.source_.append(c)
        if not self.names_:
            raise ModelError(
                f"{who}.fit: no usable feature: every candidate column is constant or missing "
                f"(candidates {cols}). Fix: pass feature_cols= with informative columns, or use "
                "the Kaplan-Meier baseline."
            )
        return self

    def _warn(self, msg: str) -> None:
        self.warnings_.append(msg)
        logger.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=4)

    def check_columns(self, X: Any, who: str) -> None:
        if not isinstance(X, pd.DataFrame):
            raise ModelError(f"{who} expects a pandas DataFrame. Got {type(X).__name__} instead.")
        missing = [c for c in self.input_cols_ if c not in X.columns]
        if missing:
            raise ModelError(
                f"{who}: the input is missing column(s) {missing} that the model was fitted on. "
                f"Expected columns {self.input_cols_}. Fix: build the frame with "
                "winback_ml.features.build_customer_features (or add the column)."
            )

    def transform(self, X: pd.DataFrame, who: str) -> np.ndarray:
        self.check_columns(X, who)
        n = len(X)
        out = np.empty((n, len(self.names_)), dtype=np.float64)
        j = 0
        for c in self.input_cols_:
            if c in self.levels_:
                s = X[c].astype("object").where(X[c].notna(), "__missing__").astype(str).to_numpy()
                for lv in self.levels_[c]:
                    out[:, j] = s == lv
                    j += 1
            else:
                v = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                v = np.where(np.isfinite(v), v, self.median_[c])
                out[:, j] = (v - self.mean_[c]) / self.scale_[c]
                j += 1
        return out


def _one_blas_thread() -> Any:
    """Single-threaded BLAS for the many small matrix products of a fit.

    On a shared, busy machine OpenBLAS threads spin against each other: a
    Weibull cure fit ran 25x slower with the default thread pool than with
    one thread (measured: 51 s against 2 s on 7,000 lapses).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class SurvivalModel(BaseEstimator):
    """Base class of the survival models (see the module docstring).

    Subclasses implement ``_fit(X)`` and ``_survival_at(X, T) -> (n, k)``
    array (``S(T[i, j] | x_i)``), and may implement ``_contributions(X) -> DataFrame`` (per-feature
    contribution to risk, positive = the event comes sooner).
    """

    #: name of the event, for messages ("return", "churn")
    _event_name = "event"
    #: the column holding days already elapsed, read when conditional_after is None
    _elapsed_col: str | None = None

    # ----- public API ---------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> SurvivalModel:
        """Fit on a frame holding duration, event and feature columns; return self."""
        who = type(self).__name__
        X = check_survival_frame(
            X, self.duration_col, self.event_col, who=who, min_events=self._min_events()
        )
        self.fit_warnings_: list[str] = []
        with _one_blas_thread():
            self._fit(X)
        self.n_train_ = len(X)
        self.n_events_ = int(pd.to_numeric(X[self.event_col]).sum())
        self.max_duration_ = float(pd.to_numeric(X[self.duration_col]).max())
        return self

    def predict_survival_function(
        self,
        X: pd.DataFrame,
        times: Sequence[float] | np.ndarray | None = None,
        conditional_after: Any = None,
    ) -> pd.DataFrame:
        """Survival curves, one column per row of ``X``, indexed by ``times`` (days).

        With ``conditional_after`` (days already elapsed without the event, a
        scalar, an array, or the name of a column of ``X``), the curve is
        ``S(d + t) / S(d)``, the survival of a subject still event-free at ``d``.
        """
        self._check_fitted()
        t = np.asarray(times if times is not None else np.arange(0, 366, 1.0), dtype=float)
        d = self._elapsed(X, conditional_after, default_zero=True)
        if np.all(d == 0):
            s = self._survival(X, t)
        else:
            s = self._survival_at(X, d[:, None] + t[None, :])
            s0 = self._survival_at(X, d[:, None])
            s = s / np.maximum(s0, 1e-12)
        return pd.DataFrame(s.T, index=pd.Index(t, name="days"), columns=X.index)

    def predict_event_probability(
        self, X: pd.DataFrame, within_days: float, conditional_after: Any = None
    ) -> np.ndarray:
        """P(event within ``within_days`` | no event during the first ``conditional_after`` days)."""
        self._check_fitted()
        if not np.isfinite(within_days) or within_days < 0:
            raise ModelError(f"within_days must be a number of days >= 0. Got {within_days!r}.")
        d = self._elapsed(X, conditional_after, default_zero=False)
        with _one_blas_thread():
            both = self._survival_at(X, np.column_stack([d, d + float(within_days)]))
        p = 1.0 - both[:, 1] / np.maximum(both[:, 0], 1e-12)
        return np.clip(p, 0.0, 1.0)

    def predict_median_time(
        self, X: pd.DataFrame, conditional_after: Any = None, horizon: float = 1825.0
    ) -> np.ndarray:
        """Median remaining days to the event; ``inf`` where S stays above 0.5 within ``horizon``."""
        self._check_fitted()
        d = self._elapsed(X, conditional_after, default_zero=True)
        with _one_blas_thread():
            closed = self._time_at_survival(X, d, 0.5)
        if closed is not None:  # closed form (parametric / step hazard models)
            rem = closed - d
            return np.where(np.isfinite(rem) & (rem <= horizon), np.maximum(rem, 0.0), np.inf)
        grid = np.unique(np.concatenate([np.arange(0, 120, 1.0), np.geomspace(120, horizon, 120)]))
        out = np.empty(len(X), dtype=float)
        step = 50_000  # bounded memory: (step x len(grid)) floats at a time
        for a in range(0, len(X), step):
            b = min(a + step, len(X))
            s = self._survival_at(X.iloc[a:b], d[a:b, None] + grid[None, :])
            s = s / np.maximum(s[:, :1], 1e-12)
            below = s <= 0.5
            res = grid[below.argmax(axis=1)].astype(float)
            res[~below.any(axis=1)] = np.inf
            out[a:b] = res
        return out

    def predict_risk_contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row contribution of each input column to risk (positive = event sooner).

        Columns are the model's input columns (one-hot levels summed back to
        their column); used for the ``top_drivers`` of churn_risk.
        """
        self._check_fitted()
        enc = self.encoder_
        contrib = self._contributions(X)
        src = np.asarray(enc.source_)
        out = {c: contrib[:, src == c].sum(axis=1) for c in enc.input_cols_}
        return pd.DataFrame(out, index=X.index)

    @property
    def feature_names_in_(self) -> list[str]:
        """The input columns the fitted model reads (besides the elapsed-time column)."""
        self._check_fitted()
        return list(self.encoder_.input_cols_)

    @property
    def required_columns_(self) -> list[str]:
        """Columns a scoring frame must have: features plus the elapsed-time column if any."""
        cols = list(self.feature_names_in_)
        if self._elapsed_col and self._elapsed_col not in cols:
            cols.append(self._elapsed_col)
        return cols

    # ----- helpers for subclasses -----------------------------------------------------------
    def _min_events(self) -> int:
        return int(getattr(self, "min_events", 1))

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with a "
                "training frame before using it."
            )

    def _exclude(self) -> list[str]:
        ex = list(DEFAULT_EXCLUDED_COLUMNS) + [self.duration_col, self.event_col]
        if getattr(self, "entry_col", None):
            ex.append(self.entry_col)
        if self._elapsed_col:
            ex.append(self._elapsed_col)
        return ex

    def _make_encoder(self, X: pd.DataFrame, *, standardize: bool, drop_first: bool) -> None:
        enc = FeatureEncoder(
            self.feature_cols,
            self.categorical_cols,
            self._exclude(),
            standardize=standardize,
            drop_first=drop_first,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            enc.fit(X, type(self).__name__)
        self.fit_warnings_.extend(enc.warnings_)
        self.encoder_ = enc

    def _warn(self, msg: str) -> None:
        self.fit_warnings_.append(msg)
        logger.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=3)

    def _elapsed(
        self, X: pd.DataFrame, conditional_after: Any, *, default_zero: bool
    ) -> np.ndarray:
        n = len(X)
        if conditional_after is None:
            col = self._elapsed_col
            if col is not None and isinstance(X, pd.DataFrame) and col in X.columns:
                conditional_after = col
            else:
                return np.zeros(n)
        if isinstance(conditional_after, str):
            if conditional_after not in X.columns:
                raise ModelError(
                    f"{type(self).__name__}: the input has no column {conditional_after!r} "
                    "(days already elapsed). Fix: add it, or pass conditional_after=<days>."
                )
            d = pd.to_numeric(X[conditional_after], errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
        else:
            d = np.broadcast_to(np.asarray(conditional_after, dtype=float), (n,)).copy()
        if np.any(~np.isfinite(d)) or np.any(d < 0):
            raise ModelError(
                f"{type(self).__name__}: days already elapsed must be finite and >= 0. "
                f"Got {int(np.sum(~np.isfinite(d) | (d < 0)))} bad value(s)."
            )
        return d

    def _survival(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """S(t_j | x_i) for one grid of times shared by all rows: (n, k)."""
        t = np.asarray(times, dtype=float)
        return self._survival_at(X, np.broadcast_to(t[None, :], (len(X), len(t))))

    # subclasses
    def _fit(self, X: pd.DataFrame) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _survival_at(self, X: pd.DataFrame, T: np.ndarray) -> np.ndarray:  # pragma: no cover
        """S(T[i, j] | x_i) for a row-specific time matrix T of shape (n, k)."""
        raise NotImplementedError

    def _time_at_survival(self, X: pd.DataFrame, d: np.ndarray, q: float) -> np.ndarray | None:
        """Time t with S(t) = q S(d) per row (inf if never), or None for the grid search."""
        return None

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        raise ModelError(f"{type(self).__name__} does not provide per-feature contributions.")


class ReturnModelMixin:
    """Business outputs of a return model (time from lapse to reactivation)."""

    _event_name = "return"
    _elapsed_col = "days_lapsed"

    def expected_return_probability(
        self, X: pd.DataFrame, within_days: float = 30, conditional_after: Any = None
    ) -> np.ndarray:
        """P(reactivates within ``within_days`` | lapsed ``d`` days so far without returning).

        ``d`` is ``conditional_after`` (days, array or column name) or, when
        None, the ``days_lapsed`` column of ``X`` if present, else 0.
        """
        return self.predict_event_probability(X, within_days, conditional_after)  # type: ignore[attr-defined]

    def expected_cure_fraction(self, X: pd.DataFrame) -> np.ndarray:
        """P(never returns) at lapse, read off the curve's far tail (10 years)."""
        return self._survival(X, np.array([3650.0]))[:, 0]  # type: ignore[attr-defined]


class ChurnModelMixin:
    """Business outputs of a churn model (time from a snapshot of an active customer to its end)."""

    _event_name = "churn"
    _elapsed_col = None

    def expected_churn_probability(
        self, X: pd.DataFrame, within_days: float = 90, conditional_after: Any = None
    ) -> np.ndarray:
        """P(cancels within ``within_days`` of the snapshot date)."""
        return self.predict_event_probability(X, within_days, conditional_after)  # type: ignore[attr-defined]

    def expected_churn_date(
        self, X: pd.DataFrame, as_of: Any, horizon_days: float = 1825.0
    ) -> pd.Series:
        """``as_of`` plus the median remaining time to churn; NaT when beyond ``horizon_days``."""
        days = self.predict_median_time(X, horizon=horizon_days)  # type: ignore[attr-defined]
        base = pd.Timestamp(as_of)
        td = pd.to_timedelta(np.where(np.isfinite(days), days, np.nan), unit="D")
        return pd.Series(base + td, index=X.index, name="expected_churn_date").dt.floor("D")
