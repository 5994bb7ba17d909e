"""The run context a notebook builds from its parameters (cell 3 of every notebook).

A notebook's parameters are plain literals (``data``, ``as_of``,
``output_dir``, ``run_id``, ``config``, ``mlflow_tracking_uri``, ...);
:func:`make_run_context` turns them into a :class:`RunContext`: the data
source resolved (``"sample"`` is the embedded store, built from the sample
world when empty), ``as_of`` checked against the data and made a
:class:`pandas.Timestamp`, the business config loaded, the output folder
created, and the contract tables loaded as of ``as_of`` on first use.

Invariants
----------
* Nothing dated after ``as_of`` is visible through ``ctx.data`` (the loader
  cuts it).
* ``as_of`` defaults to midnight after the data's last event, so a run with
  no ``as_of`` sees everything; an ``as_of`` later than that is refused
  (the run would pretend to know a future it has no data for).
* Everything a notebook writes goes under ``output_dir`` (``save_table``,
  ``save_figure``, ``save_json``); tables with PII columns (e-mail, phone,
  free text: the contract's ``pii`` columns) are refused, so they can never
  reach MLflow artifacts.
* Timestamps are tz-naive UTC.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from winback_ml.exceptions import ConfigError, DataContractError, PipelineError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from winback_ml.config import BusinessConfig
    from winback_ml.data.loader import ContractData

__all__ = [
    "SAMPLE",
    "PII_COLUMNS",
    "RunContext",
    "make_run_context",
    "project_root",
    "resolve_data_source",
    "data_time_range",
    "check_as_of",
    "check_no_pii",
]

#: The ``data`` value that means "the embedded store, with the sample world if empty".
SAMPLE = "sample"


def _pii_columns() -> frozenset[str]:
    from winback_ml.data.contract import TABLES

    return frozenset(c.name for t in TABLES.values() for c in t.columns if c.pii)


#: Column names that must never be written to run outputs or MLflow.
PII_COLUMNS: frozenset[str] = _pii_columns()


def project_root(start: str | Path | None = None) -> Path:
    """The checkout that holds ``pipelines/`` and ``notebooks/`` (walking up from ``start``).

    Notebooks run with their own folder as working directory (Jupyter,
    nbval, the runner), so defaults that say ``data/...`` are resolved
    against this root. Falls back to the working directory.
    """
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pipelines").is_dir() and (p / "notebooks").is_dir():
            return p
    return Path.cwd().resolve()


def _is_url(s: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", s))


def _sample_store_url() -> str:
    url = os.environ.get("WINBACK_STORE_URL")
    if url:
        return url
    root = project_root()
    (root / "data").mkdir(exist_ok=True)
    return f"sqlite:///{root / 'data' / 'winback.db'}"


def resolve_data_source(data: str | Path, *, build_sample: bool = True) -> str:
    """Turn a ``data`` parameter into a source the loader reads.

    Parameters
    ----------
    data : ``"sample"`` (the embedded store: ``$WINBACK_STORE_URL`` or
        ``<project>/data/winback.db``, built from the sample world when it
        holds no data), an SQLAlchemy URL, or a folder of
        ``<table>.csv``/``.parquet`` files (relative paths are taken from
        the project root when they do not exist from the working directory).
    build_sample : build the sample world into the store when it is empty.

    Returns
    -------
    str, a URL or an absolute folder path.

    Raises
    ------
    DataContractError
        The folder does not exist, is not a folder, or an SQLite file named
        by the URL does not exist.
    """
    s = str(data).strip()
    if s == "" or s == SAMPLE:
        url = _sample_store_url()
        if build_sample:
            from winback_ml.data.sample import ensure_sample_store

            store, _ = ensure_sample_store(url)
            store.dispose()
        return url
    if _is_url(s):
        if s.startswith("sqlite:///") and s != "sqlite:///:memory:":
            path = Path(s[len("sqlite:///") :])
            if not path.exists():
                raise DataContractError(
                    f"The data source {s!r} names the SQLite file {str(path)!r}, which does not "
                    "exist. Fix the path, or pass data=sample to use the embedded sample store."
                )
        return s
    p = Path(s).expanduser()
    if not p.is_absolute() and not p.exists():
        p = project_root() / p
    if not p.exists():
        raise DataContractError(
            f"The data folder {s!r} does not exist (looked in {str(p.parent)!r}). Pass an existing "
            "folder of <table>.csv/.parquet files, an SQLAlchemy URL, or data=sample."
        )
    if not p.is_dir():
        raise DataContractError(
            f"The data source {s!r} is a file, not a folder. Pass the folder that holds "
            "customers, subscriptions and events files, or an SQLAlchemy URL."
        )
    return str(p.resolve())


def data_time_range(source: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last ``events.occurred_at`` of a source (tz-naive UTC), read cheaply.

    Raises
    ------
    DataContractError
        The source has no events table or no events.
    """
    import pandas as pd

    if _is_url(source):
        import sqlalchemy as sa

        from winback_ml.data.store import describe_connection_error

        engine = sa.create_engine(source)
        try:
            try:
                names = sa.inspect(engine).get_table_names()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
                # the database cannot be reached: say so (masked), not "export events ..."
                raise describe_connection_error(source, e) from None
            if "events" not in names:
                raise DataContractError(
                    f"The data source {_redact(source)!r} has no 'events' table. Load the "
                    "contract tables first (winback store load, or data=sample)."
                )
            with engine.connect() as conn:
                lo, hi = conn.execute(
                    sa.text("SELECT MIN(occurred_at), MAX(occurred_at) FROM events")
                ).one()
        except sa.exc.SQLAlchemyError as e:
            raise _unreadable_events(_redact(source), e) from e
        finally:
            engine.dispose()
        values = pd.Series([lo, hi])
    else:
        folder = Path(source)
        pq, csv = folder / "events.parquet", folder / "events.csv"
        if pq.exists() or csv.exists():
            try:
                if pq.exists():
                    values = pd.read_parquet(pq, columns=["occurred_at"])["occurred_at"]
                else:
                    values = pd.read_csv(csv, usecols=["occurred_at"], dtype=str)["occurred_at"]
            except Exception as e:  # pandas/pyarrow raise many kinds; all mean the same here
                raise _unreadable_events(str(pq if pq.exists() else csv), e) from e
        else:
            raise DataContractError(
                f"The data folder {source!r} has no events.csv or events.parquet. The events "
                "table is required by the contract."
            )
    ts = pd.to_datetime(values, utc=True, errors="coerce", format="mixed").dropna()
    if ts.empty:
        raise DataContractError(f"The data source {_redact(source)!r} has no dated events.")
    ts = ts.dt.tz_convert(None)
    return ts.min(), ts.max()


