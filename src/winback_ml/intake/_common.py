"""Shared pieces of the provider normalizers: the result type, units, checks.

Invariants
----------
* Every timestamp a normalizer returns is a tz-naive ``datetime`` in UTC,
  truncated to microseconds.
* Every amount is a ``float`` in major units of its ``currency`` (29.00, not
  2900); refunds are negative, charges positive, "no money moved" is ``None``.
* A normalizer is a pure function of the body bytes (and of the optional
  verification material): same body, same :class:`Normalized`, so re-delivery
  is recognised by content and out-of-order delivery converges.
* A payload that cannot be normalised raises
  :class:`~winback_ml.exceptions.IntakeError` (or its subclass
  :class:`~winback_ml.exceptions.SignatureError`) whose message says where in
  the payload the problem is, what was expected and what came.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from winback_ml.data.contract import CANCEL_REASONS, EVENT_TYPES, SOURCES
from winback_ml.exceptions import IntakeError

__all__ = [
    "PROVIDERS",
    "PROVIDER_SOURCE",
    "MAX_BODY_BYTES",
    "EARLIEST_PLAUSIBLE",
    "FUTURE_TOLERANCE",
    "Normalized",
    "parse_json_body",
    "content_hash",
    "minor_to_major",
    "from_unix_seconds",
    "from_unix_millis",
    "from_iso",
    "require",
    "opt",
    "make_event",
    "detail_tokens",
    "check_normalized",
    "monthly_mrr",
    "timestamped_hmac",
    "parse_signature_stamp",
    "signature_matches",
]

#: Provider names accepted by :func:`winback_ml.intake.normalize` and the CLI.
PROVIDERS = ("stripe", "chargebee", "recurly", "apple", "google", "csv")

#: Contract ``source`` of each provider (CSV rows carry their own source).
PROVIDER_SOURCE = {
    "stripe": "stripe",
    "chargebee": "chargebee",
    "recurly": "recurly",
    "apple": "app_store",
    "google": "google_play",
    "csv": "manual",
}

#: Largest body accepted (bytes). Providers send a few KiB; Stripe's events
#: stay well under 256 KiB. Larger bodies are refused (HTTP 413) or
#: dead-lettered with their first 64 KiB kept.
MAX_BODY_BYTES = 1_048_576

#: Timestamps before this are implausible for a billing event.
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1)
#: Timestamps later than "now" plus this are implausible (clock skew allowance).
FUTURE_TOLERANCE = timedelta(days=1)

# ISO 4217 currencies whose minor unit is not 1/100 (Stripe's and Chargebee's lists).
_ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF ISK".split()
)
_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND IQD LYD".split())


@dataclass
class Normalized:
    """What one provider payload means in contract terms.

    Attributes
    ----------
    provider : str
        One of :data:`PROVIDERS`.
    source : str
        Contract ``source`` (``stripe`` ... ``google_play``, ``manual``).
    delivery_id : str
        The provider's idempotency key of the delivery (Stripe event id,
        Google ``messageId``, Apple ``notificationUUID``, ...).
    provider_type : str
        The provider's own event type (``customer.subscription.deleted``, ...).
    occurred_at : datetime
        When the provider says it happened (tz-naive UTC).
    events : list of dict
        Contract ``events`` rows (may be empty for informational payloads).
    subscription : dict or None
        Snapshot of the subscription's state as of ``occurred_at``: only the
        keys the payload knows are present; a present ``None`` means "known to
        be empty" (for example ``cancel_requested_at`` after a cancel was undone).
    customer : dict or None
        What the payload says about the customer (``customer_id``, ``email``,
        opt-ins, ...); PII stays in the store, never in logs.
    verification : str
        ``verified`` (signature checked), ``unverified`` (could not be checked,
        e.g. Apple without a root certificate) or ``none`` (provider has no
        body signature).
    redeemed_codes : list of str
        Coupon / promotion / offer codes the payload shows as redeemed.
    content_hash : str
        SHA-256 of the canonical JSON of the body (key order and spacing
        ignored): equal for re-deliveries. Computed on first use from
        ``source_doc`` (the parsed body), so pure normalisation does not pay for it.
    """

    provider: str
    source: str
    delivery_id: str
    provider_type: str
    occurred_at: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    subscription: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    verification: str = "none"
    redeemed_codes: list[str] = field(default_factory=list)
    source_doc: Any = field(default=None, repr=False, compare=False)
    _hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of the parsed body (cached)."""
        if self._hash is None:
            self._hash = content_hash(self.source_doc)
        return self._hash

    @property
    def subscription_id(self) -> str | None:
        """Subscription the payload is about, if any."""
        if self.subscription and self.subscription.get("subscription_id"):
            return self.subscription["subscription_id"]
        for e in self.events:
            return e["subscription_id"]
        return None


