"""A tiny hand-made business whose answers are known (shared by the cohort tests).

As of 2025-06-30 (``AS_OF``):

==== ================================================================ ==========================
c1   s1 monthly pro, cancelled 2025-05-01 (too_expensive), never back  lapsed 60 d, prime
c2   s2 expired 2025-01-10 after 2 payment failures, s3 from 02-01     returned after 22 d
c3   s4 cancelled 03-01 (event only), reactivated 03-15, cancelled     2 lapses; lapsed 10 d,
     again 06-20 (missing_features)                                    too_soon
c4   active since 2024                                                 no lapse
c5   s5 ends 2025-07-10 (after as_of)                                  no lapse at as_of
c6   add-on s6 cancelled 05-15 while s7 stays active                   no lapse
c7   s10 yearly, expired 2025-01-01 (contract_ended)                   lapsed 180 d (late)
c8   s8 ends 04-01 and s9 starts 04-01 (plan switch)                   no lapse
c9   s11 cancelled 2025-06-01 + expired event same day, reason unknown lapsed 29 d, early
==== ================================================================ ==========================
"""

from __future__ import annotations

import pandas as pd

AS_OF = pd.Timestamp("2025-06-30")

_SUB_COLS = [
    "subscription_id",
    "customer_id",
    "source",
    "plan_id",
    "plan_tier",
    "billing_interval",
    "price",
    "currency",
    "mrr",
    "status",
    "started_at",
    "current_period_end",
    "cancel_requested_at",
    "ended_at",
    "cancel_reason",
    "cancel_comment",
]


def _ts(s: str | None) -> pd.Timestamp:
    return pd.NaT if s is None else pd.Timestamp(s)


def tiny_tables() -> dict[str, pd.DataFrame]:
    """The hand-made business of the module docstring, as contract frames."""
    ids = [f"c{i}" for i in range(1, 10)]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_at": pd.to_datetime(["2024-01-01"] * 9),
            "country": ["DE", "US", "US", "FR", None, "DE", "US", "GB", "US"],
            "language": ["de", "en", "en", "fr", None, "de", "en", "en", "en"],
            "timezone": [None] * 9,
            "email": [f"{c}@example.com" for c in ids[:-1]] + [None],
            "phone": ["+4915112345678", None, "+12025550123", None, None, None, None, None, None],
            "email_opt_in": [True, True, False, True, True, True, True, True, True],
            "sms_opt_in": [True, False, True, False, False, False, False, False, False],
            "acquisition_channel": [None] * 9,
        }
    )
    S = [
        # id, cust, tier, interval, price, mrr, status, start, req, end, reason, comment
        (
            "s1",
            "c1",
            "pro",
            "month",
            29.0,
            29.0,
            "cancelled",
            "2024-01-01",
            "2025-04-20",
            "2025-05-01",
            "too_expensive",
            "way too pricey for us",
        ),
        (
            "s2",
            "c2",
            "basic",
            "month",
            9.0,
            9.0,
            "expired",
            "2024-03-01",
            None,
            "2025-01-10",
            "payment_failed",
            None,
        ),
        ("s3", "c2", "basic", "month", 9.0, 9.0, "active", "2025-02-01", None, None, None, None),
        (
            "s4",
            "c3",
            "pro",
            "month",
            29.0,
            29.0,
            "cancelled",
            "2024-06-01",
            "2025-06-10",
            "2025-06-20",
            "missing_features",
            "no gantt charts",
        ),
        (
            "s5",
            "c4",
            "business",
            "month",
            99.0,
            99.0,
            "active",
            "2024-02-01",
            None,
            None,
            None,
            None,
        ),
        (
            "s6",
            "c5",
            "basic",
            "month",
            9.0,
            9.0,
            "cancelled",
            "2024-05-01",
            "2025-06-25",
            "2025-07-10",
            "unused",
            None,
        ),
        ("s7", "c6", "pro", "month", 29.0, 29.0, "active", "2024-01-05", None, None, None, None),
        (
            "s12",
            "c6",
            "addon",
            "month",
            5.0,
            5.0,
            "cancelled",
            "2024-02-01",
            None,
            "2025-05-15",
            "unused",
            None,
        ),
        (
            "s10",
            "c7",
            "pro",
            "year",
            290.0,
            24.17,
            "expired",
            "2024-01-01",
            None,
            "2025-01-01",
            "contract_ended",
            None,
        ),
        (
            "s8",
            "c8",
            "basic",
            "month",
            9.0,
            9.0,
            "cancelled",
            "2024-01-01",
            "2025-03-20",
            "2025-04-01",
            "other",
            None,
        ),
        ("s9", "c8", "pro", "month", 29.0, 29.0, "active", "2025-04-01", None, None, None, None),
        (
            "s11",
            "c9",
            "basic",
            "month",
            9.0,
            9.0,
            "cancelled",
            "2024-01-01",
            None,
            "2025-06-01",
            "unknown",
            None,
        ),
    ]
    subs = pd.DataFrame(
        [
            {
                "subscription_id": s[0],
                "customer_id": s[1],
                "source": "stripe",
                "plan_id": f"{s[2]}_{s[3]}",
                "plan_tier": s[2],
                "billing_interval": s[3],
                "price": s[4],
                "currency": "USD",
                "mrr": s[5],
                "status": s[6],
                "started_at": _ts(s[7]),
                "current_period_end": pd.NaT,
                "cancel_requested_at": _ts(s[8]),
                "ended_at": _ts(s[9]),
                "cancel_reason": s[10],
                "cancel_comment": s[11],
            }
            for s in S
        ],
        columns=_SUB_COLS,
    )
    E = []

    def ev(cust, sub, t, kind, amount=None, reason=None, detail=None):
        E.append((cust, sub, t, kind, amount, reason, detail))

    for s in S:
        ev(s[1], s[0], s[7], "subscribed", s[4])
    ev("c1", "s1", "2025-04-20", "cancel_requested", reason="too_expensive")
    ev("c1", "s1", "2025-05-01", "cancelled", reason="too_expensive")
    ev("c2", "s2", "2024-12-01", "payment_failed", 9.0)
    ev("c2", "s2", "2024-12-20", "payment_failed", 9.0)
    ev("c2", "s2", "2025-01-10", "expired", reason="payment_failed", detail="dunning_exhausted")
    ev("c3", "s4", "2025-03-01", "cancelled")
    ev("c3", "s4", "2025-03-15", "reactivated", 29.0)
    ev("c3", "s4", "2025-06-10", "cancel_requested", reason="missing_features")
    ev("c3", "s4", "2025-06-20", "cancelled", reason="missing_features")
    ev("c5", "s6", "2025-06-25", "cancel_requested", reason="unused")
    ev("c5", "s6", "2025-07-10", "cancelled", reason="unused")
    ev("c6", "s12", "2025-05-15", "cancelled", reason="unused")
    ev("c7", "s10", "2025-01-01", "expired", reason="contract_ended")
    ev("c8", "s8", "2025-04-01", "cancelled", reason="other")
    ev("c9", "s11", "2025-06-01", "cancelled", reason="unknown")
    ev("c9", "s11", "2025-06-01", "expired")
    events = pd.DataFrame(
        [
            {
                "event_id": f"e{i}",
                "occurred_at": pd.Timestamp(t),
                "customer_id": c,
                "subscription_id": s,
                "source": "stripe",
                "event_type": k,
                "amount": a,
                "currency": "USD" if a is not None else None,
                "reason": r,
                "detail": d,
            }
            for i, (c, s, t, k, a, r, d) in enumerate(E)
        ]
    )
    return {"customers": customers, "subscriptions": subs, "events": events}