def _unreadable_events(where: str, e: BaseException) -> DataContractError:
    return DataContractError(
        f"Table 'events', column 'occurred_at': cannot read the event times of {where!r} "
        f"({type(e).__name__}: {_redact(str(e))[:300]}). Fix: export events with an occurred_at column "
        "(ISO-8601 timestamps); `winback validate` lists every problem of the data."
    )


def _redact(url: str) -> str:
    from winback_ml.pipelines.runner import redact  # one rule for every record of a run

    return redact(url)


def check_as_of(as_of: Any, data: str | None) -> str:
    """Check ``as_of`` against the data; return it as an ISO string.

    Parameters
    ----------
    as_of : a date or timestamp (string or object); ``""``/``None`` means
        midnight after the data's last event.
    data : a resolved source (see :func:`resolve_data_source`) or None to
        check the format only.

    Raises
    ------
    ConfigError
        ``as_of`` is not a date, lies after midnight following the data's
        last event (the future of the data), or before its first event.
    """
    import pandas as pd

    ts = None
    if as_of not in (None, ""):
        try:
            ts = pd.Timestamp(str(as_of))
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"The parameter 'as_of' must be an ISO date such as 2025-06-30. Got {as_of!r} "
                "instead."
            ) from e
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
    if data is None:
        if ts is None:
            raise ConfigError(
                "The parameter 'as_of' is empty and there is no data to default it from."
            )
        return _iso(ts)
    first, last = data_time_range(data)
    limit = last.normalize() + pd.Timedelta(days=1)
    if ts is None:
        return _iso(limit)
    if ts > limit:
        raise ConfigError(
            f"The parameter 'as_of' ({_iso(ts)}) is in the future of the data: its last event is "
            f"at {last}. Pass as_of={_iso(limit)} or earlier (or leave it empty), or refresh "
            "the data."
        )
    if ts < first:
        raise ConfigError(
            f"The parameter 'as_of' ({_iso(ts)}) is before the data's first event ({first}); "
            f"nothing would be visible. Pass a date between {_iso(first.normalize())} and "
            f"{_iso(limit)}."
        )
    return _iso(ts)


