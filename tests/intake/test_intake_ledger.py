"""The ledger: idempotent, order-independent, nothing lost; truth recovered; queue; health."""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from winback_ml.data.loader import load_data
from winback_ml.intake import IntakeLedger
from winback_ml.intake.ledger import (
    INTAKE_METADATA,
    dead_letters_table,
    inbox_table,
    winback_queue_table,
)
from winback_ml.intake.samples import (
    TestPKI,
    apple_notification,
    apple_transaction,
    make_webhook_stream,
    stripe_event,
    stripe_invoice,
    stripe_subscription,
)

T0 = datetime(2025, 3, 1, 12, 0, 0)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/store.db"


def dump(ledger: IntakeLedger, *, volatile: bool = False) -> dict[str, pd.DataFrame]:
    """Every contract and intake table, sorted, for equality checks."""
    out = {}
    with ledger.engine.connect() as conn:
        for name in ("customers", "subscriptions", "events"):
            t = ledger.store.table(name)
            df = pd.read_sql(sa.select(t), conn)
            out[name] = df.sort_values(df.columns[0]).reset_index(drop=True)
        q = pd.read_sql(sa.select(winback_queue_table), conn)
        if not volatile:
            q = q.drop(columns=["queued_at", "status_at"])
        out["winback_queue"] = q.sort_values("queue_id").reset_index(drop=True)
        if volatile:
            for t in (inbox_table, dead_letters_table):
                df = pd.read_sql(sa.select(t), conn)
                out[t.name] = df.sort_values(df.columns[0]).reset_index(drop=True)
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        pd.testing.assert_frame_equal(a[k], b[k], check_dtype=False, obj=k)


@pytest.fixture(scope="module")
def stream():
    return make_webhook_stream(60, seed=7)


def test_stream_recovers_the_truth(url, stream):
    bodies, truth = stream
    led = IntakeLedger(url)
    outs = [led.ingest(p, b) for p, b in bodies]
    assert [o.status for o in outs] == ["accepted"] * len(bodies)
    data = load_data(url)  # the store meets the whole contract (validate=True)
    subs = data.subscriptions.set_index("subscription_id")
    assert set(subs.index) == set(truth.final)
    for sid, t in truth.final.items():
        row = subs.loc[sid]
        assert row.status == t["status"], sid
        assert row.customer_id == t["customer_id"]
        if t["ended"]:
            assert row.cancel_reason == t["reason"], (sid, t)
            assert pd.notna(row.ended_at)
        else:
            assert pd.isna(row.ended_at) and row.cancel_reason is None
    ev = data.events
    assert len(ev) == sum(t["n_events"] for t in truth.final.values())
    # voluntary vs involuntary: payment_failed exactly for the involuntary ends
    ends = ev[ev.event_type.isin(["cancelled", "expired"])].set_index("subscription_id")
    for sid, t in truth.final.items():
        if t["ended"]:
            assert (ends.loc[sid, "reason"] == "payment_failed") == t["involuntary"], sid
    # intents are never ends: every ended subscription had at most one end event
    assert ends.index.is_unique
    # one queue row per end of service, involuntary ones flagged as system-initiated
    q = dump(led)["winback_queue"].set_index("subscription_id")
    assert set(q.index) == truth.ended
    for sid in truth.ended:
        assert q.loc[sid, "status"] == "pending"
        assert (q.loc[sid, "initiator"] == "system") == truth.final[sid]["involuntary"]
        assert q.loc[sid, "mrr"] > 0
    # customers were created with consent off and signup at the first event
    cust = data.customers.set_index("customer_id")
    assert not cust.email_opt_in.any() and not cust.sms_opt_in.any()
    first = ev.groupby("customer_id").occurred_at.min()
    assert (cust.loc[first.index, "signup_at"] <= first).all()


def test_ingesting_twice_changes_nothing(url, stream):
    bodies, _ = stream
    led = IntakeLedger(url)
    for p, b in bodies:
        led.ingest(p, b)
    before = dump(led, volatile=True)
    outs = [led.ingest(p, b) for p, b in bodies]
    assert {o.status for o in outs} == {"duplicate"}
    assert_same(before, dump(led, volatile=True))


