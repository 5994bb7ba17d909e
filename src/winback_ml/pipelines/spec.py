"""Pipeline files and notebook parameters: read, resolve, check.

A pipeline file (``pipelines/<cadence>_<purpose>.yaml``) lists notebooks to
run in order::

    name: weekly_winback                # folder name under data/runs/
    description: The weekly win-back run.
    parameters:                         # run parameters, passed to every step
      data: sample                      # whose notebook declares them
      as_of: null
    steps:
      - name: cohort                    # unique, [A-Za-z0-9_-]
        notebook: ../notebooks/01_cohort_segments.ipynb   # relative to this file
        parameters: {min_segment_size: 5}                 # only for this step
        depends_on: []                  # names of earlier steps

Every notebook has one cell tagged ``parameters`` made of literal
assignments, one per line, each with a type annotation and a help comment::

    data: str = "sample"  # folder or URL of the contract tables

:func:`notebook_parameters` reads them without starting a kernel. A run
parameter must be declared by at least one step's notebook, a step
parameter by its own notebook; a value must fit the declared type. Nothing
here runs a notebook: :mod:`winback_ml.pipelines.runner` does, after these
checks pass.
"""

from __future__ import annotations

import ast
import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from winback_ml.exceptions import PipelineError

__all__ = [
    "NotebookParameter",
    "Step",
    "Pipeline",
    "RESERVED_PARAMETERS",
    "notebook_parameters",
    "load_pipeline",
    "parse_cli_parameters",
    "coerce_parameter",
]

#: Parameters the runner sets itself for every step whose notebook declares them.
RESERVED_PARAMETERS = ("output_dir", "run_id")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's ``parameters`` cell.

    Attributes
    ----------
    name : the variable name.
    type_name : the annotation as written (``"str"``, ``"int"``, ``"str | None"``)
        or ``None`` when the line has none.
    default : the literal default value.
    help : the trailing comment of the line ("" when none).
    """

    name: str
    type_name: str | None
    default: Any
    help: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` fits the declared type (``None`` fits ``X | None``)."""
        if self.type_name is None:
            return True
        parts = [p.strip() for p in self.type_name.replace("Optional[", "").rstrip("]").split("|")]
        if value is None:
            return "None" in parts or self.type_name.startswith("Optional[")
        for p in parts:
            base = p.split("[", 1)[0]
            if base in _TYPES:
                if isinstance(value, bool) and base in ("int", "float"):
                    continue
                if isinstance(value, _TYPES[base]):
                    return True
            elif base not in ("None",):
                return True  # a type this module does not know: do not judge
        return False


