"""``winback intake``: ingest provider webhook bodies, replay dead letters, health, receiver.

Forms::

    winback intake PROVIDER FILE... [--store URL]     # same as `winback intake ingest ...`
    winback intake replay [--id N ...] [--store URL]
    winback intake health [--store URL] [--json]
    winback intake serve --host 127.0.0.1 --port 8080 [--store URL]

``PROVIDER`` is ``stripe chargebee recurly apple google csv``; each FILE is
one webhook body exactly as the provider sends it (Recurly and Google: the
envelope of ``docs/intake.md``; CSV: an export, one event per row).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from typer.core import TyperGroup

__all__ = ["register", "intake_app"]

_SUBCOMMANDS = ("ingest", "replay", "health", "serve")


class _IngestByDefault(TyperGroup):
    """A group whose default command is ``ingest``: ``intake stripe a.json`` works."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201 - click signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["ingest", *args]
        return super().parse_args(ctx, args)


intake_app = typer.Typer(
    cls=_IngestByDefault,
    help="Ingest billing webhooks (stripe, chargebee, recurly, apple, google, csv) into the store.",
    no_args_is_help=True,
)

_STORE = typer.Option(
    None, "--store", envvar="WINBACK_STORE_URL", help="SQLAlchemy URL of the store."
)
_APPLE_ROOT = typer.Option(
    None,
    "--apple-root",
    help="Apple root certificate (PEM/DER) to verify App Store JWS signatures.",
)


def _ledger(store: str | None, apple_root: Path | None = None, stripe_secret: str | None = None):  # noqa: ANN202
    from winback_ml.exceptions import IntakeError
    from winback_ml.intake.ledger import IntakeLedger

    try:
        return IntakeLedger(store, apple_root=apple_root, stripe_secret=stripe_secret)
    except IntakeError as e:  # e.g. --apple-root missing or not a certificate
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@intake_app.command("ingest")
def ingest(
    provider: str = typer.Argument(..., help="stripe | chargebee | recurly | apple | google | csv"),
    files: list[Path] = typer.Argument(
        ..., help="Webhook body files (one body per file) or CSV exports."
    ),
    store: str | None = _STORE,
    apple_root: Path | None = _APPLE_ROOT,
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when anything was dead-lettered."),
) -> None:
    """Ingest FILE... of PROVIDER; print accepted, duplicate and dead-lettered counts."""
    import sqlalchemy as sa

    from winback_ml.exceptions import IntakeError
    from winback_ml.intake.ledger import inbox_table
    from winback_ml.intake.normalize import check_provider

    try:
        provider = check_provider(provider)
    except IntakeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        typer.echo(f"error: no such file(s): {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    led = _ledger(store, apple_root)
    outcomes = []
    for f in files:
        outcomes.extend(led.ingest_file(provider, f))
    # a payload parked for its subscription may have gone through later in the run
    ids = [o.inbox_id for o in outcomes if o.status == "dead_lettered" and o.inbox_id is not None]
    final: dict[int, str] = {}
    if ids:
        with led.engine.connect() as conn:
            final = dict(
                conn.execute(
                    sa.select(inbox_table.c.inbox_id, inbox_table.c.status).where(
                        inbox_table.c.inbox_id.in_(ids)
                    )
                ).all()
            )
    counts = {"accepted": 0, "duplicate": 0, "dead_lettered": 0}
    dead = []
    for o in outcomes:
        st = final.get(o.inbox_id, o.status) if o.status == "dead_lettered" else o.status
        counts[st if st in counts else "dead_lettered"] += 1
        if st == "dead_lettered":
            dead.append(o)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **counts,
                    "dead_letters": [
                        {"label": o.label, "kind": o.kind, "reason": o.reason} for o in dead
                    ],
                }
            )
        )
    else:
        typer.echo(f"accepted: {counts['accepted']}")
        typer.echo(f"duplicate: {counts['duplicate']}")
        typer.echo(f"dead-lettered: {counts['dead_lettered']}")
        for o in dead:
            typer.echo(f"  {o.label or '-'} [{o.kind}] {o.reason}")
    if strict and counts["dead_lettered"]:
        raise typer.Exit(1)


