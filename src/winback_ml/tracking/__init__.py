"""Tracking: MLflow runs and registry (:mod:`winback_ml.tracking.mlflow`), KPIs.

Submodules are imported on demand; ``import winback_ml.tracking`` does not
import MLflow (about two seconds).
"""

from __future__ import annotations

__all__: list[str] = []
