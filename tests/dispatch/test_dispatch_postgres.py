"""The same dispatch code on PostgreSQL (``WINBACK_TEST_POSTGRES_URL``; skipped when unset).

Each test works in its own PostgreSQL schema (created and dropped here), so
the database behind the URL is left as it was.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from dispatch_helpers import make_tables, make_targets

from winback_ml.data.store import Store
from winback_ml.dispatch.channels import DryRunChannel, SMTPEmailChannel
from winback_ml.dispatch.codes import issue_codes, redeem_code
from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.outbox import Dispatcher, outbox_counts
from winback_ml.dispatch.schema import DispatchDB, codes
from winback_ml.dispatch.sequences import load_sequences

URL = os.environ.get("WINBACK_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not URL, reason="WINBACK_TEST_POSTGRES_URL is not set (a PostgreSQL URL to test against)"
    ),
]
T0 = datetime(2025, 6, 21, 10, 0)


@pytest.fixture
def pg_store():
    schema = f"wb_dispatch_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(URL).update_query_dict({"options": f"-csearch_path={schema}"})
    store = Store(url.render_as_string(hide_password=False))
    store.write(make_tables(30))
    yield store
    store.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _book():
    book = load_sequences()
    book.settings.quiet_hours = None
    book.settings.frequency_cap = {"per_day": 0, "per_week": 0}
    return book


def test_enrol_and_tick_on_postgres(pg_store, smtp_server):
    assert pg_store.dialect == "postgresql"
    book = _book()
    plan = enrol_targets(
        pg_store, make_targets([f"c{i}" for i in range(30)]), T0, holdout=0.2, book=book
    )
    again = enrol_targets(
        pg_store, make_targets([f"c{i}" for i in range(30)]), T0, holdout=0.2, book=book
    )
    assert again.summary()["enrolled"] == 0
    disp = Dispatcher(
        pg_store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=book
    )
    for d in (0, 14, 28):
        disp.tick(T0 + timedelta(days=d, hours=1))
    n = plan.summary()["enrolled"]
    assert sorted(smtp_server.received.values()) == [1] * (3 * n)
    assert outbox_counts(pg_store)["sent"] == 3 * n
    data = pg_store.read()
    assert len(data.campaign_assignments) == 30


def test_skip_locked_claims_are_disjoint_on_postgres(pg_store, tmp_path):
    book = _book()
    enrol_targets(
        pg_store,
        make_targets([f"c{i}" for i in range(30)], channel="email"),
        T0,
        holdout=0.0,
        book=book,
    )
    a = Dispatcher(pg_store, {"email": DryRunChannel(tmp_path / "a")}, book=book)
    b = Dispatcher(pg_store, {"email": DryRunChannel(tmp_path / "b")}, book=book)
    ra, rb = a._claim(T0, 20), b._claim(T0, 20)
    assert len(ra) == 20 and len(rb) == 10 and not {r.id for r in ra} & {r.id for r in rb}


def test_codes_constraint_and_single_use_on_postgres(pg_store):
    db = DispatchDB(pg_store)
    c = issue_codes(
        db,
        [
            {
                "enrolment_id": "e1",
                "customer_id": "c1",
                "offer_type": "discount",
                "discount_pct": 10,
                "discount_months": 1,
            }
        ],
        T0,
    )
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.execute(
            codes.insert(),
            [
                {
                    "code": c["e1"],
                    "enrolment_id": "e2",
                    "customer_id": "c2",
                    "offer_type": "discount",
                    "discount_pct": 5,
                    "discount_months": 1,
                    "issued_at": T0,
                    "expires_at": T0,
                }
            ],
        )
    assert redeem_code(db, c["e1"], T0) == "redeemed"
    assert redeem_code(db, c["e1"], T0) == "already_redeemed"
