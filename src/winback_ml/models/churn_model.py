"""Churn models: time from a snapshot of an active customer to the end of its subscription.

One row of the training frame is one (customer, snapshot date) pair (see
:func:`winback_ml.features.build_churn_training_frame`): ``duration_days`` is
the days from the snapshot to the end of access (``event`` = 1), or to
``as_of`` (``event`` = 0, censored), and the features are computed as of the
snapshot. Scoring uses features as of ``as_of``:
:meth:`expected_churn_probability` (default 90 days),
:meth:`expected_churn_date` (``as_of`` + median remaining time) and
:meth:`predict_risk_contributions` (per-feature contribution to risk: Cox
partial hazards, Weibull linear predictors, XGBoost SHAP values).

:func:`build_churn_risk` writes the contract's ``churn_risk`` table.

========================= ==============================================
``KaplanMeierChurnModel`` Kaplan-Meier by plan tier (the baseline)
``CoxChurnModel``         lifelines Cox PH
``WeibullCureChurnModel`` Weibull AFT (cure fraction optional)
``XGBoostAFTChurnModel``  XGBoost ``survival:aft``
``DiscreteHazardChurnModel`` gradient-boosted discrete-time hazard (monthly intervals)
========================= ==============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.exceptions import ModelError
from winback_ml.models.survival import ChurnModelMixin
from winback_ml.models.survival_estimators import (
    CoxSurvival,
    DiscreteHazardSurvival,
    KaplanMeierSurvival,
    WeibullCureSurvival,
    XGBoostAFTSurvival,
)

__all__ = [
    "KaplanMeierChurnModel",
    "CoxChurnModel",
    "WeibullCureChurnModel",
    "XGBoostAFTChurnModel",
    "DiscreteHazardChurnModel",
    "CHURN_MODELS",
    "DRIVER_ACTIONS",
    "CHURN_RISK_COLUMNS",
    "build_churn_risk",
    "top_drivers",
]

#: Columns of the contract's ``churn_risk`` table.
CHURN_RISK_COLUMNS = [
    "customer_id",
    "p_churn_90d",
    "expected_churn_date",
    "top_drivers",
    "suggested_action",
    "model_version",
]

#: Our documented mapping from a churn driver (feature) to a proactive action. Action
#: names follow the contract's offer types where one fits (``discount``,
#: ``resume_billing``, ``early_renewal``, ``feature_trial``) and the seeds' playbook
#: otherwise. The customer's largest driver picks the action.
DRIVER_ACTIONS: dict[str, str] = {
    "cancel_pending": "save_call",
    "cancel_requested_90d": "save_call",
    "price": "discount",
    "mrr": "discount",
    "last_paid_ratio": "discount",
    "plan_tier": "discount",
    "n_payment_failures": "resume_billing",
    "n_payment_failures_90d": "resume_billing",
    "unrecovered_payment_failure": "resume_billing",
    "days_since_payment_failure": "resume_billing",
    "n_billing_tickets": "resume_billing",
    "days_to_renewal": "early_renewal",
    "billing_interval": "early_renewal",
    "n_feature_requests": "feature_trial",
    "sessions_8w": "re_engagement",
    "minutes_8w": "re_engagement",
    "features_used_8w": "re_engagement",
    "sessions_prev": "re_engagement",
    "usage_trend": "re_engagement",
    "weeks_since_active": "re_engagement",
    "sessions_4w": "re_engagement",
    "engagement_slope": "re_engagement",
    "engagement_now": "re_engagement",
    "engagement_next_renewal": "re_engagement",
    "engagement_90d": "re_engagement",
    "payment_failure_propensity": "resume_billing",
    "n_payment_failures_sub": "resume_billing",
    "n_how_to_tickets": "onboarding_help",
    "n_complaints": "customer_success_call",
    "n_complaints_90d": "customer_success_call",
    "n_bug_tickets": "customer_success_call",
    "n_tickets_90d": "customer_success_call",
    "mean_csat": "customer_success_call",
}
_DEFAULT_ACTION = "monitor"


class KaplanMeierChurnModel(ChurnModelMixin, KaplanMeierSurvival):
    """Kaplan-Meier curve of time to churn, one per plan tier (the baseline).

    Parameters
    ----------
    group_col : str or None, default "reason"
        Column whose levels get their own curve; None pools all snapshots.
    min_group_size : int, default 30
        Smaller groups use the pooled curve (a warning says which).
    duration_col, event_col : str
        Days from the snapshot to the end of the subscription or censoring; 1 = churned.
    feature_cols, categorical_cols : unused, kept for a uniform interface.
    min_events : int, default 1
    """

    def __init__(
        self,
        group_col: str | None = "plan_tier",
        min_group_size: int = 30,
        duration_col: str = "duration_days",
        event_col: str = "event",
        feature_cols: Sequence[str] | None = None,
        categorical_cols: Sequence[str] | None = None,
        min_events: int = 1,
    ) -> None:
        self.group_col = group_col
        self.min_group_size = min_group_size
        self.duration_col = duration_col
        self.event_col = event_col
        self.feature_cols = feature_cols
        self.categorical_cols = categorical_cols
        self.min_events = min_events


class CoxChurnModel(ChurnModelMixin, CoxSurvival):
    """Cox proportional hazards model of time to churn (lifelines ``CoxPHFitter``).

    Parameters
    ----------
    penalizer : float, default 0.01
        L2 penalty; on non-convergence the fit retries with larger penalties and
        records the fallback in ``fit_warnings_``.
    max_steps : int, default 100
    duration_col, event_col : str
    feature_cols : list of str or None
        None = every column except ids, dates, outcome and ``snapshot_at``.
    categorical_cols : list of str or None
        None = the non-numeric feature columns (one-hot encoded).
    entry_col : str or None, default None
        Column of days from the origin to the row's entry into observation
        (delayed entry, left truncation). Off by default for Cox: lifelines'
        delayed-entry path is many times slower; pass ``"entry_days"`` to use it.
    min_events : int, default 20
    """

    def __init__(
        self,
        penalizer: float = 0.01,
        max_steps: int = 100,
        duration_col: str = "duration_days",
        event_col: str = "event",
        entry_col: str | None = None,
        feature_cols: Sequence[str] | None = None,
        categorical_cols: Sequence[str] | None = None,
        min_events: int = 20,
    ) -> None:
        self.penalizer = penalizer
        self.max_steps = max_steps
        self.duration_col = duration_col
        self.event_col = event_col
        self.entry_col = entry_col
        self.feature_cols = feature_cols
        self.categorical_cols = categorical_cols
        self.min_events = min_events


class WeibullCureChurnModel(ChurnModelMixin, WeibullCureSurvival):
    """Weibull AFT model of time to churn, with an optional cure fraction.

    With ``cure=True``, ``P(churn by t) = pi(x) F(t | x)``: ``pi(x)`` (ever churns) is logistic and the Weibull scale log-linear in the
    standardised features; the shape is shared. Fitted by maximum likelihood
    (scipy L-BFGS-B with analytic gradient). ``predict_susceptible_probability``
    gives ``pi(x)``.

    Parameters
    ----------
    cure : bool, default False
        True adds a logistic never-churns fraction.
    penalizer : float, default 1e-4
        L2 penalty on the non-intercept coefficients (per row).
    max_iter : int, default 500
    entry_col : str or None, default "entry_days"
        Days from the origin to the row's entry into observation (delayed entry,
        left truncation: the row is known only because no event happened before);
        ignored when the column is absent.
    duration_col, event_col, feature_cols, categorical_cols, min_events : as in CoxChurnModel
    """

    def __init__(
        self,
        cure: bool = False,
        penalizer: float = 1e-4,
        max_iter: int = 500,
        duration_col: str = "duration_days",
        event_col: str = "event",
        entry_col: str | None = "entry_days",
        feature_cols: Sequence[str] | None = None,
        categorical_cols: Sequence[str] | None = None,
        min_events: int = 20,
    ) -> None:
        self.cure = cure
        self.penalizer = penalizer
        self.max_iter = max_iter
        self.duration_col = duration_col
        self.event_col = event_col
        self.entry_col = entry_col
        self.feature_cols = feature_cols
        self.categorical_cols = categorical_cols
        self.min_events = min_events


class XGBoostAFTChurnModel(ChurnModelMixin, XGBoostAFTSurvival):
    """XGBoost ``survival:aft`` model of time to churn.

    Parameters
    ----------
    n_estimators : int, default 300
    learning_rate : float, default 0.05
    max_depth : int, default 4
    min_child_weight : float, default 5.0
    subsample : float, default 1.0
    distribution : {"normal", "logistic", "extreme"}, default "normal"
        Error distribution of log time.
    sigma : float, default 1.2
        Scale of the error distribution (``aft_loss_distribution_scale``).
    n_jobs : int, default 2
    random_state : int or None, default 0
    exact_contributions : bool, default False
        Per-feature contributions (``predict_risk_contributions``, the churn
        drivers) by exact TreeSHAP (True) or the fast approximate (Saabas)
        attribution (False; about 10x faster; the top driver agreed with TreeSHAP
        for 89 % of rows on the benchmark frame).
    duration_col, event_col, feature_cols, categorical_cols, min_events : as in CoxChurnModel
        (XGBoost has no delayed entry: an ``entry_days`` column is ignored)
    """

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_child_weight: float = 5.0,
        subsample: float = 1.0,
        distribution: str = "normal",
        sigma: float = 1.2,
        n_jobs: int = 2,
        random_state: int | None = 0,
        exact_contributions: bool = False,
        duration_col: str = "duration_days",
        event_col: str = "event",
        feature_cols: Sequence[str] | None = None,
        categorical_cols: Sequence[str] | None = None,
        min_events: int = 20,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.distribution = distribution
        self.sigma = sigma
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.exact_contributions = exact_contributions
        self.duration_col = duration_col
        self.event_col = event_col
        self.feature_cols = feature_cols
        self.categorical_cols = categorical_cols
        self.min_events = min_events


class DiscreteHazardChurnModel(ChurnModelMixin, DiscreteHazardSurvival):
    """Discrete-time hazard model of churn: gradient-boosted
    ``P(churn in interval k | active at its start, features)``.

    Churn happens at renewal dates (and at the end of a dunning period), so the
    time to churn has no smooth parametric shape; this model assumes none. Each
    training snapshot contributes one row per ``interval_days`` interval it was
    observed in (person-period data), with the interval index as a feature;
    XGBoost (``binary:logistic``) learns the hazard, and ``S(t) = prod_k (1 - h_k)``.

    Parameters
    ----------
    interval_days : float, default 30
        Length of the discrete time intervals (days).
    max_intervals : int or None, default 12
        Intervals modelled; later times use the last interval's hazard.
    n_estimators : int, default 300
    learning_rate : float, default 0.05
    max_depth : int, default 4
    min_child_weight : float, default 5.0
    subsample : float, default 1.0
    n_jobs : int, default 2
    random_state : int or None, default 0
    contribution_days : float, default 90
        ``predict_risk_contributions`` (the churn drivers) averages the SHAP values
        of the hazard's log-odds over the intervals within this horizon.
    exact_contributions : bool, default False
        Exact TreeSHAP (True) or XGBoost's fast approximate attribution (False).
    renewal_col, period_col : str or None, default "days_to_renewal", "billing_interval"
        When the frame has both columns (days from the origin to the next renewal,
        and ``month`` / ``year``), every person-period row also gets how many
        renewal boundaries fall in its interval and where the first one falls
        (days from the interval's start): churn happens at renewals, and these
        spare the trees a three-way interaction (interval x days to renewal x
        billing period) that they learn only roughly. None (or an absent column)
        leaves them out.
    entry_col : str or None, default "entry_days"
        Delayed entry (a row is at risk from its entry on); ignored when absent.
    duration_col, event_col, feature_cols, categorical_cols, min_events : as in CoxChurnModel
    """

    def __init__(
        self,
        interval_days: float = 30.0,
        max_intervals: int | None = 12,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_child_weight: float = 5.0,
        subsample: float = 1.0,
        n_jobs: int = 2,
        random_state: int | None = 0,
        contribution_days: float = 90.0,
        exact_contributions: bool = False,
        renewal_col: str | None = "days_to_renewal",
        period_col: str | None = "billing_interval",
        duration_col: str = "duration_days",
        event_col: str = "event",
        entry_col: str | None = "entry_days",
        feature_cols: Sequence[str] | None = None,
        categorical_cols: Sequence[str] | None = None,
        min_events: int = 20,
    ) -> None:
        self.interval_days = interval_days
        self.max_intervals = max_intervals
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.contribution_days = contribution_days
        self.exact_contributions = exact_contributions
        self.renewal_col = renewal_col
        self.period_col = period_col
        self.duration_col = duration_col
        self.event_col = event_col
        self.entry_col = entry_col
        self.feature_cols = feature_cols
        self.categorical_cols = categorical_cols
        self.min_events = min_events


#: Every churn model class, baseline first.
CHURN_MODELS = (
    KaplanMeierChurnModel,
    CoxChurnModel,
    WeibullCureChurnModel,
    XGBoostAFTChurnModel,
    DiscreteHazardChurnModel,
)


def top_drivers(contributions: pd.DataFrame, n: int = 3) -> list[list[str]]:
    """Per row, the names of the ``n`` columns with the largest positive contribution."""
    v = contributions.to_numpy(dtype=float)
    names = np.asarray(contributions.columns, dtype=object)
    k = min(n, v.shape[1])
    order = np.argsort(-v, axis=1, kind="stable")[:, :k]
    top_v = np.take_along_axis(v, order, axis=1)
    return [
        [str(names[j]) for j, x in zip(o, tv, strict=True) if x > 0]
        for o, tv in zip(order, top_v, strict=True)
    ]


def build_churn_risk(
    data: Any,
    as_of: Any,
    model: Any,
    *,
    model_version: str | None = None,
    horizon_days: int = 90,
    n_drivers: int = 3,
    actions: Mapping[str, str] | None = None,
    frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The contract's ``churn_risk`` table: one row per customer active at ``as_of``.

    Parameters
    ----------
    data : ContractData or dict of contract frames
    as_of : the run date (features use nothing after it)
    model : a fitted churn model (``*ChurnModel``)
    model_version : written in ``model_version`` (e.g. ``"winback-churn/3"``);
        default the model's class name
    horizon_days : the churn horizon of ``p_churn_90d`` (keep 90 for the contract)
    n_drivers : how many drivers go into ``top_drivers`` (``;``-separated,
        largest first; only drivers that raise the risk)
    actions : driver -> action mapping (default :data:`DRIVER_ACTIONS`)
    frame : a prebuilt :func:`~winback_ml.features.build_churn_scoring_frame`

    Returns
    -------
    DataFrame with :data:`CHURN_RISK_COLUMNS`, sorted by ``p_churn_90d`` descending.
    """
    from winback_ml.features import build_churn_scoring_frame

    if not hasattr(model, "expected_churn_probability"):
        raise ModelError(
            f"build_churn_risk needs a churn model (e.g. XGBoostAFTChurnModel). "
            f"Got {type(model).__name__}."
        )
    X = frame if frame is not None else build_churn_scoring_frame(data, as_of)
    X = X.reset_index(drop=True)
    if X.empty:
        return pd.DataFrame(columns=CHURN_RISK_COLUMNS)
    p = model.expected_churn_probability(X, within_days=horizon_days)
    date = model.expected_churn_date(X, as_of)
    contrib = model.predict_risk_contributions(X)
    drivers = top_drivers(contrib, n_drivers)
    amap = dict(DRIVER_ACTIONS if actions is None else actions)
    out = pd.DataFrame(
        {
            "customer_id": X["customer_id"].to_numpy(),
            "p_churn_90d": p,
            "expected_churn_date": date.to_numpy(),
            "top_drivers": [";".join(d) for d in drivers],
            "suggested_action": [
                amap.get(d[0], _DEFAULT_ACTION) if d else _DEFAULT_ACTION for d in drivers
            ],
            "model_version": model_version or type(model).__name__,
        }
    )
    return out.sort_values("p_churn_90d", ascending=False, kind="stable").reset_index(drop=True)