def parse_json_body(body: bytes | str, provider: str) -> Any:
    """Decode a JSON body or raise an :class:`IntakeError` naming the position."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if len(body) > MAX_BODY_BYTES:
        raise IntakeError(
            f"{provider}: body is {len(body)} bytes; expected at most {MAX_BODY_BYTES} "
            "(MAX_BODY_BYTES). Fix: send one webhook event per body."
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IntakeError(
            f"{provider}: body is not UTF-8 (byte {e.start}). Expected a UTF-8 JSON document. "
            "Fix: send the body exactly as the provider delivered it."
        ) from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "nesting too deep"
        pos = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise IntakeError(
            f"{provider}: malformed JSON{pos}: {msg}. Expected one JSON object. "
            "Fix: send the body exactly as the provider delivered it."
        ) from None


def content_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON form of ``obj`` (key order and spacing ignored)."""
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _where(provider: str, path: str) -> str:
    return f"{provider}: field '{path}'"


_PARTS: dict[str, tuple[str, ...]] = {}


def require(obj: Any, path: str, kind: type | tuple[type, ...], provider: str) -> Any:
    """Return ``obj[a][b]...`` for a dotted ``path``; raise if absent or of the wrong type."""
    parts = _PARTS.get(path)
    if parts is None:
        parts = _PARTS[path] = tuple(path.split("."))
    cur = obj
    for part in parts:  # fast path; any doubt goes to the checking path below
        if type(cur) is not dict:
            return _require_checked(obj, path, kind, provider)
        cur = cur.get(part)
        if cur is None:
            return _require_checked(obj, path, kind, provider)
    t = type(cur)
    if t is str:
        if kind is str and cur and not cur.isspace():
            return cur
    elif t is not bool and isinstance(cur, kind):
        return cur
    return _require_checked(obj, path, kind, provider)


def _require_checked(obj: Any, path: str, kind: type | tuple[type, ...], provider: str) -> Any:
    cur = obj
    done: list[str] = []
    for part in path.split("."):
        if not isinstance(cur, dict):
            where = ".".join(done) or "<body>"
            raise IntakeError(
                f"{provider}: field '{where}' must be a JSON object holding '{part}'. "
                f"Got {type(cur).__name__} instead. Fix: send the provider's payload unchanged."
            )
        if part not in cur or cur[part] is None:
            raise IntakeError(
                f"{_where(provider, path)} is missing. Expected {_kind_name(kind)}. "
                "Fix: send the provider's complete payload (for thin webhooks, the documented envelope)."
            )
        cur = cur[part]
        done.append(part)
    if isinstance(cur, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise IntakeError(
            f"{_where(provider, path)} must be {_kind_name(kind)}. Got {cur!r} instead."
        )
    if not isinstance(cur, kind):
        raise IntakeError(
            f"{_where(provider, path)} must be {_kind_name(kind)}. "
            f"Got {type(cur).__name__} {_short(cur)} instead."
        )
    if isinstance(cur, str) and kind is str and not cur.strip():
        raise IntakeError(f"{_where(provider, path)} must be a non-empty string. Got ''.")
    return cur


def opt(obj: Any, path: str, kind: type | tuple[type, ...], provider: str) -> Any:
    """Like :func:`require`, but ``None`` when the field (or a parent) is absent or null."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or cur.get(part) is None:
            return None
        cur = cur[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(cur, bool) and bool not in kinds) or not isinstance(cur, kind):
        raise IntakeError(
            f"{_where(provider, path)} must be {_kind_name(kind)} or null. "
            f"Got {type(cur).__name__} {_short(cur)} instead."
        )
    return cur


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        dict: "an object",
        list: "an array",
        bool: "a boolean",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_PII_LIKE = re.compile(r"@|\+?\d[\d\s().-]{6,}\d")


_PII_IN_TEXT = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+|\+?\d[\d\s().-]{6,}\d")


def redact_text(text: str) -> str:
    """Free text (an exception message) with e-mail addresses and phone-like numbers removed."""

    def sub(m: re.Match[str]) -> str:
        t = m.group(0)
        return "<redacted>" if "@" in t or sum(ch.isdigit() for ch in t) >= 7 else t

    return _PII_IN_TEXT.sub(sub, text)


def _short(v: Any) -> str:
    """A value for an error message: short, and never what could be PII (PII stays out of logs)."""
    if isinstance(v, (dict, list)):
        return f"<{type(v).__name__} of {len(v)}>"
    if isinstance(v, str) and _PII_LIKE.search(v):
        return "'<redacted>'"
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def minor_to_major(amount: int, currency: str, provider: str, path: str) -> float:
    """Integer minor units (Stripe, Chargebee) to a float in major units."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise IntakeError(
            f"{_where(provider, path)} must be an integer amount in minor units. "
            f"Got {type(amount).__name__} {_short(amount)} instead."
        )
    cur = currency.upper()
    if cur in _ZERO_DECIMAL:
        return float(amount)
    if cur in _THREE_DECIMAL:
        return amount / 1000.0
    return amount / 100.0


