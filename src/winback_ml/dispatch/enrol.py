"""Enrolment: the scored target list (or the intake queue) becomes outbox rows.

``plan_enrolment`` computes, without writing, what ``enrol_targets`` writes
in **one transaction**: enrolments, codes, outbox rows and the experiment's
``campaigns`` / ``campaign_arms`` / ``campaign_assignments`` rows. Either all
of it is stored or none of it.

Invariants

* Only ``contact == True`` targets are enrolled. A customer with an active
  enrolment (any campaign) or any enrolment in this campaign is skipped:
  never enrolled twice.
* Keys are deterministic: ``enrolment_id = sha256(campaign, customer)``,
  ``idempotency_key = "wb-" + sha256(enrolment, step index, step name)``;
  rows are inserted with ``ON CONFLICT DO NOTHING``, so a rerun adds nothing.
* ``due_at = start_at + step.day`` with ``start_at = now + arm delay`` (and,
  from the intake queue, not before ``lapsed_at + contact_delay_days`` unless
  the reason is immediate, e.g. ``payment_failed``).
* ``lapsed_at`` (default ``now - days_lapsed``) is when the lapse began; a
  reactivation event after it stops the sequence.
* Times naive UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from winback_ml.config import BusinessConfig, Offer, load_config
from winback_ml.data.contract import (
    CANCEL_REASONS,
    CHANNELS,
    OFFER_TYPES,
    REASON_SOURCES,
    Violation,
)
from winback_ml.dispatch._util import sha256_hex, to_utc_naive
from winback_ml.dispatch.codes import issue_codes
from winback_ml.dispatch.experiments import Experiment, assign_arms, default_experiment
from winback_ml.dispatch.schema import DispatchDB, enrolments, outbox
from winback_ml.dispatch.sequences import SequenceBook, load_sequences
from winback_ml.exceptions import DataContractError, DispatchError

__all__ = [
    "TARGET_COLUMNS",
    "CODE_OFFERS",
    "EnrolPlan",
    "read_targets",
    "validate_targets",
    "plan_enrolment",
    "enrol_targets",
    "enrol_in_chunks",
    "enrolment_id",
    "idempotency_key",
]

#: Columns of the contract's ``targets`` table that dispatch needs.
TARGET_COLUMNS = (
    "customer_id",
    "segment",
    "cancel_reason",
    "reason_source",
    "days_lapsed",
    "contact",
    "offer_type",
    "discount_pct",
    "discount_months",
    "channel",
)
#: Offers that come with a discount code.
CODE_OFFERS = ("discount", "free_month", "feature_trial", "early_renewal")
_OUTBOX_COLUMNS = (
    "idempotency_key",
    "enrolment_id",
    "customer_id",
    "sequence_id",
    "step_index",
    "step_name",
    "channel",
    "template",
    "due_at",
    "next_attempt_at",
    "state",
    "attempts",
)
_PCT_OFFERS = ("discount", "early_renewal")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def enrolment_id(campaign_id: str, customer_id: str) -> str:
    return sha256_hex("enrol", campaign_id, customer_id)[:32]


def idempotency_key(enrol_id: str, step_index: int, step_name: str) -> str:
    return "wb-" + sha256_hex(enrol_id, step_index, step_name)[:40]


@dataclass
class EnrolPlan:
    """What an enrolment writes (or would write), as frames."""

    campaign_id: str
    enrolments: pd.DataFrame
    outbox: pd.DataFrame
    arms: pd.DataFrame
    assignments: pd.DataFrame
    skipped: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["customer_id", "why"])
    )
    codes: dict[str, str] = field(default_factory=dict)
    written: bool = False
    _records: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        e = self.enrolments
        return {
            "campaign_id": self.campaign_id,
            "enrolled": int((e["status"] == "active").sum()) if len(e) else 0,
            "holdout": int((e["status"] == "holdout").sum()) if len(e) else 0,
            "skipped": int(len(self.skipped)),
            "messages": int(len(self.outbox)),
            "codes": int(len(self.codes))
            if self.written
            else int(e["needs_code"].sum())
            if len(e)
            else 0,
            "messages_by_channel": {
                k: int(v) for k, v in self.outbox["channel"].value_counts().items()
            }
            if len(self.outbox)
            else {},
            "by_sequence": {k: int(v) for k, v in e["sequence_id"].value_counts().items()}
            if len(e)
            else {},
            "written": self.written,
        }


def read_targets(path: Any) -> pd.DataFrame:
    """Read a ``targets`` table from CSV or Parquet.

    Raises
    ------
    DispatchError
        The file does not exist or cannot be read as a table.
    """
    p = str(path)
    try:
        if p.endswith(".parquet"):
            return pd.read_parquet(p)
        return pd.read_csv(p, dtype={"customer_id": str})
    except FileNotFoundError:
        raise DispatchError(
            f"targets file {p!r} does not exist. Fix: run `winback score` and pass its targets.csv."
        ) from None
    except (OSError, ValueError) as e:  # pandas' parser errors are ValueErrors
        raise DispatchError(
            f"targets file {p!r} cannot be read as a table ({type(e).__name__}). "
            "Fix: pass the targets.csv (or .parquet) written by `winback score`."
        ) from None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and not pd.isna(v):
        return bool(v)
    s = (
        str(v).strip().lower()
        if v is not None and not (isinstance(v, float) and np.isnan(v))
        else ""
    )
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    return None


def validate_targets(targets: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise a ``targets`` frame; raise one error listing every violation.

    Raises
    ------
    DataContractError
        With one :class:`~winback_ml.data.contract.Violation` per broken rule
        (table ``targets``, the column, the offending customer ids, the fix).
    """
    v: list[Violation] = []
    missing = [c for c in TARGET_COLUMNS if c not in targets.columns]
    if missing:
        v.append(
            Violation(
                "targets",
                ",".join(missing),
                "required_column",
                f"missing columns {missing}",
                "produce targets with `winback score` (contract: targets)",
            )
        )
        raise DataContractError(
            f"targets: missing columns {missing}. Fix: produce targets with `winback score`.", v
        )
    t = targets.copy()
    t["customer_id"] = t["customer_id"].astype(str)

    def bad(col: str, mask: pd.Series, msg: str, fix: str) -> None:
        if mask.any():
            ids = t.loc[mask, "customer_id"].tolist()
            rows = list(np.flatnonzero(mask.to_numpy())[:5])
            v.append(
                Violation(
                    "targets",
                    col,
                    "value",
                    f"{msg} (rows {rows})",
                    fix,
                    count=int(mask.sum()),
                    examples=ids[:5],
                )
            )

    contact = t["contact"].map(_as_bool)
    bad("contact", contact.isna(), "contact is not a boolean", "use true/false")
    t["contact"] = contact.eq(True).astype(bool)
    bad(
        "customer_id",
        t["customer_id"].isin(["", "nan", "None"]),
        "empty customer_id",
        "give every row its customer id",
    )
    bad(
        "customer_id",
        t["customer_id"].duplicated(),
        "customer listed twice",
        "keep one row per customer",
    )
    bad(
        "offer_type",
        ~t["offer_type"].isin(OFFER_TYPES),
        f"offer_type not in {list(OFFER_TYPES)}",
        "use a contract offer type",
    )
    bad(
        "channel",
        ~t["channel"].isin(CHANNELS),
        f"channel not in {list(CHANNELS)}",
        "use email, sms, in_app or multi",
    )
    bad(
        "cancel_reason",
        ~t["cancel_reason"].isin(CANCEL_REASONS) & t["cancel_reason"].notna(),
        "unknown cancel_reason",
        f"use one of {list(CANCEL_REASONS)}",
    )
    bad(
        "reason_source",
        ~t["reason_source"].isin(REASON_SOURCES) & t["reason_source"].notna(),
        "unknown reason_source",
        "use stated or inferred",
    )
    pct = pd.to_numeric(t["discount_pct"], errors="coerce")
    bad(
        "discount_pct",
        pct.isna() | (pct < 0) | (pct > 100),
        "discount_pct not a number in 0..100",
        "give 0..100 (0 unless a discount)",
    )
    months = pd.to_numeric(t["discount_months"], errors="coerce")
    bad(
        "discount_months",
        # inf or 1.5 would crash or be truncated by the int cast below
        months.isna() | (months < 0) | ~np.isfinite(months) | (months % 1 != 0),
        "discount_months not an integer >= 0",
        "give an integer >= 0",
    )
    days = pd.to_numeric(t["days_lapsed"], errors="coerce")
    bad(
        "days_lapsed",
        days.isna() | (days < 0),
        "days_lapsed not a number >= 0",
        "give the days since the lapse at as_of",
    )
    disc = t["offer_type"].eq("discount") & (pct <= 0)
    bad(
        "discount_pct",
        disc,
        "a discount with discount_pct 0",
        "give a depth above 0 or offer_type none",
    )
    if v:
        lines = "\n".join(f"  - {x}" for x in v)
        raise DataContractError(
            f"targets break the contract ({len(v)} problems); nothing was enrolled:\n{lines}", v
        )
    t["discount_pct"] = pct.fillna(0.0).astype(float)
    t["discount_months"] = months.fillna(0).astype(int)
    t["days_lapsed"] = days.astype(float)
    return t


