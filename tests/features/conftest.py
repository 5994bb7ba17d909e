"""Fixtures of the feature tests: a small synthetic world with a fixed seed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def world_small():
    from winback_ml.data.synthetic import make_world

    return make_world(1500, seed=11)
