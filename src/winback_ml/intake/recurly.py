"""Recurly v3 (JSON webhooks) to contract events and subscription state.

Recurly's JSON webhooks are thin: ``{id, object_type, site_id, event_type,
event_time, uuid}``; the state must be fetched (``GET /subscriptions/{id}``).
The intake therefore takes a documented **envelope** holding both::

    {
      "notification": {"id": "...", "object_type": "subscription",
                       "event_type": "canceled", "event_time": "2025-06-01T10:00:00Z",
                       "uuid": "...", "site_id": "..."},
      "resource": { ... the Subscription JSON from GET /subscriptions/{uuid} ... },
      "transaction": { ... optional, for payment notifications ... }
    }

Units: decimal major units, ISO-8601 times (already the contract's units).
``customer_id`` is the account ``code`` (the merchant's own id), else the
account ``id``. The billing interval comes from ``plan.interval_unit`` /
``interval_length`` when the fetcher includes them, else from the length of
the current period (>= 300 days is ``year``).

Intent versus end: ``canceled`` is an intent (access continues to
``current_period_ends_at``); ``expired`` is the end of service, with
``expiration_reason`` mapped by
:data:`~winback_ml.intake.reasons.RECURLY_EXPIRATION_REASONS`.
"""

from __future__ import annotations

import time
from typing import Any

from winback_ml.exceptions import IntakeError, SignatureError
from winback_ml.intake._common import (
    Normalized,
    detail_tokens,
    from_iso,
    make_event,
    monthly_mrr,
    opt,
    parse_json_body,
    parse_signature_stamp,
    require,
    signature_matches,
    timestamped_hmac,
)
from winback_ml.intake.reasons import RECURLY_EXPIRATION_REASONS, reason_from_text

__all__ = [
    "normalize_recurly",
    "sign_recurly_payload",
    "verify_recurly_signature",
    "RECURLY_SUBSCRIPTION_EVENTS",
    "RECURLY_PAYMENT_EVENTS",
]

P = "recurly"


def sign_recurly_payload(body: bytes, secret: str, timestamp_ms: int | None = None) -> str:
    """The ``recurly-signature`` header for ``body``: ``"<unix ms>,<hex HMAC-SHA256>"``.

    What Recurly sends with a JSON webhook, and what a fetcher that wraps the
    notification into the envelope sends with the envelope it posts (for tests and tools).
    """
    t = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    return f"{t},{timestamped_hmac(secret, t, body)}"


