"""The governed entry flow: raw inbox, contract upserts, dead letters, win-back queue.

:class:`IntakeLedger` sits on a :class:`winback_ml.data.store.Store` engine
(SQLite or PostgreSQL, SQLAlchemy Core only) and owns these tables, on its own
``MetaData`` (:data:`INTAKE_METADATA`):

``intake_inbox``
    Every distinct body received, stored **before** it is processed (a crash
    loses nothing; :meth:`IntakeLedger.recover` processes what was left in
    ``received``). Unique on ``(provider, body_sha256)``: the same bytes twice
    are one row. Columns: ``inbox_id``, ``provider``, ``body_sha256``,
    ``body`` (raw bytes; the first 64 KiB of an oversized body), ``body_size``,
    ``headers`` (JSON of the signature header only), ``received_at``,
    ``status`` (``received`` ``accepted`` ``duplicate`` ``dead_lettered``),
    ``delivery_id``, ``content_hash``, ``verification`` (``verified``
    ``unverified`` ``none``: Apple without a root certificate is stored
    ``unverified``), ``n_events``, ``processed_at``, ``error``.
``intake_dead_letters``
    A payload that was rejected: ``dead_letter_id``, ``provider``,
    ``body_sha256``, ``body``, ``label`` (file or CSV line), ``kind``
    (``malformed`` ``missing_field`` ``unknown_type`` ``invalid``
    ``signature`` ``oversized`` ``conflict`` ``unknown_subscription``
    ``internal``), ``error`` (the precise reason), ``delivery_id``,
    ``customer_id``, ``subscription_id``, ``mrr_hint``, ``first_seen``,
    ``last_seen``, ``attempts``, ``status`` (``open`` ``resolved``),
    ``resolved_at``.
``intake_snapshots``
    The state each accepted payload showed, per subscription and customer,
    with its provider time. The ``subscriptions`` row is recomputed as the
    fold of its snapshots sorted by ``(occurred_at, delivery_id)``, so
    out-of-order delivery ends in the same row as in-order delivery.
``winback_queue`` (read by the dispatch stage)
    One row per end of service (a ``cancelled`` or ``expired`` event), the
    auto-launch of the win-back flow:

    ============== ========= ===================================================
    column         type      meaning
    ============== ========= ===================================================
    queue_id       text, PK  the ending event's ``event_id`` (idempotent)
    customer_id    text      contract customer
    subscription_id text     contract subscription
    source         text      contract source
    event_type     text      ``cancelled`` or ``expired``
    reason         text      canonical reason (``payment_failed`` = involuntary)
    initiator      text      ``customer`` (voluntary), ``system``, ``merchant``
    ended_at       timestamp when access ended (tz-naive UTC)
    queued_at      timestamp when intake enqueued it
    mrr            float     MRR of the subscription when it ended
    status         text      ``pending`` (new); ``superseded`` (the subscription
                             renewed/reactivated after ``ended_at``: do not
                             contact); dispatch sets its own values
                             (``claimed``, ``sent``, ``skipped``, ...)
    status_at      timestamp last status change
    ============== ========= ===================================================

    Intake inserts rows and only ever moves ``pending`` to ``superseded``; it
    never touches a row dispatch has moved on.

Contract tables written: ``events`` (insert only, idempotent on
``event_id``; the same id with different content is a conflict and is
dead-lettered), ``subscriptions`` (recomputed from snapshots) and
``customers`` (created when unknown: ``signup_at`` = the earliest time seen
for the customer, opt-ins False unless the payload says otherwise; an e-mail
or phone that breaks the contract's pattern is not stored).

Invariants: a body is accepted, a duplicate or dead-lettered, never dropped;
a rejected body changes no contract row; all timestamps are tz-naive UTC;
PII (e-mail, phone, comments) goes to the contract tables only, never to
logs or to the health report.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from winback_ml.data.contract import ENDED_STATUSES, TABLES
from winback_ml.data.store import Store
from winback_ml.exceptions import IntakeError, SignatureError
from winback_ml.intake._common import (
    MAX_BODY_BYTES,
    PROVIDER_SOURCE,
    Normalized,
    redact_text,
)
from winback_ml.intake.apple import load_root_certificate
from winback_ml.intake.normalize import check_provider, normalize, split_bodies
from winback_ml.intake.stripe import verify_stripe_signature

__all__ = [
    "INTAKE_METADATA",
    "inbox_table",
    "dead_letters_table",
    "snapshots_table",
    "winback_queue_table",
    "Outcome",
    "IntakeLedger",
    "HealthReport",
    "classify_error",
]

INTAKE_METADATA = sa.MetaData()

inbox_table = sa.Table(
    "intake_inbox",
    INTAKE_METADATA,
    sa.Column("inbox_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("body_sha256", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("body_size", sa.Integer, nullable=False),
    sa.Column("headers", sa.Text),
    sa.Column("label", sa.Text),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("delivery_id", sa.Text),
    sa.Column("content_hash", sa.Text),
    sa.Column("verification", sa.Text),
    sa.Column("n_events", sa.Integer),
    sa.Column("processed_at", sa.DateTime),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("provider", "body_sha256", name="uq_intake_inbox_body"),
    sa.Index("ix_intake_inbox_delivery", "provider", "delivery_id"),
)

dead_letters_table = sa.Table(
    "intake_dead_letters",
    INTAKE_METADATA,
    sa.Column("dead_letter_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("body_sha256", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("label", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("delivery_id", sa.Text),
    sa.Column("customer_id", sa.Text),
    sa.Column("subscription_id", sa.Text),
    sa.Column("mrr_hint", sa.Float),
    sa.Column("first_seen", sa.DateTime, nullable=False),
    sa.Column("last_seen", sa.DateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("resolved_at", sa.DateTime),
    sa.UniqueConstraint("provider", "body_sha256", name="uq_intake_dead_letters_body"),
    sa.Index("ix_intake_dead_letters_sub", "status", "subscription_id"),
)

snapshots_table = sa.Table(
    "intake_snapshots",
    INTAKE_METADATA,
    sa.Column("entity", sa.Text, primary_key=True),  # 'subscription' | 'customer'
    sa.Column("entity_id", sa.Text, primary_key=True),
    sa.Column("provider", sa.Text, primary_key=True),
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)

winback_queue_table = sa.Table(
    "winback_queue",
    INTAKE_METADATA,
    sa.Column("queue_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("initiator", sa.Text),
    sa.Column("ended_at", sa.DateTime, nullable=False),
    sa.Column("queued_at", sa.DateTime, nullable=False),
    sa.Column("mrr", sa.Float),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("status_at", sa.DateTime, nullable=False),
    sa.Index("ix_winback_queue_status", "status"),
)

_TS_KEYS = ("started_at", "current_period_end", "cancel_requested_at", "ended_at", "signup_at")
_SUB_COLS = TABLES["subscriptions"].column_names
_SUB_REQUIRED = [c.name for c in TABLES["subscriptions"].columns if not c.nullable]
_CUST_COLS = TABLES["customers"].column_names
_EVENT_COLS = TABLES["events"].column_names
_BASELINE = datetime(1900, 1, 1)
_START_SLACK = timedelta(days=1)
_KEEP_BYTES = 65_536
_EMAIL = re.compile(TABLES["customers"].column("email").pattern or ".*")
_PHONE = re.compile(TABLES["customers"].column("phone").pattern or ".*")
_COUNTRY = re.compile(TABLES["customers"].column("country").pattern or ".*")
_LANG = re.compile(TABLES["customers"].column("language").pattern or ".*")
_RETURN_TYPES = ("subscribed", "reactivated", "renewed", "payment_recovered")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def classify_error(message: str) -> str:
    """Dead-letter ``kind`` of an intake error message."""
    m = message.lower()
    if "at most" in m and "bytes" in m:
        return "oversized"
    if "signature" in m or "certificate" in m or "x5c" in m:
        return "signature"
    if "conflicting duplicate" in m:
        return "conflict"
    if "unknown to the store" in m:
        return "unknown_subscription"
    if "malformed json" in m or "not utf-8" in m or "not valid csv" in m or "base64" in m:
        return "malformed"
    if "unknown event type" in m or "unknown notificationtype" in m or "not handled" in m:
        return "unknown_type"
    if "is missing" in m or "is empty" in m or "lacks required" in m:
        return "missing_field"
    return "invalid"


@dataclass
class Outcome:
    """What became of one body.

    ``status`` is ``accepted``, ``duplicate`` or ``dead_lettered``; ``reason``
    says why for the last two; ``http_status`` is what the receiver answers.
    """

    status: str
    provider: str
    label: str = ""
    delivery_id: str | None = None
    reason: str | None = None
    kind: str | None = None
    event_ids: list[str] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)
    inbox_id: int | None = None
    dead_letter_id: int | None = None

    @property
    def http_status(self) -> int:
        if self.status == "dead_lettered":
            if self.kind == "signature":
                return 400
            if self.kind == "oversized":
                return 413
            # stored durably as a dead letter: acknowledge so the provider stops retrying
            return 200
        return 200


@dataclass
class HealthReport:
    """Per-source health and the dead letters ranked by revenue at stake."""

    now: datetime
    sources: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]

    def to_text(self, top: int = 20) -> str:
        lines = [f"intake health as of {self.now.isoformat(timespec='seconds')} UTC", ""]
        hdr = f"{'source':<10} {'volume':>7} {'24h':>6} {'accepted':>8} {'dup':>5} {'dead':>5} {'reject%':>7}  {'last event':<19}  {'stale':>8}"
        lines.append(hdr)
        for s in self.sources:
            last = s["last_event_at"].isoformat(timespec="seconds") if s["last_event_at"] else "-"
            stale = f"{s['staleness_hours']:.1f}h" if s["staleness_hours"] is not None else "-"
            lines.append(
                f"{s['source']:<10} {s['volume']:>7} {s['volume_24h']:>6} {s['accepted']:>8} "
                f"{s['duplicate']:>5} {s['dead_lettered']:>5} {100 * s['reject_rate']:>6.1f}%  {last:<19}  {stale:>8}"
            )
        lines.append("")
        open_dl = self.dead_letters
        lines.append(f"open dead letters: {len(open_dl)} (ranked by MRR at stake)")
        for d in open_dl[:top]:
            lines.append(
                f"  #{d['dead_letter_id']:<5} {d['provider']:<9} mrr_at_stake={d['mrr_at_stake']:.2f} "
                f"attempts={d['attempts']} kind={d['kind']} sub={d['subscription_id'] or '-'} "
                f"last_seen={d['last_seen'].isoformat(timespec='seconds')}: {d['error'][:160]}"
            )
        return "\n".join(lines)


def _dt_to_json(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _state_dump(state: Mapping[str, Any]) -> str:
    return json.dumps({k: _dt_to_json(v) for k, v in state.items()}, sort_keys=True, default=str)


def _state_load(s: str) -> dict[str, Any]:
    d = json.loads(s)
    for k in _TS_KEYS:
        if isinstance(d.get(k), str):
            d[k] = datetime.fromisoformat(d[k])
    return d


def _loose_ids(provider: str, body: bytes) -> tuple[str | None, str | None]:
    """Best-effort (customer_id, subscription_id) of a body that did not normalise."""
    try:
        doc = json.loads(body)
    except Exception:  # noqa: BLE001 - anything goes: this is a hint only
        return None, None
    if not isinstance(doc, dict):
        return None, None
    cid = sid = None
    try:
        if provider == "stripe":
            obj = doc.get("data", {}).get("object", {})
            if isinstance(obj, dict):
                c = obj.get("customer")
                cid = c if isinstance(c, str) else (c.get("id") if isinstance(c, dict) else None)
                if obj.get("object") == "subscription":
                    sid = obj.get("id")
                else:
                    s = obj.get("subscription")
                    par = obj.get("parent")
                    if isinstance(par, dict) and isinstance(par.get("subscription_details"), dict):
                        s = par["subscription_details"].get("subscription") or s
                    sid = s if isinstance(s, str) else None
        elif provider == "chargebee":
            sub = doc.get("content", {}).get("subscription", {})
            if isinstance(sub, dict):
                sid, cid = sub.get("id"), sub.get("customer_id")
        elif provider == "recurly":
            res = doc.get("resource", {})
            if isinstance(res, dict):
                sid = res.get("uuid") or res.get("id")
                acct = res.get("account")
                if isinstance(acct, dict):
                    cid = acct.get("code") or acct.get("id")
        elif provider == "google":
            res = doc.get("resource", {})
            ext = res.get("externalAccountIdentifiers") if isinstance(res, dict) else None
            if isinstance(ext, dict):
                cid = ext.get("obfuscatedExternalAccountId")
    except AttributeError:
        return None, None
    return (cid if isinstance(cid, str) else None), (sid if isinstance(sid, str) else None)


class IntakeLedger:
    """Ingest provider bodies into a store: idempotent, order-independent, nothing lost.

    Parameters
    ----------
    store : Store or str, optional
        The contract store or its URL (default: ``WINBACK_STORE_URL`` or
        ``<cwd>/data/winback.db``).
    apple_root : bytes or path, optional
        Apple's root certificate; without it Apple payloads are stored
        ``unverified``. Loaded at construction: a path that cannot be read or
        a file that is not a certificate raises :class:`IntakeError`.
    stripe_secret : str, optional
        Stripe endpoint secret; when set, bodies that come with headers (the
        receiver) must carry a valid ``Stripe-Signature``.
    fx_rates : dict, optional
        Currency -> rate to the reporting currency for ``mrr``. Without it
        ``mrr`` is the monthly price in the subscription's own currency.
    now : callable, optional
        Clock returning tz-naive UTC (tests).

    Examples
    --------
    >>> from winback_ml.intake import IntakeLedger
    >>> from winback_ml.intake.samples import stripe_event, stripe_subscription
    >>> ledger = IntakeLedger("sqlite:///:memory:")
    >>> body = stripe_event("customer.subscription.created", stripe_subscription())
    >>> ledger.ingest("stripe", body).status, ledger.ingest("stripe", body).status
    ('accepted', 'duplicate')
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        apple_root: Any = None,
        stripe_secret: str | None = None,
        stripe_tolerance: int = 300,
        fx_rates: Mapping[str, float] | None = None,
        now: Any = None,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        # loaded once, here: a bad path or file fails now, not as one dead letter per body
        self.apple_root = load_root_certificate(apple_root)
        self.stripe_secret = stripe_secret
        self.stripe_tolerance = stripe_tolerance
        self.fx_rates = dict(fx_rates) if fx_rates else None
        self._now = now or _utcnow
        self._lock = threading.RLock()
        self._schema_ready = False
        self._replaying: set[str] = set()

    # ------------------------------------------------------------------ setup
    @property
    def engine(self) -> sa.Engine:
        return self.store.engine

    def create_schema(self) -> None:
        """Create the contract tables and the intake tables (never drops anything)."""
        if self._schema_ready:
            return
        with self._lock:
            self.store.create_schema()
            INTAKE_METADATA.create_all(self.engine, checkfirst=True)
            self._schema_ready = True

    def _insert(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # ------------------------------------------------------------------ entry points
    def ingest(
        self,
        provider: str,
        body: bytes | str,
        *,
        headers: Mapping[str, str] | None = None,
        label: str = "",
    ) -> Outcome:
        """Store one body durably, then process it. Never raises for bad input.

        Parameters
        ----------
        provider : str
            ``stripe`` ``chargebee`` ``recurly`` ``apple`` ``google`` ``csv``.
        body : bytes
            The body exactly as received (CSV: one header + row body; use
            :meth:`ingest_file` for whole exports).
        headers : mapping, optional
            Request headers (the receiver passes them; ``Stripe-Signature`` is
            checked when a secret is configured).
        label : str
            Where the body came from (file name, CSV line); kept on dead letters.
        """
        provider = check_provider(provider)
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        inbox_id, prior = self.store_raw(provider, body, headers=headers, label=label)
        if prior in ("accepted", "duplicate"):
            return Outcome(
                "duplicate",
                provider,
                label,
                reason="identical body already ingested",
                inbox_id=inbox_id,
            )
        return self.process(inbox_id)

    def ingest_file(self, provider: str, path: str | Path) -> list[Outcome]:
        """Ingest one file: a webhook body, or a CSV export (one outcome per row)."""
        p = Path(path)
        return self.ingest_export(provider, p.read_bytes(), label=p.name)

    def ingest_export(
        self,
        provider: str,
        data: bytes,
        *,
        label: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> list[Outcome]:
        """Ingest a file's content: one webhook body, or a CSV export (one outcome per row).

        A CSV export whose header is unusable is dead-lettered whole, with the reason.
        """
        provider = check_provider(provider)
        try:
            parts = split_bodies(provider, data)
        except IntakeError as e:
            return [self._dead_letter_unprocessed(provider, data, label, str(e))]
        return [
            self.ingest(
                provider,
                b,
                headers=headers,
                label=f"{label}:{lbl}" if lbl and label else lbl or label,
            )
            for lbl, b in parts
        ]

    def ingest_many(self, provider: str, bodies: Iterable[bytes]) -> list[Outcome]:
        """Ingest several bodies of one provider, in the given order."""
        return [self.ingest(provider, b) for b in bodies]

    # ------------------------------------------------------------------ inbox
    def store_raw(
        self,
        provider: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        label: str = "",
    ) -> tuple[int, str | None]:
        """Write the body to the inbox (committed) before anything else.

        Returns ``(inbox_id, prior_status)``; ``prior_status`` is ``None`` for
        a new body, else the status of the identical body already stored.
        """
        self.create_schema()
        sha = hashlib.sha256(body).hexdigest()
        keep = body if len(body) <= MAX_BODY_BYTES else body[:_KEEP_BYTES]
        # headers is None: a file (no transport signature); a mapping (even empty): HTTP,
        # whose signature header is checked when a secret is configured
        hdr = None
        if headers is not None:
            sig = {k: v for k, v in headers.items() if k.lower() == "stripe-signature"}
            hdr = json.dumps(sig)
        t = inbox_table
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(
                sa.select(t.c.inbox_id, t.c.status, t.c.headers, t.c.received_at).where(
                    t.c.provider == provider, t.c.body_sha256 == sha
                )
            ).first()
            if row is not None:
                if (
                    hdr is not None
                    and row.status in ("received", "dead_lettered")
                    and (
                        self._signature_ok(provider, body, headers, self._now())
                        or not self._signature_ok(
                            provider,
                            body,
                            json.loads(row.headers) if row.headers is not None else None,
                            row.received_at,
                        )
                    )
                ):
                    # a redelivery (Stripe re-signs each retry): its header is checked
                    # against the time it arrived, so both are kept together; a header
                    # that does not verify never replaces one that does
                    conn.execute(
                        t.update()
                        .where(t.c.inbox_id == row.inbox_id)
                        .values(headers=hdr, received_at=self._now())
                    )
                return int(row.inbox_id), row.status
            stmt = (
                self._insert(t)
                .values(
                    provider=provider,
                    body_sha256=sha,
                    body=keep,
                    body_size=len(body),
                    headers=hdr,
                    label=label or None,
                    received_at=self._now(),
                    status="received",
                )
                .on_conflict_do_nothing()
                .returning(t.c.inbox_id)
            )
            new_id = conn.execute(stmt).scalar()
            if new_id is None:  # a concurrent writer stored the same bytes first
                row = conn.execute(
                    sa.select(t.c.inbox_id, t.c.status).where(
                        t.c.provider == provider, t.c.body_sha256 == sha
                    )
                ).first()
                return int(row.inbox_id), row.status
            return int(new_id), None

    def _signature_ok(
        self, provider: str, body: bytes, headers: Mapping[str, str] | None, at: datetime
    ) -> bool:
        """Whether a signature header verifies at ``at`` (True when none is checked)."""
        if provider != "stripe" or not self.stripe_secret or headers is None:
            return True
        sig = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        try:
            verify_stripe_signature(
                body,
                sig,
                self.stripe_secret,
                tolerance=self.stripe_tolerance,
                now=at.replace(tzinfo=UTC).timestamp(),
            )
        except SignatureError:
            return False
        return True

    def recover(self) -> list[Outcome]:
        """Process every inbox row left in ``received`` (after a crash or a kill)."""
        self.create_schema()
        with self.engine.connect() as conn:
            ids = [
                r.inbox_id
                for r in conn.execute(
                    sa.select(inbox_table.c.inbox_id)
                    .where(inbox_table.c.status == "received")
                    .order_by(inbox_table.c.inbox_id)
                )
            ]
        return [self.process(i) for i in ids]

    def process(self, inbox_id: int, *, _retried: bool = False) -> Outcome:
        """Normalise and apply one stored body; any failure becomes a dead letter."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(inbox_table).where(inbox_table.c.inbox_id == inbox_id)
            ).first()
        if row is None:
            raise IntakeError(f"inbox row {inbox_id} does not exist.")
        provider, body, label = row.provider, bytes(row.body), row.label or ""
        headers = json.loads(row.headers) if row.headers is not None else None
        n: Normalized | None = None
        try:
            if row.body_size > MAX_BODY_BYTES:
                raise IntakeError(
                    f"{provider}: body is {row.body_size} bytes; expected at most {MAX_BODY_BYTES} "
                    "(MAX_BODY_BYTES). Fix: send one webhook event per body."
                )
            if provider == "stripe" and self.stripe_secret and headers is not None:
                sig = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
                verify_stripe_signature(
                    body,
                    sig,
                    self.stripe_secret,
                    tolerance=self.stripe_tolerance,
                    now=row.received_at.replace(tzinfo=UTC).timestamp(),
                )
            n = normalize(provider, body, apple_root=self.apple_root, now=self._now())
            with self._lock:
                return self._apply_retrying(
                    inbox_id, n, label, was_dead=row.status == "dead_lettered"
                )
        except SignatureError as e:
            return self._dead_letter(inbox_id, provider, body, label, str(e), "signature", n)
        except IntakeError as e:
            kind = classify_error(str(e))
            out = self._dead_letter(inbox_id, provider, body, label, str(e), kind, n)
            if kind == "unknown_subscription" and not _retried and n is not None:
                # another writer may have created the subscription meanwhile; its
                # automatic retry could have run before this dead letter was stored
                subs = self.store.table("subscriptions")
                with self.engine.connect() as conn:
                    exists = conn.execute(
                        sa.select(subs.c.subscription_id).where(
                            subs.c.subscription_id == n.subscription_id
                        )
                    ).first()
                if exists is not None:
                    return self.process(inbox_id, _retried=True)
            return out
        except Exception as e:  # a bug must not lose the body: park it with the reason
            # the exception text may quote the body (an address): keep PII out of the reason
            msg = (
                f"{provider}: internal error while processing "
                f"({type(e).__name__}: {redact_text(str(e))})."
            )
            return self._dead_letter(inbox_id, provider, body, label, msg, "internal", n)

    # ------------------------------------------------------------------ apply
    def _apply_retrying(
        self, inbox_id: int, n: Normalized, label: str, *, was_dead: bool = False
    ) -> Outcome:
        """:meth:`_apply`, retried when a concurrent writer (another process) got in the way."""
        for attempt in range(6):
            try:
                return self._apply(inbox_id, n, label, was_dead=was_dead)
            except sa.exc.OperationalError as e:
                msg = str(e).lower()
                transient = any(w in msg for w in ("locked", "busy", "deadlock", "serializ"))
                if not transient or attempt == 5:
                    raise
                time.sleep(0.05 * (attempt + 1))
            except sa.exc.IntegrityError:
                # a concurrent writer inserted the same event/row first: re-read and re-decide
                if attempt == 5:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply(
        self, inbox_id: int, n: Normalized, label: str, *, was_dead: bool = False
    ) -> Outcome:
        inbox = inbox_table
        now = self._now()
        created_sub: str | None = None
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # serialise writers of one subscription / customer across processes
                keys = sorted(
                    {f"sub:{n.subscription_id}", f"delivery:{n.provider}:{n.delivery_id}"}
                    | {f"cust:{e['customer_id']}" for e in n.events}
                    | ({f"cust:{n.customer['customer_id']}"} if n.customer else set())
                )
                for k in keys:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": k})
            elif conn.dialect.name == "sqlite":
                # take the write lock up front: no read-then-upgrade races between processes
                # (a no-op UPDATE opens a write transaction, like BEGIN IMMEDIATE)
                conn.execute(inbox.update().where(sa.false()).values(status=inbox.c.status))
            prev = conn.execute(
                sa.select(inbox.c.inbox_id, inbox.c.content_hash).where(
                    inbox.c.provider == n.provider,
                    inbox.c.delivery_id == n.delivery_id,
                    inbox.c.status == "accepted",
                    inbox.c.inbox_id != inbox_id,
                )
            ).first()
            if prev is not None:
                if prev.content_hash == n.content_hash:
                    conn.execute(
                        inbox.update()
                        .where(inbox.c.inbox_id == inbox_id)
                        .values(
                            status="duplicate",
                            delivery_id=n.delivery_id,
                            content_hash=n.content_hash,
                            verification=n.verification,
                            processed_at=now,
                            n_events=0,
                        )
                    )
                    if was_dead:
                        self._resolve_dead_letter(conn, n.provider, inbox_id, now)
                    return Outcome(
                        "duplicate",
                        n.provider,
                        label,
                        n.delivery_id,
                        reason=f"delivery {n.delivery_id!r} already accepted (inbox #{prev.inbox_id})",
                        inbox_id=inbox_id,
                    )
                raise IntakeError(
                    f"{n.provider}: conflicting duplicate: delivery id {n.delivery_id!r} was accepted "
                    f"before (inbox #{prev.inbox_id}) with different content. Nothing was changed. "
                    "Fix: find out which body is genuine; the provider never reuses an id."
                )
            events_t = self.store.table("events")
            new_events: list[dict[str, Any]] = []
            stored = {}
            if n.events:
                ids = [e["event_id"] for e in n.events]
                stored = {
                    r.event_id: r
                    for r in conn.execute(sa.select(events_t).where(events_t.c.event_id.in_(ids)))
                }
            for e in n.events:
                old = stored.get(e["event_id"])
                if old is None:
                    new_events.append(e)
                    continue
                diff = _event_diff(old._mapping, e)
                if diff:
                    raise IntakeError(
                        f"{n.provider}: conflicting duplicate: event {e['event_id']!r} is stored with "
                        f"different {', '.join(diff)}. Nothing was changed. Fix: check which payload "
                        "is genuine; event ids must never be reused."
                    )
            sid = n.subscription_id
            sub_row = None
            if sid is not None:
                sub_row, created = self._apply_subscription(conn, n, sid)
                if created:
                    created_sub = sid
            cid = (n.subscription or {}).get("customer_id") or (n.customer or {}).get("customer_id")
            if cid is None and n.events:
                cid = n.events[0]["customer_id"]
            for e in n.events:
                if e["customer_id"] != cid:
                    raise IntakeError(
                        f"{n.provider}: event {e['event_id']!r} names customer {e['customer_id']!r} but the "
                        f"subscription belongs to {cid!r}. Expected one customer per payload."
                    )
            if cid is not None:
                self._apply_customer(conn, n, cid, sub_row, new_events)
            if new_events:
                conn.execute(
                    events_t.insert(), [{k: e[k] for k in _EVENT_COLS} for e in new_events]
                )
            enq = self._enqueue(conn, n, new_events, sub_row, now)
            if sid is not None:
                self._supersede(conn, sid, now)
            conn.execute(
                inbox.update()
                .where(inbox.c.inbox_id == inbox_id)
                .values(
                    status="accepted",
                    delivery_id=n.delivery_id,
                    content_hash=n.content_hash,
                    verification=n.verification,
                    processed_at=now,
                    n_events=len(new_events),
                    error=None,
                )
            )
            if was_dead:
                self._resolve_dead_letter(conn, n.provider, inbox_id, now)
        out = Outcome(
            "accepted",
            n.provider,
            label,
            n.delivery_id,
            event_ids=[e["event_id"] for e in new_events],
            enqueued=enq,
            inbox_id=inbox_id,
        )
        if created_sub is not None and created_sub not in self._replaying:
            self._replaying.add(created_sub)
            try:
                self.replay(subscription_id=created_sub)
            finally:
                self._replaying.discard(created_sub)
        return out

    def _fold(
        self,
        conn: sa.Connection,
        entity: str,
        entity_id: str,
        n: Normalized,
        state: dict[str, Any],
        baseline: dict[str, Any] | None,
        *,
        skip_none: bool,
    ) -> dict[str, Any]:
        """Store this payload's snapshot; return the fold of all snapshots in time order.

        A row that existed before intake first touched it becomes a baseline
        snapshot dated 1900-01-01, so the fold never depends on arrival order.
        """
        snaps = snapshots_table
        rows = [
            (r.occurred_at, r.provider, r.delivery_id, r.state)
            for r in conn.execute(
                sa.select(
                    snaps.c.occurred_at, snaps.c.provider, snaps.c.delivery_id, snaps.c.state
                ).where(snaps.c.entity == entity, snaps.c.entity_id == entity_id)
            )
        ]
        ins = []
        if not rows and baseline is not None:
            ins.append((_BASELINE, "__baseline__", "__baseline__", _state_dump(baseline)))
        if not any(r[1] == n.provider and r[2] == n.delivery_id for r in rows):
            ins.append((n.occurred_at, n.provider, n.delivery_id, _state_dump(state)))
        if ins:
            conn.execute(
                snaps.insert(),
                [
                    {
                        "entity": entity,
                        "entity_id": entity_id,
                        "occurred_at": t,
                        "provider": p,
                        "delivery_id": d,
                        "state": st,
                    }
                    for t, p, d, st in ins
                ],
            )
        rows.extend(ins)
        rows.sort(key=lambda r: (r[0], r[2], r[1]))
        folded: dict[str, Any] = {}
        for r in rows:
            st = _state_load(r[3])
            folded.update({k: v for k, v in st.items() if v is not None} if skip_none else st)
        folded["__last_at__"] = rows[-1][0]
        return folded

    def _resolve_dead_letter(
        self, conn: sa.Connection, provider: str, inbox_id: int, now: datetime
    ) -> None:
        dl = dead_letters_table
        conn.execute(
            dl.update()
            .where(
                dl.c.provider == provider,
                dl.c.body_sha256 == _sha_of_inbox(conn, inbox_id),
                dl.c.status == "open",
            )
            .values(status="resolved", resolved_at=now)
        )

    def _apply_subscription(
        self, conn: sa.Connection, n: Normalized, sid: str
    ) -> tuple[dict[str, Any] | None, bool]:
        subs = self.store.table("subscriptions")
        existing = conn.execute(sa.select(subs).where(subs.c.subscription_id == sid)).first()
        state = dict(n.subscription or {"subscription_id": sid})
        if existing is not None:
            ex = existing._mapping
            pcid = state.get("customer_id")
            if pcid is not None and pcid != ex["customer_id"]:
                raise IntakeError(
                    f"{n.provider}: subscription {sid!r} belongs to customer {ex['customer_id']!r} in the "
                    f"store, but the payload says {pcid!r}. Nothing was changed. Fix: check the "
                    "account mapping of this source."
                )
            if state.get("source") is not None and state["source"] != ex["source"]:
                raise IntakeError(
                    f"{n.provider}: subscription {sid!r} is a {ex['source']!r} subscription in the store; "
                    f"the payload comes from {state['source']!r}. Nothing was changed."
                )
        baseline = {k: existing._mapping[k] for k in _SUB_COLS} if existing is not None else None
        folded = self._fold(conn, "subscription", sid, n, state, baseline, skip_none=False)
        # end-of-service events are authoritative for ended_at / reason
        events_t = self.store.table("events")
        ends = conn.execute(
            sa.select(events_t.c.occurred_at, events_t.c.event_type, events_t.c.reason).where(
                events_t.c.subscription_id == sid
            )
        ).all()
        all_ev = [(r.occurred_at, r.event_type, r.reason) for r in ends] + [
            (e["occurred_at"], e["event_type"], e["reason"]) for e in n.events
        ]
        row = _finish_subscription(folded, all_ev, self.fx_rates)
        missing = [c for c in _SUB_REQUIRED if row.get(c) is None]
        if missing:
            if existing is None:
                raise IntakeError(
                    f"{n.provider}: subscription {sid!r} is unknown to the store and this payload does "
                    f"not carry its state (missing {', '.join(missing)}). Expected the subscription's "
                    "creation (or any payload with its full state) first. Parked: it is retried "
                    "automatically when the subscription arrives, or run `winback intake replay`."
                )
            for c in missing:
                row[c] = existing._mapping[c]
        # account context: no event may precede the subscription's start (1 day of slack,
        # as the contract allows for providers that stamp the two apart)
        start = row.get("started_at")
        if start is not None and all_ev:
            first = min(all_ev, key=lambda x: x[0])
            if first[0] < start - _START_SLACK:
                raise IntakeError(
                    f"{n.provider}: subscription {sid!r} starts {start.isoformat()} but has a "
                    f"{first[1]!r} event at {first[0].isoformat()}, more than a day earlier. "
                    "Nothing was changed. Fix: check the timestamps (unit, time zone) of this "
                    "payload and of the subscription's start."
                )
        values = {c: row.get(c) for c in _SUB_COLS}
        if existing is None:
            conn.execute(subs.insert().values(**values))
        else:
            if any(_differs(existing._mapping[c], values[c]) for c in _SUB_COLS):
                conn.execute(subs.update().where(subs.c.subscription_id == sid).values(**values))
        return values, existing is None

    def _apply_customer(
        self,
        conn: sa.Connection,
        n: Normalized,
        cid: str,
        sub_row: dict[str, Any] | None,
        new_events: list[dict[str, Any]],
    ) -> None:
        cust = self.store.table("customers")
        existing = conn.execute(sa.select(cust).where(cust.c.customer_id == cid)).first()
        info = dict(n.customer or {"customer_id": cid})
        info["customer_id"] = cid
        # signup_at: the earliest time seen for the customer; a min is order-independent
        times: list[datetime] = [n.occurred_at]
        times.extend(e["occurred_at"] for e in new_events)
        if info.get("signup_at") is not None:
            times.append(info["signup_at"])
        if existing is not None:
            times.append(existing._mapping["signup_at"])
        if sub_row is not None and sub_row.get("started_at") is not None:
            times.append(sub_row["started_at"])
        has_info = any(k not in ("customer_id", "signup_at") for k in info)
        if not has_info:
            if existing is None:
                folded: dict[str, Any] = {}
            else:
                signup = min(times)
                if signup < existing._mapping["signup_at"]:
                    conn.execute(
                        cust.update().where(cust.c.customer_id == cid).values(signup_at=signup)
                    )
                return
        else:
            baseline = None
            if existing is not None:
                baseline = {
                    k: existing._mapping[k] for k in _CUST_COLS if existing._mapping[k] is not None
                }
            folded = self._fold(conn, "customer", cid, n, info, baseline, skip_none=True)
            folded.pop("__last_at__", None)
            if folded.get("signup_at") is not None:
                times.append(folded["signup_at"])
        values: dict[str, Any] = {
            "customer_id": cid,
            "signup_at": min(times),
            "country": _ok(folded.get("country"), _COUNTRY),
            "language": _ok(folded.get("language"), _LANG),
            "timezone": folded.get("timezone"),
            "email": _ok(folded.get("email"), _EMAIL),
            "phone": _ok(folded.get("phone"), _PHONE),
            "email_opt_in": bool(folded.get("email_opt_in", False)),
            "sms_opt_in": bool(folded.get("sms_opt_in", False)),
            "acquisition_channel": folded.get("acquisition_channel"),
        }
        if existing is None:
            conn.execute(cust.insert().values(**values))
        elif any(_differs(existing._mapping[c], values[c]) for c in _CUST_COLS):
            conn.execute(cust.update().where(cust.c.customer_id == cid).values(**values))

    def _enqueue(
        self,
        conn: sa.Connection,
        n: Normalized,
        new_events: list[dict[str, Any]],
        sub_row: dict[str, Any] | None,
        now: datetime,
    ) -> list[str]:
        out = []
        q = winback_queue_table
        for e in new_events:
            if e["event_type"] not in ENDED_STATUSES:
                continue
            detail = e["detail"] or ""
            if "replaced" in detail.split(";"):
                continue  # moved to another plan: not a lapse
            initiator = "customer"
            for tok in detail.split(";"):
                if tok.startswith("initiator:"):
                    initiator = tok.split(":", 1)[1]
            if e["reason"] == "payment_failed":
                initiator = "system"
            res = conn.execute(
                self._insert(q)
                .values(
                    queue_id=e["event_id"],
                    customer_id=e["customer_id"],
                    subscription_id=e["subscription_id"],
                    source=e["source"],
                    event_type=e["event_type"],
                    reason=e["reason"],
                    initiator=initiator,
                    ended_at=e["occurred_at"],
                    queued_at=now,
                    mrr=(sub_row or {}).get("mrr"),
                    status="pending",
                    status_at=now,
                )
                .on_conflict_do_nothing()
            )
            if res.rowcount:
                out.append(e["event_id"])
        return out

    def _supersede(self, conn: sa.Connection, sid: str, now: datetime) -> None:
        q = winback_queue_table
        events_t = self.store.table("events")
        pending = conn.execute(
            sa.select(q.c.queue_id, q.c.ended_at).where(
                q.c.subscription_id == sid, q.c.status == "pending"
            )
        ).all()
        for p in pending:
            later = conn.execute(
                sa.select(sa.func.count())
                .select_from(events_t)
                .where(
                    events_t.c.subscription_id == sid,
                    events_t.c.event_type.in_(_RETURN_TYPES),
                    events_t.c.occurred_at > p.ended_at,
                )
            ).scalar()
            if later:
                conn.execute(
                    q.update()
                    .where(q.c.queue_id == p.queue_id, q.c.status == "pending")
                    .values(status="superseded", status_at=now)
                )

    # ------------------------------------------------------------------ dead letters
    def _dead_letter(
        self,
        inbox_id: int,
        provider: str,
        body: bytes,
        label: str,
        error: str,
        kind: str,
        n: Normalized | None,
    ) -> Outcome:
        now = self._now()
        sha = hashlib.sha256(body).hexdigest()
        delivery = n.delivery_id if n is not None else None
        cid = sid = None
        mrr = None
        if n is not None:
            sid = n.subscription_id
            cid = (n.subscription or {}).get("customer_id") or (n.customer or {}).get("customer_id")
            mrr = (n.subscription or {}).get("mrr")
        else:
            cid, sid = _loose_ids(provider, body)
        dl = dead_letters_table
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(
                sa.select(inbox_table.c.body_sha256, inbox_table.c.body).where(
                    inbox_table.c.inbox_id == inbox_id
                )
            ).first()
            if row is not None:
                sha = row.body_sha256
                body = bytes(row.body)
            old = conn.execute(
                sa.select(dl.c.dead_letter_id, dl.c.attempts).where(
                    dl.c.provider == provider, dl.c.body_sha256 == sha
                )
            ).first()
            if old is None:
                conn.execute(
                    self._insert(dl)
                    .values(
                        provider=provider,
                        body_sha256=sha,
                        body=body,
                        label=label or None,
                        kind=kind,
                        error=error,
                        delivery_id=delivery,
                        customer_id=cid,
                        subscription_id=sid,
                        mrr_hint=mrr,
                        first_seen=now,
                        last_seen=now,
                        attempts=1,
                        status="open",
                    )
                    .on_conflict_do_nothing()
                )
                dlid = conn.execute(
                    sa.select(dl.c.dead_letter_id).where(
                        dl.c.provider == provider, dl.c.body_sha256 == sha
                    )
                ).scalar()
            else:
                dlid = old.dead_letter_id
                conn.execute(
                    dl.update()
                    .where(dl.c.dead_letter_id == dlid)
                    .values(
                        last_seen=now,
                        attempts=old.attempts + 1,
                        error=error,
                        kind=kind,
                        status="open",
                        resolved_at=None,
                        delivery_id=delivery or dl.c.delivery_id,
                        customer_id=cid or dl.c.customer_id,
                        subscription_id=sid or dl.c.subscription_id,
                        mrr_hint=mrr if mrr is not None else dl.c.mrr_hint,
                    )
                )
            conn.execute(
                inbox_table.update()
                .where(inbox_table.c.inbox_id == inbox_id)
                .values(status="dead_lettered", error=error, processed_at=now, delivery_id=delivery)
            )
        return Outcome(
            "dead_lettered",
            provider,
            label,
            delivery,
            reason=error,
            kind=kind,
            inbox_id=inbox_id,
            dead_letter_id=int(dlid),
        )

    def _dead_letter_unprocessed(
        self, provider: str, data: bytes, label: str, error: str
    ) -> Outcome:
        inbox_id, _ = self.store_raw(provider, data, label=label)
        return self._dead_letter(
            inbox_id, provider, data, label, error, classify_error(error), None
        )

    def replay(
        self,
        ids: Iterable[int] | None = None,
        *,
        subscription_id: str | None = None,
    ) -> list[Outcome]:
        """Retry open dead letters (all, the given ids, or those of one subscription).

        A dead letter that now goes through is marked ``resolved``; one that
        fails again gets ``attempts + 1`` and the new error.
        """
        self.create_schema()
        dl = dead_letters_table
        q = sa.select(dl.c.dead_letter_id, dl.c.provider, dl.c.body_sha256).where(
            dl.c.status == "open"
        )
        if ids is not None:
            q = q.where(dl.c.dead_letter_id.in_(list(ids)))
        if subscription_id is not None:
            q = q.where(dl.c.subscription_id == subscription_id)
        with self.engine.connect() as conn:
            todo = conn.execute(q.order_by(dl.c.dead_letter_id)).all()
        out = []
        for r in todo:
            with self.engine.connect() as conn:
                ib = conn.execute(
                    sa.select(inbox_table.c.inbox_id).where(
                        inbox_table.c.provider == r.provider,
                        inbox_table.c.body_sha256 == r.body_sha256,
                    )
                ).scalar()
            if ib is None:
                continue
            out.append(self.process(int(ib)))
        return out

    # ------------------------------------------------------------------ reporting
    def health(self, now: datetime | None = None) -> HealthReport:
        """Per source: volume, reject rate, last event (staleness); dead letters by MRR at stake."""
        self.create_schema()
        now = now or self._now()
        ib = inbox_table
        events_t = self.store.table("events")
        subs = self.store.table("subscriptions")
        day = now.replace(microsecond=0)

        with self.engine.connect() as conn:
            counts = conn.execute(
                sa.select(
                    ib.c.provider, ib.c.status, sa.func.count(), sa.func.max(ib.c.received_at)
                ).group_by(ib.c.provider, ib.c.status)
            ).all()
            recent = dict(
                conn.execute(
                    sa.select(ib.c.provider, sa.func.count())
                    .where(ib.c.received_at >= day - timedelta(hours=24))
                    .group_by(ib.c.provider)
                ).all()
            )
            last_event = dict(
                conn.execute(
                    sa.select(events_t.c.source, sa.func.max(events_t.c.occurred_at)).group_by(
                        events_t.c.source
                    )
                ).all()
            )
            dls = conn.execute(
                sa.select(dead_letters_table).where(dead_letters_table.c.status == "open")
            ).all()
            sub_mrr = dict(conn.execute(sa.select(subs.c.subscription_id, subs.c.mrr)).all())
            cust_mrr = dict(
                conn.execute(
                    sa.select(subs.c.customer_id, sa.func.sum(subs.c.mrr))
                    .where(subs.c.status.notin_(ENDED_STATUSES))
                    .group_by(subs.c.customer_id)
                ).all()
            )
        per: dict[str, dict[str, Any]] = {}
        for prov, status, cnt, last in counts:
            d = per.setdefault(
                prov,
                {
                    "source": prov,
                    "volume": 0,
                    "accepted": 0,
                    "duplicate": 0,
                    "dead_lettered": 0,
                    "received": 0,
                    "last_received_at": None,
                },
            )
            d["volume"] += cnt
            d[status] = d.get(status, 0) + cnt
            if last is not None and (d["last_received_at"] is None or last > d["last_received_at"]):
                d["last_received_at"] = last
        sources = []
        for prov in sorted(per):
            d = per[prov]
            d["volume_24h"] = int(recent.get(prov, 0))
            d["reject_rate"] = d["dead_lettered"] / d["volume"] if d["volume"] else 0.0
            src = PROVIDER_SOURCE[prov]
            d["last_event_at"] = (
                last_event.get(src)
                if prov != "csv"
                else max((v for v in last_event.values() if v is not None), default=None)
            )
            ref = d["last_received_at"]
            d["staleness_hours"] = (now - ref).total_seconds() / 3600 if ref else None
            sources.append(d)
        letters = []
        for r in dls:
            m = r._mapping
            stake = 0.0
            if m["subscription_id"] and sub_mrr.get(m["subscription_id"]) is not None:
                stake = float(sub_mrr[m["subscription_id"]])
            elif m["customer_id"] and cust_mrr.get(m["customer_id"]) is not None:
                stake = float(cust_mrr[m["customer_id"]])
            elif m["mrr_hint"] is not None:
                stake = float(m["mrr_hint"])
            letters.append(
                {
                    "dead_letter_id": m["dead_letter_id"],
                    "provider": m["provider"],
                    "kind": m["kind"],
                    "error": m["error"],
                    "label": m["label"],
                    "delivery_id": m["delivery_id"],
                    "subscription_id": m["subscription_id"],
                    "customer_id": m["customer_id"],
                    "mrr_at_stake": stake,
                    "attempts": m["attempts"],
                    "first_seen": m["first_seen"],
                    "last_seen": m["last_seen"],
                }
            )
        letters.sort(key=lambda d: (-d["mrr_at_stake"], d["first_seen"], d["dead_letter_id"]))
        return HealthReport(now=now, sources=sources, dead_letters=letters)

    def counts(self) -> dict[str, int]:
        """Rows per intake and contract table (for tests and the CLI)."""
        self.create_schema()
        out = {}
        with self.engine.connect() as conn:
            for t in (inbox_table, dead_letters_table, snapshots_table, winback_queue_table):
                out[t.name] = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar())
            for name in ("customers", "subscriptions", "events"):
                t = self.store.table(name)
                out[name] = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar())
        return out


def _sha_of_inbox(conn: sa.Connection, inbox_id: int) -> str | None:
    return conn.execute(
        sa.select(inbox_table.c.body_sha256).where(inbox_table.c.inbox_id == inbox_id)
    ).scalar()


def _ok(v: Any, rx: re.Pattern[str]) -> Any:
    if isinstance(v, str) and rx.match(v):
        return v
    return None


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is not b
        return not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a != b


def _event_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [c for c in _EVENT_COLS if _differs(old[c], new[c])]


def _finish_subscription(
    folded: dict[str, Any],
    events: list[tuple[datetime, str, str | None]],
    fx_rates: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Make a folded snapshot a contract-consistent subscription row."""
    row = {c: folded.get(c) for c in _SUB_COLS}
    events = sorted(events, key=lambda x: x[0])
    # the latest end of service and the latest return decide the status
    last_end = next(((t, et, r) for t, et, r in reversed(events) if et in ENDED_STATUSES), None)
    last_back = next(
        (
            t
            for t, et, _ in reversed(events)
            if et in ("subscribed", "reactivated", "renewed", "payment_recovered")
        ),
        None,
    )
    if last_end is not None and (last_back is None or last_back <= last_end[0]):
        if row.get("status") not in ENDED_STATUSES:
            row["status"] = last_end[1]
        row["ended_at"] = row.get("ended_at") or last_end[0]
        if row.get("cancel_reason") is None:
            row["cancel_reason"] = last_end[2]
    if row.get("status") in ENDED_STATUSES:
        if row.get("ended_at") is None:
            # no end event and no end time in the payloads: the time of the latest
            # snapshot that showed the ended status (order-independent)
            row["ended_at"] = last_end[0] if last_end is not None else folded.get("__last_at__")
    elif row.get("status") is not None:
        row["ended_at"] = None
    if row.get("started_at") is None and events:
        first_sub = next((t for t, et, _ in events if et == "subscribed"), None)
        row["started_at"] = first_sub
    if row.get("price") is not None and row.get("billing_interval") is not None:
        monthly = row["price"] / 12.0 if row["billing_interval"] == "year" else row["price"]
        rate = 1.0
        if fx_rates is not None and row.get("currency") is not None:
            rate = float(fx_rates.get(row["currency"], 1.0))
        row["mrr"] = round(monthly * rate, 2)
    st, en, cr = row.get("started_at"), row.get("ended_at"), row.get("cancel_requested_at")
    if st is not None and en is not None and en < st:
        row["ended_at"] = st
        en = st
    if cr is not None:
        if st is not None and cr < st:
            row["cancel_requested_at"] = st
        if en is not None and row["cancel_requested_at"] > en:
            row["cancel_requested_at"] = en
    if row.get("status") not in ENDED_STATUSES and row.get("cancel_requested_at") is None:
        # live and no cancel intent: no reason or comment (a cancel was undone or never made)
        row["cancel_reason"] = None
        row["cancel_comment"] = None
    return row
