"""Provider cancellation reasons mapped to the contract's canonical reasons.

One table per provider; ``docs/intake.md`` prints the same tables. Each entry
maps a provider code to ``(canonical_reason, initiator)`` where ``initiator``
is ``customer`` (voluntary), ``system`` (involuntary: the billing system ended
it, e.g. a failed payment) or ``merchant`` (the business ended it). The
canonical reason ``payment_failed`` is the contract's only involuntary reason;
other system/merchant endings keep ``other`` and say so in the event's
``detail`` (``initiator:system``), so voluntary and involuntary never mix.

Invariants: every value is in :data:`winback_ml.data.contract.CANCEL_REASONS`;
an absent code maps to ``unknown`` (no answer given), an unlisted code to
``other`` (answer given, not one we know).
"""

from __future__ import annotations

import re

from winback_ml.data.contract import CANCEL_REASONS

__all__ = [
    "STRIPE_REASONS",
    "STRIPE_FEEDBACK",
    "CHARGEBEE_SYSTEM_REASONS",
    "RECURLY_EXPIRATION_REASONS",
    "APPLE_EXPIRED_SUBTYPES",
    "APPLE_EXPIRATION_INTENT",
    "GOOGLE_SURVEY_REASONS",
    "GOOGLE_CANCEL_CONTEXTS",
    "TEXT_KEYWORDS",
    "reason_from_text",
    "REASON_TABLES",
]

# --- Stripe -----------------------------------------------------------------
#: ``cancellation_details.reason`` -> (reason, initiator); ``cancellation_requested``
#: takes its reason from ``cancellation_details.feedback``.
STRIPE_REASONS: dict[str, tuple[str | None, str]] = {
    "cancellation_requested": (None, "customer"),
    "payment_failed": ("payment_failed", "system"),
    # the customer disputed a charge; Stripe ended the subscription. Not a
    # failed payment method: voluntary-ish, kept apart in detail.
    "payment_disputed": ("other", "customer"),
}
#: ``cancellation_details.feedback`` -> reason (the contract's list follows Stripe's).
STRIPE_FEEDBACK: dict[str, str] = {
    "too_expensive": "too_expensive",
    "missing_features": "missing_features",
    "switched_service": "switched_service",
    "unused": "unused",
    "customer_service": "customer_service",
    "too_complex": "too_complex",
    "low_quality": "low_quality",
    "other": "other",
}

# --- Chargebee ----------------------------------------------------------------
#: ``subscription.cancel_reason`` (system reasons only) -> (reason, initiator).
CHARGEBEE_SYSTEM_REASONS: dict[str, tuple[str, str]] = {
    "not_paid": ("payment_failed", "system"),
    "no_card": ("payment_failed", "system"),
    "fraud_review_failed": ("other", "system"),
    "non_compliant_eu_customer": ("other", "system"),
    "tax_calculation_failed": ("other", "system"),
    "currency_incompatible_with_gateway": ("other", "system"),
    "non_compliant_customer": ("other", "system"),
}
# ``cancel_reason_code`` is merchant-configured free text: see TEXT_KEYWORDS.

# --- Recurly ------------------------------------------------------------------
#: ``expiration_reason`` (free text; known values) -> (reason, initiator).
RECURLY_EXPIRATION_REASONS: dict[str, tuple[str, str]] = {
    "nonpayment": ("payment_failed", "system"),
    "non_payment": ("payment_failed", "system"),
    "past_due": ("payment_failed", "system"),
    "failed": ("payment_failed", "system"),
    "canceled": ("unknown", "customer"),
    "cancelled": ("unknown", "customer"),
    "nonrenewing": ("contract_ended", "customer"),
    "non_renewing": ("contract_ended", "customer"),
    "term_ended": ("contract_ended", "customer"),
    "tax_location_invalid": ("other", "system"),
    "terminated": ("other", "merchant"),
    "refunded": ("other", "merchant"),
}

