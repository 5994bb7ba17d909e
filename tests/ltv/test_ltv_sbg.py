"""sBG against the published retention series of Fader & Hardie (2007)."""

from __future__ import annotations

import numpy as np
import pytest

from winback_ml.exceptions import ModelError, NotFittedError
from winback_ml.ltv.sbg import FADER_HARDIE_2007, ShiftedBetaGeometricModel, sbg_derl


@pytest.mark.parametrize(
    ("segment", "alpha", "beta"),
    [("regular", 0.704, 1.182), ("high_end", 0.668, 3.806)],
)
def test_sbg_recovers_published_estimates(segment, alpha, beta):
    # The paper fits years 1..7 (survivors of periods 0..7).
    m = ShiftedBetaGeometricModel().fit(FADER_HARDIE_2007[segment][:8])
    assert m.alpha_ == pytest.approx(alpha, abs=0.002)
    assert m.beta_ == pytest.approx(beta, abs=0.002)


@pytest.mark.parametrize("segment", ["regular", "high_end"])
def test_sbg_projects_holdout_years(segment):
    data = np.array(FADER_HARDIE_2007[segment], dtype=float)
    m = ShiftedBetaGeometricModel().fit(data[:8])
    projected = 1000 * m.survival_function(np.arange(13))
    # The paper's point: the sBG projects years 8..12 well (within ~2 % of the cohort).
    assert np.max(np.abs(projected[8:] - data[8:])) < 20
    assert np.all(np.diff(m.retention_rate(np.arange(1, 13))) > 0)  # retention rises with tenure


def test_derl_closed_form_equals_series():
    m = ShiftedBetaGeometricModel().fit(FADER_HARDIE_2007["regular"][:8])
    d = 0.1
    for n_renewals in (0, 1, 4):
        n = n_renewals + 1
        t = np.arange(n, 5000)
        series = np.sum(m.survival_function(t) / m.survival_function(n - 1) / (1 + d) ** (t - n))
        assert m.expected_residual_lifetime(d, n_renewals) == pytest.approx(series, rel=1e-6)
    # Heterogeneity: a customer who already renewed is worth more (DERL increases with n).
    derls = [m.expected_residual_lifetime(d, k) for k in range(6)]
    assert all(b > a for a, b in zip(derls, derls[1:], strict=False))
    assert m.expected_residual_value(10.0, d, 2) == pytest.approx(10.0 * derls[2])


def test_sbg_bad_input_and_not_fitted():
    with pytest.raises(NotFittedError):
        ShiftedBetaGeometricModel().survival_function(1)
    with pytest.raises(ModelError, match="non-increasing"):
        ShiftedBetaGeometricModel().fit([100, 120, 80])
    with pytest.raises(ModelError, match="at least"):
        ShiftedBetaGeometricModel().fit([100, 80])
    with pytest.raises(ModelError, match="discount_rate"):
        sbg_derl(0.7, 1.2, 0.0)
