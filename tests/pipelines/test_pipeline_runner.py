"""The Papermill runner: parameter checks before anything runs, failure path, manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winback_ml.exceptions import ConfigError, DataContractError, PipelineError, PipelineStepError
from winback_ml.pipelines import load_pipeline, notebook_parameters, plan_run, run_pipeline
from winback_ml.pipelines.context import check_as_of, resolve_data_source
from winback_ml.pipelines.runner import execute_plan, redact
from winback_ml.pipelines.spec import (
    NotebookParameter,
    coerce_parameter,
    parse_cli_parameters,
)

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def events_folder(tmp_path: Path) -> Path:
    """A data folder whose events run from 2025-01-03 to 2025-06-29 14:00."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "events.csv").write_text(
        "event_id,occurred_at\ne1,2025-01-03T09:00:00\ne2,2025-06-29T14:00:00\n"
    )
    return d


def _pipeline(tmp_path: Path, body: str) -> Path:
    for nb in FIX.glob("*.ipynb"):
        shutil.copy(nb, tmp_path / nb.name)
    p = tmp_path / "pl.yaml"
    p.write_text(body)
    return p


def test_notebook_parameters_reads_types_defaults_and_help() -> None:
    params = notebook_parameters(FIX / "ok_step.ipynb")
    assert list(params) == ["data", "as_of", "output_dir", "run_id", "times"]
    t = params["times"]
    assert (t.type_name, t.default, t.help) == ("int", 2, "how often to greet")
    assert t.accepts(3) and not t.accepts("3") and not t.accepts(True)
    assert params["data"].default == "sample"


def test_notebook_without_parameters_cell_is_refused() -> None:
    with pytest.raises(PipelineError, match="no cell tagged 'parameters'"):
        notebook_parameters(FIX / "no_params.ipynb")


