"""Lapse episodes on the tiny hand-made business (known answers) and clear failures."""

from __future__ import annotations

import pandas as pd
import pytest
from cohort_tiny import AS_OF

from winback_ml.cohort.episodes import EPISODE_COLUMNS, build_lapse_episodes
from winback_ml.data.loader import load_data
from winback_ml.exceptions import ConfigError, DataContractError


def _by_id(eps: pd.DataFrame) -> pd.DataFrame:
    return eps.set_index("lapse_id")


def test_episodes_known_answers(tiny):
    eps = build_lapse_episodes(tiny, AS_OF)
    assert list(eps.columns) == EPISODE_COLUMNS
    assert list(eps["lapse_id"]) == ["c1#1", "c2#1", "c3#1", "c3#2", "c7#1", "c9#1"]
    e = _by_id(eps)
    # c1: never back, censored at as_of
    assert not e.loc["c1#1", "returned"]
    assert pd.isna(e.loc["c1#1", "days_to_return"])
    assert e.loc["c1#1", "days_observed"] == 60.0
    assert e.loc["c1#1", "stated_reason"] == "too_expensive"
    assert e.loc["c1#1", "cancel_requested_at"] == pd.Timestamp("2025-04-20")
    # c2: involuntary, returned with a new subscription
    assert e.loc["c2#1", "returned_at"] == pd.Timestamp("2025-02-01")
    assert e.loc["c2#1", "days_to_return"] == 22.0
    assert e.loc["c2#1", "return_type"] == "new_subscription"
    assert e.loc["c2#1", "n_payment_failures"] == 2
    assert e.loc["c2#1", "unrecovered_payment_failure"]
    assert e.loc["c2#1", "end_detail"] == "dunning_exhausted"
    # c3: an event-only lapse (reactivated on the same subscription), then a row lapse
    assert e.loc["c3#1", "return_type"] == "reactivated"
    assert e.loc["c3#1", "days_to_return"] == 14.0
    assert e.loc["c3#1", "stated_reason"] is None
    assert not e.loc["c3#1", "from_subscription_row"]
    assert e.loc["c3#2", "lapse_number"] == 2
    assert e.loc["c3#2", "spell_start"] == pd.Timestamp("2025-03-15")
    assert e.loc["c3#2", "tenure_days"] == 97.0
    # c9: cancelled + expired events of one end are one lapse; 'unknown' is no reason
    assert e.loc["c9#1", "stated_reason"] is None
    assert e.loc["c9#1", "status"] == "cancelled"
    # no lapse: active (c4), ends after as_of (c5), add-on while main open (c6), plan switch (c8)
    assert not set(eps["customer_id"]) & {"c4", "c5", "c6", "c8"}
    assert eps.attrs["as_of"] == AS_OF


def test_episodes_accept_contract_data_and_dict_alike(tiny):
    a = build_lapse_episodes(tiny, AS_OF)
    b = build_lapse_episodes(load_data(tiny), AS_OF)
    c = build_lapse_episodes(load_data(tiny, as_of=AS_OF))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_episodes_point_in_time(tiny):
    """As of 2025-03-10, c3 has lapsed once and not yet returned; later facts are invisible."""
    eps = _by_id(build_lapse_episodes(tiny, "2025-03-10"))
    assert not eps.loc["c3#1", "returned"]
    assert eps.loc["c3#1", "days_observed"] == 9.0
    assert "c3#2" not in eps.index
    assert "c1#1" not in eps.index  # c1 ends on 2025-05-01
    # c2 had not come back yet on 2025-01-20
    e2 = _by_id(build_lapse_episodes(tiny, "2025-01-20"))
    assert not e2.loc["c2#1", "returned"] and e2.loc["c2#1", "days_observed"] == 10.0


def test_episodes_future_data_does_not_change_the_past(tiny):
    """Adding rows after as_of leaves the episodes as of that date unchanged."""
    before = build_lapse_episodes(tiny, AS_OF)
    extra = tiny["events"].iloc[[0]].copy()
    extra["event_id"] = "late"
    extra["customer_id"], extra["subscription_id"] = "c1", "s1"
    extra["event_type"], extra["occurred_at"] = "reactivated", pd.Timestamp("2025-07-05")
    tiny["events"] = pd.concat([tiny["events"], extra], ignore_index=True)
    after = build_lapse_episodes(tiny, AS_OF)
    pd.testing.assert_frame_equal(before, after)
    later = _by_id(build_lapse_episodes(tiny, "2025-07-31"))
    assert later.loc["c1#1", "returned"] and later.loc["c1#1", "return_type"] == "reactivated"


