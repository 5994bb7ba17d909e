"""The one-call cohort view on the synthetic world."""

from __future__ import annotations

import numpy as np

import winback_ml.cohort as cohort_pkg
from winback_ml.cohort import build_winback_cohort
from winback_ml.data.contract import SEGMENTS


def test_build_winback_cohort(world_data, world):
    v = build_winback_cohort(world_data, world.end, config={"lapsed_window_days": 60})
    assert v["customer_id"].is_unique and len(v) > 50
    assert v["days_lapsed"].max() <= 60 and v.attrs["window_days"] == 60
    assert v["segment"].isin(SEGMENTS).all()
    assert v["reason_source"].isin(["stated", "inferred"]).all()
    assert not v.loc[v["segment"] == "lost", "contact"].any()
    assert not {"email", "phone", "cancel_comment", "q1_cancel_story"} & set(v.columns)
    assert v.attrs["missing_signals"] == [] and v.attrs["n_train"] > 500
    # the reason columns belong to the right customer
    stated = v["reason_source"] == "stated"
    assert (v.loc[stated, "cancel_reason"] == v.loc[stated, "stated_reason"]).all()
    assert np.isfinite(v["expected_return_rate"]).all()


def test_package_exports_resolve():
    for name in cohort_pkg.__all__:
        assert getattr(cohort_pkg, name) is not None
