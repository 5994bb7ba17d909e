"""``winback make-world``: write a synthetic world (contract tables + truth) to a folder.

The tables go to ``OUT/<table>.csv`` (or ``.parquet``), the truth to
``OUT/_truth/`` (read it back with :func:`winback_ml.data.synthetic.load_truth`).
The summary printed holds counts only, never PII.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "make_world_command"]


def make_world_command(
    out: Path = typer.Argument(..., help="Folder to write the tables and the _truth/ folder into."),
    customers: int = typer.Option(5000, "--customers", "-n", min=1, help="Number of customers."),
    seed: int = typer.Option(
        0, "--seed", "-s", help="Random seed; the same seed gives the same world."
    ),
    start: str = typer.Option(
        "2023-01-01", "--start", help="First possible signup (ISO date, UTC)."
    ),
    end: str = typer.Option(
        "2025-12-31", "--end", help="The world's end and default as_of (ISO date, UTC)."
    ),
    fmt: str = typer.Option("csv", "--format", "-f", help="Table file format: csv or parquet."),
) -> None:
    """Simulate a subscription business with known truth and write it to OUT.

    Every contract table is written (customers, subscriptions, events, usage,
    support_tickets, interviews, campaigns, campaign_arms,
    campaign_assignments); the truth (latent traits, true reasons, return and
    churn parameters) goes to OUT/_truth/ for tests and benchmarks.
    """
    import time

    from winback_ml.data.synthetic import make_world
    from winback_ml.exceptions import WinbackError

    if fmt not in ("csv", "parquet"):
        typer.echo(f"error: --format must be csv or parquet. Got {fmt!r} instead.", err=True)
        raise typer.Exit(2)
    t0 = time.perf_counter()
    try:
        world = make_world(customers, seed, start=start, end=end)
        world.write(out, fmt=fmt)
    except WinbackError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    secs = time.perf_counter() - t0
    typer.echo(summary(world))
    typer.echo(f"Wrote {out} ({fmt}) in {secs:.1f} s; truth in {out / '_truth'}")


def summary(world) -> str:  # noqa: ANN001 - World, imported lazily
    """Rows per table, customers lapsed and active at the end, and the reasons mix."""
    import numpy as np

    lines = [
        f"World: {world.n_customers:,} customers, seed {world.seed}, {world.start.date()} to {world.end.date()}"
    ]
    for name, df in world.tables.items():
        lines.append(f"  {name:<22}{len(df):>12,} rows")
    ids = world.tables["customers"]["customer_id"].to_numpy()
    p = world.truth.p_return(ids, world.end)
    pc = world.truth.p_churn(ids, world.end)
    lapsed = int(np.isfinite(p).sum())
    lines.append(f"Lapsed at the end: {lapsed:,}; active: {int(np.isfinite(pc).sum()):,}")
    mix = world.truth.lapses["true_reason"].value_counts(normalize=True)
    lines.append("True reasons of lapses: " + ", ".join(f"{k} {v:.0%}" for k, v in mix.items()))
    st = world.tables["subscriptions"]["cancel_reason"]
    unk = float((st == "unknown").sum() / max(st.notna().sum(), 1))
    lines.append(f"Stated reason unknown: {unk:.0%} of subscriptions with a reason")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``make-world`` to the ``winback`` command."""
    app.command("make-world")(make_world_command)
