"""The store: schema from the contract, atomic writes, round trips on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from tinyworld import tiny_tables

from winback_ml.data.loader import load_data
from winback_ml.data.store import Store
from winback_ml.exceptions import DataContractError

PG_URL = os.environ.get("WINBACK_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        st = Store(f"sqlite:///{tmp_path}/store.db")
        yield st
        st.dispose()
        return
    if not PG_URL:
        pytest.skip(
            "PostgreSQL round trip needs WINBACK_TEST_POSTGRES_URL (.ci/run starts a server on loopback and sets it)"
        )
    # a fresh schema per test so runs never see each other's rows
    schema = "t_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    st = Store(url.render_as_string(hide_password=False))
    yield st
    st.dispose()
    with admin.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_round_trip_is_lossless(store):
    src = load_data(tiny_tables())
    written = store.write(src)
    assert written == src.summary()
    back = store.read()
    for name, df in src.tables().items():
        pd.testing.assert_frame_equal(back.table(name), df, check_dtype=True, obj=name)


def test_schema_has_keys_from_the_contract(store):
    store.create_schema()
    insp = sa.inspect(store.engine)
    assert insp.get_pk_constraint("customers")["constrained_columns"] == ["customer_id"]
    assert set(insp.get_pk_constraint("usage")["constrained_columns"]) == {
        "customer_id",
        "week_start",
    }
    cols = {c["name"]: c for c in insp.get_columns("subscriptions")}
    assert cols["plan_id"]["nullable"] is False and cols["ended_at"]["nullable"] is True


def test_bad_input_writes_nothing(store):
    store.write(tiny_tables())
    before = store.read()
    bad = tiny_tables()
    bad["subscriptions"].loc[0, "status"] = "canceled"
    with pytest.raises(DataContractError):
        store.write(bad)
    after = store.read()
    for name, df in before.tables().items():
        pd.testing.assert_frame_equal(after.table(name), df)


def test_append_checks_the_union(store):
    t = tiny_tables()
    store.write(t)
    # appending the same customers again would duplicate keys: refused, nothing changes
    with pytest.raises(DataContractError, match="nothing was written"):
        store.write({k: t[k] for k in ("customers", "subscriptions", "events")}, replace=False)
    assert store.read().summary()["customers"] == 3


def test_as_of_read(store):
    store.write(tiny_tables())
    d = store.read(as_of="2024-06-25")
    assert (d.events["occurred_at"] <= pd.Timestamp("2024-06-25")).all()


def test_failed_insert_rolls_back(store, monkeypatch):
    store.write(tiny_tables())
    import winback_ml.data.store as mod

    calls = {"n": 0}
    real = mod._records

    def boom(df, cols):
        calls["n"] += 1
        if calls["n"] == 3:  # fail in the middle of the transaction
            raise RuntimeError("disk full")
        return real(df, cols)

    monkeypatch.setattr(mod, "_records", boom)
    t = tiny_tables()
    t["customers"].loc[0, "country"] = "FR"
    with pytest.raises(RuntimeError):
        store.write(t)
    monkeypatch.undo()
    assert store.read().customers.loc[0, "country"] == "DE"


def test_default_url_is_under_data(monkeypatch, tmp_path):
    monkeypatch.delenv("WINBACK_STORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Store().url == f"sqlite:///{tmp_path.resolve()}/data/winback.db"


def test_replacing_some_tables_cannot_leave_the_others_dangling(store):
    """A new export without the optional tables must not be mixed with the stored ones."""
    t = tiny_tables()
    store.write(t)
    other = {k: t[k].copy() for k in ("customers", "subscriptions", "events")}
    for df in other.values():
        df["customer_id"] = "n_" + df["customer_id"]
    other["subscriptions"]["subscription_id"] = "n_" + other["subscriptions"]["subscription_id"]
    other["events"]["subscription_id"] = "n_" + other["events"]["subscription_id"]
    before = store.read()
    with pytest.raises(DataContractError, match="would leave the stored tables"):
        store.write(other)
    after = store.read()
    for name, df in before.tables().items():
        pd.testing.assert_frame_equal(after.table(name), df)
    store.write(t)  # the whole export again: fine


# ------------------------------------------------------------------ unreachable store
REFUSED = "postgresql+psycopg://app:s3cretPW@127.0.0.1:1/x"  # nothing listens on port 1


@pytest.mark.parametrize("use", ["exists", "read", "write", "engine", "create_schema"])
def test_unreachable_store_is_a_clear_error_with_the_password_masked(use):
    from winback_ml.exceptions import ConfigError, StoreError

    st = Store(REFUSED)  # constructing does not connect
    with pytest.raises(StoreError) as ei:
        if use == "write":
            st.write(tiny_tables())
        elif use == "engine":
            st.engine  # noqa: B018
        else:
            getattr(st, use)()
    msg = str(ei.value)
    assert "postgresql+psycopg://app:***@127.0.0.1:1/x" in msg
    assert "connection refused" in msg and "Fix: start the database server" in msg
    assert "s3cretPW" not in msg and "s3cretPW" not in repr(st)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__  # no driver traceback
    assert isinstance(ei.value, ConfigError)  # StoreError is a ConfigError: old handlers hold


def test_unknown_host_and_bad_urls():
    from winback_ml.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown host.*Fix: check the host name") as ei:
        Store("postgresql+psycopg://app:s3cretPW@no-such-host.invalid:5432/x").exists()
    assert "app:***@no-such-host.invalid" in str(ei.value) and "s3cretPW" not in str(ei.value)
    with pytest.raises(ConfigError, match="not an SQLAlchemy URL"):
        Store("postgresql+psycopg//app:s3cretPW@db/x")
    with pytest.raises(ConfigError, match="dialect/driver 'nosuchdb'") as ei:
        Store("nosuchdb://app:s3cretPW@db/x").exists()
    assert "s3cretPW" not in str(ei.value)
    with pytest.raises(ConfigError, match="cannot be created"):
        Store("sqlite:////proc/no/such/folder/x.db").exists()


@pytest.mark.parametrize(
    ("driver_message", "what"),
    [
        ('FATAL:  password authentication failed for user "app"', "authentication failed"),
        ('could not translate host name "db" to address', "unknown host"),
        (
            'connection to server at "10.0.0.1", port 5432 failed: Connection refused',
            "connection refused",
        ),
        ('FATAL:  database "x" does not exist', "the database or role does not exist"),
        ("connection timeout expired", "connection timed out"),
        ("something else entirely", "cannot connect"),
    ],
)
def test_connection_failures_are_named(driver_message, what):
    from winback_ml.data.store import describe_connection_error

    err = describe_connection_error(
        REFUSED, RuntimeError(driver_message + " dsn=postgresql://app:s3cretPW@h/x s3cretPW")
    )
    assert f": {what} (" in str(err) and "Fix:" in str(err)
    assert "s3cretPW" not in str(err)


def test_mask_url_password():
    from winback_ml.data.store import mask_url_password

    assert mask_url_password("a postgresql+psycopg://u:p%40ss@h:1/x b") == (
        "a postgresql+psycopg://u:***@h:1/x b"
    )
    assert mask_url_password("'mysql://u:pa/ss:w@h/x'") == "'mysql://u:***@h/x'"
    assert mask_url_password("sqlite:///data/winback.db") == "sqlite:///data/winback.db"
    assert mask_url_password("https://example.com/a@b") == "https://example.com/a@b"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a raw '@' in the password: SQLAlchemy reads up to the first '@'; none of it may show
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("mysql://u:p@s@s@h:3/x?a=b@c", "mysql://u:***@h:3/x?a=b@c"),
        ("postgresql://:s3cret@h/db", "postgresql://:***@h/db"),  # no user
        # the password as a query parameter (libpq and SQLAlchemy accept it)
        ("postgresql://h/db?user=u&password=s3cret", "postgresql://h/db?user=u&password=***"),
        ("postgresql://h/db?password=s3cret&sslmode=x", "postgresql://h/db?password=***&sslmode=x"),
        ("'postgresql://u@h/db?PASSWORD=s3cret'", "'postgresql://u@h/db?PASSWORD=***'"),
        ("host=h password=s3cret dbname=x", "host=h password=*** dbname=x"),
        ("postgresql://u:s3cret@h/db?password=s3cret", "postgresql://u:***@h/db?password=***"),
        ("https://example.com/a@b?my_password=x", "https://example.com/a@b?my_password=x"),
    ],
)
def test_mask_url_password_other_forms(text, masked):
    from winback_ml.data.store import mask_url_password

    assert mask_url_password(text) == masked


def test_query_string_password_is_masked_in_the_connection_error():
    from winback_ml.exceptions import StoreError

    url = "postgresql+psycopg://127.0.0.1:1/x?user=app&password=s3cretPW"
    with pytest.raises(StoreError) as ei:
        Store(url).exists()
    msg = str(ei.value)
    assert "s3cretPW" not in msg and "password=***" in msg and "s3cretPW" not in repr(Store(url))
    from winback_ml.data.store import describe_connection_error

    err = describe_connection_error(url, RuntimeError("auth failed for s3cretPW"))
    assert "s3cretPW" not in str(err)


@pytest.mark.postgres
def test_wrong_password_is_authentication_failed():
    from winback_ml.exceptions import ConfigError

    if not PG_URL:
        pytest.skip("needs WINBACK_TEST_POSTGRES_URL")
    bad = sa.make_url(PG_URL).set(password="wrong-Pw-123").render_as_string(hide_password=False)
    with pytest.raises(ConfigError, match="authentication failed") as ei:
        Store(bad).exists()
    assert "wrong-Pw-123" not in str(ei.value)


@pytest.mark.parametrize(
    "args",
    [
        ["store", "info", "--store", REFUSED],
        ["intake", "health", f"--store={REFUSED}"],
        ["validate", REFUSED],  # the loader's own engine: the CLI's safety net
        ["intake", "serve", "--port", "18734", "--store", REFUSED],  # before the server starts
    ],
)
def test_cli_exits_1_without_traceback_for_an_unreachable_store(args, tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "from winback_ml.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith(
        "error: Cannot connect to the store 'postgresql+psycopg://app:***@"
    )
    assert "connection refused" in out.stderr
    assert "Traceback" not in out.stderr and "s3cretPW" not in out.stdout + out.stderr