def test_reactivation_before_cancellation_names_the_customer(tiny):
    ev = tiny["events"]
    bad = ev.iloc[[0]].copy()
    bad["event_id"], bad["customer_id"], bad["subscription_id"] = "bad", "c4", "s5"
    bad["event_type"], bad["occurred_at"] = "reactivated", pd.Timestamp("2025-03-01")
    tiny["events"] = pd.concat([ev, bad], ignore_index=True)
    with pytest.raises(DataContractError, match="'c4'") as err:
        build_lapse_episodes(tiny, AS_OF)
    assert "reactivated" in str(err.value) and "Fix" in str(err.value)


def test_reactivation_before_the_rows_end_is_contradictory(tiny):
    """c1 'reactivated' before its only cancellation: an error, not a silent return."""
    ev = tiny["events"]
    bad = ev.iloc[[0]].copy()
    bad["event_id"], bad["customer_id"], bad["subscription_id"] = "bad", "c1", "s1"
    bad["event_type"], bad["occurred_at"] = "reactivated", pd.Timestamp("2025-02-01")
    tiny["events"] = pd.concat([ev, bad], ignore_index=True)
    with pytest.raises(DataContractError, match="customer 'c1'.*first end is 2025-05-01"):
        build_lapse_episodes(tiny, AS_OF)


def test_as_of_after_the_data_cut_is_refused(tiny):
    data = load_data(tiny, as_of="2025-03-01")
    with pytest.raises(ConfigError, match="later than the date the data were loaded"):
        build_lapse_episodes(data, AS_OF)


def test_wrong_data_type_is_refused():
    with pytest.raises(ConfigError, match="'data' parameter"):
        build_lapse_episodes("not data", AS_OF)  # type: ignore[arg-type]


def test_no_lapses_gives_an_empty_frame_with_the_columns(tiny):
    eps = build_lapse_episodes(tiny, "2024-06-01")
    assert eps.empty and list(eps.columns) == EPISODE_COLUMNS


def test_episodes_recover_the_world_truth(world_data, world):
    """Every lapse and return of the synthetic world is found, with its exact timing."""
    eps = build_lapse_episodes(world_data, world.end).set_index("subscription_id")
    te = world.truth.episodes
    lapsed = te[te["ended_at"].notna() & (te["ended_at"] <= world.end)].set_index("subscription_id")
    assert set(eps.index) == set(lapsed.index)
    lapsed = lapsed.loc[eps.index]
    back = lapsed["returned_at"].notna() & (lapsed["returned_at"] <= world.end)
    assert (eps["returned"] == back).all()
    assert (eps["ended_at"] == lapsed["ended_at"]).all()
    got = eps.loc[back, "returned_at"]
    assert (got == lapsed.loc[back, "returned_at"]).all()
    # stated reasons: the world's 'unknown' is None here; payment failures always stated
    stated = lapsed["stated_reason"].where(lapsed["stated_reason"] != "unknown")
    assert (eps["stated_reason"].fillna("-") == stated.fillna("-")).all()


def test_episodes_as_of_in_the_past_match_the_truth(world_data, world):
    t = world.end - pd.Timedelta(days=365)
    eps = build_lapse_episodes(world_data, t).set_index("subscription_id")
    te = world.truth.episodes
    lapsed = te[te["ended_at"].notna() & (te["ended_at"] <= t)].set_index("subscription_id")
    assert set(eps.index) == set(lapsed.index)
    back = lapsed.loc[eps.index, "returned_at"] <= t
    assert (eps["returned"] == back.fillna(False)).all()
    assert (eps["days_observed"] >= 0).all()
    censored = eps[~eps["returned"]]
    expected = (t - censored["ended_at"]) / pd.Timedelta(days=1)
    assert (censored["days_observed"] - expected).abs().max() < 1e-9


def test_sub_second_times_keep_the_return_type(tiny):
    s, e = tiny["subscriptions"], tiny["events"]
    t = pd.Timestamp("2025-02-01 08:00:00.750")
    s.loc[s["subscription_id"] == "s3", "started_at"] = t
    e.loc[(e["subscription_id"] == "s3") & (e["event_type"] == "subscribed"), "occurred_at"] = t
    ep = _by_id(build_lapse_episodes(tiny, AS_OF))
    assert ep.loc["c2#1", "return_type"] in ("new_subscription", "subscribed")
    assert ep.loc["c2#1", "days_to_return"] == pytest.approx(22 + 8 / 24, abs=1e-4)