def test_non_literal_parameter_is_refused(tmp_path: Path) -> None:
    nb = json.loads((FIX / "ok_step.ipynb").read_text())
    nb["cells"][1]["source"] = "import os\nx: int = 1  # ok\n"
    p = tmp_path / "bad.ipynb"
    p.write_text(json.dumps(nb))
    with pytest.raises(PipelineError, match="not a simple assignment"):
        notebook_parameters(p)
    nb["cells"][1]["source"] = "x: int = len('ab')  # computed\n"
    p.write_text(json.dumps(nb))
    with pytest.raises(PipelineError, match="not a literal"):
        notebook_parameters(p)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("steps: []\n", "name"),
        ("name: x\n", "non-empty list of 'steps'"),
        (
            "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n"
            " - {name: a, notebook: ok_step.ipynb}\n",
            "two steps are called 'a'",
        ),
        (
            "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb, depends_on: [zz]}\n",
            "depends on 'zz', which is not a step",
        ),
        (
            "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb, depends_on: [b]}\n"
            " - {name: b, notebook: ok_step.ipynb, depends_on: [a]}\n",
            "circle",
        ),
        (
            "name: x\nschedule: daily\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n",
            "unknown keys",
        ),
    ],
)
def test_pipeline_schema_errors(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(PipelineError, match=match):
        load_pipeline(_pipeline(tmp_path, body))


def test_steps_are_run_in_dependency_order(tmp_path: Path) -> None:
    p = _pipeline(
        tmp_path,
        "name: x\nsteps:\n - {name: late, notebook: ok_step.ipynb, depends_on: [early]}\n"
        " - {name: early, notebook: ok_step.ipynb}\n",
    )
    assert [s.name for s in load_pipeline(p).steps] == ["early", "late"]


def test_bad_input_is_refused_before_anything_runs(tmp_path: Path, events_folder: Path) -> None:
    p = _pipeline(
        tmp_path,
        "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n"
        " - {name: gone, notebook: missing.ipynb}\n",
    )
    runs = tmp_path / "runs"
    with pytest.raises(PipelineError) as ei:
        plan_run(p, {"nope": "1", "a.times": "x"}, runs_dir=runs)
    msg = str(ei.value)
    assert "nothing ran" in msg
    assert "missing.ipynb" in msg and "does not exist" in msg
    assert "'times' must be int" in msg
    assert not runs.exists()

    p2 = _pipeline(tmp_path, "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n")
    with pytest.raises(PipelineError, match="unknown parameter 'nope'.*Known parameters"):
        plan_run(p2, {"nope": "1", "data": str(events_folder)}, runs_dir=runs)
    with pytest.raises(PipelineError, match="does not exist"):
        plan_run(p2, {"data": str(tmp_path / "no_such_folder")}, runs_dir=runs)
    with pytest.raises(PipelineError, match="in the future of the data.*as_of=2025-06-30"):
        plan_run(p2, {"data": str(events_folder), "as_of": "2025-07-04"}, runs_dir=runs)
    with pytest.raises(PipelineError, match="must be an ISO date"):
        plan_run(p2, {"data": str(events_folder), "as_of": "last tuesday"}, runs_dir=runs)
    with pytest.raises(PipelineError, match="set by the runner"):
        plan_run(p2, {"data": str(events_folder), "output_dir": "/tmp"}, runs_dir=runs)
    assert not runs.exists()


def test_config_is_checked_and_made_absolute(tmp_path: Path, events_folder: Path) -> None:
    nb = json.loads((FIX / "ok_step.ipynb").read_text())
    nb["cells"][1]["source"] += '\nconfig: str = ""  # business config YAML'
    (tmp_path / "c.ipynb").write_text(json.dumps(nb))
    p = tmp_path / "pl.yaml"
    p.write_text("name: x\nsteps:\n - {name: a, notebook: c.ipynb}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("margin: 3\n")
    with pytest.raises(PipelineError, match="'margin' must be <= 1.0"):
        plan_run(p, {"data": str(events_folder), "config": str(bad)}, runs_dir=tmp_path / "r")
    with pytest.raises(PipelineError, match="does not exist"):
        plan_run(p, {"data": str(events_folder), "config": "nope.yaml"}, runs_dir=tmp_path / "r")
    good = tmp_path / "good.yaml"
    good.write_text("margin: 0.7\n")
    plan = plan_run(p, {"data": str(events_folder), "config": str(good)}, runs_dir=tmp_path / "r")
    assert plan.step_parameters["a"]["config"] == str(good.resolve())


def test_as_of_defaults_to_midnight_after_last_event(events_folder: Path) -> None:
    assert check_as_of("", str(events_folder)) == "2025-06-30"
    assert check_as_of("2025-06-30", str(events_folder)) == "2025-06-30"
    assert check_as_of("2025-03-01T12:00:00", str(events_folder)) == "2025-03-01T12:00:00"
    with pytest.raises(ConfigError, match="before the data's first event"):
        check_as_of("2024-12-01", str(events_folder))
    with pytest.raises(DataContractError, match="no events.csv"):
        check_as_of("", str(events_folder.parent))
    (events_folder / "events.csv").write_text("event_id,when\ne1,2025-01-03\n")
    with pytest.raises(DataContractError, match="'events', column 'occurred_at'"):
        check_as_of("", str(events_folder))  # was: pandas' ValueError
    (events_folder / "events.csv").write_text("")
    with pytest.raises(DataContractError, match="'events', column 'occurred_at'"):
        check_as_of("", str(events_folder))  # was: EmptyDataError
    import sqlite3

    db = events_folder / "ev.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE events (event_id TEXT)")
    with pytest.raises(DataContractError, match="'events', column 'occurred_at'"):
        check_as_of("", f"sqlite:///{db}")  # was: sqlalchemy's OperationalError


def test_resolve_data_source_refuses_missing_sqlite(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match="does not exist"):
        resolve_data_source(f"sqlite:///{tmp_path}/nope.db")


def test_plan_passes_typed_parameters(tmp_path: Path, events_folder: Path) -> None:
    p = _pipeline(
        tmp_path,
        "name: x\nparameters: {times: 4}\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n"
        " - {name: b, notebook: broken_step.ipynb}\n",
    )
    plan = plan_run(
        p,
        {"data": str(events_folder)},
        runs_dir=tmp_path / "runs",
        run_id="r",
    )
    a = plan.step_parameters["a"]
    assert a["times"] == 4 and a["as_of"] == "2025-06-30" and a["data"] == str(events_folder)
    assert a["output_dir"] == str(tmp_path / "runs" / "x" / "r") and a["run_id"] == "r"
    # the broken notebook declares neither data nor times: it gets only what it declares
    assert set(plan.step_parameters["b"]) == {"output_dir", "run_id"}
    plan2 = plan_run(
        p,
        parse_cli_parameters(["a.times=7", f"data={events_folder}"]),
        runs_dir=tmp_path / "runs",
        run_id="r2",
    )
    assert plan2.step_parameters["a"]["times"] == 7


def test_coerce_and_cli_parse() -> None:
    params = notebook_parameters(FIX / "ok_step.ipynb")
    assert coerce_parameter("2025-06-30", params["as_of"]) == "2025-06-30"
    assert coerce_parameter("5", params["times"]) == 5
    ratio = NotebookParameter("holdout", "float", 0.1)
    assert coerce_parameter("1e-1", ratio) == 0.1 and coerce_parameter("2.5e3", ratio) == 2500.0
    assert coerce_parameter("0.2", ratio) == 0.2 and coerce_parameter("x", ratio) == "x"
    assert parse_cli_parameters(["a=1", "s.k=x=y"]) == {"a": "1", "s.k": "x=y"}
    with pytest.raises(PipelineError, match="KEY=VALUE"):
        parse_cli_parameters(["novalue"])


def test_redact_masks_url_passwords() -> None:
    assert redact({"data": "postgresql+psycopg://u:s3cret@db/x"}) == {
        "data": "postgresql+psycopg://u:***@db/x"
    }
    from winback_ml.pipelines.context import _redact  # MLflow params and messages: same rule

    assert _redact("postgresql+psycopg://u:s3cret@db/x") == "postgresql+psycopg://u:***@db/x"
    # a raw '@' in the password, and a ?password= query parameter: nothing of it left
    assert redact(["postgresql://u:s3@cret@db/x", "postgresql://db/x?user=u&password=s3cret"]) == [
        "postgresql://u:***@db/x",
        "postgresql://db/x?user=u&password=***",
    ]


@pytest.mark.slow
def test_failure_path_keeps_partial_notebook_names_cell_and_skips_dependents(
    tmp_path: Path,
) -> None:
    shutil.copytree(FIX, tmp_path / "fx")
    runs = tmp_path / "runs"
    plan = plan_run(tmp_path / "fx" / "mixed.yaml", runs_dir=runs, run_id="r1", check_data=False)
    m = execute_plan(plan, progress=False)
    assert m["status"] == "failed"
    st = {s["name"]: s for s in m["steps"]}
    assert [st[n]["status"] for n in ("first", "broken", "after_broken", "independent")] == [
        "ok",
        "failed",
        "skipped",
        "ok",
    ]
    err = st["broken"]["error"]
    assert err["ename"] == "ZeroDivisionError"
    assert err["source_cell_index"] == 3  # 0-based, in broken_step.ipynb
    assert "1 / denominator" in err["cell_source"]
    assert "broken" in st["after_broken"]["skipped_because"]
    assert st["independent"]["parameters"]["times"] == 1  # step value wins over run value
    run_dir = runs / "mixed" / "r1"
    # the partial notebook is kept: it has the error, and the cells before it ran
    partial = json.loads((run_dir / "notebooks" / "broken.ipynb").read_text())
    assert any(
        o.get("output_type") == "error" for c in partial["cells"] for o in c.get("outputs", [])
    )
    assert (run_dir / "before_failure.txt").exists()
    assert not (run_dir / "after_failure.txt").exists()
    assert (run_dir / "greeting.txt").read_text().strip() == "hello"  # last writer: independent
    on_disk = json.loads((run_dir / "manifest.json").read_text())
    assert on_disk["status"] == "failed" and on_disk["steps"][1]["error"]["source_cell_index"] == 3
    assert on_disk["git"] is None or len(on_disk["git"]["revision"]) == 40
    for s in on_disk["steps"]:
        if s["status"] == "ok":
            assert s["duration_s"] > 0
    report = (run_dir / "report.html").read_text()
    assert "Step broken failed at cell 3" in report and "ZeroDivisionError" in report
    assert (run_dir / "notebooks" / "first.html").exists()

    # never overwrite a run
    with pytest.raises(PipelineError, match="never overwritten"):
        plan_run(tmp_path / "fx" / "mixed.yaml", runs_dir=runs, run_id="r1", check_data=False)
    assert json.loads((run_dir / "manifest.json").read_text()) == on_disk


@pytest.mark.slow
def test_raise_on_failure_and_cli_exit_codes(tmp_path: Path) -> None:
    shutil.copytree(FIX, tmp_path / "fx")
    broken = tmp_path / "fx" / "only_broken.yaml"
    broken.write_text("name: ob\nsteps:\n - {name: b, notebook: broken_step.ipynb}\n")
    with pytest.raises(PipelineStepError, match="cell 3 of broken_step.ipynb") as ei:
        run_pipeline(broken, runs_dir=tmp_path / "runs", progress=False, raise_on_failure=True)
    assert ei.value.step == "b" and ei.value.cell == 3

    from winback_ml.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "pipeline",
            "run",
            str(broken),
            "--runs-dir",
            str(tmp_path / "r2"),
            "--run-id",
            "one",
            "-q",
            "--no-report",
        ],
    )
    assert res.exit_code == 1
    assert (tmp_path / "r2" / "ob" / "one" / "manifest.json").exists()
    res = runner.invoke(
        app, ["pipeline", "run", str(broken), "--runs-dir", str(tmp_path / "r2"), "--run-id", "one"]
    )
    assert res.exit_code == 2 and "never overwritten" in res.output
    res = runner.invoke(app, ["pipeline", "run", str(broken), "-p", "nope=1"])
    assert res.exit_code == 2 and "unknown parameter 'nope'" in res.output
    res = runner.invoke(app, ["pipeline", "list", "--runs-dir", str(tmp_path / "r2")])
    assert res.exit_code == 0 and "ob/one: failed (0/1 steps ok" in res.output
    res = runner.invoke(app, ["pipeline", "show", str(broken)])
    assert res.exit_code == 0 and "output_dir" in res.output


