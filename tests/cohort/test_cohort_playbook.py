"""The playbook: default offers per reason, consent, catalog, segments, configuration."""

from __future__ import annotations

import pandas as pd
import pytest

from winback_ml.cohort.lapsed import build_lapsed_cohort
from winback_ml.cohort.playbook import (
    DEFAULT_PLAYBOOK,
    POLICY_COLUMNS,
    load_playbook,
    match_offer,
    playbook_offer,
    playbook_policy,
)
from winback_ml.cohort.reasons import infer_reasons
from winback_ml.config import Offer, load_config
from winback_ml.data.contract import CANCEL_REASONS, CHANNELS, OFFER_TYPES
from winback_ml.exceptions import ConfigError


def _frame(rows):
    return pd.DataFrame(
        rows,
        columns=["customer_id", "cancel_reason", "can_email", "can_sms", "can_in_app", "segment"],
    )


def test_seed_offers_per_reason():
    """The module seed: payment failure -> resume billing; contract end -> early renewal; ..."""
    assert playbook_offer("payment_failed") == Offer("resume_billing")
    assert playbook_offer("contract_ended") == Offer("early_renewal", 15.0, 12)
    assert playbook_offer("missing_features") == Offer("feature_trial")
    assert playbook_offer("too_expensive").offer_type == "discount"
    assert playbook_offer(None) == Offer("none")
    assert set(DEFAULT_PLAYBOOK) == set(CANCEL_REASONS)
    catalog = load_config(None).offer_catalog()
    for reason in CANCEL_REASONS:  # every default is in the default catalog
        assert playbook_offer(reason) in catalog


def test_response_priors_of_the_playbook():
    """Incentive pairs are effect claims; a plain message only where the entry says so."""
    from winback_ml.scoring import _playbook_prior

    # the interview seed: misclassified (accidental) cancels "convert at 60 %+ when reached"
    assert playbook_offer("accidental") == Offer("none")
    assert DEFAULT_PLAYBOOK["accidental"].is_response_prior
    assert not DEFAULT_PLAYBOOK["unused"].is_response_prior  # the no-incentive default
    assert DEFAULT_PLAYBOOK["too_expensive"].is_response_prior
    prior = _playbook_prior(load_config(None))
    assert prior["accidental"] == "none"
    assert prior["payment_failed"] == "resume_billing"
    assert prior["contract_ended"] == "early_renewal"
    assert "unused" not in prior and "other" not in prior
    # a configured offer drops the default's claim unless restated; a reason not contacted
    # claims nothing; a plain message can be marked as a claim
    cfg = load_config(
        {
            "playbook": {
                "reasons": {
                    "accidental": {"offer_type": "resume_billing"},
                    "too_expensive": {"contact": False},
                    "low_quality": {"response_prior": True},
                    "switched_service": {"response_prior": False},
                }
            }
        }
    )
    prior = _playbook_prior(cfg)
    assert prior["accidental"] == "resume_billing"
    assert "too_expensive" not in prior
    assert prior["low_quality"] == "none"
    assert "switched_service" not in prior
    pb = load_playbook(
        {"playbook": {"reasons": {"accidental": {"offer_type": "none", "response_prior": False}}}}
    )
    assert not pb.entries["accidental"].is_response_prior
    # spelling out the default offer keeps the default's claim
    pb = load_playbook({"playbook": {"reasons": {"accidental": {"offer_type": "none"}}}})
    assert pb.entries["accidental"].is_response_prior


def test_policy_picks_consented_channels_and_skips_lost():
    df = _frame(
        [
            ("a", "payment_failed", True, True, True, "misclassified"),
            ("b", "too_expensive", False, True, True, "hot"),
            ("c", "missing_features", False, False, True, "warm"),
            ("d", "contract_ended", False, False, False, "hot"),
            ("e", "too_expensive", True, False, True, "lost"),
            ("f", None, True, False, True, None),
        ]
    )
    p = playbook_policy(df).set_index("customer_id")
    assert list(playbook_policy(df).columns) == POLICY_COLUMNS
    assert p.loc["a", ["contact", "offer_type", "channel"]].tolist() == [
        True,
        "resume_billing",
        "email",
    ]
    assert p.loc["b", ["offer_type", "discount_pct", "discount_months", "channel"]].tolist() == [
        "discount",
        20.0,
        3,
        "sms",
    ]
    assert p.loc["c", "channel"] == "in_app" and p.loc["c", "offer_type"] == "feature_trial"
    assert not p.loc["d", "contact"] and p.loc["d", "playbook_rule"] == "no_consented_channel"
    assert p.loc["d", "channel"] is None
    assert not p.loc["e", "contact"] and p.loc["e", "playbook_rule"] == "skip_segment"
    assert p.loc["f", "cancel_reason"] == "unknown" and p.loc["f", "offer_type"] == "none"
    assert p.loc["f", "contact"]
    contacted = p[p["contact"]]
    assert contacted["offer_type"].isin(OFFER_TYPES).all()
    assert contacted["channel"].isin(CHANNELS).all()


