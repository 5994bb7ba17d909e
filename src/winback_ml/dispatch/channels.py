"""Channels: e-mail over SMTP, SMS over a Twilio-style HTTP API, in-app, dry run.

Every channel implements :class:`Channel`:

``send(messages, deadline=None) -> list[SendResult]``
    Send a batch; one result per message, in order. A channel never raises
    for a single bad message: it reports ``failed`` (``permanent`` or not)
    and goes on with the rest. It stops before a message when the wall-clock
    ``deadline`` has passed (status ``not_attempted``), so that a worker never
    sends on an expired lease.
``reconcile(keys) -> dict[key, bool | None]``
    After a crash: was the message with this idempotency key delivered?
    ``True``/``False`` when the receiver can tell, ``None`` when it cannot.

Statuses of :class:`SendResult`: ``sent``; ``failed`` (the receiver refused
or could not be reached: definitely not delivered); ``uncertain`` (the
connection broke while the receiver may have accepted it; reconciled later);
``not_attempted``.

The idempotency key travels with every message: as the e-mail's
``Message-ID`` (``<key@domain>``), as the ``I-Twilio-Idempotency-Token`` and
``Idempotency-Key`` headers of HTTP requests, as the unique key of the in-app
table and as the file name of the dry run. Addresses (PII) are used to send
and are never put in an error message.
"""

from __future__ import annotations

import base64 as _b64
import json
import os
import re
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy as _email_policy
from email.header import Header as _Header
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa

from winback_ml.dispatch._util import utcnow

__all__ = [
    "OutboundMessage",
    "SendResult",
    "Channel",
    "SMTPEmailChannel",
    "TwilioSMSChannel",
    "WebhookInAppChannel",
    "TableInAppChannel",
    "DryRunChannel",
    "EMAIL_RE",
    "E164_RE",
    "valid_address",
    "mask_address",
]

# long header values (List-Unsubscribe URLs) must not be folded into encoded words
_POLICY = _email_policy.default.clone(max_line_length=998)
# \Z, not $: "$" also matches before a trailing newline, which would reach the To header
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


