"""The webhook receiver: an ASGI (Starlette) app over an :class:`IntakeLedger`.

Routes
------
``POST /webhooks/{provider}``
    ``provider`` in ``stripe chargebee recurly apple google csv``. The caller
    is authenticated first (:mod:`winback_ml.intake.auth`: Stripe signature,
    Apple JWS chain, Chargebee HTTP Basic, Recurly signature, Google push
    token, CSV bearer token); a source with nothing configured is refused
    unless it is listed in ``allow_unauthenticated``. The body is
    read up to :data:`~winback_ml.intake.MAX_BODY_BYTES` (+1 byte to detect
    excess), **stored in the inbox and committed first**, then processed.
    Answers (JSON ``{"status", "delivery_id", "events", "enqueued", "reason"}``):

    * 200 ``accepted``; 200 ``duplicate`` (already have it: the provider may
      stop retrying);
    * 200 ``dead_lettered`` for a payload that is stored but cannot be taken
      (it waits in ``intake_dead_letters`` for a fix and ``winback intake
      replay``; retrying the same bytes would not help);
    * 400 for a bad or missing Stripe signature when a secret is configured
      (dead-lettered too, kind ``signature``);
    * 401 for missing or wrong credentials of the other sources, 403 for a
      source with nothing configured (secure by default): refused before
      anything is stored, the reason says what to fix (never the secret);
    * 413 for a body over the limit (its first 64 KiB are dead-lettered);
    * 404 for an unknown provider.
``GET /healthz``
    200 ``{"status": "ok", "pending": n}`` when the store answers, else 503.

On start-up the app logs, per source, how it is authenticated (a WARNING for
every source that is refused or accepted unauthenticated), then processes
inbox rows left ``received`` by a crash (:meth:`IntakeLedger.recover`), so a
body that was stored is never lost. Bodies, credentials and secrets are never
logged (PII; the Google token travels in the query string, so the access log
must stay off, as ``winback intake serve`` has it).
"""

from __future__ import annotations

import logging
from typing import Any

from winback_ml.intake._common import MAX_BODY_BYTES, PROVIDERS
from winback_ml.intake.auth import ReceiverAuth, Refusal, check_body, check_request
from winback_ml.intake.ledger import IntakeLedger, Outcome, inbox_table

__all__ = ["create_app", "ReceiverAuth"]

logger = logging.getLogger(__name__)


