"""Vectorised per-customer window aggregates (private).

``window_sums`` answers "how many / how much of these timed rows fall in
``[lo, hi]`` for each key row" for many key rows at once, with two
``merge_asof`` calls on cumulative sums instead of a Python loop. Bounds are
inclusive at both ends unless told otherwise; times are tz-naive UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["window_sums", "last_before"]

_EARLY = pd.Timestamp("1677-09-22")


def _cum(rows: pd.DataFrame, time_col: str, values: list[str]) -> pd.DataFrame:
    r = rows[["customer_id", time_col, *values]].dropna(subset=[time_col])
    r = r.sort_values(["customer_id", time_col], kind="mergesort")
    g = r.groupby("customer_id", sort=False)
    cum = g[values].cumsum()
    cum.columns = [f"__c_{v}" for v in values]
    out = pd.concat([r[["customer_id", time_col]], cum], axis=1)
    return out.rename(columns={time_col: "__t"}).sort_values("__t", kind="mergesort")


def _at(
    keys: pd.DataFrame, cum: pd.DataFrame, col: str, exact: bool, names: list[str]
) -> np.ndarray:
    left = pd.DataFrame(
        {"customer_id": keys["customer_id"].to_numpy(), "__t": keys[col].fillna(_EARLY).to_numpy()}
    )
    left["__i"] = np.arange(len(left))
    left = left.sort_values("__t", kind="mergesort")
    m = pd.merge_asof(
        left, cum, on="__t", by="customer_id", direction="backward", allow_exact_matches=exact
    )
    m = m.sort_values("__i")
    return m[names].fillna(0.0).to_numpy(dtype="float64")


def window_sums(
    keys: pd.DataFrame,
    rows: pd.DataFrame,
    time_col: str,
    values: list[str] | None = None,
    lo: str = "lo",
    hi: str = "hi",
    lo_inclusive: bool = True,
    hi_inclusive: bool = True,
) -> pd.DataFrame:
    """Sums of ``values`` of ``rows`` per key row over the window ``[keys[lo], keys[hi]]``.

    Parameters
    ----------
    keys : DataFrame with ``customer_id`` and the bound columns ``lo``/``hi``
        (timestamps; a missing ``lo`` means "since the beginning").
    rows : DataFrame with ``customer_id``, ``time_col`` and the ``values`` columns.
    values : numeric columns to sum; None counts rows (column ``n``).

    Returns
    -------
    DataFrame indexed like ``keys`` with one float column per value.
    """
    rows = rows.copy()
    if values is None:
        rows["n"] = 1.0
        values = ["n"]
    names = [f"__c_{v}" for v in values]
    if rows.empty or keys.empty:
        return pd.DataFrame(0.0, index=keys.index, columns=values)
    for v in values:
        rows[v] = pd.to_numeric(rows[v], errors="coerce").astype("float64").fillna(0.0)
    cum = _cum(rows, time_col, values)
    hi_v = _at(keys, cum, hi, hi_inclusive, names)
    lo_v = _at(keys, cum, lo, not lo_inclusive, names)
    lo_missing = keys[lo].isna().to_numpy()
    lo_v[lo_missing] = 0.0
    return pd.DataFrame(hi_v - lo_v, index=keys.index, columns=values)


def last_before(
    keys: pd.DataFrame,
    rows: pd.DataFrame,
    time_col: str,
    at: str,
    by: str = "customer_id",
    exact: bool = True,
    direction: str = "backward",
) -> pd.Series:
    """For each key row, the time of the nearest ``rows[time_col]`` before (or after) ``keys[at]``.

    ``direction='forward'`` gives the first time after. NaT when none.
    """
    if rows.empty or keys.empty:
        return pd.Series(pd.NaT, index=keys.index, dtype="datetime64[ns]")
    r = rows[[by, time_col]].dropna().rename(columns={time_col: "__t"}).copy()
    r["__found"] = r["__t"]
    r = r.sort_values("__t", kind="mergesort")
    left = pd.DataFrame({by: keys[by].to_numpy(), "__t": keys[at].fillna(_EARLY).to_numpy()})
    left["__i"] = np.arange(len(left))
    left = left.sort_values("__t", kind="mergesort")
    m = pd.merge_asof(
        left, r, on="__t", by=by, direction=direction, allow_exact_matches=exact
    ).sort_values("__i")
    out = pd.Series(m["__found"].to_numpy(), index=keys.index, dtype="datetime64[ns]")
    out[keys[at].isna().to_numpy()] = pd.NaT
    return out
