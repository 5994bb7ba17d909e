"""Load the contract tables, check every rule of the contract, cut as of a date.

Sources
-------
* a folder with one file per table, ``<table>.parquet`` or ``<table>.csv``
  (Parquet wins when both exist; other files are ignored);
* an SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``) with one
  table per contract table;
* a ``dict`` of pandas DataFrames keyed by table name.

Invariants of the frames in a :class:`ContractData`
---------------------------------------------------
* exactly the contract's columns first, in contract order, then any extra
  columns the source had (the contract may be extended, never shrunk);
* timestamps are ``datetime64[ns]``, tz-naive, UTC: aware inputs are converted
  to UTC, naive inputs are taken as UTC;
* money ``float64`` in major units; non-null integers ``int64``; nullable
  integers pandas ``Int64``; booleans ``bool``; strings ``object`` with
  ``None`` for missing.

Validation reports *every* problem at once (a list of
:class:`~winback_ml.data.contract.Violation`), each naming the table, the
column, the rule, the first offending ids and the fix.

``as_of``
---------
``load_data(source, as_of=T)`` returns the data as it stood at ``T``: no row
dated after ``T`` is visible, and a subscription that ended after ``T``
appears as it stood at ``T`` (status back to ``active``/``past_due``, no
``ended_at``, no reason or comment unless the cancel request came before
``T``, ``current_period_end`` rolled back to the period in progress at
``T``). Usage weeks are visible only once complete (``week_start + 7 days <=
T``). See :func:`cut_as_of` for the rule per table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.data.contract import (
    CAMPAIGN_TABLES,
    ENDED_STATUSES,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    TABLES,
    Column,
    Table,
    Violation,
)
from winback_ml.exceptions import ConfigError, DataContractError

__all__ = [
    "ContractData",
    "load_data",
    "read_tables",
    "coerce_tables",
    "validate_tables",
    "cut_as_of",
    "format_violations",
    "to_timestamp",
    "add_months",
]

#: Tolerance for "a subscription starts after the customer signed up" (providers
#: create the customer and the subscription in either order within seconds).
SIGNUP_TOLERANCE = pd.Timedelta(days=1)
_MAX_EXAMPLES = 5
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


@dataclass
class ContractData:
    """The contract tables of one business, typed and validated.

    Optional tables that are absent are ``None`` and named in ``missing``.
    """

    customers: pd.DataFrame
    subscriptions: pd.DataFrame
    events: pd.DataFrame
    usage: pd.DataFrame | None = None
    support_tickets: pd.DataFrame | None = None
    interviews: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None
    campaign_arms: pd.DataFrame | None = None
    campaign_assignments: pd.DataFrame | None = None
    as_of: pd.Timestamp | None = None
    missing: list[str] = field(default_factory=list)
    source: str = ""

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables that are present, by name."""
        return {n: getattr(self, n) for n in TABLES if getattr(self, n) is not None}

    def table(self, name: str) -> pd.DataFrame | None:
        if name not in TABLES:
            raise KeyError(f"{name!r} is not a contract table; use one of {list(TABLES)}")
        return getattr(self, name)

    def __getitem__(self, name: str) -> pd.DataFrame | None:
        return self.table(name)

    def has(self, name: str) -> bool:
        return self.table(name) is not None

    def copy(self) -> ContractData:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for n in TABLES:
            if kw[n] is not None:
                kw[n] = kw[n].copy()
        kw["missing"] = list(self.missing)
        return ContractData(**kw)

    def summary(self) -> dict[str, int]:
        """Rows per present table."""
        return {n: len(df) for n, df in self.tables().items()}


# --------------------------------------------------------------------------- reading


def _is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", source))


