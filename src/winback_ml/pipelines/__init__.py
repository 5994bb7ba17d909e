"""Notebook pipelines: parameter checks, Papermill runner, run manifest, HTML report.

``winback pipeline run pipelines/weekly_winback.yaml -p as_of=2025-06-30``
checks every parameter against every notebook first, then runs the steps
into ``data/runs/<pipeline>/<run_id>/`` (see :mod:`.runner`). Notebooks
build their :class:`~winback_ml.pipelines.context.RunContext` with
:func:`make_run_context` (see :mod:`.context`).
"""

from __future__ import annotations

from winback_ml.pipelines.context import RunContext, make_run_context
from winback_ml.pipelines.report import render_report
from winback_ml.pipelines.runner import RunPlan, execute_plan, plan_run, run_pipeline
from winback_ml.pipelines.spec import (
    NotebookParameter,
    Pipeline,
    Step,
    load_pipeline,
    notebook_parameters,
    parse_cli_parameters,
)

__all__ = [
    "NotebookParameter",
    "Pipeline",
    "RunContext",
    "RunPlan",
    "Step",
    "execute_plan",
    "load_pipeline",
    "make_run_context",
    "notebook_parameters",
    "parse_cli_parameters",
    "plan_run",
    "render_report",
    "run_pipeline",
]
