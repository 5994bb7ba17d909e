"""Google Play real-time developer notifications to contract events and state.

Google's Pub/Sub push carries no state, so the intake takes a documented
**envelope**::

    {
      "notification": {"message": {"data": "<base64>", "messageId": "...",
                                   "publishTime": "..."},
                       "subscription": "projects/.../subscriptions/..."},
      "resource": { ... purchases.subscriptionsv2.get response ... },
      "billingPeriod": "P1M"      # optional: the base plan's ISO-8601 period
    }

``notification`` is the push body exactly as Pub/Sub posts it; ``resource``
is fetched with the notification's ``purchaseToken``. ``messageId``
de-duplicates. Units: ``Money{currencyCode, units, nanos}``, RFC 3339 times,
``eventTimeMillis`` a decimal string of milliseconds.

Identity: ``subscription_id`` is ``gp:`` + the first 24 hex digits of
SHA-256 of the purchase token (tokens are long and opaque); ``customer_id``
is ``externalAccountIdentifiers.obfuscatedExternalAccountId`` when the app
sets it, else ``google_play:`` + the same hash.

Notification codes (14-16 and 21 are unassigned; unknown codes are refused,
never guessed): 3 CANCELED and 18 CANCELLATION_SCHEDULED are intents;
13 EXPIRED is the end of service (12 REVOKED ends it at once). The reason
comes from ``canceledStateContext``: ``userInitiatedCancellation`` (survey
reason), ``systemInitiatedCancellation`` (payment_failed, involuntary),
``developerInitiatedCancellation`` (merchant), ``replacementCancellation``
(the user moved to another plan: detail ``replaced``, not a lapse).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from winback_ml.exceptions import IntakeError
from winback_ml.intake._common import (
    Normalized,
    detail_tokens,
    from_iso,
    from_unix_millis,
    make_event,
    monthly_mrr,
    opt,
    parse_json_body,
    require,
)
from winback_ml.intake.reasons import GOOGLE_CANCEL_CONTEXTS, GOOGLE_SURVEY_REASONS

__all__ = ["normalize_google", "GOOGLE_NOTIFICATION_TYPES", "token_id"]

P = "google"

#: notificationType -> (name, contract event_type or None for state only)
GOOGLE_NOTIFICATION_TYPES: dict[int, tuple[str, str | None]] = {
    1: ("SUBSCRIPTION_RECOVERED", "payment_recovered"),
    2: ("SUBSCRIPTION_RENEWED", "renewed"),
    3: ("SUBSCRIPTION_CANCELED", "cancel_requested"),
    4: ("SUBSCRIPTION_PURCHASED", "subscribed"),
    5: ("SUBSCRIPTION_ON_HOLD", "payment_failed"),
    6: ("SUBSCRIPTION_IN_GRACE_PERIOD", "payment_failed"),
    7: ("SUBSCRIPTION_RESTARTED", None),
    8: ("SUBSCRIPTION_PRICE_CHANGE_CONFIRMED", None),
    9: ("SUBSCRIPTION_DEFERRED", None),
    10: ("SUBSCRIPTION_PAUSED", None),
    11: ("SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED", None),
    12: ("SUBSCRIPTION_REVOKED", "cancelled"),
    13: ("SUBSCRIPTION_EXPIRED", "expired"),
    17: ("SUBSCRIPTION_ITEMS_CHANGED", "plan_changed"),
    18: ("SUBSCRIPTION_CANCELLATION_SCHEDULED", "cancel_requested"),
    19: ("SUBSCRIPTION_PRICE_CHANGE_UPDATED", None),
    20: ("SUBSCRIPTION_PENDING_PURCHASE_CANCELED", None),
    22: ("SUBSCRIPTION_PRICE_STEP_UP_CONSENT_UPDATED", None),
}
_STATE = {
    "SUBSCRIPTION_STATE_ACTIVE": "active",
    "SUBSCRIPTION_STATE_CANCELED": "active",  # intent: access continues until expiry
    "SUBSCRIPTION_STATE_IN_GRACE_PERIOD": "past_due",
    "SUBSCRIPTION_STATE_ON_HOLD": "past_due",
    "SUBSCRIPTION_STATE_PAUSED": "paused",
    "SUBSCRIPTION_STATE_EXPIRED": "expired",
    "SUBSCRIPTION_STATE_PENDING": "trialing",
    "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED": "expired",
}


def token_id(purchase_token: str) -> str:
    """Stable short id of a purchase token (``gp:<24 hex>``)."""
    return "gp:" + hashlib.sha256(purchase_token.encode()).hexdigest()[:24]


def _money(m: Any, path: str) -> tuple[float, str]:
    if not isinstance(m, dict):
        raise IntakeError(f"{P}: field '{path}' must be a Money object. Got {type(m).__name__}.")
    cur = require(m, "currencyCode", str, P).upper()
    units = m.get("units", "0")
    try:
        u = int(units)
    except (TypeError, ValueError):
        raise IntakeError(
            f"{P}: field '{path}.units' must be an int64 string. Got {units!r}."
        ) from None
    nanos = m.get("nanos", 0)
    if isinstance(nanos, bool) or not isinstance(nanos, int) or abs(nanos) >= 10**9:
        raise IntakeError(f"{P}: field '{path}.nanos' must be an integer below 1e9. Got {nanos!r}.")
    return u + nanos / 1e9, cur


def _interval(env: dict[str, Any], item: dict[str, Any]) -> str:
    period = env.get("billingPeriod")
    if isinstance(period, str):
        p = period.upper()
        if p.endswith("Y") or p in ("P12M",):
            return "year"
        return "month"
    od = item.get("offerDetails") if isinstance(item.get("offerDetails"), dict) else {}
    base = str(od.get("basePlanId") or item.get("productId") or "").lower()
    if any(k in base for k in ("year", "annual", "p1y", "12m")):
        return "year"
    return "month"


def _cancel_context(res: dict[str, Any]) -> tuple[str, str, str | None, Any]:
    ctx = res.get("canceledStateContext")
    if ctx is None:
        return "unknown", "customer", None, None
    if not isinstance(ctx, dict):
        raise IntakeError(f"{P}: resource.canceledStateContext must be an object.")
    members = [k for k in GOOGLE_CANCEL_CONTEXTS if k in ctx]
    unknown = [k for k in ctx if k not in GOOGLE_CANCEL_CONTEXTS]
    if unknown or len(members) != 1:
        raise IntakeError(
            f"{P}: resource.canceledStateContext must hold exactly one of "
            f"{sorted(GOOGLE_CANCEL_CONTEXTS)}; got {sorted(ctx)}."
        )
    m = members[0]
    reason, who = GOOGLE_CANCEL_CONTEXTS[m]
    cancel_time = None
    if m == "userInitiatedCancellation" and isinstance(ctx[m], dict):
        survey = ctx[m].get("cancelSurveyResult")
        if isinstance(survey, dict) and survey.get("reason") is not None:
            sr = survey["reason"]
            if not isinstance(sr, str) or sr not in GOOGLE_SURVEY_REASONS:
                raise IntakeError(
                    f"{P}: cancelSurveyResult.reason {sr!r} is unknown; expected one of "
                    f"{sorted(GOOGLE_SURVEY_REASONS)}."
                )
            reason = GOOGLE_SURVEY_REASONS[sr]
        cancel_time = ctx[m].get("cancelTime")
    tag = {
        "replacementCancellation": "replaced",
        "systemInitiatedCancellation": "system_cancel",
    }.get(m)
    return reason, who, tag, cancel_time


def normalize_google(body: bytes | str, **_: Any) -> Normalized:
    """Normalise one Google Play envelope ``{"notification": push, "resource": v2}``.

    Raises
    ------
    IntakeError
        Not an envelope, bad base64/JSON in ``message.data``, unknown
        notification code, missing resource, wrong types.
    """
    doc = parse_json_body(body, P)
    if not isinstance(doc, dict):
        raise IntakeError(f"{P}: body must be the JSON envelope object. Got {type(doc).__name__}.")
    if "notification" not in doc and "message" in doc:
        raise IntakeError(
            f"{P}: got a bare Pub/Sub push; expected the envelope "
            '{"notification": <push body>, "resource": <subscriptionsv2.get>}. '
            "Fix: fetch the subscription with the purchaseToken and wrap both (docs/intake.md)."
        )
    push = require(doc, "notification", dict, P)
    msg = require(push, "message", dict, P)
    mid = opt(msg, "messageId", str, P) or require(msg, "message_id", str, P)
    data_b64 = require(msg, "data", str, P)
    try:
        raw = base64.b64decode(data_b64, validate=True)
        rtdn = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):
        raise IntakeError(
            f"{P}: notification.message.data of message {mid} is not base64-encoded JSON."
        ) from None
    if not isinstance(rtdn, dict):
        raise IntakeError(f"{P}: decoded message.data must be a JSON object.")
    ts = from_unix_millis(require(rtdn, "eventTimeMillis", (str, int), P), P, "eventTimeMillis")
    # the hash covers the notification only: a Pub/Sub redelivery whose resource was
    # fetched later (newer state, another deliveryAttempt) is the same delivery
    key = {"messageId": mid, "rtdn": rtdn}
    if "testNotification" in rtdn:
        return Normalized(P, "google_play", mid, "testNotification", ts, source_doc=key)
    if "oneTimeProductNotification" in rtdn:
        return Normalized(P, "google_play", mid, "oneTimeProductNotification", ts, source_doc=key)
    voided = "voidedPurchaseNotification" in rtdn
    if voided:
        sn = require(rtdn, "voidedPurchaseNotification", dict, P)
        token = require(sn, "purchaseToken", str, P)
        name, et = "VOIDED_PURCHASE", "refunded"
        if sn.get("productType", 1) != 1:
            return Normalized(P, "google_play", mid, name, ts, source_doc=key)
    else:
        sn = require(rtdn, "subscriptionNotification", dict, P)
        ntype = require(sn, "notificationType", int, P)
        token = require(sn, "purchaseToken", str, P)
        if ntype not in GOOGLE_NOTIFICATION_TYPES:
            raise IntakeError(
                f"{P}: unknown notificationType {ntype} (message {mid}). Known codes: "
                f"{sorted(GOOGLE_NOTIFICATION_TYPES)} (14-16 and 21 are unassigned)."
            )
        name, et = GOOGLE_NOTIFICATION_TYPES[ntype]
    n = Normalized(P, "google_play", mid, name, ts, source_doc=key)
    res = require(doc, "resource", dict, P)
    sid = token_id(token)
    ext = res.get("externalAccountIdentifiers")
    cid = None
    if isinstance(ext, dict):
        cid = ext.get("obfuscatedExternalAccountId") or ext.get("externalAccountId")
    if not isinstance(cid, str) or not cid:
        cid = "google_play:" + sid[3:]
    state = require(res, "subscriptionState", str, P)
    if state not in _STATE:
        raise IntakeError(
            f"{P}: resource.subscriptionState {state!r}; expected one of {sorted(_STATE)}."
        )
    st: dict[str, Any] = {
        "subscription_id": sid,
        "customer_id": cid,
        "source": "google_play",
        "status": _STATE[state],
    }
    items = require(res, "lineItems", list, P)
    if not items or not isinstance(items[0], dict):
        raise IntakeError(f"{P}: resource.lineItems must hold at least one line item object.")
    item = items[0]
    pid = require(item, "productId", str, P)
    od = item.get("offerDetails") if isinstance(item.get("offerDetails"), dict) else {}
    plan_id = f"{pid}:{od['basePlanId']}" if isinstance(od.get("basePlanId"), str) else pid
    st["plan_id"] = plan_id
    st["plan_tier"] = pid
    amount = cur = None
    arp = item.get("autoRenewingPlan") if isinstance(item.get("autoRenewingPlan"), dict) else {}
    if arp.get("recurringPrice") is not None:
        amount, cur = _money(arp["recurringPrice"], "lineItems[0].autoRenewingPlan.recurringPrice")
        interval = _interval(doc, item)
        st.update(
            price=amount, currency=cur, billing_interval=interval, mrr=monthly_mrr(amount, interval)
        )
    if res.get("startTime"):
        st["started_at"] = from_iso(res["startTime"], P, "resource.startTime")
    expiry = (
        from_iso(item["expiryTime"], P, "lineItems[0].expiryTime")
        if item.get("expiryTime")
        else None
    )
    st["current_period_end"] = expiry
    reason, who, tag, cancel_time = _cancel_context(res)
    if state == "SUBSCRIPTION_STATE_ACTIVE":
        st.update(cancel_requested_at=None, cancel_reason=None, ended_at=None)
    elif res.get("canceledStateContext") is not None:
        st["cancel_reason"] = reason
        if cancel_time:
            st["cancel_requested_at"] = from_iso(cancel_time, P, "cancelTime")
    if isinstance(ext, dict) and isinstance(ext.get("obfuscatedExternalAccountId"), str):
        pass
    n.subscription = st
    n.customer = {"customer_id": cid}
    if isinstance(res.get("regionCode"), str) and len(res["regionCode"]) == 2:
        n.customer["country"] = res["regionCode"].upper()
    offer = od.get("offerId")
    if isinstance(offer, str):
        n.redeemed_codes = [offer]
    code_toks = [f"code:{c}" for c in n.redeemed_codes]
    if et is None:
        if name == "SUBSCRIPTION_RESTARTED":
            st.update(cancel_requested_at=None, cancel_reason=None)
        return n
    evid = f"google:{mid}"
    kw: dict[str, Any] = {"detail": detail_tokens(name, *code_toks)}
    when = ts
    if et in ("renewed", "subscribed", "payment_recovered") and amount is not None:
        kw.update(amount=amount, currency=cur)
    if et == "cancel_requested":
        kw.update(reason=reason, detail=detail_tokens(name, f"initiator:{who}", tag))
        st["cancel_requested_at"] = st.get("cancel_requested_at") or ts
        st.setdefault("cancel_reason", reason)
    elif et == "expired":
        when = min(expiry, ts) if expiry else ts
        kw.update(reason=reason, detail=detail_tokens(name, f"initiator:{who}", tag))
        st.update(status="expired", ended_at=when, cancel_reason=reason)
    elif et == "cancelled":  # revoked
        kw.update(reason="other", detail=detail_tokens(name, "initiator:merchant", "revoked"))
        st.update(status="cancelled", ended_at=ts, cancel_reason="other")
    elif et == "payment_failed":
        kw["detail"] = detail_tokens(name, "initiator:system")
    elif et == "refunded":
        kw["detail"] = detail_tokens(name, "voided")
    n.events.append(make_event(evid, when, cid, sid, "google_play", et, **kw))
    if et == "refunded" and state == "SUBSCRIPTION_STATE_EXPIRED":
        # the voided purchase ended access: an end of service requested by the customer
        n.events.append(
            make_event(
                f"{evid}:end",
                ts,
                cid,
                sid,
                "google_play",
                "expired",
                reason="other",
                detail=detail_tokens(name, "initiator:customer", "refund"),
            )
        )
        st.update(status="expired", ended_at=ts, cancel_reason="other")
    return n