def read_tables(
    source: str | Path | Mapping[str, pd.DataFrame],
) -> tuple[dict[str, pd.DataFrame], str]:
    """Read the raw contract tables from a folder, an SQLAlchemy URL or a dict.

    Returns the raw frames (not yet typed) and a description of the source.
    Raises :class:`DataContractError` when the source does not exist.
    """
    if isinstance(source, Mapping):
        return {k: v.copy() for k, v in source.items() if k in TABLES}, "<frames>"
    src = str(source)
    if _is_url(src):
        return _read_sql(src), _redact_url(src)
    path = Path(src)
    if not path.exists():
        raise DataContractError(
            f"The data source {src!r} does not exist. Pass a folder with <table>.csv/.parquet "
            "files or an SQLAlchemy URL (e.g. sqlite:///data/winback.db)."
        )
    if not path.is_dir():
        raise DataContractError(
            f"The data source {src!r} is a file, not a folder. Pass the folder that holds "
            "customers.csv, subscriptions.csv, events.csv, ... or an SQLAlchemy URL."
        )
    out: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        pq, csv = path / f"{name}.parquet", path / f"{name}.csv"
        try:
            if pq.exists():
                out[name] = pd.read_parquet(pq)
            elif csv.exists():
                out[name] = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
        except Exception as e:  # unreadable file: say which
            raise DataContractError(
                f"Table {name!r}: the file {str(pq if pq.exists() else csv)!r} cannot be read "
                f"({type(e).__name__}: {e}). Re-export it as UTF-8 CSV with a header row, or Parquet."
            ) from e
    return out, str(path)


def _redact_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _read_sql(url: str) -> dict[str, pd.DataFrame]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        out = {}
        with engine.connect() as conn:
            for name in TABLES:
                if name in names:
                    out[name] = pd.read_sql_table(name, conn)
        return out
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- typing


