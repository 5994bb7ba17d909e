"""Auto-launch: cancellations queued by intake are scored and enrolled.

Intake writes one ``winback_queue`` row per end of service (see
:mod:`winback_ml.intake.ledger`). :func:`enrol_from_queue` takes the
``pending`` rows with ``queued_at <= now``, scores them into a ``targets``
frame (default: the reason playbook of :mod:`winback_ml.cohort.playbook`;
pass ``scorer`` to use a fitted policy), and enrols them with
:func:`winback_ml.dispatch.enrol.enrol_targets`.

Contact window: a sequence starts no earlier than ``ended_at +
settings.contact_delay_days`` (default 14: the interview seed's "within 14
days the conversation is still emotional"), except for reasons in
``settings.immediate_reasons`` (default ``payment_failed``), which start at
once with the resume-billing flow. Customers are enrolled now and their
first message is *due* at the start; a return before it cancels everything.

Queue rows move to ``enrolled`` (an enrolment exists), ``holdout`` or
``skipped`` (not contacted: the scorer said no, or already enrolled), with
``status_at = now``; ``superseded`` rows (intake saw a renewal) are never
touched. Rerunning is safe: enrolment is idempotent and only ``pending`` rows
are read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from winback_ml.config import BusinessConfig, load_config
from winback_ml.dispatch._util import to_utc_naive
from winback_ml.dispatch.enrol import EnrolPlan, enrol_targets, plan_enrolment
from winback_ml.dispatch.schema import DispatchDB, enrolments
from winback_ml.dispatch.sequences import SequenceBook, load_sequences

__all__ = ["read_queue", "playbook_targets", "enrol_from_queue"]

Scorer = Callable[[pd.DataFrame, DispatchDB, Any], pd.DataFrame]


def _queue_table() -> sa.Table:
    from winback_ml.intake.ledger import winback_queue_table

    return winback_queue_table


def read_queue(db: DispatchDB, now: Any) -> pd.DataFrame:
    """Pending queue rows queued at or before ``now`` (latest end per customer)."""
    q = _queue_table()
    db.create_schema()
    q.metadata.create_all(db.engine, tables=[q], checkfirst=True)
    with db.engine.connect() as conn:
        df = pd.read_sql(
            sa.select(q).where(q.c.status == "pending", q.c.queued_at <= now, q.c.ended_at <= now),
            conn,
        )
    if df.empty:
        return df
    for c in ("ended_at", "queued_at"):
        df[c] = pd.to_datetime(df[c])
    return df.sort_values("ended_at").groupby("customer_id", as_index=False).tail(1)


def playbook_targets(
    queue: pd.DataFrame, db: DispatchDB, now: Any, config: BusinessConfig | None = None
) -> pd.DataFrame:
    """A ``targets`` frame for queue rows from the reason playbook (no model needed).

    Segment: ``misclassified`` for ``payment_failed`` and ``accidental``
    (they did not choose to leave), ``warm`` otherwise. Channel ``multi``
    (consent is checked per step when sending). ``contact`` is False where
    the playbook says not to contact.
    """
    from winback_ml.cohort.playbook import playbook_offer

    cfg = config or load_config(None)
    now = to_utc_naive(now)
    rows = []
    for r in queue.itertuples(index=False):
        reason = r.reason if isinstance(r.reason, str) and r.reason else "unknown"
        offer = playbook_offer(reason, cfg)
        rows.append(
            {
                "customer_id": r.customer_id,
                "segment": "misclassified"
                if reason in ("payment_failed", "accidental")
                else "warm",
                "cancel_reason": reason,
                "reason_source": "inferred" if reason == "unknown" else "stated",
                "days_lapsed": max(
                    0.0, (now - pd.Timestamp(r.ended_at).to_pydatetime()).total_seconds() / 86400
                ),
                "contact": offer is not None,
                "offer_type": offer.offer_type if offer else "none",
                "discount_pct": float(offer.discount_pct) if offer else 0.0,
                "discount_months": int(offer.discount_months) if offer else 0,
                "channel": "multi",
                "model_version": "playbook",
            }
        )
    return pd.DataFrame(rows)


def enrol_from_queue(
    db: Any,
    now: Any = None,
    *,
    scorer: Scorer | None = None,
    book: SequenceBook | None = None,
    config: BusinessConfig | None = None,
    campaign_id: str | None = None,
    write: bool = True,
    **kw: Any,
) -> EnrolPlan:
    """Score and enrol the pending cancellations of the intake queue (see the module docstring)."""
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    now = to_utc_naive(now)
    book = book or load_sequences()
    config = config or load_config(None)
    st = book.settings
    campaign_id = campaign_id or f"auto-{now:%Y%m%d}"
    queue = read_queue(db, now)
    if queue.empty:
        empty = plan_enrolment(
            db, _empty_targets(), now, campaign_id=campaign_id, book=book, config=config, **kw
        )
        return empty
    targets = (
        scorer(queue, db, now) if scorer is not None else playbook_targets(queue, db, now, config)
    )
    q = queue.set_index("customer_id")
    ended = q["ended_at"]
    immediate = q["reason"].isin(st.immediate_reasons)
    start = ended + pd.Timedelta(days=st.contact_delay_days)
    start = start.where(~immediate, pd.Timestamp(now)).clip(lower=pd.Timestamp(now))
    fn = enrol_targets if write else plan_enrolment
    plan = fn(
        db, targets, now, campaign_id=campaign_id, book=book, config=config,
        start_at=start, lapsed_at=ended - timedelta(seconds=1), **kw,
    )  # fmt: skip
    if write:
        _mark_queue(db, queue, campaign_id, now)
    return plan


def _mark_queue(db: DispatchDB, queue: pd.DataFrame, campaign_id: str, now: Any) -> None:
    qt = _queue_table()
    ids = queue["customer_id"].tolist()
    with db.engine.begin() as conn:
        status = dict(
            conn.execute(
                sa.select(enrolments.c.customer_id, enrolments.c.status).where(
                    enrolments.c.customer_id.in_(ids), enrolments.c.campaign_id == campaign_id
                )
            ).all()
        )
        for r in queue.itertuples(index=False):
            s = status.get(r.customer_id)
            new = "holdout" if s == "holdout" else "enrolled" if s is not None else "skipped"
            conn.execute(
                qt.update()
                .where(
                    qt.c.customer_id == r.customer_id,
                    qt.c.status == "pending",
                    qt.c.queued_at <= now,
                )
                .values(status=new, status_at=now)
            )


def _empty_targets() -> pd.DataFrame:
    from winback_ml.dispatch.enrol import TARGET_COLUMNS

    return pd.DataFrame({c: pd.Series(dtype=object) for c in TARGET_COLUMNS})
