"""Dispatch on the synthetic world: the world's own future returns, consents and time zones are the truth.

Customers lapsed at ``as_of`` are enrolled; the store holds the world's whole
history, so the returns that happen after ``as_of`` arrive while the
sequences run, as they would in production. Ticks every 3 hours for 31 days.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from winback_ml.data.store import Store
from winback_ml.data.synthetic import make_world
from winback_ml.dispatch.channels import DryRunChannel
from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.outbox import Dispatcher
from winback_ml.dispatch.policy import REACTIVATION_EVENTS
from winback_ml.dispatch.schema import enrolments, outbox


@pytest.mark.slow
def test_sequences_on_the_synthetic_world(tmp_path):
    w = make_world(n_customers=800, seed=3)
    store = Store(f"sqlite:///{tmp_path}/world.db")
    store.write(w.tables)
    as_of = pd.Timestamp("2025-10-01")
    subs = w.tables["subscriptions"]
    seen = subs[subs["started_at"] <= as_of]
    last = seen.sort_values("started_at").groupby("customer_id").tail(1)
    lapsed = last[
        last["ended_at"].notna()
        & (last["ended_at"] <= as_of)
        & (last["ended_at"] > as_of - pd.Timedelta(days=90))
    ]
    assert len(lapsed) > 30
    targets = pd.DataFrame(
        {
            "customer_id": lapsed["customer_id"],
            "segment": "warm",
            "cancel_reason": lapsed["cancel_reason"].fillna("unknown"),
            "reason_source": "stated",
            "days_lapsed": (as_of - lapsed["ended_at"]).dt.total_seconds() / 86400,
            "contact": True,
            "offer_type": "discount",
            "discount_pct": 20.0,
            "discount_months": 3,
            "channel": "multi",
        }
    )
    plan = enrol_targets(store, targets, as_of, holdout=0.2, campaign_id="world")
    chans = {c: DryRunChannel(tmp_path / "out", c) for c in ("email", "sms", "in_app")}
    disp = Dispatcher(store, chans)  # default settings: quiet hours 21-09 local, 1/day, 3/week
    t = as_of.to_pydatetime()
    while t <= (as_of + pd.Timedelta(days=31)).to_pydatetime():
        disp.tick(t)
        t += timedelta(hours=3)

    with store.engine.connect() as conn:
        ob = pd.read_sql(sa.select(outbox), conn)
        enr = pd.read_sql(sa.select(enrolments), conn).set_index("customer_id")
    cust = w.tables["customers"].set_index("customer_id")
    ev = w.tables["events"]
    hold = set(enr.index[enr["is_control"]])
    assert hold and not hold & set(ob["customer_id"])  # the holdout is never contacted

    sent = ob[ob["state"] == "sent"].copy()
    assert len(sent) > 50
    # consent and address, from the world's customers table
    c = cust.loc[sent["customer_id"]]
    em = (sent["channel"] == "email").to_numpy()
    sm = (sent["channel"] == "sms").to_numpy()
    assert (c["email_opt_in"].to_numpy()[em]).all() and c["email"].notna().to_numpy()[em].all()
    assert (c["sms_opt_in"].to_numpy()[sm]).all() and c["phone"].notna().to_numpy()[sm].all()
    skipped = ob[ob["state"] == "skipped"]
    assert (
        len(skipped) > 0 and skipped["last_error"].str.contains("consent|no phone|no e-mail").all()
    )

    # nothing is sent after the customer came back (the world's future returns)
    lapse = enr["lapsed_at"]
    ret = ev[ev["event_type"].isin(REACTIVATION_EVENTS)].merge(
        lapse.rename("lapsed_at"), left_on="customer_id", right_index=True
    )
    first_return = (
        ret[ret["occurred_at"] > ret["lapsed_at"]].groupby("customer_id")["occurred_at"].min()
    )
    fr = sent["customer_id"].map(first_return)
    assert not (fr.notna() & (sent["sent_at"] >= fr)).any()
    returned_in_window = first_return[first_return <= as_of + pd.Timedelta(days=28)]
    stopped = enr.loc[enr.index.intersection(returned_in_window.index)]
    stopped = stopped[~stopped["is_control"]]
    assert len(stopped) > 0 and (stopped["status"] == "stopped").all()
    assert (stopped["stop_reason"] == "reactivated").all()

    # quiet hours in each customer's zone, and at most one e-mail/SMS per rolling day
    out = sent[sent["channel"] != "in_app"]
    local_hours = [
        pd.Timestamp(s)
        .tz_localize("UTC")
        .tz_convert(ZoneInfo(cust.loc[cid, "timezone"] or "UTC"))
        .hour
        for cid, s in zip(out["customer_id"], out["sent_at"], strict=True)
    ]
    assert all(9 <= h < 21 for h in local_hours)
    assert ((out["sent_at"] - out["due_at"]) > pd.Timedelta(hours=3)).any()  # some were deferred
    for _, g in out.sort_values("sent_at").groupby("customer_id"):
        gaps = g["sent_at"].diff().dropna()
        assert (gaps >= pd.Timedelta(days=1)).all()

    # customers who never came back and consented to e-mail got every e-mail step exactly once
    never = set(enr.index[(enr["status"] == "active")]) - set(first_return.index)
    ok = [cid for cid in never if cust.loc[cid, "email_opt_in"] and cust.loc[cid, "email"]]
    assert ok
    per = (
        sent[(sent["channel"] == "email") & sent["customer_id"].isin(ok)]
        .groupby("customer_id")["step_name"]
        .apply(sorted)
    )
    assert (per.apply(lambda s: s == ["intro", "last_chance", "reminder"])).all() and len(
        per
    ) == len(ok)
    files = list((tmp_path / "out" / "email").glob("*.json"))
    assert len(files) == int(em.sum())
    assert plan.summary()["holdout"] == len(hold)
