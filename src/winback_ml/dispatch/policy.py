"""Stop and respect: stop rules, suppression, consent, quiet hours, unsubscribe and STOP.

Invariants

* A stop (reactivation, code redeemed, unsubscribe, complaint, bounce,
  consent withdrawn, SMS STOP) cancels the *pending* outbox rows it covers
  in the same transaction that records it; a message already handed to a
  channel is not recalled.
* Stop rules read only events at or before ``now`` (no future data).
* Quiet hours are in the customer's IANA time zone (fallback: the settings'
  ``default_timezone``); a message due inside them is deferred to their end,
  never dropped.
* Unsubscribe tokens are ``base64url(payload).base64url(HMAC-SHA256[:16])``;
  the secret comes from ``WINBACK_UNSUBSCRIBE_SECRET`` or, when unset, a
  random secret created once and kept in the store (``dispatch_kv``).
* Suppressed addresses are stored as SHA-256 hashes, never in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from winback_ml.dispatch._util import address_hash, utcnow
from winback_ml.dispatch.schema import DispatchDB, codes, enrolments, kv, outbox, suppression
from winback_ml.exceptions import DispatchError

__all__ = [
    "REACTIVATION_EVENTS",
    "FEEDBACK_KINDS",
    "STOP_KEYWORDS",
    "START_KEYWORDS",
    "get_unsubscribe_secret",
    "make_unsubscribe_token",
    "verify_unsubscribe_token",
    "unsubscribe",
    "record_feedback",
    "handle_inbound_sms",
    "cancel_pending",
    "stop_enrolments",
    "apply_stop_rules",
    "next_allowed_time",
    "in_quiet_hours",
]

#: Events that mean the customer is back (after the lapse the enrolment is about).
REACTIVATION_EVENTS = ("reactivated", "subscribed", "payment_recovered", "renewed")
#: What a channel or the customer can tell us, and which channels it closes.
FEEDBACK_KINDS = ("unsubscribe", "complaint", "bounce", "consent_withdrawn", "stop", "manual")
STOP_KEYWORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "STOPP",
        "ARRET",
        "ARRÊT",
        "BAJA",
        "ALTO",
    }
)
START_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})

_SECRET_KEY = "unsubscribe_secret"
_SIG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits


# --------------------------------------------------------------------------- tokens
def get_unsubscribe_secret(db: DispatchDB) -> bytes:
    """The HMAC secret: ``WINBACK_UNSUBSCRIBE_SECRET`` or one kept in the store (created once)."""
    env = os.environ.get("WINBACK_UNSUBSCRIBE_SECRET")
    if env:
        return env.encode()
    db.create_schema()
    db.insert_ignore(kv, [{"key": _SECRET_KEY, "value": secrets.token_hex(32)}])
    with db.engine.connect() as conn:
        value = conn.execute(sa.select(kv.c.value).where(kv.c.key == _SECRET_KEY)).scalar_one()
    return value.encode()


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def make_unsubscribe_token(
    secret: bytes, customer_id: str, channel: str = "email", issued_at: datetime | None = None
) -> str:
    """A signed token naming the customer and the channel to unsubscribe from.

    Examples
    --------
    >>> t = make_unsubscribe_token(b"k", "c1", "email", datetime(2026, 1, 1))
    >>> verify_unsubscribe_token(t, b"k")
    ('c1', 'email')
    """
    issued = issued_at or utcnow()
    if issued.tzinfo is None:  # naive means UTC here; .timestamp() would read it as local time
        issued = issued.replace(tzinfo=UTC)
    ts = int(issued.timestamp())
    payload = _b64(json.dumps([customer_id, channel, ts], separators=(",", ":")).encode())
    sig = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:_SIG_BYTES])
    return f"{payload}.{sig}"


def verify_unsubscribe_token(
    token: str, secret: bytes, *, max_age_days: float | None = None, now: datetime | None = None
) -> tuple[str, str]:
    """Check a token's signature (constant time) and age; return ``(customer_id, channel)``.

    Raises
    ------
    DispatchError
        The token is malformed, its signature does not verify, or it is too old.
    """
    try:
        payload, sig = str(token).split(".", 1)
        expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:_SIG_BYTES])
    except ValueError as e:
        raise DispatchError(
            "The unsubscribe token is malformed: expected '<payload>.<signature>'."
        ) from e
    # bytes, not str: compare_digest raises TypeError on a non-ASCII str (a mangled link)
    if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogateescape")):
        raise DispatchError(
            "The unsubscribe token's signature does not verify (tampered, or another secret)."
        )
    try:
        customer_id, channel, ts = json.loads(_unb64(payload))
    except (ValueError, TypeError) as e:
        raise DispatchError("The unsubscribe token's payload is not readable.") from e
    if max_age_days is not None:
        age = (
            (now or utcnow()) - datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)
        ).total_seconds() / 86400
        if age > max_age_days:
            raise DispatchError(
                f"The unsubscribe token is {age:.0f} days old; the limit is {max_age_days}."
            )
    return str(customer_id), str(channel)


# --------------------------------------------------------------------------- stops
def cancel_pending(
    conn: sa.Connection,
    *,
    customer_ids: Iterable[str] | None = None,
    enrolment_ids: Iterable[str] | None = None,
    channel: str = "*",
    reason: str,
    now: datetime,
) -> int:
    """Cancel pending/claimed rows (of one channel, or ``*``) inside the caller's transaction."""
    q = outbox.update().where(outbox.c.state.in_(("pending", "claimed")))
    if customer_ids is not None:
        q = q.where(outbox.c.customer_id.in_(list(customer_ids)))
    if enrolment_ids is not None:
        q = q.where(outbox.c.enrolment_id.in_(list(enrolment_ids)))
    if channel != "*":
        q = q.where(outbox.c.channel == channel)
    res = conn.execute(
        q.values(
            state="cancelled", last_error=reason, lease_owner=None, lease_until=None, updated_at=now
        )
    )
    return res.rowcount or 0


