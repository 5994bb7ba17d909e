"""Small helpers shared by the dispatch modules (time, hashing).

Invariant: every datetime that leaves these helpers is naive UTC.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from winback_ml.exceptions import ConfigError

__all__ = ["utcnow", "to_utc_naive", "sha256_hex", "address_hash"]


def utcnow() -> datetime:
    """The current time, naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(value: Any) -> datetime:
    """A datetime, date string or pandas Timestamp as naive UTC (aware values are converted)."""
    import pandas as pd

    if value is None:
        return utcnow()
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT:  # "garbage", "", NaN: NaT would make every later comparison False
        raise ConfigError(
            f"{str(value)[:40]!r} is not a date or time. Fix: give ISO 8601, e.g. 2025-06-21T10:00."
        )
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def sha256_hex(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def address_hash(address: str) -> str:
    """SHA-256 of a normalised address (lower-cased e-mail, phone without spaces)."""
    return sha256_hex(str(address).strip().lower().replace(" ", ""))
