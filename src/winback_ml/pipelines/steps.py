"""Step helpers the notebooks call: reuse an earlier step's targets, run the dispatch dry run.

Notebooks stay thin: anything longer than a call or two lives here.

* :func:`load_or_score_targets`: the targets written by an earlier step of
  the same run (``targets.csv`` under ``output_dir``), or scored now with
  :func:`winback_ml.scoring.score` when there are none.
* :func:`run_dispatch`: enrol the targets and send what is due at ``as_of``
  through the dispatch stage's :class:`~winback_ml.dispatch.DryRunChannel`
  (one JSON file per message, addresses masked). In ``dry_run`` mode the
  enrolment goes into a scratch SQLite copy under ``output_dir`` (customers,
  subscriptions and events only), so the store is never touched; in
  ``enrol`` mode it goes into the store itself (campaign tables, outbox,
  codes: what the daily job does), and messages still go to files: real
  sending is ``winback dispatch tick --email smtp ...``.
* :func:`customer_mrr`: each customer's latest MRR, to price offers.

Invariants: timestamps tz-naive UTC; nothing here reads past ``as_of``
(the context's data is already cut); no PII is returned: message previews
carry masked addresses only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from winback_ml.exceptions import PipelineError
from winback_ml.pipelines.context import RunContext

__all__ = [
    "SURVIVAL_CANDIDATES",
    "survival_candidates",
    "DISPATCH_MODES",
    "DispatchRun",
    "customer_mrr",
    "load_or_score_targets",
    "run_dispatch",
]

DISPATCH_MODES = ("dry_run", "enrol")

#: Short names of the survival models a notebook may compare.
SURVIVAL_CANDIDATES = ("kaplan_meier", "cox", "weibull_cure", "xgboost_aft")
#: names of one kind only, after the shared ones (the order of RETURN_MODELS / CHURN_MODELS)
_KIND_CANDIDATES = {"return": (), "churn": ("discrete_hazard",)}


def survival_candidates(kind: str, names: str) -> dict[str, Any]:
    """Fresh estimators by short name: ``survival_candidates("return", "cox,xgboost_aft")``.

    Parameters
    ----------
    kind : ``"return"`` or ``"churn"``.
    names : comma-separated names among :data:`SURVIVAL_CANDIDATES` (and, for churn,
        ``discrete_hazard``).

    Raises
    ------
    PipelineError
        An unknown kind or name (the message lists the known ones).
    """
    if kind == "return":
        from winback_ml.models.return_model import RETURN_MODELS as classes
    elif kind == "churn":
        from winback_ml.models.churn_model import CHURN_MODELS as classes
    else:
        raise PipelineError(f"kind must be 'return' or 'churn'. Got {kind!r} instead.")
    known = SURVIVAL_CANDIDATES + _KIND_CANDIDATES[kind]
    by_name = dict(zip(known, classes, strict=True))
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in wanted if n not in by_name]
    if bad or not wanted:
        raise PipelineError(
            f"The {kind} candidates must be a comma-separated list of {list(known)}. "
            f"Got {names!r} instead."
        )
    return {n: by_name[n]() for n in wanted}


def customer_mrr(data: Any) -> pd.Series:
    """The MRR of each customer's latest subscription, indexed by ``customer_id``."""
    s = data.subscriptions.sort_values("started_at", kind="mergesort")
    return (
        s.drop_duplicates("customer_id", keep="last").set_index("customer_id")["mrr"].astype(float)
    )


def load_or_score_targets(
    ctx: RunContext, targets_file: str = "targets.csv", *, log_models: bool = False
) -> tuple[pd.DataFrame, str]:
    """Targets of this run: read ``output_dir/targets_file`` if an earlier step wrote it, else score.

    Returns the targets (contract columns, ranked) and where they came from.
    """
    from winback_ml.dispatch.enrol import read_targets

    p = Path(targets_file) if targets_file else None
    if p is not None and not p.is_absolute():
        p = ctx.output_dir / p
    if p is not None and p.exists():
        return read_targets(p), f"read from {p}"
    from winback_ml.scoring import score

    ctx.configure_mlflow()
    res = score(ctx.data, ctx.as_of, ctx.output_dir, ctx.config, log_models=log_models)
    return res.targets, "scored now (no targets file from an earlier step)"


@dataclass
class DispatchRun:
    """What :func:`run_dispatch` did.

    Attributes
    ----------
    mode : ``dry_run`` or ``enrol``.
    campaign_id : the campaign the targets were enrolled in.
    summary : the enrolment summary (enrolled, holdout, skipped, messages).
    tick : counts of the dispatcher's tick at ``as_of``.
    enrolments : one row per enrolled target (ids, arm, offer, sequence; no PII).
    messages : one row per message file written by the dry-run channel (channel,
        customer id, subject, file; the files mask the address).
    dry_run_dir : folder of the message files.
    """

    mode: str
    campaign_id: str
    summary: dict[str, Any]
    tick: dict[str, Any]
    enrolments: pd.DataFrame
    messages: pd.DataFrame
    dry_run_dir: Path
    notes: list[str] = field(default_factory=list)


