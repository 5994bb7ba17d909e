"""Fixtures of the cohort tests (the tiny business lives in ``cohort_tiny``)."""

from __future__ import annotations

import pandas as pd
import pytest
from cohort_tiny import tiny_tables


@pytest.fixture
def tiny() -> dict[str, pd.DataFrame]:
    """A fresh copy of the tiny business (tests may modify it)."""
    return tiny_tables()


@pytest.fixture(scope="session")
def world():
    """A small synthetic world with known truth (fixed seed), shared by the cohort tests."""
    from winback_ml.data.synthetic import make_world

    return make_world(4000, seed=5)


@pytest.fixture(scope="session")
def world_data(world):
    """The world's tables loaded and validated as ContractData."""
    from winback_ml.data.loader import load_data

    return load_data(world.tables)
