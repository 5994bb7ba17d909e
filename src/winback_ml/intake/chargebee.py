"""Chargebee webhook events to contract events and subscription state.

Envelope: ``{id, occurred_at, event_type, api_version, content{subscription,
customer, invoice?, transaction?}}``. Money: integer minor units; time: unix
seconds. Both catalogs are read: Product Catalog 1.0 (``plan_id``,
``plan_unit_price``) and 2.0 (``subscription_items[]`` with ``item_type:
plan``).

Voluntary versus involuntary: ``subscription.cancel_reason`` only ever holds
system reasons (``not_paid``, ``no_card``, ... see
:data:`~winback_ml.intake.reasons.CHARGEBEE_SYSTEM_REASONS`); a voluntary
cancel carries the merchant-configured ``cancel_reason_code``, mapped by
keywords (:func:`~winback_ml.intake.reasons.reason_from_text`).
``subscription_cancellation_scheduled`` is an intent (access continues);
``subscription_cancelled`` is the end of service.
"""

from __future__ import annotations

from typing import Any

from winback_ml.exceptions import IntakeError
from winback_ml.intake._common import (
    Normalized,
    detail_tokens,
    from_unix_seconds,
    make_event,
    minor_to_major,
    monthly_mrr,
    opt,
    parse_json_body,
    require,
)
from winback_ml.intake.reasons import CHARGEBEE_SYSTEM_REASONS, reason_from_text

__all__ = ["normalize_chargebee", "CHARGEBEE_HANDLED_TYPES", "CHARGEBEE_IGNORED_TYPES"]

P = "chargebee"

CHARGEBEE_HANDLED_TYPES = frozenset(
    {
        "subscription_created",
        "subscription_started",
        "subscription_activated",
        "subscription_renewed",
        "subscription_changed",
        "subscription_cancellation_scheduled",
        "subscription_scheduled_cancellation_removed",
        "subscription_cancelled",
        "subscription_reactivated",
        "subscription_paused",
        "subscription_resumed",
        "subscription_pause_scheduled",
        "payment_failed",
        "payment_succeeded",
        "payment_refunded",
        "customer_created",
        "customer_changed",
    }
)
CHARGEBEE_IGNORED_TYPES = frozenset(
    {
        "invoice_generated",
        "invoice_updated",
        "invoice_deleted",
        "pending_invoice_created",
        "credit_note_created",
        "subscription_renewal_reminder",
        "subscription_trial_end_reminder",
        "subscription_shipping_address_updated",
        "subscription_changes_scheduled",
        "subscription_scheduled_changes_removed",
        "card_added",
        "card_updated",
        "card_expiry_reminder",
        "card_expired",
        "card_deleted",
        "payment_source_added",
        "payment_source_updated",
        "payment_source_deleted",
        "payment_initiated",
        "customer_deleted",
        "coupon_created",
        "coupon_updated",
        "plan_created",
        "plan_updated",
        "item_price_created",
        "item_price_updated",
    }
)

_STATUS = {
    "future": "trialing",
    "in_trial": "trialing",
    "active": "active",
    "non_renewing": "active",
    "paused": "paused",
    "cancelled": "cancelled",
    "transferred": "cancelled",
}


def _plan(sub: dict[str, Any], currency: str) -> tuple[str | None, float | None]:
    """Plan id and price per billing period (major units), PC 1.0 or 2.0."""
    items = sub.get("subscription_items")
    if isinstance(items, list):
        for i, it in enumerate(items):
            if isinstance(it, dict) and it.get("item_type", "plan") == "plan":
                pid = opt(it, "item_price_id", str, P)
                qty = it.get("quantity") if isinstance(it.get("quantity"), int) else 1
                if isinstance(it.get("amount"), int):
                    return pid, minor_to_major(
                        it["amount"], currency, P, f"subscription_items[{i}].amount"
                    )
                if isinstance(it.get("unit_price"), int):
                    unit = minor_to_major(
                        it["unit_price"], currency, P, f"subscription_items[{i}].unit_price"
                    )
                    return pid, unit * qty
                return pid, None
    pid = opt(sub, "plan_id", str, P)
    qty = sub.get("plan_quantity") if isinstance(sub.get("plan_quantity"), int) else 1
    if isinstance(sub.get("plan_amount"), int):
        return pid, minor_to_major(sub["plan_amount"], currency, P, "plan_amount")
    if isinstance(sub.get("plan_unit_price"), int):
        return pid, minor_to_major(sub["plan_unit_price"], currency, P, "plan_unit_price") * qty
    return pid, None