def test_data_and_as_of_cannot_be_set_for_one_step(tmp_path: Path, events_folder: Path) -> None:
    """One data source and one checked as_of for the whole run: a step-level override would
    skip the future-of-the-data check and give steps different "todays"."""
    p = _pipeline(tmp_path, "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n")
    runs = tmp_path / "runs"
    with pytest.raises(PipelineError, match=r"-p a.as_of: 'as_of' holds for the whole run"):
        plan_run(p, {"data": str(events_folder), "a.as_of": "2099-01-01"}, runs_dir=runs)
    with pytest.raises(PipelineError, match=r"-p a.data: 'data' holds for the whole run"):
        plan_run(p, {"data": str(events_folder), "a.data": "/nowhere"}, runs_dir=runs)
    with pytest.raises(PipelineError, match=r"-p a.output_dir: 'output_dir' is set by the runner"):
        plan_run(p, {"data": str(events_folder), "a.output_dir": "/tmp"}, runs_dir=runs)
    p2 = tmp_path / "pl2.yaml"
    p2.write_text(
        "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb, parameters: {as_of: 2099-01-01}}\n"
    )
    with pytest.raises(PipelineError, match=r"step 'a': 'as_of' holds for the whole run"):
        plan_run(p2, {"data": str(events_folder)}, runs_dir=runs)
    assert not runs.exists()
    plan = plan_run(p, {"data": str(events_folder), "as_of": "2025-05-01"}, runs_dir=runs)
    assert plan.step_parameters["a"]["as_of"] == "2025-05-01"