def test_redelivery_with_other_whitespace_is_a_duplicate(url):
    led = IntakeLedger(url)
    body = stripe_event("customer.subscription.created", stripe_subscription(start=T0), created=T0)
    assert led.ingest("stripe", body).status == "accepted"
    pretty = json.dumps(json.loads(body), indent=2).encode()
    o = led.ingest("stripe", pretty)
    assert o.status == "duplicate" and "already accepted" in o.reason


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_out_of_order_delivery_converges(tmp_path, stream, seed):
    bodies, _ = stream
    a = IntakeLedger(f"sqlite:///{tmp_path}/in_order.db")
    for p, b in bodies:
        a.ingest(p, b)
    shuffled = bodies[:]
    random.Random(seed).shuffle(shuffled)
    b_led = IntakeLedger(f"sqlite:///{tmp_path}/shuffled.db")
    for p, b in shuffled:
        b_led.ingest(p, b)
    assert_same(dump(a), dump(b_led))
    # parked payloads (update before create) were resolved automatically
    with b_led.engine.connect() as conn:
        open_dl = conn.execute(
            sa.select(sa.func.count())
            .select_from(dead_letters_table)
            .where(dead_letters_table.c.status == "open")
        ).scalar()
    assert open_dl == 0


def test_conflicting_duplicate_is_dead_lettered_and_changes_nothing(url):
    led = IntakeLedger(url)
    led.ingest(
        "stripe",
        stripe_event(
            "customer.subscription.created",
            stripe_subscription(start=T0),
            evt_id="evt_1",
            created=T0,
        ),
    )
    before = dump(led)
    forged = stripe_event(
        "customer.subscription.created",
        stripe_subscription(start=T0, unit_amount=1),
        evt_id="evt_1",
        created=T0,
    )
    o = led.ingest("stripe", forged)
    assert o.status == "dead_lettered" and o.kind == "conflict"
    assert "conflicting duplicate" in o.reason and "evt_1" in o.reason
    assert_same(before, dump(led))


def test_update_before_create_is_parked_then_resolved(url):
    led = IntakeLedger(url)
    paid = stripe_event(
        "invoice.paid",
        stripe_invoice("in_1", "sub_9", "cus_9", paid_at=T0 + timedelta(days=30)),
        evt_id="evt_p",
    )
    o = led.ingest("stripe", paid)
    assert o.status == "dead_lettered" and o.kind == "unknown_subscription"
    assert "unknown to the store" in o.reason and "sub_9" in o.reason
    assert dump(led)["events"].empty  # nothing half-written
    created = stripe_event(
        "customer.subscription.created",
        stripe_subscription("sub_9", "cus_9", start=T0),
        evt_id="evt_c",
        created=T0,
    )
    assert led.ingest("stripe", created).status == "accepted"
    ev = dump(led)["events"]
    assert sorted(ev.event_type) == ["renewed", "subscribed"]
    rep = led.health()
    assert rep.dead_letters == []


def test_replay_after_a_fix(url):
    pki = TestPKI.create()
    wrong = TestPKI.create(name="Wrong")
    bodies = [
        apple_notification(
            "SUBSCRIBED",
            apple_transaction(f"9{i}", purchase=T0),
            subtype="INITIAL_BUY",
            uuid=f"u{i}",
            signed=T0,
            pki=pki,
        )
        for i in range(3)
    ]
    bad = IntakeLedger(url, apple_root=wrong.root_pem)
    outs = [bad.ingest("apple", b) for b in bodies]
    assert {o.kind for o in outs} == {"signature"}
    assert dump(bad)["events"].empty
    fixed = IntakeLedger(url, apple_root=pki.root_pem)
    res = fixed.replay()
    assert [o.status for o in res] == ["accepted"] * 3
    assert len(dump(fixed)["events"]) == 3
    with fixed.engine.connect() as conn:
        dl = conn.execute(
            sa.select(dead_letters_table.c.status, dead_letters_table.c.attempts)
        ).all()
        verif = conn.execute(sa.select(inbox_table.c.verification).distinct()).scalars().all()
    assert [r.status for r in dl] == ["resolved"] * 3
    assert verif == ["verified"]


def test_unverified_apple_is_stored_flagged(url):
    led = IntakeLedger(url)
    led.ingest("apple", apple_notification("SUBSCRIBED", apple_transaction(purchase=T0), signed=T0))
    with led.engine.connect() as conn:
        assert conn.execute(sa.select(inbox_table.c.verification)).scalar() == "unverified"


