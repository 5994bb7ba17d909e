"""`winback validate`, `winback store ...`, `winback demo` end to end (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tinyworld import tiny_tables

WINBACK = [sys.executable, "-m", "winback_ml"]


def run(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WINBACK, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def write_csv(tables: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_help_everywhere():
    r = run("--help")
    assert r.returncode == 0 and "validate" in r.stdout
    for sub in (
        ["validate", "--help"],
        ["store", "--help"],
        ["store", "load", "--help"],
        ["demo", "--help"],
    ):
        r = run(*sub)
        assert r.returncode == 0, r.stderr
        assert "Usage" in r.stdout


def test_validate_ok_and_as_of(tmp_path):
    d = write_csv(tiny_tables(), tmp_path / "ok")
    r = run("validate", str(d))
    assert r.returncode == 0, r.stderr
    assert "meets the data contract" in r.stdout
    r = run("validate", str(d), "--as-of", "2024-06-25")
    assert r.returncode == 0 and "As of 2024-06-25" in r.stdout
    r = run("validate", str(d), "--as-of", "last tuesday")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "'last tuesday' is not an ISO-8601 date" in r.stderr


def test_validate_reports_every_violation_and_exits_1(tmp_path):
    t = tiny_tables()
    t["subscriptions"].loc[0, "status"] = "canceled"
    t["events"].loc[3, "event_id"] = "e1"
    d = write_csv(t, tmp_path / "bad")
    (d / "customers.csv").write_text(
        (d / "customers.csv").read_text().replace("2024-02-10", "10/02/2024")
    )
    r = run("validate", str(d))
    assert r.returncode == 1
    err = r.stderr
    assert "subscriptions.status" in err and "canceled" in err
    assert "events.event_id" in err and "e1" in err
    assert "customers.signup_at" in err and "c2" in err
    assert "Fix:" in err


def test_store_load_refuses_bad_data_and_keeps_what_is_stored(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    good = write_csv(tiny_tables(), tmp_path / "good")
    r = run("store", "load", str(good), "--store", url)
    assert r.returncode == 0, r.stderr
    t = tiny_tables()
    t["customers"].loc[0, "country"] = "Deutschland"
    bad = write_csv(t, tmp_path / "bad")
    r = run("store", "load", str(bad), "--store", url)
    assert r.returncode == 1 and "Nothing was written" in r.stderr
    r = run("store", "info", "--store", url)
    assert r.returncode == 0 and "customers=3" in r.stdout
    out = tmp_path / "export"
    assert run("store", "export", str(out), "--store", url).returncode == 0
    assert run("validate", str(out)).returncode == 0
    r = run("store", "export", str(tmp_path / "x"), "--store", url, "--format", "xlsx")
    assert r.returncode == 2 and "--format must be csv or parquet" in r.stderr
    assert not (tmp_path / "x").exists()  # not CSV files under another name


@pytest.mark.slow
def test_demo_builds_the_sample_world_once(tmp_path):
    pytest.importorskip("winback_ml.data.synthetic")
    url = f"sqlite:///{tmp_path}/demo.db"
    r = run("demo", "--store", url, "--customers", "300")
    assert r.returncode == 0, r.stderr
    assert "Built the sample world" in r.stdout and "Subscriptions by status" in r.stdout
    r = run("demo", "--store", url, "--customers", "300")
    assert r.returncode == 0 and "Reusing the sample world" in r.stdout


def test_store_info_masks_the_url_password(monkeypatch):
    from typer.testing import CliRunner

    from winback_ml.cli import app
    from winback_ml.data.store import Store

    monkeypatch.setattr(Store, "exists", lambda self: False)
    r = CliRunner().invoke(app, ["store", "info", "--store", "postgresql://u:s3cret@db/x"])
    assert r.exit_code == 1 and "postgresql://u:***@db/x" in r.output
    assert "s3cret" not in r.output
