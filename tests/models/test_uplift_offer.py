"""The structured offer-response model: gradient, parameter recovery, no-evidence fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime

from winback_ml.config import Offer
from winback_ml.exceptions import ConfigError, ModelError, NotFittedError
from winback_ml.models.uplift_offer import REASONS, Z_FEATURES, StructuredOfferResponseModel

ARMS = [  # offer_type, pct, months
    ("none", 0, 0),
    ("discount", 10, 1),
    ("discount", 40, 3),
    ("discount", 25, 6),
    ("free_month", 0, 1),
    ("feature_trial", 0, 0),
]
TRUE_R = {  # reason -> offer type -> response of a reached customer
    "too_expensive": {"none": 0.03, "discount": 0.6, "free_month": 0.3, "feature_trial": 0.02},
    "missing_features": {"none": 0.03, "discount": 0.05, "free_month": 0.05, "feature_trial": 0.5},
    "unused": {"none": 0.10, "discount": 0.05, "free_month": 0.2, "feature_trial": 0.05},
}
KAPPA, TAU, REACH_E, REACH_S = 15.0, 1.5, 0.6, 0.4


def _v(reasons, ot, pct, mon, ch, ce, cs, d):
    """The true ``v`` of each row (vectorised)."""
    re, rs = ce * REACH_E, cs * REACH_S
    reach = np.select(
        [ch == "email", ch == "sms", ch == "multi"], [re, rs, 1 - (1 - re) * (1 - rs)], 0.0
    )
    R = np.array([TRUE_R[r].get(t, 0.0) for r, t in zip(reasons, ot, strict=True)])
    D = np.where(ot == "discount", (1 - np.exp(-pct / KAPPA)) * (1 - np.exp(-mon / TAU)), 1.0)
    return reach * R * D * np.exp(-d / 150)


def _simulate(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    reasons = rng.choice(list(TRUE_R), size=n)
    arm = rng.integers(-1, len(ARMS), size=n)  # -1 = control
    ctl = arm < 0
    ot = np.array([ARMS[a][0] if a >= 0 else "none" for a in arm], dtype=object)
    pct = np.array([ARMS[a][1] if a >= 0 else 0 for a in arm], dtype=float)
    mon = np.array([ARMS[a][2] if a >= 0 else 0 for a in arm], dtype=float)
    ch = np.where(ctl, "email", rng.choice(["email", "sms", "multi"], size=n)).astype(object)
    ce = (rng.random(n) < 0.8).astype(float)
    cs = (rng.random(n) < 0.5).astype(float)
    d = rng.uniform(14, 90, n)
    p0 = np.where(reasons == "unused", 0.02, 0.06)
    v = np.where(ctl, 0.0, _v(reasons, ot, pct, mon, ch, ce, cs, d))
    p = 1 - (1 - p0) * np.exp(-v)
    f = pd.DataFrame(
        {
            "offer_type": ot,
            "discount_pct": pct,
            "discount_months": mon,
            "is_control": ctl,
            "p": p,
            "v": v,
        }
    )
    f["channel"] = ch
    f["reactivated"] = (rng.random(n) < p).astype(int)
    for r in REASONS:
        f[f"p_{r}"] = (reasons == r).astype(float)
    f["days_lapsed"] = d
    f["can_email"] = ce
    f["can_sms"] = cs
    f["app_customer"] = 0.0
    f["log_mrr"] = np.log1p(rng.choice([9.0, 29.0, 99.0], size=n))
    f["yearly"] = 0.0
    f["coupon"] = 0.0
    f["returned_before"] = 0.0
    f["p0"] = p0
    f["reason"] = reasons
    return f


@pytest.fixture(scope="module")
def sim():
    return _simulate(30000, 1)


@pytest.fixture(scope="module")
def fitted(sim):
    return StructuredOfferResponseModel(penalty_reason=0.5).fit(sim, sim["p0"].to_numpy())


@pytest.mark.parametrize(
    "calibrate_base, type_covariates",
    [
        (True, None),
        (False, None),
        (True, {"feature_trial": ("feature_requests",), "discount": ("coupon", "log_mrr")}),
    ],
)
def test_gradient_is_exact(sim, calibrate_base, type_covariates):
    m = StructuredOfferResponseModel(calibrate_base=calibrate_base, type_covariates=type_covariates)
    tr = sim.head(3000).copy() if calibrate_base else sim[~sim["is_control"]].head(3000).copy()
    rng = np.random.default_rng(1)
    for c in Z_FEATURES[4:]:  # the behaviour covariates, random here
        tr[c] = rng.normal(size=len(tr))
    nz = len(Z_FEATURES)
    m.z_mean_, m.z_std_ = np.zeros(nz), np.ones(nz)
    X = m._design(
        tr,
        tr["offer_type"].to_numpy(object),
        tr["discount_pct"].to_numpy(float),
        tr["discount_months"].to_numpy(float),
        tr["channel"].to_numpy(object),
    )
    X["treated"] = (~tr["is_control"].to_numpy(bool)).astype(float)
    z = m._z(tr)
    y = tr["reactivated"].to_numpy(float)
    rng = np.random.default_rng(0)
    th = rng.normal(scale=0.3, size=m._slices()["_n"].stop)
    th[:6] += np.log(0.05)  # offer-type intercepts
    g = m._nll(th, X, z, y, tr["p0"].to_numpy())[1]
    num = approx_fprime(th, lambda t: m._nll(t, X, z, y, tr["p0"].to_numpy())[0], 1e-6)
    assert np.max(np.abs(g - num)) < 1e-3 * max(1.0, np.max(np.abs(g)))


def test_recovers_response_structure(fitted):
    m = fitted
    assert m.converged_ and set(m.tried_types_) == {
        "none",
        "discount",
        "free_month",
        "feature_trial",
    }
    # The predicted uplift of any offer follows the truth, including depths never tried (15 %, 1 m).
    test = _simulate(3000, 2)
    for ot, pct, mon in [
        ("discount", 15, 1),
        ("discount", 40, 3),
        ("feature_trial", 0, 0),
        ("free_month", 0, 1),
    ]:
        t = test.copy()
        t["offer_type"], t["discount_pct"], t["discount_months"], t["is_control"] = (
            ot,
            pct,
            mon,
            False,
        )
        t["channel"] = "multi"
        truth = _simulate_p(t)
        pred = m.predict_return_probability(t, Offer(ot, pct, mon), "multi", t["p0"].to_numpy())
        assert np.corrcoef(pred - t["p0"], truth - t["p0"])[0, 1] > 0.9
        assert np.mean(pred - truth) == pytest.approx(0, abs=0.02)
    R = m.response_table()
    assert R.loc["too_expensive", "discount"] > 3 * R.loc["missing_features", "discount"]
    assert R.loc["missing_features", "feature_trial"] > 3 * R.loc["too_expensive", "feature_trial"]
    assert R["resume_billing"].isna().all()  # never tried: no number
    assert m.reach_["email"] == pytest.approx(REACH_E, abs=0.15)


def _simulate_p(t: pd.DataFrame) -> np.ndarray:
    v = _v(
        t["reason"].to_numpy(),
        t["offer_type"].to_numpy(object),
        t["discount_pct"].to_numpy(float),
        t["discount_months"].to_numpy(float),
        t["channel"].to_numpy(object),
        t["can_email"].to_numpy(),
        t["can_sms"].to_numpy(),
        t["days_lapsed"].to_numpy(),
    )
    return 1 - (1 - t["p0"].to_numpy()) * np.exp(-v)


def test_untried_offers_and_channels_are_nan(sim, fitted):
    m = fitted
    t = sim.head(10)
    assert np.isnan(
        m.predict_return_probability(t, Offer("resume_billing"), "email", t["p0"])
    ).all()
    assert np.isnan(m.predict_return_probability(t, Offer("none"), "in_app", t["p0"])).all()
    assert np.isfinite(
        m.predict_return_probability(t, Offer("discount", 50, 6), "email", t["p0"])
    ).all()


def test_errors(sim):
    with pytest.raises(NotFittedError):
        StructuredOfferResponseModel().response_table()
    no_ctl = sim[~sim["is_control"]]
    with pytest.raises(ModelError, match="no control"):
        StructuredOfferResponseModel().fit(no_ctl, no_ctl["p0"].to_numpy())
    with pytest.raises(ModelError, match="p0"):
        StructuredOfferResponseModel().fit(sim, np.full(3, 0.1))


def test_control_arms_recalibrate_a_biased_base_model(sim):
    """A base model that halves P(return | no contact) is corrected by the control arms, and
    the offers' effects are not inflated by the missing natural returns."""
    true_p0 = sim["p0"].to_numpy()
    biased = StructuredOfferResponseModel().fit(sim, 0.5 * true_p0)
    ctl = sim["is_control"].to_numpy(bool)
    base = biased.expected_base_probability(sim, 0.5 * true_p0)
    # the simulated truth: 0.02 (unused) / 0.06 (others); the biased input is half of it
    assert base[ctl].mean() == pytest.approx(true_p0[ctl].mean(), rel=0.1)
    test = _simulate(3000, 5)
    o = Offer("discount", 25, 3)
    p_biased = biased.predict_return_probability(test, o, "email", 0.5 * test["p0"].to_numpy())
    b_biased = biased.expected_base_probability(test, 0.5 * test["p0"].to_numpy())
    up = p_biased - b_biased
    true_up = (1 - test["p0"]) * (
        1
        - np.exp(
            -_v(
                test["reason"].to_numpy(),
                np.full(3000, "discount"),
                25.0,
                3.0,
                np.full(3000, "email"),
                test["can_email"].to_numpy(),
                test["can_sms"].to_numpy(),
                test["days_lapsed"].to_numpy(),
            )
        )
    )
    assert np.mean(up) == pytest.approx(np.mean(true_up), rel=0.15)
    off = StructuredOfferResponseModel(calibrate_base=False).fit(sim, 0.5 * true_p0)
    np.testing.assert_allclose(off.expected_base_probability(test, test["p0"]), test["p0"])
    # without the recalibration the missing natural returns are taken for effects of the offer
    # (measured: +41 % uplift, 0.066 vs 0.047; with it 0.049)
    p_off = off.predict_return_probability(test, o, "email", 0.5 * test["p0"].to_numpy())
    assert np.mean(p_off - 0.5 * test["p0"]) > 1.25 * np.mean(true_up)


