"""Customer value: LTV of a returning customer and the sBG cohort model.

* :mod:`winback_ml.ltv.sbg`: shifted-beta-geometric cohort retention, DERL.
* :mod:`winback_ml.ltv.ltv`: LTV of a returning customer as a function of the offer and the
  billing interval (post-return survival per interval, learnt from past returns).
"""

from winback_ml.ltv.ltv import (
    BILLING_INTERVAL_MONTHS,
    BumpEstimate,
    PostReturnSurvival,
    billing_intervals,
    expected_ltv,
    ltv_matrix,
    monthly_price,
    post_return_tenures,
)
from winback_ml.ltv.sbg import FADER_HARDIE_2007, ShiftedBetaGeometricModel, sbg_derl, sbg_survival

__all__ = [
    "BILLING_INTERVAL_MONTHS",
    "BumpEstimate",
    "FADER_HARDIE_2007",
    "PostReturnSurvival",
    "ShiftedBetaGeometricModel",
    "billing_intervals",
    "expected_ltv",
    "ltv_matrix",
    "monthly_price",
    "post_return_tenures",
    "sbg_derl",
    "sbg_survival",
]
