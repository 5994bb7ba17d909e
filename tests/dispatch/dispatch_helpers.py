"""Helpers of the dispatch tests (a uniquely named module: ``conftest`` is a shared name)."""

from __future__ import annotations

import pandas as pd

LANGS = ["en", "de", "fr", "es", "it"]


def make_tables(
    n: int = 20, *, tz: str = "Europe/Berlin", ended: str = "2025-06-01"
) -> dict[str, pd.DataFrame]:
    """Contract tables for n lapsed customers c0..c{n-1} (all consented, valid addresses)."""
    ids = [f"c{i}" for i in range(n)]
    cust = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_at": pd.Timestamp("2025-01-01"),
            "country": "DE",
            "language": [LANGS[i % len(LANGS)] for i in range(n)],
            "timezone": tz,
            "email": [f"user{i}@example.com" for i in range(n)],
            "phone": [f"+4915100{i:06d}" for i in range(n)],
            "email_opt_in": True,
            "sms_opt_in": True,
            "acquisition_channel": None,
        }
    )
    subs = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(n)],
            "customer_id": ids,
            "source": "stripe",
            "plan_id": "pro_monthly",
            "plan_tier": "pro",
            "billing_interval": "month",
            "price": 29.0,
            "currency": "EUR",
            "mrr": 29.0,
            "status": "cancelled",
            "started_at": pd.Timestamp("2025-01-01"),
            "current_period_end": pd.Timestamp(ended),
            "cancel_requested_at": pd.Timestamp("2025-05-20"),
            "ended_at": pd.Timestamp(ended),
            "cancel_reason": "too_expensive",
            "cancel_comment": None,
        }
    )
    ev = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "occurred_at": pd.Timestamp(ended),
            "customer_id": ids,
            "subscription_id": subs["subscription_id"],
            "source": "stripe",
            "event_type": "cancelled",
            "amount": None,
            "currency": None,
            "reason": "too_expensive",
            "detail": None,
        }
    )
    return {"customers": cust, "subscriptions": subs, "events": ev}


def make_targets(ids: list[str], **over: object) -> pd.DataFrame:
    t = pd.DataFrame(
        {
            "customer_id": ids,
            "segment": "hot",
            "cancel_reason": "too_expensive",
            "reason_source": "stated",
            "days_lapsed": 20,
            "p_return_base": 0.05,
            "p_return_offer": 0.12,
            "expected_ltv": 300.0,
            "contact": True,
            "offer_type": "discount",
            "discount_pct": 20.0,
            "discount_months": 3,
            "channel": "multi",
            "expected_incremental_profit": 10.0,
            "rank": range(1, len(ids) + 1),
            "model_version": "test",
        }
    )
    for k, v in over.items():
        t[k] = v
    return t


#: A sequences file for tests: no quiet hours, no frequency cap, short backoff.
TEST_SETTINGS = {
    "quiet_hours": None,
    "frequency_cap": {"per_day": 0, "per_week": 0},
    "backoff_minutes": 10,
    "max_attempts": 3,
    "lease_seconds": 60,
}
