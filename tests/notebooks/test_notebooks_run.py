"""The notebooks: parameters, thinness, and full runs under Papermill on a small world."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from winback_ml.pipelines import load_pipeline, notebook_parameters, plan_run, run_pipeline
from winback_ml.pipelines.context import PII_COLUMNS

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WEEKLY = REPO / "pipelines" / "weekly_winback.yaml"
DAILY = REPO / "pipelines" / "daily_dispatch.yaml"
STANDARD = ("data", "as_of", "output_dir", "run_id", "config", "mlflow_tracking_uri")


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_six_notebooks_exist() -> None:
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_parameters_are_standard_typed_and_explained(path: Path) -> None:
    from papermill import inspect_notebook

    params = notebook_parameters(path)
    assert list(params)[: len(STANDARD)] == list(STANDARD)
    for p in params.values():
        assert p.type_name in ("str", "int", "float", "bool"), p
        assert p.help, f"{p.name} has no help comment"
        assert p.accepts(p.default), p
    # papermill reads the same cell the same way (a '=' in a help comment would break it)
    assert list(inspect_notebook(str(path))) == list(params)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_shaped_as_the_house_style_says(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown"
    intro = "".join(cells[0]["source"])
    assert "**Purpose.**" in intro and "**Inputs.**" in intro and "**Outputs**" in intro
    assert "parameters" in cells[1]["metadata"].get("tags", [])
    assert "make_run_context(" in "".join(cells[2]["source"])
    code = _code(nb)
    assert "ctx.log_to_mlflow(" in code[-1]
    for src in code:
        for node in ast.walk(ast.parse(src.replace("display(", "print("))):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), (
                f"{path.name} defines code in a cell; move it into winback_ml"
            )
    for c in cells:  # stored without outputs
        assert c["cell_type"] == "markdown" or (not c["outputs"] and c["execution_count"] is None)


def test_pipelines_cover_every_notebook_and_their_parameters_check() -> None:
    weekly = load_pipeline(WEEKLY)
    assert {s.notebook.name for s in weekly.steps} == {p.name for p in NOTEBOOKS}
    assert weekly.steps[-1].name == "kpi_report"
    for pl in (WEEKLY, DAILY):
        plan = plan_run(pl, runs_dir="/nonexistent/runs", check_data=False)
        for s in plan.pipeline.steps:
            assert set(plan.step_parameters[s.name]) <= set(plan.declared[s.name])


@pytest.fixture(scope="module")
def small_world_folder(tmp_path_factory) -> Path:
    from winback_ml.data.synthetic import make_world

    out = tmp_path_factory.mktemp("world") / "tables"
    make_world(1000, 11).write(out)
    return out


@pytest.mark.slow
def test_weekly_pipeline_runs_every_notebook_on_a_small_world(
    small_world_folder: Path, tmp_path: Path
) -> None:
    """The main job end to end: every notebook runs under Papermill, outputs are where they belong."""
    from winback_ml.offers.optimizer import TARGET_COLUMNS

    m = run_pipeline(
        WEEKLY,
        {
            "data": str(small_world_folder),
            "campaign_uplift.hillstrom_path": "no/such.csv",  # the skip path
            # keep the test fast: model registration and slow candidates are tested elsewhere
            "ltv_offers.log_models": "false",
            "return_churn_models.return_candidates": "kaplan_meier,cox",
            "return_churn_models.churn_candidates": "kaplan_meier",
        },
        runs_dir=tmp_path / "runs",
        run_id="t1",
        progress=False,
    )
    failed = [(s["name"], s["error"]) for s in m["steps"] if s["status"] != "ok"]
    assert m["status"] == "ok", failed
    run = tmp_path / "runs" / "weekly_winback" / "t1"
    targets = pd.read_csv(run / "targets.csv")
    assert list(targets.columns) == TARGET_COLUMNS
    assert targets["rank"].is_unique and len(targets) > 0
    assert (run / "churn_risk.csv").exists() and (run / "cohort.csv").exists()
    kpi = pd.read_csv(run / "kpi_report.csv")
    assert {"resubscription_rate", "cost_per_reactivation", "arpu_recovered"} <= set(kpi["kpi"])
    plan = pd.read_csv(run / "dispatch_plan.csv")
    assert set(plan["customer_id"]) <= set(targets.loc[targets["contact"], "customer_id"])
    assert any((run / "dispatch_dry_run").glob("*/*.json"))  # rendered messages, as files
    assert not (run / "dispatch_dry_run" / "scratch_store.db").exists()
    for fig in (
        "01_return_curves_by_reason",
        "01_segment_mix",
        "02_return_calibration",
        "02_churn_calibration",
        "03_profit_vs_budget",
        "04_qini_curves",
        "06_kpi_trend",
    ):
        assert (run / "figures" / f"{fig}.png").exists(), fig
    for csv in run.rglob("*.csv"):  # no PII in any table the run leaves
        assert not set(pd.read_csv(csv, nrows=1).columns) & PII_COLUMNS, csv
    # every step saw the same as_of: midnight after the world's last event
    as_of = {s["parameters"]["as_of"] for s in m["steps"]}
    assert len(as_of) == 1
    report = (run / "report.html").read_text()
    assert "weekly_winback" in report and "data:image/png;base64" in report
    # the executed notebooks say which parameters they ran with
    nb = json.loads((run / "notebooks" / "kpi_report.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and str(small_world_folder) in "".join(injected[0]["source"])
    nb = json.loads((run / "notebooks" / "campaign_uplift.ipynb").read_text())
    assert "Hillstrom view skipped" in json.dumps(nb)
