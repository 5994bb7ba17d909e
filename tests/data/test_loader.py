"""The contract loader: typing, every rule broken once, folders/URLs, as_of cut."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from tinyworld import tiny_tables  # noqa: F401

from winback_ml.data.contract import TABLES
from winback_ml.data.loader import ContractData, load_data, validate_tables
from winback_ml.exceptions import DataContractError


def test_tiny_world_is_valid(tiny):
    d = load_data(tiny)
    assert isinstance(d, ContractData)
    assert d.missing == []
    assert validate_tables(tiny) == []
    assert d.customers["signup_at"].dtype == "datetime64[ns]"
    assert d.customers["email_opt_in"].dtype == bool
    assert d.campaign_arms["discount_months"].dtype == "int64"
    assert d.support_tickets["csat"].dtype == "Int64"
    for name, df in d.tables().items():
        assert list(df.columns[: len(TABLES[name].columns)]) == TABLES[name].column_names


def _set(table: str, col: str, row: int, value) -> Callable[[dict], None]:
    def f(t: dict) -> None:
        df = t[table].astype({col: object}) if not isinstance(value, pd.Timestamp) else t[table]
        df.loc[row, col] = value
        t[table] = df

    return f


def _drop_col(table: str, col: str) -> Callable[[dict], None]:
    return lambda t: t.__setitem__(table, t[table].drop(columns=[col]))


def _dup_row(table: str, row: int) -> Callable[[dict], None]:
    return lambda t: t.__setitem__(
        table, pd.concat([t[table], t[table].iloc[[row]]], ignore_index=True)
    )


# (mutation, table, column, rule): each breaks exactly one contract rule
CASES = [
    (lambda t: t.pop("events"), "events", None, "missing_table"),
    (_drop_col("customers", "email_opt_in"), "customers", "email_opt_in", "missing_column"),
    (_set("customers", "signup_at", 1, "not a date"), "customers", "signup_at", "type"),
    (_set("subscriptions", "price", 0, "29,00 EUR"), "subscriptions", "price", "type"),
    (_set("customers", "email_opt_in", 0, "maybe"), "customers", "email_opt_in", "type"),
    (_set("campaign_arms", "send_delay_days", 0, 1.5), "campaign_arms", "send_delay_days", "type"),
    (_set("subscriptions", "plan_id", 2, None), "subscriptions", "plan_id", "not_null"),
    (_set("subscriptions", "status", 1, "canceled"), "subscriptions", "status", "enum"),
    (_set("events", "event_type", 3, "churned"), "events", "event_type", "enum"),
    (_set("subscriptions", "cancel_reason", 0, "price"), "subscriptions", "cancel_reason", "enum"),
    (_set("subscriptions", "source", 0, "paypal"), "subscriptions", "source", "enum"),
    (_set("customers", "country", 0, "Germany"), "customers", "country", "format"),
    (_set("customers", "phone", 0, "0151 1234"), "customers", "phone", "format"),
    (_set("subscriptions", "currency", 0, "eur"), "subscriptions", "currency", "format"),
    (_set("subscriptions", "mrr", 0, -3.0), "subscriptions", "mrr", "range"),
    (_set("interviews", "quality_score", 0, 7), "interviews", "quality_score", "range"),
    (_set("campaign_arms", "discount_pct", 1, 120.0), "campaign_arms", "discount_pct", "range"),
    (_set("customers", "customer_id", 1, "c1"), "customers", "customer_id", "unique"),
    (_set("events", "event_id", 5, "e1"), "events", "event_id", "unique"),
    (_dup_row("usage", 0), "usage", "customer_id, week_start", "unique"),
    (_set("subscriptions", "customer_id", 1, "c9"), "subscriptions", "customer_id", "reference"),
    (_set("events", "subscription_id", 4, "s9"), "events", "subscription_id", "reference"),
    (
        _set("campaign_assignments", "arm_id", 0, "ghost"),
        "campaign_assignments",
        "campaign_id, arm_id",
        "reference",
    ),
    (
        _set("subscriptions", "ended_at", 0, pd.NaT),
        "subscriptions",
        "ended_at",
        "ended_at_required",
    ),
    (
        _set("subscriptions", "ended_at", 1, pd.Timestamp("2024-05-01")),
        "subscriptions",
        "ended_at",
        "ended_at_forbidden",
    ),
    (
        _set("subscriptions", "ended_at", 2, pd.Timestamp("2024-02-01")),
        "subscriptions",
        "ended_at",
        "time_order",
    ),
    (
        _set("subscriptions", "cancel_requested_at", 0, pd.Timestamp("2024-07-06")),
        "subscriptions",
        "cancel_requested_at",
        "time_order",
    ),
    (
        _set("subscriptions", "started_at", 1, pd.Timestamp("2024-01-01")),
        "subscriptions",
        "started_at",
        "time_order",
    ),
    (_set("events", "amount", 1, -29.0), "events", "amount", "sign"),
    (_set("events", "currency", 1, None), "events", "currency", "currency_required"),
    (_set("events", "reason", 1, "too_expensive"), "events", "reason", "reason_on_end_only"),
    (_set("events", "customer_id", 4, "c1"), "events", "customer_id", "reference"),
    (_set("usage", "week_start", 0, pd.Timestamp("2024-06-04")), "usage", "week_start", "monday"),
    (
        _set("campaign_arms", "discount_pct", 0, 10.0),
        "campaign_arms",
        "discount_pct",
        "discount_consistency",
    ),
    (lambda t: t.pop("campaign_arms"), "campaigns", None, "optional_together"),
    (
        _set("campaigns", "ended_at", 0, pd.Timestamp("2024-07-01")),
        "campaigns",
        "ended_at",
        "time_order",
    ),
    (
        _set("campaign_assignments", "assigned_at", 0, pd.Timestamp("2024-07-01")),
        "campaign_assignments",
        "assigned_at",
        "time_order",
    ),
]


@pytest.mark.parametrize(
    "mutate,table,column,rule", CASES, ids=[f"{c[1]}.{c[2]}:{c[3]}" for c in CASES]
)
def test_each_rule_broken_once_is_named(tiny, mutate, table, column, rule):
    mutate(tiny)
    with pytest.raises(DataContractError) as ei:
        load_data(tiny)
    hits = [
        v
        for v in ei.value.violations
        if v.table == table and v.rule == rule and (column is None or v.column == column)
    ]
    assert hits, f"expected a {rule} violation on {table}.{column}, got:\n{ei.value}"
    v = hits[0]
    assert v.fix  # every violation says how to fix it
    text = str(ei.value)
    assert table in text and rule in text
    if v.count:
        assert v.examples, "offending ids or rows must be named"


def test_every_problem_reported_at_once(tiny):
    tiny["subscriptions"].loc[0, "status"] = "canceled"
    tiny["customers"].loc[0, "country"] = "Germany"
    tiny["events"].loc[1, "amount"] = -5.0
    with pytest.raises(DataContractError) as ei:
        load_data(tiny)
    rules = {(v.table, v.rule) for v in ei.value.violations}
    assert {("subscriptions", "enum"), ("customers", "format"), ("events", "sign")} <= rules


def test_error_names_the_offending_ids(tiny):
    tiny["subscriptions"].loc[2, "status"] = "gone"
    with pytest.raises(DataContractError) as ei:
        load_data(tiny)
    assert "s3" in str(ei.value)


def test_optional_tables_may_be_absent(tiny):
    for n in [
        "usage",
        "support_tickets",
        "interviews",
        "campaigns",
        "campaign_arms",
        "campaign_assignments",
    ]:
        tiny.pop(n)
    d = load_data(tiny)
    assert d.usage is None and "usage" in d.missing and len(d.missing) == 6


def test_extra_columns_are_kept(tiny):
    tiny["customers"]["segment_hint"] = ["a", "b", "c"]
    d = load_data(tiny)
    assert "segment_hint" in d.customers.columns


def test_folder_csv_and_parquet_parquet_wins(tiny, tmp_path):
    for name, df in tiny.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    d = load_data(tmp_path)
    assert d.summary() == {k: len(v) for k, v in tiny.items()}
    pd.testing.assert_frame_equal(d.events, load_data(tiny).events)
    # a parquet customers file overrides the csv one
    c = tiny["customers"].iloc[:2].copy()
    c.to_parquet(tmp_path / "customers.parquet", index=False)
    # c3 gone -> its subscriptions dangle: proves parquet was read
    with pytest.raises(DataContractError, match="reference"):
        load_data(tmp_path)


def test_timestamps_with_zones_become_naive_utc(tiny, tmp_path):
    for name, df in tiny.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    c = pd.read_csv(tmp_path / "customers.csv", dtype=str)
    c.loc[0, "signup_at"] = "2024-01-05T02:00:00+02:00"
    c.to_csv(tmp_path / "customers.csv", index=False)
    d = load_data(tmp_path)
    assert d.customers.loc[0, "signup_at"] == pd.Timestamp("2024-01-05T00:00:00")


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataContractError, match="does not exist"):
        load_data(tmp_path / "nope")
    f = tmp_path / "file.csv"
    f.write_text("x")
    with pytest.raises(DataContractError, match="is a file, not a folder"):
        load_data(f)


def test_sqlalchemy_url_source(tiny, tmp_path):
    import sqlalchemy as sa

    eng = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    for name, df in tiny.items():
        df.to_sql(name, eng, index=False)
    d = load_data(f"sqlite:///{tmp_path}/x.db")
    assert d.summary()["events"] == 12


# ----------------------------------------------------------------- as_of


def test_as_of_hides_the_future(tiny):
    d = load_data(tiny, as_of="2024-06-25")
    T = pd.Timestamp("2024-06-25")
    assert (d.events["occurred_at"] <= T).all()
    assert (d.customers["signup_at"] <= T).all()
    s = d.subscriptions.set_index("subscription_id")
    assert "s4" not in s.index  # started after as_of
    # s1: cancel requested before T, ended after -> active with the request and reason known
    assert s.loc["s1", "status"] == "active" and pd.isna(s.loc["s1", "ended_at"])
    assert s.loc["s1", "cancel_reason"] == "too_expensive"
    # s3 ended before T -> unchanged
    assert s.loc["s3", "status"] == "expired"
    assert (d.usage["week_start"] + pd.Timedelta(days=7) <= T).all()
    assert d.interviews.empty and d.campaigns.empty and d.campaign_assignments.empty


def test_as_of_before_cancel_request_forgets_reason(tiny):
    d = load_data(tiny, as_of="2024-06-10")
    s = d.subscriptions.set_index("subscription_id")
    assert s.loc["s1", "status"] == "active"
    assert pd.isna(s.loc["s1", "cancel_requested_at"]) and s.loc["s1", "cancel_reason"] is None
    assert s.loc["s1", "cancel_comment"] is None
    # current_period_end is the period in progress at as_of, not the stored (future) one
    assert s.loc["s1", "current_period_end"] == pd.Timestamp("2024-07-05")


def test_as_of_reopened_subscription_with_failed_payment_is_past_due(tiny):
    d = load_data(tiny, as_of="2024-06-02")
    s = d.subscriptions.set_index("subscription_id")
    assert s.loc["s3", "status"] == "past_due"


def _future_noise(t: dict, T: pd.Timestamp) -> dict:
    """Change and add everything dated after T; nothing before T moves."""
    t = {k: v.copy() for k, v in t.items()}
    ev = t["events"]
    fut = ev["occurred_at"] > T
    ev.loc[fut, "amount"] = ev.loc[fut, "amount"] * 3
    extra = pd.DataFrame(
        {
            "event_id": ["f1", "f2"],
            "occurred_at": [T + pd.Timedelta(days=3), T + pd.Timedelta(days=40)],
            "customer_id": ["c2", "c2"],
            "subscription_id": ["s2", "s2"],
            "source": ["chargebee", "chargebee"],
            "event_type": ["cancel_requested", "cancelled"],
            "amount": [None, None],
            "currency": [None, None],
            "reason": ["unused", "unused"],
            "detail": [None, None],
        }
    )
    t["events"] = pd.concat([ev, extra], ignore_index=True)
    s = t["subscriptions"]
    i = s.index[s["subscription_id"] == "s2"][0]
    s.loc[i, ["status", "cancel_reason", "cancel_comment"]] = [
        "cancelled",
        "unused",
        "never used it",
    ]
    s.loc[i, "cancel_requested_at"] = T + pd.Timedelta(days=3)
    s.loc[i, "ended_at"] = T + pd.Timedelta(days=40)
    s.loc[i, "current_period_end"] = T + pd.Timedelta(days=40)
    u = t["usage"]
    t["usage"] = pd.concat(
        [
            u,
            pd.DataFrame(
                {
                    "customer_id": ["c2"],
                    "week_start": [pd.Timestamp("2024-06-24")],
                    "sessions": [1],
                    "active_minutes": [1.0],
                    "features_used": [1],
                }
            ),
        ],
        ignore_index=True,
    )
    return t


def test_no_later_stage_can_see_the_future(tiny):
    """Everything after as_of changed: every table as of T is identical."""
    T = pd.Timestamp("2024-06-25")
    a = load_data(tiny, as_of=T)
    b = load_data(_future_noise(tiny, T), as_of=T)
    for name in a.tables():
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_like=False)


def test_as_of_on_synthetic_world_is_consistent():
    synthetic = pytest.importorskip("winback_ml.data.synthetic")
    w = synthetic.make_world(400, seed=3)
    d = load_data(w.tables)
    end = d.events["occurred_at"].max()
    T = end - pd.Timedelta(days=200)
    cut = load_data(w.tables, as_of=T)
    s = cut.subscriptions
    assert (s["started_at"] <= T).all()
    assert (s["ended_at"].isna() | (s["ended_at"] <= T)).all()
    assert not s["status"].isin(["cancelled", "expired"])[s["ended_at"].isna()].any()
    assert (cut.events["occurred_at"] <= T).all()
    # the cut data is itself valid contract data
    assert validate_tables(cut.tables(), typed=True) == []
    assert np.isfinite(len(cut.customers))


def _add_events(t: dict, rows: list[tuple[str, str, str]]) -> dict:
    """Add (event_id, occurred_at, event_type) events of c2's open subscription s2."""
    extra = pd.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "occurred_at": [pd.Timestamp(r[1]) for r in rows],
            "customer_id": "c2",
            "subscription_id": "s2",
            "source": "chargebee",
            "event_type": [r[2] for r in rows],
            "amount": None,
            "currency": None,
            "reason": None,
            "detail": None,
        }
    )
    t["events"] = pd.concat([t["events"], extra], ignore_index=True)
    return t


