"""Recovery on the synthetic world: predicted return probabilities against the world's truth.

World: ``make_world(20000, seed=7)``, ``as_of = 2025-09-30``. The models see
only the data as of ``as_of``; the truth (``WorldTruth.p_return``) knows the
latent cure fraction and return rate of every lapsed customer.

AUC is measured against outcomes drawn from the true probabilities (20
draws, fixed seed), so "the AUC the true probabilities reach" is well
defined and free of the contacts that later campaigns make; the AUC against
the world's realised 30-day returns is reported too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

AS_OF = pd.Timestamp("2025-09-30")


def _metrics(p_true: np.ndarray, p_hat: np.ndarray) -> dict[str, float]:
    """AUC (20 draws of outcomes from the truth, seed 0), MAE, decile calibration, mean gap."""
    from winback_ml.models.evaluation import recovery_metrics

    r = recovery_metrics(p_true, p_hat, draws=20, seed=0)
    return {k: r[k] for k in ("auc", "auc_truth", "mae", "decile_cal", "mean_gap")}


@pytest.fixture(scope="module")
def world20k():
    from winback_ml.data.loader import load_data
    from winback_ml.data.synthetic import make_world

    w = make_world(20000, seed=7)
    return w, load_data(w.tables, as_of=AS_OF, validate=False)


@pytest.mark.slow
def test_return_model_recovers_the_true_probabilities(world20k) -> None:
    from winback_ml.features import build_return_scoring_frame, build_return_training_frame
    from winback_ml.models.evaluation import compare_models
    from winback_ml.models.return_model import (
        CoxReturnModel,
        KaplanMeierReturnModel,
        WeibullCureReturnModel,
        XGBoostAFTReturnModel,
    )

    w, cd = world20k
    # reasons="infer" (the default): stated, else inferred per lapse as of its end
    train = build_return_training_frame(cd, AS_OF)
    score = build_return_scoring_frame(cd, AS_OF, max_days_lapsed=365)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the stated rule: everyone lapsed at the cutoff, given days lapsed, 3 rolling cutoffs
        cmp = compare_models(
            {
                "kaplan_meier": KaplanMeierReturnModel(),
                "cox": CoxReturnModel(),
                "weibull_cure": WeibullCureReturnModel(),
                "xgboost_aft": XGBoostAFTReturnModel(n_estimators=150),
            },
            train,
            cutoff=AS_OF - pd.Timedelta(days=180),
        )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            cmp.table[
                [
                    "model",
                    "n_test_events",
                    "concordance",
                    "ibs",
                    "brier_30",
                    "calibration_error_30",
                    "calibration_error_90",
                ]
            ].round(4)
        )
    p_true = w.truth.p_return(score["customer_id"].to_numpy(), AS_OF, 30)
    assert not np.isnan(p_true).any()
    results = {}
    for name, m in cmp.models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = type(m)(**m.get_params()).fit(train)
        p_hat = full.expected_return_probability(score, within_days=30)
        results[name] = _metrics(p_true, p_hat)
    print(f"return recovery (n={len(score)}, chosen={cmp.chosen}):")
    print(pd.DataFrame(results).T.round(4))
    # Issue goal: AUC within 0.03 of the truth's, decile calibration error < 0.01. Measured
    # (this world, 4,554 lapsed <= 365 days): truth AUC 0.8775; Weibull cure 0.8582 (gap
    # 0.019, decile cal. 0.0026, MAE 0.0098), Cox 0.8483 (gap 0.029), Kaplan-Meier by reason
    # 0.8316 (gap 0.046). Before this work the cure model reached 0.846 (gap 0.031):
    # minutes per session (affinity) and per-lapse inferred reasons closed it.
    cure = results["weibull_cure"]
    assert cure["auc_truth"] - cure["auc"] < 0.025
    assert cure["decile_cal"] < 0.01 and abs(cure["mean_gap"]) < 0.01
    assert cure["auc"] > results["kaplan_meier"]["auc"] + 0.02
    assert cmp.chosen in ("weibull_cure", "cox")  # the two are close on the holdout
    chosen = results[cmp.chosen]
    assert chosen["auc_truth"] - chosen["auc"] < 0.03
    assert chosen["decile_cal"] < 0.01
    assert abs(chosen["mean_gap"]) < 0.01


@pytest.mark.slow
def test_churn_model_recovers_the_true_probabilities(world20k) -> None:
    from winback_ml.features import build_churn_scoring_frame, build_churn_training_frame
    from winback_ml.models.churn_model import (
        CHURN_RISK_COLUMNS,
        DiscreteHazardChurnModel,
        WeibullCureChurnModel,
        XGBoostAFTChurnModel,
        build_churn_risk,
    )
    from winback_ml.models.evaluation import compare_models

    w, cd = world20k
    train = build_churn_training_frame(cd, AS_OF, n_snapshots=12, spacing_days=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_models(
            {
                "weibull": WeibullCureChurnModel(),
                "xgboost_aft": XGBoostAFTChurnModel(n_estimators=150),
                "discrete_hazard": DiscreteHazardChurnModel(),
            },
            train,
            cutoff=AS_OF - pd.Timedelta(days=135),
            origin_col="at",
            horizons=(30, 90),
            primary_horizon=90,
        )
        model = type(cmp.models[cmp.chosen])(**cmp.models[cmp.chosen].get_params()).fit(train)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            cmp.table[
                [
                    "model",
                    "concordance",
                    "ibs",
                    "brier_90",
                    "calibration_error_30",
                    "calibration_error_90",
                ]
            ].round(4)
        )
    score = build_churn_scoring_frame(cd, AS_OF)
    p_true = w.truth.p_churn(score["customer_id"].to_numpy(), AS_OF, 90)
    keep = ~np.isnan(p_true)
    assert keep.mean() > 0.98
    results = {}
    for name, m in cmp.models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = model if name == cmp.chosen else type(m)(**m.get_params()).fit(train)
        p_hat = full.expected_churn_probability(score, within_days=90)
        results[name] = _metrics(p_true[keep], p_hat[keep])
    print(f"churn recovery (n={keep.sum()}, chosen={cmp.chosen}):")
    print(pd.DataFrame(results).T.round(4))
    # Goal: AUC within 0.03 of the truth's. Measured (12 snapshots 30 days apart), this world:
    # the discrete-time hazard model reaches 0.7443 against the truth's 0.7732 (gap 0.0289; MAE
    # 0.034, decile calibration 0.0086). Same rule on make_world(20000, seed=11): 0.7464 against
    # 0.7722 (gap 0.0258, decile cal. 0.0039); seed=13: 0.7460 against 0.7705 (gap 0.0245,
    # 0.0046). Before this last step: seeds 7 / 11 / 13 gaps 0.0334 / 0.0310 / 0.0316. Lever by lever (benchmarks/diag_churn.py): the
    # per-interval renewal features of the hazard model (how many renewal boundaries fall in the
    # interval, where the first does) +0.0037; the subscription's fitted usage trajectory and
    # failures per renewal attempt +0.0008. A boosted regression fitted on the *true*
    # probabilities from these features (5-fold, a diagnostic no model can run) reaches 0.7509:
    # the rest of the truth's AUC rides on latents the tables show only noisily.
    dh = results["discrete_hazard"]
    assert dh["auc_truth"] - dh["auc"] < 0.03
    assert dh["decile_cal"] < 0.01 and abs(dh["mean_gap"]) < 0.01
    assert dh["auc"] > results["weibull"]["auc"] + 0.01
    assert cmp.chosen in ("discrete_hazard", "xgboost_aft")
    chosen = results[cmp.chosen]
    assert chosen["auc_truth"] - chosen["auc"] < 0.04
    assert chosen["decile_cal"] < 0.015
    risk = build_churn_risk(cd, AS_OF, model, model_version="winback-churn/1", frame=score)
    assert list(risk.columns) == CHURN_RISK_COLUMNS and len(risk) == len(score)
    assert risk["p_churn_90d"].is_monotonic_decreasing
    assert (risk["top_drivers"] != "").mean() > 0.9
    # a pending cancel request is the top driver of the customers who are sure to leave
    sure = score.loc[score["cancel_pending"] == 1, "customer_id"]
    top = risk.set_index("customer_id").loc[sure, "top_drivers"].str.split(";").str[0]
    assert (top == "cancel_pending").mean() > 0.5
