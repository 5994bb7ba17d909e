"""Contract of every survival model: fit on the synthetic world, predict, clone, pickle, MLflow.

Plus known-truth checks on simulated cure data and the bad-input behaviour.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special
from sklearn.base import clone

from winback_ml.exceptions import ModelError, NotFittedError
from winback_ml.models.churn_model import CHURN_MODELS
from winback_ml.models.return_model import (
    RETURN_MODELS,
    CoxReturnModel,
    KaplanMeierReturnModel,
    WeibullCureReturnModel,
    XGBoostAFTReturnModel,
)

AS_OF = pd.Timestamp("2025-09-30")
FAST = {"n_estimators": 40}


@pytest.fixture(scope="module")
def frames():
    from winback_ml.data.loader import load_data
    from winback_ml.data.synthetic import make_world
    from winback_ml.features import (
        build_churn_scoring_frame,
        build_churn_training_frame,
        build_return_scoring_frame,
        build_return_training_frame,
    )

    w = make_world(1500, seed=5)
    cd = load_data(w.tables, as_of=AS_OF, validate=False)
    return {
        "return": (build_return_training_frame(cd, AS_OF), build_return_scoring_frame(cd, AS_OF)),
        "churn": (
            build_churn_training_frame(cd, AS_OF, n_snapshots=3, spacing_days=60),
            build_churn_scoring_frame(cd, AS_OF),
        ),
    }


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """One MLflow store for the module (creating a SQLite store takes seconds)."""
    import os

    tmp = tmp_path_factory.mktemp("mlflow_contract")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        mp.setenv("WINBACK_MLFLOW_ARTIFACTS", str(tmp / "artifacts"))
        yield tmp
    import mlflow

    if before:
        mlflow.set_tracking_uri(before)
        mlflow.set_registry_uri(before)


def _make(cls):
    params = cls().get_params()
    return cls(**{k: v for k, v in FAST.items() if k in params})


def _cure_data(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Simulated cure data: pi = sigmoid(-0.4 + 1.0 x + 0.8 [r=b]), Weibull(shape 1.3, scale e^(3 - 0.3 x))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    r = rng.choice(["a", "b"], n)
    pi = special.expit(-0.4 + 1.0 * x + 0.8 * (r == "b"))
    lam = np.exp(3.0 - 0.3 * x)
    t = np.where(rng.random(n) < pi, lam * rng.weibull(1.3, n), np.inf)
    follow = rng.uniform(20, 400, n)
    X = pd.DataFrame(
        {
            "x": x,
            "reason": r,
            "duration_days": np.minimum(t, follow),
            "event": (t <= follow).astype(int),
        }
    )
    return X, {"pi": pi, "lam": lam, "shape": 1.3}


@pytest.mark.parametrize("cls", RETURN_MODELS + CHURN_MODELS, ids=lambda c: c.__name__)
def test_model_contract(cls, frames, tracking) -> None:
    kind = "return" if cls in RETURN_MODELS else "churn"
    train, score = frames[kind]
    m = _make(cls)
    assert m.get_params() == clone(m).get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m.fit(train) is m
    assert m.n_train_ == len(train) and hasattr(m, "model_")
    # survival curves: start at 1, non-increasing, within [0, 1]
    sf = m.predict_survival_function(score.head(50), times=[0, 7, 30, 90, 365])
    assert sf.shape == (5, 50)
    assert np.allclose(sf.iloc[0], 1.0)
    assert (np.diff(sf.to_numpy(), axis=0) <= 1e-12).all()
    if kind == "return":
        p = m.expected_return_probability(score, within_days=30)
        p90 = m.expected_return_probability(score, within_days=90)
        assert (p90 >= p - 1e-12).all()
        # conditional on days lapsed: (S(d) - S(d + w)) / S(d)
        d = score["days_lapsed"].to_numpy()[:20]
        S = m._survival_at(score.head(20), np.column_stack([d, d + 30]))
        assert np.allclose(p[:20], 1 - S[:, 1] / S[:, 0])
    else:
        p = m.expected_churn_probability(score, within_days=90)
        dates = m.expected_churn_date(score, AS_OF)
        assert (dates.dropna() >= AS_OF).all()
    assert p.shape == (len(score),) and np.all((p >= 0) & (p <= 1))
    # clone is unfitted, pickle round-trips predictions exactly
    with pytest.raises(NotFittedError):
        clone(m).predict_survival_function(score.head(2))
    m2 = pickle.loads(pickle.dumps(m))
    fn = "expected_return_probability" if kind == "return" else "expected_churn_probability"
    np.testing.assert_array_equal(getattr(m2, fn)(score), p)
    # MLflow: log, register, load back as pyfunc, same numbers
    from winback_ml.tracking import mlflow as wt

    rec = wt.log_fit(m, kind, input_example=score, metrics={"ibs": 0.1}, as_of=AS_OF)
    import mlflow

    loaded = mlflow.pyfunc.load_model(rec.model_uri)
    out = loaded.predict(score.head(200))
    col = "p_return_30d" if kind == "return" else "p_churn_90d"
    np.testing.assert_allclose(out[col].to_numpy(), p[:200], rtol=1e-12)


def test_cure_model_recovers_known_parameters() -> None:
    X, truth = _cure_data()
    m = WeibullCureReturnModel().fit(X)
    assert m.shape_ == pytest.approx(truth["shape"], rel=0.08)
    pi_hat = m.predict_susceptible_probability(X)
    assert np.abs(pi_hat - truth["pi"]).mean() < 0.03
    # the cure fraction is the far tail of the curve
    np.testing.assert_allclose(m.expected_cure_fraction(X), 1 - pi_hat, atol=1e-6)
    # conditional probability after 60 days lapsed, against the closed form
    d, w = 60.0, 30.0

    def S(t):
        return 1 - truth["pi"] + truth["pi"] * np.exp(-((t / truth["lam"]) ** truth["shape"]))

    p_true = 1 - S(d + w) / S(d)
    p_hat = m.expected_return_probability(X, within_days=w, conditional_after=d)
    assert np.abs(p_hat - p_true).mean() < 0.01


def test_cure_model_beats_plain_weibull_and_km_on_cure_data() -> None:
    X, truth = _cure_data(seed=1)
    ll_cure = WeibullCureReturnModel().fit(X).log_likelihood_
    ll_plain = WeibullCureReturnModel(cure=False).fit(X).log_likelihood_
    assert ll_cure > ll_plain + 50


def test_delayed_entry_removes_immortal_time_bias() -> None:
    """Rows known only from day 40 on (like interviewed lapses) must not look like non-returners."""
    X, truth = _cure_data(n=6000, seed=2)
    rng = np.random.default_rng(3)
    entry = np.where(rng.random(len(X)) < 0.3, 40.0, 0.0)
    keep = X["duration_days"].to_numpy() > entry  # those who returned before 40 days are never seen
    Xt = X[keep].assign(entry_days=entry[keep])
    with_entry = WeibullCureReturnModel().fit(Xt)
    naive = WeibullCureReturnModel(entry_col=None).fit(Xt)
    err_entry = np.abs(with_entry.predict_susceptible_probability(X) - truth["pi"]).mean()
    err_naive = np.abs(naive.predict_susceptible_probability(X) - truth["pi"]).mean()
    assert err_entry < 0.04 and err_entry < err_naive


def test_cox_delayed_entry_leaves_out_rows_entered_at_their_end() -> None:
    """lifelines refuses entry >= duration; such rows have no time at risk. They used to fail
    the fit with a misleading 'did not converge ... drop collinear features' error."""
    from winback_ml.models.return_model import CoxReturnModel

    X, _ = _cure_data(n=3000, seed=4)
    d = X["duration_days"].to_numpy(float)
    entry = np.where(np.random.default_rng(5).random(len(X)) < 0.2, np.minimum(20.0, d), 0.0)
    Xt = X.assign(entry_days=entry)
    tied = int(((entry > 0) & (entry >= d)).sum())
    assert tied > 0
    m = CoxReturnModel(entry_col="entry_days").fit(Xt)
    assert any(f"{tied} row(s) enter observation at their end" in w for w in m.fit_warnings_)
    assert np.isfinite(m.expected_return_probability(X.assign(days_lapsed=0.0), 30)).all()


def test_km_by_reason_matches_lifelines() -> None:
    from lifelines import KaplanMeierFitter

    X, _ = _cure_data(n=800)
    m = KaplanMeierReturnModel(min_group_size=10).fit(X)
    b = X[X["reason"] == "b"]
    kmf = KaplanMeierFitter().fit(b["duration_days"], b["event"])
    t = np.array([5.0, 20.0, 60.0, 200.0])
    expect = kmf.survival_function_at_times(t).to_numpy()
    got = m.predict_survival_function(b.head(1), times=t).iloc[:, 0].to_numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-10)


def test_too_few_events_is_a_clear_error() -> None:
    X, _ = _cure_data(n=200)
    X["event"] = 0
    X.loc[X.index[:3], "event"] = 1
    for cls in (CoxReturnModel, WeibullCureReturnModel, XGBoostAFTReturnModel):
        with pytest.raises(ModelError, match="too few events.*got 3 events"):
            cls().fit(X)


def test_constant_feature_is_dropped_with_a_visible_warning(caplog) -> None:
    X, _ = _cure_data(n=1500)
    X["plan"] = "pro"
    X["flag"] = 1.0
    with pytest.warns(UserWarning, match="'flag' is constant"):
        m = WeibullCureReturnModel().fit(X)
    assert any("'plan' is constant" in w for w in m.fit_warnings_)
    assert "flag" not in m.feature_names_in_ and "x" in m.feature_names_in_
    assert "'flag' is constant" in caplog.text
    only_const = X[["flag", "duration_days", "event"]]
    with pytest.raises(ModelError, match="no usable feature"):
        CoxReturnModel().fit(only_const)


def test_non_converging_fit_is_an_error_not_a_garbage_model() -> None:
    X, _ = _cure_data(n=1500)
    with pytest.raises(ModelError, match="did not converge"):
        WeibullCureReturnModel(max_iter=2).fit(X)


def test_cox_falls_back_to_a_larger_penalty_and_says_so() -> None:
    X, _ = _cure_data(n=600)
    X["leak"] = X["event"] * 10.0 + np.random.default_rng(0).normal(0, 1e-3, len(X))  # separates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = CoxReturnModel(penalizer=0.0).fit(X)
    assert m.penalizer_ > 0.0
    assert any("fell back to penalizer" in w for w in m.fit_warnings_)


def test_bad_inputs_name_the_problem() -> None:
    X, _ = _cure_data(n=500)
    m = WeibullCureReturnModel().fit(X)
    with pytest.raises(ModelError, match=r"missing column\(s\) \['x'\]"):
        m.expected_return_probability(X.drop(columns=["x"]))
    with pytest.raises(ModelError, match="duration_days"):
        WeibullCureReturnModel().fit(X.drop(columns=["duration_days"]))
    bad = X.copy()
    bad.loc[bad.index[4], "duration_days"] = -1.0
    with pytest.raises(ModelError, match="finite durations"):
        WeibullCureReturnModel().fit(bad)
    with pytest.raises(ModelError, match="days already elapsed"):
        m.expected_return_probability(X, conditional_after=-5)
    with pytest.raises(ModelError, match="DataFrame"):
        WeibullCureReturnModel().fit(X.to_numpy())


def _renewal_churn_data(n: int = 6000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn only at monthly renewal dates, with hazard sigmoid(-2 + x - 1.5 [annual]) per renewal
    (the annual plan renews at day 360 only); the truth of P(churn within 90 days) is returned."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    annual = rng.random(n) < 0.3
    h = special.expit(-2.0 + x - 1.5 * annual)
    first = rng.uniform(1, 30, n)  # days to the next renewal
    k = rng.geometric(h)  # the renewal at which the customer leaves
    t = np.where(annual, first + 360.0 * (k - 1), first + 30.0 * (k - 1))
    follow = rng.uniform(60, 400, n)
    X = pd.DataFrame(
        {
            "x": x,
            "plan": np.where(annual, "year", "month"),
            "days_to_renewal": first,
            "duration_days": np.minimum(t, follow),
            "event": (t <= follow).astype(int),
        }
    )
    n90 = np.where(annual, 1, np.floor((90 - first) / 30) + 1)  # renewals within 90 days
    return X, 1 - (1 - h) ** n90


def test_discrete_hazard_model_recovers_renewal_churn() -> None:
    """Events at renewal dates have no smooth shape: the discrete-time hazard model needs none."""
    from winback_ml.models.churn_model import DiscreteHazardChurnModel

    X, p_true = _renewal_churn_data()
    m = DiscreteHazardChurnModel(n_estimators=150).fit(X)
    p = m.expected_churn_probability(X, within_days=90)
    assert np.abs(p - p_true).mean() < 0.03  # measured 0.023
    assert abs(p.mean() - p_true.mean()) < 0.01
    # drivers: x raises the risk where it is high
    c = m.predict_risk_contributions(X)
    assert set(c.columns) == {"x", "plan", "days_to_renewal"}
    assert np.corrcoef(c["x"], X["x"])[0, 1] > 0.8
    # median time: finite for the riskiest, beyond the horizon or later for the safest
    mt = m.predict_median_time(X.iloc[np.argsort(-p_true)[:50]])
    assert np.isfinite(mt).all() and (mt < 400).all()


def test_discrete_hazard_bad_inputs() -> None:
    from winback_ml.models.churn_model import DiscreteHazardChurnModel

    X, _ = _renewal_churn_data(n=500)
    with pytest.raises(ModelError, match="interval_days"):
        DiscreteHazardChurnModel(interval_days=0).fit(X)
    with pytest.raises(ModelError, match="too few events"):
        DiscreteHazardChurnModel(min_events=10**6).fit(X)
    with pytest.raises(NotFittedError):
        DiscreteHazardChurnModel().expected_churn_probability(X)


def test_renewal_boundaries_per_interval_known_values() -> None:
    from winback_ml.models.survival_estimators import _renewals_in_interval

    d = np.array([10.0, 10.0, 200.0, 200.0, 0.0, 5.0, np.nan])
    p = np.array([30.0, 30.0, 365.0, 365.0, 10.0, 30.0, 30.0])
    k = np.array([0, 2, 6, 5, 0, 0, 0])
    out = _renewals_in_interval(d, p, k, 30.0)
    # monthly, next renewal in 10 days: one boundary in [0, 30) at day 10; in [60, 90) at day 70
    np.testing.assert_allclose(out[:2], [[1, 10], [1, 10]])
    # annual, 200 days to go: the boundary falls in [180, 210), 20 days in; none in [150, 180)
    np.testing.assert_allclose(out[2], [1, 20])
    assert out[3, 0] == 0 and np.isnan(out[3, 1])
    # a 10-day period has 3 boundaries (0, 10, 20) in [0, 30); unknown schedule: NaN
    np.testing.assert_allclose(out[4], [3, 0])
    np.testing.assert_allclose(out[5], [1, 5])
    assert np.isnan(out[6]).all()


def test_discrete_hazard_renewal_features_recover_renewal_churn_better() -> None:
    """With the billing period known, each interval knows its renewal boundaries: the
    interval x days-to-renewal x period interaction need not be learnt from the data."""
    from winback_ml.models.churn_model import DiscreteHazardChurnModel

    # churn only at renewals, hazard sigmoid(-2 + x) per renewal; annual plans renew once a
    # year, anywhere in the coming year (so an interval holds its boundary or not)
    rng = np.random.default_rng(1)
    n = 8000
    x = rng.normal(size=n)
    annual = rng.random(n) < 0.4
    period = np.where(annual, 365.2425, 30.436875)
    h = special.expit(-2.0 + x)
    first = rng.uniform(0, 1, n) * period
    t = first + period * (rng.geometric(h) - 1)
    follow = rng.uniform(60, 400, n)
    X = pd.DataFrame(
        {
            "x": x,
            "billing_interval": np.where(annual, "year", "month"),
            "days_to_renewal": first,
            "duration_days": np.minimum(t, follow),
            "event": (t <= follow).astype(int),
        }
    )
    n90 = np.floor(np.maximum(90 - first, 0) / period) + (first <= 90)
    p_true = 1 - (1 - h) ** n90
    on = DiscreteHazardChurnModel(n_estimators=150).fit(X)
    off = DiscreteHazardChurnModel(n_estimators=150, renewal_col=None).fit(X)
    assert on.renewal_features_ and not off.renewal_features_
    mae_on = np.abs(on.expected_churn_probability(X, within_days=90) - p_true).mean()
    mae_off = np.abs(off.expected_churn_probability(X, within_days=90) - p_true).mean()
    print(f"renewal features: MAE {mae_on:.4f} (on) against {mae_off:.4f} (off)")
    assert mae_on < 0.02 and mae_on < 0.8 * mae_off  # measured 0.0159 against 0.0239
    # the per-interval columns are not features of the customer: no driver is named after them
    c = on.predict_risk_contributions(X)
    assert set(c.columns) == {"x", "billing_interval", "days_to_renewal"}
    # a frame without the schedule still scores (unknown schedule), close to the truth on average
    p_nan = on.expected_churn_probability(X.assign(days_to_renewal=np.nan), within_days=90)
    assert np.isfinite(p_nan).all()


def test_discrete_hazard_median_time_closed_form_matches_the_curve() -> None:
    """The closed-form median (log S piecewise linear in t) sits where the curve crosses 0.5,
    and the grid search it replaces lands on or just after it."""
    from winback_ml.models.churn_model import DiscreteHazardChurnModel

    X, _ = _renewal_churn_data(n=3000)
    m = DiscreteHazardChurnModel(n_estimators=80).fit(X)
    t = m.predict_median_time(X)
    fin = np.isfinite(t)
    assert fin.mean() > 0.5
    s = m._survival_at(X[fin], t[fin][:, None])[:, 0]
    np.testing.assert_allclose(s, 0.5, atol=1e-6)
    # conditional on 40 days without churn: S(t) = 0.5 S(40)
    d = np.full(len(X), 40.0)
    tc = m._time_at_survival(X, d, 0.5)
    ok = np.isfinite(tc)
    ratio = (
        m._survival_at(X[ok], tc[ok][:, None])[:, 0] / m._survival_at(X[ok], d[ok][:, None])[:, 0]
    )
    np.testing.assert_allclose(ratio, 0.5, atol=1e-6)
    assert (tc[ok] >= 40.0).all()
    m._time_at_survival = lambda *a, **k: None  # the grid search
    g = m.predict_median_time(X)
    assert (np.isfinite(g) == fin).all()
    assert (g[fin] >= t[fin] - 1e-6).all() and np.median(g[fin] - t[fin]) < 3.0