def stop_enrolments(
    conn: sa.Connection, enrolment_ids: list[str], reason: str, now: datetime
) -> int:
    """Stop active enrolments and cancel their pending steps (inside the caller's transaction)."""
    n = 0
    for i in range(0, len(enrolment_ids), 5000):
        chunk = enrolment_ids[i : i + 5000]
        conn.execute(
            enrolments.update()
            .where(enrolments.c.enrolment_id.in_(chunk), enrolments.c.status == "active")
            .values(status="stopped", stopped_at=now, stop_reason=reason)
        )
        n += cancel_pending(conn, enrolment_ids=chunk, reason=reason, now=now)
    return n


def apply_stop_rules(db: DispatchDB, now: datetime) -> dict[str, int]:
    """Stop enrolments whose customer came back or redeemed the code, and honour suppressions.

    Reads events with ``occurred_at <= now`` only; every recorded suppression
    counts, whatever its time (an opt-out is never undone by a logical ``now``).
    Returns counts of stopped enrolments and cancelled messages by reason.
    """
    db.create_schema()
    ev = db.contract("events")
    out = {"reactivated": 0, "code_redeemed": 0, "suppressed": 0, "cancelled_messages": 0}
    with db.engine.begin() as conn:
        active = dict(
            conn.execute(
                sa.select(enrolments.c.customer_id, sa.func.min(enrolments.c.lapsed_at))
                .where(enrolments.c.status == "active")
                .group_by(enrolments.c.customer_id)
            ).all()
        )
        ids: list[str] = []
        if active:
            # one pass over the events (no join per enrolment): the latest return of each
            # customer since the earliest active lapse, at or before now
            since = min(active.values())
            latest = conn.execute(
                sa.select(ev.c.customer_id, sa.func.max(ev.c.occurred_at))
                .where(
                    ev.c.event_type.in_(REACTIVATION_EVENTS),
                    ev.c.occurred_at > since,
                    ev.c.occurred_at <= now,
                )
                .group_by(ev.c.customer_id)
            ).all()
            back = [cid for cid, t in latest if cid in active and t > active[cid]]
            for k in range(0, len(back), 5000):
                ids += list(
                    conn.execute(
                        sa.select(enrolments.c.enrolment_id).where(
                            enrolments.c.status == "active",
                            enrolments.c.customer_id.in_(back[k : k + 5000]),
                        )
                    ).scalars()
                )
        out["reactivated"] = len(ids)
        out["cancelled_messages"] += stop_enrolments(conn, ids, "reactivated", now)
        redeemed = list(
            conn.execute(
                sa.select(enrolments.c.enrolment_id)
                .join(codes, codes.c.enrolment_id == enrolments.c.enrolment_id)
                .where(
                    enrolments.c.status == "active",
                    codes.c.redeemed_at.is_not(None),
                    codes.c.redeemed_at <= now,
                )
            ).scalars()
        )
        out["code_redeemed"] = len(redeemed)
        out["cancelled_messages"] += stop_enrolments(conn, redeemed, "code redeemed", now)
        # suppressions recorded before the rows existed (record_feedback cancels what exists)
        sup = (
            sa.select(suppression.c.id)
            .where(
                suppression.c.customer_id == outbox.c.customer_id,
                sa.or_(suppression.c.channel == "*", suppression.c.channel == outbox.c.channel),
                # every recorded opt-out counts, whatever its time: the web endpoint
                # records at wall-clock time, a tick may run at an earlier logical `now`
            )
            .exists()
        )
        res = conn.execute(
            outbox.update()
            .where(outbox.c.state == "pending", sup)
            .values(state="cancelled", last_error="suppressed", updated_at=now)
        )
        out["suppressed"] = res.rowcount or 0
        out["cancelled_messages"] += out["suppressed"]
    return out


