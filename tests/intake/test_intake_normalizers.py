"""Provider normalizers: payloads composed from each provider's documented schema."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest

from winback_ml.data.contract import CANCEL_REASONS
from winback_ml.exceptions import IntakeError
from winback_ml.intake import MAX_BODY_BYTES, normalize, split_bodies
from winback_ml.intake import reasons as R
from winback_ml.intake.google import token_id
from winback_ml.intake.samples import (
    apple_notification,
    apple_renewal,
    apple_transaction,
    chargebee_event,
    chargebee_subscription,
    csv_export,
    google_envelope,
    google_subscription,
    recurly_envelope,
    recurly_subscription,
    stripe_event,
    stripe_invoice,
    stripe_subscription,
    unix,
)

T0 = datetime(2025, 3, 1, 12, 0, 0)
NOW = datetime(2026, 1, 1)


def norm(provider, body, **kw):
    return normalize(provider, body, now=NOW, **kw)


def types(n):
    return [e["event_type"] for e in n.events]


def detail_has(n, token):
    return any(token in (e["detail"] or "").split(";") for e in n.events)


# ------------------------------------------------------------------ Stripe
class TestStripe:
    def test_created_basil_and_legacy_give_the_same_state(self):
        a = norm(
            "stripe",
            stripe_event(
                "customer.subscription.created", stripe_subscription(start=T0, basil=True)
            ),
        )
        b = norm(
            "stripe",
            stripe_event(
                "customer.subscription.created",
                stripe_subscription(start=T0, basil=False),
                basil=False,
            ),
        )
        assert types(a) == types(b) == ["subscribed"]
        for k in (
            "plan_id",
            "price",
            "currency",
            "billing_interval",
            "mrr",
            "status",
            "started_at",
            "current_period_end",
        ):
            assert a.subscription[k] == b.subscription[k], k
        assert a.subscription["price"] == 29.0  # cents -> major units
        assert a.subscription["current_period_end"] == T0 + timedelta(days=30)
        assert a.events[0]["occurred_at"] == T0

    def test_basil_payload_reads_periods_from_items(self):
        sub = stripe_subscription(start=T0, basil=True)
        assert "current_period_end" not in sub
        n = norm("stripe", stripe_event("customer.subscription.updated", sub))
        assert n.subscription["current_period_end"] == T0 + timedelta(days=30)

    def test_cancel_intent_is_not_end_of_service(self):
        sub = stripe_subscription(
            start=T0,
            cancel_at_period_end=True,
            canceled_at=T0 + timedelta(days=3),
            reason="cancellation_requested",
            feedback="too_expensive",
        )
        n = norm(
            "stripe",
            stripe_event(
                "customer.subscription.updated",
                sub,
                previous_attributes={"cancel_at_period_end": False},
            ),
        )
        assert types(n) == ["cancel_requested"]
        assert n.subscription["status"] == "active"
        assert n.subscription["ended_at"] is None
        assert n.subscription["cancel_requested_at"] == T0 + timedelta(days=3)
        assert n.subscription["cancel_reason"] == "too_expensive"
        assert detail_has(n, "initiator:customer")

    @pytest.mark.parametrize(
        "reason,feedback,canonical,initiator",
        [
            ("cancellation_requested", "switched_service", "switched_service", "customer"),
            ("cancellation_requested", None, "unknown", "customer"),
            ("payment_failed", None, "payment_failed", "system"),
            ("payment_disputed", None, "other", "customer"),
        ],
    )
    def test_deleted_reason_and_voluntariness(self, reason, feedback, canonical, initiator):
        end = T0 + timedelta(days=30)
        sub = stripe_subscription(
            start=T0,
            status="canceled",
            canceled_at=end,
            ended_at=end,
            reason=reason,
            feedback=feedback,
        )
        n = norm("stripe", stripe_event("customer.subscription.deleted", sub))
        assert types(n) == ["cancelled"]
        e = n.events[0]
        assert e["reason"] == canonical
        assert e["occurred_at"] == end
        assert detail_has(n, f"initiator:{initiator}")
        assert n.subscription["status"] == "cancelled" and n.subscription["ended_at"] == end

    def test_invoice_paid_cycle_is_renewal_keyed_by_invoice(self):
        inv = stripe_invoice("in_9", amount=1999, paid_at=T0)
        a = norm("stripe", stripe_event("invoice.paid", inv, evt_id="evt_a"))
        b = norm("stripe", stripe_event("invoice.payment_succeeded", inv, evt_id="evt_b"))
        assert types(a) == ["renewed"] and a.events[0]["amount"] == 19.99
        assert a.events == b.events  # the pair Stripe sends is one event

    def test_legacy_invoice_names_subscription_at_top(self):
        inv = stripe_invoice("in_9", "sub_legacy", basil=False)
        n = norm("stripe", stripe_event("invoice.paid", inv, basil=False))
        assert n.events[0]["subscription_id"] == "sub_legacy"

    def test_recovery_and_failure(self):
        rec = norm("stripe", stripe_event("invoice.paid", stripe_invoice(attempt_count=3)))
        assert types(rec) == ["payment_recovered"]
        fail = norm(
            "stripe",
            stripe_event("invoice.payment_failed", stripe_invoice(paid_at=None, attempt_count=2)),
        )
        assert types(fail) == ["payment_failed"] and detail_has(fail, "initiator:system")
        assert fail.events[0]["amount"] == 29.0 and fail.events[0]["currency"] == "USD"

    def test_zero_decimal_currency(self):
        n = norm(
            "stripe",
            stripe_event(
                "customer.subscription.created",
                stripe_subscription(unit_amount=3000, currency="jpy"),
            ),
        )
        assert n.subscription["price"] == 3000.0 and n.subscription["currency"] == "JPY"

    def test_yearly_mrr(self):
        n = norm(
            "stripe",
            stripe_event(
                "customer.subscription.created",
                stripe_subscription(unit_amount=24000, interval="year"),
            ),
        )
        assert n.subscription["billing_interval"] == "year" and n.subscription["mrr"] == 20.0

    def test_coupon_code_in_detail(self):
        n = norm(
            "stripe",
            stripe_event("customer.subscription.created", stripe_subscription(coupon="WB-7F3K")),
        )
        assert n.redeemed_codes == ["WB-7F3K"] and detail_has(n, "code:WB-7F3K")

    def test_refund_is_negative(self):
        ch = {
            "id": "ch_1",
            "object": "charge",
            "customer": "cus_1",
            "currency": "eur",
            "amount_refunded": 500,
            "metadata": {"subscription_id": "sub_1"},
        }
        n = norm("stripe", stripe_event("charge.refunded", ch))
        assert types(n) == ["refunded"] and n.events[0]["amount"] == -5.0

    def test_ignored_type_accepted_without_events(self):
        n = norm("stripe", stripe_event("invoice.created", {"id": "in_1", "object": "invoice"}))
        assert n.events == [] and n.subscription is None

    def test_unknown_type_is_rejected(self):
        with pytest.raises(
            IntakeError, match="unknown event type 'radar.early_fraud_warning.created'"
        ):
            norm("stripe", stripe_event("radar.early_fraud_warning.created", {"id": "x"}))


# ------------------------------------------------------------------ Chargebee
class TestChargebee:
    def test_created_units(self):
        sub = chargebee_subscription(start=T0, unit_price=4900)
        n = norm("chargebee", chargebee_event("subscription_created", sub, occurred_at=T0))
        assert types(n) == ["subscribed"]
        assert n.subscription["price"] == 49.0 and n.subscription["billing_interval"] == "month"
        assert n.customer["email"] == "someone@example.com"

    def test_scheduled_cancel_is_intent(self):
        sub = chargebee_subscription(
            start=T0, status="non_renewing", cancel_reason_code="Too expensive"
        )
        n = norm(
            "chargebee",
            chargebee_event(
                "subscription_cancellation_scheduled", sub, occurred_at=T0 + timedelta(days=2)
            ),
        )
        assert types(n) == ["cancel_requested"]
        assert n.subscription["status"] == "active" and n.subscription["ended_at"] is None

    @pytest.mark.parametrize(
        "sys_reason,code,canonical,initiator",
        [
            ("not_paid", None, "payment_failed", "system"),
            ("no_card", None, "payment_failed", "system"),
            ("fraud_review_failed", None, "other", "system"),
            (None, "Switched to competitor", "switched_service", "customer"),
            (None, "Not using it enough", "unused", "customer"),
            (None, None, "unknown", "customer"),
        ],
    )
    def test_cancelled_reason(self, sys_reason, code, canonical, initiator):
        end = T0 + timedelta(days=30)
        sub = chargebee_subscription(
            start=T0,
            status="cancelled",
            cancelled_at=end,
            cancel_reason=sys_reason,
            cancel_reason_code=code,
        )
        n = norm("chargebee", chargebee_event("subscription_cancelled", sub, occurred_at=end))
        assert types(n) == ["cancelled"]
        assert n.events[0]["reason"] == canonical and detail_has(n, f"initiator:{initiator}")
        assert n.subscription["status"] == "cancelled" and n.subscription["ended_at"] == end

    def test_unknown_system_reason_rejected(self):
        sub = chargebee_subscription(status="cancelled", cancelled_at=T0, cancel_reason="gremlins")
        with pytest.raises(IntakeError, match="cancel_reason 'gremlins' is unknown"):
            norm("chargebee", chargebee_event("subscription_cancelled", sub))

    def test_coupon(self):
        sub = chargebee_subscription(coupon="WB10")
        n = norm("chargebee", chargebee_event("subscription_reactivated", sub))
        assert types(n) == ["reactivated"] and detail_has(n, "code:WB10")

    def test_payment_failed_needs_transaction(self):
        with pytest.raises(IntakeError, match="'transaction' is missing"):
            norm("chargebee", chargebee_event("payment_failed", chargebee_subscription()))


# ------------------------------------------------------------------ Recurly
class TestRecurly:
    def test_canceled_is_intent_expired_is_end(self):
        res = recurly_subscription(
            start=T0,
            state="canceled",
            canceled_at=T0 + timedelta(days=3),
            expires_at=T0 + timedelta(days=30),
        )
        n = norm("recurly", recurly_envelope("canceled", res, event_time=T0 + timedelta(days=3)))
        assert types(n) == ["cancel_requested"] and n.subscription["status"] == "active"
        res2 = dict(res, state="expired", expiration_reason="nonpayment")
        m = norm(
            "recurly",
            recurly_envelope("expired", res2, note_id="rn_2", event_time=T0 + timedelta(days=30)),
        )
        assert types(m) == ["expired"] and m.events[0]["reason"] == "payment_failed"
        assert detail_has(m, "initiator:system") and m.subscription["status"] == "expired"

    def test_decimal_units_and_yearly(self):
        res = recurly_subscription(unit_amount=120.0, yearly=True)
        n = norm("recurly", recurly_envelope("created", res))
        assert n.subscription["price"] == 120.0 and n.subscription["billing_interval"] == "year"
        assert n.subscription["mrr"] == 10.0

    def test_bare_thin_webhook_is_refused_with_fix(self):
        thin = json.dumps(
            {
                "id": "x",
                "object_type": "subscription",
                "event_type": "expired",
                "event_time": "2025-01-01T00:00:00Z",
            }
        )
        with pytest.raises(IntakeError, match="bare thin webhook"):
            norm("recurly", thin.encode())


# ------------------------------------------------------------------ Apple
class TestApple:
    def test_units_ms_and_milliunits(self):
        tx = apple_transaction("42", purchase=T0, price_milli=9990)
        n = norm("apple", apple_notification("SUBSCRIBED", tx, subtype="INITIAL_BUY", signed=T0))
        assert types(n) == ["subscribed"]
        assert n.events[0]["amount"] == 9.99 and n.events[0]["occurred_at"] == T0
        assert n.subscription["subscription_id"] == "42" and n.verification == "unverified"

    def test_auto_renew_disabled_is_intent(self):
        n = norm(
            "apple",
            apple_notification(
                "DID_CHANGE_RENEWAL_STATUS", apple_transaction(), subtype="AUTO_RENEW_DISABLED"
            ),
        )
        assert types(n) == ["cancel_requested"] and n.subscription.get("ended_at") is None

    @pytest.mark.parametrize(
        "subtype,canonical,initiator",
        [
            ("VOLUNTARY", "unknown", "customer"),
            ("BILLING_RETRY", "payment_failed", "system"),
            ("PRICE_INCREASE", "too_expensive", "customer"),
            ("PRODUCT_NOT_FOR_SALE", "other", "merchant"),
        ],
    )
    def test_expired_subtypes(self, subtype, canonical, initiator):
        n = norm(
            "apple", apple_notification("EXPIRED", apple_transaction(), subtype=subtype, status=2)
        )
        assert types(n) == ["expired"] and n.events[0]["reason"] == canonical
        assert detail_has(n, f"initiator:{initiator}") and n.subscription["status"] == "expired"

    def test_expiration_intent_when_no_subtype(self):
        body = apple_notification(
            "EXPIRED", apple_transaction(), renewal=apple_renewal(expiration_intent=2), status=2
        )
        assert norm("apple", body).events[0]["reason"] == "payment_failed"

    def test_resubscribe_is_reactivation_and_winback_offer_code(self):
        tx = apple_transaction(offer_identifier="WINBACK50", offer_type=4)
        n = norm("apple", apple_notification("SUBSCRIBED", tx, subtype="RESUBSCRIBE"))
        assert (
            types(n) == ["reactivated"]
            and detail_has(n, "code:WINBACK50")
            and detail_has(n, "offer_type:4")
        )

    def test_not_a_jws(self):
        with pytest.raises(IntakeError, match="compact JWS"):
            norm("apple", b'{"signedPayload": "abc"}')


# ------------------------------------------------------------------ Google
class TestGoogle:
    def test_purchase_money_and_ids(self):
        res = google_subscription(start=T0, units="4", nanos=990_000_000, currency="EUR")
        n = norm(
            "google", google_envelope(4, res, purchase_token="tok", message_id="m1", event_time=T0)
        )
        assert types(n) == ["subscribed"] and n.events[0]["amount"] == pytest.approx(4.99)
        assert (
            n.subscription["subscription_id"] == token_id("tok")
            and n.subscription["customer_id"] == "gp_user_1"
        )
        assert n.delivery_id == "m1"

    @pytest.mark.parametrize("code", [3, 18])
    def test_cancel_codes_are_intents(self, code):
        ctx = {
            "userInitiatedCancellation": {
                "cancelSurveyResult": {"reason": "CANCEL_SURVEY_REASON_COST_RELATED"},
                "cancelTime": "2025-03-02T00:00:00Z",
            }
        }
        res = google_subscription(state="SUBSCRIPTION_STATE_CANCELED", cancel=ctx)
        n = norm("google", google_envelope(code, res))
        assert types(n) == ["cancel_requested"] and n.subscription["status"] == "active"
        assert n.subscription["cancel_reason"] == "too_expensive"

    @pytest.mark.parametrize(
        "ctx,canonical,initiator",
        [
            (
                {
                    "userInitiatedCancellation": {
                        "cancelSurveyResult": {"reason": "CANCEL_SURVEY_REASON_FOUND_BETTER_APP"}
                    }
                },
                "switched_service",
                "customer",
            ),
            ({"userInitiatedCancellation": {}}, "unknown", "customer"),
            ({"systemInitiatedCancellation": {}}, "payment_failed", "system"),
            ({"developerInitiatedCancellation": {}}, "other", "merchant"),
        ],
    )
    def test_expired_reason(self, ctx, canonical, initiator):
        res = google_subscription(state="SUBSCRIPTION_STATE_EXPIRED", cancel=ctx)
        n = norm("google", google_envelope(13, res))
        assert types(n) == ["expired"] and n.events[0]["reason"] == canonical
        assert detail_has(n, f"initiator:{initiator}")

    @pytest.mark.parametrize("code", [14, 15, 16, 21, 99])
    def test_unassigned_codes_are_refused(self, code):
        with pytest.raises(IntakeError, match=f"unknown notificationType {code}"):
            norm("google", google_envelope(code, google_subscription()))

    def test_two_cancel_contexts_refused(self):
        res = google_subscription(
            cancel={"userInitiatedCancellation": {}, "systemInitiatedCancellation": {}}
        )
        with pytest.raises(IntakeError, match="exactly one"):
            norm("google", google_envelope(13, res))

    def test_bad_base64(self):
        env = json.loads(google_envelope(4, google_subscription()))
        env["notification"]["message"]["data"] = "!!!"
        with pytest.raises(IntakeError, match="not base64-encoded JSON"):
            norm("google", json.dumps(env).encode())

    def test_test_notification_needs_no_resource(self):
        data = base64.b64encode(
            json.dumps(
                {
                    "version": "1.0",
                    "packageName": "p",
                    "eventTimeMillis": str(unix(T0) * 1000),
                    "testNotification": {"version": "1.0"},
                }
            ).encode()
        ).decode()
        body = json.dumps({"notification": {"message": {"data": data, "messageId": "t1"}}}).encode()
        assert norm("google", body).events == []


# ------------------------------------------------------------------ CSV
class TestCSV:
    @pytest.mark.parametrize(
        "col,value",
        [
            ("price", "bob.smith@example.com"),
            ("amount", "+1 415 555 0123"),
            ("event_type", "jane@example.org"),
            ("source", "+44 20 7946 0958"),
            ("billing_interval", "x@y.io"),
            ("status", "call +33 1 23 45 67 89"),
            ("currency", "bob@example.com"),
        ],
    )
    def test_bad_values_that_look_like_pii_stay_out_of_the_reason(self, col, value):
        row = {
            "event_id": "e1",
            "occurred_at": "2025-01-01",
            "customer_id": "c1",
            "subscription_id": "s1",
            "event_type": "subscribed",
            "amount": "10",
            col: value,
        }
        (body,) = [b for _, b in split_bodies("csv", csv_export([row]))]
        with pytest.raises(IntakeError, match=col) as ei:
            normalize("csv", body)
        assert value not in str(ei.value) and "redacted" in str(ei.value)

    def test_rows_split_and_mapped(self):
        data = csv_export(
            [
                {
                    "event_id": "e1",
                    "occurred_at": "2025-01-01T00:00:00Z",
                    "customer_id": "c1",
                    "subscription_id": "s1",
                    "event_type": "subscribed",
                    "amount": "10",
                    "currency": "usd",
                    "plan_id": "p",
                    "plan_tier": "basic",
                    "billing_interval": "month",
                    "price": "10",
                },
                {
                    "event_id": "e2",
                    "occurred_at": "2025-02-01",
                    "customer_id": "c1",
                    "subscription_id": "s1",
                    "event_type": "cancelled",
                    "reason": "Too expensive!",
                },
                {
                    "event_id": "e3",
                    "occurred_at": "yesterday",
                    "customer_id": "c1",
                    "subscription_id": "s1",
                    "event_type": "cancelled",
                },
            ]
        )
        parts = split_bodies("csv", data)
        assert [lbl for lbl, _ in parts] == ["line 2", "line 3", "line 4"]
        a = norm("csv", parts[0][1])
        assert a.events[0]["currency"] == "USD" and a.subscription["mrr"] == 10.0
        b = norm("csv", parts[1][1])
        assert b.events[0]["reason"] == "too_expensive" and b.subscription["status"] == "cancelled"
        with pytest.raises(IntakeError, match="not an ISO-8601 timestamp"):
            norm("csv", parts[2][1])

    def test_header_without_required_columns(self):
        with pytest.raises(IntakeError, match="lacks required column"):
            split_bodies("csv", b"id,when\n1,2\n")


# ------------------------------------------------------------------ shared checks
def test_reason_tables_map_into_the_contract():
    for table in (
        R.STRIPE_REASONS,
        R.CHARGEBEE_SYSTEM_REASONS,
        R.RECURLY_EXPIRATION_REASONS,
        R.APPLE_EXPIRED_SUBTYPES,
        R.APPLE_EXPIRATION_INTENT,
        R.GOOGLE_CANCEL_CONTEXTS,
    ):
        for reason, initiator in table.values():
            assert reason is None or reason in CANCEL_REASONS
            assert initiator in ("customer", "system", "merchant")
            # involuntary iff payment_failed or a system/merchant initiator
            if reason == "payment_failed":
                assert initiator == "system"
    assert set(R.STRIPE_FEEDBACK.values()) <= set(CANCEL_REASONS)
    assert set(R.GOOGLE_SURVEY_REASONS.values()) <= set(CANCEL_REASONS)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Too expensive", "too_expensive"),
        ("card_declined", "payment_failed"),
        ("", "unknown"),
        ("moon phase", "other"),
        ("accidental", "accidental"),
        ("Found a better app", "switched_service"),
    ],
)
def test_reason_from_text(text, expected):
    assert R.reason_from_text(text) == expected


@pytest.mark.parametrize(
    "body,match",
    [
        (b"{not json", "malformed JSON at line 1"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (
            json.dumps({"type": "invoice.paid", "created": 1, "data": {"object": {}}}).encode(),
            "'id' is missing",
        ),
        (
            json.dumps({"id": "evt", "type": 5, "created": 1, "data": {"object": {}}}).encode(),
            "'type' must be a string",
        ),
        (
            json.dumps(
                {
                    "id": "evt",
                    "type": "invoice.paid",
                    "created": "yesterday",
                    "data": {"object": {}},
                }
            ).encode(),
            "'created' must be an integer",
        ),
        (
            json.dumps(
                {
                    "id": "evt",
                    "type": "invoice.paid",
                    "created": 1_700_000_000_000,
                    "data": {"object": {}},
                }
            ).encode(),
            "too large for unix seconds",
        ),
        (
            json.dumps(
                {"id": "evt", "type": "invoice.paid", "created": 100, "data": {"object": {}}}
            ).encode(),
            "implausible",
        ),
        (b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}", "at most 1048576"),
    ],
)
def test_bad_input_has_a_precise_reason(body, match):
    with pytest.raises(IntakeError, match=match):
        norm("stripe", body)


def test_future_timestamp_rejected():
    later = NOW + timedelta(days=30)
    body = stripe_event(
        "customer.subscription.created", stripe_subscription(start=later), created=later
    )
    with pytest.raises(IntakeError, match="later than now"):
        norm("stripe", body)


def test_negative_charge_rejected():
    sub = stripe_subscription(unit_amount=-100)
    with pytest.raises(IntakeError, match="price must be >= 0"):
        norm("stripe", stripe_event("customer.subscription.created", sub))


def test_unknown_provider():
    with pytest.raises(IntakeError, match="Unknown provider 'paddle'"):
        norm("paddle", b"{}")


def test_chargebee_payment_without_currency_refused():
    tx = {"id": "t", "amount": 100, "subscription_id": "s", "customer_id": "c"}
    with pytest.raises(IntakeError, match="currency_code' is missing"):
        norm("chargebee", chargebee_event("payment_failed", None, transaction=tx))


def test_refunds_that_end_access_are_ends_of_service():
    tx = apple_transaction(purchase=T0)
    kept = norm("apple", apple_notification("REFUND", tx, status=1))
    assert types(kept) == ["refunded"] and kept.events[0]["amount"] == -9.99
    ended = norm("apple", apple_notification("REFUND", tx, status=5, uuid="u-r"))
    assert types(ended) == ["refunded", "cancelled"] and ended.subscription["status"] == "cancelled"
    assert ended.events[1]["event_id"] == "apple:u-r:end" and detail_has(
        ended, "initiator:customer"
    )
    rtdn = {
        "version": "1.0",
        "packageName": "p",
        "eventTimeMillis": str(unix(T0) * 1000),
        "voidedPurchaseNotification": {
            "purchaseToken": "tok",
            "orderId": "GPA.1",
            "productType": 1,
            "refundType": 1,
        },
    }
    env = {
        "notification": {
            "message": {
                "data": base64.b64encode(json.dumps(rtdn).encode()).decode(),
                "messageId": "v1",
            }
        },
        "resource": google_subscription(state="SUBSCRIPTION_STATE_EXPIRED"),
    }
    g = norm("google", json.dumps(env).encode())
    assert types(g) == ["refunded", "expired"] and g.events[1]["reason"] == "other"


def test_error_messages_do_not_echo_pii():
    doc = json.loads(stripe_event("customer.subscription.created", stripe_subscription()))
    doc["created"] = "jane.doe@example.com"
    with pytest.raises(IntakeError) as e:
        norm("stripe", json.dumps(doc).encode())
    assert "example.com" not in str(e.value) and "<redacted>" in str(e.value)
    doc["created"] = {"email": "jane.doe@example.com"}
    with pytest.raises(IntakeError) as e:
        norm("stripe", json.dumps(doc).encode())
    assert "example.com" not in str(e.value) and "<dict of 1>" in str(e.value)
