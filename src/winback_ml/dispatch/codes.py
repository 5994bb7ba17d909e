"""Discount codes: random, unambiguous, unique, single use, with an expiry.

Invariants

* A code is ``length`` characters (default 12) drawn with :mod:`secrets`
  from Crockford's base-32 alphabet :data:`ALPHABET` (no ``I L O U``), so
  each character carries 5 bits: 12 characters = 60 bits >= 50.
* Uniqueness across every code ever issued is the primary key of
  ``dispatch_codes``; a collision (probability ~n²/2^61) is caught as an
  ``IntegrityError`` and that batch is drawn again.
* A code is single use: :func:`redeem_code` is one conditional ``UPDATE``
  (``redeemed_at IS NULL AND expires_at >= at``), so two concurrent
  redemptions cannot both win.
* Timestamps are naive UTC.
"""

from __future__ import annotations

import csv
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from winback_ml.dispatch.schema import DispatchDB, codes
from winback_ml.exceptions import DispatchError

__all__ = [
    "ALPHABET",
    "CODE_BITS_PER_CHAR",
    "generate_code",
    "normalize_code",
    "format_code",
    "issue_codes",
    "redeem_code",
    "export_codes_csv",
    "mark_redeemed_from_events",
    "RedemptionReport",
]

#: Crockford base 32: digits and capitals without I, L, O, U.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_BITS_PER_CHAR = 5
# intake's detail is ';'-separated tokens; ours is ``code:<CODE>`` (not ``cancel_reason_code:``)
_CODE_RE = re.compile(r"(?:^|[;\s])code:\s*([^;\s]{1,60})")
_DECODE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})


