"""The private window helper against a brute-force count (property-based)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from winback_ml.cohort._window import Timeline

T0 = pd.Timestamp("2024-01-01")

rows_st = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 100), st.floats(-5, 5)),
    max_size=40,
)
queries_st = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "zz"]),
        st.one_of(st.none(), st.integers(-5, 105)),
        st.integers(-5, 105),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_st, queries=queries_st, lo_inc=st.booleans(), hi_inc=st.booleans())
def test_sums_and_nearest_match_brute_force(rows, queries, lo_inc, hi_inc):
    df = pd.DataFrame(rows, columns=["customer_id", "d", "v"])
    df["t"] = T0 + pd.to_timedelta(df["d"], unit="D")
    tl = Timeline(df, "t", ["v"])
    ids = np.array([q[0] for q in queries], dtype=object)
    lo = pd.Series([pd.NaT if q[1] is None else T0 + pd.Timedelta(days=q[1]) for q in queries])
    hi = pd.Series([T0 + pd.Timedelta(days=q[2]) for q in queries])
    got = tl.sums(ids, lo.to_numpy(), hi.to_numpy(), ["n", "v"], lo_inc, hi_inc)
    back = tl.nearest(ids, hi.to_numpy(), exact=hi_inc)
    fwd = tl.nearest(ids, hi.to_numpy(), exact=hi_inc, direction="forward")
    for i, (cid, qlo, qhi) in enumerate(queries):
        mine = df[df["customer_id"] == cid]
        m = (mine["d"] <= qhi) if hi_inc else (mine["d"] < qhi)
        if qlo is not None:
            m &= (mine["d"] >= qlo) if lo_inc else (mine["d"] > qlo)
        assert got["n"][i] == m.sum()
        assert np.isclose(got["v"][i], mine.loc[m, "v"].sum())
        before = mine.loc[(mine["d"] <= qhi) if hi_inc else (mine["d"] < qhi), "t"]
        after = mine.loc[(mine["d"] >= qhi) if hi_inc else (mine["d"] > qhi), "t"]
        assert (pd.isna(back[i]) and before.empty) or back[i] == before.max()
        assert (pd.isna(fwd[i]) and after.empty) or fwd[i] == after.min()
