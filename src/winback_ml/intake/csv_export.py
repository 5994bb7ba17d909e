"""CSV exports (any billing system, or a manual log) to contract events.

A CSV export is a UTF-8 file with a header row; each data row is one event.
:func:`split_csv` cuts a file into one self-contained body per row (the header
plus that row), so each row is accepted, de-duplicated or dead-lettered on its
own and a bad row never blocks the good ones.

Columns (header names; order free; extra columns ignored)

============== ======== =======================================================
column         required meaning
============== ======== =======================================================
event_id       yes      unique idempotency key of the row
occurred_at    yes      ISO-8601 (naive = UTC) or unix seconds
customer_id    yes
subscription_id yes
event_type     yes      a contract event type
source         no       contract source; default ``manual``
amount         no       major units; refunds negative
currency       no       ISO 4217; required when ``amount`` is set
reason         no       canonical reason or free text (mapped by keywords)
detail         no       free code
plan_id, plan_tier, billing_interval, price, status, started_at,
current_period_end, email, cancel_comment: optional subscription/customer state
============== ======== =======================================================
"""

from __future__ import annotations

import csv
import io
from typing import Any

from winback_ml.data.contract import (
    BILLING_INTERVALS,
    EVENT_TYPES,
    SOURCES,
    SUBSCRIPTION_STATUSES,
)
from winback_ml.exceptions import IntakeError
from winback_ml.intake._common import (
    MAX_BODY_BYTES,
    Normalized,
    _short,
    from_iso,
    from_unix_seconds,
    make_event,
    monthly_mrr,
)
from winback_ml.intake.reasons import reason_from_text

__all__ = ["normalize_csv", "split_csv", "CSV_REQUIRED_COLUMNS"]

P = "csv"
CSV_REQUIRED_COLUMNS = ("event_id", "occurred_at", "customer_id", "subscription_id", "event_type")
_ENDS = {"cancelled": "cancelled", "expired": "expired"}