def generate_code(length: int = 12) -> str:
    """One random code of ``length`` characters from :data:`ALPHABET` (5 bits each, via :mod:`secrets`).

    Examples
    --------
    >>> c = generate_code()
    >>> len(c), set(c) <= set(ALPHABET)
    (12, True)
    """
    if length * CODE_BITS_PER_CHAR < 50:
        raise DispatchError(
            f"A discount code needs at least 50 bits. Got length={length} "
            f"({length * CODE_BITS_PER_CHAR} bits); use length >= 10."
        )
    n = int.from_bytes(secrets.token_bytes((length * CODE_BITS_PER_CHAR + 7) // 8), "big")
    return "".join(ALPHABET[(n >> (CODE_BITS_PER_CHAR * i)) & 31] for i in range(length))


def normalize_code(text: str) -> str:
    """Canonical form of a typed code: upper case, no dashes/spaces, ``I/L``->1, ``O``->0."""
    return re.sub(r"[\s-]", "", str(text)).upper().translate(_DECODE)


def format_code(code: str, group: int = 4) -> str:
    """``ABCD2345WXYZ`` -> ``ABCD-2345-WXYZ`` for display (templates use it as a filter)."""
    return "-".join(code[i : i + group] for i in range(0, len(code), group))


def issue_codes(
    db: DispatchDB,
    requests: list[dict[str, Any]],
    issued_at: datetime,
    *,
    valid_days: int = 30,
    length: int = 12,
    max_tries: int = 5,
    conn: sa.Connection | None = None,
) -> dict[str, str]:
    """Issue one code per request; return ``{enrolment_id: code}``.

    Each request has ``enrolment_id``, ``campaign_id``, ``customer_id``,
    ``offer_type``, ``discount_pct``, ``discount_months``. A request whose
    enrolment already has a code gets the existing one (idempotent).

    Without ``conn`` the codes are written in their own transaction and a
    collision with an earlier code (primary key) is drawn again, up to
    ``max_tries``. With ``conn`` they are written inside the caller's
    transaction; a collision then raises :class:`DispatchError` and the
    caller's transaction writes nothing (run it again).
    """
    db.create_schema()
    if not requests:
        return {}
    ids = [r["enrolment_id"] for r in requests]
    out: dict[str, str] = {}
    with db.engine.connect() if conn is None else _nullctx(conn) as c:
        for i in range(0, len(ids), 5000):
            q = sa.select(codes.c.enrolment_id, codes.c.code).where(
                codes.c.enrolment_id.in_(ids[i : i + 5000])
            )
            out.update({e: code for e, code in c.execute(q)})
    todo = [r for r in requests if r["enrolment_id"] not in out]
    expires = issued_at + timedelta(days=valid_days)
    for attempt in range(max_tries):
        rows = []
        seen: set[str] = set()
        for r in todo:
            code = generate_code(length)
            while code in seen:
                code = generate_code(length)
            seen.add(code)
            rows.append(
                {
                    "code": code,
                    "enrolment_id": r["enrolment_id"],
                    "campaign_id": r.get("campaign_id"),
                    "customer_id": r["customer_id"],
                    "offer_type": r["offer_type"],
                    "discount_pct": float(r.get("discount_pct") or 0.0),
                    "discount_months": int(r.get("discount_months") or 0),
                    "issued_at": issued_at,
                    "expires_at": expires,
                    "redeemed_at": None,
                    "redeemed_event_id": None,
                }
            )
        try:
            if conn is not None:
                for i in range(0, len(rows), 20_000):
                    conn.execute(codes.insert(), rows[i : i + 20_000])
            else:
                with db.engine.begin() as c:
                    for i in range(0, len(rows), 20_000):
                        c.execute(codes.insert(), rows[i : i + 20_000])
        except sa.exc.IntegrityError as e:  # a collision with a code issued before
            if conn is not None or attempt == max_tries - 1:
                raise DispatchError(
                    f"A new discount code collided with one issued before ({type(e.orig).__name__}); "
                    "nothing was written. Fix: run again (new codes are drawn) or raise code_length."
                ) from e
            continue
        out.update({r["enrolment_id"]: r["code"] for r in rows})
        return out
    return out  # pragma: no cover


class _nullctx:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __enter__(self) -> Any:
        return self.obj

    def __exit__(self, *exc: Any) -> None:
        return None


def redeem_code(db: DispatchDB, code: str, at: datetime, event_id: str | None = None) -> str:
    """Mark a code used. Returns ``"redeemed"``, ``"already_redeemed"``, ``"expired"`` or ``"unknown"``.

    Single use is enforced by a conditional update: of two concurrent calls
    exactly one gets ``"redeemed"``.
    """
    db.create_schema()
    c = normalize_code(code)
    with db.engine.begin() as conn:
        res = conn.execute(
            codes.update()
            .where(codes.c.code == c, codes.c.redeemed_at.is_(None), codes.c.expires_at >= at)
            .values(redeemed_at=at, redeemed_event_id=event_id)
        )
        if res.rowcount == 1:
            return "redeemed"
        row = conn.execute(
            sa.select(codes.c.redeemed_at, codes.c.redeemed_event_id, codes.c.expires_at).where(
                codes.c.code == c
            )
        ).first()
    if row is None:
        return "unknown"
    if row.redeemed_at is not None:
        if event_id is not None and row.redeemed_event_id == event_id:
            return "redeemed"  # the same event seen again: idempotent
        return "already_redeemed"
    return "expired"


@dataclass
class RedemptionReport:
    """What :func:`mark_redeemed_from_events` did, by outcome (event ids)."""

    redeemed: list[str] = field(default_factory=list)
    already_redeemed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def mark_redeemed_from_events(
    db: Any, now: datetime | None = None, *, only_new: bool = False
) -> RedemptionReport:
    """Mark codes used from the store's ``events`` whose ``detail`` holds ``code:<CODE>``.

    Intake writes every redeemed coupon or promotion code into the event's
    ``detail`` as a ``code:<CODE>`` token of its ``;``-separated list (see
    ``docs/intake.md``). Codes that are not ours (the provider's own coupons)
    are reported as ``unknown``. Only events at or before ``now`` are read.
    Safe to run repeatedly. With ``only_new`` (what every tick does) only
    codes of ours that are still unredeemed are looked at, so the cost does
    not grow with the history of redemptions.
    """
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    db.create_schema()
    ev = db.contract("events")
    q = sa.select(ev.c.event_id, ev.c.occurred_at, ev.c.detail).where(ev.c.detail.like("%code:%"))
    if now is not None:
        q = q.where(ev.c.occurred_at <= now)
    report = RedemptionReport()
    with db.engine.connect() as conn:
        rows = conn.execute(q.order_by(ev.c.occurred_at)).all()
        found = [
            (event_id, occurred_at, normalize_code(m.group(1)))
            for event_id, occurred_at, detail in rows
            for m in _CODE_RE.finditer(detail or "")
        ]
        if only_new:
            wanted = sorted({c for _, _, c in found})
            open_codes: set[str] = set()
            for i in range(0, len(wanted), 5000):
                open_codes |= set(
                    conn.execute(
                        sa.select(codes.c.code).where(
                            codes.c.code.in_(wanted[i : i + 5000]), codes.c.redeemed_at.is_(None)
                        )
                    ).scalars()
                )
            found = [f for f in found if f[2] in open_codes]
    for event_id, occurred_at, code in found:
        outcome = redeem_code(db, code, occurred_at, event_id)
        getattr(report, outcome).append(event_id)
    return report


def export_codes_csv(
    db: DispatchDB,
    path: str | Path,
    *,
    campaign_id: str | None = None,
    only_unredeemed: bool = True,
    now: datetime | None = None,
) -> int:
    """Write codes as a CSV a billing system can import; return the number of rows.

    Columns: ``code, customer_id, campaign_id, offer_type, percent_off,
    duration_in_months, expires_at (ISO 8601, UTC, 'Z'), max_redemptions (1)``.
    ``free_month`` is ``percent_off=100`` for its months. Codes already
    redeemed (or expired at ``now``) are left out by default.
    """
    db.create_schema()
    q = sa.select(codes).order_by(codes.c.issued_at, codes.c.code)
    if campaign_id is not None:
        q = q.where(codes.c.campaign_id == campaign_id)
    if only_unredeemed:
        q = q.where(codes.c.redeemed_at.is_(None))
        if now is not None:
            q = q.where(codes.c.expires_at >= now)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with db.engine.connect() as conn, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(_CSV_HEADER)
        for r in conn.execute(q):
            pct = 100.0 if r.offer_type == "free_month" else float(r.discount_pct)
            w.writerow(
                [
                    r.code,
                    r.customer_id,
                    r.campaign_id or "",
                    r.offer_type,
                    f"{pct:g}",
                    int(r.discount_months),
                    r.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    1,
                ]
            )
            n += 1
    tmp.replace(path)
    return n


_CSV_HEADER = [
    "code",
    "customer_id",
    "campaign_id",
    "offer_type",
    "percent_off",
    "duration_in_months",
    "expires_at",
    "max_redemptions",
]