@dataclass(frozen=True)
class Step:
    """One step of a pipeline: a notebook, its own parameters, what it needs first."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    description: str = ""


@dataclass
class Pipeline:
    """A pipeline read from YAML, steps in run (topological) order."""

    name: str
    steps: list[Step]
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None

    def step(self, name: str) -> Step:
        """The step called ``name``."""
        for s in self.steps:
            if s.name == name:
                return s
        raise PipelineError(
            f"Pipeline {self.name!r} has no step {name!r}. "
            f"Its steps are {[s.name for s in self.steps]}."
        )


def _parameters_cell(nb: dict, path: Path) -> str:
    cells = [
        c
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if not cells:
        raise PipelineError(
            f"The notebook {str(path)!r} has no cell tagged 'parameters'. Expected one code "
            "cell of literal assignments tagged 'parameters' (JupyterLab: property inspector "
            "-> cell tags). Add it so the runner can pass run parameters."
        )
    if len(cells) > 1:
        raise PipelineError(
            f"The notebook {str(path)!r} has {len(cells)} cells tagged 'parameters'. "
            "Expected exactly one; merge them."
        )
    src = cells[0]["source"]
    return "".join(src) if isinstance(src, list) else src


def notebook_parameters(path: str | Path) -> dict[str, NotebookParameter]:
    """Read the ``parameters`` cell of a notebook without running it.

    Parameters
    ----------
    path : the ``.ipynb`` file.

    Returns
    -------
    dict mapping each parameter name to its :class:`NotebookParameter`, in
    the order of the cell.

    Raises
    ------
    PipelineError
        The file is missing or not a notebook, has no (or several)
        ``parameters`` cells, or the cell holds something other than literal
        assignments.
    """
    p = Path(path)
    if not p.is_file():
        raise PipelineError(f"The notebook {str(p)!r} does not exist. Fix the path or create it.")
    try:
        nb = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"The file {str(p)!r} is not a notebook (invalid JSON: {e}).") from e
    src = _parameters_cell(nb, p)
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        raise PipelineError(
            f"The parameters cell of {str(p)!r} is not valid Python (line {e.lineno}: {e.msg})."
        ) from e
    lines = src.splitlines()
    out: dict[str, NotebookParameter] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, ann, value = node.target.id, ast.unparse(node.annotation), node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name, ann, value = node.targets[0].id, None, node.value
        else:
            raise PipelineError(
                f"The parameters cell of {str(p)!r} line {node.lineno} is not a simple "
                f"assignment: {lines[node.lineno - 1].strip()!r}. Keep only `name: type = "
                "literal  # help` lines there; derive values in the next cell."
            )
        try:
            default = ast.literal_eval(value) if value is not None else None
        except ValueError as e:
            raise PipelineError(
                f"The parameter {name!r} of {str(p)!r} (line {node.lineno}) has a default that "
                "is not a literal. Use a literal (string, number, bool, None, list, dict) and "
                "derive values in the next cell."
            ) from e
        line = lines[node.lineno - 1]
        help_ = line.split("#", 1)[1].strip() if "#" in line else ""
        out[name] = NotebookParameter(name, ann, default, help_)
    return out


def _jsonable(v: Any) -> Any:
    """Dates from YAML become ISO strings; containers are walked."""
    if isinstance(v, _dt.datetime):
        return v.isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _toposort(steps: list[Step], where: str) -> list[Step]:
    names = [s.name for s in steps]
    by_name = {s.name: s for s in steps}
    for s in steps:
        for d in s.depends_on:
            if d not in by_name:
                raise PipelineError(
                    f"{where}: step {s.name!r} depends on {d!r}, which is not a step. "
                    f"Known steps: {names}."
                )
    order: list[Step] = []
    state: dict[str, int] = {}

    def visit(n: str, chain: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise PipelineError(
                f"{where}: the steps depend on each other in a circle: "
                f"{' -> '.join([*chain, n])}. Remove one of these depends_on entries."
            )
        state[n] = 1
        for d in by_name[n].depends_on:
            visit(d, [*chain, n])
        state[n] = 2
        order.append(by_name[n])

    for n in names:
        visit(n, [])
    return order


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and check the shape of a pipeline YAML file.

    Notebook paths are resolved against the folder of the YAML file.
    Notebook existence and parameters are checked later, by
    :func:`winback_ml.pipelines.runner.plan_run`, so that every problem of a
    run is reported together.

    Raises
    ------
    PipelineError
        The file is missing, not YAML, or breaks the schema of the module
        docstring (missing ``name``/``steps``, duplicate step names, an
        unknown or circular ``depends_on``).
    """
    p = Path(path)
    if not p.is_file():
        raise PipelineError(
            f"The pipeline file {str(p)!r} does not exist. Pass a YAML file such as "
            "pipelines/weekly_winback.yaml."
        )
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PipelineError(f"The pipeline file {str(p)!r} is not valid YAML: {e}") from e
    where = f"Pipeline file {str(p)!r}"
    if not isinstance(raw, dict):
        raise PipelineError(f"{where} must hold a mapping with 'name' and 'steps'.")
    unknown = set(raw) - {"name", "description", "parameters", "steps"}
    if unknown:
        raise PipelineError(
            f"{where} has unknown keys {sorted(unknown)}. Expected only name, description, "
            "parameters, steps."
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PipelineError(
            f"{where} must have a 'name' of letters, digits, '_' or '-'. Got {name!r} instead."
        )
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise PipelineError(f"{where}: 'parameters' must be a mapping. Got {params!r} instead.")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise PipelineError(f"{where} must have a non-empty list of 'steps'.")
    steps: list[Step] = []
    seen: set[str] = set()
    for i, rs in enumerate(raw_steps):
        if not isinstance(rs, dict):
            raise PipelineError(f"{where}: steps[{i}] must be a mapping. Got {rs!r} instead.")
        bad = set(rs) - {"name", "notebook", "parameters", "depends_on", "description"}
        if bad:
            raise PipelineError(
                f"{where}: steps[{i}] has unknown keys {sorted(bad)}. Expected name, notebook, "
                "parameters, depends_on, description."
            )
        sname = rs.get("name")
        if not isinstance(sname, str) or not _NAME_RE.match(sname):
            raise PipelineError(
                f"{where}: steps[{i}] needs a 'name' of letters, digits, '_' or '-'. "
                f"Got {sname!r} instead."
            )
        if sname in seen:
            raise PipelineError(
                f"{where}: two steps are called {sname!r}. Step names must be unique."
            )
        seen.add(sname)
        nb = rs.get("notebook")
        if not isinstance(nb, str) or not nb:
            raise PipelineError(f"{where}: step {sname!r} needs a 'notebook' path.")
        sp = rs.get("parameters") or {}
        if not isinstance(sp, dict):
            raise PipelineError(f"{where}: step {sname!r} 'parameters' must be a mapping.")
        deps = rs.get("depends_on") or []
        if isinstance(deps, str):
            deps = [deps]
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise PipelineError(
                f"{where}: step {sname!r} 'depends_on' must be a list of step names."
            )
        steps.append(
            Step(
                name=sname,
                notebook=(p.parent / nb).resolve(),
                parameters=_jsonable(sp),
                depends_on=tuple(deps),
                description=str(rs.get("description") or ""),
            )
        )
    return Pipeline(
        name=name,
        steps=_toposort(steps, where),
        parameters=_jsonable(params),
        description=str(raw.get("description") or ""),
        path=p.resolve(),
    )


def parse_cli_parameters(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """Split ``KEY=VALUE`` strings (``-p`` options) into a dict of raw strings.

    ``STEP.KEY=VALUE`` addresses one step. Values stay strings here;
    :func:`coerce_parameter` turns them into the type each notebook declares.

    Raises
    ------
    PipelineError
        An item has no ``=`` or an empty key.
    """
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PipelineError(
                f"The parameter {item!r} is not of the form KEY=VALUE. "
                "Write it as -p as_of=2025-06-30 (or -p step.key=value for one step)."
            )
        out[key] = value
    return out


def coerce_parameter(value: Any, param: NotebookParameter | None) -> Any:
    """Turn a raw CLI string into the type a notebook declares.

    Strings declared ``str`` stay as given (so ``2025-06-30`` is not read as
    a date); other values are read as YAML scalars (``3``, ``0.5``,
    ``true``, ``null``, ``[a, b]``). Non-strings pass through.
    """
    if not isinstance(value, str):
        return value
    if param is not None and param.type_name is not None:
        parts = [x.strip() for x in param.type_name.split("|")]
        if parts[0] == "str" and not (value == "null" and "None" in parts):
            return value
    try:
        out = _jsonable(yaml.safe_load(value)) if value != "" else ""
    except yaml.YAMLError:
        return value
    if isinstance(out, str) and param is not None and param.type_name is not None:
        if "float" in [x.strip() for x in param.type_name.split("|")]:
            try:  # YAML 1.1 reads 1e-3 and 2.5e3 as strings
                return float(value)
            except ValueError:
                pass
    return out
