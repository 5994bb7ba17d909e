"""MLflow tracking and registry for the survival models.

* :func:`configure` picks the tracking URI: the argument, else the
  ``MLFLOW_TRACKING_URI`` environment variable, else
  ``sqlite:///<cwd>/mlflow.db``. Artifacts of experiments this module
  creates go to ``WINBACK_MLFLOW_ARTIFACTS`` or ``<cwd>/mlruns`` (an explicit
  location; with an ``http(s)://`` tracking server the server decides unless
  ``WINBACK_MLFLOW_ARTIFACTS`` is set). ``MLFLOW_ALLOW_FILE_STORE`` is set
  only when a ``file:`` store is asked for.
* :func:`log_fit` logs one fit: parameters (``get_params``), metrics, the
  feature list, the data window and ``as_of``, fallbacks and warnings of the
  fit, comparison and calibration tables, plots, and the model as a pyfunc
  ("models from code", :mod:`winback_ml.tracking.pyfunc_model`) with an input
  signature and a PII-free input example.
* :func:`register` registers a logged model (``winback-return``,
  ``winback-churn``) and moves the ``champion`` alias only when the new
  version beats the current champion on the holdout metric; the comparison is
  written as version tags.
* :func:`load_champion` loads ``models:/<name>@champion`` as a pyfunc.

PII (e-mail, phone, free text) never goes into MLflow: :func:`log_fit`
refuses an input example or feature list that holds a PII column of the
contract, and drops identifier columns from the example.

``mlflow`` is imported inside the functions (it takes about two seconds).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.data.contract import TABLES
from winback_ml.exceptions import ModelError

__all__ = [
    "DEFAULT_EXPERIMENT",
    "RETURN_MODEL_NAME",
    "CHURN_MODEL_NAME",
    "PII_COLUMNS",
    "configure",
    "artifact_root",
    "log_fit",
    "log_model",
    "register",
    "load_champion",
    "FitRecord",
    "Registration",
    "Selection",
    "default_candidates",
    "fit_select_and_log",
]

DEFAULT_EXPERIMENT = "winback-survival"
RETURN_MODEL_NAME = "winback-return"
CHURN_MODEL_NAME = "winback-churn"
#: Contract columns that hold PII; never logged.
PII_COLUMNS = tuple(sorted({c.name for t in TABLES.values() for c in t.columns if c.pii}))
_ID_COLUMNS = ("customer_id", "subscription_id", "lapse_id", "episode_id")
_PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (or the env / local default); return the URI."""
    import mlflow

    uri = (
        tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    )
    if uri.startswith("file:") or (
        ":" not in uri.split("/")[0]
        and not uri.startswith(("sqlite", "http", "postgres", "mysql", "databricks"))
    ):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def artifact_root(tracking_uri: str | None = None) -> str | None:
    """Artifact location for new experiments (None lets an HTTP server decide)."""
    env = os.environ.get("WINBACK_MLFLOW_ARTIFACTS")
    if env:
        return Path(env).resolve().as_uri() if "://" not in env else env
    uri = tracking_uri or ""
    if uri.startswith(("http://", "https://")):
        return None
    return (Path.cwd() / "mlruns").resolve().as_uri()