def split_csv(body: bytes | str) -> list[tuple[int, bytes]]:
    """Cut a CSV export into ``(line_number, header + row)`` bodies, one per data row.

    Raises
    ------
    IntakeError
        Not UTF-8, empty, or the header lacks a required column.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise IntakeError(
                f"{P}: file is not UTF-8 (byte {e.start}). Fix: export as UTF-8."
            ) from None
    else:
        text = body
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise IntakeError(f"{P}: the file is empty; expected a header row.") from None
    except csv.Error as e:
        raise IntakeError(f"{P}: header row is not valid CSV: {e}.") from None
    cols = [h.strip() for h in header]
    missing = [c for c in CSV_REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise IntakeError(
            f"{P}: header lacks required column(s) {missing}; got {cols}. "
            f"Fix: export at least {list(CSV_REQUIRED_COLUMNS)}."
        )
    out: list[tuple[int, bytes]] = []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            line = reader.line_num
            out.append((line, f"__csv_error__,{e}".encode()))
            continue
        if not row or all(not c.strip() for c in row):
            continue
        buf.seek(0)
        buf.truncate()
        w.writerow(cols)
        w.writerow(row)
        out.append((reader.line_num, buf.getvalue().encode("utf-8")))
    return out


def _num(v: str, col: str, row_id: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise IntakeError(
            f"{P}: row {row_id!r} column '{col}' is {_short(v)}; expected a number."
        ) from None
    if x != x or x in (float("inf"), float("-inf")):
        raise IntakeError(
            f"{P}: row {row_id!r} column '{col}' is {_short(v)}; expected a finite number."
        )
    return x


def _ts(v: str, col: str) -> Any:
    s = v.strip()
    if s.lstrip("-").isdigit():
        return from_unix_seconds(int(s), P, col)
    return from_iso(s, P, col)


def normalize_csv(body: bytes | str, **_: Any) -> Normalized:
    """Normalise one CSV row body (header + one row, as :func:`split_csv` makes).

    Raises
    ------
    IntakeError
        Wrong number of fields, missing ids, bad enum, number or timestamp.
    """
    if isinstance(body, bytes):
        if len(body) > MAX_BODY_BYTES:
            raise IntakeError(
                f"{P}: row body is {len(body)} bytes; expected at most {MAX_BODY_BYTES}."
            )
        if body.startswith(b"__csv_error__,"):
            raise IntakeError(f"{P}: row is not valid CSV: {body[14:].decode('utf-8', 'replace')}.")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise IntakeError(f"{P}: row is not UTF-8.") from None
    else:
        text = body
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise IntakeError(f"{P}: row is not valid CSV: {e}.") from None
    rows = [r for r in rows if r]
    if len(rows) != 2:
        raise IntakeError(f"{P}: expected a header and exactly one data row; got {len(rows)} rows.")
    header, row = [h.strip() for h in rows[0]], rows[1]
    if len(row) != len(header):
        raise IntakeError(
            f"{P}: data row has {len(row)} fields; the header has {len(header)}. "
            "Fix: quote fields that contain commas."
        )
    r = {h: v.strip() for h, v in zip(header, row, strict=True)}
    eid = r.get("event_id", "")
    for c in CSV_REQUIRED_COLUMNS:
        if not r.get(c):
            raise IntakeError(f"{P}: row {eid or '?'!r} column '{c}' is empty; it is required.")
    et = r["event_type"]
    if et not in EVENT_TYPES:
        raise IntakeError(
            f"{P}: row {eid!r} event_type {_short(et)}; expected one of {list(EVENT_TYPES)}."
        )
    source = r.get("source") or "manual"
    if source not in SOURCES:
        raise IntakeError(
            f"{P}: row {eid!r} source {_short(source)}; expected one of {list(SOURCES)}."
        )
    ts = _ts(r["occurred_at"], "occurred_at")
    amount = _num(r["amount"], "amount", eid) if r.get("amount") else None
    currency = r.get("currency") or None
    reason = None
    if et in ("cancelled", "expired", "cancel_requested"):
        reason = reason_from_text(r.get("reason"))
    n = Normalized(P, source, eid, et, ts, source_doc=r)
    cid, sid = r["customer_id"], r["subscription_id"]
    n.events.append(
        make_event(
            eid,
            ts,
            cid,
            sid,
            source,
            et,
            amount=amount,
            currency=currency,
            reason=reason,
            detail=r.get("detail") or None,
        )
    )
    st: dict[str, Any] = {"subscription_id": sid, "customer_id": cid, "source": source}
    for c in ("plan_id", "plan_tier"):
        if r.get(c):
            st[c] = r[c]
    if r.get("billing_interval"):
        if r["billing_interval"] not in BILLING_INTERVALS:
            raise IntakeError(
                f"{P}: row {eid!r} billing_interval {_short(r['billing_interval'])}; expected month/year."
            )
        st["billing_interval"] = r["billing_interval"]
    if r.get("price"):
        st["price"] = _num(r["price"], "price", eid)
        if currency:
            st["currency"] = currency.upper()
        st["mrr"] = monthly_mrr(st["price"], st.get("billing_interval"))
    if r.get("status"):
        if r["status"] not in SUBSCRIPTION_STATUSES:
            raise IntakeError(
                f"{P}: row {eid!r} status {_short(r['status'])}; expected one of {list(SUBSCRIPTION_STATUSES)}."
            )
        st["status"] = r["status"]
    elif et in _ENDS:
        st["status"] = _ENDS[et]
    elif et in ("subscribed", "reactivated", "renewed", "payment_recovered"):
        st["status"] = "active"
    elif et == "payment_failed":
        st["status"] = "past_due"
    for c in ("started_at", "current_period_end"):
        if r.get(c):
            st[c] = _ts(r[c], c)
    if et == "subscribed":
        st.setdefault("started_at", ts)
    if et in _ENDS:
        st.update(ended_at=ts, cancel_reason=reason)
        if r.get("cancel_comment"):
            st["cancel_comment"] = r["cancel_comment"]
    elif et == "cancel_requested":
        st["cancel_requested_at"] = ts
        st["cancel_reason"] = reason
    elif et in ("reactivated", "subscribed"):
        st.update(ended_at=None, cancel_requested_at=None, cancel_reason=None, cancel_comment=None)
    n.subscription = st
    n.customer = {"customer_id": cid}
    if r.get("email"):
        n.customer["email"] = r["email"]
    for c in ("email_opt_in", "sms_opt_in"):
        if r.get(c):
            n.customer[c] = r[c].lower() in ("true", "1", "yes")
    return n
