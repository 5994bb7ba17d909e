"""Fixtures of the dispatch tests: a small store with known customers, targets, loopback servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from dispatch_helpers import make_tables

from winback_ml.data.store import Store


@pytest.fixture
def store_factory(tmp_path: Path):
    """Build a store with ``make_tables(**kw)`` (optionally modified by ``edit(tables)``)."""

    def build(n: int = 20, edit=None, **kw: object) -> Store:
        tables = make_tables(n, **kw)
        if edit is not None:
            edit(tables)
        s = Store(f"sqlite:///{tmp_path}/store_{n}_{len(list(tmp_path.iterdir()))}.db")
        s.write(tables)
        return s

    return build


@pytest.fixture
def smtp_server():
    from winback_ml.dispatch.testing import LoopbackSMTPServer

    with LoopbackSMTPServer() as srv:
        yield srv


@pytest.fixture
def http_server():
    from winback_ml.dispatch.testing import LoopbackHTTPServer

    with LoopbackHTTPServer() as srv:
        yield srv
