"""Crash safety: SIGKILL `winback dispatch tick` at random points; every due message arrives once.

The loopback SMTP server runs in this test process, so it survives the
kills and counts every message it receives by Message-ID (it never
de-duplicates). The tick runs in a subprocess with a short lease, is killed
at random moments many times (during start-up, recovery, claiming,
rendering, mid-SMTP-session, while recording), and a final clean run
finishes the job.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa
import yaml
from dispatch_helpers import make_targets

from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.schema import outbox
from winback_ml.dispatch.sequences import load_sequences
from winback_ml.dispatch.testing import LoopbackSMTPServer

NOW = "2025-06-21 10:00"
LEASE = 1.5


def _tick_cmd(url: str, port: int, seq_file: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from winback_ml.cli import main; main()",
        "dispatch",
        "tick",
        "--store", url,
        "--now", NOW,
        "--email", "smtp",
        "--smtp-port", str(port),
        "--sms", "none",
        "--in-app", "none",
        "--sequences", seq_file,
        "--batch-size", "7",
        "--lease-seconds", str(LEASE),
        "--progress",
    ]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def crash_store(request, store_factory):
    """The store of the crash test: SQLite always; PostgreSQL when WINBACK_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield store_factory(240)
        return
    url = os.environ.get("WINBACK_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("WINBACK_TEST_POSTGRES_URL is not set (a PostgreSQL URL to test against)")
    from dispatch_helpers import make_tables

    from winback_ml.data.store import Store

    schema = f"wb_crash_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    u = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    store = Store(u.render_as_string(hide_password=False))
    store.write(make_tables(240))
    yield store
    store.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.slow
def test_sigkill_many_times_every_message_exactly_once(crash_store, tmp_path):
    rng = random.Random(7)
    n = 240
    store = crash_store
    seq = {
        "settings": {"quiet_hours": None, "frequency_cap": {"per_day": 0, "per_week": 0}},
        "sequences": [
            {
                "id": "one",
                "steps": [{"name": "intro", "day": 0, "channel": "email", "template": "intro"}],
            }
        ],
    }
    seq_file = tmp_path / "seq.yaml"
    seq_file.write_text(yaml.safe_dump(seq))
    plan = enrol_targets(
        store,
        make_targets([f"c{i}" for i in range(n)], channel="email"),
        NOW,
        holdout=0.0,
        book=load_sequences(seq_file),
    )
    assert plan.summary()["messages"] == n
    with store.engine.connect() as conn:
        keys = set(conn.execute(sa.select(outbox.c.idempotency_key)).scalars())
    expected = {f"<{k}@winback-ml>" for k in keys}

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    mid_send = 0  # kills that left rows in 'sending' (handed to SMTP, not yet recorded)
    runs = 0
    deadline = time.time() + 150
    with LoopbackSMTPServer(delay=0.004) as srv:
        cmd = _tick_cmd(store.url, srv.port, str(seq_file))
        while kills < 25 and time.time() < deadline:
            runs += 1
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            line = p.stdout.readline()  # the first progress line: start-up and recovery are done
            # let 0-2 batches finish, then kill somewhere inside the next one (or during start-up)
            for _ in range(rng.randint(0, 2)):
                if line:
                    line = p.stdout.readline()
            if line and rng.random() < 0.9:
                time.sleep(rng.uniform(0.0, 0.25))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait()
            p.stdout.close()
            p.stderr.close()
            with store.engine.connect() as conn:
                q = sa.select(sa.func.count()).where(outbox.c.state == "sending")
                mid_send += conn.execute(q).scalar() > 0
            if srv.count() >= n and kills >= 20:
                break
            time.sleep(rng.uniform(0.0, LEASE / 2))  # sometimes leases expire before the next run
        assert kills >= 20, f"only {kills} kills in {runs} runs"
        sent_before_final = srv.count()
        time.sleep(LEASE + 0.3)  # every lease of a killed run has expired
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout[done.stdout.index("{\n") :])
        received = dict(srv.received)

    dup = {k: v for k, v in received.items() if v > 1}
    assert not dup, f"duplicates: {list(dup.items())[:5]}"
    assert set(received) == expected, (
        f"missing {len(expected - set(received))}, unexpected {len(set(received) - expected)}"
    )
    with store.engine.connect() as conn:
        states = dict(
            conn.execute(sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state)).all()
        )
    assert states == {"sent": n}
    assert mid_send >= 3, f"only {mid_send} kills landed between handing to SMTP and recording"
    print(
        f"\nkills={kills} mid_send={mid_send} runs={runs} before_final={sent_before_final} final_report={report}"
    )
