"""The outbox: what is due is sent exactly once, across crashes, with retries and dead letters.

State machine of one ``dispatch_outbox`` row::

    pending --claim(lease)--> claimed --render ok--> sending --channel ok--> sent
       ^                        |  |                    |  \\--refused/down--> pending (backoff)
       |                        |  |                    |                     or dead (after N)
       +--quiet hours / cap-----+  +--bad input------> dead (reason)
       +--------------- crash: lease expired, reconciled ------------------+
    pending/claimed --stop rule--> cancelled;  no consent --> skipped

Guarantee (documented in ``docs/dispatch.md``):

* A row reaches a channel only from ``sending``, and ``sending`` is committed
  before the first byte goes out, under a lease (wall clock).
* A worker stops handing messages to a channel once its lease is about to
  expire (``deadline = lease_until - margin``), so no second worker can
  recover a row that is still being sent.
* After a crash, a ``claimed`` row with an expired lease goes back to
  ``pending`` (nothing was sent); a ``sending`` row with an expired lease is
  *reconciled*: the channel is asked whether the message with that
  idempotency key arrived. Yes: ``sent``. No: ``pending`` (sent again).
  Cannot tell: ``settings.on_uncertain`` decides (``dead``: at most once,
  the default; ``resend``: at least once).
* Hence exactly once for channels that can reconcile (the loopback SMTP
  server, the in-app table, the dry run), and at most once or at least once
  (by choice) for those that cannot.

Times: ``now`` (due dates, ``sent_at``, backoff) is the logical clock of
the tick, naive UTC; leases use the wall clock (``time.time()``).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from winback_ml.dispatch._util import address_hash, to_utc_naive
from winback_ml.dispatch.channels import (
    Channel,
    OutboundMessage,
    SendResult,
    redact,
    valid_address,
)
from winback_ml.dispatch.codes import mark_redeemed_from_events
from winback_ml.dispatch.policy import (
    apply_stop_rules,
    get_unsubscribe_secret,
    make_unsubscribe_token,
    next_allowed_time,
)
from winback_ml.dispatch.schema import DispatchDB, codes, enrolments, outbox, suppression
from winback_ml.dispatch.sequences import DispatchSettings, SequenceBook, load_sequences
from winback_ml.dispatch.templates import RenderError, TemplateRenderer

__all__ = ["Dispatcher", "TickReport", "outbox_counts", "dead_letters"]

_CHUNK = 5000


@dataclass
class TickReport:
    """Counts of what one :meth:`Dispatcher.tick` did."""

    now: str = ""
    batches: int = 0
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    skipped: int = 0
    deferred: int = 0
    uncertain: int = 0
    not_attempted: int = 0
    recovered_claimed: int = 0
    reconciled_sent: int = 0
    reconciled_pending: int = 0
    reconciled_uncertain: int = 0
    stopped_enrolments: int = 0
    codes_redeemed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Dispatcher:
    """Send what is due from the outbox through the channels.

    Parameters
    ----------
    db : DispatchDB, Store or URL
    channels : mapping of step channel (``email``, ``sms``, ``in_app``) to a :class:`Channel`.
        Rows of a channel without an entry stay pending.
    book : SequenceBook, optional
        Sequences and settings (default: the package's ``default.yaml``).
    renderer : TemplateRenderer, optional
    settings : DispatchSettings, optional
        Overrides ``book.settings``.

    Examples
    --------
    See ``docs/dispatch.md``; the tests in ``tests/dispatch`` run every path
    against loopback servers.
    """

    def __init__(
        self,
        db: Any,
        channels: Mapping[str, Channel],
        *,
        book: SequenceBook | None = None,
        renderer: TemplateRenderer | None = None,
        settings: DispatchSettings | None = None,
    ) -> None:
        self.db = db if isinstance(db, DispatchDB) else DispatchDB(db)
        self.channels = dict(channels)
        self.book = book or load_sequences()
        self.settings = settings or self.book.settings
        self.renderer = renderer or TemplateRenderer()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._secret: bytes | None = None

    # ------------------------------------------------------------------ public
    def tick(
        self,
        now: Any = None,
        *,
        batch_size: int = 200,
        limit: int | None = None,
        on_batch: Callable[[TickReport], None] | None = None,
    ) -> TickReport:
        """Mark redeemed codes, apply stop rules, recover crashed rows, then send what is due."""
        now = to_utc_naive(now)
        self.db.create_schema()
        report = TickReport(now=now.isoformat())
        # codes intake saw at checkout are marked used first, so their sequences stop now
        report.codes_redeemed = len(mark_redeemed_from_events(self.db, now, only_new=True).redeemed)
        stops = apply_stop_rules(self.db, now)
        report.stopped_enrolments = stops["reactivated"] + stops["code_redeemed"]
        report.cancelled += stops["cancelled_messages"]
        self.recover(now, report)
        if on_batch:
            on_batch(report)
        done = 0
        while limit is None or done < limit:
            n = batch_size if limit is None else min(batch_size, limit - done)
            rows = self._claim(now, n)
            if not rows:
                break
            done += len(rows)
            report.batches += 1
            report.claimed += len(rows)
            progressed = self._process(rows, now, report)
            if on_batch:
                on_batch(report)
            if not progressed:
                break
        return report

    def recover(self, now: datetime, report: TickReport | None = None) -> TickReport:
        """Return expired ``claimed`` rows to pending; reconcile expired ``sending`` rows."""
        report = report or TickReport(now=now.isoformat())
        wall = time.time()
        me = self.worker_id
        with self.db.engine.begin() as conn:
            res = conn.execute(
                outbox.update()
                .where(outbox.c.state == "claimed", outbox.c.lease_until < wall)
                .values(state="pending", lease_owner=None, lease_until=None, updated_at=now)
            )
            report.recovered_claimed += res.rowcount or 0
            # only rows of channels this dispatcher has: it must be able to ask them
            conn.execute(
                outbox.update()
                .where(
                    outbox.c.state == "sending",
                    outbox.c.lease_until < wall,
                    outbox.c.channel.in_(list(self.channels)),
                )
                .values(lease_owner=me, lease_until=wall + self.settings.lease_seconds)
            )
            stuck = conn.execute(
                sa.select(outbox.c.id, outbox.c.idempotency_key, outbox.c.channel).where(
                    outbox.c.state == "sending", outbox.c.lease_owner == me
                )
            ).all()
        if not stuck:
            return report
        by_channel: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for rid, key, ch in stuck:
            by_channel[ch].append((rid, key))
        updates: list[tuple[list[int], dict[str, Any]]] = []
        for ch, items in by_channel.items():
            channel = self.channels.get(ch)
            answers = channel.reconcile([k for _, k in items]) if channel else {}
            sent, pending, unknown = [], [], []
            for rid, key in items:
                a = answers.get(key)
                (sent if a is True else pending if a is False else unknown).append(rid)
            report.reconciled_sent += len(sent)
            report.reconciled_pending += len(pending)
            report.reconciled_uncertain += len(unknown)
            free = {"lease_owner": None, "lease_until": None, "updated_at": now}
            updates.append(
                (sent, {"state": "sent", "sent_at": now, "provider_id": "reconciled", **free})
            )
            updates.append((pending, {"state": "pending", "next_attempt_at": now, **free}))
            if self.settings.on_uncertain == "resend":
                updates.append((unknown, {"state": "pending", "next_attempt_at": now, **free}))
            else:
                updates.append(
                    (
                        unknown,
                        {
                            "state": "dead",
                            "last_error": "delivery uncertain after a crash and the channel cannot confirm it; "
                            "not resent to avoid a duplicate (settings.on_uncertain='dead')",
                            **free,
                        },
                    )
                )
        with self.db.engine.begin() as conn:
            for ids, values in updates:
                for i in range(0, len(ids), _CHUNK):
                    conn.execute(
                        outbox.update()
                        .where(
                            outbox.c.id.in_(ids[i : i + _CHUNK]),
                            outbox.c.lease_owner == me,
                            outbox.c.state == "sending",
                        )
                        .values(**values)
                    )
        return report

    # ------------------------------------------------------------------ claim
    def _claim(self, now: datetime, n: int) -> list[sa.Row]:
        me = self.worker_id
        chans = list(self.channels)
        sub = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.state == "pending",
                outbox.c.next_attempt_at <= now,
                outbox.c.channel.in_(chans),
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(n)
        )
        lease = time.time() + self.settings.lease_seconds
        with self.db.engine.begin() as conn:
            if self.db.dialect == "postgresql":
                # Two statements: PostgreSQL may rescan an IN (... LIMIT ... FOR UPDATE) subquery
                # per outer row and claim more than n rows. The row locks taken here hold until
                # commit, and SKIP LOCKED keeps concurrent workers on disjoint rows.
                ids = list(conn.execute(sub.with_for_update(skip_locked=True)).scalars())
                target = outbox.c.id.in_(ids)
            else:
                # SQLite: one statement, so the read and the write are one atomic step
                # under the database's write lock.
                target = outbox.c.id.in_(sub.scalar_subquery())
            conn.execute(
                outbox.update()
                .where(target, outbox.c.state == "pending")
                .values(state="claimed", lease_owner=me, lease_until=lease, updated_at=now),
            )
            rows = conn.execute(
                sa.select(outbox)
                .where(outbox.c.lease_owner == me, outbox.c.state == "claimed")
                .order_by(outbox.c.id)
            ).all()
        return rows

    # ------------------------------------------------------------------ process
    def _process(self, rows: list[sa.Row], now: datetime, report: TickReport) -> bool:
        st = self.settings
        me = self.worker_id
        cust_ids = sorted({r.customer_id for r in rows})
        enr_ids = sorted({r.enrolment_id for r in rows})
        cust_t = self.db.contract("customers")
        with self.db.engine.connect() as conn:
            enr = {
                e.enrolment_id: e
                for e in conn.execute(
                    sa.select(enrolments).where(enrolments.c.enrolment_id.in_(enr_ids))
                )
            }
            cust = {
                c.customer_id: c
                for c in conn.execute(
                    sa.select(
                        cust_t.c.customer_id,
                        cust_t.c.language,
                        cust_t.c.timezone,
                        cust_t.c.email,
                        cust_t.c.phone,
                        cust_t.c.email_opt_in,
                        cust_t.c.sms_opt_in,
                    ).where(cust_t.c.customer_id.in_(cust_ids))
                )
            }
            code_rows = {
                c.code: c
                for c in conn.execute(
                    sa.select(codes.c.code, codes.c.expires_at, codes.c.redeemed_at).where(
                        codes.c.code.in_([e.code for e in enr.values() if e.code])
                    )
                )
            }
            sup = conn.execute(
                sa.select(
                    suppression.c.customer_id,
                    suppression.c.address_hash,
                    suppression.c.channel,
                    suppression.c.reason,
                ).where(
                    sa.or_(
                        suppression.c.customer_id.in_(cust_ids),
                        suppression.c.address_hash.in_(_hashes(cust.values())),
                    ),
                    # every recorded opt-out counts, whatever its time: the web endpoint
                    # records at wall-clock time, a tick may run at an earlier logical `now`
                )
            ).all()
            recent = conn.execute(
                sa.select(outbox.c.customer_id, outbox.c.sent_at).where(
                    outbox.c.customer_id.in_(cust_ids),
                    outbox.c.state == "sent",
                    outbox.c.channel != "in_app",
                    outbox.c.sent_at > now - timedelta(days=7),
                    outbox.c.sent_at <= now,
                )
            ).all()
        sup_by_c: dict[str, dict[str, str]] = defaultdict(dict)
        sup_by_h: dict[str, dict[str, str]] = defaultdict(dict)
        for cid, h, ch, reason in sup:
            if cid:
                sup_by_c[cid][ch] = reason
            if h:
                sup_by_h[h][ch] = reason
        sent_times: dict[str, list[datetime]] = defaultdict(list)
        for cid, t in recent:
            sent_times[cid].append(t)

        finals: dict[str, list[tuple[int, str]]] = defaultdict(list)  # state -> (id, reason)
        deferred: list[tuple[int, datetime, str]] = []
        to_send: dict[str, list[tuple[sa.Row, OutboundMessage]]] = defaultdict(list)
        cap_day = int((st.frequency_cap or {}).get("per_day", 0) or 0)
        cap_week = int((st.frequency_cap or {}).get("per_week", 0) or 0)
        for r in rows:
            e = enr.get(r.enrolment_id)
            c = cust.get(r.customer_id)
            if e is None or e.status != "active":
                finals["cancelled"].append(
                    (
                        r.id,
                        f"enrolment {e.status if e else 'missing'}: {e.stop_reason if e else ''}",
                    )
                )
                continue
            code = code_rows.get(e.code) if e.code else None
            if code is not None and code.redeemed_at is not None and code.redeemed_at <= now:
                finals["cancelled"].append((r.id, "code redeemed"))
                continue
            if c is None:
                finals["dead"].append(
                    (r.id, f"customer {r.customer_id!r} is not in the store's customers table")
                )
                continue
            ch = r.channel
            to = c.email if ch == "email" else c.phone if ch == "sms" else None
            if ch == "email" and not (c.email_opt_in and c.email):
                finals["skipped"].append(
                    (r.id, "no e-mail consent" if c.email else "no e-mail address")
                )
                continue
            if ch == "sms" and not (c.sms_opt_in and c.phone):
                finals["skipped"].append((r.id, "no SMS consent" if c.phone else "no phone number"))
                continue
            reason = _suppressed(sup_by_c.get(r.customer_id, {}), ch) or (
                _suppressed(sup_by_h.get(address_hash(to), {}), ch) if to else None
            )
            if reason:
                finals["cancelled"].append((r.id, f"suppressed: {reason}"))
                continue
            if not valid_address(ch, to):
                what = "e-mail address" if ch == "email" else "E.164 phone number"
                finals["dead"].append(
                    (
                        r.id,
                        f"invalid {what} for customer {r.customer_id!r} (customers.{'email' if ch == 'email' else 'phone'})",
                    )
                )
                continue
            if ch != "in_app":
                allowed = next_allowed_time(now, c.timezone, st.quiet_hours, st.default_timezone)
                if allowed > now:
                    deferred.append((r.id, allowed, "quiet hours"))
                    continue
                times = sent_times[r.customer_id]
                later = _cap_free_at(times, now, cap_day, cap_week)
                if later is not None:
                    deferred.append((r.id, later, "frequency cap"))
                    continue
            try:
                ctx = self._context(r, e, code, c, now)
                rendered = self.renderer.render(ch, r.template, ctx)
            except RenderError as err:
                finals["dead"].append((r.id, f"render failed: {err}"))
                continue
            headers = {}
            if ch == "email":
                headers = {
                    "List-Unsubscribe": f"<{ctx['unsubscribe_url']}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                }
            if ch != "in_app":
                sent_times[r.customer_id].append(now)
            to_send[ch].append(
                (
                    r,
                    OutboundMessage(
                        r.idempotency_key,
                        r.customer_id,
                        ch,
                        to,
                        rendered.text,
                        rendered.subject,
                        rendered.html,
                        headers,
                    ),
                )
            )

        send_ids = [r.id for items in to_send.values() for r, _ in items]
        with self.db.engine.begin() as conn:
            updates = [
                {"_id": rid, "state": state, "next_attempt_at": None, "last_error": why}
                for state, items in finals.items()
                for rid, why in items
            ]
            updates += [
                {
                    "_id": rid,
                    "state": "pending",
                    "next_attempt_at": at,
                    "last_error": f"deferred: {why}",
                }
                for rid, at, why in deferred
            ]
            _bulk_update(conn, updates, me, "claimed", now)
            for i in range(0, len(send_ids), _CHUNK):
                conn.execute(
                    outbox.update()
                    .where(
                        outbox.c.id.in_(send_ids[i : i + _CHUNK]),
                        outbox.c.lease_owner == me,
                        outbox.c.state == "claimed",
                    )
                    .values(state="sending", updated_at=now)
                )
            mine = set()
            for i in range(0, len(send_ids), _CHUNK):
                mine |= set(
                    conn.execute(
                        sa.select(outbox.c.id, outbox.c.lease_until).where(
                            outbox.c.id.in_(send_ids[i : i + _CHUNK]),
                            outbox.c.lease_owner == me,
                            outbox.c.state == "sending",
                        )
                    ).all()
                )
        report.dead += len(finals.get("dead", []))
        report.cancelled += len(finals.get("cancelled", []))
        report.skipped += len(finals.get("skipped", []))
        report.deferred += len(deferred)
        if not mine:
            return bool(finals or deferred)
        mine_ids = {rid for rid, _ in mine}
        lease_until = min(lu for _, lu in mine)
        margin = min(10.0, self.settings.lease_seconds / 4)
        deadline = lease_until - margin

        results: list[tuple[sa.Row, SendResult]] = []
        for ch, items in to_send.items():
            items = [(r, m) for r, m in items if r.id in mine_ids]
            if not items:
                continue
            try:
                res = self.channels[ch].send([m for _, m in items], deadline=deadline)
            except Exception as e:  # a channel bug must not lose the batch: treat as uncertain
                res = [
                    SendResult(
                        m.idempotency_key,
                        "uncertain",
                        f"channel raised {type(e).__name__}: {redact(str(e))}",
                    )
                    for _, m in items
                ]
            results += list(zip([r for r, _ in items], res, strict=True))
        self._record(results, now, report)
        return True

    def _record(
        self, results: list[tuple[sa.Row, SendResult]], now: datetime, report: TickReport
    ) -> None:
        st = self.settings
        updates: list[dict[str, Any]] = []
        for r, res in results:
            u: dict[str, Any] = {"_id": r.id, "next_attempt_at": None, "last_error": res.error}
            if res.status == "sent":
                report.sent += 1
                u.update(state="sent", attempts=(r.attempts or 0) + 1, sent_at=now)
                u["provider_id"] = res.provider_id[:200] if res.provider_id else None
            elif res.status == "not_attempted":
                report.not_attempted += 1
                u.update(state="pending", next_attempt_at=now)
            elif res.status == "uncertain":
                report.uncertain += 1  # stays 'sending' under its lease; recovery reconciles it
                u.update(state="sending")
            else:
                attempts = (r.attempts or 0) + 1
                if res.permanent or attempts >= st.max_attempts:
                    report.dead += 1
                    why = (
                        res.error
                        if res.permanent
                        else f"gave up after {attempts} attempts: {res.error}"
                    )
                    u.update(state="dead", attempts=attempts, last_error=why)
                else:
                    report.retried += 1
                    wait = timedelta(minutes=st.backoff_minutes * 2 ** (attempts - 1))
                    u.update(state="pending", attempts=attempts, next_attempt_at=now + wait)
            updates.append(u)
        with self.db.engine.begin() as conn:
            _bulk_update(conn, updates, self.worker_id, "sending", now)

    # ------------------------------------------------------------------ context
    def _context(
        self, r: sa.Row, e: sa.Row, code: sa.Row | None, c: sa.Row, now: datetime
    ) -> dict[str, Any]:
        st = self.settings
        if self._secret is None:
            self._secret = get_unsubscribe_secret(self.db)
        token = make_unsubscribe_token(
            self._secret, r.customer_id, r.channel if r.channel != "in_app" else "email", now
        )
        seq = (
            self.book.get(r.sequence_id)
            if any(s.id == r.sequence_id for s in self.book.sequences)
            else None
        )
        step_day = seq.steps[r.step_index].day if seq and r.step_index < len(seq.steps) else None
        expires = code.expires_at if code is not None else None
        return {
            "lang": (c.language or "en").lower(),
            "segment": e.segment,
            "reason": e.cancel_reason,
            "reason_source": e.reason_source,
            "offer": {
                "type": e.offer_type,
                "discount_pct": float(e.discount_pct),
                "discount_months": int(e.discount_months),
            },
            "code": e.code,
            "code_expires": expires.date().isoformat() if expires else None,
            "days_left": max(0, (expires - now).days) if expires else None,
            "plan": {"tier": e.plan_tier or ""},
            "brand": {"name": st.brand_name, "url": st.product_url},
            "unsubscribe_url": f"{st.unsubscribe_base_url}?t={token}",
            "step": {"name": r.step_name, "index": r.step_index, "day": step_day},
            "variant": e.message_variant,
        }


def _bulk_update(
    conn: sa.Connection, updates: list[dict[str, Any]], owner: str, from_state: str, now: datetime
) -> None:
    """Apply per-row updates with executemany, grouped by the set of columns they change.

    Every update is conditional on the row still being ``from_state`` under
    this worker's lease, so a row recovered by another worker is never
    overwritten. A row that stays ``sending`` keeps its lease.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for u in updates:
        u = {k: v for k, v in u.items() if not (k == "next_attempt_at" and v is None)}
        groups[(*sorted(u), u.get("state"))].append(u)
    for _cols, rows in groups.items():
        keep_lease = from_state == "sending" and rows[0].get("state") == "sending"
        values: dict[str, Any] = {c: sa.bindparam(f"v_{c}") for c in rows[0] if c != "_id"}
        values["updated_at"] = now
        if not keep_lease:
            values.update(lease_owner=None, lease_until=None)
        stmt = (
            outbox.update()
            .where(
                outbox.c.id == sa.bindparam("b_id"),
                outbox.c.lease_owner == owner,
                outbox.c.state == from_state,
            )
            .values(**values)
        )
        params = [{("b_id" if k == "_id" else f"v_{k}"): v for k, v in r.items()} for r in rows]
        conn.execute(stmt, params)


def _hashes(customers: Any) -> list[str]:
    out = []
    for c in customers:
        for a in (c.email, c.phone):
            if a:
                out.append(address_hash(a))
    return out


def _suppressed(entries: dict[str, str], channel: str) -> str | None:
    return entries.get("*") or entries.get(channel)


def _cap_free_at(
    times: list[datetime], now: datetime, per_day: int, per_week: int
) -> datetime | None:
    """None when a message may go now; else the earliest time the frequency cap allows."""
    later = None
    day = sorted(t for t in times if t > now - timedelta(days=1))
    if per_day and len(day) >= per_day:
        later = day[len(day) - per_day] + timedelta(days=1)
    week = sorted(t for t in times if t > now - timedelta(days=7))
    if per_week and len(week) >= per_week:
        w = week[len(week) - per_week] + timedelta(days=7)
        later = w if later is None else max(later, w)
    return later


def outbox_counts(db: Any) -> dict[str, int]:
    """Rows of the outbox by state."""
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    db.create_schema()
    with db.engine.connect() as conn:
        return {
            s: n
            for s, n in conn.execute(
                sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state)
            )
        }


def dead_letters(db: Any, limit: int = 100) -> list[dict[str, Any]]:
    """The dead letters with their reasons (no addresses: the reasons never contain PII)."""
    db = db if isinstance(db, DispatchDB) else DispatchDB(db)
    db.create_schema()
    q = (
        sa.select(
            outbox.c.idempotency_key,
            outbox.c.customer_id,
            outbox.c.channel,
            outbox.c.step_name,
            outbox.c.attempts,
            outbox.c.last_error,
        )
        .where(outbox.c.state == "dead")
        .order_by(outbox.c.id)
        .limit(limit)
    )
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
