"""Models: survival (return after a lapse, churn of active customers), uplift, evaluation.

The survival models are scikit-learn style estimators (see
:mod:`winback_ml.models.survival`); names are ``<Method><Domain>Model``.
Submodules are imported lazily, so ``import winback_ml.models`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "KaplanMeierReturnModel",
    "CoxReturnModel",
    "WeibullCureReturnModel",
    "XGBoostAFTReturnModel",
    "RETURN_MODELS",
    "KaplanMeierChurnModel",
    "CoxChurnModel",
    "WeibullCureChurnModel",
    "XGBoostAFTChurnModel",
    "DiscreteHazardChurnModel",
    "CHURN_MODELS",
    "build_churn_risk",
    "compare_models",
]

_WHERE = {
    "KaplanMeierReturnModel": "return_model",
    "CoxReturnModel": "return_model",
    "WeibullCureReturnModel": "return_model",
    "XGBoostAFTReturnModel": "return_model",
    "RETURN_MODELS": "return_model",
    "KaplanMeierChurnModel": "churn_model",
    "CoxChurnModel": "churn_model",
    "WeibullCureChurnModel": "churn_model",
    "XGBoostAFTChurnModel": "churn_model",
    "DiscreteHazardChurnModel": "churn_model",
    "CHURN_MODELS": "churn_model",
    "build_churn_risk": "churn_model",
    "compare_models": "evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        mod = importlib.import_module(f"{__name__}.{_WHERE[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