def test_as_of_hides_a_future_payment_failure_of_an_open_subscription(tiny):
    """s2 never ended; it is past_due today because of a failure after as_of."""
    t = _add_events(tiny, [("x1", "2024-08-01", "payment_failed")])
    t["subscriptions"].loc[t["subscriptions"]["subscription_id"] == "s2", "status"] = "past_due"
    s = load_data(t, as_of="2024-06-25").subscriptions.set_index("subscription_id")
    assert s.loc["s2", "status"] == "active"
    s = load_data(t, as_of="2024-08-02").subscriptions.set_index("subscription_id")
    assert s.loc["s2", "status"] == "past_due"


def test_as_of_shows_a_failure_recovered_only_later_as_past_due(tiny):
    t = _add_events(
        tiny, [("x1", "2024-05-01", "payment_failed"), ("x2", "2024-07-01", "payment_recovered")]
    )
    s = load_data(t, as_of="2024-06-01").subscriptions.set_index("subscription_id")
    assert s.loc["s2", "status"] == "past_due"
    s = load_data(t, as_of="2024-07-02").subscriptions.set_index("subscription_id")
    assert s.loc["s2", "status"] == "active"


@pytest.mark.parametrize("bad", ["", "last tuesday", float("nan")])
def test_as_of_that_is_not_a_date_is_refused(tiny, bad):
    """An empty as_of used to become NaT and the cut silently hid every row."""
    from winback_ml.exceptions import ConfigError

    with pytest.raises(ConfigError, match="ISO-8601"):
        load_data(tiny, as_of=bad)
