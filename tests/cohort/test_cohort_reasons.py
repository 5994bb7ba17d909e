"""Reasons: point-in-time features, the classifier, inference, and quality against the truth."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from cohort_tiny import AS_OF
from sklearn.base import clone

from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.cohort.lapsed import build_lapsed_cohort
from winback_ml.cohort.reasons import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    REASONS,
    ReasonClassifier,
    evaluate_reasons,
    infer_reasons,
    reason_features,
    reason_training_set,
)
from winback_ml.data.loader import load_data
from winback_ml.exceptions import ModelError, NotFittedError


def _usage(rows):
    return pd.DataFrame(
        rows, columns=["customer_id", "week_start", "sessions", "active_minutes", "features_used"]
    )


def _tickets(rows):
    return pd.DataFrame(
        rows, columns=["ticket_id", "customer_id", "created_at", "category", "is_complaint", "csat"]
    )


# ------------------------------------------------------------------ features on tiny data


def test_features_tiny_known_values(tiny):
    weeks = pd.date_range("2024-06-03", "2025-06-23", freq="W-MON")
    # c1 (ends 2025-05-01): 6 sessions a week until 2025-03-03, then 0
    tiny["usage"] = _usage(
        [("c1", w, 6 if w < pd.Timestamp("2025-03-03") else 0, 60.0, 3) for w in weeks]
    )
    tiny["support_tickets"] = _tickets(
        [
            ("t1", "c1", pd.Timestamp("2025-04-01"), "complaint", True, 2),
            ("t2", "c1", pd.Timestamp("2025-04-10"), "feature_request", False, None),
            ("t3", "c1", pd.Timestamp("2024-12-01"), "how_to", False, 4),
        ]
    )
    f = reason_features(tiny, as_of=AS_OF).set_index("lapse_id")
    r = f.loc["c1#1"]
    assert r["usage_available"] == 1.0
    assert r["sessions_recent"] == 0.0  # the 8 weeks before 2025-05-01
    assert r["sessions_prior"] == 6.0
    assert r["sessions_trend"] == pytest.approx(-np.log(7.0))
    assert r["weeks_since_active"] == pytest.approx(8 + 3 / 7)  # last active week ended 03-03
    assert r["complaints_90d"] == 1 and r["feature_requests_90d"] == 1
    assert r["howto_tickets_90d"] == 0  # 151 days before the end
    assert r["csat_mean"] == 3.0  # (2 + 4) / 2
    assert r["cancel_comment"] == "way too pricey for us"
    assert r["has_cancel_request"] == 1.0
    # c2: the involuntary lapse
    assert f.loc["c2#1", "unrecovered_payment_failure"] == 1.0
    assert f.loc["c2#1", "end_detail"] == "dunning_exhausted"
    # an event-only lapse never gets the row's comment
    assert f.loc["c3#1", "cancel_comment"] == ""
    assert f.loc["c3#2", "cancel_comment"] == "no gantt charts"
    assert set(NUMERIC_FEATURES + CATEGORICAL_FEATURES) <= set(f.columns)


def test_features_ignore_rows_after_the_lapse(tiny):
    """Usage and tickets after a lapse's end (but before as_of) do not change its features."""
    weeks = pd.date_range("2024-11-04", "2025-04-21", freq="W-MON")
    tiny["usage"] = _usage([("c1", w, 3, 30.0, 2) for w in weeks])
    tiny["support_tickets"] = _tickets([("t1", "c1", pd.Timestamp("2025-04-01"), "bug", False, 3)])
    before = reason_features(tiny, as_of=AS_OF)
    tiny["usage"] = pd.concat(
        [tiny["usage"], _usage([("c1", pd.Timestamp("2025-05-05"), 50, 500.0, 9)])]
    )
    tiny["support_tickets"] = pd.concat(
        [
            tiny["support_tickets"],
            _tickets([("t9", "c1", pd.Timestamp("2025-05-02"), "complaint", True, 1)]),
        ]
    )
    after = reason_features(tiny, as_of=AS_OF)
    pd.testing.assert_frame_equal(before, after)


def test_features_without_optional_tables_fall_back(tiny):
    f = reason_features(tiny, as_of=AS_OF)
    assert f.attrs["missing_signals"] == ["usage", "support_tickets", "interviews"]
    assert (f["usage_available"] == 0).all() and (f["tickets_available"] == 0).all()
    assert not f[NUMERIC_FEATURES].isna().any().any()