def test_policy_respects_the_catalog_and_enabled_channels():
    cfg = load_config(
        {
            "offers": [
                {"offer_type": "none"},
                {"offer_type": "discount", "discount_pct": [10, 30], "discount_months": [1]},
            ],
            "channels": ["sms", "in_app"],
        }
    )
    df = _frame(
        [
            ("a", "too_expensive", True, True, True, None),
            ("b", "contract_ended", True, False, True, None),
            ("c", "payment_failed", True, False, False, None),
        ]
    )
    p = playbook_policy(df, cfg).set_index("customer_id")
    # 20 % x 3 months is not in the catalog: the nearest discount is taken
    assert p.loc["a", ["offer_type", "discount_pct", "discount_months", "channel"]].tolist() == [
        "discount",
        10.0,
        1,
        "sms",
    ]
    assert p.loc["a", "playbook_rule"] == "nearest_in_catalog"
    # no early renewal in the catalog: a plain message, on in_app (e-mail is not enabled)
    assert p.loc["b", ["offer_type", "channel", "playbook_rule"]].tolist() == [
        "none",
        "in_app",
        "plain_message",
    ]
    assert not p.loc["c", "contact"]  # only e-mail consent, and e-mail is disabled
    for _, row in p[p["contact"]].iterrows():
        o = Offer(row["offer_type"], row["discount_pct"], int(row["discount_months"]))
        assert o in cfg.offer_catalog()


def test_configured_playbook():
    cfg = {
        "playbook": {
            "channels": ["sms", "email"],
            "skip_segments": [],
            "reasons": {
                "too_expensive": {
                    "offer_type": "discount",
                    "discount_pct": 30,
                    "discount_months": 6,
                },
                "unused": {"contact": False},
                "payment_failed": {"channels": ["in_app"]},
            },
        }
    }
    pb = load_playbook(cfg)
    assert pb.entry("too_expensive").offer == Offer("discount", 30.0, 6)
    df = _frame(
        [
            ("a", "too_expensive", True, True, True, "lost"),
            ("b", "unused", True, True, True, "warm"),
            ("c", "payment_failed", True, True, True, "hot"),
        ]
    )
    p = playbook_policy(df, cfg).set_index("customer_id")
    assert p.loc["a", ["contact", "discount_pct", "discount_months", "channel"]].tolist() == [
        True,
        30.0,
        6,
        "sms",
    ]
    assert not p.loc["b", "contact"] and p.loc["b", "playbook_rule"] == "no_contact_reason"
    assert p.loc["c", "channel"] == "in_app"


@pytest.mark.parametrize(
    "playbook, match",
    [
        ({"reasons": {"too_pricey": {"offer_type": "discount"}}}, "playbook.reasons.too_pricey"),
        ({"reasons": {"unused": {"offer_type": "bribe"}}}, "offer_type"),
        ({"reasons": {"unused": {"offer_type": "discount", "discount_pct": 0}}}, "discount_pct 0"),
        ({"reasons": {"unused": {"offer_type": "discount", "discount_pct": 150}}}, "0..100"),
        ({"channels": ["pigeon"]}, "playbook.channels"),
        ({"skip_segments": ["cold"]}, "skip_segments"),
        ({"offers": {}}, "unknown key"),
        ("discount everyone", "must be a mapping"),
        ({"reasons": {"unused": {"contact": "no"}}}, "true or false"),
        ({"reasons": {"unused": {"response_prior": "yes"}}}, "response_prior"),
        (
            {"reasons": {"too_expensive": {"contact": False, "response_prior": True}}},
            "contact false",
        ),
    ],
)
def test_bad_playbook_config_is_refused(playbook, match):
    with pytest.raises(ConfigError, match=match):
        load_playbook({"playbook": playbook})


def test_match_offer_without_a_plain_message():
    offer, how = match_offer(Offer("feature_trial"), [Offer("discount", 10.0, 1)])
    assert offer is None and how == "no_catalog_offer"


def test_policy_needs_reasons_and_consent(tiny):
    from winback_ml.exceptions import DataContractError

    with pytest.raises(DataContractError, match="cancel_reason"):
        playbook_policy(build_lapsed_cohort(tiny, "2025-06-30"))


def test_playbook_policy_on_the_world(world_data, world):
    cohort = build_lapsed_cohort(world_data, world.end)
    reasons = infer_reasons(world_data, cohort, world.end)
    merged = cohort.merge(reasons[["customer_id", "cancel_reason"]], on="customer_id")
    p = playbook_policy(merged)
    assert len(p) == len(cohort) and p["contact"].mean() > 0.5
    for ch, flag in (("email", "can_email"), ("sms", "can_sms")):
        used = (p["channel"] == ch).to_numpy()
        assert merged.loc[used, flag].all()  # never a channel without consent
    involuntary = (merged["cancel_reason"] == "payment_failed").to_numpy() & p["contact"].to_numpy()
    assert (p.loc[involuntary, "offer_type"] == "resume_billing").all()
