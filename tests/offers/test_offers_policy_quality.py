"""Measured against the synthetic world's truth: the scoring policy beats the playbook and
reaches a stated share of the oracle's profit (a small world; the benchmark uses larger ones)."""

from __future__ import annotations

import pytest

from winback_ml.cohort.playbook import playbook_policy
from winback_ml.data.synthetic import make_world
from winback_ml.scoring import build_plan

#: Stated floors for this small world (12,000 customers, seed 11: measured 0.814 of the
#: oracle and 1.32 x the playbook on 2026-11-21, after the world's reason traces and the
#: response model's covariates / control-arm recalibration; 0.767 and 1.39 before);
#: benchmarks/bench_policy.py reports larger worlds.
MIN_SHARE_OF_ORACLE = 0.75
MIN_OVER_PLAYBOOK = 1.15


@pytest.mark.slow
def test_policy_beats_playbook_and_nears_oracle():
    w = make_world(12000, seed=11)
    plan = build_plan(w.tables, w.end, None)
    cfg, T, coh = plan.config, w.truth, plan.cohort
    ids = coh["customer_id"].to_numpy()
    v_policy = T.policy_value(plan.targets, w.end, cfg)
    v_oracle = T.policy_value(T.oracle_policy(ids, w.end, cfg), w.end, cfg)
    v_playbook = T.policy_value(playbook_policy(coh, cfg), w.end, cfg)
    assert v_policy >= MIN_SHARE_OF_ORACLE * v_oracle, (v_policy, v_oracle)
    assert v_policy >= MIN_OVER_PLAYBOOK * v_playbook, (v_policy, v_playbook)


@pytest.mark.slow
def test_untried_offer_type_is_never_chosen_and_is_stated():
    w = make_world(3000, seed=12)
    tables = dict(w.tables)
    arms = tables["campaign_arms"]
    gone = arms.loc[arms["offer_type"] == "early_renewal", ["campaign_id", "arm_id"]]
    asg = tables["campaign_assignments"].merge(gone, how="left", indicator=True)
    tables["campaign_assignments"] = asg[asg["_merge"] == "left_only"].drop(columns="_merge")
    tables["campaign_arms"] = arms[arms["offer_type"] != "early_renewal"]
    plan = build_plan(tables, w.end, None)
    assert not (plan.targets["offer_type"] == "early_renewal").any()
    assert any("never tried" in n and "early_renewal" in n for n in plan.notes)