def test_reactivation_supersedes_the_queue_in_any_order(tmp_path):
    end = T0 + timedelta(days=30)
    back = T0 + timedelta(days=45)
    cancel = stripe_event(
        "customer.subscription.deleted",
        stripe_subscription(
            start=T0,
            status="canceled",
            canceled_at=end,
            ended_at=end,
            reason="cancellation_requested",
            feedback="unused",
        ),
        evt_id="evt_end",
        created=end,
    )
    created = stripe_event(
        "customer.subscription.created", stripe_subscription(start=T0), evt_id="evt_c", created=T0
    )
    renewed = stripe_event(
        "invoice.paid",
        stripe_invoice("in_back", paid_at=back, attempt_count=1),
        evt_id="evt_back",
        created=back,
    )
    results = []
    for order in (
        [created, cancel, renewed],
        [renewed, cancel, created],
        [cancel, renewed, created],
    ):
        led = IntakeLedger(f"sqlite:///{tmp_path}/{uuid.uuid4().hex}.db")
        for b in order:
            led.ingest("stripe", b)
        q = dump(led)["winback_queue"]
        results.append(q)
        assert list(q.status) == ["superseded"]
        assert list(q.reason) == ["unused"] and list(q.initiator) == ["customer"]
    for r in results[1:]:
        pd.testing.assert_frame_equal(results[0], r)


def test_end_of_service_enqueues_once(url):
    led = IntakeLedger(url)
    led.ingest(
        "stripe",
        stripe_event(
            "customer.subscription.created", stripe_subscription(start=T0), evt_id="e1", created=T0
        ),
    )
    end = T0 + timedelta(days=30)
    body = stripe_event(
        "customer.subscription.deleted",
        stripe_subscription(
            start=T0, status="canceled", canceled_at=end, ended_at=end, reason="payment_failed"
        ),
        evt_id="e2",
        created=end,
    )
    o = led.ingest("stripe", body)
    assert o.enqueued == ["stripe:e2"]
    assert led.ingest("stripe", body).enqueued == []
    q = dump(led)["winback_queue"]
    assert list(q.reason) == ["payment_failed"] and list(q.initiator) == ["system"]
    assert list(q.ended_at) == [end]


def test_health_ranks_dead_letters_by_revenue_at_stake(url):
    now = T0 + timedelta(days=60)
    led = IntakeLedger(url, now=lambda: now)
    for sid, amount in (("sub_small", 900), ("sub_big", 9900)):
        led.ingest(
            "stripe",
            stripe_event(
                "customer.subscription.created",
                stripe_subscription(sid, f"cus_{sid}", start=T0, unit_amount=amount),
                evt_id=f"c_{sid}",
                created=T0,
            ),
        )
    # a conflicting re-use of each creation id
    for sid in ("sub_small", "sub_big"):
        forged = stripe_event(
            "customer.subscription.created",
            stripe_subscription(sid, f"cus_{sid}", start=T0, unit_amount=1),
            evt_id=f"c_{sid}",
            created=T0,
        )
        assert led.ingest("stripe", forged).status == "dead_lettered"
    led.ingest("stripe", b"{broken")
    rep = led.health()
    assert [d["subscription_id"] for d in rep.dead_letters] == ["sub_big", "sub_small", None]
    assert [d["mrr_at_stake"] for d in rep.dead_letters] == [99.0, 9.0, 0.0]
    src = {s["source"]: s for s in rep.sources}["stripe"]
    assert src["volume"] == 5 and src["accepted"] == 2 and src["dead_lettered"] == 3
    assert src["reject_rate"] == pytest.approx(3 / 5)
    assert src["last_event_at"] == T0 and src["staleness_hours"] == pytest.approx(0.0)
    text = rep.to_text()
    assert "sub_big" in text and "60.0%" in text


def test_crash_between_store_and_process_loses_nothing(url):
    led = IntakeLedger(url)
    body = stripe_event("customer.subscription.created", stripe_subscription(start=T0), created=T0)
    inbox_id, prior = led.store_raw("stripe", body)  # the process dies right after this commit
    assert prior is None
    fresh = IntakeLedger(url)
    outs = fresh.recover()
    assert [o.status for o in outs] == ["accepted"] and outs[0].inbox_id == inbox_id
    assert fresh.ingest("stripe", body).status == "duplicate"