def to_timestamp(value: Any) -> pd.Timestamp:
    """A date or timestamp as a tz-naive UTC :class:`pandas.Timestamp`.

    Raises
    ------
    ConfigError
        ``value`` is empty or not a date (a ``ValueError`` too). An empty
        string used to become ``NaT``, and a cut at ``NaT`` hid every row.
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"The date {value!r} is not an ISO-8601 date or timestamp ({e}). "
            "Fix: pass e.g. 2025-12-31 or 2025-12-31T06:00:00."
        ) from e
    if pd.isna(ts):
        raise ConfigError(
            f"The date {value!r} is empty. Fix: pass an ISO-8601 date such as 2025-12-31 "
            "(or no as_of at all to see everything)."
        )
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _ids(df: pd.DataFrame, table: Table, mask: pd.Series | np.ndarray) -> list:
    """The first offending ids (the key column) or row numbers of a mask."""
    mask = np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(mask)[:_MAX_EXAMPLES]
    key = table.key[0] if len(table.key) == 1 else None
    if key and key in df.columns:
        return [df[key].iloc[i] for i in idx]
    if table.key and all(k in df.columns for k in table.key):
        return [tuple(str(df[k].iloc[i]) for k in table.key) for i in idx]
    return [f"row {i + 2}" for i in idx]  # row number as in a CSV with a header


def _type_violation(
    out: list[Violation],
    df: pd.DataFrame,
    table: Table,
    col: Column,
    bad: pd.Series,
    what: str,
    fix: str,
) -> None:
    """Record the values of ``col`` that could not be read as ``what``."""
    if bad.any():
        n = int(bad.sum())
        out.append(
            Violation(
                table.name,
                col.name,
                "type",
                f"{n} value(s) are not {what}",
                fix,
                n,
                _ids(df, table, bad),
            )
        )


def _coerce_column(
    s: pd.Series, col: Column, table: Table, df: pd.DataFrame, out: list[Violation]
) -> pd.Series:
    raw_null = s.isna()
    if s.dtype == object:
        raw_null |= s.eq("") | s.eq(" ")  # empty cells are missing
    if col.kind == "string":
        res = s.astype(object).where(~raw_null, None)
        if pd.api.types.infer_dtype(res, skipna=True) not in ("string", "empty"):
            res = res.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        return res
    if col.kind in ("timestamp", "date"):
        if pd.api.types.is_datetime64_any_dtype(s):
            res = s
            if getattr(res.dt, "tz", None) is not None:
                res = res.dt.tz_convert("UTC").dt.tz_localize(None)
        else:
            res = pd.to_datetime(
                s.where(~raw_null, None), errors="coerce", utc=True, format="ISO8601"
            )
            res = res.dt.tz_localize(None)
        res = res.astype("datetime64[ns]")
        bad = res.isna() & ~raw_null
        _type_violation(
            out,
            df,
            table,
            col,
            bad,
            f"ISO-8601 {'dates' if col.kind == 'date' else 'timestamps'}",
            "write timestamps as ISO-8601 (2025-06-30T12:00:00Z); naive ones are read as UTC",
        )
        if col.kind == "date":
            res = res.dt.normalize()
        return res
    if col.kind in ("float", "int"):
        res = pd.to_numeric(s.where(~raw_null, None), errors="coerce").astype("float64")
        bad = res.isna() & ~raw_null
        if col.kind == "int":
            frac = res.notna() & (res != np.floor(res.fillna(0)))
            bad = bad | frac
        _type_violation(
            out,
            df,
            table,
            col,
            bad,
            "integers" if col.kind == "int" else "numbers",
            "use plain numbers with '.' as the decimal separator (29.00), no currency symbols",
        )
        if col.kind == "int":
            # nullable Int64 here; non-null columns become int64 once validation passed
            return res.where(~bad).round().astype("Int64")
        return res
    if col.kind == "bool":
        if pd.api.types.is_bool_dtype(s):
            return s.astype("boolean")
        txt = s.astype(str).str.strip().str.lower()
        res = pd.Series(pd.NA, index=s.index, dtype="boolean")
        res[txt.isin(_TRUE)] = True
        res[txt.isin(_FALSE)] = False
        bad = res.isna() & ~raw_null
        _type_violation(out, df, table, col, bad, "booleans", "use true/false (or 1/0)")
        return res
    raise AssertionError(col.kind)  # pragma: no cover


def coerce_tables(
    raw: Mapping[str, pd.DataFrame],
) -> tuple[dict[str, pd.DataFrame], list[Violation]]:
    """Type every contract column; report missing columns and unparseable values."""
    out: list[Violation] = []
    typed: dict[str, pd.DataFrame] = {}
    for name, df in raw.items():
        table = TABLES[name]
        df = df.reset_index(drop=True)
        missing = [c for c in table.column_names if c not in df.columns]
        if missing:
            out.append(
                Violation(
                    name,
                    ", ".join(missing),
                    "missing_column",
                    f"required column(s) {missing} are absent (found {list(df.columns)[:20]})",
                    f"add the column(s) to {name}; the contract lists {table.column_names}",
                )
            )
        cols = {}
        for col in table.columns:
            if col.name in df.columns:
                cols[col.name] = _coerce_column(df[col.name], col, table, df, out)
        extra = [c for c in df.columns if c not in table.column_names]
        res = pd.DataFrame(cols, index=df.index)
        for c in extra:
            res[c] = df[c]
        typed[name] = res
    return typed, out


# --------------------------------------------------------------------------- rules


def _check_columns(df: pd.DataFrame, table: Table, out: list[Violation]) -> None:
    for col in table.columns:
        if col.name not in df.columns:
            continue
        s = df[col.name]
        null = s.isna()
        if not col.nullable and null.any():
            out.append(
                Violation(
                    table.name,
                    col.name,
                    "not_null",
                    f"{int(null.sum())} row(s) have no value",
                    f"fill {col.name} in every row of {table.name}",
                    int(null.sum()),
                    _ids(df, table, null),
                )
            )
        if col.enum is not None:
            bad = ~null & ~s.isin(col.enum)
            if bad.any():
                vals = sorted({str(v) for v in s[bad].head(50)})[:5]
                out.append(
                    Violation(
                        table.name,
                        col.name,
                        "enum",
                        f"{int(bad.sum())} value(s) outside the allowed set, e.g. {vals}",
                        f"use one of {list(col.enum)}",
                        int(bad.sum()),
                        _ids(df, table, bad),
                    )
                )
        if col.pattern is not None:
            sv = s[~null].astype(str)
            ok = sv.str.match(col.pattern)
            bad = pd.Series(False, index=s.index)
            bad[sv.index[~ok.to_numpy()]] = True
            if bad.any():
                out.append(
                    Violation(
                        table.name,
                        col.name,
                        "format",
                        f"{int(bad.sum())} value(s) do not match {col.doc or col.pattern}",
                        _format_fix(col),
                        int(bad.sum()),
                        _ids(df, table, bad),
                    )
                )
        if col.min is not None or col.max is not None:
            num = pd.to_numeric(s, errors="coerce").astype("float64")
            bad = pd.Series(False, index=s.index)
            if col.min is not None:
                bad |= num < col.min
            if col.max is not None:
                bad |= num > col.max
            if bad.any():
                rng = f">= {col.min:g}" if col.max is None else f"in {col.min:g}..{col.max:g}"
                out.append(
                    Violation(
                        table.name,
                        col.name,
                        "range",
                        f"{int(bad.sum())} value(s) not {rng}",
                        f"{col.name} must be {rng}",
                        int(bad.sum()),
                        _ids(df, table, bad),
                    )
                )
        if col.unique:
            dup = ~null & s.duplicated(keep=False)
            if dup.any():
                out.append(
                    Violation(
                        table.name,
                        col.name,
                        "unique",
                        f"{int(s[dup].nunique())} value(s) appear more than once, e.g. {list(s[dup].unique()[:5])}",
                        f"{col.name} must be unique: remove or merge the duplicates",
                        int(dup.sum()),
                        list(s[dup].unique()[:_MAX_EXAMPLES]),
                    )
                )
    if len(table.key) > 1 and all(k in df.columns for k in table.key):
        dup = df.duplicated(list(table.key), keep=False)
        if dup.any():
            out.append(
                Violation(
                    table.name,
                    ", ".join(table.key),
                    "unique",
                    f"{int(dup.sum())} row(s) share the key {table.key}",
                    f"each ({', '.join(table.key)}) must appear once",
                    int(dup.sum()),
                    _ids(df, table, dup),
                )
            )


def _format_fix(col: Column) -> str:
    return {
        "country": "use ISO 3166-1 alpha-2 upper case (DE, US) or leave empty",
        "currency": "use ISO 4217 upper case (USD, EUR)",
        "language": "use a BCP-47 primary tag in lower case (en, de) or leave empty",
        "phone": "use E.164 (+4915112345678) or leave empty",
        "email": "use a valid address or leave empty",
    }.get(col.name, f"match {col.pattern}")


def _check_references(t: Mapping[str, pd.DataFrame], out: list[Violation]) -> None:
    for name, df in t.items():
        table = TABLES[name]
        for here, there, cols in table.references:
            if there not in t or not all(c in df.columns for c in here):
                continue
            parent = t[there]
            if not all(c in parent.columns for c in cols):
                continue
            if len(here) == 1:
                child = df[here[0]]
                bad = child.notna() & ~child.isin(set(parent[cols[0]].dropna()))
            else:
                pk = pd.MultiIndex.from_frame(parent[list(cols)].astype(str))
                ck = pd.MultiIndex.from_frame(df[list(here)].astype(str))
                bad = pd.Series(~ck.isin(pk), index=df.index)
            if bad.any():
                vals = df.loc[bad, list(here)].drop_duplicates().head(_MAX_EXAMPLES)
                out.append(
                    Violation(
                        name,
                        ", ".join(here),
                        "reference",
                        f"{int(bad.sum())} row(s) point to {there}.{'/'.join(cols)} that does not exist, "
                        f"e.g. {[tuple(r) if len(r) > 1 else r[0] for r in vals.itertuples(index=False)]}",
                        f"add the missing {there} rows or drop these {name} rows",
                        int(bad.sum()),
                        _ids(df, table, bad),
                    )
                )


def _v(
    out: list[Violation],
    name: str,
    column: str,
    rule: str,
    mask: pd.Series,
    msg: str,
    fix: str,
    df: pd.DataFrame,
) -> None:
    mask = mask.fillna(False).astype(bool)
    if mask.any():
        out.append(
            Violation(
                name,
                column,
                rule,
                f"{int(mask.sum())} row(s) {msg}",
                fix,
                int(mask.sum()),
                _ids(df, TABLES[name], mask),
            )
        )


def _check_semantics(t: Mapping[str, pd.DataFrame], out: list[Violation]) -> None:
    has = lambda n, *cols: n in t and all(c in t[n].columns for c in cols)  # noqa: E731
    if has("subscriptions", "status", "ended_at", "started_at", "cancel_requested_at"):
        s = t["subscriptions"]
        ended = s["status"].isin(ENDED_STATUSES)
        _v(
            out,
            "subscriptions",
            "ended_at",
            "ended_at_required",
            ended & s["ended_at"].isna(),
            "are cancelled/expired without ended_at",
            "set ended_at (when access ended) for every cancelled or expired subscription",
            s,
        )
        _v(
            out,
            "subscriptions",
            "ended_at",
            "ended_at_forbidden",
            ~ended & s["status"].notna() & s["ended_at"].notna(),
            "have ended_at but a live status",
            "a live subscription (active/trialing/past_due/paused) has no ended_at: clear it or set status to cancelled/expired",
            s,
        )
        _v(
            out,
            "subscriptions",
            "ended_at",
            "time_order",
            s["ended_at"] < s["started_at"],
            "end before they start",
            "ended_at must be at or after started_at",
            s,
        )
        _v(
            out,
            "subscriptions",
            "cancel_requested_at",
            "time_order",
            s["cancel_requested_at"] < s["started_at"],
            "have a cancel request before the start",
            "cancel_requested_at must be at or after started_at",
            s,
        )
        _v(
            out,
            "subscriptions",
            "cancel_requested_at",
            "time_order",
            s["cancel_requested_at"] > s["ended_at"],
            "have a cancel request after access ended",
            "cancel_requested_at must be at or before ended_at",
            s,
        )
        if has("customers", "customer_id", "signup_at") and "customer_id" in s.columns:
            signup = s["customer_id"].map(
                t["customers"].drop_duplicates("customer_id").set_index("customer_id")["signup_at"]
            )
            _v(
                out,
                "subscriptions",
                "started_at",
                "time_order",
                s["started_at"] < signup - SIGNUP_TOLERANCE,
                "start more than a day before the customer signed up",
                "started_at must not precede customers.signup_at (by more than a day); fix either date",
                s,
            )
    if has(
        "events", "event_type", "amount", "currency", "reason", "subscription_id", "customer_id"
    ):
        e = t["events"]
        _v(
            out,
            "events",
            "amount",
            "sign",
            (e["event_type"] != "refunded") & (e["amount"] < 0),
            "move a negative amount on a non-refund event",
            "amounts are non-negative; only 'refunded' events may be negative",
            e,
        )
        _v(
            out,
            "events",
            "currency",
            "currency_required",
            e["amount"].notna() & e["currency"].isna(),
            "have an amount without a currency",
            "give the ISO 4217 currency of every amount",
            e,
        )
        _v(
            out,
            "events",
            "reason",
            "reason_on_end_only",
            e["reason"].notna()
            & ~e["event_type"].isin(("cancelled", "expired", "cancel_requested")),
            "carry a reason on an event that is not a cancellation",
            "reason belongs to cancel_requested/cancelled/expired events only",
            e,
        )
        if has("subscriptions", "subscription_id", "customer_id"):
            owner = e["subscription_id"].map(
                t["subscriptions"]
                .drop_duplicates("subscription_id")
                .set_index("subscription_id")["customer_id"]
            )
            _v(
                out,
                "events",
                "customer_id",
                "reference",
                owner.notna() & (owner != e["customer_id"]),
                "name a customer other than the subscription's owner",
                "events.customer_id must equal subscriptions.customer_id of its subscription_id",
                e,
            )
        if has("subscriptions", "subscription_id", "started_at") and "occurred_at" in e.columns:
            start = e["subscription_id"].map(
                t["subscriptions"]
                .drop_duplicates("subscription_id")
                .set_index("subscription_id")["started_at"]
            )
            _v(
                out,
                "events",
                "occurred_at",
                "time_order",
                e["occurred_at"] < start - SIGNUP_TOLERANCE,
                "occur more than a day before their subscription started",
                "occurred_at must not precede subscriptions.started_at; fix the event time or the start",
                e,
            )
    if has("usage", "week_start"):
        u = t["usage"]
        _v(
            out,
            "usage",
            "week_start",
            "monday",
            u["week_start"].notna() & (u["week_start"].dt.dayofweek != 0),
            "have a week_start that is not a Monday",
            "week_start is the Monday that starts the ISO week",
            u,
        )
    if has("campaign_arms", "offer_type", "discount_pct"):
        a = t["campaign_arms"]
        discounted = a["offer_type"].isin(("discount", "early_renewal"))
        _v(
            out,
            "campaign_arms",
            "discount_pct",
            "discount_consistency",
            ~discounted & (a["discount_pct"] > 0),
            "have a discount_pct on an offer that is not a discount",
            "discount_pct is 0 unless offer_type is discount or early_renewal",
            a,
        )
        _v(
            out,
            "campaign_arms",
            "discount_pct",
            "discount_consistency",
            (a["offer_type"] == "discount") & (a["discount_pct"] <= 0),
            "are discounts with discount_pct 0",
            "give the discount depth (0..100) or use offer_type 'none'",
            a,
        )
        if "is_control" in a.columns:
            _v(
                out,
                "campaign_arms",
                "offer_type",
                "control_arm",
                a["is_control"].fillna(False).astype(bool) & (a["offer_type"] != "none"),
                "are control arms with an offer",
                "a control arm is not contacted: its offer_type is 'none'",
                a,
            )
    if has("campaigns", "started_at", "ended_at"):
        c = t["campaigns"]
        _v(
            out,
            "campaigns",
            "ended_at",
            "time_order",
            c["ended_at"] < c["started_at"],
            "end before they start",
            "ended_at must be at or after started_at",
            c,
        )
    if has("campaign_assignments", "campaign_id", "assigned_at") and has(
        "campaigns", "campaign_id", "started_at"
    ):
        asg = t["campaign_assignments"]
        c = t["campaigns"].drop_duplicates("campaign_id").set_index("campaign_id")
        start = asg["campaign_id"].map(c["started_at"])
        _v(
            out,
            "campaign_assignments",
            "assigned_at",
            "time_order",
            asg["assigned_at"] < start,
            "are assigned before their campaign started",
            "assigned_at must be within the campaign's dates",
            asg,
        )
    present = [n for n in CAMPAIGN_TABLES if n in t]
    if present and len(present) < len(CAMPAIGN_TABLES):
        lacking = [n for n in CAMPAIGN_TABLES if n not in t]
        out.append(
            Violation(
                present[0],
                None,
                "optional_together",
                f"campaign tables are optional together: {present} present but {lacking} absent",
                f"provide {lacking} as well, or none of the campaign tables",
            )
        )


def validate_tables(tables: Mapping[str, pd.DataFrame], *, typed: bool = False) -> list[Violation]:
    """Every contract violation of ``tables`` (an empty list when they are valid).

    ``tables`` may be raw (strings from CSV) or already typed (``typed=True``
    skips the coercion step).
    """
    out: list[Violation] = []
    for name in REQUIRED_TABLES:
        if name not in tables:
            out.append(
                Violation(
                    name,
                    None,
                    "missing_table",
                    "required table is absent",
                    f"export {name} as {name}.csv or {name}.parquet (or a database table named {name})",
                )
            )
    if typed:
        t = dict(tables)
    else:
        t, cv = coerce_tables(tables)
        out.extend(cv)
    for name, df in t.items():
        _check_columns(df, TABLES[name], out)
    _check_references(t, out)
    _check_semantics(t, out)
    return out


def format_violations(violations: list[Violation], source: str = "") -> str:
    """A human report of all violations, grouped by table."""
    head = (
        f"{len(violations)} data contract violation(s)" + (f" in {source}" if source else "") + ":"
    )
    return "\n".join([head] + [f"  - {v}" for v in violations])


# --------------------------------------------------------------------------- as_of


def add_months(ts: pd.Series, months: np.ndarray | pd.Series | int) -> pd.Series:
    """``ts`` plus a whole number of calendar months (day clipped to the month's end), vectorised."""
    ts = pd.Series(ts).astype("datetime64[ns]")
    months = np.broadcast_to(np.asarray(months, dtype="int64"), ts.shape)
    total = ts.dt.year.to_numpy() * 12 + (ts.dt.month.to_numpy() - 1) + months
    year, month = total // 12, total % 12 + 1
    first = pd.to_datetime(
        {"year": year, "month": month, "day": np.ones_like(year)}, errors="coerce"
    )
    days_in = first.dt.days_in_month.to_numpy()
    day = np.minimum(ts.dt.day.to_numpy(), days_in)
    tod = (ts - ts.dt.normalize()).to_numpy()
    res = first.to_numpy() + (day - 1).astype("timedelta64[D]") + tod
    return pd.Series(res, index=ts.index, dtype="datetime64[ns]")


def _roll_period_end(started: pd.Series, interval: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """The end of the billing period in progress at ``as_of`` for subscriptions started at ``started``."""
    started = started.astype("datetime64[ns]")
    m = np.where(interval.to_numpy() == "year", 12, 1)
    elapsed = (as_of.year - started.dt.year.to_numpy()) * 12 + (
        as_of.month - started.dt.month.to_numpy()
    )
    k = np.maximum(np.nan_to_num(elapsed, nan=0).astype("int64") // m, 0)
    end = add_months(started, k * m)
    for _ in range(3):  # at most a step or two past a month boundary
        behind = (end <= as_of).to_numpy()
        if not behind.any():
            break
        k = k + behind
        end = add_months(started, k * m)
    return end.where(started.notna())


_PAYMENT_EVENTS = ("payment_failed", "payment_recovered", "renewed", "subscribed", "reactivated")


def cut_as_of(t: Mapping[str, pd.DataFrame], as_of: Any) -> dict[str, pd.DataFrame]:
    """The tables as they stood at ``as_of``: nothing dated after it is visible.

    Rules: customers signed up by ``as_of``; subscriptions started by it, those
    that ended later re-opened as they stood (see the module docstring); events,
    tickets, interviews, campaign assignments at or before it; usage weeks
    complete by it; campaigns started by it (``ended_at`` cleared if later) and
    their arms.
    """
    T = to_timestamp(as_of)
    out: dict[str, pd.DataFrame] = {}
    cust = t["customers"]
    out["customers"] = cust[cust["signup_at"] <= T].reset_index(drop=True)
    ev = t["events"]
    ev = ev[ev["occurred_at"] <= T].reset_index(drop=True)
    out["events"] = ev
    s = t["subscriptions"]
    s = s[s["started_at"] <= T].copy()
    later = s["ended_at"].notna() & (s["ended_at"] > T)
    open_ = later | s["ended_at"].isna()
    if later.any():
        req_later = later & (s["cancel_requested_at"].isna() | (s["cancel_requested_at"] > T))
        s.loc[later, "ended_at"] = pd.NaT
        s.loc[later, "status"] = "active"
        s.loc[req_later, ["cancel_reason", "cancel_comment"]] = None
        s.loc[req_later, "cancel_requested_at"] = pd.NaT
    # a cancel request made after as_of on a still-open subscription is not known yet
    req_future = open_ & s["cancel_requested_at"].notna() & (s["cancel_requested_at"] > T)
    s.loc[req_future, "cancel_requested_at"] = pd.NaT
    s.loc[req_future, ["cancel_reason", "cancel_comment"]] = None
    # status of open subscriptions from the payment events up to as_of: an unrecovered failure
    # is past_due. Open ones stored active/past_due are checked too, when a later payment event
    # shows that their stored status is the future's (failed, or recovered, after as_of).
    fut_pay = t["events"]
    fut_pay = fut_pay[(fut_pay["occurred_at"] > T) & fut_pay["event_type"].isin(_PAYMENT_EVENTS)]
    moved = s["subscription_id"].isin(fut_pay["subscription_id"])
    redo = later | (open_ & moved & s["status"].isin(("active", "past_due")))
    if redo.any() and len(ev):
        pay = ev[ev["event_type"].isin(_PAYMENT_EVENTS)]
        last = (
            pay.sort_values("occurred_at")
            .drop_duplicates("subscription_id", keep="last")
            .set_index("subscription_id")["event_type"]
        )
        lt = s.loc[redo, "subscription_id"].map(last)
        lt = lt[lt.notna()]
        s.loc[lt.index, "status"] = np.where(lt == "payment_failed", "past_due", "active")
    # the period end known at as_of
    pe = s["current_period_end"]
    fix = open_ & (pe.isna() | (pe > T))
    if fix.any():
        s.loc[fix, "current_period_end"] = _roll_period_end(
            s.loc[fix, "started_at"], s.loc[fix, "billing_interval"], T
        )
    out["subscriptions"] = s.reset_index(drop=True)
    if "usage" in t:
        u = t["usage"]
        out["usage"] = u[u["week_start"] + pd.Timedelta(days=7) <= T].reset_index(drop=True)
    if "support_tickets" in t:
        st = t["support_tickets"]
        out["support_tickets"] = st[st["created_at"] <= T].reset_index(drop=True)
    if "interviews" in t:
        iv = t["interviews"]
        out["interviews"] = iv[iv["answered_at"] <= T].reset_index(drop=True)
    if "campaigns" in t:
        c = t["campaigns"]
        c = c[c["started_at"] <= T].copy()
        c.loc[c["ended_at"] > T, "ended_at"] = pd.NaT
        out["campaigns"] = c.reset_index(drop=True)
        ids = set(c["campaign_id"])
        if "campaign_arms" in t:
            a = t["campaign_arms"]
            out["campaign_arms"] = a[a["campaign_id"].isin(ids)].reset_index(drop=True)
        if "campaign_assignments" in t:
            a = t["campaign_assignments"]
            out["campaign_assignments"] = a[
                a["campaign_id"].isin(ids) & (a["assigned_at"] <= T)
            ].reset_index(drop=True)
    return out


# --------------------------------------------------------------------------- entry point


def _finalise_dtypes(t: dict[str, pd.DataFrame]) -> None:
    """Non-null int/bool columns to numpy dtypes once validation has passed."""
    for name, df in t.items():
        for col in TABLES[name].columns:
            if col.name not in df.columns:
                continue
            if col.nullable or df[col.name].isna().any():
                continue
            if col.kind == "int":
                df[col.name] = df[col.name].astype("int64")
            elif col.kind == "bool":
                df[col.name] = df[col.name].astype(bool)


def load_data(
    source: str | Path | Mapping[str, pd.DataFrame] | ContractData,
    as_of: Any = None,
    *,
    validate: bool = True,
) -> ContractData:
    """Load, type and validate the contract tables; optionally cut them as of a date.

    Parameters
    ----------
    source : folder, SQLAlchemy URL, dict of DataFrames, or a ContractData
    as_of : date or timestamp, optional
        The date the run pretends is today: nothing after it is visible.
    validate : bool
        Check every contract rule and raise on violations (default). With
        ``False`` the tables are only typed (for tools that repair data).

    Raises
    ------
    DataContractError
        With every violation at once (``err.violations``).
    ConfigError
        ``as_of`` is empty or not a date (checked before anything is read).

    Examples
    --------
    >>> from winback_ml.data.loader import load_data
    >>> data = load_data("data/sample", as_of="2025-12-31")  # doctest: +SKIP
    >>> data.subscriptions.status.value_counts()  # doctest: +SKIP
    """
    ts = to_timestamp(as_of) if as_of is not None else None  # a bad date fails before reading
    if isinstance(source, ContractData):
        raw: dict[str, pd.DataFrame] = source.tables()
        desc = source.source or "<ContractData>"
    else:
        raw, desc = read_tables(source)
    typed, violations = coerce_tables(raw)
    for name in REQUIRED_TABLES:
        if name not in typed:
            violations.insert(
                0,
                Violation(
                    name,
                    None,
                    "missing_table",
                    "required table is absent",
                    f"export {name} as {name}.csv or {name}.parquet (or a database table named {name})",
                ),
            )
    if validate:
        for name, df in typed.items():
            _check_columns(df, TABLES[name], violations)
        _check_references(typed, violations)
        _check_semantics(typed, violations)
    if violations and (
        validate or any(v.rule in ("missing_table", "missing_column") for v in violations)
    ):
        raise DataContractError(format_violations(violations, desc), violations)
    _finalise_dtypes(typed)
    if ts is not None:
        typed = cut_as_of(typed, ts)
    missing = [n for n in OPTIONAL_TABLES if n not in typed]
    return ContractData(**typed, as_of=ts, missing=missing, source=desc)
