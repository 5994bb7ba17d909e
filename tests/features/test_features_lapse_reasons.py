"""The reason of each lapse in the return frames is the one known for *that* lapse, as of its end.

Regression: ``build_return_training_frame(..., reasons=<by customer>)`` used to give every
lapse of a customer the reason of the customer's *latest* lapse (known only later), so a
past lapse in the training frame carried a reason from its future.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.data.loader import load_data
from winback_ml.exceptions import ConfigError
from winback_ml.features import (
    build_return_scoring_frame,
    build_return_training_frame,
    lapse_episodes,
    reason_proba_columns,
)

T = pd.Timestamp("2025-06-30")


@pytest.fixture(scope="module")
def cd(world_small):
    return load_data(world_small.tables, as_of=T, validate=False)


@pytest.fixture(scope="module")
def classifier(cd):
    from winback_ml.cohort.reasons import ReasonClassifier, reason_features, reason_training_set

    X, y = reason_training_set(reason_features(cd, lapse_episodes(cd, T), T))
    return ReasonClassifier().fit(X, y)


def test_customer_keyed_reasons_describe_only_the_latest_lapse(cd) -> None:
    eps = lapse_episodes(cd, T).set_index("lapse_id")
    by_customer = {c: "accidental" for c in eps["customer_id"].unique()}
    tr = build_return_training_frame(cd, T, reasons=by_customer).set_index("lapse_id")
    stated = eps.loc[tr.index, "stated_reason"]
    unstated = stated.isna() | (stated == "unknown")
    latest = ~eps.loc[tr.index].sort_values("ended_at")["customer_id"].duplicated(keep="last")
    latest = latest.reindex(tr.index)
    past_unstated = unstated & ~latest
    assert past_unstated.sum() > 10  # the world has earlier lapses without a stated reason
    # an earlier lapse never takes the reason given for the customer's latest lapse
    assert (tr.loc[past_unstated, "reason"] == "unknown").all()
    assert (tr.loc[past_unstated, "reason_source"] == "unknown").all()
    # the latest lapse takes it; stated reasons are kept everywhere
    assert (tr.loc[unstated & latest, "reason"] == "accidental").all()
    np.testing.assert_array_equal(tr.loc[~unstated, "reason"], stated[~unstated])


def test_lapse_keyed_reasons_apply_to_their_lapse(cd) -> None:
    eps = lapse_episodes(cd, T)
    unstated = eps.loc[eps["stated_reason"].isna(), "lapse_id"]
    pick = unstated.iloc[::2]
    tr = build_return_training_frame(cd, T, reasons=pd.Series("too_complex", index=pick))
    tr = tr.set_index("lapse_id")
    assert (tr.loc[pick, "reason"] == "too_complex").all()
    rest = unstated[~unstated.isin(pick)]
    assert (tr.loc[rest, "reason"] == "unknown").all()


def test_inferred_reasons_are_per_lapse_and_point_in_time(cd, world_small, classifier) -> None:
    tr = build_return_training_frame(cd, T, reason_classifier=classifier).set_index("lapse_id")
    pcols = reason_proba_columns()
    assert set(pcols) <= set(tr.columns)
    np.testing.assert_allclose(tr[pcols].sum(axis=1), 1.0, atol=1e-9)
    inferred = tr["reason_source"] == "inferred"
    assert inferred.sum() > 20
    # the inferred reason is the most probable one of that lapse's own probabilities
    top = tr.loc[inferred, pcols].idxmax(axis=1).str.removeprefix("p_")
    rule = tr.loc[inferred, "reason"] == "payment_failed"
    assert (top[~rule] == tr.loc[inferred, "reason"][~rule]).all()
    # customers with several lapses: the reasons differ from lapse to lapse where the
    # behaviour did (not one reason per customer)
    multi = tr[tr.duplicated("customer_id", keep=False) & inferred]
    assert multi.groupby("customer_id")["reason"].nunique().max() > 1
    # computed from data up to each lapse's end: the same lapses seen from an earlier date
    # (with the same classifier) get the same reason and probabilities
    T0 = pd.Timestamp("2025-01-01")
    early = build_return_training_frame(
        load_data(world_small.tables, as_of=T0, validate=False), T0, reason_classifier=classifier
    ).set_index("lapse_id")
    both = early.index.intersection(tr.index)
    assert len(both) > 100
    pd.testing.assert_frame_equal(
        early.loc[both, ["reason", "reason_source", *pcols]],
        tr.loc[both, ["reason", "reason_source", *pcols]],
    )


def test_scoring_frame_reasons_match_training(cd, classifier) -> None:
    tr = build_return_training_frame(cd, T, reason_classifier=classifier).set_index("lapse_id")
    sc = build_return_scoring_frame(cd, T, reason_classifier=classifier).set_index("lapse_id")
    cols = ["reason", "reason_source", *reason_proba_columns()]
    pd.testing.assert_frame_equal(sc[cols], tr.loc[sc.index, cols])
    none = build_return_scoring_frame(cd, T, reasons=None)
    assert not set(reason_proba_columns()) & set(none.columns)
    assert set(none["reason_source"]) <= {"stated", "unknown"}


def test_bad_reasons_argument(cd) -> None:
    with pytest.raises(ConfigError, match="'reasons' parameter"):
        build_return_training_frame(cd, T, reasons="guess")


def test_without_a_classifier_unstated_reasons_are_uniform(cd) -> None:
    """Too few stated lapses to fit the reason classifier: an unstated lapse's reason is
    unknown, and its ``p_<reason>`` are uniform (they used to be all 0, summing to 0)."""
    from winback_ml.features import lapse_reasons

    eps = lapse_episodes(cd, T).copy()
    stated = eps["stated_reason"].notna()
    eps.loc[stated & (stated.cumsum() > 5), "stated_reason"] = None  # 5 stated: below min_train
    lr = lapse_reasons(cd, T, eps)
    pcols = reason_proba_columns()
    P = lr[pcols].to_numpy(float)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    unknown = (lr["reason_source"] == "unknown").to_numpy()
    assert unknown.sum() > 20
    assert (lr.loc[unknown, "reason"] == "unknown").all()
    np.testing.assert_allclose(P[unknown], 1.0 / len(pcols))
    # the stated ones stay one-hot, the payment rule stays certain
    kept = (lr["reason_source"] == "stated").to_numpy()
    assert kept.sum() == 5 and (P[kept].max(axis=1) == 1.0).all()
