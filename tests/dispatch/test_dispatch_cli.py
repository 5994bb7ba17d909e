"""The `winback dispatch` commands, end to end on a small store (dry run and loopback SMTP)."""

from __future__ import annotations

import csv
import json

from dispatch_helpers import make_targets
from typer.testing import CliRunner

from winback_ml.cli import app

runner = CliRunner()


def _json(out: str) -> dict:
    return json.loads(out[out.index("{") :])


def test_plan_enrol_tick_status_export(store_factory, tmp_path, smtp_server):
    store = store_factory(8)
    make_targets([f"c{i}" for i in range(8)]).to_csv(tmp_path / "targets.csv", index=False)
    url = store.url
    r = runner.invoke(
        app,
        [
            "dispatch",
            "plan",
            str(tmp_path / "targets.csv"),
            "--store",
            url,
            "--now",
            "2025-06-21T10:00",
            "--holdout",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert _json(r.output)["messages"] == 40 and _json(r.output)["written"] is False
    r = runner.invoke(
        app,
        [
            "dispatch",
            "enrol",
            str(tmp_path / "targets.csv"),
            "--store",
            url,
            "--now",
            "2025-06-21T10:00",
            "--holdout",
            "0",
            "--campaign",
            "cli1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert _json(r.output)["enrolled"] == 8 and _json(r.output)["codes"] == 8
    out_dir = tmp_path / "dry"
    r = runner.invoke(
        app,
        [
            "dispatch",
            "tick",
            "--store",
            url,
            "--now",
            "2025-06-21T10:00",
            "--dry-run-dir",
            str(out_dir),
        ],
    )
    assert r.exit_code == 0, r.output
    assert _json(r.output)["sent"] == 8
    assert len(list((out_dir / "email").glob("*.json"))) == 8
    r = runner.invoke(
        app,
        [
            "dispatch",
            "tick",
            "--store",
            url,
            "--now",
            "2025-06-24T10:00",
            "--email",
            "smtp",
            "--smtp-port",
            str(smtp_server.port),
            "--sms",
            "none",
            "--in-app",
            "table",
        ],
    )
    assert r.exit_code == 0, r.output
    assert smtp_server.count() == 0  # day 3 is the SMS step; SMS is switched off
    r = runner.invoke(app, ["dispatch", "status", "--store", url])
    assert _json(r.output) == {"pending": 32, "sent": 8}
    r = runner.invoke(
        app,
        [
            "dispatch",
            "export-codes",
            str(tmp_path / "codes.csv"),
            "--store",
            url,
            "--campaign",
            "cli1",
            "--now",
            "2025-06-24",
        ],
    )
    assert r.exit_code == 0 and "8 codes" in r.output
    assert len(list(csv.DictReader((tmp_path / "codes.csv").open()))) == 8


def test_enrol_in_chunks_command(store_factory, tmp_path):
    store = store_factory(5)
    make_targets([f"c{i}" for i in range(5)]).to_csv(tmp_path / "t.csv", index=False)
    args = ["dispatch", "enrol", str(tmp_path / "t.csv"), "--store", store.url, "--holdout", "0"]
    r = runner.invoke(app, [*args, "--chunk", "2", "--now", "2025-06-21T10:00"])
    assert r.exit_code == 0, r.output
    assert _json(r.output)["enrolled"] == 5 and _json(r.output)["messages"] == 25


def test_bad_targets_exit_1_with_the_violations(store_factory, tmp_path):
    store = store_factory(2)
    t = make_targets(["c0", "c1"], channel="fax")
    t.to_csv(tmp_path / "t.csv", index=False)
    r = runner.invoke(app, ["dispatch", "enrol", str(tmp_path / "t.csv"), "--store", store.url])
    assert r.exit_code == 1
    assert "targets.channel" in r.output and "Fix:" in r.output


def test_sms_stop_and_unsubscribe_commands(store_factory):
    store = store_factory(2)
    r = runner.invoke(
        app, ["dispatch", "sms-inbound", "+4915100000001", "STOP", "--store", store.url]
    )
    assert r.exit_code == 0 and "unsubscribed" in r.output
    r = runner.invoke(app, ["dispatch", "unsubscribe", "forged.token", "--store", store.url])
    assert r.exit_code == 1 and "signature" in r.output


def test_enrol_from_queue_command(store_factory):
    from datetime import datetime

    from winback_ml.intake.ledger import winback_queue_table as q

    store = store_factory(2)
    q.metadata.create_all(store.engine, tables=[q], checkfirst=True)
    ended = datetime(2025, 6, 1)
    with store.engine.begin() as conn:
        conn.execute(
            q.insert(),
            [
                {
                    "queue_id": f"q{i}",
                    "customer_id": f"c{i}",
                    "subscription_id": f"s{i}",
                    "source": "stripe",
                    "event_type": "cancelled",
                    "reason": r,
                    "initiator": "customer",
                    "ended_at": ended,
                    "queued_at": ended,
                    "mrr": 29.0,
                    "status": "pending",
                    "status_at": ended,
                }
                for i, r in enumerate(["payment_failed", "missing_features"])
            ],
        )
    r = runner.invoke(
        app,
        [
            "dispatch",
            "enrol",
            "--from-queue",
            "--store",
            store.url,
            "--now",
            "2025-06-02T12:00",
            "--holdout",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    s = _json(r.output)
    assert s["enrolled"] == 2 and s["by_sequence"] == {"resume_billing": 1, "winback_30d": 1}


def test_enrol_with_a_missing_or_broken_targets_file_is_a_clear_error(store_factory, tmp_path):
    store = store_factory(2)
    (tmp_path / "empty.csv").write_text("")
    for name in ("missing.csv", "empty.csv"):
        args = ["dispatch", "enrol", str(tmp_path / name), "--store", store.url]
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and "targets file" in r.output and "Fix:" in r.output, r.output
        assert isinstance(r.exception, SystemExit)  # handled, not a traceback


def test_a_bad_now_is_a_clear_error(store_factory):
    import pytest

    from winback_ml.dispatch._util import to_utc_naive
    from winback_ml.exceptions import ConfigError

    for bad in ("garbage", "", float("nan")):
        with pytest.raises(ConfigError, match="not a date"):
            to_utc_naive(bad)
    store = store_factory(1)
    r = runner.invoke(app, ["dispatch", "tick", "--store", store.url, "--now", "yesterday-ish"])
    assert r.exit_code == 1 and "not a date" in r.output and isinstance(r.exception, SystemExit)


def test_init_never_prints_a_password(tmp_path):
    """A password in the store URL's query string (libpq accepts it) stays masked."""
    url = f"sqlite:///{tmp_path}/d.db?password=s3cretPW"
    r = runner.invoke(app, ["dispatch", "init", "--store", url])
    assert r.exit_code == 0, r.output
    assert "dispatch tables ready" in r.output and "s3cretPW" not in r.output