URL = "postgresql+psycopg://app:s3cret@db/x"  # the password arrives only as a run parameter


def _plan_with_url(tmp_path: Path, name: str, cells: list[str]):
    """A one-step pipeline ``name`` whose step takes ``data`` and runs ``cells`` (cells 2 on of
    the broken-step fixture), planned with ``data=URL``."""
    nb = json.loads((FIX / "broken_step.ipynb").read_text())
    nb["cells"][1]["source"] = (
        'data: str = "sample"  # folder or URL of the contract tables\n'
        'output_dir: str = "out"  # where this step writes\n'
        'run_id: str = ""  # id of the run'
    )
    for i, src in enumerate(cells, start=2):
        nb["cells"][i]["source"] = src
    (tmp_path / f"{name}.ipynb").write_text(json.dumps(nb))
    p = tmp_path / "pl.yaml"
    p.write_text(f"name: {name}\nsteps:\n - {{name: b, notebook: {name}.ipynb}}\n")
    return plan_run(p, {"data": URL}, runs_dir=tmp_path / "runs", run_id="r", check_data=False)


def test_failure_record_masks_url_passwords(tmp_path: Path) -> None:
    # papermill injects the URL into the notebook and its metadata, a cell prints it, another
    # raises an error that contains it
    plan = _plan_with_url(
        tmp_path,
        "lk",
        [
            'print("connecting to", data)\ndata',
            'raise RuntimeError(f"cannot reach {data}: connection refused")',
        ],
    )
    m = execute_plan(plan, progress=False, report=True)
    err = m["steps"][0]["error"]
    assert err["ename"] == "RuntimeError" and "app:***@db" in err["evalue"]
    run_dir = tmp_path / "runs" / "lk" / "r"
    saved = (run_dir / "notebooks" / "b.ipynb").read_text()
    # the executed copy is kept, still a notebook, with the masked URL in each place
    out = json.loads(saved)
    texts = json.dumps(out)
    assert texts.count("app:***@db") >= 4  # injected parameter, printed, result, error
    assert any(o.get("output_type") == "error" for c in out["cells"] for o in c.get("outputs", []))
    assert out["metadata"]["papermill"]["parameters"]["data"] == "postgresql+psycopg://app:***@db/x"
    leaks = [
        str(f.relative_to(run_dir))
        for f in run_dir.rglob("*")
        if f.is_file() and b"s3cret" in f.read_bytes()
    ]
    assert leaks == []  # manifest, report, notebook and its HTML copy


