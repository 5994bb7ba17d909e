"""Input handling shared by the cohort modules (private).

Every public function of :mod:`winback_ml.cohort` accepts either a
:class:`~winback_ml.data.loader.ContractData` or a ``dict`` of contract
DataFrames. This module turns both into a ``ContractData`` cut as of the run
date, so that the rest of the stage reads typed, tz-naive UTC frames in which
nothing after ``as_of`` is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from winback_ml.data.loader import ContractData, cut_as_of, load_data, to_timestamp
from winback_ml.exceptions import ConfigError, DataContractError

__all__ = ["as_contract_data", "resolve_as_of", "require_columns"]


def _latest_time(data: ContractData) -> pd.Timestamp:
    """The latest timestamp in the lifecycle tables (the default ``as_of``)."""
    cands = [data.events["occurred_at"].max(), data.subscriptions["started_at"].max()]
    cands.append(data.subscriptions["ended_at"].max())
    cands = [c for c in cands if pd.notna(c)]
    if not cands:
        raise DataContractError(
            "Cannot infer 'as_of': the events and subscriptions tables hold no timestamp. "
            "Pass as_of explicitly or load non-empty tables."
        )
    return pd.Timestamp(max(cands))


def _latest_any(data: ContractData) -> pd.Timestamp:
    """The latest timestamp of any row of any table (usage weeks count from their end)."""
    cols = {
        "customers": ["signup_at"],
        "subscriptions": ["started_at", "ended_at", "cancel_requested_at"],
        "events": ["occurred_at"],
        "support_tickets": ["created_at"],
        "interviews": ["answered_at"],
        "campaigns": ["started_at", "ended_at"],
        "campaign_assignments": ["assigned_at"],
    }
    latest = [pd.Timestamp.min]
    for name, cs in cols.items():
        df = getattr(data, name)
        if df is None:
            continue
        latest += [df[c].max() for c in cs if c in df.columns and len(df)]
    if data.usage is not None and len(data.usage):
        latest.append(data.usage["week_start"].max() + pd.Timedelta(days=7))
    return max(t for t in latest if pd.notna(t))


def as_contract_data(
    data: ContractData | Mapping[str, pd.DataFrame], as_of: Any = None
) -> tuple[ContractData, pd.Timestamp]:
    """``data`` as a typed :class:`ContractData` cut as of ``as_of``, and that ``as_of``.

    ``as_of`` defaults to ``data.as_of`` when set, else to the latest
    timestamp found in ``events``/``subscriptions``. Asking for an ``as_of``
    after the one the data were loaded at raises :class:`ConfigError` (the
    data do not reach that far).
    """
    if isinstance(data, ContractData):
        cd = data
    elif isinstance(data, Mapping):
        cd = load_data(dict(data), validate=False)
    else:
        raise ConfigError(
            "The 'data' parameter must be a ContractData (from winback_ml.data.loader.load_data) "
            f"or a dict of contract DataFrames. Got {type(data).__name__} instead."
        )
    if as_of is None:
        ts = cd.as_of if cd.as_of is not None else _latest_time(cd)
        return cd, ts
    ts = to_timestamp(as_of)
    if cd.as_of is not None and ts > cd.as_of:
        raise ConfigError(
            f"as_of={ts} is later than the date the data were loaded at ({cd.as_of}). "
            f"Reload the data with load_data(source, as_of='{ts.date()}') or pass an earlier as_of."
        )
    if cd.as_of is not None and ts == cd.as_of:
        return cd, ts
    if cd.as_of is None and _latest_any(cd) <= ts:
        # nothing is dated after as_of: the cut would change nothing we read
        return replace(cd, as_of=ts), ts
    cut = cut_as_of(cd.tables(), ts)
    return (
        ContractData(**cut, as_of=ts, missing=list(cd.missing), source=cd.source),
        ts,
    )


def resolve_as_of(data: ContractData, as_of: Any) -> pd.Timestamp:
    """``as_of`` as a timestamp, defaulting to ``data.as_of``."""
    if as_of is None:
        return data.as_of if data.as_of is not None else _latest_time(data)
    return to_timestamp(as_of)


def require_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    """Raise :class:`DataContractError` naming the absent columns of ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataContractError(
            f"{what} must have the column(s) {missing}; found {list(df.columns)[:25]}. "
            f"Build it with the matching winback_ml.cohort function."
        )
