"""The outbox end to end against loopback servers: sequences, channels, failures, retries, recovery."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from dispatch_helpers import TEST_SETTINGS, make_targets

from winback_ml.dispatch.channels import (
    DryRunChannel,
    SMTPEmailChannel,
    TableInAppChannel,
    TwilioSMSChannel,
)
from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.outbox import Dispatcher, dead_letters, outbox_counts
from winback_ml.dispatch.schema import inapp, outbox
from winback_ml.dispatch.sequences import load_sequences
from winback_ml.dispatch.testing import LoopbackHTTPServer, free_port

T0 = datetime(2025, 6, 21, 10, 0)


def _book(**settings):
    book = load_sequences()
    for k, v in {**TEST_SETTINGS, **settings}.items():
        setattr(book.settings, k, v)
    return book


def _one(channel="email", template="intro", **settings):
    steps = [{"name": "a", "day": 0, "channel": channel, "template": template}]
    return load_sequences(
        {"settings": {**TEST_SETTINGS, **settings}, "sequences": [{"id": "one", "steps": steps}]}
    )


def _rows(store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.read_sql(sa.select(outbox), conn)


def test_full_sequence_every_step_once_on_its_day(store_factory, smtp_server, http_server):
    store = store_factory(10)
    book = _book()
    enrol_targets(store, make_targets([f"c{i}" for i in range(10)]), T0, holdout=0.0, book=book)
    chans = {
        "email": SMTPEmailChannel("127.0.0.1", smtp_server.port),
        "sms": TwilioSMSChannel(http_server.url, "AC1", "tok", "+15550000000"),
        "in_app": TableInAppChannel(store),
    }
    disp = Dispatcher(store, chans, book=book)
    sent_by_day = {}
    for day in range(0, 31):
        r = disp.tick(T0 + timedelta(days=day, hours=1))
        if r.sent:
            sent_by_day[day] = r.sent
        disp.tick(
            T0 + timedelta(days=day, hours=2)
        )  # a second tick the same day sends nothing more
    # default sequence: day 0 e-mail, 3 SMS, 7 in-app, 14 reminder, 28 last chance; 10 customers each
    assert sent_by_day == {0: 10, 3: 10, 7: 10, 14: 10, 28: 10}
    assert sorted(smtp_server.received.values()) == [1] * 30
    assert len(http_server.requests) == 10
    assert {r["form"]["To"] for r in http_server.requests} == {
        f"+4915100{i:06d}" for i in range(10)
    }
    assert all(
        r["headers"]["I-Twilio-Idempotency-Token"].startswith("wb-") for r in http_server.requests
    )
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inapp)).scalar() == 10
    assert outbox_counts(store) == {"sent": 50}
    # the message carries the idempotency key as Message-ID, the code and the unsubscribe link
    raw = smtp_server.messages[0]["raw"].decode()
    assert "Message-ID: <wb-" in raw and "List-Unsubscribe: <https://" in raw


def test_bad_input_fails_that_message_and_the_batch_goes_on(store_factory, smtp_server):
    def edit(t):
        t["customers"].loc[1, "email"] = None  # no address: skipped
        t["customers"].loc[2, "email_opt_in"] = False  # no consent: skipped
        t["customers"].loc[3, "language"] = "de"

    store = store_factory(6, edit=edit)
    # a customer whose address the server refuses permanently
    smtp_server.refuse.add("user4@example.com")
    book = _one()
    enrol_targets(
        store,
        make_targets([f"c{i}" for i in range(6)], channel="email"),
        T0,
        holdout=0.0,
        book=book,
    )
    # an invalid address stored after validation (e.g. edited in the CRM later)
    with store.engine.begin() as conn:
        conn.execute(
            store.table("customers")
            .update()
            .where(store.table("customers").c.customer_id == "c5")
            .values(email="not-an-address")
        )
    disp = Dispatcher(store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=book)
    r = disp.tick(T0)
    rows = _rows(store).set_index("customer_id")
    assert rows.loc["c0", "state"] == "sent" and rows.loc["c3", "state"] == "sent"
    assert (
        rows.loc["c1", "state"] == "skipped" and "no e-mail address" in rows.loc["c1", "last_error"]
    )
    assert rows.loc["c2", "state"] == "skipped" and "consent" in rows.loc["c2", "last_error"]
    assert rows.loc["c4", "state"] == "dead" and "refused (550)" in rows.loc["c4", "last_error"]
    assert (
        rows.loc["c5", "state"] == "dead"
        and "invalid e-mail address" in rows.loc["c5", "last_error"]
    )
    assert "not-an-address" not in rows.loc["c5", "last_error"]  # no PII in reasons
    assert r.sent == 2 and smtp_server.count() == 2
    assert {d["customer_id"] for d in dead_letters(store)} == {"c4", "c5"}


def test_template_failure_is_dead_lettered_with_reason(store_factory, smtp_server, tmp_path):
    (tmp_path / "tpl" / "en").mkdir(parents=True)
    (tmp_path / "tpl" / "en" / "broken.j2").write_text(
        "{% if part == 'subject' %}Hi{% else %}{{ not_there }}{% endif %}"
    )
    store = store_factory(3)
    book = load_sequences(
        {
            "settings": TEST_SETTINGS,
            "sequences": [
                {
                    "id": "x",
                    "match": {"segment": ["hot"]},
                    "steps": [{"name": "a", "day": 0, "channel": "email", "template": "broken"}],
                },
                {
                    "id": "y",
                    "steps": [{"name": "a", "day": 0, "channel": "email", "template": "intro"}],
                },
            ],
        }
    )
    t = make_targets(["c0", "c1", "c2"], channel="email")
    t.loc[2, "segment"] = "warm"
    enrol_targets(store, t, T0, holdout=0.0, book=book)
    from winback_ml.dispatch.templates import TemplateRenderer

    disp = Dispatcher(
        store,
        {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)},
        book=book,
        renderer=TemplateRenderer(tmp_path / "tpl"),
    )
    disp.tick(T0)
    rows = _rows(store).set_index("customer_id")
    assert list(rows["state"]) == ["dead", "dead", "sent"]
    assert (
        "missing variable" in rows.loc["c0", "last_error"]
        and "not_there" in rows.loc["c0", "last_error"]
    )


def test_channel_down_retries_with_backoff_then_dead_letter(store_factory):
    store = store_factory(2)
    book = _one(max_attempts=3, backoff_minutes=10)
    enrol_targets(store, make_targets(["c0", "c1"], channel="email"), T0, holdout=0.0, book=book)
    down = SMTPEmailChannel("127.0.0.1", free_port(), timeout=2)  # nothing listens there
    disp = Dispatcher(store, {"email": down}, book=book)
    r1 = disp.tick(T0)
    rows = _rows(store)
    assert r1.retried == 2 and set(rows["state"]) == {"pending"} and set(rows["attempts"]) == {1}
    assert (rows["next_attempt_at"] == T0 + timedelta(minutes=10)).all()
    assert "unreachable" in rows["last_error"].iloc[0]
    assert disp.tick(T0 + timedelta(minutes=5)).claimed == 0  # backoff not over
    disp.tick(T0 + timedelta(minutes=10))
    rows = _rows(store)
    assert (rows["next_attempt_at"] == T0 + timedelta(minutes=30)).all()  # 10, then 20 minutes
    r3 = disp.tick(T0 + timedelta(minutes=30))
    rows = _rows(store)
    assert r3.dead == 2 and set(rows["state"]) == {"dead"}
    assert rows["last_error"].str.contains("gave up after 3 attempts").all()


def test_sms_api_errors_retry_or_dead_letter(store_factory):
    store = store_factory(3)
    book = _one("sms", "sms")
    enrol_targets(
        store, make_targets(["c0", "c1", "c2"], channel="sms"), T0, holdout=0.0, book=book
    )
    with LoopbackHTTPServer(reject_numbers={"+4915100000001"}) as api:
        disp = Dispatcher(
            store, {"sms": TwilioSMSChannel(api.url, "AC1", "tok", "+15550000000")}, book=book
        )
        disp.tick(T0)
        rows = _rows(store).set_index("customer_id")
        assert rows.loc["c1", "state"] == "dead" and "HTTP 400" in rows.loc["c1", "last_error"]
        assert rows.loc["c0", "state"] == "sent" and rows.loc["c0", "provider_id"].startswith("SM")
        assert len(api.requests) == 2
    with store.engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.customer_id == "c2").values(state="pending"))
    with LoopbackHTTPServer(fail_status=503) as api:
        disp = Dispatcher(
            store, {"sms": TwilioSMSChannel(api.url, "AC1", "tok", "+15550000000")}, book=book
        )
        r = disp.tick(T0 + timedelta(hours=1))
        assert r.retried == 1
        assert _rows(store).set_index("customer_id").loc["c2", "state"] == "pending"


def test_quiet_hours_defer_to_local_morning_and_frequency_cap(store_factory, smtp_server):
    store = store_factory(2, tz="Asia/Tokyo")
    book = _book(
        quiet_hours={"start": "21:00", "end": "09:00"}, frequency_cap={"per_day": 1, "per_week": 3}
    )
    seqs = {"id": "two", "steps": [
        {"name": "a", "day": 0, "channel": "email", "template": "intro"},
        {"name": "b", "day": 0, "channel": "email", "template": "reminder"},
    ]}  # fmt: skip
    book.sequences.insert(0, load_sequences({"sequences": [seqs]}).sequences[0])
    enrol_targets(
        store,
        make_targets(["c0", "c1"], channel="email"),
        datetime(2025, 6, 21, 14, 0),
        holdout=0.0,
        book=book,
    )
    disp = Dispatcher(store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=book)
    r = disp.tick(datetime(2025, 6, 21, 14, 0))  # 23:00 in Tokyo
    assert r.sent == 0 and r.deferred == 4
    rows = _rows(store)
    assert (rows["next_attempt_at"] == datetime(2025, 6, 22, 0, 0)).all()  # 09:00 Tokyo
    r = disp.tick(datetime(2025, 6, 22, 0, 0))
    assert r.sent == 2 and r.deferred == 2  # one per customer per day
    rows = _rows(store)
    assert (
        rows.loc[rows["state"] == "pending", "next_attempt_at"] == datetime(2025, 6, 23, 0, 0)
    ).all()
    assert disp.tick(datetime(2025, 6, 23, 0, 0)).sent == 2
    assert sorted(smtp_server.received.values()) == [1, 1, 1, 1]


def test_recovery_reconciles_a_crash_between_sending_and_recording(store_factory, smtp_server):
    store = store_factory(4)
    book = _one(lease_seconds=0.5)
    enrol_targets(
        store,
        make_targets([f"c{i}" for i in range(4)], channel="email"),
        T0,
        holdout=0.0,
        book=book,
    )
    ch = SMTPEmailChannel("127.0.0.1", smtp_server.port)
    disp = Dispatcher(store, {"email": ch}, book=book)
    # simulate a worker that handed c0 and c1 to SMTP, then died before recording; c2 died mid-claim
    rows = disp._claim(T0, 10)
    with store.engine.begin() as conn:
        conn.execute(
            outbox.update().where(outbox.c.customer_id.in_(["c0", "c1"])).values(state="sending")
        )
    from winback_ml.dispatch.channels import OutboundMessage

    msg = [
        OutboundMessage(
            r.idempotency_key,
            r.customer_id,
            "email",
            f"user{r.customer_id[1:]}@example.com",
            "x",
            "s",
        )
        for r in rows
        if r.customer_id == "c0"
    ]
    ch.send(msg)  # c0 reached the server; c1 did not
    time.sleep(0.6)
    disp2 = Dispatcher(store, {"email": ch}, book=book)
    r = disp2.tick(T0)
    assert r.reconciled_sent == 1 and r.reconciled_pending == 1 and r.recovered_claimed == 2
    assert r.sent == 3
    assert sorted(smtp_server.received.values()) == [1, 1, 1, 1]
    assert outbox_counts(store) == {"sent": 4}


def test_uncertain_delivery_without_reconciliation_follows_on_uncertain(store_factory, tmp_path):
    class Blind(DryRunChannel):
        def reconcile(self, keys):
            return {k: None for k in keys}

    for policy, expect in (("dead", "dead"), ("resend", "sent")):
        store = store_factory(1)
        book = _one(lease_seconds=0.2, on_uncertain=policy)
        enrol_targets(store, make_targets(["c0"], channel="email"), T0, holdout=0.0, book=book)
        ch = Blind(tmp_path / policy)
        disp = Dispatcher(store, {"email": ch}, book=book)
        disp._claim(T0, 10)
        with store.engine.begin() as conn:
            conn.execute(outbox.update().values(state="sending"))
        time.sleep(0.3)
        Dispatcher(store, {"email": ch}, book=book).tick(T0)
        row = _rows(store).iloc[0]
        assert row["state"] == expect
        if policy == "dead":
            assert "uncertain" in row["last_error"]


def test_dry_run_writes_masked_files_and_is_idempotent(store_factory, tmp_path):
    import json

    store = store_factory(3)
    book = _book()
    enrol_targets(
        store, make_targets(["c0", "c1", "c2"], channel="email"), T0, holdout=0.0, book=book
    )
    chans = {c: DryRunChannel(tmp_path / "out", c) for c in ("email", "sms", "in_app")}
    disp = Dispatcher(store, chans, book=book)
    disp.tick(T0)
    files = sorted((tmp_path / "out" / "email").glob("*.json"))
    assert len(files) == 3
    doc = json.loads(files[0].read_text())
    assert doc["to"].startswith("u***@") and "user" not in doc["to"]
    assert doc["html"].startswith("<html>") and doc["subject"]
    # a crashed run is reconciled exactly from the files
    assert chans["email"].reconcile([doc["idempotency_key"], "wb-nope"]) == {
        doc["idempotency_key"]: True,
        "wb-nope": False,
    }


def test_two_workers_never_claim_the_same_row(store_factory, tmp_path):
    store = store_factory(30)
    book = _one()
    enrol_targets(
        store,
        make_targets([f"c{i}" for i in range(30)], channel="email"),
        T0,
        holdout=0.0,
        book=book,
    )
    a = Dispatcher(store, {"email": DryRunChannel(tmp_path / "a")}, book=book)
    b = Dispatcher(store, {"email": DryRunChannel(tmp_path / "b")}, book=book)
    ra = a._claim(T0, 20)
    rb = b._claim(T0, 20)
    assert len(ra) == 20 and len(rb) == 10
    assert not {r.id for r in ra} & {r.id for r in rb}


def test_recovery_leaves_rows_of_channels_this_worker_lacks(store_factory, tmp_path):
    store = store_factory(1)
    book = _one("sms", "sms", lease_seconds=0.2)
    enrol_targets(store, make_targets(["c0"], channel="sms"), T0, holdout=0.0, book=book)
    with store.engine.begin() as conn:
        conn.execute(
            outbox.update().values(state="sending", lease_owner="dead-worker", lease_until=0.0)
        )
    # an e-mail-only worker must not reconcile (and dead-letter) an SMS row it cannot ask about
    Dispatcher(store, {"email": DryRunChannel(tmp_path / "e")}, book=book).tick(T0)
    assert _rows(store).iloc[0]["state"] == "sending"
    sms = DryRunChannel(tmp_path / "s", "sms")
    Dispatcher(store, {"sms": sms}, book=book).tick(T0)  # the SMS worker finds it was not delivered
    assert _rows(store).iloc[0]["state"] == "sent"


def test_suppression_recorded_before_enrolment_cancels_at_the_next_tick(store_factory, smtp_server):
    from winback_ml.dispatch.policy import record_feedback
    from winback_ml.dispatch.schema import DispatchDB

    store = store_factory(2)
    record_feedback(DispatchDB(store), "complaint", customer_id="c1", at=T0 - timedelta(days=3))
    book = _book()
    enrol_targets(store, make_targets(["c0", "c1"]), T0, holdout=0.0, book=book)
    r = Dispatcher(
        store, {"email": SMTPEmailChannel("127.0.0.1", smtp_server.port)}, book=book
    ).tick(T0)
    rows = _rows(store)
    assert set(rows.loc[rows.customer_id == "c1", "state"]) == {"cancelled"}
    assert r.sent == 1 and smtp_server.messages[0]["rcpt"] == ["user0@example.com"]


def test_in_app_webhook_posts_json_with_idempotency_key(store_factory):
    from winback_ml.dispatch.channels import WebhookInAppChannel

    store = store_factory(2)
    book = _one("in_app", "in_app")
    enrol_targets(store, make_targets(["c0", "c1"], channel="in_app"), T0, holdout=0.0, book=book)
    with LoopbackHTTPServer() as hook:
        Dispatcher(store, {"in_app": WebhookInAppChannel(f"{hook.url}/inapp")}, book=book).tick(T0)
        bodies = [r["json"] for r in hook.requests]
        assert sorted(b["customer_id"] for b in bodies) == ["c0", "c1"]
        assert all(b["title"] and "20%" in b["body"] for b in bodies if b["customer_id"] == "c0")
        assert all(
            r["headers"]["Idempotency-Key"] == r["json"]["idempotency_key"] for r in hook.requests
        )
    with LoopbackHTTPServer(fail_status=500) as hook:
        with store.engine.begin() as conn:
            conn.execute(outbox.update().values(state="pending"))
        r = Dispatcher(store, {"in_app": WebhookInAppChannel(hook.url)}, book=book).tick(T0)
        assert r.retried == 2


def test_provider_error_text_that_echoes_the_recipient_is_redacted():
    # real Twilio and SMTP servers name the recipient in their error text; the outbox
    # (last_error, `winback dispatch status`) must never hold an address
    import httpx

    from winback_ml.dispatch.channels import OutboundMessage, redact

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={"code": 21211, "message": "The 'To' number +4915100000001 is not valid."},
        )

    ch = TwilioSMSChannel(
        "http://api.test",
        "AC1",
        "tok",
        "+15550000000",
        client=httpx.Client(transport=httpx.MockTransport(answer)),
    )
    msg = OutboundMessage("k1", "c1", "sms", "+4915100000001", "hi")
    (res,) = ch.send([msg])
    assert res.status == "failed" and "HTTP 400" in res.error and "21211" in res.error
    assert "4915100000001" not in res.error
    smtp = redact("550 5.1.1 <bob.smith@example.com>: Recipient address rejected")
    assert smtp == "550 5.1.1 <<redacted>>: Recipient address rejected"


def test_a_line_break_in_the_subject_cannot_inject_a_header():
    import email

    from winback_ml.dispatch.channels import OutboundMessage

    ch = SMTPEmailChannel("127.0.0.1", 25)
    for subject in ("Come back\r\nBcc: evil@example.org", "Komm zurück\nBcc: evil@example.org"):
        m = OutboundMessage("k1", "c1", "email", "user@example.com", "hi", subject, "<p>hi</p>")
        raw = ch.build_bytes(m) or ch.build(m).as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Bcc"] is None, raw[:400]
        assert "\n" not in str(parsed["Subject"]) and str(parsed["Subject"]).endswith(
            "Bcc: evil@example.org"
        )
        ch.build(m)  # the email-package path accepts it too (it raised ValueError before)


def test_an_address_with_a_trailing_newline_is_invalid():
    # "$" matches before a final "\n": such an address reached the To header, where the
    # email package raised and failed the whole batch
    from winback_ml.dispatch.channels import valid_address

    assert valid_address("email", "user@example.com") and valid_address("sms", "+4915112345678")
    assert not valid_address("email", "user@example.com\n")
    assert not valid_address("sms", "+4915112345678\n")


def test_a_message_that_cannot_be_built_fails_alone(smtp_server):
    from winback_ml.dispatch.channels import OutboundMessage

    ch = SMTPEmailChannel("127.0.0.1", smtp_server.port)
    good = OutboundMessage("k1", "c1", "email", "user1@example.com", "hi", "Hello", None)
    bad = OutboundMessage(
        "k2", "c2", "email", "user2@example.com", "hi", "Hello", None, {"X-Bad": "a\nb"}
    )
    res = ch.send(
        [good, bad, OutboundMessage("k3", "c3", "email", "user3@example.com", "hi", "Hi")]
    )
    ch.close()
    assert [r.status for r in res] == ["sent", "failed", "sent"]
    assert res[1].permanent and "cannot be built" in res[1].error