def test_no_password_on_disk_while_a_step_runs(tmp_path: Path) -> None:
    # papermill saves the executed copy while the step runs (at the start and around each
    # cell): a step killed half-way must not leave the injected password behind. The step
    # reads its own saved copy mid-run and records what it found.
    plan = _plan_with_url(
        tmp_path,
        "w",
        [
            'print("connecting to", data)',
            "import pathlib\n"
            'saved = (pathlib.Path(output_dir) / "notebooks" / "b.ipynb").read_text()\n'
            'found = {"parameter": "app:***@db" in saved, "secret": "s3" + "cret" in saved}\n'
            '(pathlib.Path(output_dir) / "mid_step.json").write_text(str(found))',
            "found",
        ],
    )
    m = execute_plan(plan, progress=False, report=False)
    assert m["status"] == "ok"
    run_dir = tmp_path / "runs" / "w" / "r"
    # mid-step, the saved copy already held the (masked) parameter and the printed URL
    assert (run_dir / "mid_step.json").read_text() == "{'parameter': True, 'secret': False}"
    saved = json.loads((run_dir / "notebooks" / "b.ipynb").read_text())
    assert saved["metadata"]["papermill"]["parameters"]["data"].endswith("app:***@db/x")
    assert not list(run_dir.rglob("*.tmp"))  # every save was replaced atomically


