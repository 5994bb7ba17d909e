"""Fixtures of the cohort tests (the tiny business lives in ``cohort_tiny``)."""

from __future__ import annotations

import pandas as pd
import pytest
from cohort_tiny import tiny_tables


@pytest.fixture
def tiny() -> dict[str, pd.DataFrame]:
    """A fresh copy of the tiny business (tests may modify it)."""
    return tiny_tables()