def _offer_key(offer_type: str, pct: float, months: int) -> str:
    return Offer(offer_type, float(pct), int(months)).key


def plan_enrolment(
    db: Any,
    targets: pd.DataFrame,
    now: Any = None,
    *,
    campaign_id: str | None = None,
    experiment: Experiment | None = None,
    holdout: float = 0.1,
    book: SequenceBook | None = None,
    config: BusinessConfig | None = None,
    start_at: pd.Series | None = None,
    lapsed_at: pd.Series | None = None,
    campaign_name: str | None = None,
) -> EnrolPlan:
    """What :func:`enrol_targets` would write, without writing it.

    Parameters
    ----------
    db : DispatchDB, Store or URL (customers and subscriptions are read from it).
    targets : the contract's ``targets`` table.
    now : the enrolment time (naive UTC; default: the current time).
    campaign_id : default ``winback-<YYYYMMDD of now>``.
    experiment : arms; default a treatment arm and a holdout of share ``holdout``.
    start_at, lapsed_at : optional per-customer times (index: customer id).
    """
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    db.create_schema()
    now = to_utc_naive(now)
    book = book or load_sequences()
    config = config or load_config(None)
    t = validate_targets(targets)
    t = t[t["contact"]].reset_index(drop=True)
    campaign_id = campaign_id or (experiment.campaign_id if experiment else f"winback-{now:%Y%m%d}")
    experiment = experiment or default_experiment(campaign_id, holdout)
    if experiment.campaign_id != campaign_id:
        experiment = Experiment(
            campaign_id, experiment.arms, experiment.salt, experiment.name, experiment.objective
        )
    ids = t["customer_id"].tolist()

    cust_t, sub_t = db.contract("customers"), db.contract("subscriptions")
    known: set[str] = set()
    taken: set[str] = set()
    tiers: dict[str, str] = {}
    with db.engine.connect() as conn:
        for i in range(0, len(ids), 5000):
            chunk = ids[i : i + 5000]
            known |= set(
                conn.execute(
                    sa.select(cust_t.c.customer_id).where(cust_t.c.customer_id.in_(chunk))
                ).scalars()
            )
            taken |= set(
                conn.execute(
                    sa.select(enrolments.c.customer_id).where(
                        enrolments.c.customer_id.in_(chunk),
                        sa.or_(
                            enrolments.c.status == "active", enrolments.c.campaign_id == campaign_id
                        ),
                    )
                ).scalars()
            )
            for cid, tier, _ in conn.execute(
                sa.select(sub_t.c.customer_id, sub_t.c.plan_tier, sub_t.c.started_at)
                .where(
                    sub_t.c.customer_id.in_(chunk),
                    # as of now: a subscription started later is not the plan they left
                    sa.or_(sub_t.c.started_at <= now, sub_t.c.started_at.is_(None)),
                )
                .order_by(sub_t.c.started_at)
            ):
                tiers[cid] = tier
    unknown = [c for c in ids if c not in known]
    if unknown:
        raise DataContractError(
            f"targets.customer_id: {len(unknown)} customers are not in the store's customers table "
            f"(e.g. {unknown[:5]}); nothing was enrolled. Fix: load the customers first "
            "(Store.write) or drop these targets.",
            [
                Violation(
                    "targets",
                    "customer_id",
                    "reference",
                    "not in customers",
                    "load customers into the store",
                    len(unknown),
                    unknown[:5],
                )
            ],
        )
    skipped = pd.DataFrame(
        {"customer_id": [c for c in ids if c in taken], "why": "already enrolled"}
    )
    t = t[~t["customer_id"].isin(taken)].reset_index(drop=True)

    arms = assign_arms(t["customer_id"], experiment)
    enr_rows: list[dict[str, Any]] = []
    # outbox rows column by column: a million rows as dicts would cost gigabytes
    ob_cols: dict[str, list[Any]] = {c: [] for c in _OUTBOX_COLUMNS}
    arm_rows: dict[str, dict[str, Any]] = {}
    asg_rows: list[dict[str, Any]] = []
    cols = list(TARGET_COLUMNS)
    records = (
        dict(zip(cols, vals, strict=True))
        for vals in zip(*(t[c].tolist() for c in cols), strict=True)
    )
    for rec, arm_id in zip(records, arms.to_numpy(), strict=True):
        cid = rec["customer_id"]
        arm = experiment.arm(arm_id)
        offer_type, pct, months = (
            rec["offer_type"],
            float(rec["discount_pct"]),
            int(rec["discount_months"]),
        )
        if arm.offer is not None:
            offer_type = arm.offer.get("offer_type", offer_type)
            pct = float(arm.offer.get("discount_pct", 0.0))
            months = int(arm.offer.get("discount_months", 0))
        channel = rec["channel"]
        seq = (
            book.get(arm.sequence_id)
            if arm.sequence_id
            else book.choose(rec["segment"], offer_type, channel, rec["cancel_reason"])
        )
        eid = enrolment_id(campaign_id, cid)
        lapse = lapsed_at.get(cid) if lapsed_at is not None else None
        lapse = (
            to_utc_naive(lapse)
            if lapse is not None
            else now - timedelta(days=float(rec["days_lapsed"]))
        )
        start = start_at.get(cid) if start_at is not None else None
        start = to_utc_naive(start) if start is not None else now
        start = start + timedelta(days=arm.send_delay_days)
        contract_arm = f"{arm.arm_id}|{_offer_key(offer_type, pct, months)}|{channel}"
        arm_rows.setdefault(
            contract_arm,
            {
                "campaign_id": campaign_id,
                "arm_id": contract_arm,
                "is_control": bool(arm.is_control),
                # a control arm is not contacted: the contract wants offer 'none'; the offer it
                # stands in for is named in its arm id
                "offer_type": "none" if arm.is_control else offer_type,
                "discount_pct": pct if offer_type in _PCT_OFFERS and not arm.is_control else 0.0,
                "discount_months": 0 if arm.is_control else months,
                "channel": channel,
                "message_variant": arm.message_variant,
                "send_delay_days": int(arm.send_delay_days),
            },
        )
        asg_rows.append(
            {
                "campaign_id": campaign_id,
                "customer_id": cid,
                "arm_id": contract_arm,
                "assigned_at": now,
                "contact_cost": 0.0
                if arm.is_control
                else float(config.contact_cost.get(channel, 0.0)),
            }
        )
        enr_rows.append(
            {
                "enrolment_id": eid,
                "campaign_id": campaign_id,
                "customer_id": cid,
                "arm_id": contract_arm,
                "is_control": bool(arm.is_control),
                "sequence_id": seq.id,
                "segment": rec["segment"],
                "cancel_reason": rec["cancel_reason"]
                if isinstance(rec["cancel_reason"], str)
                else None,
                "reason_source": rec["reason_source"]
                if isinstance(rec["reason_source"], str)
                else None,
                "plan_tier": tiers.get(cid),
                "offer_type": offer_type,
                "discount_pct": pct,
                "discount_months": months,
                "channel": channel,
                "message_variant": arm.message_variant,
                "code": None,
                "lapsed_at": lapse,
                "enrolled_at": now,
                "start_at": start,
                "status": "holdout" if arm.is_control else "active",
                "stopped_at": None,
                "stop_reason": None,
                "needs_code": (not arm.is_control) and offer_type in CODE_OFFERS,
            }
        )
        if arm.is_control:
            continue
        for idx, step in seq.steps_for(channel):
            due = start + timedelta(days=step.day)
            for col, v in (
                ("idempotency_key", idempotency_key(eid, idx, step.name)),
                ("enrolment_id", eid),
                ("customer_id", cid),
                ("sequence_id", seq.id),
                ("step_index", idx),
                ("step_name", step.name),
                ("channel", step.channel),
                ("template", step.template),
                ("due_at", due),
                ("next_attempt_at", due),
                ("state", "pending"),
                ("attempts", 0),
            ):
                ob_cols[col].append(v)
    enr_cols = [c.name for c in enrolments.columns] + ["needs_code"]
    return EnrolPlan(
        campaign_id=campaign_id,
        enrolments=pd.DataFrame(enr_rows, columns=enr_cols),
        outbox=pd.DataFrame(ob_cols, columns=list(_OUTBOX_COLUMNS)),
        arms=pd.DataFrame(list(arm_rows.values())),
        assignments=pd.DataFrame(asg_rows),
        skipped=skipped,
        _records={
            "enrolments": enr_rows,
            "outbox": ob_cols,
            "arms": list(arm_rows.values()),
            "assignments": asg_rows,
        },
    )


