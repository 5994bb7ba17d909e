"""``winback score``: targets.csv, churn_risk.csv and a summary for DATA as of DATE.

See :func:`winback_ml.scoring.score`. The command prints the summary's
headline numbers and the notes (every fallback taken), never PII.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "score_command"]


def score_command(
    data: str = typer.Argument(..., help="Contract folder (CSV/Parquet) or SQLAlchemy URL."),
    as_of: str = typer.Option(..., "--as-of", help="Run date (ISO); nothing after it is read."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Folder to write into."),
    config: Path = typer.Option(None, "--config", "-c", help="Business config YAML."),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Do not log the models to MLflow."),
    return_model: str = typer.Option(
        "kaplan_meier", "--return-model", help="kaplan_meier (by reason) or weibull_cure."
    ),
) -> None:
    """Score lapsed customers (offer, channel, expected profit, rank) and active customers' churn risk."""
    from winback_ml.exceptions import WinbackError
    from winback_ml.scoring import score

    try:
        res = score(
            data, as_of, output_dir, config, log_models=not no_mlflow, return_model=return_model
        )
    except WinbackError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    p = res.summary["plan"]
    typer.echo(
        f"as of {res.summary['as_of']}: {p['customers']} lapsed customers, {p['contacted']} to contact; "
        f"expected reactivations {p['expected_reactivations']:.1f} "
        f"({p['expected_incremental_reactivations']:.1f} incremental), "
        f"spend {p.get('expected_spend', 0):.2f}, incremental profit {p['expected_incremental_profit']:.2f}"
    )
    for k, v in res.summary.get("comparison", {}).items():
        if "expected_incremental_profit" in v:
            typer.echo(f"  {k}: incremental profit {v['expected_incremental_profit']:.2f}")
    for n in res.summary["notes"]:
        typer.echo(f"note: {n}")
    for k, f in res.files.items():
        typer.echo(f"wrote {k}: {f}")


def register(app: typer.Typer) -> None:
    """Add ``score`` to the ``winback`` command."""
    app.command("score")(score_command)
