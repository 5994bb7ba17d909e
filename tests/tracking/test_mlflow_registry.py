"""MLflow: logging without PII, champion promotion, loading in a fresh process and via a server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback_ml.exceptions import ModelError
from winback_ml.models.return_model import KaplanMeierReturnModel, WeibullCureReturnModel
from winback_ml.tracking import mlflow as wt

AS_OF = pd.Timestamp("2025-09-30")


@pytest.fixture(scope="module")
def world_frames():
    from winback_ml.data.loader import load_data
    from winback_ml.data.synthetic import make_world
    from winback_ml.features import build_return_scoring_frame, build_return_training_frame

    w = make_world(1200, seed=21)
    cd = load_data(w.tables, as_of=AS_OF, validate=False)
    return w, build_return_training_frame(cd, AS_OF), build_return_scoring_frame(cd, AS_OF)


@pytest.fixture(scope="module")
def tracking_module(tmp_path_factory):
    """One MLflow store for the module (creating a SQLite store takes seconds)."""
    tmp = tmp_path_factory.mktemp("mlflow_registry")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    uri = f"sqlite:///{tmp}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("WINBACK_MLFLOW_ARTIFACTS", str(tmp / "artifacts"))
        yield tmp, uri
    import mlflow

    if before:
        mlflow.set_tracking_uri(before)
        mlflow.set_registry_uri(before)


@pytest.fixture()
def tracking(tracking_module):
    """The module's store, with a fresh registered-model name per test."""
    from mlflow import MlflowClient

    wt.configure()
    c = MlflowClient()
    for rm in c.search_registered_models():
        c.delete_registered_model(rm.name)
    return tracking_module


def _fit(cls, train):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls().fit(train)


def test_configure_defaults_to_local_sqlite(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WINBACK_MLFLOW_ARTIFACTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert wt.configure() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert wt.artifact_root() == (tmp_path / "mlruns").as_uri()
    assert wt.artifact_root("http://127.0.0.1:5000") is None
    assert wt.configure("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_champion_moves_only_when_the_challenger_is_better(world_frames, tracking) -> None:
    _, train, score = world_frames
    cure = _fit(WeibullCureReturnModel, train)
    km = _fit(KaplanMeierReturnModel, train)
    kw = {
        "input_example": score,
        "as_of": AS_OF,
        "register_as": "winback-return",
        "holdout_metric": "ibs",
    }
    r1 = wt.log_fit(km, "return", metrics={"ibs": 0.120}, **kw).registration
    assert r1.promoted and r1.version == "1"
    r2 = wt.log_fit(cure, "return", metrics={"ibs": 0.100}, **kw).registration
    assert r2.promoted and r2.champion_version == "1" and r2.champion_metric == pytest.approx(0.12)
    r3 = wt.log_fit(km, "return", metrics={"ibs": 0.130}, **kw).registration
    assert not r3.promoted and r3.champion_version == "2"
    from mlflow import MlflowClient

    c = MlflowClient()
    assert str(c.get_model_version_by_alias("winback-return", "champion").version) == "2"
    tags = c.get_model_version("winback-return", "3").tags
    assert tags["winback.compared_with"] == "2" and tags["winback.decision"].startswith(
        "kept champion"
    )
    # a re-scored champion on the same holdout wins over the stored tag
    r4 = wt.register(
        wt.log_fit(km, "return", metrics={"ibs": 0.11}, input_example=score).model_uri,
        "winback-return",
        0.11,
        metric_name="ibs",
        champion_metric=0.115,
    )
    assert r4.promoted
    with pytest.raises(ModelError, match="holdout_metric"):
        wt.log_fit(
            km, "return", metrics={"ibs": 0.1}, input_example=score, register_as="winback-return"
        )


def test_logged_run_has_params_features_and_no_pii(world_frames, tracking) -> None:
    w, train, score = world_frames
    m = _fit(WeibullCureReturnModel, train)
    import mlflow
    from mlflow import MlflowClient

    rec = wt.log_fit(
        m,
        "return",
        input_example=score,
        metrics={"ibs": 0.1, "concordance": 0.8, "nan_metric": float("nan")},
        as_of=AS_OF,
        data_window=(train["at"].min(), AS_OF),
        tables={"scores": score[["customer_id", "days_lapsed"]].head(20)},
    )
    run = MlflowClient().get_run(rec.run_id)
    assert run.data.params["as_of"] == str(AS_OF)
    assert run.data.params["model.class"] == "WeibullCureReturnModel"
    assert "data_window_start" in run.data.params and "model.penalizer" in run.data.params
    assert run.data.metrics["concordance"] == 0.8 and "nan_metric" not in run.data.metrics
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=rec.run_id, dst_path=str(tracking[0] / "dl"))
    )
    feats = json.loads((local / "features.json").read_text())
    assert "reason" in feats["features"] and "days_lapsed" in feats["required_columns"]
    # scan every logged text (params, tags, artifacts, the model's input example) for PII values
    cust = w.tables["customers"]
    pii = set(cust["email"].dropna()) | set(cust["phone"].dropna())
    comments = w.tables["subscriptions"]["cancel_comment"].dropna()
    pii |= {c for c in comments if len(c) > 12}
    blobs = [json.dumps(run.data.params), json.dumps(run.data.tags)]
    model_dir = Path(
        mlflow.artifacts.download_artifacts(rec.model_uri, dst_path=str(tracking[0] / "m"))
    )
    for folder in (local, model_dir):
        for f in folder.rglob("*"):
            if f.is_file() and f.suffix in (".json", ".txt", ".csv", ".yaml", ".MLmodel", ""):
                blobs.append(f.read_text(errors="ignore"))
    text = "\n".join(blobs)
    assert not [p for p in pii if p in text]
    ex = model_dir / "input_example.json"
    if ex.exists():
        assert "customer_id" not in ex.read_text()
    with pytest.raises(ModelError, match="PII"):
        wt.log_fit(
            m,
            "return",
            input_example=score.assign(email="a@b.co"),
            tables={"x": score.assign(email="a@b.co")},
        )


