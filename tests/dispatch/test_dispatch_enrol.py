"""Enrolment: validation of targets, never twice, atomic writes, auto-launch from the intake queue."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from dispatch_helpers import make_targets

from winback_ml.dispatch.autolaunch import enrol_from_queue
from winback_ml.dispatch.enrol import enrol_targets, plan_enrolment
from winback_ml.dispatch.schema import DispatchDB, codes, enrolments, outbox
from winback_ml.exceptions import DataContractError, DispatchError

T0 = datetime(2025, 6, 21, 10, 0)


def _count(store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_bad_targets_raise_one_error_naming_column_rows_and_fix(store_factory):
    store = store_factory(4)
    t = make_targets(["c0", "c1", "c2", "c3"])
    t.loc[1, "offer_type"] = "bribe"
    t.loc[2, "channel"] = "pigeon"
    t.loc[3, "discount_pct"] = 150
    t["contact"] = t["contact"].astype(object)
    t.loc[0, "contact"] = "maybe"
    with pytest.raises(DataContractError) as e:
        enrol_targets(store, t, T0)
    msg = str(e.value)
    for col, cid in (
        ("offer_type", "c1"),
        ("channel", "c2"),
        ("discount_pct", "c3"),
        ("contact", "c0"),
    ):
        assert f"targets.{col}" in msg and cid in msg
    assert "Fix:" in msg and "nothing was enrolled" in msg
    assert _count(store, outbox) == 0 and _count(store, enrolments) == 0
    with pytest.raises(DataContractError, match="missing columns"):
        enrol_targets(store, t.drop(columns=["channel"]), T0)


@pytest.mark.parametrize("months", ["inf", 1.5, -1])
def test_discount_months_must_be_a_whole_number(months):
    from winback_ml.dispatch.enrol import validate_targets

    t = make_targets(["c0", "c1"])
    t["discount_months"] = t["discount_months"].astype(object)
    t.loc[1, "discount_months"] = months
    with pytest.raises(DataContractError, match=r"targets\.discount_months") as e:
        validate_targets(t)
    assert "c1" in str(e.value) and "c0" not in str(e.value).split("discount_months")[1]


def test_plan_tier_is_read_as_of_now(store_factory):
    # c0 starts a 'basic' subscription after the enrolment time: the message must
    # still name the plan they had at `now` (no rows dated after now)
    def edit(tables):
        subs = tables["subscriptions"]
        later = subs.iloc[0].copy()
        later["subscription_id"], later["plan_tier"] = "s0_later", "basic"
        later["started_at"] = pd.Timestamp(T0 + timedelta(days=5))
        for c in ("cancel_requested_at", "current_period_end", "ended_at"):
            later[c] = pd.Timestamp(T0 + timedelta(days=40))
        subs.loc[len(subs)] = later

    store = store_factory(2, edit=edit)
    enrol_targets(store, make_targets(["c0", "c1"]), T0, holdout=0.0)
    with store.engine.connect() as conn:
        tiers = dict(
            conn.execute(sa.select(enrolments.c.customer_id, enrolments.c.plan_tier)).all()
        )
    assert tiers == {"c0": "pro", "c1": "pro"}


def test_unknown_customers_are_refused(store_factory):
    store = store_factory(2)
    with pytest.raises(DataContractError, match="not in the store's customers"):
        enrol_targets(store, make_targets(["c0", "ghost"]), T0)


def test_only_contact_true_and_never_twice(store_factory):
    store = store_factory(6)
    t = make_targets([f"c{i}" for i in range(6)])
    t["contact"] = pd.Series(["true", "false", True, False, 1, "0"], dtype=object)
    p1 = enrol_targets(store, t, T0, holdout=0.0)
    assert sorted(p1.enrolments["customer_id"]) == ["c0", "c2", "c4"]
    n = _count(store, outbox)
    p2 = enrol_targets(store, t, T0 + timedelta(hours=1), holdout=0.0)  # same campaign again
    assert p2.summary()["enrolled"] == 0 and set(p2.skipped["customer_id"]) == {"c0", "c2", "c4"}
    p3 = enrol_targets(
        store, t, T0 + timedelta(days=1), holdout=0.0, campaign_id="other"
    )  # still active
    assert p3.summary()["enrolled"] == 0
    assert _count(store, outbox) == n


def test_enrolment_is_atomic(store_factory, monkeypatch):
    store = store_factory(3)
    from winback_ml.dispatch import enrol as enrol_mod

    def boom(*a, **k):
        raise DispatchError("simulated failure after codes and enrolments were inserted")

    real = DispatchDB.insert_ignore
    calls = {"n": 0}

    def flaky(self, table, rows, chunk=20_000, conn=None):
        calls["n"] += 1
        if table.name == "campaign_assignments":
            boom()
        return real(self, table, rows, chunk, conn)

    monkeypatch.setattr(DispatchDB, "insert_ignore", flaky)
    with pytest.raises(DispatchError):
        enrol_mod.enrol_targets(store, make_targets(["c0", "c1", "c2"]), T0, holdout=0.0)
    monkeypatch.setattr(DispatchDB, "insert_ignore", real)
    assert calls["n"] >= 4
    for table in (outbox, enrolments, codes, store.table("campaigns")):
        assert _count(store, table) == 0, table.name
    plan = enrol_mod.enrol_targets(store, make_targets(["c0", "c1", "c2"]), T0, holdout=0.0)
    assert plan.summary()["enrolled"] == 3


def test_plan_writes_nothing_and_matches_enrol(store_factory):
    store = store_factory(10)
    t = make_targets([f"c{i}" for i in range(10)])
    plan = plan_enrolment(store, t, T0)
    assert _count(store, outbox) == 0
    done = enrol_targets(store, t, T0)
    assert plan.summary()["messages"] == done.summary()["messages"] == _count(store, outbox)
    assert sorted(plan.outbox["idempotency_key"]) == sorted(done.outbox["idempotency_key"])


def test_sequence_choice_by_segment_and_offer(store_factory):
    store = store_factory(3)
    t = make_targets(["c0", "c1", "c2"])
    t.loc[1, ["offer_type", "discount_pct", "discount_months", "cancel_reason"]] = [
        "resume_billing",
        0,
        0,
        "payment_failed",
    ]
    t.loc[2, "segment"] = "lost"
    plan = enrol_targets(store, t, T0, holdout=0.0)
    seq = plan.enrolments.set_index("customer_id")["sequence_id"]
    assert seq.to_dict() == {"c0": "winback_30d", "c1": "resume_billing", "c2": "lost_light"}
    assert plan.enrolments.set_index("customer_id")["code"].isna().to_dict() == {
        "c0": False,
        "c1": True,
        "c2": False,
    }
    steps = plan.outbox.groupby("customer_id")["step_name"].apply(list).to_dict()
    assert steps["c2"] == ["close_the_loop", "last_chance"]
    assert steps["c1"][0] == "update_card"


def _queue(store, rows):
    from winback_ml.intake.ledger import winback_queue_table as q

    q.metadata.create_all(store.engine, tables=[q], checkfirst=True)
    with store.engine.begin() as conn:
        conn.execute(q.insert(), rows)
    return q


def test_auto_launch_respects_the_contact_window(store_factory):
    store = store_factory(4)
    ended = datetime(2025, 6, 1)
    base = {
        "source": "stripe",
        "event_type": "cancelled",
        "initiator": "customer",
        "ended_at": ended,
        "queued_at": ended,
        "mrr": 29.0,
        "status": "pending",
        "status_at": ended,
    }
    q = _queue(
        store,
        [
            {
                **base,
                "queue_id": "q0",
                "customer_id": "c0",
                "subscription_id": "s0",
                "reason": "too_expensive",
            },
            {
                **base,
                "queue_id": "q1",
                "customer_id": "c1",
                "subscription_id": "s1",
                "reason": "payment_failed",
                "initiator": "system",
            },
            {
                **base,
                "queue_id": "q2",
                "customer_id": "c2",
                "subscription_id": "s2",
                "reason": "missing_features",
                "status": "superseded",
            },
            {
                **base,
                "queue_id": "q3",
                "customer_id": "c3",
                "subscription_id": "s3",
                "reason": "contract_ended",
                "queued_at": datetime(2025, 6, 5),
                "ended_at": datetime(2025, 6, 5),
            },
        ],
    )
    now = datetime(2025, 6, 3, 12, 0)
    plan = enrol_from_queue(store, now, holdout=0.0)
    e = plan.enrolments.set_index("customer_id")
    assert set(e.index) == {"c0", "c1"}  # superseded and not-yet-queued rows are left
    first = plan.outbox.groupby("customer_id")["due_at"].min()
    assert first["c1"] == now  # payment failure: resume billing at once
    assert first["c0"] == ended + timedelta(days=14)  # not before day 14
    assert (
        e.loc["c1", "sequence_id"] == "resume_billing" and e.loc["c0", "offer_type"] == "discount"
    )
    with store.engine.connect() as conn:
        st = dict(conn.execute(sa.select(q.c.queue_id, q.c.status)).all())
    assert st == {"q0": "enrolled", "q1": "enrolled", "q2": "superseded", "q3": "pending"}
    assert enrol_from_queue(store, now, holdout=0.0).summary()["enrolled"] == 0  # idempotent
    later = enrol_from_queue(store, datetime(2025, 6, 6), holdout=0.0)
    assert list(later.enrolments["customer_id"]) == ["c3"]
    assert later.enrolments["offer_type"].tolist() == ["early_renewal"]


def test_auto_launch_scorer_is_pluggable(store_factory):
    store = store_factory(2)
    ended = datetime(2025, 6, 1)
    _queue(
        store,
        [
            {
                "queue_id": "q0",
                "customer_id": "c0",
                "subscription_id": "s0",
                "source": "stripe",
                "event_type": "cancelled",
                "reason": "unused",
                "initiator": "customer",
                "ended_at": ended,
                "queued_at": ended,
                "mrr": 9.0,
                "status": "pending",
                "status_at": ended,
            }
        ],
    )

    def scorer(queue, db, now):
        return make_targets(list(queue["customer_id"]), contact=False)

    plan = enrol_from_queue(store, datetime(2025, 6, 20), scorer=scorer, holdout=0.0)
    assert plan.summary()["enrolled"] == 0
    from winback_ml.intake.ledger import winback_queue_table as q

    with store.engine.connect() as conn:
        assert conn.execute(sa.select(q.c.status)).scalar() == "skipped"


def test_targets_from_csv_roundtrip(store_factory, tmp_path):
    from winback_ml.dispatch.enrol import read_targets

    store = store_factory(3)
    make_targets(["c0", "c1", "c2"]).to_csv(tmp_path / "targets.csv", index=False)
    t = read_targets(tmp_path / "targets.csv")
    assert t["contact"].dtype == bool
    assert enrol_targets(store, t, T0, holdout=0.0).summary()["enrolled"] == 3


def test_chunked_enrolment_equals_one_transaction(store_factory):
    from winback_ml.dispatch.enrol import enrol_in_chunks

    a, b = store_factory(25), store_factory(25)
    t = make_targets([f"c{i}" for i in range(25)])
    one = enrol_targets(a, t, T0, holdout=0.2, campaign_id="k").summary()
    many = enrol_in_chunks(b, t, T0, chunk=7, holdout=0.2, campaign_id="k")
    for k in ("enrolled", "holdout", "messages", "codes", "messages_by_channel"):
        assert one[k] == many[k], k

    def keys(store):
        with store.engine.connect() as conn:
            return sorted(conn.execute(sa.select(outbox.c.idempotency_key)).scalars())

    assert keys(a) == keys(b)
    assert enrol_in_chunks(b, t, T0, chunk=7, holdout=0.2, campaign_id="k")["enrolled"] == 0
