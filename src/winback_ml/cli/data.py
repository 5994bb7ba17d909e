"""``winback validate``, ``winback demo`` and ``winback store ...``."""

from __future__ import annotations

from pathlib import Path

import typer

from winback_ml.data.sample import SAMPLE_CUSTOMERS, SAMPLE_SEED

__all__ = ["register"]

store_app = typer.Typer(
    help="The embedded store: load contract tables into it, export them, show counts.",
    no_args_is_help=True,
)


def validate(
    data: str = typer.Argument(
        ..., help="Folder with <table>.csv/.parquet files, or an SQLAlchemy URL."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Also cut the data as of this date and report what remains."
    ),
) -> None:
    """Check DATA against the data contract: exit 0 when valid, else exit 1 with every violation."""
    from winback_ml.data.loader import load_data
    from winback_ml.exceptions import ConfigError, DataContractError

    try:
        d = load_data(data, as_of=as_of)
    except (DataContractError, ConfigError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    rows = ", ".join(f"{k}={v}" for k, v in d.summary().items())
    typer.echo(f"OK: {d.source} meets the data contract ({rows}).")
    if d.missing:
        typer.echo(f"Optional tables absent: {', '.join(d.missing)}.")
    if as_of is not None:
        last = d.events["occurred_at"].max()
        typer.echo(f"As of {d.as_of.date()}: last visible event {last}.")


def demo(
    store: str | None = typer.Option(
        None,
        "--store",
        help="Store URL (default: WINBACK_STORE_URL or sqlite file data/winback.db).",
    ),
    customers: int = typer.Option(
        SAMPLE_CUSTOMERS, "--customers", help="Size of the sample world."
    ),
    seed: int = typer.Option(SAMPLE_SEED, "--seed", help="Seed of the sample world."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Rebuild the sample world even if the store has data."
    ),
) -> None:
    """Build the embedded sample world into the store, validate it and print a summary."""
    from winback_ml.data.sample import ensure_sample_store, summarize

    st, built = ensure_sample_store(store, customers=customers, seed=seed, rebuild=rebuild)
    typer.echo(("Built" if built else "Reusing") + f" the sample world in {_shown(st.url)}")
    data = st.read()
    typer.echo(summarize(data))


@store_app.command("load")
def store_load(
    data: str = typer.Argument(..., help="Folder or URL with the contract tables."),
    store: str | None = typer.Option(None, "--store", help="Target store URL."),
    append: bool = typer.Option(
        False, "--append", help="Append instead of replacing the stored tables."
    ),
) -> None:
    """Validate DATA and write it into the store in one transaction (nothing is written on error)."""
    from winback_ml.data.loader import load_data
    from winback_ml.data.store import Store
    from winback_ml.exceptions import DataContractError

    try:
        d = load_data(data)
        written = Store(store).write(d, replace=not append)
    except DataContractError as e:
        typer.echo(str(e), err=True)
        typer.echo("Nothing was written to the store.", err=True)
        raise typer.Exit(1) from None
    typer.echo("Stored: " + ", ".join(f"{k}={v}" for k, v in written.items()))


@store_app.command("export")
def store_export(
    out: Path = typer.Argument(..., help="Folder to write <table>.csv (or .parquet) into."),
    store: str | None = typer.Option(None, "--store", help="Store URL."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
) -> None:
    """Export the stored contract tables to a folder."""
    from winback_ml.data.store import Store

    if fmt not in ("csv", "parquet"):
        typer.echo(
            f"error: --format must be csv or parquet. Got {fmt!r}; nothing was written.", err=True
        )
        raise typer.Exit(2)
    d = Store(store).read()
    out.mkdir(parents=True, exist_ok=True)
    for name, df in d.tables().items():
        if fmt == "parquet":
            df.to_parquet(out / f"{name}.parquet", index=False)
        else:
            df.to_csv(out / f"{name}.csv", index=False)
    typer.echo(f"Wrote {len(d.tables())} tables to {out}")


@store_app.command("info")
def store_info(store: str | None = typer.Option(None, "--store", help="Store URL.")) -> None:
    """Rows per contract table in the store."""
    from winback_ml.data.store import Store

    st = Store(store)
    if not st.exists():
        typer.echo(
            f"The store {_shown(st.url)} holds no contract data yet. Run `winback demo` or `winback store load DATA`."
        )
        raise typer.Exit(1)
    typer.echo(
        f"{_shown(st.url)}: "
        + ", ".join(f"{k}={v}" for k, v in st.read(validate=False).summary().items())
    )


def _shown(url: str) -> str:
    """A store URL as printed: its password masked (terminal output ends up in logs)."""
    from winback_ml.pipelines.runner import redact

    return redact(url)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("demo")(demo)
    app.add_typer(store_app, name="store")
