"""Uplift learners, metrics and off-policy values against simulated truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from winback_ml.exceptions import ModelError, NotFittedError
from winback_ml.models.uplift import (
    DRLearnerUpliftModel,
    TLearnerUpliftModel,
    XLearnerUpliftModel,
    auuc_score,
    policy_value_dr,
    policy_value_ipw,
    qini_curve,
    qini_score,
    uplift_at_k,
    uplift_curve,
)

ARMS = ["control", "email", "discount"]
# Light base learners keep the tests fast on 2 shared cores; defaults are tested in use.
LIGHT = dict(max_iter=40, learning_rate=0.15, max_leaf_nodes=8, min_samples_leaf=100)


def _light(cls):
    kw = {
        "base_estimator": HistGradientBoostingClassifier(**LIGHT, random_state=0),
        "random_state": 0,
    }
    if cls is not TLearnerUpliftModel:
        kw["effect_estimator"] = HistGradientBoostingRegressor(**LIGHT, random_state=0)
    return cls(**kw)


def _simulate(n: int, seed: int):
    """Two treatment arms with heterogeneous, known effects on a binary outcome."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"x0": rng.normal(size=n), "x1": rng.normal(size=n), "x2": rng.uniform(size=n)}
    )
    base = 0.08 + 0.04 * (X["x1"] > 0)
    tau = pd.DataFrame(
        {
            "email": 0.03 * (X["x0"] > 0),  # e-mail works only for x0 > 0
            "discount": 0.15 * X["x2"],  # discount effect grows with x2
        }
    )
    t = rng.choice(ARMS, size=n, p=[0.3, 0.35, 0.35])
    p = base.to_numpy().copy()
    for a in ("email", "discount"):
        p += (t == a) * tau[a].to_numpy()
    y = (rng.random(n) < p).astype(int)
    return X, t, y, tau, base


@pytest.fixture(scope="module")
def sim():
    return _simulate(16000, 1)


@pytest.mark.parametrize("cls", [TLearnerUpliftModel, XLearnerUpliftModel, DRLearnerUpliftModel])
def test_learners_recover_heterogeneous_effects(sim, cls):
    X, t, y, tau, _ = sim
    m = _light(cls).fit(X, t, y)
    assert m.treatment_arms_ == ["discount", "email"]
    u = m.predict_uplift_frame(X)
    assert u.shape == (len(X), 2)
    # Average effects close to the truth, and the ranking follows the true effect.
    for a in ("discount", "email"):
        assert u[a].mean() == pytest.approx(tau[a].mean(), abs=0.02)
    assert np.corrcoef(u["discount"], tau["discount"])[0, 1] > 0.45
    hi = u["email"][X["x0"] > 0].mean() - u["email"][X["x0"] <= 0].mean()
    assert hi == pytest.approx(0.03, abs=0.02)
    # scikit-learn contract: clone gives an unfitted copy with the same params.
    c = clone(m)
    assert repr(c.get_params(deep=False)) == repr(m.get_params(deep=False))
    assert not hasattr(c, "treatment_arms_")


def test_metrics_rank_a_good_model_above_random(sim):
    X, t, y, tau, _ = sim
    sel = np.isin(t, ["control", "discount"])
    yy, tt = y[sel], (t[sel] == "discount").astype(int)
    good = tau["discount"].to_numpy()[sel]
    rng = np.random.default_rng(0)
    noise = rng.normal(size=sel.sum())
    assert auuc_score(yy, good, tt) > 0.01
    assert abs(auuc_score(yy, noise, tt)) < 0.01
    assert qini_score(yy, good, tt) > qini_score(yy, noise, tt)
    # Top 20 % by true effect: observed uplift near the truth there (x2 > 0.8 -> ~0.135).
    assert uplift_at_k(yy, good, tt, 0.2) == pytest.approx(0.135, abs=0.04)
    q = qini_curve(yy, good, tt)
    assert q["fraction"].iloc[0] == 0 and q["fraction"].iloc[-1] == 1
    assert q["qini"].iloc[-1] == pytest.approx(q["random"].iloc[-1])
    g = uplift_curve(yy, good, tt)
    ate = yy[tt == 1].mean() - yy[tt == 0].mean()
    assert g["gain"].iloc[-1] == pytest.approx(ate)


def test_policy_values_match_true_value(sim):
    X, t, y, tau, base = sim
    # Policy: discount when x2 > 0.5, else e-mail when x0 > 0, else control.
    pi = np.where(X["x2"] > 0.5, "discount", np.where(X["x0"] > 0, "email", "control"))
    true_p = base.to_numpy() + (pi == "discount") * tau["discount"] + (pi == "email") * tau["email"]
    truth = float(np.mean(true_p))
    ipw = policy_value_ipw(y, t, pi)
    assert ipw.ci_low < truth < ipw.ci_high
    m = _light(TLearnerUpliftModel).fit(X, t, y)
    mu = pd.DataFrame(m.predict_outcome(X), columns=[m.control_arm_, *m.treatment_arms_])
    dr = policy_value_dr(y, t, pi, mu)
    assert dr.ci_low - 0.003 < truth < dr.ci_high + 0.003
    assert dr.se <= ipw.se * 1.05  # the outcome model removes variance
    snipw = policy_value_ipw(y, t, pi, self_normalized=True)
    assert snipw.value == pytest.approx(truth, abs=0.01)


def test_bad_input_errors():
    X, t, y, *_ = _simulate(400, 2)
    with pytest.raises(NotFittedError):
        TLearnerUpliftModel().predict_uplift(X)
    with pytest.raises(ModelError, match="control arm"):
        TLearnerUpliftModel(control_arm="holdout").fit(X, t, y)
    with pytest.raises(ModelError, match="min_arm_size"):
        TLearnerUpliftModel(min_arm_size=500).fit(X, t, y)
    with pytest.raises(ModelError, match="same length"):
        XLearnerUpliftModel().fit(X, t[:-1], y)
    with pytest.raises(ModelError, match="never tried"):
        policy_value_ipw(y, t, np.full(len(y), "sms"))
    with pytest.raises(ModelError, match="both treated"):
        auuc_score(y, y, np.ones(len(y)))
