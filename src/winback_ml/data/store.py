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

A store that cannot be reached fails early and clearly: the engine is opened
with one probe connection the first time it is used, and a failure raises
:class:`~winback_ml.exceptions.StoreError` naming the URL with its password
masked (:func:`mask_url_password`), what failed (connection refused, unknown
host, authentication failed, database missing, timeout, SQLite file not
openable) and the fix, instead of a driver traceback. A URL that does not
parse, an unknown dialect or a missing driver raise it at construction.
Passwords never appear in these messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from winback_ml.data.contract import TABLES
from winback_ml.data.loader import ContractData, format_violations, load_data
from winback_ml.exceptions import DataContractError, StoreError

__all__ = [
    "Store",
    "default_store_url",
    "contract_metadata",
    "mask_url_password",
    "describe_connection_error",
]

_SA_TYPES = {
    "string": sa.Text,
    "timestamp": sa.DateTime,
    "date": sa.DateTime,
    "float": sa.Float,
    "int": sa.BigInteger,
    "bool": sa.Boolean,
}


# the password runs to the last '@' of the authority: a raw '@' in it ("u:p@ss@host") must
# not leave its tail ("ss") in the clear; the extra '@' segments hold no '/' (a path's '@')
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@(?:[^@/\s]*@)*"
)
# a password given as a query parameter (postgresql://h/db?user=u&password=pw, which libpq
# and SQLAlchemy accept) or as a key=value connection string (host=h password=pw)
_QUERY_PASSWORD = re.compile(
    r"(?P<head>(?<![\w.-])(?:password|passwd|pwd)=)[^&;#\s'\"]+", re.IGNORECASE
)


def mask_url_password(text: str) -> str:
    """Mask the password of every URL in ``text``: ``scheme://user:pw@`` -> ``scheme://user:***@``.

    Also ``?password=pw`` / ``&password=pw`` query parameters and ``password=pw``
    in a key=value connection string (``passwd``, ``pwd`` too) -> ``password=***``.

    Examples
    --------
    >>> mask_url_password("cannot reach postgresql+psycopg://app:s3cret@db:5432/x")
    'cannot reach postgresql+psycopg://app:***@db:5432/x'
    >>> mask_url_password("postgresql://db/x?user=app&password=s3cret")
    'postgresql://db/x?user=app&password=***'
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", text)


#: (words in the driver's message, what failed, the fix), first match wins
_CONNECT_FAILURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("password authentication failed", "authentication failed", "access denied"),
        "authentication failed",
        "check the user name and password in the URL (and that the user may connect to "
        "this database)",
    ),
    (
        (
            "could not translate host name",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
            "unknown host",
            "getaddrinfo failed",
        ),
        "unknown host",
        "check the host name in the URL (it does not resolve)",
    ),
    (
        ("connection refused",),
        "connection refused",
        "start the database server, or check the host and port in the URL (nothing listens there)",
    ),
    (
        ("does not exist",),
        "the database or role does not exist",
        "create the database (e.g. createdb) or fix its name in the URL",
    ),
    (
        ("timeout", "timed out"),
        "connection timed out",
        "check the host and port in the URL and that no firewall drops the connection",
    ),
    (
        ("unable to open database file",),
        "SQLite cannot open the database file",
        "check that the file's folder exists and is writable, and the path in the URL",
    ),
)


def describe_connection_error(url: str, exc: BaseException) -> StoreError:
    """A :class:`StoreError` for a store that cannot be reached (password masked).

    Parameters
    ----------
    url : str
        The store URL (its password is masked in the message).
    exc : BaseException
        The driver's or SQLAlchemy's error.

    Returns
    -------
    StoreError
        Names the URL, what failed (connection refused, unknown host,
        authentication failed, ...) and the fix.
    """
    detail = str(getattr(exc, "orig", None) or exc)
    try:
        parsed = sa.make_url(url)
        q = parsed.query.get("password")
        passwords = [parsed.password, *([q] if isinstance(q, str) else list(q or ()))]
    except (sa.exc.ArgumentError, ValueError, TypeError):
        passwords = []
    for password in passwords:  # the URL's, and a ?password= one: raw, wherever they show
        if password and len(str(password)) >= 3:
            detail = detail.replace(str(password), "***")
    detail = mask_url_password(" ".join(detail.split()))[:300]
    low = detail.lower()
    what, fix = "cannot connect", "check the URL and that the database server accepts connections"
    for words, w, f in _CONNECT_FAILURES:
        if any(x in low for x in words):
            what, fix = w, f
            break
    return StoreError(
        f"Cannot connect to the store {mask_url_password(url)!r}: {what} ({detail}). "
        f"Fix: {fix} (the URL comes from --store, a data argument or WINBACK_STORE_URL)."
    )


def _parse_url(url: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise StoreError(
            f"The store URL {mask_url_password(str(url))!r} is not an SQLAlchemy URL. Fix: pass "
            "e.g. sqlite:///data/winback.db or postgresql+psycopg://user:password@host:5432/db "
            "(--store or WINBACK_STORE_URL)."
        ) from None


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
        _parse_url(self.url)  # a URL that does not parse is an error now, password masked
        self._engine: sa.Engine | None = None
        self.metadata = contract_metadata()

    def __repr__(self) -> str:
        return f"Store({mask_url_password(self.url)!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, opened (and probed with one connection) on first use.

        Raises
        ------
        StoreError
            The database cannot be reached, the dialect is unknown or its
            driver is not installed (the message masks the password).
        """
        if self._engine is None:
            url = _parse_url(self.url)
            kw: dict[str, Any] = {"future": True}
            if url.get_backend_name() == "sqlite":
                db = url.database
                if db and db != ":memory:":
                    try:
                        Path(db).parent.mkdir(parents=True, exist_ok=True)
                    except OSError as e:
                        raise StoreError(
                            f"Cannot open the SQLite store {self.url!r}: its folder "
                            f"{str(Path(db).parent)!r} cannot be created ({e.strerror}). Fix: "
                            "pass a path in a writable folder (--store or WINBACK_STORE_URL)."
                        ) from None
                else:
                    kw["poolclass"] = sa.pool.StaticPool
                kw["connect_args"] = {"timeout": 30, "check_same_thread": False}
            try:
                engine = sa.create_engine(url, **kw)
            except (sa.exc.NoSuchModuleError, ImportError) as e:
                raise StoreError(
                    f"The store URL {mask_url_password(self.url)!r} needs the database "
                    f"dialect/driver {url.drivername!r}, which is not installed or not known "
                    f"({type(e).__name__}). Fix: use sqlite:///... or postgresql+psycopg://..., "
                    "or install the driver."
                ) from None
            if url.get_backend_name() == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            try:  # one probe: an unreachable store fails here, clearly, not deep in a query
                with engine.connect():
                    pass
            except (sa.exc.DBAPIError, OSError) as e:
                engine.dispose()
                raise describe_connection_error(self.url, e) from None
            self._engine = engine
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
        self.engine  # noqa: B018 - an unreachable store: the clear error, not the loader's
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