def _plausible(ts: datetime, provider: str, path: str) -> datetime:
    if ts < EARLIEST_PLAUSIBLE:
        raise IntakeError(
            f"{_where(provider, path)} is {ts.isoformat()}, before {EARLIEST_PLAUSIBLE.date()}: "
            "implausible for a billing event. Fix: check the unit (seconds vs milliseconds)."
        )
    return ts


def from_unix_seconds(v: Any, provider: str, path: str) -> datetime:
    """Unix seconds (int) to tz-naive UTC."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise IntakeError(
            f"{_where(provider, path)} must be unix seconds (an integer). "
            f"Got {type(v).__name__} {_short(v)} instead."
        )
    if abs(v) > 10**11:
        raise IntakeError(
            f"{_where(provider, path)} is {v}: too large for unix seconds (milliseconds?). "
            "Fix: send the provider's timestamp unchanged."
        )
    ts = datetime(1970, 1, 1) + timedelta(seconds=v)
    return _plausible(ts, provider, path)


def from_unix_millis(v: Any, provider: str, path: str) -> datetime:
    """Unix milliseconds (int, or a decimal string as Google sends) to tz-naive UTC."""
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise IntakeError(
            f"{_where(provider, path)} must be unix milliseconds. "
            f"Got {type(v).__name__} {_short(v)} instead."
        )
    if abs(v) > 10**14:
        raise IntakeError(f"{_where(provider, path)} is {v}: too large for unix milliseconds.")
    ts = datetime(1970, 1, 1) + timedelta(milliseconds=v)
    return _plausible(ts, provider, path)


def from_iso(v: Any, provider: str, path: str) -> datetime:
    """ISO-8601 / RFC 3339 string to tz-naive UTC (naive input is taken as UTC)."""
    if not isinstance(v, str):
        raise IntakeError(
            f"{_where(provider, path)} must be an ISO-8601 timestamp string. "
            f"Got {type(v).__name__} {_short(v)} instead."
        )
    s = v.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # Python < 3.11 parses at most 6 fractional digits; RFC 3339 allows nanoseconds.
    if "." in s:
        head, _, tail = s.partition(".")
        digits = ""
        i = 0
        while i < len(tail) and tail[i].isdigit():
            digits += tail[i]
            i += 1
        s = head + "." + (digits[:6] or "0") + tail[i:]
    try:
        ts = datetime.fromisoformat(s)
    except ValueError:
        raise IntakeError(
            f"{_where(provider, path)} is {_short(v)}: not an ISO-8601 timestamp. "
            "Expected e.g. '2025-06-01T12:00:00Z'."
        ) from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return _plausible(ts, provider, path)


def monthly_mrr(price: float | None, interval: str | None) -> float | None:
    """Monthly recurring revenue of a price per ``interval`` (``month``/``year``)."""
    if price is None or interval is None:
        return None
    return round(price / 12.0, 2) if interval == "year" else round(float(price), 2)


def make_event(
    event_id: str,
    occurred_at: datetime,
    customer_id: str,
    subscription_id: str,
    source: str,
    event_type: str,
    *,
    amount: float | None = None,
    currency: str | None = None,
    reason: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """One contract ``events`` row."""
    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "source": source,
        "event_type": event_type,
        "amount": None if amount is None else round(float(amount), 6),
        "currency": currency.upper() if currency else None,
        "reason": reason,
        "detail": detail,
    }


def detail_tokens(*tokens: str | None) -> str | None:
    """Join detail tokens (``provider_type;initiator:customer;code:X``); ``None`` when empty."""
    toks = [t for t in tokens if t]
    return ";".join(toks) if toks else None


_EVENT_TYPES = frozenset(EVENT_TYPES)
_CANCEL_REASONS = frozenset(CANCEL_REASONS)


def check_normalized(n: Normalized, now: datetime | None = None) -> Normalized:
    """Source-independent validation of a normalised payload; raises :class:`IntakeError`.

    Checks: ids present, enums valid, amount signs (refunds <= 0, charges >= 0),
    a 3-letter currency on every money event, plausible timestamps (after
    2000-01-01, not later than ``now`` + 1 day), subscription snapshot values.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    latest = now + FUTURE_TOLERANCE
    p = n.provider
    if n.source not in SOURCES:
        raise IntakeError(f"{p}: source {n.source!r} is not one of {list(SOURCES)}.")
    if not n.delivery_id:
        raise IntakeError(f"{p}: the payload has no delivery id; cannot de-duplicate it.")
    seen: set[str] = set()
    for e in n.events:
        eid = e["event_id"]
        if not eid or eid in seen:
            raise IntakeError(
                f"{p} event {eid!r}: event_id is empty or repeated within the payload."
            )
        seen.add(eid)
        for k in ("customer_id", "subscription_id"):
            v = e[k]
            if type(v) is not str or not v or v.isspace():
                raise IntakeError(
                    f"{p} event {eid!r}: {k} is missing. Expected a non-empty id. "
                    "Fix: send the provider's complete payload."
                )
        et = e["event_type"]
        if et not in _EVENT_TYPES:
            raise IntakeError(f"{p} event {eid!r}: event_type {et!r} not in {list(EVENT_TYPES)}.")
        if e["reason"] is not None and e["reason"] not in _CANCEL_REASONS:
            raise IntakeError(
                f"{p} event {eid!r}: reason {e['reason']!r} not in {list(CANCEL_REASONS)}."
            )
        ts = e["occurred_at"]
        if ts > latest:
            raise IntakeError(
                f"{p} event {eid!r}: occurred_at {ts.isoformat()} is later than now "
                f"({now.isoformat()}) plus 1 day: implausible. Fix: check the timestamp unit and "
                "the sender's clock."
            )
        if ts < EARLIEST_PLAUSIBLE:
            raise IntakeError(
                f"{p} event {eid!r}: occurred_at {ts.isoformat()} is before 2000: implausible."
            )
        amt = e["amount"]
        cur = e["currency"]
        if amt is not None:
            if not math.isfinite(amt):
                raise IntakeError(f"{p} event {eid!r}: amount {amt!r} is not a finite number.")
            if cur is None:
                raise IntakeError(
                    f"{p} event {eid!r}: amount {amt} has no currency. Expected an ISO 4217 code "
                    "on every money event. Fix: include the currency of the charge."
                )
            if et == "refunded":
                if amt > 0:
                    raise IntakeError(
                        f"{p} event {eid!r}: a refund must carry a negative or zero amount. Got {amt}."
                    )
            elif amt < 0:
                raise IntakeError(
                    f"{p} event {eid!r}: a {et} event must carry a non-negative amount (only "
                    f"refunds are negative). Got {amt}."
                )
        if cur is not None and (len(cur) != 3 or not cur.isalpha() or not cur.isascii()):
            raise IntakeError(
                f"{p} event {eid!r}: currency {_short(cur)} is not an ISO 4217 code (3 letters)."
            )
    s = n.subscription
    if s is not None:
        if not s.get("subscription_id"):
            raise IntakeError(f"{p}: the subscription snapshot has no subscription_id.")
        price = s.get("price")
        if price is not None and (not math.isfinite(price) or price < 0):
            raise IntakeError(
                f"{p} subscription {s['subscription_id']!r}: price must be >= 0. Got {price}."
            )
        cur = s.get("currency")
        if cur is not None and (len(cur) != 3 or not cur.isalpha() or not cur.isascii()):
            raise IntakeError(
                f"{p} subscription {s['subscription_id']!r}: currency {_short(cur)} is not ISO 4217."
            )
        for k in ("started_at", "current_period_end", "cancel_requested_at", "ended_at"):
            v = s.get(k)
            if v is not None and v > latest + timedelta(days=3700) and k == "current_period_end":
                raise IntakeError(
                    f"{p} subscription {s['subscription_id']!r}: {k} {v.isoformat()} is "
                    "more than 10 years ahead: implausible."
                )
            if v is not None and k != "current_period_end" and v > latest:
                raise IntakeError(
                    f"{p} subscription {s['subscription_id']!r}: {k} {v.isoformat()} lies in "
                    "the future: implausible. Fix: check the timestamp unit."
                )
    return n


# ----------------------------------------------------------------- timestamped HMAC signatures
def timestamped_hmac(secret: str, stamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"{stamp}.{raw body}"``: the scheme of Stripe and Recurly webhooks."""
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def parse_signature_stamp(text: str) -> int | None:
    """A signature header's timestamp, or None unless it is 1-16 ASCII digits.

    ``str.isdigit``/``int`` also read '²', '١٢' or '+12', and a huge value
    overflows the float arithmetic of a replay check: a forged header must be a
    signature error, not an internal one.
    """
    text = text.strip()
    ok = text.isascii() and text.isdigit() and len(text) <= 16
    return int(text) if ok else None


def signature_matches(expected_hex: str, candidates: list[str]) -> bool:
    """True when one candidate equals ``expected_hex`` (constant-time, case-insensitive).

    Compares bytes: ``hmac.compare_digest`` raises TypeError on non-ASCII str.
    """
    want = expected_hex.lower().encode()
    return any(
        hmac.compare_digest(want, c.strip().lower().encode("utf-8", "surrogateescape"))
        for c in candidates
    )
