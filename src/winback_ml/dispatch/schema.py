"""Dispatch's own tables, on the store's engine, in their own ``MetaData``.

Tables (all timestamps naive UTC ``TIMESTAMP``; ``lease_until`` is wall-clock
epoch seconds, because leases protect against crashed *processes*, whereas
``due_at``/``sent_at`` follow the logical clock ``now`` of a tick):

``dispatch_enrolments``
    One row per (campaign, customer): the sequence, the offer, the arm, the
    code. ``UNIQUE(customer_id, campaign_id)``: a customer is enrolled once.
``dispatch_outbox``
    One row per message: (enrolment, step). ``idempotency_key`` is
    ``UNIQUE`` and is the e-mail's ``Message-ID``. ``state`` is one of
    :data:`OUTBOX_STATES`.
``dispatch_codes``
    Every discount code ever issued. ``code`` is the primary key: uniqueness
    is a database constraint, not a hope.
``dispatch_suppression``
    Who must not be contacted, on which channel (``*`` = all), and why.
``dispatch_inapp``
    The in-app outbox table the product reads (the ``outbox-table`` in-app
    channel); ``idempotency_key`` ``UNIQUE``.
``dispatch_kv``
    Small settings kept with the data (the unsubscribe signing secret when
    none is given in the environment).

:class:`DispatchDB` wraps a :class:`~winback_ml.data.store.Store` (or a URL)
and creates these tables on first use. PII never goes into these tables
beyond what a channel needs at send time: addresses are read from
``customers`` when a message is sent and are not copied; suppressed
addresses are kept as SHA-256 hashes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = [
    "DISPATCH_METADATA",
    "OUTBOX_STATES",
    "DispatchDB",
    "enrolments",
    "outbox",
    "codes",
    "suppression",
    "inapp",
    "kv",
]

#: pending -> claimed (lease) -> sending -> sent; or failed back to pending
#: (retry with backoff), dead (dead letter, with ``last_error``), cancelled
#: (a stop rule), skipped (no consent / channel not reachable for this customer).
OUTBOX_STATES = ("pending", "claimed", "sending", "sent", "dead", "cancelled", "skipped")

DISPATCH_METADATA = sa.MetaData()

enrolments = sa.Table(
    "dispatch_enrolments",
    DISPATCH_METADATA,
    sa.Column("enrolment_id", sa.String(64), primary_key=True),
    sa.Column("campaign_id", sa.String(200), nullable=False),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("arm_id", sa.String(200), nullable=False),
    sa.Column("is_control", sa.Boolean, nullable=False),
    sa.Column("sequence_id", sa.String(100), nullable=False),
    sa.Column("segment", sa.String(40)),
    sa.Column("cancel_reason", sa.String(40)),
    sa.Column("reason_source", sa.String(20)),
    sa.Column("plan_tier", sa.String(100)),
    sa.Column("offer_type", sa.String(40), nullable=False),
    sa.Column("discount_pct", sa.Float, nullable=False),
    sa.Column("discount_months", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("message_variant", sa.String(100), nullable=False),
    sa.Column("code", sa.String(40)),
    sa.Column("lapsed_at", sa.DateTime, nullable=False),  # a return after this stops the sequence
    sa.Column("enrolled_at", sa.DateTime, nullable=False),
    sa.Column("start_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # active, holdout, stopped
    sa.Column("stopped_at", sa.DateTime),
    sa.Column("stop_reason", sa.String(200)),
    sa.UniqueConstraint("customer_id", "campaign_id", name="uq_dispatch_enrol_customer_campaign"),
)
sa.Index("ix_dispatch_enrol_customer", enrolments.c.customer_id, enrolments.c.status)

outbox = sa.Table(
    "dispatch_outbox",
    DISPATCH_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(80), nullable=False, unique=True),
    sa.Column("enrolment_id", sa.String(64), nullable=False),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("sequence_id", sa.String(100), nullable=False),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("step_name", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("template", sa.String(200), nullable=False),
    sa.Column("due_at", sa.DateTime, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(80)),
    sa.Column("lease_until", sa.Float),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.DateTime),
)
sa.Index("ix_dispatch_outbox_due", outbox.c.state, outbox.c.next_attempt_at)
sa.Index("ix_dispatch_outbox_customer", outbox.c.customer_id, outbox.c.state)
sa.Index("ix_dispatch_outbox_lease", outbox.c.lease_owner)

codes = sa.Table(
    "dispatch_codes",
    DISPATCH_METADATA,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("enrolment_id", sa.String(64), unique=True),
    sa.Column("campaign_id", sa.String(200)),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("offer_type", sa.String(40), nullable=False),
    sa.Column("discount_pct", sa.Float, nullable=False),
    sa.Column("discount_months", sa.Integer, nullable=False),
    sa.Column("issued_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
    sa.Column("redeemed_at", sa.DateTime),
    sa.Column("redeemed_event_id", sa.String(200)),
)
sa.Index("ix_dispatch_codes_customer", codes.c.customer_id)

suppression = sa.Table(
    "dispatch_suppression",
    DISPATCH_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(200)),
    sa.Column("address_hash", sa.String(64)),
    sa.Column("channel", sa.String(20), nullable=False),  # email, sms, in_app or *
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("detail", sa.Text),
)
sa.Index("ix_dispatch_suppression_customer", suppression.c.customer_id)
sa.Index("ix_dispatch_suppression_address", suppression.c.address_hash)

inapp = sa.Table(
    "dispatch_inapp",
    DISPATCH_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(80), nullable=False, unique=True),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("read_at", sa.DateTime),
)

kv = sa.Table(
    "dispatch_kv",
    DISPATCH_METADATA,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


class DispatchDB:
    """Dispatch's view of the store: its engine, its tables and the contract tables.

    Parameters
    ----------
    store : Store, str or None
        A :class:`winback_ml.data.store.Store`, an SQLAlchemy URL, or None for
        the default store (``WINBACK_STORE_URL``).

    Examples
    --------
    >>> db = DispatchDB("sqlite:///:memory:")
    >>> db.create_schema()
    >>> "dispatch_outbox" in db.store.table_names()
    True
    """

    def __init__(self, store: Any = None) -> None:
        from winback_ml.data.store import Store

        if isinstance(store, DispatchDB):
            store = store.store
        self.store = store if isinstance(store, Store) else Store(store)
        self._ready = False

    @property
    def engine(self) -> sa.Engine:
        return self.store.engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def contract(self, name: str) -> sa.Table:
        """The SQLAlchemy table of a contract table (``customers``, ``campaigns``, ...)."""
        return self.store.table(name)

    def create_schema(self) -> None:
        """Create dispatch's tables and the contract tables that do not exist (drops nothing)."""
        if self._ready:
            return
        self.store.create_schema()
        DISPATCH_METADATA.create_all(self.engine, checkfirst=True)
        self._ready = True

    def insert_ignore(
        self,
        table: sa.Table,
        rows: list[dict[str, Any]] | dict[str, list[Any]],
        chunk: int = 20_000,
        conn: sa.Connection | None = None,
    ) -> None:
        """Insert rows, skipping those that collide with a unique key (idempotent enqueue).

        ``rows`` is a list of dicts or a dict of equally long columns. With
        ``conn`` the rows go into the caller's transaction.
        """
        if isinstance(rows, dict):
            names = list(rows)
            n = len(rows[names[0]]) if names else 0
            if n == 0:
                return
            if conn is None:
                with self.engine.begin() as c:
                    self.insert_ignore(table, rows, chunk, c)
                return
            for i in range(0, n, chunk):
                part = [
                    dict(zip(names, vals, strict=True))
                    for vals in zip(*(rows[k][i : i + chunk] for k in names), strict=True)
                ]
                self.insert_ignore(table, part, chunk, conn)
            return
        if not rows:
            return
        if conn is None:
            with self.engine.begin() as c:
                self.insert_ignore(table, rows, chunk, c)
            return
        if self.dialect == "sqlite":
            _sqlite_insert_or_ignore(conn, table, rows, chunk)
            return
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - other dialects are not supported by the store
            raise NotImplementedError(f"insert_ignore on {self.dialect!r}")
        stmt = insert(table).on_conflict_do_nothing()
        for i in range(0, len(rows), chunk):
            conn.execute(stmt, rows[i : i + chunk])


def _sqlite_insert_or_ignore(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], chunk: int
) -> None:
    """``INSERT OR IGNORE`` through the DB-API's executemany, with SQLAlchemy's own bind processors.

    Same stored values as ``conn.execute(insert(...), rows)`` (datetimes in
    SQLAlchemy's SQLite format), without its per-row parameter overhead.
    """
    dialect = conn.dialect
    cols = [c for c in table.columns if any(c.name in r for r in rows[:1])]
    procs = [c.type._cached_bind_processor(dialect) for c in cols]
    names = [c.name for c in cols]
    sql = (
        f'INSERT OR IGNORE INTO "{table.name}" ({", ".join(chr(34) + n + chr(34) for n in names)}) '
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    for i in range(0, len(rows), chunk):
        params = [
            tuple(
                (p(r.get(n)) if p is not None and r.get(n) is not None else r.get(n))
                for n, p in zip(names, procs, strict=True)
            )
            for r in rows[i : i + chunk]
        ]
        conn.exec_driver_sql(sql, params)