def test_pyfunc_missing_column_error_names_it(world_frames, tracking) -> None:
    _, train, score = world_frames
    m = _fit(WeibullCureReturnModel, train)
    rec = wt.log_fit(
        m,
        "return",
        input_example=score,
        metrics={"ibs": 0.1},
        register_as="winback-return",
        holdout_metric="ibs",
    )
    model = wt.load_champion("winback-return")
    out = model.predict(score)
    assert list(out.columns) == ["p_return_30d", "p_return_90d"]
    np.testing.assert_allclose(out["p_return_30d"], m.expected_return_probability(score))
    with pytest.raises(Exception, match="days_lapsed"):
        model.predict(score.drop(columns=["days_lapsed"]))
    with pytest.raises(Exception, match="sessions_8w"):
        model.predict(score.drop(columns=["sessions_8w"]))
    assert rec.registration.promoted


FRESH = r"""
import json, sys
import mlflow
import pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
m = mlflow.pyfunc.load_model("models:/winback-return@champion")
X = pd.read_parquet(sys.argv[2])
out = m.predict(X)
print(json.dumps({"p": out["p_return_30d"].tolist(), "inputs": m.metadata.get_input_schema().input_names()}))
"""


def test_champion_loads_in_a_fresh_process(world_frames, tracking) -> None:
    _, train, score = world_frames
    tmp, uri = tracking
    m = _fit(WeibullCureReturnModel, train)
    wt.log_fit(
        m,
        "return",
        input_example=score,
        metrics={"ibs": 0.1},
        register_as="winback-return",
        holdout_metric="ibs",
    )
    X = score.head(100)
    X.to_parquet(tmp / "x.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    r = subprocess.run(
        [sys.executable, "-c", FRESH, uri, str(tmp / "x.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["p"], m.expected_return_probability(X), rtol=1e-12)
    assert "days_lapsed" in got["inputs"] and "customer_id" not in got["inputs"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_champion_through_an_mlflow_server(world_frames, tmp_path, monkeypatch) -> None:
    _, train, score = world_frames
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise AssertionError(
                    f"mlflow server did not start: {server.stderr.read()[-2000:]!r}"
                )
            time.sleep(1)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.delenv("WINBACK_MLFLOW_ARTIFACTS", raising=False)
        m = _fit(WeibullCureReturnModel, train)
        rec = wt.log_fit(
            m,
            "return",
            input_example=score,
            metrics={"ibs": 0.1},
            register_as="winback-return",
            holdout_metric="ibs",
        )
        assert rec.registration.promoted
        assert not list(tmp_path.glob("mlruns")), "artifacts must go through the server"
        X = score.head(50)
        X.to_parquet(tmp_path / "x.parquet")
        r = subprocess.run(
            [sys.executable, "-c", FRESH, url, str(tmp_path / "x.parquet")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        got = json.loads(r.stdout.strip().splitlines()[-1])
        np.testing.assert_allclose(got["p"], m.expected_return_probability(X), rtol=1e-12)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_fit_select_and_log_compares_logs_and_registers(world_frames, tracking) -> None:
    from mlflow import MlflowClient

    from winback_ml.models.return_model import KaplanMeierReturnModel, WeibullCureReturnModel

    _, train, score = world_frames
    cands = {"kaplan_meier": KaplanMeierReturnModel(), "weibull_cure": WeibullCureReturnModel()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = wt.fit_select_and_log(
            "return", train, as_of=AS_OF, candidates=cands, score_example=score
        )
    assert sel.comparison.chosen in cands and set(sel.candidate_runs) == set(cands)
    reg = sel.record.registration
    assert reg.name == "winback-return" and reg.promoted
    c = MlflowClient()
    run = c.get_run(sel.record.run_id)
    assert run.data.params["chosen"] == sel.comparison.chosen and "ibs" in run.data.metrics
    arts = {a.path for a in c.list_artifacts(sel.record.run_id)}
    assert {"plots", "tables", "features.json"} <= arts
    # the same data again: the challenger ties the champion on the same holdout, so no move
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = wt.fit_select_and_log(
            "return", train, as_of=AS_OF, candidates=cands, score_example=score
        )
    assert not again.record.registration.promoted
    assert again.record.registration.champion_metric == pytest.approx(reg.metric)