def test_a_type_specific_covariate_effect_is_recovered():
    """Feature requests lift only the feature trial (x exp(0.6 z)): the deviation finds it."""
    f = _simulate(30000, 7)
    rng = np.random.default_rng(7)
    fr = rng.normal(size=len(f))
    f["feature_requests"] = fr
    lift = np.where(f["offer_type"].to_numpy() == "feature_trial", np.exp(0.6 * fr), 1.0)
    v = f["v"].to_numpy() * lift
    p = 1 - (1 - f["p0"].to_numpy()) * np.exp(-v)
    f["reactivated"] = (rng.random(len(f)) < p).astype(int)
    z = ("log_mrr", "feature_requests")
    p0 = f["p0"].to_numpy()
    m = StructuredOfferResponseModel(penalty_reason=0.5, z_features=z).fit(f, p0)
    s = m._slices()
    delta = m.theta_[s["delta"]]
    beta = m.theta_[s["beta"]].reshape(m._nG, m._nZ)[:, 1]  # feature requests per group
    assert delta.shape == (1,)
    assert 0.35 < delta[0] + beta[-1] < 0.8  # the trial's own effect (group "other")
    assert abs(beta[-1]) < 0.2  # the plain message, in the same group, is not moved

    # without the deviation the group's one coefficient moves the plain message too
    m0 = StructuredOfferResponseModel(penalty_reason=0.5, z_features=z, type_covariates=None)
    m0.fit(f, p0)
    hi = f.assign(feature_requests=2.0).head(500)
    lo = f.assign(feature_requests=-2.0).head(500)

    def gap(model, offer):
        a = model.predict_return_probability(hi, offer, "email", p0[:500])
        b = model.predict_return_probability(lo, offer, "email", p0[:500])
        return float(np.mean(a - b))

    plain, trial = Offer("none"), Offer("feature_trial")
    assert gap(m, trial) > 0.05
    assert abs(gap(m, plain)) < 0.5 * abs(gap(m0, plain))


def test_type_covariates_name_a_known_offer_type(sim):
    with pytest.raises(ConfigError, match="type_covariates"):
        StructuredOfferResponseModel(type_covariates={"bribe": ("log_mrr",)}).fit(
            sim.head(2000), sim["p0"].to_numpy()[:2000]
        )
