"""Reason probabilities for the offer-response model: stated reasons weighed against behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.exceptions import ModelError
from winback_ml.models.uplift_offer import REASONS, offer_features, reason_posterior


class _Clf:
    """A stand-in classifier with fixed probabilities (only two classes it knows)."""

    classes_ = np.array(["too_expensive", "unused"], dtype=object)

    def __init__(self, p_expensive: np.ndarray) -> None:
        self.p = np.asarray(p_expensive, float)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.p[X["_row"].to_numpy()]
        return np.column_stack([p, 1 - p])


def _reasons(stated: list[str], rule: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({"cancel_reason": stated, "reason_rule": rule})
    for r in REASONS:
        out[f"p_{r}"] = [float(s == r) for s in stated]
    return out


def test_stated_reason_wins_unless_behaviour_is_overwhelming():
    rs = _reasons(
        ["unused", "unused", "other", "payment_failed", "too_expensive"],
        ["stated", "stated", "stated", "stated", "classifier"],
    )
    # behaviour: row 0 mildly says too_expensive, row 1 overwhelmingly, row 2 'other' stated
    clf = _Clf([0.6, 0.9999, 0.7, 0.99, 0.2])
    feats = pd.DataFrame({"_row": range(5)})
    post = reason_posterior(rs, clf, feats, misreport=0.1)
    # row 0: 0.4 * 0.9 vs 0.6 * 0.01 -> unused keeps ~98 %
    assert post.loc[0, "p_unused"] == pytest.approx(0.36 / (0.36 + 0.006))
    # row 1: behaviour 9999:1 for too_expensive beats the 90:1 of the stated answer
    assert post.loc[1, "p_too_expensive"] > 0.99
    # row 2: a stated 'other' carries no reason: the classifier's view
    assert post.loc[2, "p_too_expensive"] == pytest.approx(0.7)
    # payment_failed is recorded by billing, and inferred rows stay as they are
    assert post.loc[3, "p_payment_failed"] == 1.0
    assert post.loc[4, "p_too_expensive"] == 1.0
    P = post[[f"p_{r}" for r in REASONS]].to_numpy()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    # no classifier, or misreport 0: unchanged
    pd.testing.assert_frame_equal(reason_posterior(rs, None, feats), rs)
    pd.testing.assert_frame_equal(reason_posterior(rs, clf, feats, misreport=0.0), rs)
    with pytest.raises(ModelError, match="misreport"):
        reason_posterior(rs, clf, feats, misreport=1.0)


def test_behaviour_covariates_and_missing_signals():
    frame = pd.DataFrame(
        {
            "days_lapsed": [10, 20, 30],
            "can_email": [True, False, True],
            "can_sms": [False, False, True],
            "source": ["stripe", "app_store", "stripe"],
            "mrr": [9.0, 29.0, 99.0],
            "billing_interval": ["month", "month", "year"],
            "plan_tier": ["basic", "pro", None],
            "cancel_reason": ["unused", "too_expensive", "other"],
        }
    )
    beh = pd.DataFrame(
        {
            "usage_available": [1.0, 0.0, 1.0],
            "minutes_per_session": [12.0, 30.0, 0.0],
            "tickets_available": [1.0, 1.0, 0.0],
            "feature_requests_per_month": [0.25, 0.0, 1.0],
            "min_paid_ratio": [1.0, 0.5, np.nan],
        }
    )
    f = offer_features(frame, behaviour=beh)
    assert f["basic_tier"].tolist()[:2] == [1.0, 0.0] and np.isnan(f["basic_tier"][2])
    assert f["log_minutes_per_session"][0] == pytest.approx(np.log(12.0))
    # no usage table for row 1, no session at all for row 2: unknown, not a number
    assert np.isnan(f["log_minutes_per_session"][1]) and np.isnan(f["log_minutes_per_session"][2])
    assert f["feature_requests"][0] == pytest.approx(np.log1p(3.0))
    assert np.isnan(f["feature_requests"][2])  # no tickets table
    assert f["discounted_before"].tolist()[:2] == [0.0, 1.0]
    # without behaviour rows the covariates are unknown (the model reads the average)
    g = offer_features(frame)
    assert (
        g[["log_minutes_per_session", "feature_requests", "discounted_before"]].isna().all().all()
    )


def test_a_stated_reason_the_classifier_never_saw_is_kept():
    """A classifier fitted before anyone stated a reason (an early quarterly refit) gives it
    probability 0; that is no evidence against the customer's own answer, so it is kept.

    Regression: the posterior was P_clf * likelihood, so a stated 'contract_ended' the
    quarter's classifier had never seen got probability 0 and its mass went to other reasons."""
    rs = _reasons(["contract_ended", "unused"], ["stated", "stated"])
    clf = _Clf([0.3, 0.3])  # knows only too_expensive and unused
    feats = pd.DataFrame({"_row": range(2)})
    post = reason_posterior(rs, clf, feats, misreport=0.1)
    assert post.loc[0, "p_contract_ended"] == 1.0
    assert post.loc[0, [f"p_{r}" for r in REASONS if r != "contract_ended"]].sum() == 0.0
    # a reason the classifier knows is still weighed against the behaviour
    assert post.loc[1, "p_unused"] == pytest.approx(0.7 * 0.9 / (0.7 * 0.9 + 0.3 * 0.01))
    P = post[[f"p_{r}" for r in REASONS]].to_numpy()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