def _scratch_store(ctx: RunContext, path: Path) -> str:
    from winback_ml.data.store import Store

    url = f"sqlite:///{path}"
    store = Store(url)
    d = ctx.data
    try:
        store.write(
            {"customers": d.customers, "subscriptions": d.subscriptions, "events": d.events}
        )
    except BaseException:
        store.dispose()
        path.unlink(missing_ok=True)  # a half-written copy of contact data: do not keep it
        raise
    store.dispose()
    return url


def _messages(folder: Path) -> pd.DataFrame:
    rows = []
    for f in sorted(folder.glob("*/*.json")):
        try:
            m = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        rows.append(
            {
                "channel": f.parent.name,
                "customer_id": m.get("customer_id"),
                "subject": m.get("subject"),
                "file": str(f.relative_to(folder)),
            }
        )
    return pd.DataFrame(rows, columns=["channel", "customer_id", "subject", "file"])


def run_dispatch(
    ctx: RunContext,
    targets: pd.DataFrame,
    mode: str = "dry_run",
    *,
    holdout: float = 0.1,
    campaign_id: str | None = None,
) -> DispatchRun:
    """Enrol ``targets`` and send what is due at ``as_of`` through dry-run channels.

    Parameters
    ----------
    ctx : the notebook's run context (data, as_of, output_dir, config).
    targets : the contract's targets table.
    mode : ``"dry_run"`` (scratch copy; the store is untouched) or
        ``"enrol"`` (the store itself; ``ctx.data_source`` must be a URL).
    holdout : share of contacted targets kept as a never-contacted holdout.
    campaign_id : default ``winback-<as_of:%Y%m%d>``.

    Raises
    ------
    PipelineError
        Unknown ``mode``, or ``enrol`` on a folder source.
    """
    from winback_ml.dispatch.channels import DryRunChannel
    from winback_ml.dispatch.enrol import enrol_targets
    from winback_ml.dispatch.outbox import Dispatcher
    from winback_ml.dispatch.schema import DispatchDB

    if mode not in DISPATCH_MODES:
        raise PipelineError(
            f"The parameter 'dispatch_mode' must be one of {list(DISPATCH_MODES)}. Got {mode!r} "
            "instead."
        )
    notes: list[str] = []
    out = ctx.output_dir / "dispatch_dry_run"
    out.mkdir(parents=True, exist_ok=True)
    if mode == "dry_run":
        db_path = out / "scratch_store.db"
        if db_path.exists():
            db_path.unlink()
        url = _scratch_store(ctx, db_path)
        notes.append(
            "dry run: enrolled into a scratch copy of customers, subscriptions and events "
            "(deleted afterwards); the store is untouched"
        )
    else:
        if "://" not in ctx.data_source:
            raise PipelineError(
                "dispatch_mode 'enrol' writes enrolments into the store, so 'data' must be an "
                f"SQLAlchemy URL (or 'sample'). Got the folder {ctx.data_source!r}; use "
                "dispatch_mode=dry_run or load the folder into a store (winback store load)."
            )
        url = ctx.data_source
    now = ctx.as_of.to_pydatetime()
    db = DispatchDB(url)
    try:
        db.create_schema()
        cid = campaign_id or f"winback-{ctx.as_of:%Y%m%d}"
        plan = enrol_targets(db, targets, now, config=ctx.config, holdout=holdout, campaign_id=cid)
        channels = {name: DryRunChannel(out, name) for name in ("email", "sms", "in_app")}
        report = Dispatcher(db, channels).tick(now)
        for ch in channels.values():
            ch.close()
    finally:
        db.engine.dispose()
        if mode == "dry_run":  # the scratch copy holds contact data: never leave it behind
            db_path.unlink(missing_ok=True)
    keep = [
        c
        for c in (
            "enrolment_id",
            "campaign_id",
            "customer_id",
            "arm_id",
            "status",
            "sequence_id",
            "offer_type",
            "discount_pct",
            "discount_months",
            "channel",
        )
        if c in plan.enrolments.columns
    ]
    return DispatchRun(
        mode=mode,
        campaign_id=cid,
        summary=plan.summary(),
        tick=report.as_dict(),
        enrolments=plan.enrolments[keep].copy(),
        messages=_messages(out),
        dry_run_dir=out,
        notes=notes,
    )
