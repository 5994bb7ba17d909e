"""Discount codes: entropy, alphabet, uniqueness by constraint, single use, expiry, CSV, redemption."""

from __future__ import annotations

import csv
import threading
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from winback_ml.dispatch import codes as codes_mod
from winback_ml.dispatch.codes import (
    ALPHABET,
    export_codes_csv,
    generate_code,
    issue_codes,
    mark_redeemed_from_events,
    normalize_code,
    redeem_code,
)
from winback_ml.dispatch.schema import DispatchDB, codes
from winback_ml.exceptions import DispatchError

T0 = datetime(2025, 6, 21, 10, 0)


def _req(n, offer="discount"):
    return [
        {
            "enrolment_id": f"e{i}",
            "campaign_id": "k",
            "customer_id": f"c{i}",
            "offer_type": offer,
            "discount_pct": 20,
            "discount_months": 3,
        }
        for i in range(n)
    ]


def test_alphabet_is_unambiguous_and_codes_carry_at_least_50_bits():
    assert len(ALPHABET) == 32 and not set("ILOU") & set(ALPHABET)
    cs = [generate_code() for _ in range(20_000)]
    assert all(len(c) == 12 and set(c) <= set(ALPHABET) for c in cs)
    assert len(set(cs)) == len(cs)
    # every character position is close to uniform over the 32 symbols (5 bits each)
    counts = pd.Series([c[0] for c in cs]).value_counts()
    assert len(counts) == 32 and counts.max() / counts.min() < 1.6
    with pytest.raises(DispatchError, match="50 bits"):
        generate_code(8)


def test_normalize_reads_what_people_type():
    assert normalize_code("abcd-2345-wxyz") == "ABCD2345WXYZ"
    assert normalize_code("I0L0 o") == "1010" + "0"


def test_uniqueness_is_a_database_constraint(store_factory):
    db = DispatchDB(store_factory(1))
    issued = issue_codes(db, _req(3), T0)
    dup = next(iter(issued.values()))
    row = {
        "code": dup,
        "enrolment_id": "other",
        "customer_id": "c9",
        "offer_type": "discount",
        "discount_pct": 5,
        "discount_months": 1,
        "issued_at": T0,
        "expires_at": T0,
    }
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.execute(codes.insert(), [row])


def test_a_collision_is_drawn_again(store_factory, monkeypatch):
    db = DispatchDB(store_factory(1))
    first = issue_codes(db, _req(1), T0)["e0"]
    seq = iter([first, "ZZZZZZZZZZZZ"])
    real = codes_mod.generate_code
    monkeypatch.setattr(codes_mod, "generate_code", lambda n=12: next(seq, None) or real(n))
    out = issue_codes(db, [{**_req(1)[0], "enrolment_id": "new"}], T0)
    assert out["new"] == "ZZZZZZZZZZZZ"


def test_issue_is_idempotent_per_enrolment(store_factory):
    db = DispatchDB(store_factory(1))
    a = issue_codes(db, _req(5), T0)
    b = issue_codes(db, _req(5), T0)
    assert a == b and len(set(a.values())) == 5


def test_single_use_and_expiry_even_under_concurrency(store_factory):
    db = DispatchDB(store_factory(1))
    c = issue_codes(db, _req(2), T0, valid_days=30)
    outcomes = []
    threads = [
        threading.Thread(
            target=lambda: outcomes.append(redeem_code(db, c["e0"], T0 + timedelta(days=1)))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_redeemed"] * 7 + ["redeemed"]
    assert redeem_code(db, c["e1"], T0 + timedelta(days=31)) == "expired"
    assert redeem_code(db, "NOPE00000000", T0) == "unknown"


def test_csv_export_for_billing_import(store_factory, tmp_path):
    db = DispatchDB(store_factory(1))
    c = issue_codes(db, _req(3), T0, valid_days=30)
    issue_codes(
        db,
        [
            {
                **_req(1, "free_month")[0],
                "enrolment_id": "fm",
                "discount_pct": 0,
                "discount_months": 1,
            }
        ],
        T0,
    )
    redeem_code(db, c["e2"], T0)
    n = export_codes_csv(db, tmp_path / "codes.csv")
    rows = list(csv.DictReader((tmp_path / "codes.csv").open()))
    assert n == 3 == len(rows)
    assert list(rows[0]) == [
        "code",
        "customer_id",
        "campaign_id",
        "offer_type",
        "percent_off",
        "duration_in_months",
        "expires_at",
        "max_redemptions",
    ]
    assert c["e2"] not in {r["code"] for r in rows}
    fm = next(r for r in rows if r["offer_type"] == "free_month")
    assert fm["percent_off"] == "100" and fm["max_redemptions"] == "1"
    assert rows[0]["expires_at"] == "2025-07-21T10:00:00Z"


def test_redemption_seen_by_intake_marks_the_code_used(store_factory):
    store = store_factory(3)
    db = DispatchDB(store)
    c = issue_codes(db, _req(3), T0)
    ev = store.table("events")
    with store.engine.begin() as conn:
        conn.execute(
            ev.insert(),
            [
                {
                    "event_id": "r1",
                    "occurred_at": T0 + timedelta(days=2),
                    "customer_id": "c0",
                    "subscription_id": "s0",
                    "source": "stripe",
                    "event_type": "reactivated",
                    "detail": f"customer.subscription.created;initiator:customer;cancel_reason_code:too_expensive;code:{c['e0'].lower()}",
                },
                {
                    "event_id": "r2",
                    "occurred_at": T0 + timedelta(days=9),
                    "customer_id": "c1",
                    "subscription_id": "s1",
                    "source": "stripe",
                    "event_type": "reactivated",
                    "detail": f"code:{c['e1']}",
                },
                {
                    "event_id": "r3",
                    "occurred_at": T0 + timedelta(days=3),
                    "customer_id": "c2",
                    "subscription_id": "s2",
                    "source": "stripe",
                    "event_type": "reactivated",
                    "detail": "code:UNKNOWN00000",
                },
            ],
        )
    rep = mark_redeemed_from_events(db, now=T0 + timedelta(days=5))  # r2 is in the future: not read
    assert rep.redeemed == ["r1"] and rep.unknown == ["r3"] and not rep.already_redeemed
    rep2 = mark_redeemed_from_events(db, now=T0 + timedelta(days=10))
    assert rep2.redeemed == ["r1", "r2"]  # r1 again is idempotent (same event)
    with store.engine.connect() as conn:
        used = dict(conn.execute(sa.select(codes.c.code, codes.c.redeemed_event_id)).all())
    assert used[c["e0"]] == "r1" and used[c["e1"]] == "r2" and used[c["e2"]] is None