def test_world_features_do_not_depend_on_as_of(world_data, world):
    """A lapse's features are the same seen from a later as_of: nothing after its end leaks in."""
    t1 = world.end - pd.Timedelta(days=200)
    f1 = reason_features(world_data, as_of=t1).set_index("lapse_id")
    f2 = reason_features(world_data, as_of=world.end).set_index("lapse_id")
    common = f1.index.intersection(f2.index)
    assert len(common) > 500
    cols = NUMERIC_FEATURES + CATEGORICAL_FEATURES + ["cancel_comment", "stated_reason"]
    pd.testing.assert_frame_equal(f1.loc[common, cols], f2.loc[common, cols])


# ------------------------------------------------------------------ classifier contract


@pytest.fixture(scope="module")
def world_features(world_data, world):
    return reason_features(world_data, as_of=world.end)


def test_classifier_contract(world_features):
    X, y = reason_training_set(world_features)
    clf = ReasonClassifier(C=0.5)
    assert clf.get_params()["C"] == 0.5
    with pytest.raises(NotFittedError, match="not fitted"):
        clf.predict(X)
    assert clf.fit(X, y) is clf
    p = clf.predict_proba(X.head(50))
    assert p.shape == (50, len(clf.classes_))
    assert np.allclose(p.sum(axis=1), 1.0)
    assert set(clf.predict(X.head(50))) <= set(REASONS)
    assert clf.text_used_
    clone(clf).fit(X.head(400), y.head(400))
    back = pickle.loads(pickle.dumps(clf))
    assert np.allclose(back.predict_proba(X.head(20)), clf.predict_proba(X.head(20)))


def test_classifier_never_keeps_a_rare_comment(world_features):
    X, y = reason_training_set(world_features)
    X = X.copy()
    X.iloc[0, X.columns.get_loc("cancel_comment")] = "call me on zqxjohnsmith line"
    clf = ReasonClassifier().fit(X, y)
    blob = pickle.dumps(clf)
    assert b"zqxjohnsmith" not in blob


@pytest.mark.parametrize(
    "labels, match",
    [(["unknown", "too_expensive"], "canonical reasons"), (["too_expensive"] * 2, "at least 2")],
)
def test_classifier_refuses_bad_labels(world_features, labels, match):
    X = world_features.head(2)
    with pytest.raises(ModelError, match=match):
        ReasonClassifier().fit(X, labels)


def test_classifier_refuses_non_frames():
    with pytest.raises(ModelError, match="must be a DataFrame"):
        ReasonClassifier().fit(np.zeros((3, 2)), ["a", "b", "c"])


# ------------------------------------------------------------------ quality against the truth


def test_held_out_accuracy_and_confusion(world_features):
    ev = evaluate_reasons(world_features)
    assert ev.n_test > 200
    assert int(ev.confusion.to_numpy().sum()) == ev.n_test
    assert ev.accuracy == pytest.approx(np.trace(ev.confusion.to_numpy()) / ev.n_test)
    # measured 0.734 on seed 5 (baseline 0.24): well above guessing the majority
    assert ev.accuracy > ev.baseline_accuracy + 0.2
    assert ev.per_class.loc["payment_failed", "recall"] > 0.95


def test_inferred_reasons_match_the_truth(world_features, world):
    """Accuracy on lapses whose reason the world knows but the customer did not state."""
    X, y = reason_training_set(world_features)
    clf = ReasonClassifier().fit(X, y)
    unknown = world_features[world_features["stated_reason"].isna()]
    truth = world.truth.episodes.set_index("subscription_id")["true_reason"]
    eps = build_lapse_episodes(world.tables, world.end)
    true = eps.loc[unknown.index, "subscription_id"].map(truth).to_numpy()
    acc = float(np.mean(clf.predict(unknown) == true))
    majority = pd.Series(true).value_counts(normalize=True).iloc[0]
    # measured 0.691 on this small world (0.670 before the request traces and the label-noise
    # EM; 0.700 with the traces alone) (4k customers, seed 5: 927 unstated lapses, about
    # 1,600 stated ones to learn from); the 70 % goal is checked on a 20k world below
    assert acc > 0.62
    assert acc > majority + 0.35


@pytest.mark.slow
def test_inferred_reasons_reach_the_goal_on_a_larger_world():
    """Issue goal: at least 70 % top-1 on lapses whose reason the world knows but nobody stated."""
    from winback_ml.data.synthetic import make_world

    w = make_world(20000, seed=1)
    d = load_data(w.tables)
    eps = build_lapse_episodes(d, w.end)
    f = reason_features(d, eps, w.end)
    X, y = reason_training_set(f)
    clf = ReasonClassifier().fit(X, y)
    unknown = f[f["stated_reason"].isna()]
    truth = w.truth.episodes.set_index("subscription_id")["true_reason"]
    true = eps.loc[unknown.index, "subscription_id"].map(truth).to_numpy()
    pred = clf.predict(unknown)
    acc = float(np.mean(pred == true))
    # measured 0.779 (seed 1; 4,569 unstated lapses); 0.763 and 0.770 on seeds 2 and 3 (0.758,
    # 0.744, 0.756 before the request-trace features and the label-noise EM)
    assert len(true) > 4000
    assert acc >= 0.70
    # the traces do the work: each traced reason is recognised most of the time
    recall = pd.Series(pred == true).groupby(true).mean()
    for r in ("missing_features", "customer_service", "too_complex", "switched_service"):
        assert recall[r] > 0.6, (r, recall[r])


