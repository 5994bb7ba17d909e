"""KPIs on a hand-made business whose every number is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from winback_ml.exceptions import DataContractError
from winback_ml.tracking.kpi import (
    SEED_TARGETS,
    campaign_churn_reduction,
    kpi_outcomes,
    kpi_report,
    monthly_churn_rates,
    weekly_kpis,
)

T = pd.Timestamp


def _tiny() -> dict[str, pd.DataFrame]:
    """9 lapsed customers, one win-back campaign (discount 20 % x 3 months vs holdout).

    contacted: c1 (returns on a new subscription, mrr 50), c2 (reactivated on its old
    subscription, mrr 40, involuntary lapse), c3 (returns after the 30-day window), c4;
    holdout: c5 (returns, mrr 30), c6 (involuntary lapse), c7, c8; c9 contacted late
    (window still open at as_of).
    """
    ids = [f"c{i}" for i in range(1, 10)]
    reasons = {"c2": "payment_failed", "c6": "payment_failed"}
    mrr = {"c1": 50.0, "c2": 40.0, "c3": 20.0, "c5": 30.0}
    subs = []
    ev = []
    for c in ids:
        r = reasons.get(c, "too_expensive")
        subs.append(
            {
                "subscription_id": f"s_{c}",
                "customer_id": c,
                "mrr": mrr.get(c, 10.0),
                "status": "cancelled",
                "started_at": T("2024-06-01"),
                "ended_at": T("2024-12-15"),
                "cancel_reason": r,
            }
        )
        ev.append((f"e_sub_{c}", T("2024-06-01"), c, f"s_{c}", "subscribed", None, None))
        ev.append((f"e_end_{c}", T("2024-12-15"), c, f"s_{c}", "cancelled", None, r))
    for c, when in (("c1", "2025-01-20"), ("c3", "2025-03-01"), ("c5", "2025-01-15")):
        subs.append(
            {
                "subscription_id": f"s2_{c}",
                "customer_id": c,
                "mrr": mrr[c],
                "status": "active",
                "started_at": T(when),
                "ended_at": pd.NaT,
                "cancel_reason": None,
            }
        )
        ev.append((f"e_ret_{c}", T(when), c, f"s2_{c}", "subscribed", mrr[c], None))
    ev.append(("e_ret_c2", T("2025-01-25"), "c2", "s_c2", "reactivated", 40.0, None))
    events = pd.DataFrame(
        ev,
        columns=[
            "event_id",
            "occurred_at",
            "customer_id",
            "subscription_id",
            "event_type",
            "amount",
            "reason",
        ],
    )
    campaigns = pd.DataFrame(
        [{"campaign_id": "C1", "objective": "winback", "started_at": T("2025-01-01")}]
    )
    arms = pd.DataFrame(
        [
            {"campaign_id": "C1", "arm_id": "ctrl", "is_control": True, "offer_type": "none",
             "discount_pct": 0.0, "discount_months": 0, "channel": "email"},
            {"campaign_id": "C1", "arm_id": "d20", "is_control": False, "offer_type": "discount",
             "discount_pct": 20.0, "discount_months": 3, "channel": "email"},
        ]
    )  # fmt: skip
    asg = [("C1", c, "d20", T("2025-01-10"), 0.01) for c in ("c1", "c2", "c3", "c4")]
    asg += [("C1", c, "ctrl", T("2025-01-10"), 0.0) for c in ("c5", "c6", "c7", "c8")]
    asg += [("C1", "c9", "d20", T("2025-03-20"), 0.01)]
    assignments = pd.DataFrame(
        asg, columns=["campaign_id", "customer_id", "arm_id", "assigned_at", "contact_cost"]
    )
    return {
        "subscriptions": pd.DataFrame(subs),
        "events": events,
        "campaigns": campaigns,
        "campaign_arms": arms,
        "campaign_assignments": assignments,
    }


AS_OF = "2025-04-01"


def _met(s: pd.DataFrame, kpi: str, group: str) -> bool | None:
    v = s.loc[(kpi, group), "met"]
    return None if v is None else bool(v)


def test_outcomes_read_the_window_and_lapse_type() -> None:
    o = kpi_outcomes(_tiny(), AS_OF).set_index("customer_id")
    assert o.attrs["pending"] == 1 and "c9" not in o.index
    assert o["reactivated"].to_dict() == {
        "c1": 1, "c2": 1, "c3": 0, "c4": 0, "c5": 1, "c6": 0, "c7": 0, "c8": 0
    }  # fmt: skip
    assert o.loc["c1", "return_mrr"] == 50.0 and o.loc["c2", "return_mrr"] == 40.0
    # discount given only to contacted returners: mrr x 20 % x 3 months
    assert o["discount_cost"].to_dict() == pytest.approx(
        {"c1": 30.0, "c2": 24.0, "c3": 0, "c4": 0, "c5": 0, "c6": 0, "c7": 0, "c8": 0}
    )
    assert o.loc["c2", "lapse_type"] == "involuntary" and o.loc["c1", "lapse_type"] == "voluntary"


def test_report_values_and_targets() -> None:
    rep = kpi_report(_tiny(), AS_OF)
    s = rep.summary.set_index(["kpi", "group"])
    assert s.loc[("resubscription_rate", "all"), "value"] == pytest.approx(0.5)
    assert s.loc[("holdout_rate", "all"), "value"] == pytest.approx(0.25)
    assert s.loc[("incremental_rate", "all"), "value"] == pytest.approx(0.25)
    assert s.loc[("arpu_recovered", "all"), "value"] == pytest.approx(45.0)
    # (4 x 0.01 contact + 54 discount) / (2 - 4 x 0.25) incremental reactivations
    assert s.loc[("cost_per_reactivation", "all"), "value"] == pytest.approx(54.04)
    assert s.loc[("cost_per_gross_reactivation", "all"), "value"] == pytest.approx(27.02)
    assert _met(s, "resubscription_rate", "all") is True  # 50 % > 15 %
    assert _met(s, "arpu_recovered", "all") is True  # 45.00 >= 45.00
    assert _met(s, "cost_per_reactivation", "all") is False  # 54.04 not < 2.00
    assert _met(s, "holdout_rate", "all") is None
    assert s.loc[("resubscription_rate", "all"), "target"] == SEED_TARGETS.reactivation_rate
    # voluntary and involuntary apart: c2 (contacted, back) and c6 (holdout) are involuntary
    assert s.loc[("resubscription_rate", "involuntary"), "value"] == pytest.approx(1.0)
    assert s.loc[("holdout_rate", "involuntary"), "value"] == pytest.approx(0.0)
    assert s.loc[("resubscription_rate", "voluntary"), "value"] == pytest.approx(1 / 3)
    assert s.loc[("holdout_rate", "voluntary"), "value"] == pytest.approx(1 / 3)
    assert math.isinf(s.loc[("cost_per_reactivation", "voluntary"), "value"])  # none caused
    assert rep.pending == 1 and any("attribution window" in n for n in rep.notes)
    lo, hi = s.loc[("incremental_rate", "all"), ["ci_low", "ci_high"]]
    assert lo < 0.25 < hi
    assert set(rep.definitions) >= {"resubscription_rate", "cost_per_reactivation"}
    assert rep.headline()["resubscription_rate"] == pytest.approx(0.5)


def test_no_future_data_is_read() -> None:
    t = _tiny()
    during = kpi_outcomes(t, "2025-02-05")
    assert during.empty and during.attrs["pending"] == 8  # windows still open
    early = kpi_outcomes(t, "2025-02-12").set_index("customer_id")
    assert early.attrs["pending"] == 0  # c9 not assigned yet: not even pending
    assert set(early.index) == {f"c{i}" for i in range(1, 9)}
    # c1 came back on 2025-01-20 and pays again on 2025-02-11, inside its 90-day revenue
    # horizon: a report as of the evening before must not see that payment, one after must
    late_event = pd.DataFrame(
        [("e_x", T("2025-02-11"), "c1", "s2_c1", "renewed", 50.0, None)],
        columns=t["events"].columns,
    )
    t2 = dict(t, events=pd.concat([t["events"], late_event], ignore_index=True))
    before = kpi_outcomes(t2, "2025-02-10T23:00:00").set_index("customer_id")
    assert before.loc["c1", "revenue"] == pytest.approx(50.0)  # the return payment only
    after = kpi_outcomes(t2, "2025-02-11T01:00:00").set_index("customer_id")
    assert after.loc["c1", "revenue"] == pytest.approx(100.0)


def test_weekly_trend_frame() -> None:
    w = weekly_kpis(kpi_outcomes(_tiny(), AS_OF))
    assert list(w["week"]) == [T("2025-01-06")]  # the Monday of 2025-01-10
    assert w.loc[0, "resubscription_rate"] == pytest.approx(0.5)


def test_churn_reduction_from_a_proactive_campaign() -> None:
    t = _tiny()
    t["campaigns"] = pd.concat(
        [t["campaigns"], pd.DataFrame([{"campaign_id": "P1", "objective": "proactive"}])]
    )
    t["campaign_arms"] = pd.concat(
        [
            t["campaign_arms"],
            pd.DataFrame(
                [
                    {"campaign_id": "P1", "arm_id": "ctl", "is_control": True},
                    {"campaign_id": "P1", "arm_id": "save", "is_control": False},
                ]
            ),
        ]
    )
    extra = [("P1", f"a{i}", "save" if i < 4 else "ctl", T("2025-01-01"), 0.0) for i in range(8)]
    t["campaign_assignments"] = pd.concat(
        [t["campaign_assignments"], pd.DataFrame(extra, columns=t["campaign_assignments"].columns)]
    )
    # contacted: 1 of 4 churns; holdout: 2 of 4 (one involuntary)
    churn = [
        ("x1", T("2025-02-01"), "a0", "sa0", "cancel_requested", None, "too_expensive"),
        ("x2", T("2025-02-01"), "a4", "sa4", "cancelled", None, "unused"),
        ("x3", T("2025-02-15"), "a5", "sa5", "expired", None, "payment_failed"),
        ("x4", T("2025-05-01"), "a6", "sa6", "cancelled", None, "unused"),  # after the window
    ]
    t["events"] = pd.concat(
        [t["events"], pd.DataFrame(churn, columns=t["events"].columns).astype({"amount": float})],
        ignore_index=True,
    )
    c = campaign_churn_reduction(t, "2025-06-01")
    lost = dict(t, campaign_arms=t["campaign_arms"][t["campaign_arms"]["arm_id"] != "ctl"])
    with pytest.raises(DataContractError, match=r"arms missing.*'arm_id': 'ctl'"):
        campaign_churn_reduction(lost, "2025-06-01")  # was: counted as holdout
    assert c.loc["all", "churn_contacted"] == pytest.approx(0.25)
    assert c.loc["all", "churn_holdout"] == pytest.approx(0.5)
    assert c.loc["all", "churn_rate_reduction"] == pytest.approx(0.25)
    assert c.loc["involuntary", "churn_rate_reduction"] == pytest.approx(0.25)
    assert c.loc["voluntary", "churn_rate_reduction"] == pytest.approx(0.0)
    rep = kpi_report(t, "2025-06-01")
    s = rep.summary.set_index(["kpi", "group"])
    assert s.loc[("churn_rate_reduction", "all"), "value"] == pytest.approx(0.25)
    assert rep.churn["basis"].iloc[0] == "holdout"


def test_monthly_churn_rates_count_the_live_base() -> None:
    t = _tiny()
    m = monthly_churn_rates(t, AS_OF, months=4).set_index("month")
    # December 2024: 9 live at its start, all 9 end on 2024-12-15 (2 involuntary)
    assert m.loc[T("2024-12-01"), "active_start"] == 9
    assert m.loc[T("2024-12-01"), "churn_rate"] == pytest.approx(1.0)
    assert m.loc[T("2024-12-01"), "involuntary_rate"] == pytest.approx(2 / 9)
    assert m.index.max() == T("2025-03-01")  # last complete month before 2025-04-01
    assert np.isnan(m.loc[T("2025-01-01"), "churn_rate"])  # nobody live at its start


def test_missing_campaign_tables_are_said_not_guessed() -> None:
    t = _tiny()
    del t["campaign_arms"]
    with pytest.raises(DataContractError, match="campaign tables"):
        kpi_outcomes(t, AS_OF)
    rep = kpi_report(t, AS_OF)
    assert any("not computed" in n for n in rep.notes)
    assert (
        rep.summary.set_index(["kpi", "group"]).loc[("resubscription_rate", "all"), "met"] is None
    )


def test_as_of_later_than_the_loaded_data_is_refused() -> None:
    from winback_ml.data.loader import ContractData

    t = _tiny()
    data = ContractData(
        customers=pd.DataFrame(),
        subscriptions=t["subscriptions"],
        events=t["events"][t["events"]["occurred_at"] <= T("2025-02-12")],
        campaigns=t["campaigns"],
        campaign_arms=t["campaign_arms"],
        campaign_assignments=t["campaign_assignments"],
        as_of=T("2025-02-12"),
    )
    with pytest.raises(DataContractError, match="loaded as of 2025-02-12"):
        kpi_report(data, AS_OF)
    assert kpi_report(data, "2025-02-12").as_of == T("2025-02-12")
