"""Shared fixtures: synthetic worlds with fixed seeds, cached per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HILLSTROM = SHARED / "data" / "hillstrom.csv"


@pytest.fixture(autouse=True, scope="session")
def _isolated_mlflow(tmp_path_factory):
    """Keep MLflow and the store out of the checkout during tests."""
    root = tmp_path_factory.mktemp("mlflow")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    os.environ.setdefault("WINBACK_MLFLOW_ARTIFACTS", str(root / "artifacts"))
    os.environ.setdefault("WINBACK_STORE_URL", f"sqlite:///{root}/store.db")
    yield


@pytest.fixture(scope="session")
def hillstrom_path() -> Path:
    if not HILLSTROM.exists():
        pytest.skip(
            f"Hillstrom data not found at {HILLSTROM} (it lives in ../shared/data/, never in git)"
        )
    return HILLSTROM