def verify_recurly_signature(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Check a ``recurly-signature`` header; raise :class:`SignatureError` on any mismatch.

    Recurly's scheme: the header is a unix timestamp followed by one or more hex
    signatures (two while a rotated key is still valid), comma-separated; a
    signature is HMAC-SHA256 of ``"{timestamp}.{raw body}"`` with the endpoint's
    secret key. Recurly documents the timestamp in milliseconds; a 10-digit value
    is read as seconds. It must be within ``tolerance`` seconds of now (replay
    protection; ``tolerance=0`` turns the time check off, e.g. to re-verify a stored
    body). Comparison is constant-time.

    Raises
    ------
    SignatureError
        Missing header, malformed header, stale timestamp, or no signature matches.
    """
    if not header:
        raise SignatureError(
            "recurly: missing recurly-signature header while a webhook secret is configured. "
            "Fix: deliver Recurly's JSON webhook (or the fetcher's envelope) signed with the "
            "endpoint's secret key."
        )
    parts = [p.strip() for p in header.split(",")]
    ts = parse_signature_stamp(parts[0])  # a ms timestamp has 13 digits
    if len(parts) < 2 or ts is None or not all(parts[1:]):
        raise SignatureError(
            "recurly: recurly-signature header must be '<unix timestamp>,<hex signature>"
            "[,<hex signature>]'."
        )
    seconds = ts / 1000 if ts >= 10**11 else float(ts)
    now = time.time() if now is None else now
    if tolerance and abs(now - seconds) > tolerance:
        raise SignatureError(
            f"recurly: signature timestamp is {abs(now - seconds):.0f} s from now; expected "
            f"within {tolerance} s (replay protection). Fix: check the server clock or resend "
            "the notification."
        )
    if not signature_matches(timestamped_hmac(secret, parts[0], body), parts[1:]):
        raise SignatureError(
            "recurly: signature mismatch: no signature equals HMAC-SHA256 of the body with the "
            "configured secret. Fix: use the endpoint's secret key and the raw body."
        )


#: subscription event_type -> contract event_type (None: state only)
RECURLY_SUBSCRIPTION_EVENTS: dict[str, str | None] = {
    "created": "subscribed",
    "renewed": "renewed",
    "canceled": "cancel_requested",
    "expired": "expired",
    "reactivated": "reactivated",
    "updated": "plan_changed",
    "paused": None,
    "resumed": None,
    "pause_scheduled": None,
    "pause_canceled": None,
    "pause_modified": None,
    "paused_renewal": None,
    "trial_ended": None,
    "pending_change.scheduled": None,
}
#: payment / invoice event_type -> contract event_type (None: accepted, no event)
RECURLY_PAYMENT_EVENTS: dict[str, str | None] = {
    "failed": "payment_failed",
    "past_due": "payment_failed",
    "succeeded": None,
    "paid": None,
    "refunded": "refunded",
    "created": None,
    "processing": None,
}
_STATUS = {
    "active": "active",
    "canceled": "active",  # cancel intent: access continues until the period ends
    "expired": "expired",
    "failed": "expired",
    "future": "trialing",
    "paused": "paused",
    "in_trial": "trialing",
}


def _state(res: dict[str, Any]) -> dict[str, Any]:
    sid = opt(res, "uuid", str, P) or require(res, "id", str, P)
    acct = require(res, "account", dict, P)
    cid = opt(acct, "code", str, P) or require(acct, "id", str, P)
    state = require(res, "state", str, P)
    if state not in _STATUS:
        raise IntakeError(
            f"{P}: resource.state {state!r} is unknown; expected one of {sorted(_STATUS)}."
        )
    st: dict[str, Any] = {
        "subscription_id": sid,
        "customer_id": cid,
        "source": "recurly",
        "status": _STATUS[state],
    }
    if state == "active" and res.get("trial_ends_at"):
        trial_end = from_iso(res["trial_ends_at"], P, "resource.trial_ends_at")
        started = res.get("current_period_started_at")
        if started and from_iso(started, P, "resource.current_period_started_at") < trial_end:
            st["status"] = "trialing"
    plan = res.get("plan") if isinstance(res.get("plan"), dict) else {}
    code = plan.get("code") or plan.get("id")
    if code:
        st["plan_id"] = str(code)
        st["plan_tier"] = str(plan.get("name") or code)
    cur = opt(res, "currency", str, P)
    if cur:
        st["currency"] = cur.upper()
    ua = res.get("unit_amount")
    if ua is not None:
        if isinstance(ua, bool) or not isinstance(ua, (int, float, str)):
            raise IntakeError(f"{P}: resource.unit_amount must be a decimal. Got {ua!r}.")
        try:
            ua = float(ua)
        except ValueError:
            raise IntakeError(
                f"{P}: resource.unit_amount {ua!r} is not a decimal number."
            ) from None
        qty = res.get("quantity") if isinstance(res.get("quantity"), int) else 1
        price = ua * qty
        cps = opt(res, "current_period_started_at", str, P)
        cpe = opt(res, "current_period_ends_at", str, P)
        unit = plan.get("interval_unit")
        length = plan.get("interval_length") if isinstance(plan.get("interval_length"), int) else 1
        if unit in ("months", "month"):
            interval = "year" if length % 12 == 0 else "month"
            price = price / (length // 12) if interval == "year" else price / length
        elif unit in ("days", "day"):
            interval, price = "month", price * 365.0 / 12.0 / length
        elif cps and cpe:
            days = (
                from_iso(cpe, P, "current_period_ends_at")
                - from_iso(cps, P, "current_period_started_at")
            ).days
            interval = "year" if days >= 300 else "month"
        else:
            interval = "month"
        st["price"] = price
        st["billing_interval"] = interval
        st["mrr"] = monthly_mrr(price, interval)
    started = res.get("activated_at") or res.get("created_at")
    if started:
        st["started_at"] = from_iso(started, P, "resource.activated_at")
    cpe = res.get("current_period_ends_at")
    st["current_period_end"] = from_iso(cpe, P, "resource.current_period_ends_at") if cpe else None
    canceled_at = res.get("canceled_at")
    st["cancel_requested_at"] = (
        from_iso(canceled_at, P, "resource.canceled_at")
        if canceled_at and state in ("canceled", "expired")
        else None
    )
    expires = res.get("expires_at")
    st["ended_at"] = (
        from_iso(expires, P, "resource.expires_at")
        if expires and state in ("expired", "failed")
        else None
    )
    if state in ("active", "future", "paused", "in_trial"):
        st["cancel_reason"] = None
        st["cancel_comment"] = None
    return st


def _expiration(res: dict[str, Any]) -> tuple[str, str, str | None]:
    raw = opt(res, "expiration_reason", str, P)
    if not raw:
        return "unknown", "customer", None
    key = raw.strip().lower().replace(" ", "_").replace("-", "_")
    if key in RECURLY_EXPIRATION_REASONS:
        r, who = RECURLY_EXPIRATION_REASONS[key]
        return r, who, f"expiration_reason:{key}"
    r = reason_from_text(raw)
    return r, ("system" if r == "payment_failed" else "customer"), "expiration_reason:other"


def _codes(res: dict[str, Any]) -> list[str]:
    out = []
    reds = res.get("coupon_redemptions")
    for red in reds if isinstance(reds, list) else []:
        if isinstance(red, dict) and isinstance(red.get("coupon"), dict):
            code = red["coupon"].get("code")
            if isinstance(code, str):
                out.append(code)
    return list(dict.fromkeys(out))


def normalize_recurly(body: bytes | str, **_: Any) -> Normalized:
    """Normalise one Recurly envelope ``{"notification": ..., "resource": ...}``.

    Raises
    ------
    IntakeError
        Not an envelope, missing ids, unknown object or event type, wrong types.
    """
    doc = parse_json_body(body, P)
    if not isinstance(doc, dict):
        raise IntakeError(f"{P}: body must be the JSON envelope object. Got {type(doc).__name__}.")
    if "notification" not in doc and "object_type" in doc:
        raise IntakeError(
            f"{P}: got a bare thin webhook; expected the envelope "
            '{"notification": <webhook>, "resource": <GET /subscriptions/{id}>}. '
            "Fix: fetch the subscription and wrap both (docs/intake.md)."
        )
    note = require(doc, "notification", dict, P)
    nid = opt(note, "id", str, P) or require(note, "uuid", str, P)
    otype = require(note, "object_type", str, P)
    etype = require(note, "event_type", str, P)
    ts = from_iso(require(note, "event_time", str, P), P, "notification.event_time")
    # the hash covers the notification only: a redelivery whose resource was re-fetched
    # later (newer state) is still the same delivery, not a conflict
    n = Normalized(P, "recurly", nid, f"{otype}.{etype}", ts, source_doc=note)
    if otype == "account":
        acct = require(doc, "resource", dict, P)
        cid = opt(acct, "code", str, P) or require(acct, "id", str, P)
        cust: dict[str, Any] = {"customer_id": cid}
        if isinstance(acct.get("email"), str):
            cust["email"] = acct["email"]
        n.customer = cust
        return n
    if otype == "subscription":
        table = RECURLY_SUBSCRIPTION_EVENTS
    elif otype in ("payment", "charge_invoice", "invoice"):
        table = RECURLY_PAYMENT_EVENTS
    else:
        raise IntakeError(
            f"{P}: notification.object_type {otype!r} is not handled; expected subscription, "
            "payment, charge_invoice, invoice or account."
        )
    if etype not in table:
        raise IntakeError(
            f"{P}: unknown event type {otype}.{etype!r} (notification {nid}). Expected one of "
            f"{sorted(table)}."
        )
    res = require(doc, "resource", dict, P)
    if res.get("object") not in (None, "subscription"):
        raise IntakeError(
            f"{P}: resource.object is {res.get('object')!r}; expected 'subscription' "
            "(GET /subscriptions/{id})."
        )
    st = _state(res)
    n.subscription = st
    sid, cid = st["subscription_id"], st["customer_id"]
    acct = res["account"]
    cust = {"customer_id": cid}
    if isinstance(acct.get("email"), str) and acct["email"]:
        cust["email"] = acct["email"]
    n.customer = cust
    codes = _codes(res)
    n.redeemed_codes = codes
    code_toks = [f"code:{c}" for c in codes]
    et = table[etype]
    if et is None:
        return n
    evid = f"recurly:{nid}"
    cur = st.get("currency")
    if otype != "subscription":
        tx = doc.get("transaction") if isinstance(doc.get("transaction"), dict) else {}
        amount = None
        tcur = opt(tx, "currency", str, P) or cur
        if tx.get("amount") is not None:
            try:
                amount = float(tx["amount"])
            except (TypeError, ValueError):
                raise IntakeError(
                    f"{P}: transaction.amount {tx['amount']!r} is not a decimal."
                ) from None
        if et == "refunded" and amount is not None:
            amount = -abs(amount)
        n.events.append(
            make_event(
                evid,
                ts,
                cid,
                sid,
                "recurly",
                et,
                amount=amount,
                currency=tcur if amount is not None else None,
                detail=detail_tokens(
                    f"{otype}.{etype}", "initiator:system" if et == "payment_failed" else None
                ),
            )
        )
        return n
    kw: dict[str, Any] = {"detail": detail_tokens(f"subscription.{etype}", *code_toks)}
    when = ts
    if et == "expired":
        r, who, raw = _expiration(res)
        kw["reason"] = r
        kw["detail"] = detail_tokens(f"subscription.{etype}", f"initiator:{who}", raw)
        st["cancel_reason"] = r
        when = st.get("ended_at") or ts
        st["ended_at"] = when
        st["status"] = "expired"
    elif et == "cancel_requested":
        kw.update(
            reason="unknown", detail=detail_tokens("subscription.canceled", "initiator:customer")
        )
        when = st.get("cancel_requested_at") or ts
        st["cancel_requested_at"] = when
        st.setdefault("cancel_reason", "unknown")
    elif (
        et in ("renewed", "subscribed", "reactivated")
        and st.get("price") is not None
        and et == "renewed"
    ):
        kw["amount"], kw["currency"] = st["price"], cur
    elif et == "subscribed":
        when = st.get("started_at") or ts
    n.events.append(make_event(evid, when, cid, sid, "recurly", et, **kw))
    return n
