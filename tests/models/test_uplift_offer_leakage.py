"""No future data in the offer-response training rows: reasons as known at each assignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.cohort.reasons import ReasonClassifier, reason_features, reason_training_set
from winback_ml.data.loader import load_data
from winback_ml.models.uplift_offer import REASONS, offer_training_frame

PCOLS = [f"p_{r}" for r in REASONS]


@pytest.fixture(scope="module")
def world():
    from winback_ml.data.synthetic import make_world

    return make_world(3000, seed=21)


def _frame(world, as_of, **kw):
    cd = load_data(world.tables, as_of=as_of)
    return offer_training_frame(cd, as_of, 30, **kw).set_index(["campaign_id", "customer_id"])


def test_training_rows_do_not_depend_on_the_run_date(world):
    """An assignment's reason (stated, or inferred with what was known then) is the same
    whether the model is trained a year later or right after the assignment's window.

    Before the fix the reason classifier was fitted on every stated lapse up to the run
    date, so the probabilities of an old assignment moved as later lapses came in."""
    early = world.end - pd.Timedelta(days=365)
    a = _frame(world, early)
    b = _frame(world, world.end)
    common = a.index.intersection(b.index)
    assert len(common) > 300
    inferred = a.loc[common, "reason_source"] == "inferred"
    assert inferred.sum() > 30  # the check has teeth: many reasons are inferred
    np.testing.assert_allclose(
        a.loc[common, PCOLS].to_numpy(float), b.loc[common, PCOLS].to_numpy(float), atol=1e-9
    )
    assert (a.loc[common, "cancel_reason"] == b.loc[common, "cancel_reason"]).all()
    # every classifier was trained on lapses that ended before its cut-off, at or before
    # the assignment
    assert (b["reason_cutoff"] <= b["assigned_at"]).all()


def test_a_classifier_fitted_on_later_data_is_not_used_as_is(world):
    """A classifier fitted as of the run date (as scoring has one) is only a template."""
    cd = load_data(world.tables, as_of=world.end)
    feats = reason_features(cd, None, world.end)
    X, y = reason_training_set(feats)
    fitted = ReasonClassifier().fit(X, y)
    with_fitted = offer_training_frame(cd, world.end, 30, reason_classifier=fitted)
    plain = offer_training_frame(cd, world.end, 30)
    np.testing.assert_allclose(
        with_fitted[PCOLS].to_numpy(float), plain[PCOLS].to_numpy(float), atol=1e-9
    )
    # and it differs from what the run date's classifier says about old lapses
    old = plain["reason_source"].eq("inferred").to_numpy()
    lapses = feats.set_index("lapse_id").loc[plain.loc[old, "lapse_id"].to_numpy()]
    later = fitted.predict_proba(lapses)
    col = {r: i for i, r in enumerate(fitted.classes_)}
    now = plain.loc[old, [f"p_{r}" for r in fitted.classes_]].to_numpy(float)
    assert np.abs(later[:, [col[r] for r in fitted.classes_]] - now).max() > 0.05


def test_without_enough_stated_lapses_before_an_assignment_reasons_stay_unknown(world):
    """Too few stated lapses before a quarter: unstated reasons are uniform, and counted."""
    cd = load_data(world.tables, as_of=world.end)
    tf = offer_training_frame(cd, world.end, 30, reason_refit="Y")
    first = tf["reason_cutoff"] == tf["reason_cutoff"].min()
    stated_before = reason_training_set(reason_features(cd, None, world.end))[0]
    n_before = int((stated_before["ended_at"] <= tf["reason_cutoff"].min()).sum())
    if n_before >= 30:
        pytest.skip(f"{n_before} stated lapses before the first cut-off")
    unk = first & tf["reason_source"].eq("inferred") & tf["cancel_reason"].eq("unknown")
    assert unk.any()
    np.testing.assert_allclose(tf.loc[unk, PCOLS].to_numpy(float), 1.0 / len(REASONS))
    assert tf.attrs["reasons_without_model"] >= int(unk.sum())


def test_a_bad_refit_period_is_a_clear_error(world):
    """A typo in ``reason_refit`` is a ConfigError naming the parameter, not a pandas
    ValueError from deep inside."""
    from winback_ml.exceptions import ConfigError

    cd = load_data(world.tables, as_of=world.end)
    with pytest.raises(ConfigError, match="reason_refit"):
        offer_training_frame(cd, world.end, 30, reason_refit="quarterly")


def test_evidence_after_the_lapse_refines_inferred_rows_only(world):
    """Days lapsed at the assignment and interviews answered by it move inferred reasons only.

    (That they use nothing after the assignment is what the run-date test above checks: the
    evidence is on by default.)"""
    cd = load_data(world.tables, as_of=world.end)
    with_ev = offer_training_frame(cd, world.end, 30)
    without = offer_training_frame(cd, world.end, 30, reason_evidence=())
    inferred = (without["reason_source"] == "inferred").to_numpy()
    a, b = with_ev[PCOLS].to_numpy(float), without[PCOLS].to_numpy(float)
    np.testing.assert_allclose(a[~inferred], b[~inferred], atol=1e-12)
    moved = np.abs(a - b).max(axis=1) > 1e-6
    # days lapsed move every classifier-inferred row (the payment rule's rows stay one-hot)
    assert moved[inferred].mean() > 0.5
    np.testing.assert_allclose(a.sum(axis=1), 1.0)


def test_an_unknown_reason_evidence_is_a_clear_error(world):
    """A typo (or a bare string) in ``reason_evidence`` used to be skipped silently in the
    training frame: the model was then trained without the evidence the caller asked for."""
    from winback_ml.exceptions import ConfigError

    cd = load_data(world.tables, as_of=world.end)
    with pytest.raises(ConfigError, match="reason_evidence.*'interview'"):
        offer_training_frame(cd, world.end, 30, reason_evidence=("interview",))
    with pytest.raises(ConfigError, match=r"\('interviews',\)"):
        offer_training_frame(cd, world.end, 30, reason_evidence="interviews")


def test_evidence_used_names_what_was_weighed(world):
    """Without an interviews table only the days lapsed refine the cohort's inferred reasons
    (the same probabilities as asking for the days alone), and ``evidence_used`` says so;
    the plan's note is built from it (it used to name the interviews regardless)."""
    from winback_ml.cohort.episodes import build_lapse_episodes
    from winback_ml.cohort.lapsed import build_lapsed_cohort
    from winback_ml.cohort.reasons import infer_reasons
    from winback_ml.models.uplift_offer import refine_with_evidence

    T = world.end
    full = load_data(world.tables, as_of=T)
    bare = load_data({k: v for k, v in world.tables.items() if k != "interviews"}, as_of=T)
    out = {}
    for name, cd, ev in (
        ("full", full, ("days_lapsed", "interviews")),
        ("days", full, ("days_lapsed",)),
        ("bare", bare, ("days_lapsed", "interviews")),
    ):
        eps = build_lapse_episodes(cd, T)
        cohort = build_lapsed_cohort(cd, T)
        r = infer_reasons(cd, cohort, T, episodes=eps)
        lapses = cohort[["customer_id", "ended_at"]]
        out[name] = refine_with_evidence(cd, eps, r, lapses, T, cohort["days_lapsed"], T, ev)
    assert out["full"].attrs["evidence_used"] == ("days_lapsed", "interviews")
    assert out["days"].attrs["evidence_used"] == ("days_lapsed",)
    assert out["bare"].attrs["evidence_used"] == ("days_lapsed",)
    np.testing.assert_allclose(
        out["bare"][PCOLS].to_numpy(float), out["days"][PCOLS].to_numpy(float), atol=1e-12
    )
    # the interviews do move some inferred cohort members on this world
    moved = np.abs(out["full"][PCOLS].to_numpy(float) - out["days"][PCOLS].to_numpy(float))
    assert (moved.max(axis=1) > 1e-6).sum() >= 3
    np.testing.assert_allclose(out["full"][PCOLS].to_numpy(float).sum(axis=1), 1.0)


def test_the_plan_refits_a_fitted_reason_classifier_as_of_the_run_date(world):
    """``build_plan(reason_classifier=)`` takes a template. A classifier already fitted (here
    on the whole history with the stated reasons shuffled: nothing it says is true) used to
    be applied as is to the cohort, so a plan for an earlier run date could read a model
    trained on later lapses."""
    from winback_ml.cohort.reasons import ReasonClassifier
    from winback_ml.scoring import build_plan

    as_of = world.end - pd.Timedelta(days=120)
    cd = load_data(world.tables, as_of=world.end)
    X, y = reason_training_set(reason_features(cd, None, world.end))
    rng = np.random.default_rng(0)
    wrong = ReasonClassifier(use_text=False).fit(X, rng.permutation(y.to_numpy()))
    a = build_plan(world.tables, as_of, None, reason_classifier=wrong)
    b = build_plan(world.tables, as_of, None, reason_classifier=ReasonClassifier(use_text=False))
    assert (a.cohort["reason_source"] == "inferred").sum() > 20
    assert (a.cohort["cancel_reason"] == b.cohort["cancel_reason"]).all()
    pd.testing.assert_frame_equal(a.features, b.features)
