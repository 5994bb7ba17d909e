"""`winback intake ...` end to end with typer's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from winback_ml.cli import app
from winback_ml.data.loader import load_data
from winback_ml.intake.samples import (
    TestPKI,
    apple_notification,
    apple_transaction,
    csv_export,
    make_webhook_stream,
    stripe_event,
    stripe_invoice,
)

T0 = datetime(2025, 3, 1, 12)
runner = CliRunner()


def _write(dirpath, bodies):
    paths = []
    for i, (_, b) in enumerate(bodies):
        p = dirpath / f"body_{i:04d}.json"
        p.write_bytes(b)
        paths.append(str(p))
    return paths


def _counts(out: str) -> dict[str, int]:
    d = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        if k in ("accepted", "duplicate", "dead-lettered"):
            d[k] = int(v)
    return d


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/cli.db"


def test_ingest_twice_then_health(tmp_path, store):
    bodies, truth = make_webhook_stream(10, seed=5, providers=("stripe",))
    files = _write(tmp_path, bodies)
    (tmp_path / "broken.json").write_bytes(b'{"id": "evt_b", "type": "invoice.paid"')
    files.append(str(tmp_path / "broken.json"))
    r = runner.invoke(app, ["intake", "stripe", *files, "--store", store])
    assert r.exit_code == 0, r.output
    assert _counts(r.output) == {"accepted": len(bodies), "duplicate": 0, "dead-lettered": 1}
    assert "broken.json [malformed]" in r.output
    r2 = runner.invoke(app, ["intake", "stripe", *files, "--store", store])
    assert _counts(r2.output) == {"accepted": 0, "duplicate": len(bodies), "dead-lettered": 1}
    data = load_data(store)
    assert set(data.subscriptions.subscription_id) == set(truth.final)
    h = runner.invoke(app, ["intake", "health", "--store", store, "--json"])
    rep = json.loads(h.output)
    (src,) = rep["sources"]
    assert (
        src["source"] == "stripe" and src["dead_lettered"] == 1 and src["volume"] == len(bodies) + 1
    )
    assert rep["dead_letters"][0]["attempts"] == 2 and rep["dead_letters"][0]["kind"] == "malformed"
    text = runner.invoke(app, ["intake", "health", "--store", store]).output
    assert "open dead letters: 1" in text


def test_out_of_order_files_count_as_accepted_once_their_subscription_arrives(tmp_path, store):
    bodies, _ = make_webhook_stream(4, seed=2, providers=("stripe",))
    files = _write(tmp_path, bodies)[::-1]  # newest first: renewals before the creation
    r = runner.invoke(app, ["intake", "ingest", "stripe", *files, "--store", store])
    assert _counts(r.output) == {"accepted": len(bodies), "duplicate": 0, "dead-lettered": 0}, (
        r.output
    )


def test_replay_after_fix(tmp_path, store):
    pki = TestPKI.create()
    wrong = TestPKI.create(name="Wrong")
    (tmp_path / "root.pem").write_bytes(pki.root_pem)
    (tmp_path / "wrong.pem").write_bytes(wrong.root_pem)
    body = apple_notification("SUBSCRIBED", apple_transaction(purchase=T0), signed=T0, pki=pki)
    (tmp_path / "a.json").write_bytes(body)
    r = runner.invoke(
        app,
        [
            "intake",
            "apple",
            str(tmp_path / "a.json"),
            "--store",
            store,
            "--apple-root",
            str(tmp_path / "wrong.pem"),
        ],
    )
    assert _counts(r.output)["dead-lettered"] == 1 and "[signature]" in r.output
    r = runner.invoke(
        app, ["intake", "replay", "--store", store, "--apple-root", str(tmp_path / "root.pem")]
    )
    assert "resolved: 1" in r.output, r.output
    assert len(load_data(store).events) == 1


def test_csv_export_rows_each_get_an_outcome(tmp_path, store):
    rows = [
        {
            "event_id": "r1",
            "occurred_at": "2025-01-01T00:00:00Z",
            "customer_id": "c1",
            "subscription_id": "s1",
            "event_type": "subscribed",
            "source": "stripe",
            "plan_id": "p",
            "plan_tier": "pro",
            "billing_interval": "month",
            "price": "29",
            "currency": "USD",
            "amount": "29",
        },
        {
            "event_id": "r2",
            "occurred_at": "2025-02-01T00:00:00Z",
            "customer_id": "c1",
            "subscription_id": "s1",
            "event_type": "renewed",
            "source": "stripe",
            "amount": "-29",
            "currency": "USD",
        },
        {
            "event_id": "r3",
            "occurred_at": "2025-03-01T00:00:00Z",
            "customer_id": "c1",
            "subscription_id": "s1",
            "event_type": "cancelled",
            "source": "stripe",
            "reason": "found a cheaper alternative",
        },
    ]
    (tmp_path / "export.csv").write_bytes(csv_export(rows))
    r = runner.invoke(
        app, ["intake", "csv", str(tmp_path / "export.csv"), "--store", store, "--json"]
    )
    out = json.loads(r.output)
    assert (out["accepted"], out["dead_lettered"]) == (2, 1)
    assert (
        "non-negative amount" in out["dead_letters"][0]["reason"]
        and "line 3" in out["dead_letters"][0]["label"]
    )
    sub = load_data(store).subscriptions.iloc[0]
    assert sub.status == "cancelled" and sub.cancel_reason == "too_expensive"


def test_bad_arguments(tmp_path, store):
    r = runner.invoke(app, ["intake", "paddle", str(tmp_path), "--store", store])
    assert r.exit_code == 2 and "Unknown provider 'paddle'" in r.output
    r = runner.invoke(app, ["intake", "stripe", str(tmp_path / "nope.json"), "--store", store])
    assert r.exit_code == 2 and "no such file" in r.output
    body = stripe_event("invoice.paid", stripe_invoice("in_1", "sub_unknown", paid_at=T0))
    (tmp_path / "p.json").write_bytes(body)
    r = runner.invoke(
        app, ["intake", "stripe", str(tmp_path / "p.json"), "--store", store, "--strict"]
    )
    assert r.exit_code == 1 and "[unknown_subscription]" in r.output


def test_installed_command_in_a_subprocess(tmp_path, store):
    body = stripe_event(
        "invoice.created", {"id": "in_1", "object": "invoice"}, created=T0 + timedelta(days=1)
    )
    (tmp_path / "x.json").write_bytes(body)
    cmd = [
        sys.executable,
        "-c",
        "from winback_ml.cli import main; main()",
        "intake",
        "stripe",
        str(tmp_path / "x.json"),
        "--store",
        store,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert _counts(out.stdout) == {"accepted": 1, "duplicate": 0, "dead-lettered": 0}


def test_serve_command_answers_on_loopback(tmp_path, store):
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-c",
        "from winback_ml.cli import main; main()",
        "intake",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        store,
        "--stripe-secret",
        "whsec_x",
        "--allow-unauthenticated",
        "csv",
    ]
    env = {**os.environ, "WINBACK_RECURLY_WEBHOOK_SECRET": "rk_test"}
    env.pop("WINBACK_RECEIVER_ALLOW_UNAUTHENTICATED", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        proc.stdout.read().decode() if proc.poll() is not None else "no answer"
                    ) from None
                time.sleep(0.2)
        assert r.json() == {"status": "ok", "pending": 0}
        body = stripe_event("invoice.created", {"id": "in_1", "object": "invoice"}, created=T0)
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=body, timeout=10)
        assert r.status_code == 400  # the secret is configured: no signature, no entry
        # secure by default: nothing configured for Chargebee -> refused; Recurly's secret
        # comes from the environment -> an unsigned body is unauthorised; csv was allowed
        post = lambda p: httpx.post(f"http://127.0.0.1:{port}/webhooks/{p}", content=b"{}")  # noqa: E731
        assert post("chargebee").status_code == 403
        assert post("recurly").status_code == 401
        assert post("csv").status_code not in (401, 403)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_bad_apple_root_fails_at_start_not_per_payload(tmp_path):
    from winback_ml.exceptions import IntakeError
    from winback_ml.intake import IntakeLedger

    store = f"sqlite:///{tmp_path}/r.db"
    body = tmp_path / "a.json"
    body.write_bytes(apple_notification("DID_RENEW", apple_transaction()))
    not_cert = tmp_path / "root.cer"
    not_cert.write_bytes(b"not a certificate")
    for root in (tmp_path / "missing.cer", not_cert):
        r = runner.invoke(
            app, ["intake", "apple", str(body), "--store", store, "--apple-root", str(root)]
        )
        assert r.exit_code == 2 and "apple_root" in r.output, r.output
        with pytest.raises(IntakeError, match="apple_root"):
            IntakeLedger(store, apple_root=root)
    # a good root is loaded once and verifies
    pki = TestPKI.create()
    good = tmp_path / "good.pem"
    good.write_bytes(pki.root_pem)
    body.write_bytes(apple_notification("DID_RENEW", apple_transaction(), pki=pki))
    r = runner.invoke(
        app, ["intake", "apple", str(body), "--store", store, "--apple-root", str(good)]
    )
    assert r.exit_code == 0 and _counts(r.output)["accepted"] == 1, r.output