@intake_app.command("replay")
def replay(
    ids: list[int] = typer.Option(None, "--id", help="Dead letter id(s); default: all open ones."),
    store: str | None = _STORE,
    apple_root: Path | None = _APPLE_ROOT,
) -> None:
    """Retry open dead letters (after a fix); print how many went through."""
    led = _ledger(store, apple_root)
    outs = led.replay(ids or None)
    ok = sum(o.status in ("accepted", "duplicate") for o in outs)
    typer.echo(f"replayed: {len(outs)}")
    typer.echo(f"resolved: {ok}")
    typer.echo(f"still dead-lettered: {len(outs) - ok}")
    for o in outs:
        if o.status == "dead_lettered":
            typer.echo(f"  #{o.dead_letter_id} [{o.kind}] {o.reason}")


@intake_app.command("health")
def health(
    store: str | None = _STORE,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    top: int = typer.Option(20, "--top", help="Dead letters to list."),
) -> None:
    """Per source: volume, reject rate, last event (staleness); dead letters by MRR at stake."""
    led = _ledger(store)
    rep = led.health()
    if as_json:
        typer.echo(
            json.dumps(
                {"now": rep.now, "sources": rep.sources, "dead_letters": rep.dead_letters[:top]},
                default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v),
            )
        )
    else:
        typer.echo(rep.to_text(top=top))


@intake_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    store: str | None = _STORE,
    apple_root: Path | None = _APPLE_ROOT,
    stripe_secret: str | None = typer.Option(
        None,
        "--stripe-secret",
        envvar="WINBACK_STRIPE_WEBHOOK_SECRET",
        help="Stripe endpoint secret (whsec_...); when set, signatures are required.",
    ),
    allow_unauthenticated: list[str] = typer.Option(
        [],
        "--allow-unauthenticated",
        help="Accept this source without credentials (repeatable; e.g. csv on a loopback-only "
        "test setup). Added to WINBACK_RECEIVER_ALLOW_UNAUTHENTICATED.",
    ),
) -> None:
    """Run the webhook receiver (POST /webhooks/{provider}, GET /healthz).

    Every source is authenticated, and one without credentials is refused (403)
    unless allowed unauthenticated. Credentials come from the environment, never
    the command line: WINBACK_STRIPE_WEBHOOK_SECRET, WINBACK_CHARGEBEE_WEBHOOK_USERNAME
    and WINBACK_CHARGEBEE_WEBHOOK_PASSWORD (basic auth), WINBACK_RECURLY_WEBHOOK_SECRET,
    WINBACK_GOOGLE_PUSH_TOKEN (the push URL's ?token=), WINBACK_CSV_UPLOAD_TOKEN (bearer);
    Apple needs --apple-root. See docs/intake.md.
    """
    import dataclasses

    import uvicorn

    from winback_ml.intake.auth import ReceiverAuth, env_value
    from winback_ml.intake.receiver import create_app

    auth = ReceiverAuth.from_env()
    if allow_unauthenticated:
        allowed = set(auth.allow_unauthenticated) | set(allow_unauthenticated)
        auth = dataclasses.replace(auth, allow_unauthenticated=allowed)
    # a secret mounted from a file keeps its trailing line break; Stripe never signs with one
    secret = (stripe_secret or env_value(os.environ, "WINBACK_STRIPE_WEBHOOK_SECRET")).rstrip(
        "\r\n"
    )
    led = _ledger(store, apple_root, secret or None)
    app = create_app(led, auth=auth)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


def register(app: typer.Typer) -> None:
    """Add the ``intake`` group to the ``winback`` command."""
    app.add_typer(intake_app, name="intake")