def test_a_bug_parks_the_body_instead_of_crashing(url, monkeypatch):
    import winback_ml.intake.ledger as ledger_mod

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(ledger_mod, "normalize", boom)
    led = IntakeLedger(url)
    o = led.ingest("stripe", b'{"id": "evt"}')
    assert o.status == "dead_lettered" and o.kind == "internal" and "RuntimeError: bug" in o.reason


def test_an_internal_error_reason_holds_no_address(url, monkeypatch):
    import winback_ml.intake.ledger as ledger_mod

    def boom(*a, **k):
        raise ValueError("could not parse 'jane.doe@example.com' or '+1 415 555 0123' (row 12)")

    monkeypatch.setattr(ledger_mod, "normalize", boom)
    o = IntakeLedger(url).ingest("stripe", b'{"id": "evt_pii"}')
    assert o.kind == "internal" and "ValueError: could not parse" in o.reason
    assert "jane.doe" not in o.reason and "555" not in o.reason and "row 12" in o.reason
    with IntakeLedger(url).engine.connect() as conn:
        stored = conn.execute(sa.select(dead_letters_table.c.error)).scalars().all()
    assert stored and not any("example.com" in e for e in stored)


def test_existing_store_rows_are_the_baseline(tmp_path):
    """A store loaded from a world: intake updates one subscription and keeps the rest."""
    from winback_ml.data.store import Store
    from winback_ml.data.synthetic import make_world

    world = make_world(60, seed=3)
    store = Store(f"sqlite:///{tmp_path}/w.db")
    store.write(world.tables)
    subs = world.tables["subscriptions"]
    live = subs[(subs.source == "stripe") & (~subs.status.isin(["cancelled", "expired"]))].iloc[0]
    led = IntakeLedger(store)
    start = live.started_at.to_pydatetime()
    end = world.end.to_pydatetime() - timedelta(hours=1)
    body = stripe_event(
        "customer.subscription.deleted",
        stripe_subscription(
            live.subscription_id,
            live.customer_id,
            start=start,
            status="canceled",
            canceled_at=end,
            ended_at=end,
            reason="cancellation_requested",
            feedback="too_complex",
            price_id=live.plan_id,
        ),
        evt_id="evt_world_end",
        created=end,
    )
    o = led.ingest("stripe", body)
    assert o.status == "accepted", o.reason
    data = load_data(store.url)
    row = data.subscriptions.set_index("subscription_id").loc[live.subscription_id]
    assert row.status == "cancelled" and row.cancel_reason == "too_complex" and row.ended_at == end
    others = data.subscriptions[
        data.subscriptions.subscription_id != live.subscription_id
    ].reset_index(drop=True)
    expected = load_data(world.tables).subscriptions
    expected = expected[expected.subscription_id != live.subscription_id].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, expected, check_dtype=False)
    assert len(data.events) == len(world.tables["events"]) + 1
    assert len(data.customers) == len(world.tables["customers"])


def test_schema_lives_on_its_own_metadata(url):
    led = IntakeLedger(url)
    led.create_schema()
    names = set(sa.inspect(led.engine).get_table_names())
    assert (
        set(INTAKE_METADATA.tables) <= names and {"events", "subscriptions", "customers"} <= names
    )


