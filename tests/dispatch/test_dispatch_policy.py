"""Stop and respect: reactivation, unsubscribe, complaint, bounce, STOP, consent, quiet hours, no future data."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import sqlalchemy as sa
from dispatch_helpers import TEST_SETTINGS, make_targets

from winback_ml.dispatch.channels import SMTPEmailChannel, TwilioSMSChannel
from winback_ml.dispatch.codes import redeem_code
from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.outbox import Dispatcher
from winback_ml.dispatch.policy import (
    get_unsubscribe_secret,
    handle_inbound_sms,
    make_unsubscribe_token,
    next_allowed_time,
    record_feedback,
    unsubscribe,
    verify_unsubscribe_token,
)
from winback_ml.dispatch.schema import DispatchDB, enrolments, outbox
from winback_ml.dispatch.sequences import load_sequences
from winback_ml.exceptions import DispatchError

T0 = datetime(2025, 6, 21, 10, 0)


def _book():
    book = load_sequences()
    for k, v in TEST_SETTINGS.items():
        setattr(book.settings, k, v)
    return book


def _states(store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.read_sql(
            sa.select(
                outbox.c.customer_id,
                outbox.c.channel,
                outbox.c.step_name,
                outbox.c.state,
                outbox.c.last_error,
            ),
            conn,
        )


def _setup(store_factory, n=4):
    store = store_factory(n)
    enrol_targets(store, make_targets([f"c{i}" for i in range(n)]), T0, holdout=0.0, book=_book())
    return store


def _add_event(store, cid, etype, at, detail=None):
    with store.engine.begin() as conn:
        conn.execute(
            store.table("events").insert(),
            [
                {
                    "event_id": f"x-{cid}-{etype}-{at:%j%H}",
                    "occurred_at": at,
                    "customer_id": cid,
                    "subscription_id": f"s{cid[1:]}",
                    "source": "stripe",
                    "event_type": etype,
                    "detail": detail,
                }
            ],
        )


def test_token_roundtrip_tamper_and_wrong_secret():
    t = make_unsubscribe_token(b"secret", "c1", "email", T0)
    assert verify_unsubscribe_token(t, b"secret") == ("c1", "email")
    payload, sig = t.split(".")
    forged = make_unsubscribe_token(b"other", "c2", "email", T0).split(".")[0] + "." + sig
    for bad in (forged, t[:-2] + "xx", "garbage", ""):
        with pytest.raises(DispatchError):
            verify_unsubscribe_token(bad, b"secret")
    with pytest.raises(DispatchError):
        verify_unsubscribe_token(t, b"wrong")
    with pytest.raises(DispatchError, match="days old"):
        verify_unsubscribe_token(t, b"secret", max_age_days=30, now=T0 + timedelta(days=31))


def test_token_non_ascii_signature_is_a_dispatch_error():
    t = make_unsubscribe_token(b"secret", "c1", "email", T0)
    with pytest.raises(DispatchError, match="does not verify"):
        verify_unsubscribe_token(t.split(".")[0] + ".\u00e9\u00e9", b"secret")


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/Los_Angeles"])
def test_token_age_does_not_depend_on_the_local_time_zone(tz, monkeypatch):
    import time as _time

    monkeypatch.setenv("TZ", tz)
    _time.tzset()
    try:
        t = make_unsubscribe_token(b"secret", "c1", "email", T0)
        near = T0 + timedelta(days=30) - timedelta(hours=1)
        assert verify_unsubscribe_token(t, b"secret", max_age_days=30, now=near) == ("c1", "email")
        with pytest.raises(DispatchError, match="days old"):
            verify_unsubscribe_token(
                t, b"secret", max_age_days=30, now=T0 + timedelta(days=30, hours=1)
            )
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()


def test_secret_is_kept_in_the_store_and_env_wins(store_factory, monkeypatch):
    monkeypatch.delenv("WINBACK_UNSUBSCRIBE_SECRET", raising=False)
    db = DispatchDB(store_factory(1))
    s1 = get_unsubscribe_secret(db)
    assert s1 == get_unsubscribe_secret(DispatchDB(db.store.url)) and len(s1) == 64
    monkeypatch.setenv("WINBACK_UNSUBSCRIBE_SECRET", "from-env")
    assert get_unsubscribe_secret(db) == b"from-env"


def test_unsubscribe_link_in_every_email_works(store_factory, smtp_server, monkeypatch):
    monkeypatch.delenv("WINBACK_UNSUBSCRIBE_SECRET", raising=False)
    store = _setup(store_factory, 2)
    disp = Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=_book()
    )
    disp.tick(T0)
    raw = smtp_server.messages[0]["raw"].decode()
    import email

    msg = email.message_from_string(raw)
    url = msg["List-Unsubscribe"].strip("<>")
    token = parse_qs(urlparse(url).query)["t"][0]
    to = msg["To"]
    cid = unsubscribe(DispatchDB(store), token, at=T0 + timedelta(hours=1))
    assert f"user{cid[1:]}@example.com" == to
    st = _states(store)
    mine = st[st.customer_id == cid]
    assert set(mine.loc[mine.channel == "email", "state"]) == {"sent", "cancelled"}
    assert set(mine.loc[mine.channel != "email", "state"]) == {"pending"}  # SMS and in-app go on
    disp.tick(T0 + timedelta(days=14, hours=1))
    assert sum(1 for m in smtp_server.messages if m["rcpt"] == [to]) == 1


def test_reactivation_stops_the_sequence_and_future_events_are_not_read(store_factory, smtp_server):
    store = _setup(store_factory, 3)
    _add_event(store, "c0", "reactivated", T0 + timedelta(days=2))
    _add_event(store, "c1", "subscribed", T0 + timedelta(days=20))  # in the future at day 3
    disp = Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=_book()
    )
    disp.tick(T0)
    r = disp.tick(T0 + timedelta(days=3))
    assert r.stopped_enrolments == 1
    st = _states(store)
    assert set(st.loc[(st.customer_id == "c0") & (st.step_name != "intro"), "state"]) == {
        "cancelled"
    }
    assert set(st.loc[(st.customer_id == "c1") & (st.step_name != "intro"), "state"]) == {"pending"}
    with store.engine.connect() as conn:
        e = dict(conn.execute(sa.select(enrolments.c.customer_id, enrolments.c.status)).all())
    assert e == {"c0": "stopped", "c1": "active", "c2": "active"}
    disp.tick(T0 + timedelta(days=21))
    assert set(
        _states(store).query("customer_id == 'c1' and step_name == 'last_chance'")["state"]
    ) == {"cancelled"}


def test_code_redemption_stops_the_sequence(store_factory):
    store = _setup(store_factory, 2)
    with store.engine.connect() as conn:
        code = conn.execute(
            sa.select(enrolments.c.code).where(enrolments.c.customer_id == "c1")
        ).scalar()
    db = DispatchDB(store)
    assert redeem_code(db, code, T0 + timedelta(days=1)) == "redeemed"
    from winback_ml.dispatch.policy import apply_stop_rules

    out = apply_stop_rules(db, T0 + timedelta(days=2))
    assert out["code_redeemed"] == 1
    st = _states(store)
    assert set(st.loc[st.customer_id == "c1", "state"]) == {"cancelled"}


def test_complaint_closes_every_channel_bounce_only_email(store_factory):
    store = _setup(store_factory, 3)
    db = DispatchDB(store)
    record_feedback(db, "complaint", customer_id="c0", at=T0)
    record_feedback(
        db, "bounce", customer_id="c1", address="user1@example.com", channel="email", at=T0
    )
    st = _states(store)
    assert set(st.loc[st.customer_id == "c0", "state"]) == {"cancelled"}
    c1 = st[st.customer_id == "c1"]
    assert set(c1.loc[c1.channel == "email", "state"]) == {"cancelled"}
    assert set(c1.loc[c1.channel != "email", "state"]) == {"pending"}
    with pytest.raises(DispatchError, match="kind"):
        record_feedback(db, "spam", customer_id="c0")


def test_suppressed_address_is_stored_hashed_and_blocks_sending(store_factory, smtp_server):
    store = _setup(store_factory, 2)
    db = DispatchDB(store)
    record_feedback(
        db, "bounce", address="USER0@example.com ", channel="email", at=T0 - timedelta(days=1)
    )
    from winback_ml.dispatch.schema import suppression

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(suppression)).all()
    assert "example" not in str(rows)
    Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=_book()
    ).tick(T0)
    assert [m["rcpt"] for m in smtp_server.messages] == [["user1@example.com"]]


def test_sms_stop_withdraws_consent_and_start_restores(store_factory, http_server):
    store = _setup(store_factory, 2)
    db = DispatchDB(store)
    reply = handle_inbound_sms(db, "+4915100000000", " stop ", at=T0)
    assert "unsubscribed" in reply
    assert handle_inbound_sms(db, "+4915100000000", "thanks!") is None
    disp = Dispatcher(
        store, {"sms": TwilioSMSChannel(http_server.url, "AC", "t", "+1555")}, book=_book()
    )
    disp.tick(T0 + timedelta(days=3, hours=1))
    assert [r["form"]["To"] for r in http_server.requests] == ["+4915100000001"]
    st = _states(store)
    assert st.query("customer_id == 'c0' and channel == 'sms'")["state"].tolist() == ["cancelled"]
    assert "subscribed again" in handle_inbound_sms(
        db, "+4915100000000", "START", at=T0 + timedelta(days=4)
    )
    from winback_ml.dispatch.schema import suppression

    with store.engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count())
            .select_from(suppression)
            .where(suppression.c.reason == "stop")
        ).scalar()
    assert left == 0


@pytest.mark.parametrize(
    "body", ["STOP\nthanks", "Stop\tplease", "\n stop.\n", "Stop, please", "STOP?"]
)
def test_sms_stop_after_any_whitespace(store_factory, body):
    db = DispatchDB(_setup(store_factory, 1))
    reply = handle_inbound_sms(db, "+4915100000000", body, at=T0)
    assert reply is not None and "unsubscribed" in reply
    assert handle_inbound_sms(db, "+4915100000000", "\n\t ") is None


def test_consent_withdrawn_in_customers_skips_at_send_time(store_factory, smtp_server):
    store = _setup(store_factory, 2)
    cust = store.table("customers")
    with store.engine.begin() as conn:
        conn.execute(cust.update().where(cust.c.customer_id == "c1").values(email_opt_in=False))
    Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=_book()
    ).tick(T0)
    st = _states(store)
    row = st.query("customer_id == 'c1' and step_name == 'intro'").iloc[0]
    assert row["state"] == "skipped" and "consent" in row["last_error"]
    assert smtp_server.count() == 1


@pytest.mark.parametrize(
    "now,tz,expect",
    [
        (
            datetime(2025, 6, 21, 12, 0),
            "Europe/Berlin",
            datetime(2025, 6, 21, 12, 0),
        ),  # 14:00 local
        (
            datetime(2025, 6, 21, 20, 30),
            "Europe/Berlin",
            datetime(2025, 6, 22, 7, 0),
        ),  # 22:30 CEST -> 09:00
        (
            datetime(2025, 12, 21, 20, 30),
            "Europe/Berlin",
            datetime(2025, 12, 22, 8, 0),
        ),  # winter: CET
        (
            datetime(2025, 6, 21, 3, 0),
            "America/New_York",
            datetime(2025, 6, 21, 13, 0),
        ),  # 23:00 EDT
        (datetime(2025, 6, 21, 3, 0), None, datetime(2025, 6, 21, 9, 0)),  # no zone: UTC
        (
            datetime(2025, 6, 21, 3, 0),
            "Mars/Olympus",
            datetime(2025, 6, 21, 9, 0),
        ),  # unknown zone: UTC
    ],
)
def test_quiet_hours_in_the_customer_zone(now, tz, expect):
    assert next_allowed_time(now, tz, {"start": "21:00", "end": "09:00"}) == expect


def test_a_code_seen_by_intake_stops_the_sequence_at_the_next_tick(store_factory, smtp_server):
    store = _setup(store_factory, 2)
    with store.engine.connect() as conn:
        code = conn.execute(
            sa.select(enrolments.c.code).where(enrolments.c.customer_id == "c0")
        ).scalar()
    disp = Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=_book()
    )
    disp.tick(T0)
    _add_event(
        store, "c0", "plan_changed", T0 + timedelta(days=5), detail=f"coupon.applied;code:{code}"
    )
    r = disp.tick(T0 + timedelta(days=6))
    assert r.codes_redeemed == 1 and r.stopped_enrolments == 1
    assert disp.tick(T0 + timedelta(days=7)).codes_redeemed == 0  # not counted twice
    st = _states(store)
    assert set(st.query("customer_id == 'c0' and step_name != 'intro'")["state"]) == {"cancelled"}
    assert set(st.query("customer_id == 'c1' and step_name != 'intro'")["state"]) == {"pending"}


@pytest.mark.parametrize(
    "settings,match",
    [
        ("quiet_hours: {start: 21:00, end: '09:00'}", "quote it in YAML"),  # YAML reads 1260
        ("quiet_hours: {start: '25:00', end: '09:00'}", "quiet_hours.start"),
        ("quiet_hours: {start: '21:00'}", "quiet_hours must be"),
        ("default_timezone: Mars/Olympus", "not an IANA time zone"),
        ("frequency_cap: {per_day: -1, per_week: 3}", "frequency_cap.per_day"),
    ],
)
def test_bad_settings_fail_at_load_not_at_the_first_tick(tmp_path, settings, match):
    from winback_ml.exceptions import ConfigError

    p = tmp_path / "seq.yaml"
    p.write_text(
        f"settings:\n  {settings}\nsequences:\n"
        "  - id: s\n    steps:\n      - {name: a, day: 0, channel: email, template: intro}\n"
    )
    with pytest.raises(ConfigError, match=match):
        load_sequences(p)
    ok = (
        "settings:\n  quiet_hours: {start: '21:00', end: '09:00'}\n"
        + p.read_text().split("\n", 2)[2]
    )
    p.write_text(ok)
    assert load_sequences(p).settings.quiet_hours == {"start": "21:00", "end": "09:00"}


def test_an_unsubscribe_recorded_later_than_a_logical_now_is_still_honoured(
    store_factory, smtp_server
):
    # the web endpoint records at wall-clock time; a pipeline ticks at its as_of date
    db = DispatchDB(store_factory(2))
    # recorded before the enrolment (by customer and by address), stamped later than T0
    record_feedback(db, "unsubscribe", customer_id="c0", at=T0 + timedelta(days=400))
    record_feedback(db, "bounce", address="user1@example.com", at=T0 + timedelta(days=400))
    store = db.store
    enrol_targets(store, make_targets(["c0", "c1"]), T0, holdout=0.0, book=_book())
    Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=_book()
    ).tick(T0)
    assert smtp_server.messages == []
