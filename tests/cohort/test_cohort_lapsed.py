"""The lapsed cohort on the tiny business: membership, windows, consent, missing signals."""

from __future__ import annotations

import pandas as pd
import pytest
from cohort_tiny import AS_OF

from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.cohort.lapsed import COHORT_COLUMNS, build_lapsed_cohort, contact_window
from winback_ml.exceptions import ConfigError


def test_cohort_membership_and_windows(tiny):
    c = build_lapsed_cohort(tiny, AS_OF).set_index("customer_id")
    assert sorted(c.index) == ["c1", "c3", "c9"]  # c2 came back, c7 lapsed 180 days ago
    assert c.loc["c1", "days_lapsed"] == 60 and c.loc["c1", "contact_window"] == "prime"
    assert c.loc["c3", "days_lapsed"] == 10 and c.loc["c3", "contact_window"] == "too_soon"
    assert c.loc["c9", "days_lapsed"] == 29 and c.loc["c9", "contact_window"] == "early"
    assert c.loc["c3", "lapse_id"] == "c3#2"
    assert c.loc["c1", "mrr"] == 29.0 and c.loc["c1", "plan_tier"] == "pro"


def test_wider_window_shows_late_customers(tiny):
    c = build_lapsed_cohort(tiny, AS_OF, window_days=200).set_index("customer_id")
    assert c.loc["c7", "contact_window"] == "late" and c.loc["c7", "past_120_days"]
    assert c.loc["c7", "stated_reason"] == "contract_ended"
    assert not c.loc["c1", "past_120_days"]


def test_consent_flags_and_no_pii(tiny):
    c = build_lapsed_cohort(tiny, AS_OF)
    assert list(c.columns) == COHORT_COLUMNS
    assert not {"email", "phone", "cancel_comment"} & set(c.columns)
    c = c.set_index("customer_id")
    assert c.loc["c1", "can_email"] and c.loc["c1", "can_sms"]
    assert not c.loc["c3", "can_email"] and c.loc["c3", "can_sms"]  # opted out of e-mail
    assert not c.loc["c9", "can_email"]  # opted in, but no address


def test_missing_optional_tables_are_reported(tiny):
    c = build_lapsed_cohort(tiny, AS_OF)
    assert c.attrs["missing_signals"] == ["usage", "support_tickets", "interviews"]
    tiny["usage"] = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "week_start": [pd.Timestamp("2025-03-03")],
            "sessions": [3],
            "active_minutes": [20.0],
            "features_used": [2],
        }
    )
    c = build_lapsed_cohort(tiny, AS_OF)
    assert c.attrs["missing_signals"] == ["support_tickets", "interviews"]


def test_cohort_reuses_given_episodes(tiny):
    eps = build_lapse_episodes(tiny, AS_OF)
    a = build_lapsed_cohort(tiny, AS_OF, episodes=eps)
    pd.testing.assert_frame_equal(a, build_lapsed_cohort(tiny, AS_OF))


def test_contact_window_boundaries():
    got = list(contact_window([0, 13, 14, 29, 30, 90, 91, 121]))
    assert got == ["too_soon", "too_soon", "early", "early", "prime", "prime", "late", "late"]


@pytest.mark.parametrize("bad", [-1, 1.5, "90", True])
def test_bad_window_is_refused(tiny, bad):
    with pytest.raises(ConfigError, match="window_days"):
        build_lapsed_cohort(tiny, AS_OF, window_days=bad)


def test_in_app_only_for_app_store_customers(tiny):
    s = tiny["subscriptions"]
    s.loc[s["customer_id"] == "c9", "source"] = "app_store"
    tiny["events"].loc[tiny["events"]["customer_id"] == "c9", "source"] = "app_store"
    c = build_lapsed_cohort(tiny, AS_OF).set_index("customer_id")
    assert c.loc["c9", "can_in_app"] and not c.loc["c1", "can_in_app"]


def test_episodes_built_at_another_as_of_are_refused(tiny):
    """Episodes of another date carry that date's days lapsed and returns: refuse them."""
    from winback_ml.exceptions import LeakageError

    eps = build_lapse_episodes(tiny, AS_OF)
    for other in ("2025-05-15", "2025-08-01"):
        with pytest.raises(LeakageError, match="same as_of"):
            build_lapsed_cohort(tiny, other, episodes=eps)
    # without the date stamp, an episode ending after as_of is still caught
    bare = eps.copy()
    bare.attrs = {}
    with pytest.raises(LeakageError, match="same as_of"):
        build_lapsed_cohort(tiny, bare["ended_at"].max() - pd.Timedelta(days=1), episodes=bare)
    same = build_lapsed_cohort(tiny, AS_OF, episodes=eps)
    assert same.equals(build_lapsed_cohort(tiny, AS_OF))
