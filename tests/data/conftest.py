from __future__ import annotations

import pandas as pd
import pytest
from tinyworld import tiny_tables


@pytest.fixture
def tiny() -> dict[str, pd.DataFrame]:
    return tiny_tables()
