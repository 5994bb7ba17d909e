"""The embedded store: the contract tables in one SQL database.

By default a local SQLite file, ``<cwd>/data/winback.db`` (or the URL in the
environment variable ``WINBACK_STORE_URL``); the same code runs on PostgreSQL
(``postgresql+psycopg://user:pw@127.0.0.1:5432/db``).

The schema is generated from :mod:`winback_ml.data.contract`: one SQL table
per contract table, with its primary key, NOT NULL constraints and unique
ids. Other stages (intake, dispatch) keep their own tables on the same
engine with their own ``MetaData``.

Writes are atomic: :meth:`Store.write` validates everything first and then
replaces (or appends to) the tables in a single transaction, so a bad input
leaves what was stored untouched.

Timestamps are stored as naive UTC ``TIMESTAMP`` columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from winback_ml.data.contract import TABLES
from winback_ml.data.loader import ContractData, format_violations, load_data
from winback_ml.exceptions import DataContractError

__all__ = ["Store", "default_store_url", "contract_metadata"]

_SA_TYPES = {
    "string": sa.Text,
    "timestamp": sa.DateTime,
    "date": sa.DateTime,
    "float": sa.Float,
    "int": sa.BigInteger,
    "bool": sa.Boolean,
}


def default_store_url() -> str:
    """``WINBACK_STORE_URL`` or a SQLite file under ``<cwd>/data/``."""
    url = os.environ.get("WINBACK_STORE_URL")
    if url:
        return url
    return f"sqlite:///{(Path.cwd() / 'data' / 'winback.db').resolve()}"


def contract_metadata() -> sa.MetaData:
    """SQLAlchemy tables for every contract table (keys and NOT NULL from the contract)."""
    md = sa.MetaData()
    for name, table in TABLES.items():
        cols = []
        for c in table.columns:
            cols.append(
                sa.Column(
                    c.name,
                    _SA_TYPES[c.kind](),
                    nullable=c.nullable,
                    primary_key=c.name in table.key,
                )
            )
        sa.Table(name, md, *cols)
    # look-ups every stage makes: a customer's history in time order
    for name, cols in _INDEXES.items():
        sa.Index(f"ix_{name}_{'_'.join(cols)}", *(md.tables[name].c[c] for c in cols))
    return md


_INDEXES = {
    "events": ("customer_id", "occurred_at"),
    "subscriptions": ("customer_id",),
    "support_tickets": ("customer_id",),
}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Store:
    """The contract tables in an SQL database.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; default :func:`default_store_url`.

    Examples
    --------
    >>> from winback_ml.data.store import Store
    >>> store = Store("sqlite:///:memory:")
    >>> store.create_schema()
    >>> sorted(store.table_names())[:3]
    ['campaign_arms', 'campaign_assignments', 'campaigns']
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        self._engine: sa.Engine | None = None
        self.metadata = contract_metadata()

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = sa.make_url(self.url)
            kw: dict[str, Any] = {"future": True}
            if url.get_backend_name() == "sqlite":
                db = url.database
                if db and db != ":memory:":
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                else:
                    kw["poolclass"] = sa.pool.StaticPool
                kw["connect_args"] = {"timeout": 30, "check_same_thread": False}
            self._engine = sa.create_engine(url, **kw)
            if url.get_backend_name() == "sqlite":
                sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def table(self, name: str) -> sa.Table:
        """The SQLAlchemy table of a contract table."""
        if name not in self.metadata.tables:
            raise KeyError(f"{name!r} is not a contract table; use one of {list(TABLES)}")
        return self.metadata.tables[name]

    def table_names(self) -> list[str]:
        """Tables that exist in the database (contract and others)."""
        return sa.inspect(self.engine).get_table_names()

    def create_schema(self) -> None:
        """Create the contract tables that do not exist yet (never drops anything)."""
        self.metadata.create_all(self.engine, checkfirst=True)

    def exists(self) -> bool:
        """True when the required contract tables exist and ``customers`` has rows."""
        names = set(self.table_names())
        if not {"customers", "subscriptions", "events"} <= names:
            return False
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.select(sa.func.count()).select_from(self.table("customers"))
                ).scalar()
            )

    def write(
        self, data: ContractData | Mapping[str, pd.DataFrame], *, replace: bool = True
    ) -> dict[str, int]:
        """Validate and store the contract tables in one transaction.

        With ``replace`` (default) the given tables replace what is stored;
        otherwise rows are appended (duplicates of a key then fail the whole
        write). Nothing is written when validation or any insert fails.

        Returns rows written per table.
        """
        cd = data if isinstance(data, ContractData) else load_data(dict(data))
        if cd.as_of is not None:
            raise DataContractError(
                "Store.write got data cut as of a date; store the full history (load without as_of)."
            )
        tables = cd.tables()
        if replace:
            self._check_kept_tables(tables)
        else:
            # validate the union of what is stored and what comes, so references hold
            stored = self.read(validate=False).tables() if self.exists() else {}
            union = {
                n: pd.concat([stored[n], df], ignore_index=True) if n in stored else df
                for n, df in tables.items()
            }
            for n, df in stored.items():
                union.setdefault(n, df)
            try:
                load_data(union)
            except DataContractError as e:
                raise DataContractError(
                    "Appending would break the contract; nothing was written.\n"
                    + format_violations(e.violations),
                    e.violations,
                ) from e
        self.create_schema()
        written = {}
        with self.engine.begin() as conn:
            for name, df in tables.items():
                tbl = self.table(name)
                if replace:
                    conn.execute(tbl.delete())
                records = _records(df, [c.name for c in tbl.columns])
                for i in range(0, len(records), 50_000):
                    conn.execute(tbl.insert(), records[i : i + 50_000])
                written[name] = len(records)
        return written

    def _check_kept_tables(self, tables: Mapping[str, pd.DataFrame]) -> None:
        """Refuse a replacing write that would leave stored tables pointing at rows now gone.

        The stored contract tables not given (``usage``, ``campaign_assignments``, ...) stay;
        they must still hold with the new tables (a folder without campaigns loaded over the
        sample world would otherwise leave the sample's campaigns behind).
        """
        if not self.exists():
            return
        others = (set(self.table_names()) & set(TABLES)) - set(tables)
        if not others:
            return
        stored = self.read(validate=False).tables()
        kept = {n: stored[n] for n in sorted(others) if n in stored and len(stored[n])}
        if not kept:
            return
        try:
            load_data({**tables, **kept})
        except DataContractError as e:
            raise DataContractError(
                f"Replacing {sorted(tables)} would leave the stored tables {sorted(kept)} "
                "breaking the contract with the new rows; nothing was written. Fix: load those "
                "tables too (from the same export), or write into a new store.\n"
                + format_violations(e.violations),
                e.violations,
            ) from e

    def read(self, as_of: Any = None, *, validate: bool = True) -> ContractData:
        """All stored contract tables as :class:`ContractData` (optionally cut as of a date)."""
        return load_data(self.url, as_of=as_of, validate=validate)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _records(df: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Rows as dicts with Python scalars and ``None`` for missing values."""
    sub = df[[c for c in columns if c in df.columns]]
    out = sub.astype(object).where(sub.notna(), None)
    return out.to_dict("records")
