"""``winback dispatch ...``: enrol targets, send what is due, codes, unsubscribes.

Heavy imports happen inside the commands. Secrets come from the environment
(``WINBACK_SMTP_PASSWORD``, ``WINBACK_SMS_TOKEN``, ``WINBACK_UNSUBSCRIBE_SECRET``),
never from the command line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

__all__ = ["register", "dispatch_app"]

dispatch_app = typer.Typer(
    name="dispatch",
    help="Turn scored targets into messages: enrol, tick (send what is due), codes, unsubscribes.",
    no_args_is_help=True,
)

_STORE = typer.Option(
    None,
    "--store",
    help="SQLAlchemy URL of the store (default: WINBACK_STORE_URL or ./data/winback.db).",
)
_NOW = typer.Option(
    None, "--now", help="Logical time, ISO-8601 (naive = UTC). Default: the current time."
)
_SEQ = typer.Option(
    None, "--sequences", help="Sequences YAML (default: the package's default.yaml)."
)


def _echo(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=1, default=str))


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


@dispatch_app.command("init")
def init_cmd(store: str = _STORE) -> None:
    """Create the dispatch tables (and the contract tables) in the store."""
    from winback_ml.data.store import mask_url_password
    from winback_ml.dispatch.schema import DispatchDB

    db = DispatchDB(store)
    db.create_schema()
    typer.echo(f"dispatch tables ready in {mask_url_password(db.store.url)}")


def _enrol(targets: Path | None, from_queue: bool, write: bool, **kw: Any) -> None:
    from winback_ml.config import load_config
    from winback_ml.dispatch.enrol import (
        enrol_in_chunks,
        enrol_targets,
        plan_enrolment,
        read_targets,
    )
    from winback_ml.dispatch.schema import DispatchDB
    from winback_ml.dispatch.sequences import load_sequences
    from winback_ml.exceptions import WinbackError

    chunk = kw.pop("chunk", None)
    try:
        db = DispatchDB(kw.pop("store"))
        book = load_sequences(kw.pop("sequences"))
        config = load_config(kw.pop("config"))
        if from_queue:
            from winback_ml.dispatch.autolaunch import enrol_from_queue

            plan = enrol_from_queue(db, kw.pop("now"), book=book, config=config, write=write, **kw)
        else:
            if targets is None:
                raise typer.BadParameter("give TARGETS.csv or --from-queue")
            t = read_targets(targets)
            if write and chunk:
                _echo(
                    enrol_in_chunks(
                        db, t, kw.pop("now"), chunk=chunk, book=book, config=config, **kw
                    )
                )
                return
            fn = enrol_targets if write else plan_enrolment
            plan = fn(db, t, kw.pop("now"), book=book, config=config, **kw)
    except WinbackError as e:
        _fail(e)
    _echo(plan.summary())


@dispatch_app.command("plan")
def plan_cmd(
    targets: Path = typer.Argument(None, help="targets.csv from `winback score`."),
    from_queue: bool = typer.Option(False, "--from-queue", help="Plan the intake queue instead."),
    store: str = _STORE,
    now: str = _NOW,
    campaign: str = typer.Option(
        None, "--campaign", help="Campaign id (default winback-YYYYMMDD)."
    ),
    holdout: float = typer.Option(0.1, "--holdout", help="Share never contacted (control)."),
    sequences: Path = _SEQ,
    config: Path = typer.Option(None, "--config", help="Business config YAML (contact costs)."),
) -> None:
    """Show what `enrol` would write (enrolments, messages, codes), without writing."""
    _enrol(
        targets,
        from_queue,
        False,
        store=store,
        now=now,
        campaign_id=campaign,
        holdout=holdout,
        sequences=sequences,
        config=config,
    )


@dispatch_app.command("enrol")
def enrol_cmd(
    targets: Path = typer.Argument(
        None, help="targets.csv from `winback score` (contact=True rows are enrolled)."
    ),
    from_queue: bool = typer.Option(
        False, "--from-queue", help="Enrol the cancellations queued by intake."
    ),
    store: str = _STORE,
    now: str = _NOW,
    campaign: str = typer.Option(
        None, "--campaign", help="Campaign id (default winback-YYYYMMDD)."
    ),
    holdout: float = typer.Option(0.1, "--holdout", help="Share never contacted (control)."),
    sequences: Path = _SEQ,
    config: Path = typer.Option(None, "--config", help="Business config YAML (contact costs)."),
    chunk: int = typer.Option(
        None, "--chunk", help="Targets per transaction (bounds memory for huge lists)."
    ),
) -> None:
    """Enrol targets: codes, outbox rows and campaign assignments, in one transaction."""
    _enrol(
        targets,
        from_queue,
        True,
        store=store,
        now=now,
        campaign_id=campaign,
        holdout=holdout,
        sequences=sequences,
        config=config,
        chunk=chunk,
    )


def build_channels(
    db: Any,
    email: str,
    sms: str,
    in_app: str,
    dry_run_dir: Path,
    smtp_host: str,
    smtp_port: int,
    smtp_user: str | None,
    starttls: bool,
    from_address: str,
    sms_url: str,
    sms_sid: str | None,
    sms_from: str | None,
    webhook_url: str | None,
) -> dict[str, Any]:
    """Channels from command-line choices (``dry-run`` writes files; ``none`` leaves rows pending)."""
    from winback_ml.dispatch import channels as c

    out: dict[str, Any] = {}
    if email == "dry-run":
        out["email"] = c.DryRunChannel(dry_run_dir, "email")
    elif email == "smtp":
        out["email"] = c.SMTPEmailChannel(
            smtp_host,
            smtp_port,
            from_address,
            username=smtp_user,
            password=os.environ.get("WINBACK_SMTP_PASSWORD"),
            starttls=starttls,
        )
    if sms == "dry-run":
        out["sms"] = c.DryRunChannel(dry_run_dir, "sms")
    elif sms == "twilio":
        out["sms"] = c.TwilioSMSChannel(
            sms_url, sms_sid or "", os.environ.get("WINBACK_SMS_TOKEN", ""), sms_from or ""
        )
    if in_app == "dry-run":
        out["in_app"] = c.DryRunChannel(dry_run_dir, "in_app")
    elif in_app == "table":
        out["in_app"] = c.TableInAppChannel(db)
    elif in_app == "webhook":
        if not webhook_url:
            raise typer.BadParameter("--in-app webhook needs --webhook-url")
        out["in_app"] = c.WebhookInAppChannel(webhook_url)
    return out


@dispatch_app.command("tick")
def tick_cmd(
    now: str = _NOW,
    store: str = _STORE,
    email: str = typer.Option("dry-run", "--email", help="dry-run | smtp | none"),
    sms: str = typer.Option("dry-run", "--sms", help="dry-run | twilio | none"),
    in_app: str = typer.Option("dry-run", "--in-app", help="dry-run | table | webhook | none"),
    dry_run_dir: Path = typer.Option(
        Path("data/dispatch/dry_run"), "--dry-run-dir", help="Where dry-run messages are written."
    ),
    smtp_host: str = typer.Option("127.0.0.1", "--smtp-host"),
    smtp_port: int = typer.Option(25, "--smtp-port"),
    smtp_user: str = typer.Option(
        None, "--smtp-user", help="AUTH user; the password comes from WINBACK_SMTP_PASSWORD."
    ),
    starttls: bool = typer.Option(False, "--starttls"),
    from_address: str = typer.Option(
        None, "--from", help="Sender address (default: settings.from_address)."
    ),
    sms_url: str = typer.Option("https://api.twilio.com", "--sms-url"),
    sms_sid: str = typer.Option(
        None, "--sms-sid", help="Account SID; the token comes from WINBACK_SMS_TOKEN."
    ),
    sms_from: str = typer.Option(None, "--sms-from", help="Sender number (E.164)."),
    webhook_url: str = typer.Option(None, "--webhook-url", help="In-app webhook URL."),
    batch_size: int = typer.Option(200, "--batch-size"),
    limit: int = typer.Option(None, "--limit", help="Send at most this many messages."),
    lease_seconds: float = typer.Option(
        None, "--lease-seconds", help="Override settings.lease_seconds."
    ),
    on_uncertain: str = typer.Option(
        None, "--on-uncertain", help="dead | resend (override settings)."
    ),
    sequences: Path = _SEQ,
    templates: Path = typer.Option(
        None, "--templates", help="Folder of templates that override the package's."
    ),
    progress: bool = typer.Option(False, "--progress", help="Print one JSON line per batch."),
) -> None:
    """Send what is due at NOW: stop rules, crash recovery, then batches through the channels."""
    import dataclasses

    from winback_ml.dispatch.outbox import Dispatcher
    from winback_ml.dispatch.schema import DispatchDB
    from winback_ml.dispatch.sequences import load_sequences
    from winback_ml.dispatch.templates import TemplateRenderer
    from winback_ml.exceptions import WinbackError

    try:
        db = DispatchDB(store)
        db.create_schema()
        book = load_sequences(sequences)
        settings = book.settings
        over = {}
        if lease_seconds is not None:
            over["lease_seconds"] = lease_seconds
        if on_uncertain is not None:
            over["on_uncertain"] = on_uncertain
        if over:
            settings = dataclasses.replace(settings, **over)
        chans = build_channels(
            db,
            email,
            sms,
            in_app,
            dry_run_dir,
            smtp_host,
            smtp_port,
            smtp_user,
            starttls,
            from_address or settings.from_address,
            sms_url,
            sms_sid,
            sms_from,
            webhook_url,
        )
        disp = Dispatcher(
            db, chans, book=book, settings=settings, renderer=TemplateRenderer(templates)
        )
        cb = (lambda r: typer.echo(json.dumps(r.as_dict()))) if progress else None
        report = disp.tick(now, batch_size=batch_size, limit=limit, on_batch=cb)
        for ch in chans.values():
            ch.close()
    except WinbackError as e:
        _fail(e)
    _echo(report.as_dict())


@dispatch_app.command("status")
def status_cmd(store: str = _STORE) -> None:
    """Outbox rows by state."""
    from winback_ml.dispatch.outbox import outbox_counts

    _echo(outbox_counts(store))


@dispatch_app.command("dead-letters")
def dead_letters_cmd(store: str = _STORE, limit: int = typer.Option(100, "--limit")) -> None:
    """Messages that will not be sent, with the reason."""
    from winback_ml.dispatch.outbox import dead_letters

    _echo(dead_letters(store, limit))


@dispatch_app.command("export-codes")
def export_codes_cmd(
    out: Path = typer.Argument(..., help="CSV to write."),
    store: str = _STORE,
    campaign: str = typer.Option(None, "--campaign"),
    include_used: bool = typer.Option(
        False, "--include-used", help="Also redeemed and expired codes."
    ),
    now: str = _NOW,
) -> None:
    """Write the discount codes as a CSV for the billing system (code, percent_off, expiry, ...)."""
    from winback_ml.dispatch._util import to_utc_naive
    from winback_ml.dispatch.codes import export_codes_csv
    from winback_ml.dispatch.schema import DispatchDB

    n = export_codes_csv(
        DispatchDB(store),
        out,
        campaign_id=campaign,
        only_unredeemed=not include_used,
        now=to_utc_naive(now),
    )
    typer.echo(f"{n} codes written to {out}")


@dispatch_app.command("redeem-from-events")
def redeem_cmd(store: str = _STORE, now: str = _NOW) -> None:
    """Mark codes used from events whose detail holds code:<CODE> (written by intake)."""
    from winback_ml.dispatch._util import to_utc_naive
    from winback_ml.dispatch.codes import mark_redeemed_from_events

    _echo(mark_redeemed_from_events(store, to_utc_naive(now)).counts())


@dispatch_app.command("unsubscribe")
def unsubscribe_cmd(token: str = typer.Argument(...), store: str = _STORE) -> None:
    """Apply an unsubscribe link's token (verifies its signature)."""
    from winback_ml.dispatch.policy import unsubscribe
    from winback_ml.dispatch.schema import DispatchDB
    from winback_ml.exceptions import WinbackError

    try:
        cid = unsubscribe(DispatchDB(store), token)
    except WinbackError as e:
        _fail(e)
    typer.echo(f"unsubscribed customer {cid}")


@dispatch_app.command("sms-inbound")
def sms_inbound_cmd(
    from_number: str = typer.Argument(...), body: str = typer.Argument(...), store: str = _STORE
) -> None:
    """Handle an inbound SMS (STOP withdraws SMS consent, START restores it); print the reply."""
    from winback_ml.dispatch.policy import handle_inbound_sms
    from winback_ml.dispatch.schema import DispatchDB

    reply = handle_inbound_sms(DispatchDB(store), from_number, body)
    typer.echo(reply or "(no action)")


@dispatch_app.command("serve")
def serve_cmd(
    store: str = _STORE,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8087, "--port"),
) -> None:
    """Serve the unsubscribe link (GET/POST /unsubscribe) and inbound SMS (POST /sms/inbound)."""
    import uvicorn

    from winback_ml.dispatch.web import make_app

    uvicorn.run(make_app(store), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add the ``dispatch`` group to the ``winback`` command."""
    app.add_typer(dispatch_app, name="dispatch")
