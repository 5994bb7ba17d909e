"""The campaign evaluation reproduces the Hillstrom e-mail test's known arm effects."""

from __future__ import annotations

import pytest

from winback_ml.exceptions import DataContractError
from winback_ml.models.minethatdata import HILLSTROM_CONTROL, hillstrom_features, load_hillstrom
from winback_ml.models.uplift import DRLearnerUpliftModel
from winback_ml.models.uplift_campaigns import evaluate_arms, qini_by_arm

KNOWN = {  # (arm, outcome): rate on the full file
    ("Mens E-Mail", "visit"): 0.1828,
    ("Womens E-Mail", "visit"): 0.1514,
    ("Mens E-Mail", "conversion"): 0.0125,
    ("Womens E-Mail", "conversion"): 0.0088,
    ("Mens E-Mail", "spend"): 1.42,
    ("Womens E-Mail", "spend"): 1.08,
}
CONTROL = {"visit": 0.1062, "conversion": 0.0057, "spend": 0.65}


@pytest.fixture(scope="module")
def hill(hillstrom_path):
    return load_hillstrom(hillstrom_path)


def test_adapter_shape(hill):
    assert len(hill) == 64000
    assert set(hill["arm_id"]) == {"Mens E-Mail", "Womens E-Mail", "No E-Mail"}
    assert hill.loc[hill["is_control"], "arm_id"].unique().tolist() == [HILLSTROM_CONTROL]
    X = hillstrom_features(hill)
    assert len(X) == len(hill) and X.notna().all().all()


@pytest.mark.parametrize("outcome", ["visit", "conversion", "spend"])
def test_arm_effects_against_no_email(hill, outcome):
    t = evaluate_arms(hill, outcome=outcome).set_index("arm_id")
    assert set(t.index) == {"Mens E-Mail", "Womens E-Mail"}
    tol = 0.01 if outcome == "spend" else 0.0005
    for arm in t.index:
        assert t.loc[arm, "rate"] == pytest.approx(KNOWN[(arm, outcome)], abs=tol)
        assert t.loc[arm, "rate_control"] == pytest.approx(CONTROL[outcome], abs=tol)
        # Both e-mails raise every outcome: interval above 0, and it contains the point estimate.
        assert 0 < t.loc[arm, "uplift_ci_low"] < t.loc[arm, "uplift"] < t.loc[arm, "uplift_ci_high"]
        assert t.loc[arm, "reliable"]
    # Mens beats Womens on visits (the dataset's headline finding).
    if outcome == "visit":
        assert t.loc["Mens E-Mail", "uplift_ci_low"] > t.loc["Womens E-Mail", "uplift_ci_high"]
    # Contact cost is unknown in this dataset: the cost per reactivation says NaN, never a number.
    assert t["cost_per_incremental_reactivation"].isna().all()


def test_qini_curves_per_arm(hill):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    sub = hill.sample(n=24000, random_state=0).reset_index(drop=True)
    light = dict(
        max_iter=40, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=200, random_state=0
    )
    learner = DRLearnerUpliftModel(
        base_estimator=HistGradientBoostingClassifier(**light),
        effect_estimator=HistGradientBoostingRegressor(**light),
        random_state=0,
    )
    curves, scores = qini_by_arm(sub, hillstrom_features(sub), outcome="visit", learner=learner)
    assert set(curves) == {"Mens E-Mail", "Womens E-Mail"}
    for c in curves.values():
        assert c["fraction"].iloc[0] == 0 and c["fraction"].iloc[-1] == 1
    s = scores.set_index("arm_id")
    # The test-half effect is the arm effect; the Womens e-mail's effect is heterogeneous
    # (it works on customers who bought womenswear), so its ranking beats random.
    assert s.loc["Mens E-Mail", "ate_test"] == pytest.approx(0.0766, abs=0.015)
    assert s.loc["Womens E-Mail", "auuc"] > 0


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(DataContractError, match="does not exist"):
        load_hillstrom(tmp_path / "nope.csv")