def create_app(
    ledger: IntakeLedger | None = None,
    *,
    store_url: str | None = None,
    stripe_secret: str | None = None,
    apple_root: Any = None,
    auth: ReceiverAuth | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    recover_on_startup: bool = True,
) -> Any:
    """Build the receiver app.

    Parameters
    ----------
    ledger : IntakeLedger, optional
        Built from ``store_url``, ``stripe_secret`` and ``apple_root`` when absent.
        Its ``stripe_secret`` and ``apple_root`` authenticate Stripe and Apple.
    auth : ReceiverAuth, optional
        Credentials of Chargebee, Recurly, Google and CSV uploads, and the
        sources allowed unauthenticated. Default: :meth:`ReceiverAuth.from_env`
        (``WINBACK_CHARGEBEE_WEBHOOK_USERNAME``, ... see :mod:`winback_ml.intake.auth`).
        Secure by default: nothing configured means every one of them is refused.
    max_body_bytes : int
        Bodies above this get 413.
    recover_on_startup : bool
        Process bodies left unprocessed by a crash when the app starts.

    Returns
    -------
    starlette.applications.Starlette

    Raises
    ------
    ConfigError
        The store cannot be reached (checked here, before the server starts),
        or ``auth`` is inconsistent.
    """
    import contextlib

    import sqlalchemy as sa
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from winback_ml.exceptions import WinbackError

    led = ledger or IntakeLedger(store_url, stripe_secret=stripe_secret, apple_root=apple_root)
    # an unreachable store fails here, as a ConfigError naming it (password masked), not as a
    # traceback in the server's start-up
    led.engine  # noqa: B018
    auth = ReceiverAuth.from_env() if auth is None else auth
    has_stripe, has_apple = bool(led.stripe_secret), led.apple_root is not None
    summary = auth.summary(stripe_secret=has_stripe, apple_root=has_apple)

    def _refuse(provider: str, r: Refusal) -> JSONResponse:
        # never the credentials, the secret or the body: the reason is built from constants
        logger.warning("receiver: refused POST /webhooks/%s: %s %s", provider, r.status, r.reason)
        return JSONResponse(
            {"status": "refused", "reason": r.reason}, status_code=r.status, headers=r.headers
        )

    def _answer(o: Outcome) -> JSONResponse:
        return JSONResponse(
            {
                "status": o.status,
                "delivery_id": o.delivery_id,
                "events": len(o.event_ids),
                "enqueued": len(o.enqueued),
                "reason": o.reason,
                "kind": o.kind,
            },
            status_code=o.http_status,
        )

    async def webhook(request: Request) -> JSONResponse:
        provider = request.path_params["provider"]
        if provider not in PROVIDERS:
            return JSONResponse(
                {
                    "status": "rejected",
                    "reason": f"unknown provider {provider!r}; expected one of {list(PROVIDERS)}",
                },
                status_code=404,
            )
        refusal = check_request(
            provider,
            auth,
            headers=request.headers,
            query=request.query_params,
            stripe_secret=has_stripe,
            apple_root=has_apple,
        )
        if refusal is not None:
            return _refuse(provider, refusal)
        declared = request.headers.get("content-length")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body_bytes:
                break
        body = b"".join(chunks)
        headers = {k: v for k, v in request.headers.items() if k.lower() == "stripe-signature"}
        oversized = size > max_body_bytes or (
            declared and declared.isdigit() and int(declared) > max_body_bytes
        )
        if oversized and provider == "recurly" and auth.recurly_secret is not None:
            # the signature covers the whole body, which was not read: it cannot be verified
            return _refuse(
                provider,
                Refusal(
                    413,
                    f"recurly: body over the limit of {max_body_bytes} bytes; its signature "
                    "cannot be verified, so nothing was stored.",
                ),
            )
        refusal = check_body(provider, auth, body, headers=request.headers)
        if refusal is not None:
            return _refuse(provider, refusal)
        if oversized:
            o = await run_in_threadpool(_oversized, led, provider, body, max_body_bytes, declared)
            return _answer(o)
        if provider == "csv":
            outs = await run_in_threadpool(led.ingest_export, "csv", body, label="http")
            worst = max(outs, key=lambda o: o.http_status) if outs else None
            return JSONResponse(
                {
                    "status": "processed",
                    "rows": len(outs),
                    "accepted": sum(o.status == "accepted" for o in outs),
                    "duplicate": sum(o.status == "duplicate" for o in outs),
                    "dead_lettered": sum(o.status == "dead_lettered" for o in outs),
                },
                status_code=worst.http_status if worst else 200,
            )
        o = await run_in_threadpool(led.ingest, provider, body, headers=headers or {}, label="http")
        return _answer(o)

    async def healthz(request: Request) -> JSONResponse:
        try:
            pending = await run_in_threadpool(_pending, led)
        except (sa.exc.SQLAlchemyError, WinbackError) as e:
            return JSONResponse({"status": "error", "reason": type(e).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "pending": pending})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        for provider, line in summary.items():
            level = logging.INFO if line.startswith("authenticated") else logging.WARNING
            logger.log(level, "receiver: /webhooks/%s: %s", provider, line)
        await run_in_threadpool(led.create_schema)
        if recover_on_startup:
            await run_in_threadpool(led.recover)
        yield

    app = Starlette(
        routes=[
            Route("/webhooks/{provider}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.ledger = led
    app.state.auth = auth
    app.state.auth_summary = summary
    return app


def _pending(led: IntakeLedger) -> int:
    import sqlalchemy as sa

    led.create_schema()
    with led.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(inbox_table)
                .where(inbox_table.c.status == "received")
            ).scalar()
        )


def _oversized(
    led: IntakeLedger, provider: str, body: bytes, limit: int, declared: str | None
) -> Outcome:
    # store_raw keeps the first 64 KiB of a body over the limit; process() dead-letters it
    padded = body if len(body) > limit else body + b"\0" * (limit + 1 - len(body))
    inbox_id, prior = led.store_raw(
        provider, padded, label=f"http (oversized, content-length {declared})"
    )
    o = led.process(inbox_id)
    o.kind = "oversized"
    return o
