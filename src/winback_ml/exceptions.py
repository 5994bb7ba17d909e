"""The one exceptions module of winback_ml.

Every error the package raises on purpose derives from :class:`WinbackError`,
so a caller can catch the package's own errors apart from bugs::

    WinbackError
    ├── ConfigError              a business config or run parameter is wrong
    │   └── StoreError           the store (database URL) cannot be opened or reached
    ├── DataContractError        input tables break the data contract
    │   └── LeakageError         something dated after ``as_of`` was asked for
    ├── IntakeError              a provider payload cannot be normalised
    │   └── SignatureError       a webhook signature does not verify
    ├── ModelError               a model cannot be fitted or used
    │   └── NotFittedError       a model was used before ``fit``
    ├── OptimizationError        the offer optimizer cannot produce a plan
    ├── DispatchError            a message cannot be rendered or sent
    └── PipelineError            a notebook pipeline cannot run
        └── PipelineStepError    one step of a pipeline failed

A message says what was expected, what came instead, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "WinbackError",
    "ConfigError",
    "StoreError",
    "DataContractError",
    "LeakageError",
    "IntakeError",
    "SignatureError",
    "ModelError",
    "NotFittedError",
    "OptimizationError",
    "DispatchError",
    "PipelineError",
    "PipelineStepError",
]


class WinbackError(Exception):
    """Base class of every error raised on purpose by winback_ml."""


class ConfigError(WinbackError, ValueError):
    """A business config or a run parameter is invalid."""


class StoreError(ConfigError):
    """The store's URL cannot be parsed, its driver is missing, or the database is unreachable."""


class DataContractError(WinbackError, ValueError):
    """Input tables break the data contract.

    ``violations`` holds every problem found (not only the first), each a
    :class:`winback_ml.data.contract.Violation` naming table, column, rows and fix.
    """

    def __init__(self, message: str, violations: list | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])


class LeakageError(DataContractError):
    """Data dated after ``as_of`` was requested or found where it must not be."""


class IntakeError(WinbackError, ValueError):
    """A provider payload cannot be normalised into contract events."""


class SignatureError(IntakeError):
    """A webhook signature is missing or does not verify."""


class ModelError(WinbackError):
    """A model cannot be fitted, evaluated or used as asked."""


class NotFittedError(ModelError, AttributeError):
    """A model was used before ``fit`` was called."""


class OptimizationError(WinbackError):
    """The offer optimizer cannot produce a plan from what it was given."""


class DispatchError(WinbackError):
    """A message cannot be rendered, stored or sent."""


class PipelineError(WinbackError):
    """A notebook pipeline cannot be run as asked."""


class PipelineStepError(PipelineError):
    """One step of a pipeline failed; ``cell`` names the failing cell."""

    def __init__(self, message: str, step: str | None = None, cell: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.cell = cell
