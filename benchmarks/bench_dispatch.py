"""Benchmark of dispatch: enqueue 1,000,000 messages, render and send 100,000 over SMTP.

Steps (each timed):

1. a store (SQLite file, WAL) with ``--customers`` consented customers
   (bulk-inserted; default 200,000);
2. ``enrol_in_chunks``: every customer on the default 5-step ``multi``
   sequence = ``5 x customers`` outbox rows (1,000,000), a discount code
   each, the campaign tables; one transaction per ``--chunk`` targets;
3. ``Dispatcher.tick(limit=--send)``: claim, stop rules, consent,
   suppression, quiet hours, frequency cap, render (sandboxed Jinja2: subject,
   text, HTML), build MIME, send over SMTP in one session per batch to a
   loopback aiosmtpd server running in **another process**, record.

Reports messages/s of both phases and the process's peak RSS; checks that
the server received every sent message exactly once. Writes
``benchmarks/results/bench_dispatch.json``.

Run: ``.venv/bin/python benchmarks/bench_dispatch.py [--customers N] [--send M]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--send", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--chunk", type=int, default=50_000, help="targets per enrolment transaction")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_dispatch.json"))
    a = ap.parse_args()

    from winback_ml.data.store import Store
    from winback_ml.dispatch.channels import SMTPEmailChannel
    from winback_ml.dispatch.enrol import enrol_in_chunks
    from winback_ml.dispatch.outbox import Dispatcher, outbox_counts
    from winback_ml.dispatch.testing import free_port

    tmp = Path(tempfile.mkdtemp(prefix="bench_dispatch_"))
    store = Store(f"sqlite:///{tmp}/bench.db")
    store.create_schema()
    n = a.customers
    now = datetime(2025, 6, 21, 12, 0)
    ids = [f"cus_{i:07d}" for i in range(n)]
    t0 = time.perf_counter()
    cust = [
        {
            "customer_id": cid, "signup_at": datetime(2024, 1, 1), "country": "DE",
            "language": ("en", "de", "fr", "es")[i % 4], "timezone": "Europe/Berlin",
            "email": f"user{i}@example.com", "phone": f"+49151{i:08d}",
            "email_opt_in": True, "sms_opt_in": True, "acquisition_channel": None,
        }
        for i, cid in enumerate(ids)
    ]  # fmt: skip
    subs = [
        {
            "subscription_id": f"sub_{i:07d}", "customer_id": cid, "source": "stripe", "plan_id": "pro",
            "plan_tier": "pro", "billing_interval": "month", "price": 29.0, "currency": "EUR", "mrr": 29.0,
            "status": "cancelled", "started_at": datetime(2024, 1, 1), "current_period_end": datetime(2025, 6, 1),
            "cancel_requested_at": None, "ended_at": datetime(2025, 6, 1), "cancel_reason": "too_expensive",
            "cancel_comment": None,
        }
        for i, cid in enumerate(ids)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(store.table("customers").insert(), cust)
        conn.execute(store.table("subscriptions").insert(), subs)
    del cust, subs
    setup_s = time.perf_counter() - t0

    targets = pd.DataFrame(
        {
            "customer_id": ids, "segment": "hot", "cancel_reason": "too_expensive", "reason_source": "stated",
            "days_lapsed": 20, "contact": True, "offer_type": "discount", "discount_pct": 20.0,
            "discount_months": 3, "channel": "multi",
        }
    )  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    summary = enrol_in_chunks(store, targets, now, chunk=a.chunk, holdout=0.0, campaign_id="bench")
    enqueue_s, enqueue_cpu = time.perf_counter() - t0, time.process_time() - c0
    enqueued = summary["messages"]
    rss_after_enqueue = peak_rss_mb()
    del targets

    port = free_port()
    count_file = tmp / "smtp_count.json"
    srv = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "winback_ml.dispatch.testing",
            "smtp",
            "--port",
            str(port),
            "--count-file",
            str(count_file),
        ],
        stdout=subprocess.PIPE,
    )
    srv.stdout.readline()
    try:
        disp = Dispatcher(store, {"email": SMTPEmailChannel("127.0.0.1", port)})
        t0, c0 = time.perf_counter(), time.process_time()
        report = disp.tick(now, batch_size=a.batch_size, limit=a.send)
        send_s, send_cpu = time.perf_counter() - t0, time.process_time() - c0
        disp.channels["email"].close()
    finally:
        time.sleep(1.0)
        srv.terminate()
        srv.wait(timeout=30)
    received = json.loads(count_file.read_text())
    counts = outbox_counts(store)
    res = {
        "benchmark": "bench_dispatch",
        "when_utc": datetime.utcnow().isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "store": "sqlite (file, WAL)",
        "customers": n,
        "enqueue": {
            "messages": enqueued,
            "seconds": round(enqueue_s, 2),
            "messages_per_s": round(enqueued / enqueue_s, 1),
            "cpu_seconds": round(enqueue_cpu, 2),
            "targets_per_transaction": a.chunk,
            "codes": n,
        },
        "send": {
            "messages": report.sent,
            "seconds": round(send_s, 2),
            "messages_per_s": round(report.sent / send_s, 1),
            "cpu_seconds_sender": round(send_cpu, 2),
            "batch_size": a.batch_size,
            "channel": "SMTP to loopback aiosmtpd in another process, one session per batch",
            "server_received": received["received"],
            "server_unique": received["unique"],
            "server_duplicates": received["duplicates"],
        },
        "peak_rss_mb": {
            "after_enqueue": round(rss_after_enqueue, 1),
            "after_send": round(peak_rss_mb(), 1),
        },
        "setup_seconds": round(setup_s, 2),
        "load_average_at_end": [round(x, 2) for x in __import__("os").getloadavg()],
        "report": report.as_dict(),
        "outbox_states": counts,
    }
    print(json.dumps(res, indent=1))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    assert received["duplicates"] == 0 and received["received"] == report.sent, "delivery mismatch"


if __name__ == "__main__":
    main()
