"""One entry point over the provider normalizers.

:func:`normalize` turns one body of one provider into a checked
:class:`~winback_ml.intake._common.Normalized`; :func:`split_bodies` cuts a
file into bodies (a webhook file is one body; a CSV export is one body per
row). Both are pure: no store, no network, no clock except ``now`` for the
"not in the future" check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from winback_ml.exceptions import IntakeError
from winback_ml.intake._common import PROVIDERS, Normalized, check_normalized
from winback_ml.intake.apple import normalize_apple
from winback_ml.intake.chargebee import normalize_chargebee
from winback_ml.intake.csv_export import normalize_csv, split_csv
from winback_ml.intake.google import normalize_google
from winback_ml.intake.recurly import normalize_recurly
from winback_ml.intake.stripe import normalize_stripe

__all__ = ["normalize", "split_bodies", "NORMALIZERS", "check_provider"]

NORMALIZERS: dict[str, Callable[..., Normalized]] = {
    "stripe": normalize_stripe,
    "chargebee": normalize_chargebee,
    "recurly": normalize_recurly,
    "apple": normalize_apple,
    "google": normalize_google,
    "csv": normalize_csv,
}

_ALIASES = {"app_store": "apple", "google_play": "google", "manual": "csv"}


def check_provider(provider: str) -> str:
    """Canonical provider name; raise :class:`IntakeError` for an unknown one."""
    p = _ALIASES.get(provider, provider)
    if p not in PROVIDERS:
        raise IntakeError(
            f"Unknown provider {provider!r}. Expected one of {list(PROVIDERS)}. "
            "Fix: pass the provider the webhook came from."
        )
    return p


def normalize(
    provider: str,
    body: bytes | str,
    *,
    apple_root: Any = None,
    now: datetime | None = None,
) -> Normalized:
    """Normalise one body of ``provider`` and run the source-independent checks.

    Parameters
    ----------
    provider : {'stripe', 'chargebee', 'recurly', 'apple', 'google', 'csv'}
    body : bytes or str
        One webhook body exactly as sent (Recurly/Google: the documented
        envelope; CSV: a header and one row, see :func:`split_bodies`).
    apple_root : optional
        Apple's root certificate; verifies Apple signatures when given.
    now : datetime, optional
        "Now" for the plausible-timestamp check (tz-naive UTC).

    Returns
    -------
    Normalized

    Raises
    ------
    IntakeError
        With a message naming the field, what was expected and what came.

    Examples
    --------
    >>> from winback_ml.intake.samples import stripe_event, stripe_subscription
    >>> body = stripe_event("customer.subscription.deleted", stripe_subscription(status="canceled"))
    >>> n = normalize("stripe", body)
    >>> [e["event_type"] for e in n.events], n.subscription["status"]
    (['cancelled'], 'cancelled')
    """
    p = check_provider(provider)
    try:
        n = NORMALIZERS[p](body, apple_root=apple_root)
    except IntakeError:
        raise
    except (RecursionError, MemoryError) as e:  # pathological nesting
        raise IntakeError(
            f"{p}: payload too deeply nested or too large ({type(e).__name__})."
        ) from None
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        ZeroDivisionError,
    ) as e:
        # a shape no explicit check anticipated: still a precise, non-crashing rejection
        raise IntakeError(
            f"{p}: payload does not follow the provider's documented schema "
            f"({type(e).__name__}: {e}). Fix: send the body exactly as the provider sent it."
        ) from None
    return check_normalized(n, now)


def split_bodies(provider: str, data: bytes) -> list[tuple[str, bytes]]:
    """Cut one file into bodies: ``[(label, body)]``.

    A webhook file is one body (label ``""``); a CSV export gives one body per
    data row, labelled ``line <n>``.
    """
    p = check_provider(provider)
    if p == "csv":
        return [(f"line {ln}", b) for ln, b in split_csv(data)]
    return [("", data)]
