"""Lapse episodes: every time a customer's access ended, and whether they came back.

A *lapse* is the end of a subscription (``cancelled`` or ``expired``) at or
before ``as_of``, seen either on the subscription row (``ended_at``) or as a
``cancelled``/``expired`` event (a subscription that was reactivated keeps
its id and loses its ``ended_at``: its earlier ends live only in the events).

Rules, in order
---------------
1. Ends of one subscription with no ``reactivated`` event of that
   subscription between them are one lapse (a ``cancelled`` and an
   ``expired`` event for the same end, or a row and its event); the row's
   ``ended_at`` wins, else the earliest event time.
2. An end while another subscription of the same customer is open (started at
   or before the end and not ended by then: an add-on, a plan switch by a new
   subscription) is not a lapse of the customer and is dropped.
3. The *return* is the first reactivation of the customer strictly after the
   end and at or before ``as_of``: a ``reactivated`` or ``subscribed`` event,
   or the start of a new subscription.
4. An end while the customer had already lapsed and not yet returned is a
   duplicate of that lapse and is dropped.

Invariants of the output
------------------------
* one row per lapse, sorted by ``customer_id`` then ``ended_at``;
  ``lapse_number`` counts a customer's lapses from 1; ``lapse_id`` is
  ``"<customer_id>#<lapse_number>"``;
* all timestamps tz-naive UTC; nothing dated after ``as_of`` is used;
* ``days_observed = (min(returned_at, as_of) - ended_at)`` in days (float),
  ``days_to_return`` is NaN when the customer has not returned (censored);
* ``stated_reason`` is canonical, ``None`` when absent or ``unknown``;
* times derived from lookups (``returned_at``, ``cancel_requested_at`` from
  events) have one-second resolution; ``ended_at`` is the data's own;
* no free text (``cancel_comment`` stays in the subscriptions table: it is PII).

A ``reactivated`` event with no earlier end of the customer is contradictory
and raises :class:`~winback_ml.exceptions.DataContractError` naming the
customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.cohort._inputs import as_contract_data
from winback_ml.cohort._window import last_before, window_sums
from winback_ml.data.contract import ENDED_STATUSES
from winback_ml.data.loader import ContractData
from winback_ml.exceptions import DataContractError

__all__ = ["EPISODE_COLUMNS", "build_lapse_episodes"]

#: Columns of :func:`build_lapse_episodes`, in order.
EPISODE_COLUMNS = [
    "lapse_id",
    "customer_id",
    "subscription_id",
    "lapse_number",
    "ended_at",
    "status",
    "stated_reason",
    "end_detail",
    "cancel_requested_at",
    "returned_at",
    "returned",
    "days_to_return",
    "days_observed",
    "return_type",
    "plan_id",
    "plan_tier",
    "billing_interval",
    "price",
    "mrr",
    "currency",
    "source",
    "started_at",
    "spell_start",
    "tenure_days",
    "customer_tenure_days",
    "n_payment_failures",
    "n_payment_failures_90d",
    "n_payment_recoveries",
    "unrecovered_payment_failure",
    "total_paid",
    "from_subscription_row",
]

_DAY = pd.Timedelta(days=1)
_PAID_EVENTS = ("subscribed", "renewed", "reactivated", "payment_recovered")


def _ends(subs: pd.DataFrame, ev: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """All ends (row and event), merged per rule 1; one row per subscription end."""
    rows = subs.loc[
        subs["ended_at"].notna() & (subs["ended_at"] <= as_of),
        ["customer_id", "subscription_id", "ended_at", "status", "cancel_reason"],
    ].rename(columns={"cancel_reason": "reason"})
    rows["status"] = rows["status"].where(rows["status"].isin(ENDED_STATUSES), "cancelled")
    rows["detail"] = None
    rows["_row"] = True
    evs = ev.loc[
        ev["event_type"].isin(ENDED_STATUSES) & (ev["occurred_at"] <= as_of),
        ["customer_id", "subscription_id", "occurred_at", "event_type", "reason", "detail"],
    ].rename(columns={"occurred_at": "ended_at", "event_type": "status"})
    evs["_row"] = False
    allends = pd.concat([rows, evs], ignore_index=True)
    if allends.empty:
        return allends.assign(_group=pd.Series(dtype="int64"))
    allends["_order"] = np.where(allends["_row"], 0, 1)
    allends = allends.sort_values(
        ["subscription_id", "ended_at", "_order"], kind="mergesort"
    ).reset_index(drop=True)
    # last reactivation of the same subscription at or before each end
    react = ev.loc[ev["event_type"] == "reactivated", ["subscription_id", "occurred_at"]]
    last_react = last_before(allends, react, "occurred_at", at="ended_at", by="subscription_id")
    prev_end = allends.groupby("subscription_id", sort=False)["ended_at"].shift(1)
    same_sub = allends["subscription_id"].eq(allends["subscription_id"].shift(1))
    dup = same_sub & prev_end.notna() & (last_react.isna() | (last_react <= prev_end))
    allends["_group"] = (~dup).cumsum()
    # unknown is no answer: treat as absent so that groupby.first finds a real reason
    allends["reason"] = allends["reason"].where(allends["reason"] != "unknown", None)
    g = allends.groupby("_group", sort=False)
    first = g[["customer_id", "subscription_id", "status"]].first()
    # row time wins, else the earliest event time (rows sort first at equal time)
    row_time = allends["ended_at"].where(allends["_row"])
    first["ended_at"] = row_time.groupby(allends["_group"]).max()
    first["ended_at"] = first["ended_at"].fillna(g["ended_at"].min())
    row_status = allends["status"].where(allends["_row"])
    first["status"] = row_status.groupby(allends["_group"]).first().fillna(first["status"])
    first["stated_reason"] = g["reason"].first()
    first["end_detail"] = g["detail"].first()
    first["from_subscription_row"] = g["_row"].any()
    return first.reset_index(drop=True)


def _check_reactivations(ends: pd.DataFrame, ev: pd.DataFrame) -> None:
    """Raise when a customer has a ``reactivated`` event before any end."""
    react = ev.loc[
        ev["event_type"] == "reactivated", ["customer_id", "subscription_id", "occurred_at"]
    ]
    if react.empty:
        return
    prior = last_before(react, ends, "ended_at", at="occurred_at", by="customer_id", exact=True)
    bad = react[prior.isna().to_numpy()]
    if bad.empty:
        return
    first_end = ends.groupby("customer_id")["ended_at"].min()
    lines = []
    for r in bad.head(5).itertuples(index=False):
        fe = first_end.get(r.customer_id, pd.NaT)
        lines.append(
            f"customer {r.customer_id!r}: subscription {r.subscription_id!r} reactivated at "
            f"{r.occurred_at} but "
            + ("it never ended before" if pd.isna(fe) else f"its first end is {fe}")
        )
    more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
    raise DataContractError(
        f"events: {len(bad)} 'reactivated' event(s) come before any cancellation or expiry of "
        f"their customer: " + "; ".join(lines) + more + ". Fix: a reactivation must follow a "
        "'cancelled'/'expired' event or a subscription ended_at of the same customer; correct "
        "the event time or add the missing end."
    )


def _open_elsewhere(ends: pd.DataFrame, subs: pd.DataFrame, ev: pd.DataFrame) -> np.ndarray:
    """Rule 2: True where another subscription of the customer is open at the end."""
    n_subs = subs.groupby("customer_id")["subscription_id"].size()
    multi = ends["customer_id"].map(n_subs).fillna(0).to_numpy() > 1
    out = np.zeros(len(ends), dtype=bool)
    if not multi.any():
        return out
    e = ends.loc[multi, ["customer_id", "subscription_id", "ended_at"]].copy()
    e["_i"] = np.flatnonzero(multi)
    pairs = e.merge(
        subs[["customer_id", "subscription_id"]].rename(columns={"subscription_id": "other"}),
        on="customer_id",
    )
    pairs = pairs[pairs["other"] != pairs["subscription_id"]]
    if pairs.empty:
        return out
    # state changes of every subscription: +1 opens (start, reactivation), 0 closes (end)
    starts = subs[["subscription_id", "started_at"]].rename(columns={"started_at": "t"})
    starts["open"] = 1
    reacts = ev.loc[ev["event_type"] == "reactivated", ["subscription_id", "occurred_at"]].rename(
        columns={"occurred_at": "t"}
    )
    reacts["open"] = 1
    closes = ends[["subscription_id", "ended_at"]].rename(columns={"ended_at": "t"})
    closes["open"] = 0
    changes = pd.concat([starts, reacts, closes], ignore_index=True).dropna(subset=["t"])
    changes = changes.rename(columns={"subscription_id": "other"})
    changes = changes.sort_values(["t", "open"], kind="mergesort")
    left = pairs.sort_values("ended_at", kind="mergesort").rename(columns={"ended_at": "t"})
    m = pd.merge_asof(left, changes, on="t", by="other", direction="backward")
    is_open = m["open"].fillna(0).to_numpy() == 1
    hit = np.unique(m.loc[is_open, "_i"].to_numpy())
    out[hit.astype(int)] = True
    return out


def build_lapse_episodes(
    data: ContractData | Mapping[str, pd.DataFrame], as_of: Any = None
) -> pd.DataFrame:
    """One row per lapse at or before ``as_of``, with its return (if any) and context.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
        ``customers``, ``subscriptions`` and ``events`` are used.
    as_of : date or timestamp, optional
        The run date; defaults to ``data.as_of`` or the latest timestamp in the data.
        Nothing after it is read.

    Returns
    -------
    DataFrame
        Columns :data:`EPISODE_COLUMNS` (see the module docstring for the
        rules). ``attrs["as_of"]`` holds the run date.

    Raises
    ------
    DataContractError
        When a customer has a ``reactivated`` event before any end.

    Examples
    --------
    >>> from winback_ml.data.synthetic import make_world  # doctest: +SKIP
    >>> eps = build_lapse_episodes(make_world(500, seed=1).tables)  # doctest: +SKIP
    >>> eps[["customer_id", "ended_at", "returned", "days_observed"]].head()  # doctest: +SKIP
    """
    cd, T = as_contract_data(data, as_of)
    subs = cd.subscriptions
    ev = cd.events
    ends = _ends(subs, ev, T)
    if ends.empty:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in EPISODE_COLUMNS})
        out.attrs["as_of"] = T
        return out
    _check_reactivations(ends, ev)
    ends = ends[~_open_elsewhere(ends, subs, ev)].reset_index(drop=True)

    # rule 3: first start of the customer strictly after the end
    starts = pd.concat(
        [
            subs[["customer_id", "started_at"]]
            .rename(columns={"started_at": "t"})
            .assign(kind="new_subscription"),
            ev.loc[
                ev["event_type"].isin(("reactivated", "subscribed")),
                ["customer_id", "occurred_at", "event_type"],
            ].rename(columns={"occurred_at": "t", "event_type": "kind"}),
        ],
        ignore_index=True,
    )
    starts = starts[starts["t"] <= T]
    ends = ends.sort_values(["customer_id", "ended_at"], kind="mergesort").reset_index(drop=True)
    ends["returned_at"] = last_before(
        ends, starts, "t", at="ended_at", exact=False, direction="forward"
    )
    # returned_at has one-second resolution (see _window); match kinds on whole seconds
    kind_at = starts.assign(t=starts["t"].dt.floor("s"))
    kind_at = kind_at.sort_values(["t", "kind"]).drop_duplicates(["customer_id", "t"])
    kind_at = kind_at.set_index(["customer_id", "t"])["kind"]
    rk = pd.MultiIndex.from_arrays([ends["customer_id"], ends["returned_at"]])
    ends["return_type"] = kind_at.reindex(rk).to_numpy()
    ends.loc[ends["returned_at"].isna(), "return_type"] = None

    # rule 4: an end before the previous lapse's return is the same lapse
    prev_ret = ends.groupby("customer_id", sort=False)["returned_at"].shift(1)
    has_prev = ends["customer_id"].eq(ends["customer_id"].shift(1))
    dup = has_prev & (prev_ret.isna() | (prev_ret > ends["ended_at"]))
    ends = ends[~dup].reset_index(drop=True)

    ends["lapse_number"] = ends.groupby("customer_id", sort=False).cumcount() + 1
    ends["lapse_id"] = ends["customer_id"].astype(str) + "#" + ends["lapse_number"].astype(str)
    ends["returned"] = ends["returned_at"].notna()
    ends["days_to_return"] = (ends["returned_at"] - ends["ended_at"]) / _DAY
    ends["days_observed"] = (ends["returned_at"].fillna(T) - ends["ended_at"]) / _DAY

    # subscription attributes
    attrs = subs.drop_duplicates("subscription_id").set_index("subscription_id")
    for c in ("plan_id", "plan_tier", "billing_interval", "price", "mrr", "currency", "source"):
        ends[c] = ends["subscription_id"].map(attrs[c])
    ends["started_at"] = ends["subscription_id"].map(attrs["started_at"])
    prev_return = ends.groupby("customer_id", sort=False)["returned_at"].shift(1)
    ends["spell_start"] = ends["started_at"]
    later = prev_return.notna() & (prev_return > ends["started_at"])
    ends.loc[later, "spell_start"] = prev_return[later]
    ends["tenure_days"] = (ends["ended_at"] - ends["spell_start"]) / _DAY
    signup = cd.customers.drop_duplicates("customer_id").set_index("customer_id")["signup_at"]
    ends["customer_tenure_days"] = (ends["ended_at"] - ends["customer_id"].map(signup)) / _DAY

    # cancel request of this end: the row's for the row end, else the last event before it
    req_row = ends["subscription_id"].map(attrs["cancel_requested_at"])
    req_ev = last_before(
        ends,
        ev.loc[ev["event_type"] == "cancel_requested", ["subscription_id", "occurred_at"]],
        "occurred_at",
        at="ended_at",
        by="subscription_id",
    )
    req_ev = req_ev.where(req_ev >= ends["spell_start"])
    ends["cancel_requested_at"] = req_row.where(
        ends["from_subscription_row"] & req_row.notna(), req_ev
    )

    # payment history of the spell that ended
    keys = ends[["customer_id"]].copy()
    keys["lo"], keys["hi"] = ends["spell_start"], ends["ended_at"]
    fails = ev.loc[ev["event_type"] == "payment_failed", ["customer_id", "occurred_at"]]
    recs = ev.loc[ev["event_type"] == "payment_recovered", ["customer_id", "occurred_at"]]
    ends["n_payment_failures"] = window_sums(keys, fails, "occurred_at")["n"].astype(int).to_numpy()
    ends["n_payment_recoveries"] = (
        window_sums(keys, recs, "occurred_at")["n"].astype(int).to_numpy()
    )
    k90 = keys.copy()
    k90["lo"] = np.maximum(keys["lo"], keys["hi"] - pd.Timedelta(days=90))
    ends["n_payment_failures_90d"] = (
        window_sums(k90, fails, "occurred_at")["n"].astype(int).to_numpy()
    )
    pay = ev.loc[
        ev["event_type"].isin(
            ("payment_failed", "payment_recovered", "renewed", "subscribed", "reactivated")
        ),
        ["customer_id", "occurred_at", "event_type"],
    ]
    last_fail = last_before(ends, fails, "occurred_at", at="ended_at")
    last_ok = last_before(
        ends, pay[pay["event_type"] != "payment_failed"], "occurred_at", at="ended_at"
    )
    ends["unrecovered_payment_failure"] = (
        last_fail.notna()
        & (last_fail >= ends["spell_start"])
        & (last_ok.isna() | (last_ok < last_fail))
    ).to_numpy()
    money = ev.loc[
        ev["event_type"].isin((*_PAID_EVENTS, "refunded")),
        ["customer_id", "occurred_at", "event_type", "amount"],
    ].copy()
    money["amount"] = money["amount"].fillna(0.0).abs() * np.where(
        money["event_type"] == "refunded", -1.0, 1.0
    )
    kall = keys.copy()
    kall["lo"] = pd.NaT
    ends["total_paid"] = window_sums(kall, money, "occurred_at", ["amount"])["amount"].to_numpy()

    out = ends[EPISODE_COLUMNS].reset_index(drop=True)
    out.attrs["as_of"] = T
    return out
