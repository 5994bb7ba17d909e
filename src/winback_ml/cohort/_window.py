"""Vectorised per-key time-window aggregates (private).

A :class:`Timeline` sorts timed rows once by ``(key, time)`` into one
``int64`` array (``key_code * 2**32 + seconds``) with cumulative sums of the
value columns, then answers many questions with ``numpy.searchsorted``:

* ``sums``: how many / how much of the rows fall in ``[lo, hi]`` per query;
* ``nearest``: the time of the latest row at or before (or the first after) a
  time per query.

Times are compared at one-second resolution (sub-second parts are dropped,
times before 1970 count as 1970-01-01); bounds are inclusive unless told
otherwise; all times are tz-naive UTC. ``window_sums`` and ``last_before``
are one-shot wrappers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Timeline", "window_sums", "last_before", "to_seconds"]

_SHIFT = np.int64(2**32)
_MAXSEC = np.int64(2**32 - 1)


def to_seconds(ts: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Timestamps as int64 seconds since 1970 (clipped to ``[0, 2**32)``); -1 for NaT."""
    v = np.asarray(ts, dtype="datetime64[ns]")
    nat = np.isnat(v)
    s = v.astype("int64") // 1_000_000_000
    s = np.clip(s, 0, _MAXSEC)
    s[nat] = -1
    return s


class Timeline:
    """Rows with a time and a key, indexed for fast window queries.

    Parameters
    ----------
    rows : DataFrame
    time_col : str
        Timestamp column of ``rows``.
    values : list of str, optional
        Numeric columns to sum (missing values count 0); a row count ``n`` is always there.
    by : str
        Key column (``customer_id`` or ``subscription_id``).
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        time_col: str,
        values: list[str] | None = None,
        by: str = "customer_id",
    ) -> None:
        values = list(values or [])
        t = to_seconds(rows[time_col])
        codes, uniques = pd.factorize(rows[by].to_numpy())
        ok = (t >= 0) & (codes >= 0)
        self.index = pd.Index(uniques)
        key = codes[ok].astype("int64") * _SHIFT + t[ok]
        order = np.argsort(key, kind="stable")
        self.keys = key[order]
        self.cum: dict[str, np.ndarray] = {
            "n": np.arange(len(self.keys) + 1, dtype="float64"),
        }
        for v in values:
            x = pd.to_numeric(rows[v], errors="coerce").astype("float64").to_numpy()[ok][order]
            self.cum[v] = np.concatenate([[0.0], np.cumsum(np.nan_to_num(x))])

    def _base(self, ids: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.index.get_indexer(np.asarray(ids, dtype=object))
        return c.astype("int64") * _SHIFT, c >= 0

    def sums(
        self,
        ids: pd.Series | np.ndarray,
        lo: pd.Series | np.ndarray | None,
        hi: pd.Series | np.ndarray,
        values: list[str] | None = None,
        lo_inclusive: bool = True,
        hi_inclusive: bool = True,
    ) -> dict[str, np.ndarray]:
        """Sums of ``values`` (default: the count ``n``) over ``[lo, hi]`` per query.

        ``lo`` None or NaT means "since the beginning"; ``hi`` NaT gives 0.
        """
        base, known = self._base(ids)
        hs = to_seconds(hi)
        ls = np.zeros(len(base), dtype="int64") if lo is None else to_seconds(lo)
        ls = np.where(ls < 0, 0, ls)
        i_hi = np.searchsorted(self.keys, base + hs, side="right" if hi_inclusive else "left")
        i_lo = np.searchsorted(self.keys, base + ls, side="left" if lo_inclusive else "right")
        valid = known & (hs >= 0) & (i_hi > i_lo)
        out = {}
        for v in values or ["n"]:
            c = self.cum[v]
            out[v] = np.where(valid, c[i_hi] - c[np.minimum(i_lo, i_hi)], 0.0)
        return out

    def nearest(
        self,
        ids: pd.Series | np.ndarray,
        at: pd.Series | np.ndarray,
        exact: bool = True,
        direction: str = "backward",
    ) -> np.ndarray:
        """Time of the latest row at/before ``at`` (``backward``) or first at/after (``forward``).

        ``exact=False`` excludes rows at exactly ``at``. NaT when there is none.
        """
        base, known = self._base(ids)
        s = to_seconds(at)
        q = base + np.where(s < 0, 0, s)
        n = len(self.keys)
        if direction == "backward":
            i = np.searchsorted(self.keys, q, side="right" if exact else "left") - 1
            ok = i >= 0
        elif direction == "forward":
            i = np.searchsorted(self.keys, q, side="left" if exact else "right")
            ok = i < n
        else:
            raise ValueError(f"direction must be 'backward' or 'forward'. Got {direction!r}.")
        i = np.clip(i, 0, max(n - 1, 0))
        found = self.keys[i] if n else np.zeros(len(q), dtype="int64")
        ok &= known & (s >= 0) & (found // _SHIFT == base // _SHIFT)
        secs = found % _SHIFT
        res = (secs * 1_000_000_000).astype("datetime64[ns]")
        res[~ok] = np.datetime64("NaT")
        return res


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
    """Sums of ``values`` of ``rows`` per key row over ``[keys[lo], keys[hi]]`` (one-shot).

    ``keys`` has ``customer_id`` and the bound columns; ``values`` None counts
    rows (column ``n``). Returns a DataFrame indexed like ``keys``.
    """
    tl = Timeline(rows, time_col, values)
    names = values or ["n"]
    res = tl.sums(
        keys["customer_id"].to_numpy(),
        keys[lo].to_numpy(),
        keys[hi].to_numpy(),
        names,
        lo_inclusive=lo_inclusive,
        hi_inclusive=hi_inclusive,
    )
    return pd.DataFrame(res, index=keys.index, columns=names)


def last_before(
    keys: pd.DataFrame,
    rows: pd.DataFrame,
    time_col: str,
    at: str,
    by: str = "customer_id",
    exact: bool = True,
    direction: str = "backward",
) -> pd.Series:
    """Per key row, the time of the nearest ``rows[time_col]`` before (or after) ``keys[at]``.

    ``direction='forward'`` gives the first time after. NaT when none.
    """
    if rows.empty or keys.empty:
        return pd.Series(pd.NaT, index=keys.index, dtype="datetime64[ns]")
    tl = Timeline(rows, time_col, by=by)
    res = tl.nearest(keys[by].to_numpy(), keys[at].to_numpy(), exact=exact, direction=direction)
    return pd.Series(res, index=keys.index, dtype="datetime64[ns]")
