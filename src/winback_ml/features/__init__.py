"""Point-in-time features and the training / scoring frames of the survival models.

Everything here is computed *as of* a date: a row's features use only
contract rows dated at or before that row's ``at`` (see
:mod:`winback_ml.features.point_in_time`). Timestamps are tz-naive UTC.
"""

from __future__ import annotations

from winback_ml.features.point_in_time import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    build_customer_features,
)
from winback_ml.features.training import (
    build_churn_scoring_frame,
    build_churn_training_frame,
    build_return_scoring_frame,
    build_return_training_frame,
    lapse_episodes,
    lapse_reasons,
    reason_proba_columns,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURE_COLUMNS",
    "NUMERIC_FEATURES",
    "build_customer_features",
    "build_churn_scoring_frame",
    "build_churn_training_frame",
    "build_return_scoring_frame",
    "build_return_training_frame",
    "lapse_episodes",
    "lapse_reasons",
    "reason_proba_columns",
]
