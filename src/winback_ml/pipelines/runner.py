"""Run a pipeline of notebooks with Papermill, one folder per run.

:func:`plan_run` checks everything a run needs before any step runs:
each notebook exists and has a ``parameters`` cell; every parameter given
(in the pipeline file or with ``-p``) is declared by a notebook and fits
its type; ``data`` exists; ``as_of`` is a date no later than the data
reaches; the run folder is new. All problems are reported together, in
one :class:`~winback_ml.exceptions.PipelineError`.

:func:`execute_plan` then runs the steps in dependency order into
``<runs_dir>/<pipeline>/<run_id>/``::

    manifest.json        git revision, parameters, status/duration per step
    report.html          the manifest, links, figures and key tables
    notebooks/<step>.ipynb   the executed notebook (kept when it fails)
    ...                  whatever the notebooks write under ``output_dir``

A step whose notebook raises is marked ``failed`` with the failing cell's
index, source and error; the steps that depend on it (directly or not) are
``skipped``; independent steps still run. A run folder is never reused:
:func:`plan_run` refuses an existing one.

Invariants: every step gets the same resolved ``data`` and ``as_of``
(an ISO date string), ``output_dir`` = the run folder (absolute) and the
``run_id``; timestamps in the manifest are UTC ISO-8601 with a ``Z``. No
URL password is kept in a run's records: the manifest, the failure records
and the executed notebooks (the injected parameters, every cell's source and
outputs, tracebacks included, and the notebook metadata) show
``scheme://user:***@`` (:func:`redact`, :func:`mask_notebook`). Papermill
saves the notebook while a step runs: every save goes through a masking
writer (:class:`_MaskingWriter`), so not even a step killed half-way leaves the
password on disk; the saved copy is masked once more when the step ends.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winback_ml.exceptions import PipelineError, PipelineStepError, WinbackError
from winback_ml.pipelines.spec import (
    RESERVED_PARAMETERS,
    NotebookParameter,
    Pipeline,
    coerce_parameter,
    load_pipeline,
    notebook_parameters,
)

__all__ = [
    "RunPlan",
    "default_runs_dir",
    "make_run_id",
    "plan_run",
    "execute_plan",
    "run_pipeline",
    "THREAD_ENV_VARS",
    "git_revision",
    "redact",
    "mask_notebook",
]

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def default_runs_dir() -> Path:
    """``$WINBACK_RUNS_DIR`` or ``./data/runs``."""
    return Path(os.environ.get("WINBACK_RUNS_DIR") or Path.cwd() / "data" / "runs").resolve()


def make_run_id(now: _dt.datetime | None = None) -> str:
    """A sortable UTC timestamp id, e.g. ``20250630T061500Z``."""
    now = now or _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def _utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def git_revision(cwd: str | Path | None = None) -> dict[str, Any] | None:
    """``{"revision": sha, "dirty": bool}`` of the git checkout at ``cwd``, or None."""
    cwd = Path(cwd or Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        st = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"revision": rev.stdout.strip(), "dirty": bool(st.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def redact(value: Any) -> Any:
    """Mask passwords in URLs (``postgresql://u:***@host``) anywhere in ``value``.

    Strings, and the strings inside dicts and lists (recursively); one rule for
    every record (:func:`winback_ml.data.store.mask_url_password`).
    """
    from winback_ml.data.store import mask_url_password

    if isinstance(value, str):
        return mask_url_password(value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def mask_notebook(path: str | Path) -> bool:
    """Mask URL passwords everywhere in a saved notebook, in place; True when it changed.

    Every string of the notebook's JSON is masked (:func:`redact`): the
    injected ``parameters`` cell, each cell's source and outputs (stream text,
    ``text/plain``/``text/html`` results, error ``evalue`` and traceback) and
    the metadata (papermill keeps the parameters there). The file is replaced
    atomically. A file that is not JSON is left alone (False).
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
        nb = json.loads(raw)
    except (OSError, ValueError):
        return False
    masked = redact(nb)
    if masked == nb:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(masked, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return True


#: Prefix of the output paths handed to papermill: its saves go through :class:`_MaskingWriter`.
MASKED_SCHEME = "winback-masked://"


class _MaskingWriter:
    """A papermill I/O handler that masks URL passwords before a notebook reaches the disk.

    Papermill saves the executed notebook when it starts, around every cell and
    every 30 s while a cell runs; each save goes through :meth:`write`, so not
    even a step killed half-way (``kill -9``, a machine that dies) leaves the
    injected password on disk. Paths are ``winback-masked://<absolute path>``.
    """

    @staticmethod
    def _path(path: str) -> Path:
        return Path(path[len(MASKED_SCHEME) :])

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [MASKED_SCHEME + str(p) for p in self._path(path).iterdir()]

    def write(self, buf: str, path: str) -> None:
        target = self._path(path)
        try:
            text = json.dumps(redact(json.loads(buf)), indent=1, ensure_ascii=False) + "\n"
        except ValueError:  # not JSON: mask it as text
            text = redact(buf)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def _masked_output(path: Path) -> str:
    """``path`` as a papermill output that is masked on every save (registers the handler once)."""
    from papermill.iorw import papermill_io

    if not any(scheme == MASKED_SCHEME for scheme, _ in papermill_io._handlers):
        papermill_io.register(MASKED_SCHEME, _MaskingWriter())
    return MASKED_SCHEME + str(Path(path).resolve())


@dataclass
class RunPlan:
    """What :func:`execute_plan` will do: checked, nothing run yet.

    Attributes
    ----------
    pipeline : the pipeline.
    run_id, run_dir : the id and the (not yet existing) run folder.
    parameters : resolved run-level parameters (``data``, ``as_of``, ...).
    step_parameters : the exact parameters each step's notebook will get.
    declared : each step's declared notebook parameters.
    """

    pipeline: Pipeline
    run_id: str
    run_dir: Path
    parameters: dict[str, Any]
    step_parameters: dict[str, dict[str, Any]]
    declared: dict[str, dict[str, NotebookParameter]] = field(default_factory=dict)


#: Parameters that hold for the whole run: one data source, one ``as_of`` (checked once).
_RUN_LEVEL = ("data", "as_of")


def _step_level_problem(where: str, key: str) -> str:
    """Why ``key`` cannot be set for one step only."""
    if key in RESERVED_PARAMETERS:
        return (
            f"{where}: {key!r} is set by the runner (the run folder and id); remove it, and "
            "choose the folder with --runs-dir and the id with --run-id instead."
        )
    return (
        f"{where}: {key!r} holds for the whole run (every step reads the same data as of the "
        f"same date, checked once); set it as a run parameter (-p {key}=...) instead."
    )


def _check_data_and_as_of(params: dict[str, Any], problems: list[str]) -> None:
    """Resolve ``data`` and ``as_of`` in place; append what is wrong to ``problems``.

    The sample store is only built when nothing else is wrong (a refused
    run should not spend a minute building data).
    """
    from winback_ml.pipelines.context import SAMPLE, check_as_of, resolve_data_source

    cfg = params.get("config")
    if isinstance(cfg, str) and cfg.strip():
        from winback_ml.config import load_config

        path = Path(cfg).expanduser().resolve()  # relative to where the run was started
        try:
            load_config(path)
            params["config"] = str(path)
        except WinbackError as e:
            problems.append(str(e))
    if "data" in params:
        is_sample = str(params["data"]).strip() in ("", SAMPLE)
        if is_sample and problems:
            return
        try:
            params["data"] = resolve_data_source(params["data"])
        except WinbackError as e:
            problems.append(str(e))
            return
    if "as_of" in params:
        try:
            params["as_of"] = check_as_of(params["as_of"], params.get("data"))
        except WinbackError as e:
            problems.append(str(e))


def plan_run(
    pipeline: Pipeline | str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    runs_dir: str | Path | None = None,
    check_data: bool = True,
) -> RunPlan:
    """Check a pipeline and its parameters; nothing runs.

    Parameters
    ----------
    pipeline : a :class:`Pipeline` or the path of its YAML file.
    overrides : ``{"key": value}`` run parameters (``-p key=value``) and
        ``{"step.key": value}`` for one step. Strings are coerced to the
        type each notebook declares.
    run_id : id of the run folder; default :func:`make_run_id`. Also taken
        from ``overrides["run_id"]``.
    runs_dir : root of run folders; default :func:`default_runs_dir`.
    check_data : resolve ``data`` and check ``as_of`` against it (on by default).

    Raises
    ------
    PipelineError
        Listing every problem: unknown parameter, missing notebook or
        parameters cell, wrong type, missing data, ``as_of`` in the future
        of the data, existing run folder.
    """
    pl = pipeline if isinstance(pipeline, Pipeline) else load_pipeline(pipeline)
    problems: list[str] = []
    declared: dict[str, dict[str, NotebookParameter]] = {}
    for s in pl.steps:
        try:
            declared[s.name] = notebook_parameters(s.notebook)
        except PipelineError as e:
            problems.append(f"step {s.name!r}: {e}")
    overrides = dict(overrides or {})
    if "run_id" in overrides:
        rid = overrides.pop("run_id")
        run_id = run_id or (str(rid) if rid not in (None, "") else None)
    run_id = run_id or make_run_id()
    if not _RUN_ID_RE.match(run_id):
        problems.append(
            f"The run id {run_id!r} is not a valid folder name. Use letters, digits, '_', '-' "
            "or '.', starting with a letter or digit."
        )

    def known_anywhere(key: str) -> NotebookParameter | None:
        for d in declared.values():
            if key in d:
                return d[key]
        return None

    run_params: dict[str, Any] = {}
    step_over: dict[str, dict[str, Any]] = {s.name: dict(s.parameters) for s in pl.steps}
    all_declared = sorted({k for d in declared.values() for k in d} - set(RESERVED_PARAMETERS))
    for source, items in (("pipeline file", pl.parameters), ("-p", overrides)):
        for key, value in items.items():
            if "." in key and source == "-p":
                sname, _, pkey = key.partition(".")
                if sname not in step_over:
                    problems.append(
                        f"-p {key}: there is no step {sname!r}. Steps: {[s.name for s in pl.steps]}."
                    )
                    continue
                decl = declared.get(sname, {})
                if pkey in RESERVED_PARAMETERS or pkey in _RUN_LEVEL:
                    problems.append(_step_level_problem(f"-p {key}", pkey))
                    continue
                if sname in declared and pkey not in decl:
                    problems.append(
                        f"-p {key}: the notebook of step {sname!r} has no parameter {pkey!r}. "
                        f"It declares {sorted(decl)}."
                    )
                    continue
                step_over[sname][pkey] = coerce_parameter(value, decl.get(pkey))
                continue
            if key in RESERVED_PARAMETERS:
                problems.append(
                    f"{source}: {key!r} is set by the runner (the run folder and id); "
                    "choose the folder with --runs-dir and the id with --run-id instead."
                )
                continue
            param = known_anywhere(key)
            if param is None and declared and len(declared) == len(pl.steps):
                problems.append(
                    f"{source}: unknown parameter {key!r}: no notebook of pipeline {pl.name!r} "
                    f"declares it. Known parameters: {all_declared}."
                )
                continue
            run_params[key] = coerce_parameter(value, param)

    for s in pl.steps:
        decl = declared.get(s.name)
        if decl is None:
            continue
        for key in s.parameters:
            if key not in decl:
                problems.append(
                    f"step {s.name!r}: the notebook {s.notebook.name} has no parameter {key!r} "
                    f"(set in the pipeline file). It declares {sorted(decl)}."
                )
            elif key in RESERVED_PARAMETERS or key in _RUN_LEVEL:
                problems.append(_step_level_problem(f"step {s.name!r}", key))

    # one data source and one as_of for the whole run
    for key in ("data", "as_of"):
        if key not in run_params:
            for s in pl.steps:
                if key in declared.get(s.name, {}):
                    run_params[key] = declared[s.name][key].default
                    break
    runs_root = Path(runs_dir).resolve() if runs_dir else default_runs_dir()
    run_dir = runs_root / pl.name / run_id
    if run_dir.exists():
        problems.append(
            f"The run folder {str(run_dir)!r} already exists; runs are never overwritten. "
            "Pass another --run-id (or none: the default is a new timestamp)."
        )
    if check_data:  # last: the sample store is only built when nothing else is wrong
        _check_data_and_as_of(run_params, problems)

    step_params: dict[str, dict[str, Any]] = {}
    for s in pl.steps:
        decl = declared.get(s.name, {})
        sp: dict[str, Any] = {}
        for key, value in run_params.items():
            if key in decl:
                sp[key] = value
        sp.update(step_over[s.name])
        if "output_dir" in decl:
            sp["output_dir"] = str(run_dir)
        if "run_id" in decl:
            sp["run_id"] = run_id
        for key, value in sp.items():
            p = decl.get(key)
            if p is not None and not p.accepts(value):
                problems.append(
                    f"step {s.name!r}: the parameter {key!r} must be {p.type_name}. "
                    f"Got {value!r} ({type(value).__name__}) instead."
                )
        step_params[s.name] = sp

    if problems:
        bullet = "\n  - ".join(problems)
        raise PipelineError(
            f"The pipeline {pl.name!r} was not started ({len(problems)} problem"
            f"{'s' if len(problems) > 1 else ''}; nothing ran):\n  - {bullet}"
        )
    return RunPlan(pl, run_id, run_dir, run_params, step_params, declared)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _failure_details(output_nb: Path, exc: BaseException) -> dict[str, Any]:
    """Where a step failed: cell index (output and source notebook), source, error."""
    info: dict[str, Any] = {
        "ename": getattr(exc, "ename", type(exc).__name__),
        "evalue": str(getattr(exc, "evalue", exc))[:2000],
        "cell_index": None,
        "source_cell_index": None,
        "execution_count": getattr(exc, "exec_count", None),
        "cell_source": None,
        "traceback": None,
    }
    tb = getattr(exc, "traceback", None)
    if tb:
        text = "\n".join(tb) if isinstance(tb, list) else str(tb)
        info["traceback"] = re.sub(r"\x1b\[[0-9;]*m", "", text)[-4000:]
    else:
        info["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
    if output_nb.exists():
        try:
            nb = json.loads(output_nb.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return info
        src_idx = -1
        for i, c in enumerate(nb.get("cells", [])):
            tags = c.get("metadata", {}).get("tags", [])
            if "injected-parameters" not in tags and "papermill-error-cell-tag" not in tags:
                src_idx += 1
            if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
                src = c.get("source", "")
                src = "".join(src) if isinstance(src, list) else src
                info.update(cell_index=i, source_cell_index=src_idx, cell_source=src[:1500])
                break
    if info["cell_source"] is None and getattr(exc, "source", None):
        info["cell_source"] = str(exc.source)[:1500]
    return info


#: Environment variables that cap the threads of OpenMP/BLAS in each kernel.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _KernelEnv:
    """Set environment variables for the kernels started inside the block, then restore them."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> _KernelEnv:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v
        return self

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_plan(
    plan: RunPlan,
    *,
    progress: bool = True,
    kernel_name: str = "python3",
    report: bool = True,
    start_timeout: int = 120,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Run a checked plan; return the final manifest (also in ``manifest.json``).

    Parameters
    ----------
    plan : from :func:`plan_run`.
    progress : print each step's start, status and duration (rich).
    kernel_name : Jupyter kernel (``python3`` exists wherever ipykernel does).
    report : render ``report.html`` at the end.
    start_timeout : seconds to wait for a kernel to start.
    threads : OpenMP/BLAS threads per kernel (``OMP_NUM_THREADS`` and
        friends, unless already set in the environment); ``None`` leaves
        them alone. One thread is the default: the steps fit many small
        models, and OpenMP's busy-waiting threads slow such fits down by
        an order of magnitude on a busy machine (measured: the Qini step
        42 s with default threads, 2 s with one, on 2 shared cores).

    Returns
    -------
    dict, the manifest: ``status`` is ``"ok"`` when every step is ok,
    else ``"failed"``. The run never raises for a failing step.
    """
    import papermill as pm

    console = None
    if progress:
        from rich.console import Console

        console = Console(stderr=True, highlight=False)
    try:
        plan.run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError as e:
        raise PipelineError(
            f"The run folder {str(plan.run_dir)!r} already exists; runs are never overwritten. "
            "Pass another run id."
        ) from e
    nb_dir = plan.run_dir / "notebooks"
    nb_dir.mkdir()
    pl = plan.pipeline
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {
        "pipeline": pl.name,
        "pipeline_file": str(pl.path) if pl.path else None,
        "description": pl.description,
        "run_id": plan.run_id,
        "run_dir": str(plan.run_dir),
        "status": "running",
        "started_at": _utcnow(),
        "finished_at": None,
        "duration_s": None,
        "git": git_revision(pl.path.parent if pl.path else None),
        "winback_ml_version": _package_version(),
        "python": platform.python_version(),
        "kernel": kernel_name,
        "threads_per_kernel": threads,
        "parameters": redact(plan.parameters),
        "steps": [
            {
                "name": s.name,
                "notebook": str(s.notebook),
                "output_notebook": f"notebooks/{s.name}.ipynb",
                "depends_on": list(s.depends_on),
                "parameters": redact(plan.step_parameters[s.name]),
                "status": "pending",
                "started_at": None,
                "finished_at": None,
                "duration_s": None,
                "error": None,
                "skipped_because": None,
            }
            for s in pl.steps
        ],
        "report": "report.html" if report else None,
    }
    mpath = plan.run_dir / "manifest.json"
    _write_json(mpath, manifest)
    if console:
        console.print(
            f"[bold]{pl.name}[/] run [cyan]{plan.run_id}[/] -> {plan.run_dir}  "
            f"({len(pl.steps)} steps)"
        )
    status: dict[str, str] = {}
    n = len(pl.steps)
    for i, (s, entry) in enumerate(zip(pl.steps, manifest["steps"], strict=True), start=1):
        bad = [d for d in s.depends_on if status.get(d) != "ok"]
        if bad:
            status[s.name] = "skipped"
            entry["status"] = "skipped"
            entry["skipped_because"] = (
                f"depends on {', '.join(repr(b) for b in bad)}, which did not succeed"
            )
            _write_json(mpath, manifest)
            if console:
                console.print(
                    f"[yellow]- [{i}/{n}] {s.name}: skipped[/] ({entry['skipped_because']})"
                )
            continue
        entry["status"] = "running"
        entry["started_at"] = _utcnow()
        _write_json(mpath, manifest)
        out_nb = nb_dir / f"{s.name}.ipynb"
        st = time.perf_counter()
        if console:
            console.print(f"> [{i}/{n}] {s.name} ({s.notebook.name}) ...")
        env = {}
        if threads is not None:
            env = {k: str(threads) for k in THREAD_ENV_VARS if k not in os.environ}
        try:
            with _KernelEnv(env):
                pm.execute_notebook(
                    str(s.notebook),
                    _masked_output(out_nb),  # every save masked: no password on disk mid-step
                    parameters=plan.step_parameters[s.name],
                    kernel_name=kernel_name,
                    progress_bar=False,
                    cwd=str(s.notebook.parent),
                    start_timeout=start_timeout,
                )
            entry["status"] = "ok"
        except Exception as e:  # a cell raised, the kernel died or cannot start: record, go on
            entry["status"] = "failed"
            entry["error"] = redact(_failure_details(out_nb, e))  # no URL passwords in records
        finally:
            mask_notebook(out_nb)  # the executed copy too: parameters, outputs, tracebacks
        entry["duration_s"] = round(time.perf_counter() - st, 3)
        entry["finished_at"] = _utcnow()
        status[s.name] = entry["status"]
        _write_json(mpath, manifest)
        if console:
            if entry["status"] == "ok":
                console.print(f"[green]ok[/] [{i}/{n}] {s.name} in {entry['duration_s']:.1f} s")
            else:
                err = entry["error"] or {}
                console.print(
                    f"[red]FAILED[/] [{i}/{n}] {s.name} at cell {err.get('source_cell_index')} "
                    f"of {s.notebook.name}: {err.get('ename')}: {err.get('evalue')}"
                )
    manifest["status"] = "ok" if all(v == "ok" for v in status.values()) else "failed"
    manifest["finished_at"] = _utcnow()
    manifest["duration_s"] = round(time.perf_counter() - t0, 3)
    _write_json(mpath, manifest)
    if report:
        from winback_ml.pipelines.report import render_report

        try:
            render_report(plan.run_dir)
        except Exception as e:  # the run's record must survive a broken report
            manifest["report_error"] = redact(f"{type(e).__name__}: {e}")
            _write_json(mpath, manifest)
    if console:
        colour = "green" if manifest["status"] == "ok" else "red"
        console.print(
            f"[{colour}]{manifest['status']}[/] in {manifest['duration_s']:.1f} s; "
            f"manifest: {mpath}" + (f"; report: {plan.run_dir / 'report.html'}" if report else "")
        )
    return manifest


def run_pipeline(
    pipeline: Pipeline | str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    runs_dir: str | Path | None = None,
    progress: bool = True,
    kernel_name: str = "python3",
    report: bool = True,
    raise_on_failure: bool = False,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Check, then run a pipeline; return its manifest.

    ``plan_run`` and ``execute_plan`` in one call. With
    ``raise_on_failure=True`` a failed step raises
    :class:`~winback_ml.exceptions.PipelineStepError` (after the manifest
    and report are written) naming the step and the cell.

    Examples
    --------
    >>> from winback_ml.pipelines import run_pipeline
    >>> m = run_pipeline("pipelines/weekly_winback.yaml", {"as_of": "2025-06-30"})  # doctest: +SKIP
    >>> m["status"], [s["status"] for s in m["steps"]]  # doctest: +SKIP
    ('ok', ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'])
    """
    plan = plan_run(pipeline, overrides, run_id=run_id, runs_dir=runs_dir)
    manifest = execute_plan(
        plan, progress=progress, kernel_name=kernel_name, report=report, threads=threads
    )
    if raise_on_failure and manifest["status"] != "ok":
        failed = next(s for s in manifest["steps"] if s["status"] == "failed")
        err = failed["error"] or {}
        raise PipelineStepError(
            f"Step {failed['name']!r} of pipeline {plan.pipeline.name!r} failed at cell "
            f"{err.get('source_cell_index')} of {Path(failed['notebook']).name}: "
            f"{err.get('ename')}: {err.get('evalue')}. The partial notebook is "
            f"{plan.run_dir / failed['output_notebook']}.",
            step=failed["name"],
            cell=err.get("source_cell_index"),
        )
    return manifest


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("winback_ml")
    except Exception:  # pragma: no cover - not installed
        return "unknown"