@pytest.mark.postgres
def test_postgres_same_behaviour(stream):
    base = os.environ.get("WINBACK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("WINBACK_TEST_POSTGRES_URL is not set (CI sets it; see .ci/postgres.sh)")
    schema = f"intake_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = (
            sa.make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        bodies, truth = stream
        led = IntakeLedger(url)
        led.create_schema()
        shuffled = bodies[:]
        random.Random(5).shuffle(shuffled)
        # two concurrent writers (advisory locks serialise one subscription's writers)
        import threading

        other = IntakeLedger(url)
        statuses: list[str] = []
        t = threading.Thread(
            target=lambda: statuses.extend(other.ingest(p, b).status for p, b in shuffled[1::2])
        )
        t.start()
        statuses.extend(led.ingest(p, b).status for p, b in shuffled[0::2])
        t.join()
        assert set(statuses) <= {"accepted", "dead_lettered"} and len(statuses) == len(shuffled)
        assert led.health().dead_letters == []
        other.store.dispose()
        first = dump(led, volatile=False)
        assert {o.status for o in (led.ingest(p, b) for p, b in bodies)} == {"duplicate"}
        assert_same(first, dump(led))
        subs = first["subscriptions"].set_index("subscription_id")
        for sid, t in truth.final.items():
            assert subs.loc[sid, "status"] == t["status"]
        assert set(first["winback_queue"].subscription_id) == truth.ended
        led.store.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.slow
def test_two_writers_at_once_converge(tmp_path, stream):
    """Two ledgers (as two processes would) ingest interleaved halves concurrently."""
    import threading

    bodies, _ = stream
    ref = IntakeLedger(f"sqlite:///{tmp_path}/ref.db")
    for p, b in bodies:
        ref.ingest(p, b)
    url = f"sqlite:///{tmp_path}/shared.db"
    IntakeLedger(url).create_schema()
    shuffled = bodies[:]
    random.Random(9).shuffle(shuffled)
    halves = [shuffled[0::2], shuffled[1::2]]
    errors: list[BaseException] = []

    def run(part):
        led = IntakeLedger(url)  # its own engine and lock: like another process
        try:
            for p, b in part:
                led.ingest(p, b)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(h,)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    shared = IntakeLedger(url)
    assert_same(dump(ref), dump(shared))
    assert shared.health().dead_letters == []


def test_ended_status_without_any_end_time_gets_the_snapshot_time(url):
    led = IntakeLedger(url)
    led.ingest(
        "stripe",
        stripe_event(
            "customer.subscription.created", stripe_subscription(start=T0), evt_id="c", created=T0
        ),
    )
    seen = T0 + timedelta(days=40)
    sub = stripe_subscription(start=T0, status="canceled")  # neither ended_at nor canceled_at
    o = led.ingest(
        "stripe", stripe_event("customer.subscription.updated", sub, evt_id="u", created=seen)
    )
    assert o.status == "accepted"
    row = load_data(url).subscriptions.iloc[0]
    assert row.status == "cancelled" and row.ended_at == seen


def test_event_long_before_the_start_is_refused(url):
    led = IntakeLedger(url)
    led.ingest(
        "stripe",
        stripe_event(
            "customer.subscription.created", stripe_subscription(start=T0), evt_id="c", created=T0
        ),
    )
    early = stripe_event(
        "invoice.paid", stripe_invoice("in_0", paid_at=T0 - timedelta(days=90)), evt_id="p"
    )
    o = led.ingest("stripe", early)
    assert o.status == "dead_lettered" and "more than a day earlier" in o.reason
    assert len(load_data(url).events) == 1


def test_thin_redelivery_with_a_refetched_resource_is_a_duplicate(url):
    from winback_ml.intake.samples import google_envelope, google_subscription

    led = IntakeLedger(url)
    first = google_envelope(4, google_subscription(start=T0), message_id="m-1", event_time=T0)
    later = google_envelope(
        4,
        google_subscription(start=T0, state="SUBSCRIPTION_STATE_CANCELED"),
        message_id="m-1",
        event_time=T0,
    )
    assert led.ingest("google", first).status == "accepted"
    o = led.ingest("google", later)
    assert o.status == "duplicate" and "already accepted" in o.reason


def test_apple_retry_signed_afresh_is_a_duplicate(url):
    pki = TestPKI.create()
    tx = apple_transaction(purchase=T0)
    a = apple_notification("SUBSCRIBED", tx, uuid="same-uuid", signed=T0, pki=pki)
    b = apple_notification(
        "SUBSCRIBED", tx, uuid="same-uuid", signed=T0 + timedelta(hours=1), pki=pki
    )
    assert a != b  # new signatures, new signedDate
    led = IntakeLedger(url, apple_root=pki.root_pem)
    assert led.ingest("apple", a).status == "accepted"
    assert led.ingest("apple", b).status == "duplicate"


def test_chargebee_retry_with_new_webhook_status_is_a_duplicate(url):
    from winback_ml.intake.samples import chargebee_event, chargebee_subscription

    body = chargebee_event("subscription_created", chargebee_subscription(start=T0), occurred_at=T0)
    doc = json.loads(body)
    doc["webhook_status"] = "failed"
    led = IntakeLedger(url)
    assert led.ingest("chargebee", body).status == "accepted"
    assert led.ingest("chargebee", json.dumps(doc).encode()).status == "duplicate"
