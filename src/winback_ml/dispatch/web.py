"""HTTP endpoints for what customers send back: unsubscribe links and inbound SMS.

:func:`make_app` returns a Starlette app (serve it with ``uvicorn``)::

    GET  /unsubscribe?t=TOKEN   a confirmation page (no change: mail scanners follow links)
    POST /unsubscribe?t=TOKEN   unsubscribe (also RFC 8058 one-click:
                                body ``List-Unsubscribe=One-Click``)
    POST /sms/inbound           Twilio-style form (``From``, ``Body``); STOP/START
                                handling, answers TwiML with the confirmation
    GET  /healthz

Invariants: a token that does not verify changes nothing and answers 400;
the database work runs in a thread pool; no address is written to a log or
echoed in a page.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape as xml_escape

from winback_ml.dispatch.policy import handle_inbound_sms, unsubscribe, verify_unsubscribe_token
from winback_ml.dispatch.schema import DispatchDB
from winback_ml.exceptions import DispatchError

__all__ = ["make_app"]


def make_app(store: Any = None) -> Any:
    """The Starlette app of the module docstring, on ``store`` (Store, URL or None)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from winback_ml.dispatch.policy import get_unsubscribe_secret

    db = store if isinstance(store, DispatchDB) else DispatchDB(store)

    async def unsubscribe_page(request: Request) -> Response:
        token = request.query_params.get("t", "")
        try:
            secret = await run_in_threadpool(get_unsubscribe_secret, db)
            _, channel = verify_unsubscribe_token(token, secret)
        except DispatchError:
            return HTMLResponse("<p>This unsubscribe link is not valid.</p>", status_code=400)
        what = (
            "e-mails" if channel == "email" else "text messages" if channel == "sms" else "messages"
        )
        return HTMLResponse(
            f'<form method="post" action="?t={escape(token)}"><p>Stop receiving these {what}?</p>'
            '<button type="submit">Unsubscribe</button></form>'
        )

    async def unsubscribe_post(request: Request) -> Response:
        token = request.query_params.get("t", "")
        try:
            await run_in_threadpool(unsubscribe, db, token)
        except DispatchError:
            return HTMLResponse("<p>This unsubscribe link is not valid.</p>", status_code=400)
        return HTMLResponse(
            "<p>You are unsubscribed. You will receive no more of these messages.</p>"
        )

    async def sms_inbound(request: Request) -> Response:
        # parsed here: Starlette's request.form() needs python-multipart, not a dependency
        form = {
            k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
        }
        reply = await run_in_threadpool(
            handle_inbound_sms, db, form.get("From", ""), form.get("Body", "")
        )
        body = f"<Message>{xml_escape(reply)}</Message>" if reply else ""
        return Response(
            f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
            media_type="application/xml",
        )

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/unsubscribe", unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe", unsubscribe_post, methods=["POST"]),
            Route("/sms/inbound", sms_inbound, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
