"""Stripe webhook events to contract events and subscription state.

Handles both shapes around API version ``2025-03-31.basil``: before it,
``current_period_start/end`` sit on the subscription and an invoice names its
subscription in ``invoice.subscription``; from it on, the periods live on
``items.data[]`` and the invoice names it in
``invoice.parent.subscription_details.subscription``. The envelope's
``api_version`` decides which is read first; the other is a fallback, so a
mislabelled payload still normalises.

Units: amounts are integer minor units (cents; zero-decimal currencies such as
JPY as is), times unix seconds. Output: major units, tz-naive UTC.

Event mapping (see ``docs/intake.md``)::

    customer.subscription.created   -> subscribed
    customer.subscription.updated   -> cancel_requested (cancel_at_period_end or
                                       cancel_at newly set), plan_changed (price
                                       changed), else state only
    customer.subscription.deleted   -> cancelled (end of service)
    invoice.paid / payment_succeeded-> renewed (billing_reason subscription_cycle),
                                       payment_recovered (attempt_count > 1);
                                       keyed by invoice id so the pair is one event
    invoice.payment_failed          -> payment_failed (one per attempt)
    charge.refunded                 -> refunded (negative amount)
    customer.created/updated        -> customer details only

A cancel intent (``cancel_at_period_end: true``) is never an end of service.
"""

from __future__ import annotations

import time
from typing import Any

from winback_ml.exceptions import IntakeError, SignatureError
from winback_ml.intake._common import (
    Normalized,
    detail_tokens,
    from_unix_seconds,
    make_event,
    minor_to_major,
    monthly_mrr,
    opt,
    parse_json_body,
    parse_signature_stamp,
    require,
    signature_matches,
    timestamped_hmac,
)
from winback_ml.intake.reasons import STRIPE_FEEDBACK, STRIPE_REASONS

__all__ = [
    "normalize_stripe",
    "verify_stripe_signature",
    "sign_stripe_payload",
    "STRIPE_HANDLED_TYPES",
    "STRIPE_IGNORED_TYPES",
    "BASIL_VERSION",
]

P = "stripe"
#: First API version with periods on subscription items.
BASIL_VERSION = "2025-03-31"

STRIPE_HANDLED_TYPES = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
        "customer.subscription.trial_will_end",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "charge.refunded",
        "customer.created",
        "customer.updated",
    }
)
#: Types Stripe sends that carry nothing for the win-back loop: accepted, no event.
STRIPE_IGNORED_TYPES = frozenset(
    {
        "customer.deleted",
        "customer.discount.created",
        "customer.discount.updated",
        "customer.discount.deleted",
        "invoice.created",
        "invoice.finalized",
        "invoice.updated",
        "invoice.upcoming",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "invoice.payment_action_required",
        "invoice.overdue",
        "invoice.will_be_due",
        "invoice_payment.paid",
        "invoiceitem.created",
        "payment_intent.created",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_method.attached",
        "payment_method.detached",
        "payment_method.updated",
        "charge.succeeded",
        "charge.failed",
        "charge.captured",
        "charge.updated",
        "checkout.session.completed",
        "setup_intent.created",
        "setup_intent.succeeded",
        "billing_portal.session.created",
        "entitlements.active_entitlement_summary.updated",
        "price.created",
        "price.updated",
        "product.created",
        "product.updated",
        "coupon.created",
        "promotion_code.created",
    }
)

_STATUS = {
    "active": "active",
    "trialing": "trialing",
    "past_due": "past_due",
    "unpaid": "past_due",
    "incomplete": "past_due",
    "incomplete_expired": "expired",
    "canceled": "cancelled",
    "paused": "paused",
}