def _experiment_id(name: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    loc = artifact_root(mlflow.get_tracking_uri())
    return mlflow.create_experiment(name, artifact_location=loc)


def _check_no_pii(columns: Sequence[str], what: str) -> None:
    bad = [c for c in columns if c in PII_COLUMNS]
    if bad:
        raise ModelError(
            f"{what} holds PII column(s) {bad}; PII never goes into MLflow. "
            "Fix: drop them from the features (build frames with winback_ml.features)."
        )


def _param_value(v: Any) -> str:
    if isinstance(v, list | tuple | dict):
        s = json.dumps(v, default=str)
    else:
        s = str(v)
    return s if len(s) <= 6000 else s[:5997] + "..."


@dataclass
class Registration:
    """Outcome of :func:`register`."""

    name: str
    version: str
    promoted: bool
    metric_name: str
    metric: float
    champion_version: str | None
    champion_metric: float | None
    reason: str


@dataclass
class FitRecord:
    """What :func:`log_fit` logged: run, model URI and (if registered) the registration."""

    run_id: str
    model_uri: str
    registration: Registration | None = None


def log_model(
    model: Any,
    kind: str,
    input_example: pd.DataFrame,
    horizons: Sequence[int] | None = None,
    name: str = "model",
) -> str:
    """Log ``model`` as a pyfunc in the active run; return its model URI.

    ``kind`` is ``"return"`` or ``"churn"``. The signature is inferred from
    ``input_example`` (the scoring frame, at most a few rows, identifiers
    dropped) and the model's output on it.
    """
    import mlflow
    from mlflow.models import infer_signature

    if kind not in ("return", "churn"):
        raise ModelError(f"log_model: kind must be 'return' or 'churn'. Got {kind!r}.")
    hz = [int(h) for h in (horizons or ([30, 90] if kind == "return" else [90]))]
    required = list(model.required_columns_)
    missing = [c for c in required if c not in input_example.columns]
    if missing:
        raise ModelError(f"log_model: the input example lacks required column(s) {missing}.")
    example = input_example[required].head(5).reset_index(drop=True)
    _check_no_pii(list(example.columns), "The input example")
    example = _plain_dtypes(example)
    cfg = {"kind": kind, "horizons": hz, "required_columns": required}
    with tempfile.TemporaryDirectory() as tmp:
        est_path = Path(tmp) / "estimator.pkl"
        est_path.write_bytes(pickle.dumps(model))
        from winback_ml.tracking.pyfunc_model import SurvivalPyfunc

        warnings.filterwarnings("ignore", message=r".*type hints to the `predict` method.*")
        wrapper = SurvivalPyfunc()
        wrapper.estimator, wrapper.kind, wrapper.horizons, wrapper.required = (
            model,
            kind,
            hz,
            required,
        )
        output = wrapper.predict(None, example)
        sig = infer_signature(example, output)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(_PYFUNC_FILE),
            artifacts={"estimator": str(est_path)},
            model_config=cfg,
            signature=sig,
            input_example=example,
            pip_requirements=_pip_requirements(),
        )
    return info.model_uri


