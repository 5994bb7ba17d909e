"""`winback score` end to end on a small synthetic world: files, contract columns, consent,
no PII, no future data, fallbacks stated, models registered."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from winback_ml.config import load_config
from winback_ml.data.contract import TABLES
from winback_ml.data.loader import cut_as_of
from winback_ml.exceptions import ConfigError
from winback_ml.offers.optimizer import TARGET_COLUMNS
from winback_ml.scoring import CHURN_RISK_COLUMNS, build_plan, score

AS_OF = "2025-10-31"


@pytest.fixture(scope="module")
def world():
    from winback_ml.data.synthetic import make_world

    return make_world(2500, seed=7)


@pytest.fixture(scope="module")
def scored(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("score")
    res = score(world.tables, AS_OF, out, None, log_models=True)
    return res, out


def test_files_and_contract_columns(scored):
    res, out = scored
    for name in ("targets.csv", "churn_risk.csv", "summary.json", "summary.md"):
        assert (out / name).exists()
    t = pd.read_csv(out / "targets.csv")
    assert list(t.columns) == TARGET_COLUMNS
    assert t["rank"].tolist() == list(range(1, len(t) + 1))
    assert t["customer_id"].is_unique and len(t) > 50
    c = t[t["contact"]]
    assert len(c) > 0
    assert np.all(np.diff(c["expected_incremental_profit"].to_numpy()) <= 1e-9)
    assert (c["expected_incremental_profit"] > 0).all()
    assert (t.loc[~t["contact"], "expected_incremental_profit"] == 0).all()
    assert t["reason_source"].isin(["stated", "inferred"]).all()
    assert t["segment"].isin(["hot", "warm", "lost", "misclassified"]).all()
    assert ((t["p_return_base"] >= 0) & (t["p_return_offer"] <= 1)).all()
    cr = pd.read_csv(out / "churn_risk.csv")
    assert list(cr.columns) == CHURN_RISK_COLUMNS
    assert len(cr) > 100 and cr["p_churn_90d"].between(0, 1).all()
    s = json.loads((out / "summary.json").read_text())
    assert {"playbook", "blanket_25pct_3m"} <= set(s["comparison"])
    assert s["plan"]["contacted"] == int(t["contact"].sum())
    assert any("p_return_base" in n for n in s["notes"])


def test_models_registered_in_mlflow(scored):
    res, _ = scored
    mv = res.targets["model_version"].iloc[0]
    assert "return=winback-return/" in mv and "response=winback-offer-response/" in mv, mv
    assert res.churn_risk["model_version"].iloc[0].startswith("churn=winback-churn/")


def test_channels_only_with_consent(world, scored):
    res, _ = scored
    t = res.targets.set_index("customer_id")
    cust = world.tables["customers"].set_index("customer_id")
    c = t[t["contact"]]
    email_ok = cust.loc[c.index, "email_opt_in"] & cust.loc[c.index, "email"].notna()
    sms_ok = cust.loc[c.index, "sms_opt_in"] & cust.loc[c.index, "phone"].notna()
    assert email_ok[c["channel"].isin(["email", "multi"])].all()
    assert sms_ok[c["channel"].isin(["sms", "multi"])].all()


def test_no_pii_in_outputs(world, scored):
    _, out = scored
    text = "".join(
        (out / n).read_text()
        for n in ("targets.csv", "churn_risk.csv", "summary.json", "summary.md")
    )
    cust = world.tables["customers"]
    for col in ("email", "phone"):
        for v in cust[col].dropna().head(200):
            assert v not in text


def test_plan_value_is_positive_and_below_oracle(world, scored):
    res, _ = scored
    cfg = load_config(None)
    T = world.truth
    ids = res.targets["customer_id"].to_numpy()
    v = T.policy_value(res.targets, AS_OF, cfg)
    assert v > 0
    oracle = T.policy_value(T.oracle_policy(ids, AS_OF, cfg), AS_OF, cfg)
    assert v <= oracle + 1e-6


@pytest.mark.slow
def test_no_future_data(world):
    """The plan as of a date is the same whether or not later rows are in the data."""
    cut = cut_as_of(world.tables, pd.Timestamp(AS_OF))
    a = build_plan(world.tables, AS_OF, None).targets
    b = build_plan(cut, AS_OF, None).targets
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_without_campaigns_nobody_is_contacted(world, tmp_path):
    tables = {k: v for k, v in world.tables.items() if not k.startswith("campaign")}
    res = score(tables, AS_OF, tmp_path, None, log_models=False, with_churn=False)
    assert not res.targets["contact"].any()
    assert any("no campaign history" in n for n in res.summary["notes"])
    assert set(res.targets.columns) == set(TARGET_COLUMNS)


def test_inconsistent_config_is_refused(world, tmp_path):
    with pytest.raises(ConfigError, match="margin"):
        score(world.tables, AS_OF, tmp_path, {"margin": 1.5}, log_models=False)
    with pytest.raises(ConfigError, match="contact_cost"):
        score(world.tables, AS_OF, tmp_path, {"contact_cost": {"email": -1}}, log_models=False)
    assert not (tmp_path / "targets.csv").exists()  # nothing half-written


def test_targets_have_no_pii_columns():
    pii = {c.name for t in TABLES.values() for c in t.columns if c.pii}
    assert not pii & set(TARGET_COLUMNS) and not pii & set(CHURN_RISK_COLUMNS)


def test_run_date_with_an_offset_is_utc_and_a_bad_one_is_refused():
    """An as_of with a UTC offset used to crash (tz-aware vs naive frames); a bad one
    raised a pandas parse error the CLI did not catch."""
    from winback_ml.data.synthetic import make_world

    w = make_world(400, seed=3)
    a = build_plan(w.tables, "2025-10-31T02:00:00+02:00", None)
    b = build_plan(w.tables, "2025-10-31", None)
    assert a.as_of == pd.Timestamp("2025-10-31") and a.as_of.tzinfo is None
    pd.testing.assert_frame_equal(a.targets, b.targets)
    for bad in ("not-a-date", ""):
        with pytest.raises(ConfigError, match="as_of .* is not a date"):
            build_plan(w.tables, bad, None)


def test_registered_response_model_reproduces_the_targets(world):
    """The MLflow pyfunc of the offer-response model, fed the targets' (recalibrated)
    p_return_base and the chosen offers, gives back the targets' p_return_offer."""
    from winback_ml.scoring import _ResponsePyfunc

    plan = build_plan(world.tables, AS_OF, None)
    t = plan.targets.set_index("customer_id").loc[plan.cohort["customer_id"]].reset_index()
    c = t["contact"].to_numpy(bool)
    assert c.sum() > 20
    X = plan.features[c].reset_index(drop=True).copy()
    for k in ("offer_type", "discount_pct", "discount_months", "channel", "p_return_base"):
        X[k] = t.loc[c, k].to_numpy()
    pf = _ResponsePyfunc()
    pf.model = plan.models["response"]
    np.testing.assert_allclose(pf.predict(None, X), t.loc[c, "p_return_offer"], atol=1e-9)
    # and the base is the control-arm recalibration of the return model's p0, stated in notes
    assert any("recalibrated on the campaigns' control arms" in n for n in plan.notes)


