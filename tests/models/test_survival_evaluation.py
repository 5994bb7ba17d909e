"""Evaluation metrics on censored data, the time-based holdout and the selection rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from winback_ml.exceptions import ModelError
from winback_ml.models.evaluation import (
    SELECTION_RULE,
    brier_score,
    calibration_error,
    calibration_table,
    compare_models,
    concordance_score,
    integrated_brier_score,
    time_split,
)
from winback_ml.models.return_model import KaplanMeierReturnModel, WeibullCureReturnModel


def _data(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    pi = special.expit(-0.3 + 1.2 * x)
    lam = np.exp(3.2 - 0.2 * x)
    t = np.where(rng.random(n) < pi, lam * rng.weibull(1.0, n), np.inf)
    origin = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    as_of = pd.Timestamp("2025-06-01")
    follow = ((as_of - origin) / pd.Timedelta(days=1)).to_numpy(float)
    return pd.DataFrame(
        {
            "at": origin,
            "x": x,
            "reason": np.where(x > 0, "a", "b"),
            "duration_days": np.minimum(t, follow),
            "event": (t <= follow).astype(int),
            "_pi": pi,
            "_lam": lam,
        }
    )


def test_concordance_and_brier_of_the_truth_beat_noise() -> None:
    df = _data()
    d, e = df["duration_days"], df["event"]
    assert concordance_score(d, e, df["_pi"]) > 0.7
    assert abs(concordance_score(d, e, np.random.default_rng(1).random(len(df))) - 0.5) < 0.05
    t = 30.0
    s_true = 1 - df["_pi"] + df["_pi"] * np.exp(-t / df["_lam"])
    assert brier_score(d, e, s_true, t) < brier_score(d, e, np.full(len(df), 0.5), t)
    times = np.linspace(1, 120, 20)
    S = np.stack([1 - df["_pi"] + df["_pi"] * np.exp(-tt / df["_lam"]) for tt in times], axis=1)
    assert integrated_brier_score(d, e, S, times) < integrated_brier_score(
        d, e, np.ones_like(S), times
    )


def test_calibration_table_is_right_for_true_probabilities() -> None:
    df = _data(n=20000, seed=3)
    t = 30.0
    p = df["_pi"] * (1 - np.exp(-t / df["_lam"]))
    tab = calibration_table(df["duration_days"], df["event"], p, t)
    assert len(tab) == 10 and tab["n"].sum() == len(df)
    assert calibration_error(tab) < 0.02
    # a shifted prediction is detected
    assert calibration_error(calibration_table(df["duration_days"], df["event"], p + 0.1, t)) > 0.08


def test_time_split_censors_training_outcomes_at_the_cutoff() -> None:
    df = _data()
    cut = pd.Timestamp("2024-12-01")
    train, test = time_split(df, cut)
    assert (train["at"] < cut).all() and (test["at"] >= cut).all()
    end = train["at"] + pd.to_timedelta(train["duration_days"], unit="D")
    assert (end <= cut + pd.Timedelta(seconds=1)).all()
    moved = df.loc[train.index, "duration_days"] > train["duration_days"]
    assert moved.any() and (train.loc[moved, "event"] == 0).all()
    with pytest.raises(ModelError, match="leaves 0 training"):
        time_split(df, "2020-01-01")


def test_compare_models_applies_the_stated_rule() -> None:
    df = _data(n=4000).drop(columns=["_pi", "_lam"])
    res = compare_models(
        {
            "km": KaplanMeierReturnModel(group_col=None),
            "km_reason": KaplanMeierReturnModel(),
            "cure": WeibullCureReturnModel(),
        },
        df,
        cutoff="2024-11-01",
    )
    assert res.rule == SELECTION_RULE
    assert set(res.table["model"]) == {"km", "km_reason", "cure"}
    ok = res.table.set_index("model")
    assert ok.loc["cure", "concordance"] > ok.loc["km", "concordance"]
    assert res.chosen == "cure"
    assert ok["chosen"].sum() == 1 and ok.loc["cure", "chosen"]
    assert {"calibration_30", "calibration_90", "ibs"} <= set(res.details["cure"])


def test_compare_models_reports_a_failed_candidate() -> None:
    df = _data(n=1500).drop(columns=["_pi", "_lam"])
    res = compare_models(
        {"km": KaplanMeierReturnModel(), "bad": WeibullCureReturnModel(min_events=10**6)},
        df,
        cutoff="2024-11-01",
    )
    assert res.chosen == "km" and "bad" in res.failures
    assert "too few events" in res.failures["bad"]


CUT = pd.Timestamp("2024-11-01")


def _with_interviews(df: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    """Interviews answered 30-90 days after the origin (delayed entry), as the return frame."""
    rng = np.random.default_rng(seed)
    answered = rng.random(len(df)) < 0.4
    entry = np.where(answered, rng.uniform(30, 90, len(df)), 0.0)
    entry[entry >= df["duration_days"].to_numpy(float)] = 0.0  # back before the interview
    # a few interviews answered exactly at the cutoff of the test below (entry == censored time)
    tie = np.flatnonzero((df["at"] < CUT - pd.Timedelta(days=31)).to_numpy() & (entry > 0))[:5]
    entry[tie] = ((CUT - df["at"].iloc[tie]) / pd.Timedelta(days=1)).to_numpy(float)
    entry[tie] = np.where(entry[tie] < df["duration_days"].iloc[tie], entry[tie], 0.0)
    return df.assign(
        entry_days=entry,
        offer_interest=np.where(entry > 0, "discount", "none"),
        leave_strength=np.where(entry > 0, 4.0, np.nan),
    )


def test_time_split_resets_entries_learnt_after_the_cutoff() -> None:
    """Regression (weekly run, sample world): the split shortened durations below the entry
    (an interview answered after the cutoff), so Cox and Weibull-cure fits refused the rows."""
    from winback_ml.models.return_model import CoxReturnModel

    df = _with_interviews(_data(n=3000).drop(columns=["_pi", "_lam"]))
    cut = CUT
    entered = df["at"] + pd.to_timedelta(df["entry_days"], unit="D")
    late = (df["at"] < cut) & (df["entry_days"] > 0) & (entered >= cut)
    assert late.sum() > 20 and ((df["entry_days"] > 0) & (entered == cut)).sum() > 0
    train, test = time_split(df, cut)
    pos = train["entry_days"] > 0  # an entry leaves time at risk after it (lifelines needs it)
    assert (train.loc[pos, "entry_days"] < train.loc[pos, "duration_days"]).all()
    assert (train.loc[late[late].index, "entry_days"] == 0).all()
    assert (train.loc[late[late].index, "offer_interest"] == "none").all()
    assert train.loc[late[late].index, "leave_strength"].isna().all()
    kept = (df["at"] < cut) & (df["entry_days"] > 0) & ~late
    assert (train.loc[kept[kept].index, "entry_days"] > 0).all()  # known by the cutoff: kept
    assert (test["entry_days"] == 0).all() and (test["offer_interest"] == "none").all()
    res = compare_models(
        {
            "cox": CoxReturnModel(entry_col="entry_days"),
            "cure": WeibullCureReturnModel(),
        },
        df,
        cutoff=cut,
    )
    assert res.failures == {} and set(res.models) == {"cox", "cure"}


def test_conditional_split_scores_everyone_lapsed_at_the_cutoff() -> None:
    """Return frames (with ``lapse_id``) are tested as they are used: the customers lapsed and
    not returned at the cutoff, given their days lapsed, outcomes observed after it."""
    full = _with_interviews(_data(n=3000).drop(columns=["_pi", "_lam"]))
    df = full.assign(lapse_id=[f"l{i}" for i in range(len(full))])
    cut = CUT
    train, test = time_split(df, cut)
    room = (cut - df["at"]) / pd.Timedelta(days=1)
    at_risk = (df["at"] < cut) & (df["duration_days"] > room) & (room <= 365)
    assert set(test.index) == set(at_risk[at_risk].index) and len(test) > 200
    np.testing.assert_allclose(test["days_lapsed"], room[test.index])
    np.testing.assert_allclose(
        test["duration_days"], df.loc[test.index, "duration_days"] - room[test.index]
    )
    assert (test["event"] == df.loc[test.index, "event"]).all()
    # the training part is everything before the cutoff, censored at it, without days_lapsed
    assert (train["at"] < cut).all() and "days_lapsed" not in train.columns
    # an interview answered after the cutoff is not known at it; one answered before is
    late = test["entry_days"].to_numpy() > 0
    known = df.loc[test.index, "entry_days"] > 0
    assert known.any()
    was_late = known & (df.loc[test.index, "entry_days"] > room[test.index])
    assert (test.loc[was_late[was_late].index, "offer_interest"] == "none").all()
    kept = known & ~was_late
    assert kept.any() and (test.loc[kept[kept].index, "offer_interest"] == "discount").all()
    assert late.sum() == kept.sum()
    # the old design stays available (and is the default for frames without lapse_id)
    _, after = time_split(df, cut, conditional=False)
    assert (after["at"] >= cut).all() and "days_lapsed" not in after.columns


def test_compare_models_rolls_the_cutoff_on_return_frames() -> None:
    df = _data(n=4000).drop(columns=["_pi", "_lam"])
    df = df.assign(lapse_id=[f"l{i}" for i in range(len(df))])
    res = compare_models(
        {"km": KaplanMeierReturnModel(group_col=None), "cure": WeibullCureReturnModel()},
        df,
        cutoff="2025-01-01",
    )
    ok = res.table.set_index("model")
    assert (ok["n_cutoffs"] == 3).all()
    # the conditional holdout: predictions given the days lapsed (details are the first cutoff's)
    assert ok.loc["cure", "concordance"] > ok.loc["km", "concordance"]
    assert res.chosen == "cure" and ok.loc["cure", "brier_30"] < ok.loc["km", "brier_30"]
    single = compare_models(
        {"km": KaplanMeierReturnModel(group_col=None)}, df, cutoff="2025-01-01", n_cutoffs=1
    )
    assert single.table["n_cutoffs"].iloc[0] == 1
    assert single.details["km"]["n_test"] == res.details["km"]["n_test"]