# ------------------------------------------------------------------ infer_reasons


def test_infer_reasons_on_the_cohort(world_data, world):
    cohort = build_lapsed_cohort(world_data, world.end)
    r = infer_reasons(world_data, cohort, world.end)
    assert list(r["customer_id"]) == list(cohort["customer_id"])
    assert set(r["reason_source"]) == {"stated", "inferred"}
    stated = r["reason_source"] == "stated"
    assert (r.loc[stated, "cancel_reason"] == cohort.loc[stated, "stated_reason"]).all()
    assert (r.loc[stated, "reason_proba"] == 1.0).all()
    inf = r[~stated]
    assert inf["cancel_reason"].isin(REASONS).all()
    assert ((inf["reason_proba"] > 0) & (inf["reason_proba"] <= 1)).all()
    pcols = [f"p_{x}" for x in REASONS]
    assert np.allclose(r[pcols].sum(axis=1), 1.0)
    assert not {"cancel_comment", "email", "phone"} & set(r.columns)
    assert r.attrs["n_train"] > 500 and r.attrs["missing_signals"] == []


def test_payment_failures_are_never_inferred_away(tiny):
    """c9 states nothing; an unrecovered failure before its end makes it payment_failed."""
    ev = tiny["events"]
    fail = ev.iloc[[0]].copy()
    fail["event_id"], fail["customer_id"], fail["subscription_id"] = "f1", "c9", "s11"
    fail["event_type"], fail["occurred_at"] = "payment_failed", pd.Timestamp("2025-05-25")
    tiny["events"] = pd.concat([ev, fail], ignore_index=True)
    cohort = build_lapsed_cohort(tiny, AS_OF)
    r = infer_reasons(tiny, cohort, AS_OF, min_train=1).set_index("customer_id")
    assert r.loc["c9", "cancel_reason"] == "payment_failed"
    assert r.loc["c9", "reason_source"] == "inferred"
    assert r.loc["c9", "reason_rule"] == "unrecovered_payment_failure"
    assert r.loc["c1", "cancel_reason"] == "too_expensive"  # stated: kept


def test_too_few_stated_reasons_stay_unknown(tiny):
    cohort = build_lapsed_cohort(tiny, AS_OF)
    r = infer_reasons(tiny, cohort, AS_OF).set_index("customer_id")  # 4 stated < min_train
    assert r.loc["c9", "cancel_reason"] == "unknown" and r.loc["c9", "reason_rule"] == "no_model"
    assert r.attrs["classifier"] is None


def test_missing_tables_still_infer(world):
    tables = {k: v for k, v in world.tables.items() if k not in ("usage", "support_tickets")}
    data = load_data(tables)
    cohort = build_lapsed_cohort(data, world.end)
    r = infer_reasons(data, cohort, world.end)
    assert r.attrs["missing_signals"] == ["usage", "support_tickets"]
    assert r["cancel_reason"].isin(REASONS).all()


def test_infer_refuses_a_foreign_cohort(tiny, world_data, world):
    cohort = build_lapsed_cohort(tiny, AS_OF)
    with pytest.raises(ModelError, match="no features"):
        infer_reasons(world_data, cohort, world.end)


def test_episodes_from_a_later_as_of_are_refused(tiny):
    from winback_ml.exceptions import LeakageError

    late = build_lapse_episodes(tiny, AS_OF)
    with pytest.raises(LeakageError, match="same as_of"):
        reason_features(tiny, late, as_of="2025-05-15")


def test_time_ordered_evaluation(world_features):
    ev = evaluate_reasons(world_features, split="time", test_size=0.3)
    X, _ = reason_training_set(world_features)
    assert ev.n_test == len(X) - int(round(len(X) * 0.7))
    assert ev.accuracy > ev.baseline_accuracy + 0.15
    with pytest.raises(ModelError, match="split must be"):
        evaluate_reasons(world_features, split="shuffled")
    with pytest.raises(ModelError, match="test_size"):
        evaluate_reasons(world_features, test_size=1.5)
