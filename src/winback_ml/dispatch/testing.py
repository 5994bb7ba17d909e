"""Loopback servers for tests, the demo and the benchmark (like httpx's mock transport).

* :class:`LoopbackSMTPServer`: a real SMTP server (aiosmtpd) on 127.0.0.1
  that records every message by ``Message-ID`` and answers the ``XMID
  <message-id>`` extension command (``250`` seen / ``550`` not seen), which
  :meth:`SMTPEmailChannel.reconcile` uses after a crash. It can refuse
  recipients (``refuse``) and be slow (``delay`` seconds per message).
  It never de-duplicates: a message sent twice is recorded twice, so a
  test can count duplicates.
* :class:`LoopbackHTTPServer`: a threaded HTTP server recording POSTs, with a
  Twilio-style ``/2010-04-01/Accounts/<sid>/Messages.json`` answer; it can
  fail with a status, or reject numbers.

``aiosmtpd`` is a test dependency; it is imported only when a server starts.
Run as a script (``python -m winback_ml.dispatch.testing smtp --port P``) to
serve from another process; ``--count-file`` writes the received count
there on every message.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["LoopbackSMTPServer", "LoopbackHTTPServer", "free_port"]

_MID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackSMTPServer:
    """A recording SMTP server on loopback (see the module docstring).

    Examples
    --------
    >>> with LoopbackSMTPServer() as srv:  # doctest: +SKIP
    ...     srv.port, srv.count()
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        delay: float = 0.0,
        refuse: set[str] | None = None,
        keep_bodies: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.refuse = set(refuse or ())
        self.keep_bodies = keep_bodies
        self.received: Counter[str] = Counter()
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    # handler API of aiosmtpd
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        m = _MID.search(raw)
        mid = m.group(1).decode() if m else ""
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.received[mid] += 1
            if self.keep_bodies:
                self.messages.append(
                    {"message_id": mid, "rcpt": list(envelope.rcpt_tos), "raw": raw}
                )
        return "250 OK queued"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-XMID", responses[-1]]

    def seen(self, message_id: str) -> bool:
        with self._lock:
            return self.received.get(message_id, 0) > 0

    def count(self) -> int:
        with self._lock:
            return sum(self.received.values())

    def start(self) -> LoopbackSMTPServer:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        outer = self

        class _XSMTP(SMTP):
            async def smtp_XMID(self, arg: str) -> None:  # noqa: N802 - SMTP verb
                await self.push(
                    "250 2.0.0 seen" if outer.seen(arg.strip()) else "550 5.0.0 not seen"
                )

        class _Controller(Controller):
            def factory(self) -> SMTP:
                return _XSMTP(self.handler, **self.SMTP_kwargs)

        self._controller = _Controller(
            self, hostname="127.0.0.1", port=self.port, data_size_limit=0
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LoopbackSMTPServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class LoopbackHTTPServer:
    """A recording HTTP server on loopback for the SMS API and the in-app webhook.

    ``fail_status``: answer every POST with this status (a channel that is down).
    ``reject_numbers``: ``To`` values answered with 400 (Twilio error 21211).
    ``requests``: every POST as ``{"path", "headers", "form" or "json"}``.
    """

    def __init__(
        self, *, fail_status: int | None = None, reject_numbers: set[str] | None = None
    ) -> None:
        self.fail_status = fail_status
        self.reject_numbers = set(reject_numbers or ())
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._srv: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackHTTPServer:
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                rec: dict[str, Any] = {"path": self.path, "headers": dict(self.headers)}
                if "json" in (self.headers.get("Content-Type") or ""):
                    rec["json"] = json.loads(body or b"{}")
                else:
                    rec["form"] = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if outer.fail_status:
                    return self._answer(outer.fail_status, {"message": "service unavailable"})
                to = rec.get("form", {}).get("To")
                if to in outer.reject_numbers:
                    return self._answer(
                        400,
                        {"code": 21211, "message": "The 'To' number is not a valid phone number."},
                    )
                with outer._lock:
                    outer.requests.append(rec)
                    sid = f"SM{len(outer.requests):032d}"
                self._answer(201, {"sid": sid, "status": "queued"})

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _write_counts(srv: LoopbackSMTPServer, path: str) -> None:  # pragma: no cover
    with srv._lock:
        values = list(srv.received.values())
    doc = {"received": sum(values), "unique": len(values), "duplicates": sum(v > 1 for v in values)}
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh)
    import os

    os.replace(tmp, path)


def _main() -> None:  # pragma: no cover - used by the benchmark from a subprocess
    import argparse
    import signal

    ap = argparse.ArgumentParser(description="Loopback SMTP server that counts what it receives.")
    ap.add_argument("kind", choices=["smtp"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count-file", default=None)
    ap.add_argument("--delay", type=float, default=0.0)
    a = ap.parse_args()
    srv = LoopbackSMTPServer(a.port, delay=a.delay, keep_bodies=False).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening {a.port}", flush=True)
    while not stop.wait(0.5):
        if a.count_file:
            _write_counts(srv, a.count_file)
    if a.count_file:
        _write_counts(srv, a.count_file)
    srv.stop()


if __name__ == "__main__":  # pragma: no cover
    _main()
