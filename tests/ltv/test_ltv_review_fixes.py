"""Review fixes of the per-interval LTV: mid-year yearly ends, a free month of 0 months, max_months."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback_ml.config import Offer, load_config
from winback_ml.exceptions import ModelError
from winback_ml.ltv.ltv import PostReturnSurvival, expected_ltv


def _yearly_returns(n: int, prefix: str, rng: np.random.Generator) -> pd.DataFrame:
    """Yearly returns: 40 % leave at month 6 (between renewals), the rest censored at 22."""
    leave = rng.random(n) < 0.4
    return pd.DataFrame(
        {
            "customer_id": [f"{prefix}{i}" for i in range(n)],
            "returned_at": pd.Timestamp("2024-01-01"),
            "months": np.where(leave, 6, 22),
            "lapsed_again": leave,
            "billing_interval": "year",
        }
    )


def test_a_discount_that_changes_nothing_measures_no_bump_for_mid_year_ends():
    """Discount returners behave like the others: the bump must be about 1, not 0."""
    rng = np.random.default_rng(3)
    base = _yearly_returns(3000, "b", rng)
    disc = _yearly_returns(300, "d", rng)
    tenures = pd.concat([base, disc], ignore_index=True)
    d = disc[["customer_id", "returned_at"]].assign(discount_months=3)
    s = PostReturnSurvival().fit(tenures, discount_returns=d)
    b = s.bump_
    assert b.source == "measured"
    assert b.ci_low < 1.0 < b.ci_high  # the old exposure rule gave ratio 0 (0 observed of 76)
    assert 0.7 < b.ratio < 1.3
    assert b.excess_hazard >= 0.0
    # a discount cannot make yearly customers immortal: S(12) close to the no-offer curve
    s0 = s.survival(24, 0, "year")[12]
    s3 = s.survival(24, 3, "year")[12]
    assert s3 <= s0 + 1e-12
    assert s3 > s0 - 0.1


def test_fewer_departures_than_expected_give_no_negative_excess():
    rng = np.random.default_rng(4)
    base = _yearly_returns(3000, "b", rng)
    disc = _yearly_returns(300, "d", rng)
    disc["months"], disc["lapsed_again"] = 22, False  # nobody leaves after the discount
    tenures = pd.concat([base, disc], ignore_index=True)
    d = disc[["customer_id", "returned_at"]].assign(discount_months=3)
    s = PostReturnSurvival().fit(tenures, discount_returns=d)
    assert s.bump_.ratio == 0.0
    assert s.bump_.excess_hazard == 0.0
    assert s.survival(24, 3, "year")[12] == pytest.approx(s.survival(24, 0, "year")[12])


def test_a_free_month_of_zero_months_is_a_free_month():
    """A catalog free month written with discount_months 0 is billed as one month, like the world."""
    rng = np.random.default_rng(5)
    t = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(400)],
            "returned_at": pd.Timestamp("2024-01-01"),
            "months": rng.integers(1, 30, 400),
            "lapsed_again": rng.random(400) < 0.7,
        }
    )
    s = PostReturnSurvival().fit(t)
    cfg = load_config(None)
    c = pd.DataFrame({"mrr": [10.0, 20.0], "billing_interval": ["month", "year"]})
    zero = expected_ltv(c, Offer("free_month", 0.0, 0), cfg, s)
    one = expected_ltv(c, Offer("free_month", 0.0, 1), cfg, s)
    none = expected_ltv(c, None, cfg, s)
    np.testing.assert_allclose(zero.to_numpy(), one.to_numpy())
    assert (zero < none).all()


def test_max_months_under_a_year_is_a_clear_error():
    t = pd.DataFrame(
        {
            "customer_id": ["a"],
            "returned_at": pd.Timestamp("2024-01-01"),
            "months": [3],
            "lapsed_again": [True],
        }
    )
    with pytest.raises(ModelError, match="max_months"):
        PostReturnSurvival(max_months=6).fit(t)
