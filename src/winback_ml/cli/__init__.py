"""The ``winback`` command.

Each stage owns one module under ``winback_ml.cli`` with a
``register(app: typer.Typer) -> None`` function that adds its commands or
sub-groups. Heavy imports (pandas, mlflow, xgboost) happen inside the
commands, so ``winback --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="winback",
    help="winback_ml: find lapsed subscribers worth winning back, choose the offer, send it, prove it paid.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Stage modules, in pipeline order. A module that does not exist yet is skipped.
_STAGE_MODULES = (
    "data",  # validate, demo, store
    "world",  # make-world
    "intake",  # intake ...
    "campaigns",  # campaigns evaluate
    "score",  # score
    "dispatch",  # dispatch ...
    "pipeline",  # pipeline run ...
)

for _name in _STAGE_MODULES:
    _modname = f"{__name__}.{_name}"
    try:
        _mod = importlib.import_module(_modname)
    except ModuleNotFoundError as _e:  # only skip a stage module that is absent
        if _e.name != _modname:
            raise
        continue
    _mod.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``winback`` console script.

    A :class:`~winback_ml.exceptions.WinbackError` (bad input, an unreachable
    store, ...) prints ``error: <message>`` and exits 1, without a traceback;
    so does a database connection failure raised outside the store (e.g. the
    loader reading ``winback validate URL``), its URL's password masked.
    """
    from winback_ml.exceptions import WinbackError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, standalone_mode=True)
    except WinbackError as e:  # typer re-raises what a command raises
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except Exception as e:
        msg = _connection_failure(e, args)
        if msg is None:
            raise
        typer.echo(f"error: {msg}", err=True)
        sys.exit(1)


def _connection_failure(exc: BaseException, args: list[str]) -> str | None:
    """The message for a database connection failure, or None for any other error."""
    if "sqlalchemy" not in sys.modules:  # nothing connected to a database
        return None
    import os

    import sqlalchemy as sa

    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    from winback_ml.data.store import describe_connection_error

    urls = [a.split("=", 1)[1] if a.startswith("-") and "=" in a else a for a in args]
    url = next((a for a in urls if "://" in a), None) or os.environ.get("WINBACK_STORE_URL")
    return str(describe_connection_error(url or "<the database URL>", exc))