def test_past_assignments_are_scored_without_interviews_answered_later():
    """p0 of a past campaign assignment (the response model's offset, recalibrated on the
    control arms) reads the lapse's interview only when it was answered by the assignment.

    Regression: with ``--return-model weibull_cure`` the training frame's interview answers
    (kept up to the return or the run date) were read for control-arm assignments made before
    the interview, so their p0 used answers from after the assignment."""
    from winback_ml.scoring import _BaseReturn

    class Stub:
        def expected_return_probability(self, X, within_days):
            self.X = X.copy()
            return np.where(X["offer_interest"] == "discount", 0.5, 0.1)

    feats = pd.DataFrame(
        {
            "entry_days": [40.0, 10.0, 0.0],
            "offer_interest": ["discount", "discount", "none"],
            "leave_strength": [5.0, 2.0, np.nan],
        },
        index=pd.Index(["l1", "l2", "l3"], name="lapse_id"),
    )
    stub = Stub()
    base = _BaseReturn(stub, "weibull_cure", ["offer_interest", "leave_strength"])
    base.features_ = feats
    rows = pd.DataFrame(
        {"lapse_id": ["l1", "l2", "l3"], "days_lapsed": 20.0, "cancel_reason": "unused"}
    )
    # assignments 20 days after the lapse: l1's interview (day 40) was not known yet
    assert base.predict(rows, rows, 30, at_days_lapsed=True).tolist() == [0.1, 0.5, 0.1]
    assert np.isnan(stub.X["leave_strength"][0]) and stub.X["leave_strength"][1] == 2.0
    # scored as of the run date (the cohort): every answer given by then is read
    assert base.predict(rows, rows, 30).tolist() == [0.5, 0.5, 0.1]
    assert stub.X["leave_strength"][0] == 5.0


def test_holdout_brier_ignores_rows_the_run_date_cut_short() -> None:
    """Rows that could not be followed for the whole horizon would enter only with an event."""
    from winback_ml.scoring import holdout_brier

    as_of = pd.Timestamp("2025-06-30")
    old = pd.DataFrame(  # followed long enough: half churn within 90 days
        {
            "customer_id": [f"o{i}" for i in range(40)],
            "at": as_of - pd.Timedelta(days=200),
            "duration_days": [30.0 if i % 2 else 200.0 for i in range(40)],
            "event": [1 if i % 2 else 0 for i in range(40)],
        }
    )
    recent = pd.DataFrame(  # 30 days before the run date: 5 early churns, 15 censored at 30 days
        {
            "customer_id": [f"r{i}" for i in range(20)],
            "at": as_of - pd.Timedelta(days=30),
            "duration_days": [10.0] * 5 + [30.0] * 15,
            "event": [1] * 5 + [0] * 15,
        }
    )
    train = pd.concat([old, recent], ignore_index=True)

    class Never:
        def predict_event_probability(self, X, within_days, conditional_after=0.0):
            return np.zeros(len(X))

    # p = 0 everywhere: the Brier score is the share of churns among the rows counted
    fit = lambda tr: Never()  # noqa: E731
    assert holdout_brier(fit, train, 90, "customer_id", share=1.0, as_of=as_of) == 0.5
    # without the run date the 5 early churns of the recent rows count, the 15 others do not
    assert holdout_brier(fit, train, 90, "customer_id", share=1.0) == pytest.approx(25 / 45)