def _iso(ts: pd.Timestamp) -> str:
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def check_no_pii(df: pd.DataFrame, what: str) -> None:
    """Refuse a frame with a PII column (contract's e-mail, phone, free-text columns).

    Raises
    ------
    DataContractError
        Naming the columns and the fix (drop them before saving).
    """
    bad = sorted(set(map(str, df.columns)) & PII_COLUMNS)
    if bad:
        raise DataContractError(
            f"{what} has PII columns {bad}; run outputs and MLflow artifacts must not hold "
            f"e-mail, phone or free text. Drop them first (df.drop(columns={bad}))."
        )


@dataclass
class RunContext:
    """Resolved parameters of one notebook run (see the module docstring).

    Attributes
    ----------
    data_source : resolved URL or folder.
    as_of : the run's "today" (tz-naive UTC).
    output_dir : folder that receives everything the notebook writes.
    run_id : id of the run (the pipeline's, or a timestamp).
    config : the business config.
    mlflow_tracking_uri : MLflow tracking URI ("" = MLflow's default / env).
    notebook : short name of the notebook, used to name MLflow runs.
    """

    data_source: str
    as_of: pd.Timestamp
    output_dir: Path
    run_id: str
    config: BusinessConfig
    mlflow_tracking_uri: str = ""
    notebook: str = "notebook"
    _data: ContractData | None = field(default=None, repr=False)
    written: list[Path] = field(default_factory=list, repr=False)

    @property
    def data(self) -> ContractData:
        """The contract tables as of ``as_of`` (loaded and validated on first use)."""
        if self._data is None:
            from winback_ml.data.loader import load_data

            self._data = load_data(self.data_source, as_of=self.as_of)
        return self._data

    def path(self, name: str) -> Path:
        """``output_dir / name`` with parent folders created.

        Raises
        ------
        PipelineError
            ``name`` is absolute or climbs out of ``output_dir`` (``..``):
            a notebook writes only under its run folder.
        """
        p = (self.output_dir / name).resolve()
        if not p.is_relative_to(self.output_dir.resolve()):
            raise PipelineError(
                f"The output name {name!r} points outside the run folder "
                f"{str(self.output_dir)!r}; notebooks write only under output_dir. Pass a "
                "relative name such as 'tables/x.csv'."
            )
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def save_table(self, df: pd.DataFrame, name: str, *, index: bool = False) -> Path:
        """Write ``df`` as ``output_dir/<name>`` (CSV; refused if it holds PII)."""
        check_no_pii(df, f"The table {name!r}")
        p = self.path(name if name.endswith(".csv") else f"{name}.csv")
        df.to_csv(p, index=index)
        self.written.append(p)
        return p

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``output_dir/figures/<name>.png`` (the run report shows it)."""
        p = self.path(f"figures/{name if name.endswith('.png') else name + '.png'}")
        fig.savefig(p, dpi=100, bbox_inches="tight")
        self.written.append(p)
        return p

    def save_json(self, obj: Any, name: str) -> Path:
        """Write ``obj`` as JSON to ``output_dir/<name>``."""
        p = self.path(name if name.endswith(".json") else f"{name}.json")
        p.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
        self.written.append(p)
        return p

    def configure_mlflow(self) -> str:
        """Point MLflow (and :mod:`winback_ml.tracking.mlflow`) at this run's tracking URI.

        ``mlflow_tracking_uri`` wins, then ``$MLFLOW_TRACKING_URI``, then
        ``sqlite:///<project>/mlflow.db``; artifacts go to
        ``$WINBACK_MLFLOW_ARTIFACTS`` or ``<project>/mlruns`` (set in the
        environment here, so the tracking helpers of other stages agree
        even though a notebook's working directory is ``notebooks/``).
        """
        uri = (
            self.mlflow_tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{project_root() / 'mlflow.db'}"
        )
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ.setdefault("WINBACK_MLFLOW_ARTIFACTS", str(project_root() / "mlruns"))
        from winback_ml.tracking.mlflow import configure

        return configure(uri)

    def log_to_mlflow(
        self,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        artifacts: list[Path] | None = None,
    ) -> str:
        """Log this notebook's run to MLflow; return the MLflow run id.

        The experiment is ``winback/<notebook>``; the run is tagged with the
        pipeline ``run_id`` and ``as_of``. ``artifacts`` default to every
        file written through this context (tables were checked for PII).
        """
        import math

        import mlflow

        self.configure_mlflow()
        name = f"winback/{self.notebook}"
        if mlflow.get_experiment_by_name(name) is None:
            art_root = os.environ["WINBACK_MLFLOW_ARTIFACTS"]
            location = art_root if "://" in art_root else Path(art_root).resolve().as_uri()
            mlflow.create_experiment(name, artifact_location=f"{location}/{self.notebook}")
        mlflow.set_experiment(name)
        with mlflow.start_run(run_name=self.run_id) as run:
            mlflow.set_tags({"winback.run_id": self.run_id, "winback.as_of": str(self.as_of)})
            base = {
                "as_of": str(self.as_of.date()),
                "data": _redact(self.data_source),
                "margin": self.config.margin,
                "attribution_window_days": self.config.attribution_window_days,
            }
            mlflow.log_params({**base, **(params or {})})
            clean = {
                k: float(v)
                for k, v in (metrics or {}).items()
                if v is not None and not (isinstance(v, float) and math.isnan(v))
            }
            if clean:
                mlflow.log_metrics(clean)
            for p in artifacts if artifacts is not None else self.written:
                p = Path(p)
                sub = (
                    p.parent.relative_to(self.output_dir)
                    if p.is_relative_to(self.output_dir)
                    else None
                )
                mlflow.log_artifact(
                    str(p), artifact_path=str(sub) if sub and str(sub) != "." else None
                )
            return run.info.run_id


def make_run_context(
    data: str = SAMPLE,
    as_of: str = "",
    output_dir: str = "",
    run_id: str = "",
    config: str | dict | None = "",
    mlflow_tracking_uri: str = "",
    *,
    notebook: str = "notebook",
    threads: int | None = 1,
) -> RunContext:
    """Build a :class:`RunContext` from a notebook's parameters.

    Parameters
    ----------
    data : see :func:`resolve_data_source` (``"sample"`` by default).
    as_of : ISO date; ``""`` = midnight after the data's last event.
    output_dir : where to write; ``""`` = ``<project>/data/runs/interactive/<run_id>``.
    run_id : ``""`` = a new UTC timestamp.
    config : path of a business config YAML (or a dict); ``""`` = defaults.
    mlflow_tracking_uri : ``""`` = ``$MLFLOW_TRACKING_URI`` or ``<project>/mlflow.db``.
    notebook : short notebook name for MLflow experiment and messages.
    threads : cap OpenMP threads of this process (``OMP_NUM_THREADS``) for
        libraries loaded afterwards, unless the variable is already set (the
        pipeline runner sets it per kernel); ``None`` leaves it alone.
        Measured on 2 shared cores: a Qini fit of many small gradient
        boosting models took 42 s with default threads and 2 s with one.

    Raises
    ------
    DataContractError, ConfigError
        Missing data, ``as_of`` in the future of the data, a bad config.
    """
    import pandas as pd

    from winback_ml.config import load_config
    from winback_ml.pipelines.runner import make_run_id

    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    source = resolve_data_source(data)
    as_of_ts = pd.Timestamp(check_as_of(as_of, source))
    rid = run_id or make_run_id()
    out = Path(output_dir) if output_dir else project_root() / "data" / "runs" / "interactive" / rid
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg_source: Any = None
    if isinstance(config, dict):
        cfg_source = config
    elif config:
        cp = Path(config)
        if not cp.is_absolute() and not cp.exists():
            cp = project_root() / cp
        cfg_source = cp
    try:
        cfg = load_config(cfg_source)
    except ConfigError:
        raise
    except Exception as e:  # pragma: no cover - defensive
        raise PipelineError(f"The config {config!r} cannot be loaded: {e}") from e
    return RunContext(
        data_source=source,
        as_of=as_of_ts,
        output_dir=out,
        run_id=rid,
        config=cfg,
        mlflow_tracking_uri=mlflow_tracking_uri,
        notebook=notebook,
    )
