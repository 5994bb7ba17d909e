"""Example payloads in each provider's documented shape, and a lifecycle stream.

For tests, benchmarks, documentation and dry runs: nothing here talks to a
provider. Every builder returns the body **bytes** a provider would send
(Recurly and Google: the documented envelope, see their modules).

:func:`make_webhook_stream` draws subscription lifecycles across all five
providers with a fixed seed and returns the bodies together with the truth
(final status, canonical reason, voluntary or not) so tests can check that the
intake recovers it.

Apple: :class:`TestPKI` makes a throwaway root CA, intermediate and ES256 leaf
with ``cryptography`` and signs JWS with an ``x5c`` chain, as Apple does.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "stripe_subscription",
    "stripe_invoice",
    "stripe_event",
    "chargebee_subscription",
    "chargebee_event",
    "recurly_subscription",
    "recurly_envelope",
    "apple_transaction",
    "apple_renewal",
    "apple_notification",
    "google_subscription",
    "google_envelope",
    "csv_export",
    "TestPKI",
    "StreamTruth",
    "make_webhook_stream",
    "unix",
    "iso",
]

_T0 = datetime(2025, 1, 6, 9, 0, 0)


def unix(ts: datetime) -> int:
    """Naive-UTC datetime to unix seconds."""
    return int(ts.replace(tzinfo=UTC).timestamp())


def iso(ts: datetime) -> str:
    """Naive-UTC datetime to an RFC 3339 string with ``Z``."""
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# ------------------------------------------------------------------ Stripe
def stripe_subscription(
    sub_id: str = "sub_1",
    customer: str = "cus_1",
    *,
    status: str = "active",
    price_id: str = "price_pro_monthly",
    unit_amount: int = 2900,
    currency: str = "usd",
    interval: str = "month",
    start: datetime = _T0,
    period_end: datetime | None = None,
    cancel_at_period_end: bool = False,
    canceled_at: datetime | None = None,
    ended_at: datetime | None = None,
    reason: str | None = None,
    feedback: str | None = None,
    comment: str | None = None,
    basil: bool = True,
    coupon: str | None = None,
    plan_tier: str = "pro",
) -> dict[str, Any]:
    """A Stripe ``Subscription`` object (basil shape: periods on items)."""
    period_end = period_end or start + timedelta(days=30 if interval == "month" else 365)
    item = {
        "id": f"si_{sub_id}",
        "object": "subscription_item",
        "price": {
            "id": price_id,
            "object": "price",
            "currency": currency,
            "unit_amount": unit_amount,
            "recurring": {"interval": interval, "interval_count": 1},
            "lookup_key": None,
            "metadata": {"plan_tier": plan_tier},
        },
        "quantity": 1,
    }
    sub: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": currency,
        "start_date": unix(start),
        "created": unix(start),
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": unix(period_end) if cancel_at_period_end else None,
        "canceled_at": unix(canceled_at) if canceled_at else None,
        "ended_at": unix(ended_at) if ended_at else None,
        "cancellation_details": {"reason": reason, "feedback": feedback, "comment": comment},
        "items": {"object": "list", "data": [item]},
        "metadata": {},
        "discounts": [],
    }
    if basil:
        item["current_period_start"] = unix(period_end - timedelta(days=30))
        item["current_period_end"] = unix(period_end)
    else:
        sub["current_period_start"] = unix(period_end - timedelta(days=30))
        sub["current_period_end"] = unix(period_end)
        sub["plan"] = dict(item["price"], object="plan", amount=unit_amount, interval=interval)
    if coupon:
        sub["discounts"] = [
            {
                "id": f"di_{sub_id}",
                "object": "discount",
                "coupon": {"id": coupon},
                "promotion_code": None,
            }
        ]
    return sub


def stripe_invoice(
    inv_id: str = "in_1",
    sub_id: str = "sub_1",
    customer: str = "cus_1",
    *,
    amount: int = 2900,
    currency: str = "usd",
    billing_reason: str = "subscription_cycle",
    attempt_count: int = 1,
    paid_at: datetime | None = _T0,
    next_payment_attempt: datetime | None = None,
    basil: bool = True,
) -> dict[str, Any]:
    """A Stripe ``Invoice`` object; basil names its subscription under ``parent``."""
    inv: dict[str, Any] = {
        "id": inv_id,
        "object": "invoice",
        "customer": customer,
        "currency": currency,
        "amount_due": amount,
        "amount_paid": amount if paid_at else 0,
        "attempt_count": attempt_count,
        "billing_reason": billing_reason,
        "created": unix(paid_at or _T0),
        "next_payment_attempt": unix(next_payment_attempt) if next_payment_attempt else None,
        "status_transitions": {"paid_at": unix(paid_at) if paid_at else None},
    }
    if basil:
        inv["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"subscription": sub_id},
        }
    else:
        inv["subscription"] = sub_id
    return inv


def stripe_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    evt_id: str = "evt_1",
    created: datetime = _T0,
    basil: bool = True,
    previous_attributes: dict[str, Any] | None = None,
) -> bytes:
    """A Stripe ``Event`` body."""
    doc = {
        "id": evt_id,
        "object": "event",
        "api_version": "2025-03-31.basil" if basil else "2024-06-20",
        "created": unix(created),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }
    if previous_attributes is not None:
        doc["data"]["previous_attributes"] = previous_attributes
    return _dump(doc)


# ------------------------------------------------------------------ Chargebee
def chargebee_subscription(
    sub_id: str = "cb_sub_1",
    customer_id: str = "cb_cus_1",
    *,
    status: str = "active",
    item_price_id: str = "pro-USD-Monthly",
    unit_price: int = 2900,
    currency: str = "USD",
    period_unit: str = "month",
    start: datetime = _T0,
    cancelled_at: datetime | None = None,
    cancel_reason: str | None = None,
    cancel_reason_code: str | None = None,
    coupon: str | None = None,
) -> dict[str, Any]:
    """A Chargebee ``subscription`` (Product Catalog 2.0)."""
    sub: dict[str, Any] = {
        "id": sub_id,
        "customer_id": customer_id,
        "status": status,
        "currency_code": currency,
        "billing_period": 1,
        "billing_period_unit": period_unit,
        "started_at": unix(start),
        "activated_at": unix(start),
        "created_at": unix(start),
        "current_term_end": unix(start + timedelta(days=30)),
        "subscription_items": [
            {
                "item_price_id": item_price_id,
                "item_type": "plan",
                "quantity": 1,
                "unit_price": unit_price,
                "amount": unit_price,
            }
        ],
        "object": "subscription",
    }
    if cancelled_at:
        sub["cancelled_at"] = unix(cancelled_at)
    if cancel_reason:
        sub["cancel_reason"] = cancel_reason
    if cancel_reason_code:
        sub["cancel_reason_code"] = cancel_reason_code
    if coupon:
        sub["coupons"] = [{"coupon_id": coupon, "applied_count": 1, "object": "coupon"}]
    return sub


def chargebee_event(
    event_type: str,
    subscription: dict[str, Any] | None,
    *,
    evt_id: str = "ev_cb_1",
    occurred_at: datetime = _T0,
    customer: dict[str, Any] | None = None,
    invoice: dict[str, Any] | None = None,
    transaction: dict[str, Any] | None = None,
) -> bytes:
    """A Chargebee webhook event body."""
    content: dict[str, Any] = {}
    if subscription is not None:
        content["subscription"] = subscription
    content["customer"] = customer or {
        "id": (subscription or {}).get("customer_id", "cb_cus_1"),
        "email": "someone@example.com",
        "object": "customer",
    }
    if invoice is not None:
        content["invoice"] = invoice
    if transaction is not None:
        content["transaction"] = transaction
    return _dump(
        {
            "id": evt_id,
            "occurred_at": unix(occurred_at),
            "source": "scheduled_job",
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "webhook_status": "scheduled",
            "content": content,
        }
    )


# ------------------------------------------------------------------ Recurly
def recurly_subscription(
    uuid: str = "rc0001",
    account_code: str = "acct_1",
    *,
    state: str = "active",
    plan_code: str = "pro-monthly",
    unit_amount: float = 29.0,
    currency: str = "USD",
    start: datetime = _T0,
    canceled_at: datetime | None = None,
    expires_at: datetime | None = None,
    expiration_reason: str | None = None,
    yearly: bool = False,
) -> dict[str, Any]:
    """A Recurly v3 ``Subscription`` resource (``GET /subscriptions/{id}``)."""
    days = 365 if yearly else 30
    return {
        "id": f"id-{uuid}",
        "object": "subscription",
        "uuid": uuid,
        "account": {
            "id": f"aid-{account_code}",
            "object": "account",
            "code": account_code,
            "email": "a@example.com",
        },
        "plan": {"id": f"pid-{plan_code}", "object": "plan", "code": plan_code, "name": plan_code},
        "state": state,
        "currency": currency,
        "unit_amount": unit_amount,
        "quantity": 1,
        "activated_at": iso(start),
        "created_at": iso(start),
        "current_period_started_at": iso(start),
        "current_period_ends_at": iso(start + timedelta(days=days)),
        "canceled_at": iso(canceled_at) if canceled_at else None,
        "expires_at": iso(expires_at) if expires_at else None,
        "expiration_reason": expiration_reason,
        "coupon_redemptions": [],
    }


def recurly_envelope(
    event_type: str,
    resource: dict[str, Any],
    *,
    note_id: str = "rn_1",
    event_time: datetime = _T0,
    object_type: str = "subscription",
    transaction: dict[str, Any] | None = None,
) -> bytes:
    """The documented Recurly envelope: thin webhook plus the fetched subscription."""
    env: dict[str, Any] = {
        "notification": {
            "id": note_id,
            "object_type": object_type,
            "site_id": "site1",
            "event_type": event_type,
            "event_time": iso(event_time),
            "uuid": resource.get("uuid"),
        },
        "resource": resource,
    }
    if transaction is not None:
        env["transaction"] = transaction
    return _dump(env)


# ------------------------------------------------------------------ Apple
@dataclass
class TestPKI:
    """A throwaway root CA -> intermediate -> ES256 leaf, for signing test JWS.

    ``root_pem`` is what a user would pass as ``apple_root``.
    """

    __test__ = False  # not a pytest test class

    root_pem: bytes = b""
    x5c: list[str] = field(default_factory=list)
    _key: Any = None

    @classmethod
    def create(
        cls,
        *,
        valid_from: datetime | None = None,
        days: int = 3650,
        name: str = "Test",
        markers: bool = True,
    ) -> TestPKI:
        """A fresh chain; ``markers`` adds Apple's marker extensions (leaf and intermediate
        OIDs, as unrecognised non-critical extensions), as Apple's certificates carry them."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        start = valid_from or datetime(2020, 1, 1)
        end = start + timedelta(days=days)

        def cert(
            subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool, marker: str | None
        ) -> Any:
            b = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if marker and markers:
                ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(marker), b"\x05\x00")
                b = b.add_extension(ext, critical=False)
            return b.sign(issuer_key, hashes.SHA256())

        root_key = ec.generate_private_key(ec.SECP256R1())
        inter_key = ec.generate_private_key(ec.SECP256R1())
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        from winback_ml.intake.apple import (
            APPLE_INTERMEDIATE_MARKER_OID,
            APPLE_LEAF_MARKER_OID,
        )

        root = cert(f"{name} Root CA", root_key, f"{name} Root CA", root_key, True, None)
        inter = cert(
            f"{name} Intermediate",
            inter_key,
            f"{name} Root CA",
            root_key,
            True,
            APPLE_INTERMEDIATE_MARKER_OID,
        )
        leaf = cert(
            f"{name} Leaf",
            leaf_key,
            f"{name} Intermediate",
            inter_key,
            False,
            APPLE_LEAF_MARKER_OID,
        )
        der = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, inter, root)]
        return cls(
            root_pem=root.public_bytes(serialization.Encoding.PEM),
            x5c=[base64.b64encode(d).decode() for d in der],
            _key=leaf_key,
        )

    def sign(self, payload: dict[str, Any]) -> str:
        """Compact JWS (ES256, x5c header) of ``payload``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        h = _b64u(_dump({"alg": "ES256", "x5c": self.x5c}))
        p = _b64u(_dump(payload))
        der = self._key.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{h}.{p}.{_b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unsigned_jws(payload: dict[str, Any]) -> str:
    """A JWS-shaped token with a dummy signature (for unverified mode and benchmarks)."""
    h = _b64u(b'{"alg":"ES256","x5c":[]}')
    return f"{h}.{_b64u(_dump(payload))}.{_b64u(bytes(64))}"


def apple_transaction(
    original_transaction_id: str = "1000000000000001",
    *,
    transaction_id: str | None = None,
    product_id: str = "com.example.pro.monthly",
    price_milli: int = 9990,
    currency: str = "USD",
    purchase: datetime = _T0,
    original_purchase: datetime | None = None,
    yearly: bool = False,
    app_account_token: str | None = None,
    offer_identifier: str | None = None,
    offer_type: int | None = None,
) -> dict[str, Any]:
    """Decoded ``JWSTransactionDecodedPayload``."""
    expires = purchase + timedelta(days=365 if yearly else 30)
    tx = {
        "transactionId": transaction_id or original_transaction_id,
        "originalTransactionId": original_transaction_id,
        "bundleId": "com.example.app",
        "productId": product_id,
        "purchaseDate": unix(purchase) * 1000,
        "originalPurchaseDate": unix(original_purchase or purchase) * 1000,
        "expiresDate": unix(expires) * 1000,
        "quantity": 1,
        "type": "Auto-Renewable Subscription",
        "inAppOwnershipType": "PURCHASED",
        "signedDate": unix(purchase) * 1000,
        "environment": "Production",
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "price": price_milli,
        "currency": currency,
    }
    if app_account_token:
        tx["appAccountToken"] = app_account_token
    if offer_identifier:
        tx["offerIdentifier"] = offer_identifier
        tx["offerType"] = offer_type or 4
    return tx


def apple_renewal(
    original_transaction_id: str = "1000000000000001",
    *,
    auto_renew: int = 1,
    expiration_intent: int | None = None,
    product_id: str = "com.example.pro.monthly",
) -> dict[str, Any]:
    """Decoded ``JWSRenewalInfoDecodedPayload``."""
    r: dict[str, Any] = {
        "originalTransactionId": original_transaction_id,
        "autoRenewProductId": product_id,
        "productId": product_id,
        "autoRenewStatus": auto_renew,
        "environment": "Production",
        "signedDate": unix(_T0) * 1000,
    }
    if expiration_intent is not None:
        r["expirationIntent"] = expiration_intent
    return r


def apple_notification(
    notification_type: str,
    transaction: dict[str, Any],
    *,
    subtype: str | None = None,
    renewal: dict[str, Any] | None = None,
    uuid: str = "00000000-0000-0000-0000-000000000001",
    signed: datetime = _T0,
    status: int | None = 1,
    pki: TestPKI | None = None,
) -> bytes:
    """An App Store Server Notification v2 body ``{"signedPayload": JWS}``.

    With ``pki`` the three JWS are really signed; without, they carry a dummy
    signature (decodable, not verifiable).
    """
    sign = pki.sign if pki is not None else _unsigned_jws
    data: dict[str, Any] = {
        "appAppleId": 123456789,
        "bundleId": "com.example.app",
        "bundleVersion": "1.0",
        "environment": "Production",
        "signedTransactionInfo": sign(transaction),
    }
    if renewal is not None:
        data["signedRenewalInfo"] = sign(renewal)
    if status is not None:
        data["status"] = status
    payload: dict[str, Any] = {
        "notificationType": notification_type,
        "notificationUUID": uuid,
        "version": "2.0",
        "signedDate": unix(signed) * 1000,
        "data": data,
    }
    if subtype:
        payload["subtype"] = subtype
    return _dump({"signedPayload": sign(payload)})


# ------------------------------------------------------------------ Google
def google_subscription(
    *,
    state: str = "SUBSCRIPTION_STATE_ACTIVE",
    product_id: str = "pro",
    base_plan: str = "monthly",
    units: str = "9",
    nanos: int = 990_000_000,
    currency: str = "USD",
    start: datetime = _T0,
    expiry: datetime | None = None,
    account_id: str | None = "gp_user_1",
    cancel: dict[str, Any] | None = None,
    offer_id: str | None = None,
) -> dict[str, Any]:
    """A ``purchases.subscriptionsv2.get`` response."""
    expiry = expiry or start + timedelta(days=30)
    offer: dict[str, Any] = {"basePlanId": base_plan}
    if offer_id:
        offer["offerId"] = offer_id
    res: dict[str, Any] = {
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": "US",
        "startTime": iso(start),
        "subscriptionState": state,
        "latestOrderId": "GPA.0000-0000-0000-00000",
        "acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "lineItems": [
            {
                "productId": product_id,
                "expiryTime": iso(expiry),
                "autoRenewingPlan": {
                    "autoRenewEnabled": state == "SUBSCRIPTION_STATE_ACTIVE",
                    "recurringPrice": {"currencyCode": currency, "units": units, "nanos": nanos},
                },
                "offerDetails": offer,
            }
        ],
    }
    if account_id:
        res["externalAccountIdentifiers"] = {"obfuscatedExternalAccountId": account_id}
    if cancel is not None:
        res["canceledStateContext"] = cancel
    return res


def google_envelope(
    notification_type: int,
    resource: dict[str, Any] | None,
    *,
    purchase_token: str = "token-1",
    message_id: str = "msg-1",
    event_time: datetime = _T0,
) -> bytes:
    """The documented Google envelope: Pub/Sub push body plus the fetched resource."""
    rtdn = {
        "version": "1.0",
        "packageName": "com.example.app",
        "eventTimeMillis": str(unix(event_time) * 1000),
        "subscriptionNotification": {
            "version": "1.0",
            "notificationType": notification_type,
            "purchaseToken": purchase_token,
        },
    }
    env: dict[str, Any] = {
        "notification": {
            "message": {
                "data": base64.b64encode(_dump(rtdn)).decode(),
                "messageId": message_id,
                "publishTime": iso(event_time),
            },
            "subscription": "projects/example/subscriptions/play-rtdn",
        }
    }
    if resource is not None:
        env["resource"] = resource
    return _dump(env)


# ------------------------------------------------------------------ CSV
def csv_export(rows: list[dict[str, Any]]) -> bytes:
    """A CSV export of event rows (header from the union of keys, in first-seen order)."""
    import csv
    import io

    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue().encode()


# ------------------------------------------------------------------ lifecycle stream
@dataclass
class StreamTruth:
    """What :func:`make_webhook_stream` generated, per subscription.

    ``final`` maps subscription_id -> dict(status, reason, involuntary,
    provider, customer_id, ended, cancel_requested, n_events).
    """

    final: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ended(self) -> set[str]:
        return {s for s, v in self.final.items() if v["ended"]}


_VOLUNTARY = ["too_expensive", "missing_features", "switched_service", "unused", "other"]


def make_webhook_stream(
    n_subscriptions: int = 50,
    seed: int = 0,
    *,
    providers: tuple[str, ...] = ("stripe", "chargebee", "recurly", "apple", "google"),
    pki: TestPKI | None = None,
) -> tuple[list[tuple[str, bytes]], StreamTruth]:
    """Lifecycles of ``n_subscriptions`` subscriptions as ``(provider, body)`` in time order.

    Each subscription subscribes, renews 0-5 times, may have a failed payment,
    and then stays active, ends voluntarily (cancel intent, then end of
    service, with a survey reason) or involuntarily (payment failed).
    Returns the bodies and the truth to recover.
    """
    rng = random.Random(seed)
    out: list[tuple[datetime, str, bytes]] = []
    truth = StreamTruth()
    for i in range(n_subscriptions):
        prov = providers[i % len(providers)]
        start = _T0 + timedelta(days=rng.randrange(0, 120), minutes=rng.randrange(0, 1440))
        renewals = rng.randrange(0, 6)
        fate = rng.choices(["active", "voluntary", "involuntary"], [0.4, 0.4, 0.2])[0]
        reason = (
            rng.choice(_VOLUNTARY)
            if fate == "voluntary"
            else ("payment_failed" if fate == "involuntary" else None)
        )
        gen = _GENERATORS[prov]
        bodies, sid, cid, expected = gen(i, start, renewals, fate, reason, pki)
        out.extend(bodies)
        truth.final[sid] = {
            "provider": prov,
            "customer_id": cid,
            "status": expected["status"],
            "reason": expected.get("reason"),
            "involuntary": fate == "involuntary",
            "ended": fate != "active",
            "n_events": expected["n_events"],
        }
    out.sort(key=lambda x: x[0])
    return [(p, b) for _, p, b in out], truth


def _stripe_life(
    i: int, start: datetime, renewals: int, fate: str, reason: str | None, pki: Any
) -> Any:
    sid, cid = f"sub_{i:06d}", f"cus_{i:06d}"
    bodies = []
    basil = i % 2 == 0
    sub = stripe_subscription(sid, cid, start=start, basil=basil)
    bodies.append(
        (
            start,
            "stripe",
            stripe_event(
                "customer.subscription.created",
                sub,
                evt_id=f"evt_{i}_c",
                created=start,
                basil=basil,
            ),
        )
    )
    t = start
    n = 1
    for k in range(renewals):
        t = start + timedelta(days=30 * (k + 1))
        inv = stripe_invoice(f"in_{i}_{k}", sid, cid, paid_at=t, basil=basil)
        bodies.append(
            (
                t,
                "stripe",
                stripe_event("invoice.paid", inv, evt_id=f"evt_{i}_r{k}", created=t, basil=basil),
            )
        )
        n += 1
    end_t = t + timedelta(days=30)
    if fate == "voluntary":
        req = t + timedelta(days=10)
        s2 = stripe_subscription(
            sid,
            cid,
            start=start,
            cancel_at_period_end=True,
            canceled_at=req,
            reason="cancellation_requested",
            feedback=reason,
            period_end=end_t,
            basil=basil,
        )
        bodies.append(
            (
                req,
                "stripe",
                stripe_event(
                    "customer.subscription.updated",
                    s2,
                    evt_id=f"evt_{i}_u",
                    created=req,
                    basil=basil,
                    previous_attributes={"cancel_at_period_end": False},
                ),
            )
        )
        s3 = dict(s2, status="canceled", ended_at=unix(end_t))
        bodies.append(
            (
                end_t,
                "stripe",
                stripe_event(
                    "customer.subscription.deleted",
                    s3,
                    evt_id=f"evt_{i}_d",
                    created=end_t,
                    basil=basil,
                ),
            )
        )
        n += 2
        return bodies, sid, cid, {"status": "cancelled", "reason": reason, "n_events": n}
    if fate == "involuntary":
        ft = t + timedelta(days=30)
        inv = stripe_invoice(f"in_{i}_f", sid, cid, paid_at=None, basil=basil)
        bodies.append(
            (
                ft,
                "stripe",
                stripe_event(
                    "invoice.payment_failed", inv, evt_id=f"evt_{i}_f", created=ft, basil=basil
                ),
            )
        )
        end_t = ft + timedelta(days=14)
        s3 = stripe_subscription(
            sid,
            cid,
            start=start,
            status="canceled",
            canceled_at=end_t,
            ended_at=end_t,
            reason="payment_failed",
            period_end=ft,
            basil=basil,
        )
        bodies.append(
            (
                end_t,
                "stripe",
                stripe_event(
                    "customer.subscription.deleted",
                    s3,
                    evt_id=f"evt_{i}_d",
                    created=end_t,
                    basil=basil,
                ),
            )
        )
        n += 2
        return bodies, sid, cid, {"status": "cancelled", "reason": "payment_failed", "n_events": n}
    return bodies, sid, cid, {"status": "active", "n_events": n}


def _chargebee_life(
    i: int, start: datetime, renewals: int, fate: str, reason: str | None, pki: Any
) -> Any:
    sid, cid = f"cb_sub_{i:06d}", f"cb_cus_{i:06d}"
    bodies = []
    sub = chargebee_subscription(sid, cid, start=start)
    bodies.append(
        (
            start,
            "chargebee",
            chargebee_event("subscription_created", sub, evt_id=f"ev_{i}_c", occurred_at=start),
        )
    )
    t, n = start, 1
    for k in range(renewals):
        t = start + timedelta(days=30 * (k + 1))
        inv = {"id": f"inv_{i}_{k}", "amount_paid": 2900, "currency_code": "USD", "status": "paid"}
        bodies.append(
            (
                t,
                "chargebee",
                chargebee_event(
                    "subscription_renewed", sub, evt_id=f"ev_{i}_r{k}", occurred_at=t, invoice=inv
                ),
            )
        )
        n += 1
    end_t = t + timedelta(days=30)
    if fate == "voluntary":
        req = t + timedelta(days=5)
        code = {
            "too_expensive": "Too expensive",
            "missing_features": "Missing features",
            "switched_service": "Switched to competitor",
            "unused": "Not using it",
            "other": "Other",
        }[reason or "other"]
        s2 = dict(sub, status="non_renewing", cancel_reason_code=code)
        bodies.append(
            (
                req,
                "chargebee",
                chargebee_event(
                    "subscription_cancellation_scheduled", s2, evt_id=f"ev_{i}_s", occurred_at=req
                ),
            )
        )
        s3 = dict(s2, status="cancelled", cancelled_at=unix(end_t))
        bodies.append(
            (
                end_t,
                "chargebee",
                chargebee_event(
                    "subscription_cancelled", s3, evt_id=f"ev_{i}_x", occurred_at=end_t
                ),
            )
        )
        return bodies, sid, cid, {"status": "cancelled", "reason": reason, "n_events": n + 2}
    if fate == "involuntary":
        tx = {
            "id": f"txn_{i}",
            "amount": 2900,
            "currency_code": "USD",
            "type": "payment",
            "status": "failure",
            "subscription_id": sid,
            "customer_id": cid,
            "date": unix(end_t),
        }
        bodies.append(
            (
                end_t,
                "chargebee",
                chargebee_event(
                    "payment_failed",
                    sub,
                    evt_id=f"ev_{i}_f",
                    occurred_at=end_t,
                    transaction=tx,
                    invoice={"id": f"inv_{i}_f", "dunning_status": "in_progress"},
                ),
            )
        )
        x = end_t + timedelta(days=14)
        s3 = dict(sub, status="cancelled", cancelled_at=unix(x), cancel_reason="not_paid")
        bodies.append(
            (
                x,
                "chargebee",
                chargebee_event("subscription_cancelled", s3, evt_id=f"ev_{i}_x", occurred_at=x),
            )
        )
        return (
            bodies,
            sid,
            cid,
            {"status": "cancelled", "reason": "payment_failed", "n_events": n + 2},
        )
    return bodies, sid, cid, {"status": "active", "n_events": n}


def _recurly_life(
    i: int, start: datetime, renewals: int, fate: str, reason: str | None, pki: Any
) -> Any:
    uuid, acct = f"rc{i:06d}", f"acct_{i:06d}"
    bodies = []
    res = recurly_subscription(uuid, acct, start=start)
    bodies.append(
        (start, "recurly", recurly_envelope("created", res, note_id=f"rn_{i}_c", event_time=start))
    )
    t, n = start, 1
    for k in range(renewals):
        t = start + timedelta(days=30 * (k + 1))
        r2 = dict(
            res,
            current_period_started_at=iso(t),
            current_period_ends_at=iso(t + timedelta(days=30)),
        )
        bodies.append(
            (t, "recurly", recurly_envelope("renewed", r2, note_id=f"rn_{i}_r{k}", event_time=t))
        )
        n += 1
    end_t = t + timedelta(days=30)
    if fate == "voluntary":
        req = t + timedelta(days=3)
        r3 = dict(
            res,
            state="canceled",
            canceled_at=iso(req),
            expires_at=iso(end_t),
            current_period_started_at=iso(t),
            current_period_ends_at=iso(end_t),
        )
        bodies.append(
            (req, "recurly", recurly_envelope("canceled", r3, note_id=f"rn_{i}_x", event_time=req))
        )
        r4 = dict(r3, state="expired", expiration_reason="canceled")
        bodies.append(
            (
                end_t,
                "recurly",
                recurly_envelope("expired", r4, note_id=f"rn_{i}_e", event_time=end_t),
            )
        )
        # Recurly carries no survey answer: the truth it can show is 'unknown'
        return (
            bodies,
            sid_of(uuid),
            acct,
            {"status": "expired", "reason": "unknown", "n_events": n + 2},
        )
    if fate == "involuntary":
        r3 = dict(
            res,
            state="expired",
            expires_at=iso(end_t),
            expiration_reason="nonpayment",
            current_period_started_at=iso(t),
            current_period_ends_at=iso(end_t),
        )
        bodies.append(
            (
                end_t,
                "recurly",
                recurly_envelope("expired", r3, note_id=f"rn_{i}_e", event_time=end_t),
            )
        )
        return (
            bodies,
            sid_of(uuid),
            acct,
            {"status": "expired", "reason": "payment_failed", "n_events": n + 1},
        )
    return bodies, sid_of(uuid), acct, {"status": "active", "n_events": n}


def sid_of(uuid: str) -> str:
    """Recurly: the subscription id is the resource ``uuid``."""
    return uuid


def _apple_life(
    i: int, start: datetime, renewals: int, fate: str, reason: str | None, pki: Any
) -> Any:
    otid = f"{2000000000000000 + i}"
    token = f"00000000-0000-4000-8000-{i:012d}"
    bodies = []
    tx = apple_transaction(otid, purchase=start, app_account_token=token)
    bodies.append(
        (
            start,
            "apple",
            apple_notification(
                "SUBSCRIBED",
                tx,
                subtype="INITIAL_BUY",
                uuid=f"apple-{i}-c",
                signed=start,
                pki=pki,
                renewal=apple_renewal(otid),
            ),
        )
    )
    t, n = start, 1
    for k in range(renewals):
        t = start + timedelta(days=30 * (k + 1))
        tx2 = apple_transaction(
            otid,
            transaction_id=f"{otid}{k}",
            purchase=t,
            original_purchase=start,
            app_account_token=token,
        )
        bodies.append(
            (
                t,
                "apple",
                apple_notification("DID_RENEW", tx2, uuid=f"apple-{i}-r{k}", signed=t, pki=pki),
            )
        )
        n += 1
    last = apple_transaction(otid, purchase=t, original_purchase=start, app_account_token=token)
    end_t = t + timedelta(days=30)
    if fate == "voluntary":
        req = t + timedelta(days=7)
        bodies.append(
            (
                req,
                "apple",
                apple_notification(
                    "DID_CHANGE_RENEWAL_STATUS",
                    last,
                    subtype="AUTO_RENEW_DISABLED",
                    uuid=f"apple-{i}-d",
                    signed=req,
                    pki=pki,
                ),
            )
        )
        sub = "PRICE_INCREASE" if reason == "too_expensive" else "VOLUNTARY"
        bodies.append(
            (
                end_t,
                "apple",
                apple_notification(
                    "EXPIRED",
                    last,
                    subtype=sub,
                    uuid=f"apple-{i}-e",
                    signed=end_t,
                    status=2,
                    pki=pki,
                    renewal=apple_renewal(
                        otid, auto_renew=0, expiration_intent=3 if sub == "PRICE_INCREASE" else 1
                    ),
                ),
            )
        )
        exp = "too_expensive" if sub == "PRICE_INCREASE" else "unknown"
        return bodies, otid, token, {"status": "expired", "reason": exp, "n_events": n + 2}
    if fate == "involuntary":
        ft = end_t
        bodies.append(
            (
                ft,
                "apple",
                apple_notification(
                    "DID_FAIL_TO_RENEW",
                    last,
                    subtype="GRACE_PERIOD",
                    uuid=f"apple-{i}-f",
                    signed=ft,
                    status=4,
                    pki=pki,
                ),
            )
        )
        x = ft + timedelta(days=16)
        bodies.append(
            (
                x,
                "apple",
                apple_notification(
                    "EXPIRED",
                    last,
                    subtype="BILLING_RETRY",
                    uuid=f"apple-{i}-e",
                    signed=x,
                    status=2,
                    pki=pki,
                ),
            )
        )
        return (
            bodies,
            otid,
            token,
            {"status": "expired", "reason": "payment_failed", "n_events": n + 2},
        )
    return bodies, otid, token, {"status": "active", "n_events": n}


_SURVEY = {
    "too_expensive": "CANCEL_SURVEY_REASON_COST_RELATED",
    "switched_service": "CANCEL_SURVEY_REASON_FOUND_BETTER_APP",
    "unused": "CANCEL_SURVEY_REASON_NOT_ENOUGH_USAGE",
    "missing_features": "CANCEL_SURVEY_REASON_OTHERS",
    "other": "CANCEL_SURVEY_REASON_OTHERS",
}


def _google_life(
    i: int, start: datetime, renewals: int, fate: str, reason: str | None, pki: Any
) -> Any:
    from winback_ml.intake.google import token_id

    token = f"gptoken-{i:06d}-" + "x" * 40
    acct = f"gp_user_{i:06d}"
    bodies = []
    res = google_subscription(start=start, account_id=acct)
    bodies.append(
        (
            start,
            "google",
            google_envelope(4, res, purchase_token=token, message_id=f"m{i}c", event_time=start),
        )
    )
    t, n = start, 1
    for k in range(renewals):
        t = start + timedelta(days=30 * (k + 1))
        r2 = google_subscription(start=start, account_id=acct, expiry=t + timedelta(days=30))
        bodies.append(
            (
                t,
                "google",
                google_envelope(2, r2, purchase_token=token, message_id=f"m{i}r{k}", event_time=t),
            )
        )
        n += 1
    end_t = t + timedelta(days=30)
    sid = token_id(token)
    if fate == "voluntary":
        req = t + timedelta(days=4)
        survey = _SURVEY[reason or "other"]
        ctx = {
            "userInitiatedCancellation": {
                "cancelSurveyResult": {"reason": survey},
                "cancelTime": iso(req),
            }
        }
        r3 = google_subscription(
            state="SUBSCRIPTION_STATE_CANCELED",
            start=start,
            account_id=acct,
            expiry=end_t,
            cancel=ctx,
        )
        bodies.append(
            (
                req,
                "google",
                google_envelope(3, r3, purchase_token=token, message_id=f"m{i}x", event_time=req),
            )
        )
        r4 = dict(r3, subscriptionState="SUBSCRIPTION_STATE_EXPIRED")
        bodies.append(
            (
                end_t,
                "google",
                google_envelope(
                    13, r4, purchase_token=token, message_id=f"m{i}e", event_time=end_t
                ),
            )
        )
        exp = {"missing_features": "other"}.get(reason or "other", reason)
        return bodies, sid, acct, {"status": "expired", "reason": exp, "n_events": n + 2}
    if fate == "involuntary":
        r3 = google_subscription(
            state="SUBSCRIPTION_STATE_ON_HOLD", start=start, account_id=acct, expiry=end_t
        )
        bodies.append(
            (
                end_t,
                "google",
                google_envelope(5, r3, purchase_token=token, message_id=f"m{i}h", event_time=end_t),
            )
        )
        x = end_t + timedelta(days=30)
        ctx = {"systemInitiatedCancellation": {}}
        r4 = google_subscription(
            state="SUBSCRIPTION_STATE_EXPIRED",
            start=start,
            account_id=acct,
            expiry=end_t,
            cancel=ctx,
        )
        bodies.append(
            (
                x,
                "google",
                google_envelope(13, r4, purchase_token=token, message_id=f"m{i}e", event_time=x),
            )
        )
        return (
            bodies,
            sid,
            acct,
            {"status": "expired", "reason": "payment_failed", "n_events": n + 2},
        )
    return bodies, sid, acct, {"status": "active", "n_events": n}


_GENERATORS = {
    "stripe": _stripe_life,
    "chargebee": _chargebee_life,
    "recurly": _recurly_life,
    "apple": _apple_life,
    "google": _google_life,
}