def record_feedback(
    db: DispatchDB,
    kind: str,
    *,
    customer_id: str | None = None,
    address: str | None = None,
    channel: str = "email",
    at: datetime | None = None,
    detail: str | None = None,
) -> int:
    """Record an unsubscribe, complaint, bounce, consent withdrawal or STOP; cancel what it covers.

    A complaint closes every channel (``*``); the others close ``channel``.
    ``address`` (for bounces reported by address) is stored as a hash.
    Returns the number of pending messages cancelled.
    """
    if kind not in FEEDBACK_KINDS:
        raise DispatchError(f"kind must be one of {FEEDBACK_KINDS}. Got {kind!r} instead.")
    if customer_id is None and address is None:
        raise DispatchError("record_feedback needs a customer_id or an address. Got neither.")
    db.create_schema()
    at = at or utcnow()
    ch = "*" if kind == "complaint" else channel
    with db.engine.begin() as conn:
        conn.execute(
            suppression.insert(),
            [
                {
                    "customer_id": customer_id,
                    "address_hash": address_hash(address) if address else None,
                    "channel": ch,
                    "reason": kind,
                    "created_at": at,
                    "detail": detail,
                }
            ],
        )
        if customer_id is None:
            return 0
        return cancel_pending(
            conn, customer_ids=[customer_id], channel=ch, reason=f"suppressed: {kind}", now=at
        )


def unsubscribe(db: DispatchDB, token: str, *, at: datetime | None = None) -> str:
    """Verify an unsubscribe token, suppress its channel for that customer; return the customer id."""
    customer_id, channel = verify_unsubscribe_token(token, get_unsubscribe_secret(db))
    record_feedback(db, "unsubscribe", customer_id=customer_id, channel=channel, at=at)
    return customer_id


def handle_inbound_sms(
    db: DispatchDB, from_number: str, body: str, *, at: datetime | None = None
) -> str | None:
    """Handle an inbound SMS: ``STOP`` (and synonyms) withdraws SMS consent, ``START`` restores it.

    Returns the reply to send back (carriers expect a confirmation), or None
    when the message is neither. An unknown number is still suppressed (by hash).
    """
    words = (body or "").split()  # any whitespace: "STOP\nthanks" is a STOP too
    word = words[0].upper().strip(".!?,;:") if words else ""
    if word not in STOP_KEYWORDS and word not in START_KEYWORDS:
        return None
    db.create_schema()
    at = at or utcnow()
    cust = db.contract("customers")
    number = (from_number or "").replace(" ", "")
    with db.engine.connect() as conn:
        ids = list(
            conn.execute(sa.select(cust.c.customer_id).where(cust.c.phone == number)).scalars()
        )
    if word in START_KEYWORDS:
        with db.engine.begin() as conn:
            conn.execute(
                suppression.delete().where(
                    suppression.c.reason == "stop",
                    sa.or_(
                        suppression.c.customer_id.in_(ids),
                        suppression.c.address_hash == address_hash(number),
                    ),
                )
            )
        return "You are subscribed again. Reply STOP to opt out."
    if ids:
        for cid in ids:
            record_feedback(
                db,
                "stop",
                customer_id=cid,
                address=number,
                channel="sms",
                at=at,
                detail="inbound SMS",
            )
    else:
        record_feedback(
            db, "stop", address=number, channel="sms", at=at, detail="inbound SMS, unknown number"
        )
    return "You are unsubscribed and will receive no more messages. Reply START to resubscribe."


# --------------------------------------------------------------------------- quiet hours
def _parse_hm(s: str) -> time:
    h, m = str(s).split(":")
    return time(int(h), int(m))


def _zone(tz: str | None, default: str) -> ZoneInfo:
    for name in (tz, default, "UTC"):
        if name:
            try:
                return ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")  # pragma: no cover


def in_quiet_hours(
    now: datetime, tz: str | None, quiet: dict[str, str] | None, default_tz: str = "UTC"
) -> bool:
    """True when naive-UTC ``now`` falls in the quiet window of time zone ``tz``."""
    return next_allowed_time(now, tz, quiet, default_tz) != now


def next_allowed_time(
    now: datetime, tz: str | None, quiet: dict[str, str] | None, default_tz: str = "UTC"
) -> datetime:
    """``now`` if outside quiet hours, else the end of the quiet window (naive UTC).

    Examples
    --------
    >>> q = {"start": "21:00", "end": "09:00"}
    >>> next_allowed_time(datetime(2026, 1, 1, 23, 0), "Europe/Berlin", q)  # 00:00 in Berlin
    datetime.datetime(2026, 1, 2, 8, 0)
    """
    if not quiet:
        return now
    start, end = _parse_hm(quiet["start"]), _parse_hm(quiet["end"])
    if start == end:
        return now
    zone = _zone(tz, default_tz)
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    t = local.time()
    if start < end:  # e.g. 12:00-14:00
        inside = start <= t < end
        end_day = local.date()
    else:  # wraps midnight, e.g. 21:00-09:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return now
    end_local = datetime.combine(end_day, end).replace(tzinfo=zone)
    return end_local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