def sign_stripe_payload(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``body`` (for tests and tools)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={timestamped_hmac(secret, t, body)}"


def verify_stripe_signature(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Check Stripe's ``Stripe-Signature`` header (``t=...,v1=...``); raise on mismatch.

    HMAC-SHA256 of ``"{t}.{raw body}"`` with the endpoint secret must equal one
    of the ``v1`` values, and ``t`` must be within ``tolerance`` seconds of now
    (replay protection; ``tolerance=0`` turns the time check off, e.g. to re-verify a
    stored body). Comparison is constant-time.

    Raises
    ------
    SignatureError
        With the precise reason (missing header, no timestamp, stale, mismatch).
    """
    if not header:
        raise SignatureError(
            "stripe: missing Stripe-Signature header while a webhook secret is configured. "
            "Fix: deliver the request unchanged from Stripe, or unset the secret."
        )
    ts: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        k, _, v = part.strip().partition("=")
        if k == "t":
            ts = parse_signature_stamp(v)
        elif k == "v1":
            sigs.append(v)
    if ts is None:
        raise SignatureError("stripe: Stripe-Signature header has no valid 't=' timestamp.")
    if not sigs:
        raise SignatureError("stripe: Stripe-Signature header has no 'v1=' signature.")
    now = time.time() if now is None else now
    if tolerance and abs(now - ts) > tolerance:
        raise SignatureError(
            f"stripe: signature timestamp {ts} is {abs(now - ts):.0f} s from now; expected within "
            f"{tolerance} s (replay protection). Fix: check the server clock or resend the event."
        )
    if not signature_matches(timestamped_hmac(secret, ts, body), sigs):
        raise SignatureError(
            "stripe: signature mismatch: no v1 signature equals HMAC-SHA256 of the body with the "
            "configured secret. Fix: use the endpoint's signing secret (whsec_...) and the raw body."
        )


def _is_basil(api_version: str | None) -> bool:
    return bool(api_version) and api_version[:10] >= BASIL_VERSION


def _id_of(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("id"), str):
        return v["id"]
    return None


def _codes(obj: dict[str, Any]) -> list[str]:
    """Coupon / promotion codes on a subscription or invoice (legacy and basil shapes)."""
    out: list[str] = []
    ds: list[Any] = []
    if isinstance(obj.get("discount"), dict):
        ds.append(obj["discount"])
    if isinstance(obj.get("discounts"), list):
        ds.extend(obj["discounts"])
    for d in ds:
        if not isinstance(d, dict):
            continue  # a bare discount id says nothing about the code
        pc = d.get("promotion_code")
        if isinstance(pc, dict) and isinstance(pc.get("code"), str):
            out.append(pc["code"])
        elif isinstance(pc, str):
            out.append(pc)
        coupon = d.get("coupon")
        if coupon is None and isinstance(d.get("source"), dict):
            coupon = d["source"].get("coupon")
        cid = _id_of(coupon)
        if cid:
            out.append(cid)
    seen: list[str] = []
    for c in out:
        if c not in seen:
            seen.append(c)
    return seen


def _first_item(sub: dict[str, Any]) -> dict[str, Any] | None:
    items = sub.get("items")
    if isinstance(items, dict) and isinstance(items.get("data"), list) and items["data"]:
        it = items["data"][0]
        if not isinstance(it, dict):
            raise IntakeError(f"{P}: field 'items.data[0]' must be an object.")
        return it
    return None


def _subscription_state(sub: dict[str, Any], basil: bool) -> dict[str, Any]:
    sid = require(sub, "id", str, P)
    cid = _id_of(sub.get("customer"))
    if not cid:
        raise IntakeError(
            f"{P}: subscription {sid!r} has no 'customer' id. Expected 'cus_...'. "
            "Fix: send the event unchanged from Stripe."
        )
    item = _first_item(sub)
    price = None
    if item is not None:
        price = item.get("price") if isinstance(item.get("price"), dict) else item.get("plan")
    if price is None and isinstance(sub.get("plan"), dict):
        price = sub["plan"]
    st: dict[str, Any] = {"subscription_id": sid, "customer_id": cid, "source": "stripe"}
    status = require(sub, "status", str, P)
    if status not in _STATUS:
        raise IntakeError(
            f"{P}: subscription {sid!r} has status {status!r}; expected one of {sorted(_STATUS)}."
        )
    st["status"] = _STATUS[status]
    if isinstance(price, dict):
        currency = opt(price, "currency", str, P) or opt(sub, "currency", str, P)
        amount = price.get("unit_amount", price.get("amount"))
        recurring = price.get("recurring") if isinstance(price.get("recurring"), dict) else price
        interval = recurring.get("interval")
        count = recurring.get("interval_count") or 1
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise IntakeError(
                f"{P}: price interval_count must be a positive integer. Got {count!r}."
            )
        if interval not in ("month", "year", "week", "day", None):
            raise IntakeError(f"{P}: price interval {interval!r} is not month/year/week/day.")
        plan_id = _id_of(price) or "unknown"
        meta = price.get("metadata") if isinstance(price.get("metadata"), dict) else {}
        smeta = sub.get("metadata") if isinstance(sub.get("metadata"), dict) else {}
        tier = (
            smeta.get("plan_tier")
            or meta.get("plan_tier")
            or price.get("lookup_key")
            or price.get("nickname")
            or plan_id
        )
        st["plan_id"] = plan_id
        st["plan_tier"] = str(tier)
        if currency:
            st["currency"] = currency.upper()
        if amount is not None and currency:
            qty = item.get("quantity") if item and isinstance(item.get("quantity"), int) else 1
            per = minor_to_major(amount, currency, P, "items.data[0].price.unit_amount") * qty
            # normalise to the contract's month/year: weekly/daily plans become monthly
            if interval == "year":
                st["billing_interval"] = "year"
                st["price"] = per / count
            elif interval == "month":
                st["billing_interval"] = "month" if count < 12 else "year"
                st["price"] = per if count in (1, 12) else per / count
            elif interval in ("week", "day"):
                per_month = per * (52.0 / 12.0 if interval == "week" else 365.0 / 12.0) / count
                st["billing_interval"] = "month"
                st["price"] = per_month
            st["mrr"] = monthly_mrr(st.get("price"), st.get("billing_interval"))
    start = sub.get("start_date") or sub.get("created")
    if start is not None:
        st["started_at"] = from_unix_seconds(start, P, "start_date")
    cpe = None
    if basil and item is not None and item.get("current_period_end") is not None:
        cpe = item["current_period_end"]
    elif sub.get("current_period_end") is not None:
        cpe = sub["current_period_end"]
    elif item is not None and item.get("current_period_end") is not None:
        cpe = item["current_period_end"]
    st["current_period_end"] = from_unix_seconds(cpe, P, "current_period_end") if cpe else None
    cancel_pending = bool(sub.get("cancel_at_period_end")) or sub.get("cancel_at") is not None
    canceled_at = sub.get("canceled_at")
    if cancel_pending or status == "canceled":
        st["cancel_requested_at"] = (
            from_unix_seconds(canceled_at, P, "canceled_at") if canceled_at else None
        )
    else:
        st["cancel_requested_at"] = None
    if status in ("canceled", "incomplete_expired"):
        ended = sub.get("ended_at") or canceled_at
        st["ended_at"] = from_unix_seconds(ended, P, "ended_at") if ended else None
    else:
        st["ended_at"] = None
    reason, initiator, raw_reason = _cancel_reason(sub)
    if cancel_pending or status == "canceled":
        st["cancel_reason"] = reason
        cd = sub.get("cancellation_details")
        comment = cd.get("comment") if isinstance(cd, dict) else None
        st["cancel_comment"] = comment if isinstance(comment, str) and comment else None
    else:
        st["cancel_reason"] = None
        st["cancel_comment"] = None
    return st


def _cancel_reason(sub: dict[str, Any]) -> tuple[str, str, str | None]:
    cd = sub.get("cancellation_details")
    if not isinstance(cd, dict):
        return "unknown", "customer", None
    raw = cd.get("reason")
    feedback = cd.get("feedback")
    for name, v in (("reason", raw), ("feedback", feedback)):
        if v is not None and not isinstance(v, str):
            raise IntakeError(
                f"{P}: cancellation_details.{name} must be a string or null. Got {type(v).__name__}."
            )
    if raw is not None and raw not in STRIPE_REASONS:
        raise IntakeError(
            f"{P}: cancellation_details.reason {raw!r} is unknown; expected one of "
            f"{sorted(STRIPE_REASONS)} or null."
        )
    if feedback is not None and feedback not in STRIPE_FEEDBACK:
        raise IntakeError(
            f"{P}: cancellation_details.feedback {feedback!r} is unknown; expected one of "
            f"{sorted(STRIPE_FEEDBACK)} or null."
        )
    mapped, initiator = STRIPE_REASONS.get(raw, (None, "customer")) if raw else (None, "customer")
    if mapped is None:
        mapped = STRIPE_FEEDBACK[feedback] if feedback else "unknown"
    return mapped, initiator, raw


def _invoice_subscription(inv: dict[str, Any], basil: bool) -> str | None:
    legacy = _id_of(inv.get("subscription"))
    parent = inv.get("parent")
    new = None
    if isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        new = _id_of(parent["subscription_details"].get("subscription"))
    if new is None and isinstance(inv.get("lines"), dict):
        for line in inv["lines"].get("data") or []:
            if isinstance(line, dict):
                par = line.get("parent")
                if isinstance(par, dict):
                    sid = par.get("subscription_item_details") or par.get("subscription_details")
                    if isinstance(sid, dict) and isinstance(sid.get("subscription"), str):
                        new = sid["subscription"]
                        break
                if isinstance(line.get("subscription"), str):
                    new = line["subscription"]
                    break
    return (new or legacy) if basil else (legacy or new)


def normalize_stripe(body: bytes | str, **_: Any) -> Normalized:
    """Normalise one Stripe webhook event body (the ``Event`` JSON).

    Parameters
    ----------
    body : bytes or str
        The raw request body.

    Returns
    -------
    Normalized

    Raises
    ------
    IntakeError
        Malformed JSON, missing ids, wrong types, unknown event type.
    """
    doc = parse_json_body(body, P)
    if not isinstance(doc, dict):
        raise IntakeError(
            f"{P}: body must be a JSON object (a Stripe Event). Got {type(doc).__name__}."
        )
    evt_id = require(doc, "id", str, P)
    etype = require(doc, "type", str, P)
    if doc.get("object", "event") != "event":
        raise IntakeError(f"{P}: field 'object' must be 'event'. Got {doc.get('object')!r}.")
    created = from_unix_seconds(require(doc, "created", int, P), P, "created")
    api_version = opt(doc, "api_version", str, P)
    basil = _is_basil(api_version)
    if etype not in STRIPE_HANDLED_TYPES and etype not in STRIPE_IGNORED_TYPES:
        raise IntakeError(
            f"{P}: unknown event type {etype!r} (event {evt_id}). Expected one of the handled "
            "types (see docs/intake.md). Fix: remove it from the endpoint's enabled events, or "
            "extend winback_ml.intake.stripe."
        )
    obj = require(doc, "data.object", dict, P)
    n = Normalized(
        provider=P,
        source="stripe",
        delivery_id=evt_id,
        provider_type=etype,
        occurred_at=created,
        source_doc=doc,
        verification="none",
    )
    if etype in STRIPE_IGNORED_TYPES:
        return n
    if etype.startswith("customer.subscription."):
        return _subscription_event(n, doc, obj, etype, basil)
    if etype.startswith("invoice."):
        return _invoice_event(n, obj, etype, basil)
    if etype == "charge.refunded":
        return _refund_event(n, obj)
    # customer.created / customer.updated
    cid = require(obj, "id", str, P)
    n.customer = _customer(obj, cid)
    return n


def _customer(obj: dict[str, Any], cid: str) -> dict[str, Any]:
    cust: dict[str, Any] = {"customer_id": cid}
    if isinstance(obj.get("email"), str):
        cust["email"] = obj["email"]
    if isinstance(obj.get("phone"), str):
        cust["phone"] = obj["phone"]
    addr = obj.get("address")
    if isinstance(addr, dict) and isinstance(addr.get("country"), str):
        cust["country"] = addr["country"].upper()
    locales = obj.get("preferred_locales")
    if isinstance(locales, list) and locales and isinstance(locales[0], str):
        cust["language"] = locales[0].split("-")[0].lower()
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    for k in ("email_opt_in", "sms_opt_in"):
        if k in meta:
            cust[k] = str(meta[k]).lower() in ("true", "1", "yes")
    if isinstance(obj.get("created"), int):
        cust["signup_at"] = from_unix_seconds(obj["created"], P, "data.object.created")
    return cust


def _subscription_event(
    n: Normalized, doc: dict[str, Any], sub: dict[str, Any], etype: str, basil: bool
) -> Normalized:
    st = _subscription_state(sub, basil)
    n.subscription = st
    sid, cid = st["subscription_id"], st["customer_id"]
    if isinstance(sub.get("customer"), dict):
        n.customer = _customer(sub["customer"], cid)
    else:
        n.customer = {"customer_id": cid}
    codes = _codes(sub)
    n.redeemed_codes = codes
    code_toks = [f"code:{c}" for c in codes]
    prev = doc.get("data", {}).get("previous_attributes")
    prev = prev if isinstance(prev, dict) else {}
    evid = f"stripe:{n.delivery_id}"
    if etype == "customer.subscription.created":
        n.events.append(
            make_event(
                evid,
                st.get("started_at") or n.occurred_at,
                cid,
                sid,
                "stripe",
                "subscribed",
                detail=detail_tokens(etype, f"status:{sub['status']}", *code_toks),
            )
        )
    elif etype == "customer.subscription.deleted":
        reason, initiator, raw = _cancel_reason(sub)
        ended = st.get("ended_at") or n.occurred_at
        n.events.append(
            make_event(
                evid,
                ended,
                cid,
                sid,
                "stripe",
                "cancelled",
                reason=reason,
                detail=detail_tokens(
                    etype, f"initiator:{initiator}", raw and f"stripe_reason:{raw}"
                ),
            )
        )
    elif etype == "customer.subscription.updated":
        newly_cancel = (
            sub.get("cancel_at_period_end") is True and prev.get("cancel_at_period_end") is False
        ) or (
            sub.get("cancel_at") is not None and "cancel_at" in prev and prev["cancel_at"] is None
        )
        if newly_cancel:
            reason, initiator, raw = _cancel_reason(sub)
            n.events.append(
                make_event(
                    evid,
                    st.get("cancel_requested_at") or n.occurred_at,
                    cid,
                    sid,
                    "stripe",
                    "cancel_requested",
                    reason=reason,
                    detail=detail_tokens(
                        etype, f"initiator:{initiator}", raw and f"stripe_reason:{raw}"
                    ),
                )
            )
        elif "items" in prev or "plan" in prev:
            old_price = None
            pitems = prev.get("items")
            if isinstance(pitems, dict) and isinstance(pitems.get("data"), list) and pitems["data"]:
                first = pitems["data"][0]
                if isinstance(first, dict):
                    old_price = _id_of(first.get("price")) or _id_of(first.get("plan"))
            elif isinstance(prev.get("plan"), dict):
                old_price = _id_of(prev["plan"])
            if old_price != st.get("plan_id"):
                n.events.append(
                    make_event(
                        evid,
                        n.occurred_at,
                        cid,
                        sid,
                        "stripe",
                        "plan_changed",
                        amount=None,
                        detail=detail_tokens(etype, f"from:{old_price}", f"to:{st.get('plan_id')}"),
                    )
                )
    return n


def _invoice_event(n: Normalized, inv: dict[str, Any], etype: str, basil: bool) -> Normalized:
    inv_id = require(inv, "id", str, P)
    cid = _id_of(inv.get("customer"))
    if not cid:
        raise IntakeError(f"{P}: invoice {inv_id!r} has no 'customer'. Expected 'cus_...'.")
    sid = _invoice_subscription(inv, basil)
    if not sid:
        # a one-off invoice: nothing to do with subscriptions
        return n
    currency = require(inv, "currency", str, P).upper()
    attempts = inv.get("attempt_count") if isinstance(inv.get("attempt_count"), int) else 1
    reason = opt(inv, "billing_reason", str, P)
    n.subscription = {"subscription_id": sid, "customer_id": cid, "source": "stripe"}
    cust: dict[str, Any] = {"customer_id": cid}
    if isinstance(inv.get("customer_email"), str):
        cust["email"] = inv["customer_email"]
    n.customer = cust
    codes = _codes(inv)
    n.redeemed_codes = codes
    code_toks = [f"code:{c}" for c in codes]
    trans = inv.get("status_transitions") if isinstance(inv.get("status_transitions"), dict) else {}
    if etype in ("invoice.paid", "invoice.payment_succeeded"):
        amount = minor_to_major(require(inv, "amount_paid", int, P), currency, P, "amount_paid")
        paid_at = trans.get("paid_at") or inv.get("created")
        ts = (
            from_unix_seconds(paid_at, P, "status_transitions.paid_at")
            if paid_at
            else n.occurred_at
        )
        if attempts > 1:
            et = "payment_recovered"
        elif reason == "subscription_cycle":
            et = "renewed"
        else:
            return n  # first invoice (subscribed covers it) or proration
        n.events.append(
            make_event(
                f"stripe:{inv_id}:paid",
                ts,
                cid,
                sid,
                "stripe",
                et,
                amount=amount,
                currency=currency,
                detail=detail_tokens(f"billing_reason:{reason}", f"attempt:{attempts}", *code_toks),
            )
        )
        if et == "payment_recovered":
            n.subscription["status"] = "active"
    else:  # invoice.payment_failed
        amount = minor_to_major(require(inv, "amount_due", int, P), currency, P, "amount_due")
        final = inv.get("next_payment_attempt") is None
        n.events.append(
            make_event(
                f"stripe:{inv_id}:failed:{attempts}",
                n.occurred_at,
                cid,
                sid,
                "stripe",
                "payment_failed",
                amount=amount,
                currency=currency,
                detail=detail_tokens(
                    f"attempt:{attempts}", "final_attempt" if final else None, "initiator:system"
                ),
            )
        )
    return n


def _refund_event(n: Normalized, ch: dict[str, Any]) -> Normalized:
    ch_id = require(ch, "id", str, P)
    cid = _id_of(ch.get("customer"))
    currency = require(ch, "currency", str, P).upper()
    refunded = require(ch, "amount_refunded", int, P)
    sid = None
    inv = ch.get("invoice")
    if isinstance(inv, dict):
        sid = _invoice_subscription(inv, True)
    meta = ch.get("metadata") if isinstance(ch.get("metadata"), dict) else {}
    sid = sid or meta.get("subscription_id") or meta.get("subscription")
    if not cid or not isinstance(sid, str) or not sid:
        raise IntakeError(
            f"{P}: charge {ch_id!r} is refunded but names no customer and subscription. "
            "Expected 'customer' and an expanded 'invoice' or metadata.subscription_id. "
            "Fix: set metadata.subscription_id on subscription charges, or expand 'invoice'."
        )
    amount = -minor_to_major(refunded, currency, P, "amount_refunded")
    n.subscription = {"subscription_id": sid, "customer_id": cid, "source": "stripe"}
    n.customer = {"customer_id": cid}
    n.events.append(
        make_event(
            f"stripe:{ch_id}:refunded:{refunded}",
            n.occurred_at,
            cid,
            sid,
            "stripe",
            "refunded",
            amount=amount,
            currency=currency,
            detail=detail_tokens("charge.refunded", f"charge:{ch_id}"),
        )
    )
    return n