@dataclass(frozen=True)
class OutboundMessage:
    """A rendered message ready for a channel. ``to`` is PII: never log it."""

    idempotency_key: str
    customer_id: str
    channel: str
    to: str | None
    text: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What happened to one message (see the module docstring for statuses)."""

    idempotency_key: str
    status: str
    error: str | None = None
    permanent: bool = False
    provider_id: str | None = None


@runtime_checkable
class Channel(Protocol):
    """The protocol every channel implements."""

    name: str

    def send(
        self, messages: Sequence[OutboundMessage], deadline: float | None = None
    ) -> list[SendResult]: ...

    def reconcile(self, keys: Sequence[str]) -> dict[str, bool | None]: ...

    def close(self) -> None: ...


def valid_address(channel: str, to: str | None) -> bool:
    """True when ``to`` is a plausible address for ``channel`` (e-mail or E.164 phone)."""
    if channel == "email":
        return bool(to) and EMAIL_RE.match(to) is not None
    if channel == "sms":
        return bool(to) and E164_RE.match(to) is not None
    return True


def mask_address(to: str | None) -> str:
    """``jane@example.com`` -> ``j***@example.com``; ``+4915112345678`` -> ``+49*******678``."""
    if not to:
        return ""
    if "@" in to:
        local, _, dom = to.partition("@")
        return f"{local[:1]}***@{dom}"
    return to[:3] + "*" * max(0, len(to) - 6) + to[-3:]


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() > deadline


class SMTPEmailChannel:
    """E-mail over SMTP, one session per batch, ``Message-ID`` = idempotency key.

    Parameters
    ----------
    host, port : the SMTP server.
    from_address : envelope and header sender.
    username, password : optional AUTH.
    starttls : upgrade with STARTTLS after EHLO. ``ssl``: implicit TLS.
    domain : right-hand side of Message-IDs.
    timeout : socket timeout in seconds.

    Notes
    -----
    :meth:`reconcile` asks the server with the ``XMID <message-id>`` command
    when the server announces it in EHLO (the package's loopback server does:
    :class:`winback_ml.dispatch.testing.LoopbackSMTPServer`). Production
    relays do not; then it answers ``None`` and the dispatcher's
    ``on_uncertain`` setting decides (see ``docs/dispatch.md``).
    """

    name = "email"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 25,
        from_address: str = "winback@example.com",
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        domain: str = "winback-ml",
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.from_address = from_address
        self.username = username
        self.password = password
        self.starttls = starttls
        self.ssl = ssl
        self.domain = domain
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def message_id(self, key: str) -> str:
        return f"<{key}@{self.domain}>"

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None
        cls = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        s = cls(self.host, self.port, timeout=self.timeout)
        s.ehlo()
        if self.starttls:
            s.starttls()
            s.ehlo()
        if self.username:
            s.login(self.username, self.password or "")
        self._smtp = s
        return s

    def build(self, m: OutboundMessage) -> EmailMessage:
        """The MIME message (plain text + HTML alternative) for ``m``."""
        msg = EmailMessage(policy=_POLICY)
        msg["Message-ID"] = self.message_id(m.idempotency_key)
        msg["Date"] = formatdate(usegmt=True)
        msg["From"] = self.from_address
        msg["To"] = m.to or ""
        msg["Subject"] = _one_line(m.subject)
        msg["X-Winback-Key"] = m.idempotency_key
        for k, v in m.headers.items():
            msg[k] = v
        msg.set_content(m.text)
        if m.html:
            msg.add_alternative(m.html, subtype="html")
        return msg

    def build_bytes(self, m: OutboundMessage) -> bytes | None:
        """The same message as :meth:`build`, assembled directly as CRLF bytes (fast path).

        Text and HTML are UTF-8, base64-encoded; a non-ASCII subject is an
        RFC 2047 encoded word. Returns None when an address or header value
        is not ASCII (then :meth:`build` is used).
        """
        fixed = [
            ("Message-ID", self.message_id(m.idempotency_key)),
            ("Date", formatdate(usegmt=True)),
            ("From", self.from_address),
            ("To", m.to or ""),
            ("X-Winback-Key", m.idempotency_key),
            *m.headers.items(),
        ]
        if not all(v.isascii() and "\n" not in v and "\r" not in v for _, v in fixed):
            return None
        subject = _one_line(m.subject)  # a line break would start a new header (injection)
        if not subject.isascii() or len(subject) > 900:
            subject = _Header(subject, "utf-8", maxlinelen=76).encode(linesep="\r\n")
        boundary = f"=_wb_{m.idempotency_key}"
        lines = [f"{k}: {v}" for k, v in fixed]
        lines += [f"Subject: {subject}", "MIME-Version: 1.0"]
        parts = [("plain", m.text)] + ([("html", m.html)] if m.html else [])
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        body = []
        for sub, content in parts:
            canonical = content.replace("\r\n", "\n").replace("\n", "\r\n")  # RFC 2046: CRLF
            b64 = _b64.encodebytes(canonical.encode("utf-8")).decode("ascii")
            body += [
                f"--{boundary}",
                f'Content-Type: text/{sub}; charset="utf-8"',
                "Content-Transfer-Encoding: base64",
                "",
                b64.replace("\n", "\r\n").rstrip("\r\n"),
            ]
        body.append(f"--{boundary}--")
        return ("\r\n".join(lines) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode("ascii")

    def send(
        self, messages: Sequence[OutboundMessage], deadline: float | None = None
    ) -> list[SendResult]:
        out: list[SendResult] = []
        try:
            smtp = self._connect() if messages else None
        except (smtplib.SMTPException, OSError) as e:
            return [
                SendResult(
                    m.idempotency_key,
                    "failed",
                    f"SMTP server unreachable: {type(e).__name__}: {_txt(e)}",
                )
                for m in messages
            ]
        broken: str | None = None
        for m in messages:
            key = m.idempotency_key
            if broken is not None or _past(deadline):
                out.append(SendResult(key, "not_attempted", broken or "lease deadline reached"))
                continue
            if not valid_address("email", m.to):
                out.append(
                    SendResult(
                        key,
                        "failed",
                        f"invalid e-mail address for customer {m.customer_id!r}",
                        permanent=True,
                    )
                )
                continue
            try:  # built before anything is sent: a message that cannot be built fails alone
                raw = self.build_bytes(m)
                msg = self.build(m) if raw is None else None
            except (ValueError, TypeError, UnicodeError) as e:
                out.append(
                    SendResult(
                        key,
                        "failed",
                        f"message for customer {m.customer_id!r} cannot be built: "
                        f"{type(e).__name__}",
                        permanent=True,
                    )
                )
                continue
            try:
                assert smtp is not None
                if msg is not None:  # a non-ASCII address: let the email package handle SMTPUTF8
                    smtp.send_message(msg, from_addr=self.from_address, to_addrs=[m.to])
                else:
                    smtp.sendmail(self.from_address, [m.to], raw)
                out.append(SendResult(key, "sent", provider_id=self.message_id(key)))
            except smtplib.SMTPRecipientsRefused as e:
                code = next(iter(e.recipients.values()))[0] if e.recipients else 550
                out.append(
                    SendResult(key, "failed", f"recipient refused ({code})", permanent=code >= 500)
                )
                _rset(smtp)
            except smtplib.SMTPResponseException as e:  # sender refused, data error: not delivered
                out.append(
                    SendResult(
                        key,
                        "failed",
                        f"SMTP {e.smtp_code}: {_txt(e.smtp_error)}",
                        permanent=e.smtp_code >= 500,
                    )
                )
                _rset(smtp)
            except (smtplib.SMTPServerDisconnected, OSError) as e:
                # The connection broke during the transaction: the server may have accepted it.
                out.append(
                    SendResult(
                        key, "uncertain", f"connection lost while sending: {type(e).__name__}"
                    )
                )
                broken = "connection lost earlier in the batch"
                self._smtp = None
        return out

    def reconcile(self, keys: Sequence[str]) -> dict[str, bool | None]:
        if not keys:
            return {}
        try:
            s = self._connect()
        except (smtplib.SMTPException, OSError):
            return {k: None for k in keys}
        if not s.has_extn("xmid"):
            return {k: None for k in keys}
        out: dict[str, bool | None] = {}
        for k in keys:
            try:
                code, _ = s.docmd("XMID", self.message_id(k))
            except (smtplib.SMTPException, OSError):
                out[k] = None
                continue
            out[k] = True if code == 250 else False if code == 550 else None
        return out

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None


def _rset(smtp: smtplib.SMTP | None) -> None:
    try:
        if smtp is not None:
            smtp.rset()
    except (smtplib.SMTPException, OSError):
        pass


_PII_IN_TEXT = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+|\+?\d[\d\s().-]{6,}\d")


def redact(text: str) -> str:
    """Provider error text without e-mail addresses or phone numbers (they echo the recipient).

    A digit run counts as a phone number from 7 digits on (``550 5.1.1`` stays).
    """

    def sub(m: re.Match[str]) -> str:
        t = m.group(0)
        return "<redacted>" if "@" in t or sum(ch.isdigit() for ch in t) >= 7 else t

    return _PII_IN_TEXT.sub(sub, text)


def _one_line(subject: str | None) -> str:
    """A subject on one line: CR/LF (and the indent after them) become one space."""
    return re.sub(r"\s*[\r\n]+\s*", " ", subject or "").strip()


def _txt(b: Any) -> str:
    return redact(b.decode(errors="replace") if isinstance(b, bytes) else str(b))


class _HTTPChannel:
    """Shared plumbing of the HTTP channels (an ``httpx.Client``, error mapping)."""

    name = ""

    def __init__(self, timeout: float = 10.0, client: Any = None) -> None:
        import httpx

        self._httpx = httpx
        self._client = client or httpx.Client(timeout=timeout)

    def _post(self, key: str, url: str, **kw: Any) -> SendResult:
        httpx = self._httpx
        headers = {
            "Idempotency-Key": key,
            "I-Twilio-Idempotency-Token": key,
            **kw.pop("headers", {}),
        }
        try:
            r = self._client.post(url, headers=headers, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:  # never reached the server
            return SendResult(key, "failed", f"{self.name} API unreachable: {type(e).__name__}")
        except httpx.HTTPError as e:  # sent, answer lost: may have been accepted
            return SendResult(
                key, "uncertain", f"{self.name} API: {type(e).__name__} after sending"
            )
        if 200 <= r.status_code < 300:
            pid = None
            try:
                body = r.json()
                pid = body.get("sid") or body.get("id") if isinstance(body, dict) else None
            except ValueError:
                pass
            return SendResult(key, "sent", provider_id=str(pid) if pid else None)
        detail = redact(r.text[:200].replace("\n", " "))
        permanent = 400 <= r.status_code < 500 and r.status_code not in (408, 409, 425, 429)
        return SendResult(
            key, "failed", f"{self.name} API HTTP {r.status_code}: {detail}", permanent=permanent
        )

    def reconcile(self, keys: Sequence[str]) -> dict[str, bool | None]:
        return {k: None for k in keys}

    def close(self) -> None:
        self._client.close()


class TwilioSMSChannel(_HTTPChannel):
    """SMS over a Twilio-style API: ``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json``.

    Form fields ``To``, ``From``, ``Body``; HTTP basic auth (account SID and
    auth token). A 4xx answer (e.g. an invalid number) fails the message
    permanently; 429, 5xx and network errors are retried.
    """

    name = "sms"

    def __init__(
        self,
        base_url: str = "https://api.twilio.com",
        account_sid: str = "",
        auth_token: str = "",
        from_number: str = "",
        *,
        timeout: float = 10.0,
        client: Any = None,
    ) -> None:
        super().__init__(timeout, client)
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = (account_sid, auth_token)
        self.from_number = from_number

    def send(
        self, messages: Sequence[OutboundMessage], deadline: float | None = None
    ) -> list[SendResult]:
        out = []
        for m in messages:
            if _past(deadline):
                out.append(SendResult(m.idempotency_key, "not_attempted", "lease deadline reached"))
            elif not valid_address("sms", m.to):
                out.append(
                    SendResult(
                        m.idempotency_key,
                        "failed",
                        f"invalid E.164 phone number for customer {m.customer_id!r}",
                        permanent=True,
                    )
                )
            else:
                data = {"To": m.to, "From": self.from_number, "Body": m.text}
                out.append(self._post(m.idempotency_key, self.url, data=data, auth=self.auth))
        return out


class WebhookInAppChannel(_HTTPChannel):
    """In-app messages as a JSON ``POST`` to the product's webhook.

    Body: ``{"idempotency_key", "customer_id", "title", "body"}``; the
    receiver must treat a repeated ``Idempotency-Key`` as the same message.
    """

    name = "in_app"

    def __init__(self, url: str, *, timeout: float = 10.0, client: Any = None) -> None:
        super().__init__(timeout, client)
        self.url = url

    def send(
        self, messages: Sequence[OutboundMessage], deadline: float | None = None
    ) -> list[SendResult]:
        out = []
        for m in messages:
            if _past(deadline):
                out.append(SendResult(m.idempotency_key, "not_attempted", "lease deadline reached"))
                continue
            body = {
                "idempotency_key": m.idempotency_key,
                "customer_id": m.customer_id,
                "title": m.subject,
                "body": m.text,
            }
            out.append(self._post(m.idempotency_key, self.url, json=body))
        return out


class TableInAppChannel:
    """In-app messages written to the ``dispatch_inapp`` table that the product reads.

    Exactly once by construction: the idempotency key is the table's unique
    key, so a repeated insert is a no-op and :meth:`reconcile` can look it up.
    """

    name = "in_app"

    def __init__(self, db: Any) -> None:
        from winback_ml.dispatch.schema import DispatchDB

        self.db = db if isinstance(db, DispatchDB) else DispatchDB(db)
        self.db.create_schema()

    def send(
        self, messages: Sequence[OutboundMessage], deadline: float | None = None
    ) -> list[SendResult]:
        from winback_ml.dispatch.schema import inapp

        if _past(deadline):
            return [
                SendResult(m.idempotency_key, "not_attempted", "lease deadline reached")
                for m in messages
            ]
        now = utcnow()
        rows = [
            {
                "idempotency_key": m.idempotency_key,
                "customer_id": m.customer_id,
                "title": m.subject or "",
                "body": m.text,
                "created_at": now,
                "read_at": None,
            }
            for m in messages
        ]
        try:
            self.db.insert_ignore(inapp, rows)
        except sa.exc.SQLAlchemyError as e:
            return [
                SendResult(
                    m.idempotency_key, "failed", f"in-app table write failed: {type(e).__name__}"
                )
                for m in messages
            ]
        return [SendResult(m.idempotency_key, "sent") for m in messages]

    def reconcile(self, keys: Sequence[str]) -> dict[str, bool | None]:
        from winback_ml.dispatch.schema import inapp

        with self.db.engine.connect() as conn:
            have = set(
                conn.execute(
                    sa.select(inapp.c.idempotency_key).where(
                        inapp.c.idempotency_key.in_(list(keys))
                    )
                ).scalars()
            )
        return {k: k in have for k in keys}

    def close(self) -> None:
        pass


class DryRunChannel:
    """Writes each rendered message to ``<out_dir>/<channel>/<key>.json`` instead of sending it.

    The default of the demo. Files are written atomically (temp file and
    rename); an existing file means "already sent", so reruns are no-ops and
    :meth:`reconcile` is exact. The address is masked (``j***@example.com``).
    """

    def __init__(self, out_dir: str | Path, name: str = "email") -> None:
        self.name = name
        self.dir = Path(out_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)

    def send(
        self, messages: Sequence[OutboundMessage], deadline: float | None = None
    ) -> list[SendResult]:
        out = []
        for m in messages:
            if _past(deadline):
                out.append(SendResult(m.idempotency_key, "not_attempted", "lease deadline reached"))
                continue
            if not valid_address(self.name, m.to):
                out.append(
                    SendResult(
                        m.idempotency_key,
                        "failed",
                        f"invalid {self.name} address for customer {m.customer_id!r}",
                        permanent=True,
                    )
                )
                continue
            path = self.dir / f"{m.idempotency_key}.json"
            if not path.exists():
                doc = {
                    "idempotency_key": m.idempotency_key,
                    "customer_id": m.customer_id,
                    "channel": self.name,
                    "to": mask_address(m.to),
                    "subject": m.subject,
                    "text": m.text,
                    "html": m.html,
                    "headers": m.headers,
                }
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
                tmp.replace(path)
            out.append(SendResult(m.idempotency_key, "sent", provider_id=path.name))
        return out

    def reconcile(self, keys: Sequence[str]) -> dict[str, bool | None]:
        return {k: (self.dir / f"{k}.json").exists() for k in keys}

    def close(self) -> None:
        pass
