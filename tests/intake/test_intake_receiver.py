"""The webhook receiver over real HTTP on loopback (uvicorn in a thread, httpx client)."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from winback_ml.intake import MAX_BODY_BYTES, IntakeLedger
from winback_ml.intake.auth import ReceiverAuth
from winback_ml.intake.ledger import dead_letters_table, inbox_table, winback_queue_table
from winback_ml.intake.receiver import create_app
from winback_ml.intake.recurly import sign_recurly_payload
from winback_ml.intake.samples import (
    TestPKI,
    csv_export,
    google_envelope,
    google_subscription,
    make_webhook_stream,
    stripe_event,
    stripe_subscription,
)
from winback_ml.intake.stripe import sign_stripe_payload

SECRET = "whsec_test_secret"
# every other source authenticated too (the receiver refuses a source with nothing configured)
AUTH = ReceiverAuth(
    chargebee_username="cb_user",
    chargebee_password="cb_pass",
    recurly_secret="rc_secret",
    google_token="g_token",
    csv_token="csv_token",
)
T0 = datetime(2025, 3, 1, 12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, app) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def ledger(tmp_path):
    return IntakeLedger(f"sqlite:///{tmp_path}/recv.db", stripe_secret=SECRET)


def _request(provider: str, body: bytes) -> tuple[str, dict[str, str]]:
    """Path and headers of a genuine delivery of ``body`` under :data:`AUTH` and :data:`SECRET`."""
    import base64

    if provider == "stripe":
        return "/webhooks/stripe", _signed(body)
    if provider == "chargebee":
        cred = base64.b64encode(b"cb_user:cb_pass").decode()
        return "/webhooks/chargebee", {"Authorization": f"Basic {cred}"}
    if provider == "recurly":
        return "/webhooks/recurly", {"recurly-signature": sign_recurly_payload(body, "rc_secret")}
    if provider == "google":
        return "/webhooks/google?token=g_token", {}
    if provider == "csv":
        return "/webhooks/csv", {"Authorization": "Bearer csv_token"}
    return f"/webhooks/{provider}", {}  # apple: the JWS carries its own signature


def _signed(body: bytes, t: float | None = None) -> dict[str, str]:
    return {
        "Stripe-Signature": sign_stripe_payload(body, SECRET, int(t or time.time())),
        "Content-Type": "application/json",
    }


def test_round_trip(ledger):
    created = stripe_event(
        "customer.subscription.created", stripe_subscription(start=T0), evt_id="evt_c", created=T0
    )
    end = T0 + timedelta(days=30)
    deleted = stripe_event(
        "customer.subscription.deleted",
        stripe_subscription(
            start=T0, status="canceled", canceled_at=end, ended_at=end, reason="payment_failed"
        ),
        evt_id="evt_d",
        created=end,
    )
    with _Server(create_app(ledger, auth=AUTH)) as c:
        assert c.get("/healthz").json() == {"status": "ok", "pending": 0}
        r = c.post("/webhooks/stripe", content=created, headers=_signed(created))
        assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["events"] == 1
        r = c.post("/webhooks/stripe", content=created, headers=_signed(created))
        assert r.status_code == 200 and r.json()["status"] == "duplicate"
        r = c.post("/webhooks/stripe", content=deleted, headers=_signed(deleted))
        assert r.status_code == 200 and r.json()["enqueued"] == 1
        # bad signature: 400, dead-lettered with the reason, store unchanged
        bad = stripe_event(
            "customer.subscription.created",
            stripe_subscription("sub_x", start=T0),
            evt_id="evt_x",
            created=T0,
        )
        r = c.post(
            "/webhooks/stripe",
            content=bad,
            headers={"Stripe-Signature": f"t={int(time.time())},v1=deadbeef"},
        )
        assert r.status_code == 400 and "signature mismatch" in r.json()["reason"]
        r = c.post("/webhooks/stripe", content=bad)
        assert r.status_code == 400 and "missing Stripe-Signature" in r.json()["reason"]
        stale = _signed(bad, time.time() - 3600)
        r = c.post("/webhooks/stripe", content=bad, headers=stale)
        assert r.status_code == 400 and "replay protection" in r.json()["reason"]
        # malformed: stored as a dead letter and acknowledged
        r = c.post(
            "/webhooks/stripe",
            content=b'{"id": "evt_broken",',
            headers=_signed(b'{"id": "evt_broken",'),
        )
        assert (
            r.status_code == 200
            and r.json()["status"] == "dead_lettered"
            and "malformed JSON" in r.json()["reason"]
        )
        # oversized: 413 before processing
        big = b'{"pad": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
        r = c.post("/webhooks/stripe", content=big)
        assert r.status_code == 413 and "at most" in r.json()["reason"]
        assert c.post("/webhooks/paddle", content=b"{}").status_code == 404
        # other providers need no Stripe secret, but their own credentials
        g = google_envelope(4, google_subscription(start=T0), event_time=T0)
        assert c.post("/webhooks/google", content=g).status_code == 401
        assert c.post(_request("google", g)[0], content=g).json()["status"] == "accepted"
        rows = csv_export(
            [
                {
                    "event_id": "m1",
                    "occurred_at": "2025-01-01",
                    "customer_id": "mc",
                    "subscription_id": "ms",
                    "event_type": "subscribed",
                    "plan_id": "p",
                    "plan_tier": "basic",
                    "billing_interval": "month",
                    "price": "9",
                    "currency": "USD",
                },
                {
                    "event_id": "m2",
                    "occurred_at": "2025-02-01",
                    "customer_id": "mc",
                    "subscription_id": "ms",
                    "event_type": "expired",
                },
            ]
        )
        assert c.post("/webhooks/csv", content=rows).status_code == 401
        r = c.post("/webhooks/csv", content=rows, headers=_request("csv", rows)[1])
        assert r.json()["accepted"] == 2
    with ledger.engine.connect() as conn:
        kinds = sorted(conn.execute(sa.select(dead_letters_table.c.kind)).scalars())
        queue = conn.execute(
            sa.select(winback_queue_table.c.queue_id, winback_queue_table.c.reason)
        ).all()
        events = conn.execute(
            sa.select(sa.func.count()).select_from(ledger.store.table("events"))
        ).scalar()
    assert kinds == ["malformed", "oversized", "signature"]
    assert sorted(queue) == [("m2", "unknown"), ("stripe:evt_d", "payment_failed")]
    assert events == 5


def test_a_stored_body_survives_a_crash(ledger):
    body = stripe_event("customer.subscription.created", stripe_subscription(start=T0), created=T0)
    # the previous process stored the body and died before processing it
    ledger.store_raw("stripe", body, headers=_signed(body))
    with _Server(
        create_app(IntakeLedger(ledger.store.url, stripe_secret=SECRET), auth=ReceiverAuth())
    ) as c:
        assert c.get("/healthz").json()["pending"] == 0
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.select(inbox_table.c.status)).scalars().all() == ["accepted"]


def test_stream_over_http_matches_direct_ingest(tmp_path):
    # every source authenticated as in production: signatures, basic auth, tokens, JWS
    pki = TestPKI.create()
    bodies, truth = make_webhook_stream(15, seed=11, pki=pki)
    led = IntakeLedger(f"sqlite:///{tmp_path}/h.db", stripe_secret=SECRET, apple_root=pki.root_pem)
    t0 = time.perf_counter()
    with _Server(create_app(led, auth=AUTH)) as c:
        codes = []
        for p, b in bodies:
            path, headers = _request(p, b)
            codes.append(c.post(path, content=b, headers=headers).status_code)
    per_request_ms = 1000 * (time.perf_counter() - t0) / len(bodies)
    assert set(codes) == {200}
    with led.engine.connect() as conn:
        subs = dict(
            conn.execute(
                sa.select(
                    led.store.table("subscriptions").c.subscription_id,
                    led.store.table("subscriptions").c.status,
                )
            ).all()
        )
    assert subs == {sid: t["status"] for sid, t in truth.final.items()}
    print(
        f"receiver: {len(bodies)} requests, {per_request_ms:.1f} ms per request (store + process, SQLite)"
    )


def test_non_ascii_signature_is_a_signature_error(ledger):
    # compare_digest on non-ASCII str raises TypeError: it must not become an "internal" dead letter
    body = stripe_event("customer.subscription.created", stripe_subscription(start=T0), created=T0)
    o = ledger.ingest(
        "stripe", body, headers={"Stripe-Signature": f"t={int(time.time())},v1=\u00e9\u00e9"}
    )
    assert o.status == "dead_lettered" and o.kind == "signature" and o.http_status == 400
    assert "signature mismatch" in o.reason


def test_a_redelivery_is_verified_against_its_own_arrival_time(tmp_path):
    # Stripe re-signs every retry; a body stored by a process that crashed before
    # processing it, delivered again an hour later, must be accepted (its new header
    # checked against the new arrival), and a forged header must not replace a good one
    clock = {"t": datetime(2025, 3, 1, 12)}
    led = IntakeLedger(f"sqlite:///{tmp_path}/r.db", stripe_secret=SECRET, now=lambda: clock["t"])
    ts = lambda: clock["t"].replace(tzinfo=UTC).timestamp()  # noqa: E731
    body = stripe_event("customer.subscription.created", stripe_subscription(start=T0), created=T0)
    led.store_raw("stripe", body, headers=_signed(body, ts()))  # then the process died
    clock["t"] += timedelta(hours=1)
    forged = {"Stripe-Signature": f"t={int(ts())},v1=deadbeef"}
    assert led.ingest("stripe", body, headers=forged).status == "accepted"  # old header kept
    body2 = stripe_event(
        "customer.subscription.created",
        stripe_subscription("sub_2", start=T0),
        evt_id="evt_2",
        created=T0,
    )
    led.store_raw("stripe", body2, headers=_signed(body2, ts()))
    clock["t"] += timedelta(hours=1)
    o = led.ingest("stripe", body2, headers=_signed(body2, ts()))
    assert o.status == "accepted", o.reason
