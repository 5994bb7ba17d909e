"""A tiny hand-made business in contract form: every rule holds."""

from __future__ import annotations

import pandas as pd


def tiny_tables() -> dict[str, pd.DataFrame]:
    ts = pd.Timestamp
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "signup_at": [ts("2024-01-05"), ts("2024-02-10"), ts("2024-03-01")],
            "country": ["DE", "US", None],
            "language": ["de", "en", None],
            "timezone": ["Europe/Berlin", "America/New_York", None],
            "email": ["a@example.com", "b@example.org", None],
            "phone": ["+4915112345678", None, None],
            "email_opt_in": [True, True, False],
            "sms_opt_in": [True, False, False],
            "acquisition_channel": ["ads", None, "organic"],
        }
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": ["s1", "s2", "s3", "s4"],
            "customer_id": ["c1", "c2", "c3", "c1"],
            "source": ["stripe", "chargebee", "app_store", "stripe"],
            "plan_id": ["pro_m", "basic_y", "pro_m", "pro_m"],
            "plan_tier": ["pro", "basic", "pro", "pro"],
            "billing_interval": ["month", "year", "month", "month"],
            "price": [29.0, 90.0, 29.0, 29.0],
            "currency": ["EUR", "USD", "USD", "EUR"],
            "mrr": [31.5, 7.5, 29.0, 31.5],
            "status": ["cancelled", "active", "expired", "active"],
            "started_at": [ts("2024-01-05"), ts("2024-02-10"), ts("2024-03-01"), ts("2024-09-20")],
            "current_period_end": [
                ts("2024-07-05"),
                ts("2025-02-10"),
                ts("2024-06-01"),
                ts("2024-10-20"),
            ],
            "cancel_requested_at": [ts("2024-06-20"), pd.NaT, pd.NaT, pd.NaT],
            "ended_at": [ts("2024-07-05"), pd.NaT, ts("2024-06-04"), pd.NaT],
            "cancel_reason": ["too_expensive", None, "payment_failed", None],
            "cancel_comment": ["too pricey for me", None, None, None],
        }
    )
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(1, 13)],
            "occurred_at": [
                ts("2024-01-05"),
                ts("2024-02-05"),
                ts("2024-06-20"),
                ts("2024-07-05"),
                ts("2024-02-10"),
                ts("2024-03-01"),
                ts("2024-04-01"),
                ts("2024-05-01"),
                ts("2024-06-01"),
                ts("2024-06-04"),
                ts("2024-09-20"),
                ts("2024-10-20"),
            ],
            "customer_id": ["c1", "c1", "c1", "c1", "c2", "c3", "c3", "c3", "c3", "c3", "c1", "c1"],
            "subscription_id": [
                "s1",
                "s1",
                "s1",
                "s1",
                "s2",
                "s3",
                "s3",
                "s3",
                "s3",
                "s3",
                "s4",
                "s4",
            ],
            "source": ["stripe"] * 4 + ["chargebee"] + ["app_store"] * 5 + ["stripe"] * 2,
            "event_type": [
                "subscribed",
                "renewed",
                "cancel_requested",
                "cancelled",
                "subscribed",
                "subscribed",
                "renewed",
                "renewed",
                "payment_failed",
                "expired",
                "subscribed",
                "renewed",
            ],
            "amount": [29.0, 29.0, None, None, 90.0, 29.0, 29.0, 29.0, None, None, 29.0, 29.0],
            "currency": [
                "EUR",
                "EUR",
                None,
                None,
                "USD",
                "USD",
                "USD",
                "USD",
                None,
                None,
                "EUR",
                "EUR",
            ],
            "reason": [
                None,
                None,
                "too_expensive",
                "too_expensive",
                None,
                None,
                None,
                None,
                None,
                "payment_failed",
                None,
                None,
            ],
            "detail": [None] * 12,
        }
    )
    usage = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "week_start": [ts("2024-06-03"), ts("2024-06-10"), ts("2024-06-03")],
            "sessions": [5, 2, 9],
            "active_minutes": [50.0, 12.5, 80.0],
            "features_used": [3, 1, 4],
        }
    )
    tickets = pd.DataFrame(
        {
            "ticket_id": ["t1", "t2"],
            "customer_id": ["c1", "c3"],
            "created_at": [ts("2024-06-01"), ts("2024-05-20")],
            "category": ["complaint", "billing"],
            "is_complaint": [True, False],
            "csat": [2, None],
        }
    )
    interviews = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "answered_at": [ts("2024-08-10")],
            "mode": ["text"],
            "quality_score": [4],
            "q1_cancel_story": ["It got too expensive."],
            "q2_breaking_point": ["The price rise."],
            "q3_tried_before": ["Asked for a discount."],
            "q4_leave_strength": [3],
            "q5_using_instead": ["nothing"],
            "q6_return_conditions": ["A cheaper plan."],
            "q7_offer_interest": ["yes"],
            "q8_ideal_product": ["Same, cheaper."],
        }
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": ["k1"],
            "name": ["July win-back"],
            "objective": ["winback"],
            "started_at": [ts("2024-08-01")],
            "ended_at": [ts("2024-09-30")],
        }
    )
    arms = pd.DataFrame(
        {
            "campaign_id": ["k1", "k1"],
            "arm_id": ["control", "d20"],
            "is_control": [True, False],
            "offer_type": ["none", "discount"],
            "discount_pct": [0.0, 20.0],
            "discount_months": [0, 3],
            "channel": ["email", "email"],
            "message_variant": [None, "A"],
            "send_delay_days": [0, 0],
        }
    )
    assignments = pd.DataFrame(
        {
            "campaign_id": ["k1", "k1"],
            "customer_id": ["c1", "c3"],
            "arm_id": ["d20", "control"],
            "assigned_at": [ts("2024-08-02"), ts("2024-08-02")],
            "contact_cost": [0.006, 0.0],
        }
    )
    return {
        "customers": customers,
        "subscriptions": subscriptions,
        "events": events,
        "usage": usage,
        "support_tickets": tickets,
        "interviews": interviews,
        "campaigns": campaigns,
        "campaign_arms": arms,
        "campaign_assignments": assignments,
    }