def _state(sub: dict[str, Any]) -> dict[str, Any]:
    sid = require(sub, "id", str, P)
    cid = require(sub, "customer_id", str, P)
    status = require(sub, "status", str, P)
    if status not in _STATUS:
        raise IntakeError(
            f"{P}: subscription {sid!r} has status {status!r}; expected one of {sorted(_STATUS)}."
        )
    st: dict[str, Any] = {
        "subscription_id": sid,
        "customer_id": cid,
        "source": "chargebee",
        "status": _STATUS[status],
    }
    currency = opt(sub, "currency_code", str, P)
    if currency:
        st["currency"] = currency.upper()
        pid, price = _plan(sub, currency)
        unit = opt(sub, "billing_period_unit", str, P)
        period = sub.get("billing_period", 1)
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise IntakeError(
                f"{P}: subscription.billing_period must be a positive integer. Got {period!r}."
            )
        if pid:
            st["plan_id"] = pid
            meta = sub.get("meta_data") if isinstance(sub.get("meta_data"), dict) else {}
            st["plan_tier"] = str(meta.get("plan_tier") or pid)
        if price is not None and unit is not None:
            if unit == "year":
                st["billing_interval"], st["price"] = "year", price / period
            elif unit == "month" and period % 12 == 0:
                st["billing_interval"], st["price"] = "year", price / (period // 12)
            elif unit == "month":
                st["billing_interval"], st["price"] = "month", price / period
            elif unit in ("week", "day"):
                factor = 52.0 / 12.0 if unit == "week" else 365.0 / 12.0
                st["billing_interval"], st["price"] = "month", price * factor / period
            else:
                raise IntakeError(
                    f"{P}: subscription {sid!r} billing_period_unit {unit!r}; expected day/week/month/year."
                )
            st["mrr"] = monthly_mrr(st["price"], st["billing_interval"])
    started = sub.get("started_at") or sub.get("activated_at") or sub.get("created_at")
    if started is not None:
        st["started_at"] = from_unix_seconds(started, P, "subscription.started_at")
    cte = sub.get("current_term_end") or sub.get("next_billing_at")
    st["current_period_end"] = from_unix_seconds(cte, P, "current_term_end") if cte else None
    if status == "non_renewing":
        # Chargebee does not stamp the request time; the scheduled-cancel event's time is used
        st["cancel_requested_at"] = None
    if status in ("cancelled", "transferred"):
        ca = sub.get("cancelled_at")
        st["ended_at"] = from_unix_seconds(ca, P, "cancelled_at") if ca else None
    else:
        st["ended_at"] = None
    if status in ("active", "in_trial", "future", "paused"):
        st["cancel_requested_at"] = None
        st["cancel_reason"] = None
        st["cancel_comment"] = None
    return st


def _reason(sub: dict[str, Any]) -> tuple[str, str, str | None]:
    sys_reason = opt(sub, "cancel_reason", str, P)
    code = opt(sub, "cancel_reason_code", str, P)
    if sys_reason:
        if sys_reason not in CHARGEBEE_SYSTEM_REASONS:
            raise IntakeError(
                f"{P}: subscription.cancel_reason {sys_reason!r} is unknown; expected one of "
                f"{sorted(CHARGEBEE_SYSTEM_REASONS)}. Voluntary reasons belong in cancel_reason_code."
            )
        r, initiator = CHARGEBEE_SYSTEM_REASONS[sys_reason]
        return r, initiator, f"cancel_reason:{sys_reason}"
    if code:
        return reason_from_text(code), "customer", f"cancel_reason_code:{code}"
    return "unknown", "customer", None


def _codes(sub: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if isinstance(sub.get("coupon"), str):
        out.append(sub["coupon"])
    for c in sub.get("coupons") or []:
        if isinstance(c, dict) and isinstance(c.get("coupon_id"), str):
            out.append(c["coupon_id"])
        elif isinstance(c, dict) and isinstance(c.get("coupon_code"), str):
            out.append(c["coupon_code"])
    return list(dict.fromkeys(out))


def _customer(c: dict[str, Any]) -> dict[str, Any]:
    cid = require(c, "id", str, P)
    out: dict[str, Any] = {"customer_id": cid}
    for k in ("email", "phone"):
        if isinstance(c.get(k), str) and c[k]:
            out[k] = c[k]
    ba = c.get("billing_address")
    if isinstance(ba, dict) and isinstance(ba.get("country"), str):
        out["country"] = ba["country"].upper()
    if isinstance(c.get("locale"), str):
        out["language"] = c["locale"].split("-")[0].lower()
    if isinstance(c.get("created_at"), int):
        out["signup_at"] = from_unix_seconds(c["created_at"], P, "customer.created_at")
    for k in ("email_opt_in", "sms_opt_in"):
        v = c.get(f"cf_{k}")
        if v is not None:
            out[k] = str(v).lower() in ("true", "1", "yes")
    return out


def normalize_chargebee(body: bytes | str, **_: Any) -> Normalized:
    """Normalise one Chargebee webhook event body.

    Raises
    ------
    IntakeError
        Malformed JSON, missing ids, wrong types, unknown event type or reason.
    """
    doc = parse_json_body(body, P)
    if not isinstance(doc, dict):
        raise IntakeError(
            f"{P}: body must be a JSON object (a Chargebee event). Got {type(doc).__name__}."
        )
    evt_id = require(doc, "id", str, P)
    etype = require(doc, "event_type", str, P)
    ts = from_unix_seconds(require(doc, "occurred_at", int, P), P, "occurred_at")
    if etype not in CHARGEBEE_HANDLED_TYPES and etype not in CHARGEBEE_IGNORED_TYPES:
        raise IntakeError(
            f"{P}: unknown event type {etype!r} (event {evt_id}). Expected one of the handled "
            "types (see docs/intake.md). Fix: disable it on the webhook, or extend the normalizer."
        )
    content = require(doc, "content", dict, P)
    # webhook_status / webhooks[] change between Chargebee's retries of one event
    key = {k: v for k, v in doc.items() if k not in ("webhook_status", "webhooks")}
    n = Normalized(P, "chargebee", evt_id, etype, ts, source_doc=key)
    if etype in CHARGEBEE_IGNORED_TYPES:
        return n
    if isinstance(content.get("customer"), dict):
        n.customer = _customer(content["customer"])
    if etype.startswith("customer_"):
        require(content, "customer", dict, P)
        return n
    evid = f"chargebee:{evt_id}"
    if etype.startswith("payment_"):
        tx = require(content, "transaction", dict, P)
        cur = require(tx, "currency_code", str, P).upper()
        amount = minor_to_major(require(tx, "amount", int, P), cur, P, "transaction.amount")
        sub = content.get("subscription")
        sid = (sub.get("id") if isinstance(sub, dict) else None) or opt(
            tx, "subscription_id", str, P
        )
        cid = (sub.get("customer_id") if isinstance(sub, dict) else None) or opt(
            tx, "customer_id", str, P
        )
        if not sid or not cid:
            raise IntakeError(
                f"{P}: {etype} {evt_id} names no subscription/customer. Expected "
                "content.subscription or transaction.subscription_id and customer_id."
            )
        if isinstance(sub, dict):
            n.subscription = _state(sub)
        else:
            n.subscription = {"subscription_id": sid, "customer_id": cid, "source": "chargebee"}
        if n.customer is None:
            n.customer = {"customer_id": cid}
        inv = content.get("invoice") if isinstance(content.get("invoice"), dict) else {}
        dunning = inv.get("dunning_status")
        when = (
            from_unix_seconds(tx["date"], P, "transaction.date")
            if isinstance(tx.get("date"), int)
            else ts
        )
        if etype == "payment_failed":
            n.events.append(
                make_event(
                    evid,
                    when,
                    cid,
                    sid,
                    "chargebee",
                    "payment_failed",
                    amount=amount,
                    currency=cur,
                    detail=detail_tokens(
                        etype, dunning and f"dunning:{dunning}", "initiator:system"
                    ),
                )
            )
        elif etype == "payment_refunded":
            n.events.append(
                make_event(
                    evid,
                    when,
                    cid,
                    sid,
                    "chargebee",
                    "refunded",
                    amount=-abs(amount),
                    currency=cur,
                    detail=etype,
                )
            )
        elif dunning in ("in_progress", "exhausted", "stopped", "success"):
            n.events.append(
                make_event(
                    evid,
                    when,
                    cid,
                    sid,
                    "chargebee",
                    "payment_recovered",
                    amount=amount,
                    currency=cur,
                    detail=detail_tokens(etype, f"dunning:{dunning}"),
                )
            )
        return n

    sub = require(content, "subscription", dict, P)
    st = _state(sub)
    n.subscription = st
    sid, cid = st["subscription_id"], st["customer_id"]
    if n.customer is None:
        n.customer = {"customer_id": cid}
    if n.customer["customer_id"] != cid:
        raise IntakeError(
            f"{P}: content.customer.id {n.customer['customer_id']!r} differs from "
            f"subscription.customer_id {cid!r}. Expected the same customer."
        )
    codes = _codes(sub)
    n.redeemed_codes = codes
    code_toks = [f"code:{c}" for c in codes]
    inv = content.get("invoice") if isinstance(content.get("invoice"), dict) else None
    inv_amount = inv_cur = None
    if inv is not None and isinstance(inv.get("amount_paid"), int):
        inv_cur = require(inv, "currency_code", str, P).upper()
        inv_amount = minor_to_major(inv["amount_paid"], inv_cur, P, "invoice.amount_paid")

    def emit(event_type: str, at: Any, **kw: Any) -> None:
        n.events.append(make_event(evid, at, cid, sid, "chargebee", event_type, **kw))

    paid = {"amount": inv_amount, "currency": inv_cur, "detail": detail_tokens(etype, *code_toks)}
    if etype == "subscription_created":
        emit("subscribed", st.get("started_at") or ts, **paid)
    elif etype == "subscription_renewed":
        emit("renewed", ts, **paid)
    elif etype == "subscription_cancellation_scheduled":
        st["cancel_requested_at"] = ts
        r, initiator, raw = _reason(sub)
        st["cancel_reason"] = r
        emit(
            "cancel_requested",
            ts,
            reason=r,
            detail=detail_tokens(etype, f"initiator:{initiator}", raw),
        )
    elif etype == "subscription_scheduled_cancellation_removed":
        st["cancel_requested_at"] = None
        st["cancel_reason"] = None
    elif etype == "subscription_cancelled":
        r, initiator, raw = _reason(sub)
        st["cancel_reason"] = r
        ended = st.get("ended_at") or ts
        st["ended_at"] = ended
        emit(
            "cancelled", ended, reason=r, detail=detail_tokens(etype, f"initiator:{initiator}", raw)
        )
    elif etype == "subscription_reactivated":
        emit("reactivated", ts, **paid)
    elif etype == "subscription_changed":
        emit(
            "plan_changed",
            ts,
            detail=detail_tokens(etype, st.get("plan_id") and f"to:{st['plan_id']}"),
        )
    return n
