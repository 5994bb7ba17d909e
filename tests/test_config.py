"""The business config: contract defaults, catalog expansion, clear errors."""

from __future__ import annotations

import pytest

from winback_ml.config import Offer, load_config
from winback_ml.exceptions import ConfigError


def test_defaults_are_the_contract_defaults():
    c = load_config(None)
    assert c.margin == 0.8 and c.ltv_horizon_months == 24
    assert c.attribution_window_days == 30 and c.lapsed_window_days == 90
    assert c.contact_cost == {"email": 0.006, "sms": 0.03, "in_app": 0.0, "multi": 0.036}
    assert c.channels == ["email", "sms", "in_app", "multi"]
    assert c.budget is None and c.max_cost_per_reactivation is None


def test_catalog_expands_every_offer():
    cat = load_config(None).offer_catalog()
    assert len(cat) == 1 + 8 * 3 + 1 + 1 + 1 + 1
    assert Offer("discount", 25.0, 3) in cat
    assert Offer("early_renewal", 15.0, 12) in cat
    assert (
        Offer("free_month", 0.0, 1) in cat
        and Offer("free_month", 0.0, 1).effective_discount_pct == 100
    )
    assert len({o.key for o in cat}) == len(cat)


def test_yaml_file_and_partial_contact_cost(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("margin: 0.7\ncontact_cost: {sms: 0.05}\nbudget: 500\nnew_key: 1\n")
    c = load_config(p)
    assert c.margin == 0.7 and c.contact_cost["sms"] == 0.05 and c.contact_cost["email"] == 0.006
    assert c.budget == 500 and c.extra == {"new_key": 1}


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"margin": 1.2}, "margin"),
        ({"margin": "high"}, "margin"),
        ({"contact_cost": {"email": -1}}, "contact_cost.email"),
        ({"contact_cost": {"fax": 1}}, "fax"),
        ({"channels": ["pigeon"]}, "pigeon"),
        ({"offers": [{"offer_type": "cashback"}]}, "offer_type"),
        ({"offers": [{"offer_type": "discount", "discount_pct": [0, 10]}]}, "discount_pct 0"),
        ({"offers": [{"offer_type": "discount", "discount_pct": 120}]}, "discount_pct"),
        ({"budget": -5}, "budget"),
        ({"attribution_window_days": 0}, "attribution_window_days"),
    ],
)
def test_inconsistent_config_is_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_config(bad)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("margin: [0.8\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
