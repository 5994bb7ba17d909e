"""``winback campaigns evaluate``: per-arm effects of past campaigns, with intervals and plots.

Output files are listed in
:func:`winback_ml.models.uplift_campaigns.evaluate_campaign_history`. Ids and
numbers only: no PII is written.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "evaluate_command"]


def evaluate_command(
    data: str = typer.Argument(..., help="Contract folder (CSV/Parquet) or SQLAlchemy URL."),
    output_dir: Path = typer.Option(
        ..., "--output-dir", "-o", help="Folder for the tables and plots."
    ),
    as_of: str = typer.Option(None, "--as-of", help="Run date (ISO); nothing after it is read."),
    config: Path = typer.Option(None, "--config", "-c", help="Business config YAML."),
    min_arm_size: int = typer.Option(
        50, "--min-arm-size", help="Smaller arms are flagged unreliable."
    ),
) -> None:
    """Every campaign arm against its control: reactivation uplift (95 % CI), revenue and cost per
    incremental reactivation; pooled by offer type, by reason and by contact window; Qini curves."""
    from winback_ml.exceptions import WinbackError
    from winback_ml.models.uplift_campaigns import evaluate_campaign_history

    try:
        files = evaluate_campaign_history(
            data, output_dir, as_of=as_of, config=config, min_arm_size=min_arm_size
        )
    except WinbackError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    import pandas as pd

    pooled = pd.read_csv(files["arms_pooled"])
    cols = [
        "arm_id",
        "n",
        "rate",
        "rate_control",
        "uplift",
        "uplift_ci_low",
        "uplift_ci_high",
        "reliable",
    ]
    typer.echo(pooled[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for k, p in files.items():
        typer.echo(f"wrote {k}: {p}")


def register(app: typer.Typer) -> None:
    """Add the ``campaigns`` group to the ``winback`` command."""
    group = typer.Typer(help="Evaluate past win-back campaigns.", no_args_is_help=True)
    group.command("evaluate")(evaluate_command)
    app.add_typer(group, name="campaigns")
