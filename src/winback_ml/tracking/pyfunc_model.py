"""MLflow "models from code" wrapper of a winback_ml survival model.

MLflow executes this file when it loads a logged model (it is logged as the
``python_model`` path by :func:`winback_ml.tracking.mlflow.log_model`); the
fitted estimator itself travels as the pickled artifact ``estimator``. The
model config (``context.model_config``) holds ``kind`` (``return`` or
``churn``), ``horizons`` (days) and ``required_columns``.

Input: the documented scoring frame, one row per customer
(:func:`winback_ml.features.build_return_scoring_frame` or
:func:`winback_ml.features.build_churn_scoring_frame`): the feature columns,
and ``days_lapsed`` for return models. Extra columns are ignored; a missing
column raises :class:`~winback_ml.exceptions.ModelError` naming it.

Output: a frame with, per horizon ``h``, ``p_return_<h>d`` (conditional on
the days already lapsed) or ``p_churn_<h>d``; churn models add
``expected_days_to_churn`` (median, NaN when beyond five years).
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

__all__ = ["SurvivalPyfunc"]


class SurvivalPyfunc(PythonModel):
    """pyfunc flavour of a fitted return or churn model."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["estimator"], "rb") as fh:
            self.estimator = pickle.load(fh)
        cfg = dict(context.model_config or {})
        self.kind = cfg.get("kind", "return")
        self.horizons = [int(h) for h in cfg.get("horizons", [30, 90])]
        self.required = list(cfg.get("required_columns", []))

    # No type hints on predict on purpose: MLflow reads them as a schema ("list[...]")
    # and warns; the input schema comes from the logged signature instead.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        from winback_ml.exceptions import ModelError

        X = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in self.required if c not in X.columns]
        if missing:
            raise ModelError(
                f"winback {self.kind} model: the input is missing column(s) {missing}. "
                f"Expected the scoring frame with columns {self.required}. Fix: build it with "
                f"winback_ml.features.build_{self.kind}_scoring_frame."
            )
        out = pd.DataFrame(index=X.index)
        m = self.estimator
        for h in self.horizons:
            if self.kind == "return":
                out[f"p_return_{h}d"] = m.expected_return_probability(X, within_days=h)
            else:
                out[f"p_churn_{h}d"] = m.expected_churn_probability(X, within_days=h)
        if self.kind == "churn":
            med = m.predict_median_time(X)
            out["expected_days_to_churn"] = np.where(np.isfinite(med), med, np.nan)
        return out


# MLflow asks for type hints on predict, and warns about the ones we could give
# (it wants list[...] inputs); the schema comes from the logged signature instead.
warnings.filterwarnings("ignore", message=r".*type hints to the `predict` method.*")
mlflow.models.set_model(SurvivalPyfunc())
