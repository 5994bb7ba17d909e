"""Known truth from the synthetic world: its event log, exported as CSV, comes back whole.

The world's ``events`` (all six sources) are written as a billing CSV export
(plan and price on each subscription's first row only, as an export of an
event log would have them), ingested through the ledger in order and
shuffled, and the store must then hold exactly the world's events and the
world's end-of-service facts (status, ended_at, cancel_reason), and one queue
row per end.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

from winback_ml.data.loader import load_data
from winback_ml.data.synthetic import make_world
from winback_ml.intake import IntakeLedger, split_bodies
from winback_ml.intake.samples import csv_export


@pytest.fixture(scope="module")
def world():
    return make_world(60, seed=4)


def _export(world) -> bytes:
    ev = world.tables["events"].sort_values(["occurred_at", "event_id"])
    subs = world.tables["subscriptions"].set_index("subscription_id")
    rows, seen = [], set()
    for e in ev.itertuples(index=False):
        r = {
            "event_id": e.event_id,
            "occurred_at": e.occurred_at.isoformat(),
            "customer_id": e.customer_id,
            "subscription_id": e.subscription_id,
            "source": e.source,
            "event_type": e.event_type,
            "amount": "" if pd.isna(e.amount) else repr(float(e.amount)),
            "currency": e.currency or "",
            "reason": e.reason or "",
            "detail": e.detail or "",
            "plan_id": "",
            "plan_tier": "",
            "billing_interval": "",
            "price": "",
            "started_at": "",
        }
        if e.subscription_id not in seen:
            seen.add(e.subscription_id)
            s = subs.loc[e.subscription_id]
            r.update(
                plan_id=s.plan_id,
                plan_tier=s.plan_tier,
                billing_interval=s.billing_interval,
                price=repr(float(s.price)),
                started_at=s.started_at.isoformat(),
            )
        rows.append(r)
    return csv_export(rows)


@pytest.mark.parametrize("shuffle", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_world_event_log_round_trips_through_csv_intake(tmp_path, world, shuffle):
    parts = split_bodies("csv", _export(world))
    if shuffle:
        random.Random(0).shuffle(parts)
    url = f"sqlite:///{tmp_path}/world.db"
    led = IntakeLedger(url, now=lambda: world.end.to_pydatetime())
    outs = [led.ingest("csv", body, label=lbl) for lbl, body in parts]
    assert {o.status for o in outs} <= {"accepted", "dead_lettered"}
    assert led.health().dead_letters == []  # parked rows all resolved
    got = load_data(url)  # contract-valid
    cols = list(world.tables["events"].columns)
    want = load_data(world.tables).events.sort_values("event_id").reset_index(drop=True)
    have = got.events[cols].sort_values("event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(have, want[cols], check_dtype=False)
    ws = world.tables["subscriptions"].set_index("subscription_id").sort_index()
    hs = got.subscriptions.set_index("subscription_id").sort_index()
    assert list(hs.index) == list(ws.index)
    ended = ws.status.isin(["cancelled", "expired"])
    assert (hs.status[ended] == ws.status[ended]).all()
    assert not hs.status[~ended].isin(["cancelled", "expired"]).any()
    pd.testing.assert_series_equal(hs.ended_at, ws.ended_at, check_dtype=False)
    pd.testing.assert_series_equal(
        hs.cancel_reason[ended], ws.cancel_reason[ended], check_dtype=False
    )
    for c in ("customer_id", "source", "plan_id", "billing_interval", "currency", "started_at"):
        pd.testing.assert_series_equal(hs[c], ws[c], check_dtype=False, obj=c)
    usd = ws.currency == "USD"
    pd.testing.assert_series_equal(hs.mrr[usd], ws.mrr[usd], check_dtype=False, atol=1e-6)
    q = pd.read_sql_table("winback_queue", led.engine)
    ends = want[want.event_type.isin(["cancelled", "expired"])]
    assert sorted(q.queue_id) == sorted(ends.event_id)
    involuntary = q.set_index("queue_id").initiator.eq("system")
    assert (
        involuntary
        == ends.set_index("event_id").reason.eq("payment_failed").reindex(involuntary.index)
    ).all()
    # a return after the end supersedes the queue row (the customer is back)
    back = want[want.event_type.isin(["subscribed", "reactivated", "renewed", "payment_recovered"])]
    for row in q.itertuples():
        later = back[
            (back.subscription_id == row.subscription_id) & (back.occurred_at > row.ended_at)
        ]
        assert (row.status == "superseded") == (not later.empty)