def _pip_requirements() -> list[str]:
    """Pins of the packages the pyfunc needs, read from the installed versions.

    Given explicitly, so MLflow does not infer them (a slow subprocess per log).
    """
    from importlib import metadata

    reqs = []
    for dist in (
        "mlflow",
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "lifelines",
        "xgboost-cpu",
        "xgboost",
        "winback_ml",
    ):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def _plain_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float64, other columns as strings (None kept): a stable signature."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if pd.api.types.is_bool_dtype(df[c]) or pd.api.types.is_numeric_dtype(df[c]):
            out[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        else:
            out[c] = df[c].astype("object").where(df[c].notna(), "none").astype(str)
    return out


def log_fit(
    model: Any,
    kind: str,
    *,
    input_example: pd.DataFrame,
    metrics: Mapping[str, Any] | None = None,
    as_of: Any = None,
    data_window: tuple[Any, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    figures: Mapping[str, Any] | None = None,
    horizons: Sequence[int] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    register_as: str | None = None,
    holdout_metric: str | None = None,
    greater_is_better: bool = False,
    champion_metric: float | None = None,
    tracking_uri: str | None = None,
) -> FitRecord:
    """Log one fit to MLflow (see the module docstring); optionally register it.

    Parameters
    ----------
    model : a fitted winback_ml survival model
    kind : "return" or "churn"
    input_example : scoring frame rows (identifiers and PII are never logged)
    metrics : holdout metrics; only finite numbers are logged
    as_of, data_window : the run date and the (start, end) of the training data
    params : extra parameters (e.g. the comparison's cutoff)
    tables : frames logged as CSV artifacts (comparison, calibration)
    figures : matplotlib figures logged as PNG
    register_as : a registry name (``winback-return``) to register the model under
    holdout_metric : the key of ``metrics`` that decides promotion
    greater_is_better : direction of ``holdout_metric``
    champion_metric : the current champion's score on this same holdout, if the
        caller re-scored it (else the champion's stored tag is used)
    """
    import mlflow

    configure(tracking_uri)
    feats = list(model.feature_names_in_)
    _check_no_pii(feats, "The feature list")
    exp_id = _experiment_id(experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name or type(model).__name__) as run:
        p = {f"model.{k}": _param_value(v) for k, v in model.get_params().items()}
        p["model.class"] = type(model).__name__
        p["kind"] = kind
        p["n_features"] = str(len(feats))
        p["as_of"] = str(pd.Timestamp(as_of)) if as_of is not None else "none"
        if data_window is not None:
            p["data_window_start"] = str(pd.Timestamp(data_window[0]))
            p["data_window_end"] = str(pd.Timestamp(data_window[1]))
        p["n_train"] = str(getattr(model, "n_train_", ""))
        p["n_train_events"] = str(getattr(model, "n_events_", ""))
        for k, v in (params or {}).items():
            p[str(k)] = _param_value(v)
        mlflow.log_params(p)
        warns = list(getattr(model, "fit_warnings_", []))
        mlflow.set_tags(
            {
                "winback.kind": kind,
                "winback.model_class": type(model).__name__,
                "winback.fit_fallbacks": str(len(warns)),
            }
        )
        mlflow.log_dict(
            {"features": feats, "required_columns": list(model.required_columns_)}, "features.json"
        )
        if warns:
            mlflow.log_text("\n".join(warns), "fit_warnings.txt")
        clean = {
            k: float(v)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float | np.floating | np.integer) and np.isfinite(float(v))
        }
        if clean:
            mlflow.log_metrics(clean)
        for name, df in (tables or {}).items():
            _check_no_pii([str(c) for c in df.columns], f"The table {name!r}")
            dropped = df.drop(columns=[c for c in _ID_COLUMNS if c in df.columns])
            mlflow.log_text(dropped.to_csv(index=False), f"tables/{name}.csv")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        uri = log_model(model, kind, input_example, horizons=horizons)
        run_id = run.info.run_id
    reg = None
    if register_as:
        if holdout_metric is None or holdout_metric not in clean:
            raise ModelError(
                f"log_fit: register_as={register_as!r} needs holdout_metric naming a logged "
                f"metric. Got {holdout_metric!r}; metrics are {sorted(clean)}."
            )
        reg = register(
            uri,
            register_as,
            clean[holdout_metric],
            metric_name=holdout_metric,
            greater_is_better=greater_is_better,
            champion_metric=champion_metric,
        )
    return FitRecord(run_id, uri, reg)


def register(
    model_uri: str,
    name: str,
    holdout_metric: float,
    *,
    metric_name: str = "holdout_metric",
    greater_is_better: bool = False,
    champion_metric: float | None = None,
    alias: str = "champion",
    tracking_uri: str | None = None,
) -> Registration:
    """Register ``model_uri`` under ``name``; move ``alias`` only if it beats the champion.

    The champion's score is ``champion_metric`` when given (the caller scored
    the current champion on the same holdout), else the value tagged on the
    champion version at its registration. The new version is tagged with its
    metric, the champion it was compared with and the decision.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(tracking_uri)
    if not np.isfinite(holdout_metric):
        raise ModelError(
            f"register: holdout_metric must be a finite number. Got {holdout_metric!r}."
        )
    client = MlflowClient()
    mv = mlflow.register_model(model_uri, name)
    version = str(mv.version)
    try:
        champ = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        champ = None
    champ_version = str(champ.version) if champ is not None else None
    champ_score = champion_metric
    if champ is not None and champ_score is None:
        tag = champ.tags.get(f"winback.{metric_name}")
        champ_score = float(tag) if tag not in (None, "") else None
    if champ is None:
        promoted, reason = True, f"no {alias} yet"
    elif champ_score is None:
        promoted, reason = True, f"{alias} v{champ_version} has no {metric_name} to compare"
    else:
        better = holdout_metric > champ_score if greater_is_better else holdout_metric < champ_score
        promoted = bool(better)
        op = ">" if greater_is_better else "<"
        reason = (
            f"{metric_name} {holdout_metric:.6g} {'' if better else 'not '}{op} "
            f"{champ_score:.6g} of {alias} v{champ_version}"
        )
    tags = {
        f"winback.{metric_name}": repr(float(holdout_metric)),
        "winback.metric_name": metric_name,
        "winback.greater_is_better": str(greater_is_better),
        "winback.compared_with": champ_version or "none",
        "winback.decision": ("promoted: " if promoted else "kept champion: ") + reason,
    }
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    if promoted:
        client.set_registered_model_alias(name, alias, version)
    return Registration(
        name,
        version,
        promoted,
        metric_name,
        float(holdout_metric),
        champ_version,
        champ_score,
        reason,
    )


def load_champion(
    name: str = RETURN_MODEL_NAME, alias: str = "champion", tracking_uri: str | None = None
) -> Any:
    """``mlflow.pyfunc.load_model("models:/<name>@<alias>")`` after :func:`configure`."""
    import mlflow

    configure(tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")


@dataclass
class Selection:
    """Outcome of :func:`fit_select_and_log`."""

    model: Any
    comparison: Any
    record: FitRecord
    candidate_runs: dict[str, str]


def default_candidates(kind: str) -> dict[str, Any]:
    """The candidates compared for ``kind`` ("return" or "churn"), baseline first."""
    if kind == "return":
        from winback_ml.models.return_model import (
            CoxReturnModel,
            KaplanMeierReturnModel,
            WeibullCureReturnModel,
            XGBoostAFTReturnModel,
        )

        return {
            "kaplan_meier": KaplanMeierReturnModel(),
            "cox": CoxReturnModel(),
            "weibull_cure": WeibullCureReturnModel(),
            "xgboost_aft": XGBoostAFTReturnModel(),
        }
    if kind == "churn":
        from winback_ml.models.churn_model import (
            CoxChurnModel,
            DiscreteHazardChurnModel,
            KaplanMeierChurnModel,
            WeibullCureChurnModel,
            XGBoostAFTChurnModel,
        )

        return {
            "kaplan_meier": KaplanMeierChurnModel(),
            "cox": CoxChurnModel(),
            "weibull": WeibullCureChurnModel(),
            "xgboost_aft": XGBoostAFTChurnModel(),
            "discrete_hazard": DiscreteHazardChurnModel(),
        }
    raise ModelError(f"kind must be 'return' or 'churn'. Got {kind!r}.")


def _champion_score(
    name: str, train: pd.DataFrame, test: pd.DataFrame, horizons: Sequence[float], metric: str
) -> float | None:
    """The current champion's configuration refitted on this training split and scored on
    this holdout (like with like: the champion itself was fitted on data that may include
    the holdout). None when there is no champion or it cannot read this frame."""
    import mlflow
    from sklearn.base import clone

    from winback_ml.models.evaluation import evaluate_survival_model

    try:
        champ = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        est = clone(champ.unwrap_python_model().estimator).fit(train)
        return float(evaluate_survival_model(est, test, horizons)[metric])
    except Exception:  # no champion yet, or one that cannot read this frame
        return None


def fit_select_and_log(
    kind: str,
    train: pd.DataFrame,
    *,
    as_of: Any,
    candidates: Mapping[str, Any] | None = None,
    cutoff: Any = None,
    holdout_days: int | None = None,
    horizons: Sequence[int] | None = None,
    score_example: pd.DataFrame | None = None,
    register_as: str | None = "default",
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
) -> Selection:
    """Compare candidates on a time-based holdout, refit the chosen one on all data, log, register.

    Every candidate's holdout fit is logged as its own run (parameters, metrics,
    calibration tables, warnings); the refit of the chosen one is logged with the
    comparison table, the calibration plot and the model, and registered
    (``winback-return`` / ``winback-churn`` by default). ``champion`` moves only
    when the chosen model's holdout integrated Brier score is lower than the
    current champion's on the same holdout: the champion's configuration is refitted on the
    same training split and scored on the same holdout (else its stored score is used).

    Parameters
    ----------
    kind : "return" or "churn"
    train : the training frame (``build_*_training_frame``)
    as_of : the run date
    candidates : name -> unfitted model; default :func:`default_candidates`
    cutoff : holdout cutoff; default ``as_of - holdout_days`` (180 for return, 135 for churn)
    horizons : evaluation horizons; default (30, 90)
    score_example : scoring-frame rows for the signature (default: training rows
        with ``days_lapsed`` set to 0 for return models)
    register_as : registry name; "default" = ``winback-<kind>``; None = no registration
    """
    import mlflow
    from sklearn.base import clone

    from winback_ml.models.evaluation import compare_models, plot_calibration, time_split

    configure(tracking_uri)
    cands = dict(candidates) if candidates is not None else default_candidates(kind)
    hz = tuple(int(h) for h in (horizons or (30, 90)))
    T = pd.Timestamp(as_of)
    cut = (
        pd.Timestamp(cutoff)
        if cutoff is not None
        else T - pd.Timedelta(days=holdout_days or (180 if kind == "return" else 135))
    )
    primary = hz[0] if kind == "return" else hz[-1]
    cmp = compare_models(cands, train, cut, horizons=hz, primary_horizon=primary)
    exp_id = _experiment_id(experiment)
    runs: dict[str, str] = {}
    for name, row in cmp.table.set_index("model").iterrows():
        with mlflow.start_run(experiment_id=exp_id, run_name=f"holdout:{name}") as run:
            mlflow.set_tags(
                {"winback.kind": kind, "winback.stage": "holdout", "winback.candidate": name}
            )
            mlflow.log_params(
                {
                    "as_of": str(T),
                    "cutoff": str(cut),
                    "status": str(row["status"]),
                    "chosen": str(name == cmp.chosen),
                }
            )
            if name in cmp.models:
                m = cmp.models[name]
                mlflow.log_params(
                    {f"model.{k}": _param_value(v) for k, v in m.get_params().items()}
                )
                mlflow.log_metrics(
                    {
                        k: float(v)
                        for k, v in cmp.details[name].items()
                        if isinstance(v, float) and np.isfinite(v)
                    }
                )
                for h in hz:
                    mlflow.log_text(
                        cmp.details[name][f"calibration_{h}"].to_csv(index=False),
                        f"tables/calibration_{h}.csv",
                    )
                if getattr(m, "fit_warnings_", None):
                    mlflow.log_text("\n".join(m.fit_warnings_), "fit_warnings.txt")
            else:
                mlflow.log_text(cmp.failures.get(name, ""), "failure.txt")
            runs[name] = run.info.run_id
    final = clone(cands[cmp.chosen]).fit(train)
    tr_part, test = time_split(train, cut, "at", final.duration_col, final.event_col)
    name = f"winback-{kind}" if register_as == "default" else register_as
    champ = _champion_score(name, tr_part, test, hz, "ibs") if name else None
    example = score_example
    if example is None:
        example = train.head(5)
        if kind == "return":
            example = example.assign(days_lapsed=0.0)
    det = cmp.details[cmp.chosen]
    metrics = {k: v for k, v in det.items() if isinstance(v, float)}
    fig = plot_calibration(cmp, hz[0])
    tables = {
        "comparison": cmp.table.drop(columns=[c for c in ("fit_warnings",) if c in cmp.table])
    }
    for h in hz:
        tables[f"calibration_{h}"] = det[f"calibration_{h}"]
    rec = log_fit(
        final,
        kind,
        input_example=example,
        metrics=metrics,
        as_of=T,
        data_window=(pd.to_datetime(train["at"]).min(), T),
        params={"cutoff": str(cut), "chosen": cmp.chosen, "selection_rule": cmp.rule},
        tables=tables,
        figures={f"calibration_{hz[0]}": fig},
        horizons=[30, 90] if kind == "return" else [90],
        experiment=experiment,
        run_name=f"{kind}:{cmp.chosen}",
        register_as=name,
        holdout_metric="ibs" if name else None,
        greater_is_better=False,
        champion_metric=champ,
    )
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Selection(final, cmp, rec, runs)
