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
    """Entry point of the ``winback`` console script."""
    from winback_ml.exceptions import WinbackError

    try:
        app(args=argv, standalone_mode=True)
    except WinbackError as e:  # pragma: no cover - typer normally exits first
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