def test_mask_notebook_rewrites_only_what_holds_a_password(tmp_path: Path) -> None:
    from winback_ml.pipelines.runner import mask_notebook

    clean = tmp_path / "clean.ipynb"
    clean.write_text((FIX / "ok_step.ipynb").read_text())
    before = clean.read_bytes()
    assert mask_notebook(clean) is False and clean.read_bytes() == before
    assert mask_notebook(tmp_path / "missing.ipynb") is False
    nb = json.loads(before)
    nb["cells"][2]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": ["mysql://u:pw@h/x\n"]}
    ]
    clean.write_text(json.dumps(nb))
    assert mask_notebook(clean) is True
    assert json.loads(clean.read_text())["cells"][2]["outputs"][0]["text"] == [
        "mysql://u:***@h/x\n"
    ]


def test_existing_run_folder_is_refused_before_the_sample_store_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import winback_ml.data.sample as sample

    built = []
    monkeypatch.setattr(sample, "ensure_sample_store", lambda *a, **k: built.append(1))
    monkeypatch.setenv("WINBACK_STORE_URL", f"sqlite:///{tmp_path}/store.db")
    p = _pipeline(tmp_path, "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n")
    (tmp_path / "runs" / "x" / "r").mkdir(parents=True)
    with pytest.raises(PipelineError, match="never overwritten"):
        plan_run(p, {"data": "sample"}, runs_dir=tmp_path / "runs", run_id="r")
    assert built == []  # a refused run spends no time building data


def test_cli_run_folder_appearing_after_the_check_is_a_clean_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import winback_ml.pipelines.runner as runner_mod
    from winback_ml.cli import app

    real = runner_mod.plan_run

    def racing(*a, **k):
        plan = real(*a, **k)
        plan.run_dir.mkdir(parents=True)  # another run took the folder meanwhile
        return plan

    monkeypatch.setattr(runner_mod, "plan_run", racing)
    p = _pipeline(tmp_path, "name: x\nsteps:\n - {name: b, notebook: broken_step.ipynb}\n")
    res = CliRunner().invoke(
        app, ["pipeline", "run", str(p), "--runs-dir", str(tmp_path / "runs"), "-q"]
    )
    assert res.exit_code == 2 and "never overwritten" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_report_never_shows_a_table_with_pii_columns(tmp_path: Path) -> None:
    """A CSV written into tables/ around save_table (no PII check) stays out of the report."""
    from winback_ml.pipelines.report import render_report

    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "ok.csv").write_text("customer_id,score\nc1,0.5\n")
    (tmp_path / "tables" / "leak.csv").write_text("customer_id,email\nc1,ann@example.com\n")
    (tmp_path / "manifest.json").write_text(
        json.dumps({"pipeline": "x", "steps": [], "parameters": {}})
    )
    html = render_report(tmp_path, notebooks_html=False).read_text()
    assert "ann@example.com" not in html and "0.5" in html


def test_unreachable_data_url_is_named_as_such_before_anything_runs(tmp_path: Path) -> None:
    p = _pipeline(tmp_path, "name: x\nsteps:\n - {name: a, notebook: ok_step.ipynb}\n")
    url = "postgresql+psycopg://app:s3cret@127.0.0.1:1/x"  # nothing listens on port 1
    with pytest.raises(PipelineError) as ei:
        plan_run(p, {"data": url}, runs_dir=tmp_path / "runs")
    msg = str(ei.value)
    assert "Cannot connect to the store 'postgresql+psycopg://app:***@127.0.0.1:1/x'" in msg
    assert "connection refused" in msg and "export events" not in msg and "s3cret" not in msg
    assert not (tmp_path / "runs").exists()
