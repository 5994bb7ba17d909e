"""Example Airflow DAGs: the weekly win-back run and the daily dispatch.

Copy into your Airflow ``dags/`` folder and set ``WINBACK_HOME`` (the
checkout with its ``.venv``) and ``WINBACK_DATA`` (a folder or SQLAlchemy
URL of the contract tables). Each task runs ``winback pipeline run``: the
runner checks every parameter against every notebook before anything runs
(exit 2), keeps the partial notebook and names the failing cell (exit 1),
and writes ``data/runs/<pipeline>/<run_id>/`` with ``manifest.json`` and
``report.html``.

``as_of`` is the end of the run's data interval, so a backfill reproduces what was
known then; the DAG run id is the run id, so a retry of the same run is
refused rather than overwriting its record (clear the folder or trigger a
new run to rerun on purpose). This file is documentation: the package does
not depend on Airflow.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

WINBACK_HOME = os.environ.get("WINBACK_HOME", "/srv/winback_ml")
WINBACK_DATA = os.environ.get("WINBACK_DATA", "sample")

_RUN = (
    "cd {{ params.home }} && .venv/bin/winback pipeline run {{ params.pipeline }} "
    "-p data={{ params.data }} -p as_of={{ data_interval_end.strftime('%Y-%m-%d') }} "
    "--run-id {{ run_id | replace(':', '-') | replace('+', '') }} --quiet"
)

default_args = {
    "owner": "growth-data",
    "retries": 1,
    "retry_delay": timedelta(minutes=10),
}

with DAG(
    dag_id="winback_weekly",
    description="Weekly win-back run: cohort, models, plan, uplift, dispatch dry run, KPIs",
    schedule="0 6 * * 1",  # Mondays 06:00 UTC
    start_date=datetime(2025, 1, 6),
    catchup=False,
    default_args=default_args,
    tags=["winback"],
) as weekly:
    BashOperator(
        task_id="weekly_winback",
        bash_command=_RUN,
        params={
            "home": WINBACK_HOME,
            "data": WINBACK_DATA,
            "pipeline": "pipelines/weekly_winback.yaml",
        },
        execution_timeout=timedelta(minutes=30),
    )

with DAG(
    dag_id="winback_daily_dispatch",
    description="Daily: score, enrol new targets, send what is due",
    schedule="30 7 * * *",
    start_date=datetime(2025, 1, 6),
    catchup=False,
    default_args=default_args,
    tags=["winback"],
) as daily:
    BashOperator(
        task_id="daily_dispatch",
        bash_command=_RUN,
        params={
            "home": WINBACK_HOME,
            "data": WINBACK_DATA,
            "pipeline": "pipelines/daily_dispatch.yaml",
        },
        execution_timeout=timedelta(minutes=20),
    )