# --- Apple App Store ------------------------------------------------------------
#: ``EXPIRED`` notification subtypes -> (reason, initiator).
APPLE_EXPIRED_SUBTYPES: dict[str, tuple[str, str]] = {
    "VOLUNTARY": ("unknown", "customer"),
    "BILLING_RETRY": ("payment_failed", "system"),
    "PRICE_INCREASE": ("too_expensive", "customer"),
    "PRODUCT_NOT_FOR_SALE": ("other", "merchant"),
}
#: renewal info ``expirationIntent`` -> (reason, initiator).
APPLE_EXPIRATION_INTENT: dict[int, tuple[str, str]] = {
    1: ("unknown", "customer"),
    2: ("payment_failed", "system"),
    3: ("too_expensive", "customer"),
    4: ("other", "merchant"),
    5: ("other", "customer"),
}

# --- Google Play ----------------------------------------------------------------
#: ``cancelSurveyResult.reason`` -> reason (voluntary).
GOOGLE_SURVEY_REASONS: dict[str, str] = {
    "CANCEL_SURVEY_REASON_UNSPECIFIED": "unknown",
    "CANCEL_SURVEY_REASON_NOT_ENOUGH_USAGE": "unused",
    "CANCEL_SURVEY_REASON_TECHNICAL_ISSUES": "low_quality",
    "CANCEL_SURVEY_REASON_COST_RELATED": "too_expensive",
    "CANCEL_SURVEY_REASON_FOUND_BETTER_APP": "switched_service",
    "CANCEL_SURVEY_REASON_OTHERS": "other",
}
#: ``canceledStateContext`` member -> (reason when no survey, initiator).
GOOGLE_CANCEL_CONTEXTS: dict[str, tuple[str, str]] = {
    "userInitiatedCancellation": ("unknown", "customer"),
    "systemInitiatedCancellation": ("payment_failed", "system"),
    "developerInitiatedCancellation": ("other", "merchant"),
    "replacementCancellation": ("other", "customer"),
}

# --- free text (Chargebee cancel_reason_code, CSV, Recurly unknown values) ---------
#: Ordered (pattern, reason): the first pattern found in the lower-cased text wins.
TEXT_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"payment|card|declin|dunning|not_paid|nonpayment|billing", "payment_failed"),
    (r"expens|price|cost|afford|budget|cheap", "too_expensive"),
    (r"feature|missing|lack|functional", "missing_features"),
    (r"competitor|switch|alternative|better_app|moved_to|another", "switched_service"),
    (r"unused|not_using|no_use|usage|don.?t_use|not_enough", "unused"),
    (r"support|service|customer_service", "customer_service"),
    (r"complex|difficult|confus|hard_to", "too_complex"),
    (r"quality|bug|technical|slow|broken|reliab", "low_quality"),
    (r"contract|term_end|end_of_term|project_ended|season", "contract_ended"),
    (r"accident|mistake|by_error|unintended", "accidental"),
)
_TEXT_RES = tuple((re.compile(p), r) for p, r in TEXT_KEYWORDS)


def reason_from_text(text: str | None) -> str:
    """Canonical reason of a free-text or merchant-configured reason code.

    A canonical reason passes through unchanged; empty text is ``unknown``;
    text that matches no keyword is ``other``.

    Examples
    --------
    >>> reason_from_text("Too Expensive")
    'too_expensive'
    >>> reason_from_text("switched to competitor")
    'switched_service'
    >>> reason_from_text(None)
    'unknown'
    """
    if text is None or not str(text).strip():
        return "unknown"
    t = re.sub(r"[\s\-]+", "_", str(text).strip().lower())
    if t in CANCEL_REASONS:
        return t
    for rx, reason in _TEXT_RES:
        if rx.search(t):
            return reason
    return "other"


#: All tables by provider, for the docs and for tests.
REASON_TABLES = {
    "stripe": {"cancellation_details.reason": STRIPE_REASONS, "feedback": STRIPE_FEEDBACK},
    "chargebee": {"cancel_reason": CHARGEBEE_SYSTEM_REASONS},
    "recurly": {"expiration_reason": RECURLY_EXPIRATION_REASONS},
    "apple": {
        "EXPIRED subtype": APPLE_EXPIRED_SUBTYPES,
        "expirationIntent": APPLE_EXPIRATION_INTENT,
    },
    "google": {"survey": GOOGLE_SURVEY_REASONS, "canceledStateContext": GOOGLE_CANCEL_CONTEXTS},
}
