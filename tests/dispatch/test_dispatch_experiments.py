"""Experiments: deterministic arms, the holdout is never contacted, assignments close the loop."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from dispatch_helpers import TEST_SETTINGS, make_targets

from winback_ml.dispatch.channels import DryRunChannel
from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.experiments import Arm, Experiment, assign_arms, default_experiment
from winback_ml.dispatch.outbox import Dispatcher
from winback_ml.dispatch.schema import codes, enrolments, outbox
from winback_ml.dispatch.sequences import load_sequences
from winback_ml.exceptions import ConfigError

T0 = datetime(2025, 6, 21, 10, 0)


def test_assignment_is_deterministic_balanced_and_salted():
    ids = [f"cus_{i}" for i in range(40_000)]
    exp = Experiment("k", [Arm("a", 1), Arm("b", 2), Arm("hold", 1, is_control=True)])
    a1 = assign_arms(ids, exp)
    a2 = assign_arms(list(reversed(ids)), exp)
    assert (a1 == a2.loc[a1.index]).all()  # order does not matter
    share = a1.value_counts(normalize=True)
    assert share["a"] == pytest.approx(0.25, abs=0.01) and share["b"] == pytest.approx(
        0.5, abs=0.01
    )
    other = assign_arms(ids, Experiment("k", exp.arms, salt="another"))
    # a new salt is an independent draw: agreement ~ sum of squared shares = 0.375
    assert (other == a1).mean() == pytest.approx(0.375, abs=0.015)
    with pytest.raises(ConfigError):
        Experiment("k", [Arm("a"), Arm("a")])
    with pytest.raises(ConfigError):
        default_experiment("k", holdout=1.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="finite"):
            Experiment("k", [Arm("a", 1.0), Arm("b", bad)])


def test_holdout_is_never_contacted_and_assignments_are_in_the_contract(store_factory, tmp_path):
    n = 60
    store = store_factory(n)
    book = load_sequences()
    for k, v in TEST_SETTINGS.items():
        setattr(book.settings, k, v)
    exp = Experiment(
        "exp1",
        [
            Arm("holdout", 0.25, is_control=True),
            Arm("target_offer", 0.25),
            Arm(
                "free_month_late",
                0.25,
                offer={"offer_type": "free_month", "discount_months": 1},
                send_delay_days=7,
                message_variant="late",
            ),
            Arm("plain", 0.25, offer={"offer_type": "none"}),
        ],
    )
    plan = enrol_targets(
        store,
        make_targets([f"c{i}" for i in range(n)], channel="email"),
        T0,
        experiment=exp,
        book=book,
    )
    s = plan.summary()
    hold = set(plan.enrolments.loc[plan.enrolments["is_control"], "customer_id"])
    assert s["holdout"] == len(hold) > 5
    chans = {c: DryRunChannel(tmp_path / "out", c) for c in ("email", "sms", "in_app")}
    disp = Dispatcher(store, chans, book=book)
    for d in range(0, 40):
        disp.tick(T0 + timedelta(days=d, hours=1))
    with store.engine.connect() as conn:
        ob = pd.read_sql(
            sa.select(outbox.c.customer_id, outbox.c.state, outbox.c.due_at, outbox.c.enrolment_id),
            conn,
        )
        code_owners = set(conn.execute(sa.select(codes.c.customer_id)).scalars())
        enr = pd.read_sql(sa.select(enrolments), conn).set_index("customer_id")
    assert not hold & set(ob["customer_id"]) and not hold & code_owners
    sent_to = {f.stem for f in (tmp_path / "out" / "email").glob("*.json")}
    assert len(sent_to) == len(ob[ob.state == "sent"]) - len(
        list((tmp_path / "out" / "in_app").glob("*.json"))
    )
    # timing variant: first message 7 days later; offer variant: free month codes, plain: no code
    late = enr[enr["arm_id"].str.startswith("free_month_late|")]
    first_due = ob.groupby("customer_id")["due_at"].min()
    assert (first_due.loc[late.index] == T0 + timedelta(days=7)).all()
    assert set(late["offer_type"]) == {"free_month"} and late["code"].notna().all()
    plain = enr[enr["arm_id"].str.startswith("plain|")]
    assert plain["code"].isna().all()

    # the contract tables hold the experiment, and the loader accepts them
    data = store.read()
    arms = data.campaign_arms.set_index("arm_id")
    asg = data.campaign_assignments
    assert set(data.campaigns["campaign_id"]) == {"exp1"}
    assert len(asg) == n and set(asg["arm_id"]) <= set(arms.index)
    assert arms.loc[asg.loc[asg.customer_id.isin(hold), "arm_id"], "is_control"].all()
    assert (asg.loc[asg.customer_id.isin(hold), "contact_cost"] == 0).all()
    assert (asg.loc[~asg.customer_id.isin(hold), "contact_cost"] > 0).all()
    assert arms.loc[arms.index.str.startswith("free_month_late|"), "send_delay_days"].eq(7).all()
    # the same customers get the same arms when the experiment is planned again
    again = assign_arms([f"c{i}" for i in range(n)], exp)
    assert (again.loc[list(hold)] == "holdout").all()
    assert np.isclose(len(hold) / n, 0.25, atol=0.15)