def enrol_targets(
    db: Any,
    targets: pd.DataFrame,
    now: Any = None,
    *,
    campaign_name: str | None = None,
    objective: str = "winback",
    **kw: Any,
) -> EnrolPlan:
    """Enrol the contact=True targets: enrolments, codes, outbox rows and campaign tables, atomically.

    Takes the same arguments as :func:`plan_enrolment`. Returns the plan with
    ``written=True`` and ``codes`` (enrolment id -> code).
    """
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    now = to_utc_naive(now)
    book = kw.get("book") or load_sequences()
    kw["book"] = book
    plan = plan_enrolment(db, targets, now, **kw)
    if plan.enrolments.empty:
        plan.written = True
        return plan
    st = book.settings
    e = plan.enrolments
    requests = e.loc[
        e["needs_code"],
        [
            "enrolment_id",
            "campaign_id",
            "customer_id",
            "offer_type",
            "discount_pct",
            "discount_months",
        ],
    ].to_dict("records")
    camp_t, arms_t, asg_t = (
        db.contract("campaigns"),
        db.contract("campaign_arms"),
        db.contract("campaign_assignments"),
    )
    with db.engine.begin() as conn:
        issued = issue_codes(
            db, requests, now, valid_days=st.code_valid_days, length=st.code_length, conn=conn
        )
        recs = plan._records or {
            "enrolments": _records(e),
            "outbox": _records(plan.outbox),
            "arms": _records(plan.arms),
            "assignments": _records(plan.assignments),
        }
        enr_records = [
            {
                **{k: v for k, v in r.items() if k != "needs_code"},
                "code": issued.get(r["enrolment_id"]),
            }
            for r in recs["enrolments"]
        ]
        db.insert_ignore(enrolments, enr_records, conn=conn)
        db.insert_ignore(outbox, recs["outbox"], conn=conn)
        db.insert_ignore(
            camp_t,
            [
                {
                    "campaign_id": plan.campaign_id,
                    "name": campaign_name or plan.campaign_id,
                    "objective": objective,
                    "started_at": now,
                    "ended_at": None,
                }
            ],
            conn=conn,
        )
        db.insert_ignore(arms_t, recs["arms"], conn=conn)
        db.insert_ignore(asg_t, recs["assignments"], conn=conn)
    plan.codes = issued
    plan.enrolments = e.assign(code=e["enrolment_id"].map(issued))
    plan.written = True
    return plan


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = df.astype(object).where(df.notna(), None).to_dict("records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, pd.Timestamp):
                r[k] = v.to_pydatetime()
            elif isinstance(v, np.generic):
                r[k] = v.item()
    return out


def enrol_in_chunks(
    db: Any, targets: pd.DataFrame, now: Any = None, *, chunk: int = 50_000, **kw: Any
) -> dict[str, Any]:
    """:func:`enrol_targets` over slices of ``chunk`` targets; returns the summed summary.

    Bounds memory for very large target lists (about 0.9 KB per message
    while a slice is planned). Each slice is one transaction; arms are a
    hash of the customer, so slicing changes no assignment; a rerun after a
    crash skips the slices already written (customers already enrolled).
    """
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    now = to_utc_naive(now)
    total: dict[str, Any] = {}
    for i in range(0, max(len(targets), 1), chunk):
        s = enrol_targets(db, targets.iloc[i : i + chunk], now, **kw).summary()
        for k, v in s.items():
            if isinstance(v, bool) or isinstance(v, str):
                total[k] = v
            elif isinstance(v, dict):
                d = total.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            else:
                total[k] = total.get(k, 0) + v
    return total
