"""``winback pipeline``: run, show and list notebook pipelines.

* ``winback pipeline run FILE [-p KEY=VALUE ...] [--run-id ID] [--runs-dir DIR]``
  checks every parameter against every notebook, then runs the steps with
  Papermill into ``<runs-dir>/<pipeline>/<run_id>/``. Exit 0 when every step
  is ok, 1 when a step failed (the manifest and report are still written),
  2 when the run was refused before anything ran.
* ``winback pipeline show FILE``: the steps and the parameters each notebook
  declares (type, default, help).
* ``winback pipeline list [--runs-dir DIR]``: earlier runs with their status.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register", "pipeline_app"]

pipeline_app = typer.Typer(
    name="pipeline",
    help="Run notebook pipelines (Papermill) with checked parameters, one folder per run.",
    no_args_is_help=True,
)


@pipeline_app.command("run")
def run(
    file: Path = typer.Argument(..., help="Pipeline YAML, e.g. pipelines/weekly_winback.yaml."),
    param: list[str] = typer.Option(
        [],
        "-p",
        "--param",
        help="KEY=VALUE run parameter (repeatable); STEP.KEY=VALUE for one step.",
    ),
    run_id: str = typer.Option(None, "--run-id", help="Run folder name (default: UTC timestamp)."),
    runs_dir: Path = typer.Option(
        None, "--runs-dir", help="Root of run folders (default: $WINBACK_RUNS_DIR or ./data/runs)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report."),
    threads: int = typer.Option(
        1,
        "--threads",
        help="OpenMP/BLAS threads per notebook kernel (0: leave the environment alone).",
    ),
) -> None:
    """Check the parameters against each notebook, then run the pipeline."""
    from winback_ml.exceptions import WinbackError
    from winback_ml.pipelines.runner import execute_plan, plan_run
    from winback_ml.pipelines.spec import parse_cli_parameters

    if not quiet:
        typer.echo(
            "Checking the parameters against every notebook (the sample store is built first "
            "when it is empty) ...",
            err=True,
        )
    try:
        overrides = parse_cli_parameters(param)
        plan = plan_run(file, overrides, run_id=run_id, runs_dir=runs_dir)
    except WinbackError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        manifest = execute_plan(
            plan, progress=not quiet, report=not no_report, threads=threads or None
        )
    except WinbackError as e:  # e.g. the run folder appeared since the check
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(str(plan.run_dir))
    if manifest["status"] != "ok":
        raise typer.Exit(1)


@pipeline_app.command("show")
def show(file: Path = typer.Argument(..., help="Pipeline YAML.")) -> None:
    """Print the steps of a pipeline and the parameters of each notebook."""
    from rich.console import Console
    from rich.table import Table

    from winback_ml.exceptions import WinbackError
    from winback_ml.pipelines.spec import load_pipeline, notebook_parameters

    try:
        pl = load_pipeline(file)
    except WinbackError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    console = Console()
    console.print(f"[bold]{pl.name}[/]: {pl.description}")
    if pl.parameters:
        console.print("run parameters: " + json.dumps(pl.parameters))
    for i, s in enumerate(pl.steps, start=1):
        deps = f" (after {', '.join(s.depends_on)})" if s.depends_on else ""
        console.print(f"\n[bold]{i}. {s.name}[/]{deps}: {s.notebook}")
        try:
            params = notebook_parameters(s.notebook)
        except WinbackError as e:
            console.print(f"[red]{e}[/]")
            continue
        t = Table("parameter", "type", "default", "set here", "help")
        for p in params.values():
            t.add_row(
                p.name,
                p.type_name or "",
                repr(p.default),
                repr(s.parameters[p.name]) if p.name in s.parameters else "",
                p.help,
            )
        console.print(t)


@pipeline_app.command("list")
def list_runs(
    runs_dir: Path = typer.Option(None, "--runs-dir", help="Root of run folders."),
) -> None:
    """List earlier runs (newest last) with status and duration."""
    from winback_ml.pipelines.runner import default_runs_dir

    root = Path(runs_dir) if runs_dir else default_runs_dir()
    manifests = sorted(root.glob("*/*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        typer.echo(f"No runs under {root}.")
        return
    for p in manifests:
        try:
            m = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            typer.echo(f"{p.parent}: unreadable manifest")
            continue
        dur = m.get("duration_s")
        steps = m.get("steps", [])
        n_ok = sum(s.get("status") == "ok" for s in steps)
        typer.echo(
            f"{m.get('pipeline')}/{m.get('run_id')}: {m.get('status')} "
            f"({n_ok}/{len(steps)} steps ok"
            + (f", {dur:.1f} s" if isinstance(dur, (int, float)) else "")
            + f") {p.parent}"
        )


def register(app: typer.Typer) -> None:
    """Add the ``pipeline`` command group to the ``winback`` app."""
    app.add_typer(pipeline_app, name="pipeline")
