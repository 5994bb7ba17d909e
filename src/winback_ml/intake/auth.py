"""Who may post to the webhook receiver: one authentication scheme per source.

Secure by default: a source whose secret is not configured is **refused**
(403) unless the operator lists it in ``allow_unauthenticated`` (meant for a
loopback-only test setup). A request without valid credentials gets 401. A
refused request is answered before anything is stored: an unauthenticated
caller cannot write into the inbox; the provider retries, and the operator
sees the refusal in the log (never the secret, the credentials or the body).

========== ====================================== ===============================================
source     scheme                                 configured by (argument; environment variable)
========== ====================================== ===============================================
stripe     ``Stripe-Signature`` HMAC (the ledger) ``IntakeLedger(stripe_secret=)``;
                                                  ``WINBACK_STRIPE_WEBHOOK_SECRET`` (``serve``)
apple      JWS ``x5c`` chain to Apple's root      ``IntakeLedger(apple_root=)``
chargebee  HTTP Basic (``Authorization: Basic``)  ``chargebee_username``, ``chargebee_password``;
                                                  ``WINBACK_CHARGEBEE_WEBHOOK_USERNAME`` / ``_PASSWORD``
recurly    ``recurly-signature: t,sig[,sig]``     ``recurly_secret``; ``WINBACK_RECURLY_WEBHOOK_SECRET``
google     ``?token=`` in the push endpoint URL   ``google_token``; ``WINBACK_GOOGLE_PUSH_TOKEN``
csv        ``Authorization: Bearer <token>``      ``csv_token``; ``WINBACK_CSV_UPLOAD_TOKEN``
========== ====================================== ===============================================

``allow_unauthenticated``: ``WINBACK_RECEIVER_ALLOW_UNAUTHENTICATED`` (comma
separated). A configured secret is always checked, listed or not.

Every comparison of a secret is constant-time (:func:`hmac.compare_digest` on
bytes; both Basic fields are compared before the result is read).

Google Pub/Sub *authenticated* push also sends an OIDC JWT in
``Authorization: Bearer``; verifying it needs Google's signing certificates,
fetched at run time, which this package never does: the query-string token is
the check here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from winback_ml.exceptions import ConfigError, SignatureError
from winback_ml.intake._common import PROVIDERS

__all__ = ["ReceiverAuth", "Refusal", "check_request", "check_body", "ENV_VARS", "env_value"]

#: environment variable of each setting read by :meth:`ReceiverAuth.from_env`
ENV_VARS: dict[str, str] = {
    "chargebee_username": "WINBACK_CHARGEBEE_WEBHOOK_USERNAME",
    "chargebee_password": "WINBACK_CHARGEBEE_WEBHOOK_PASSWORD",
    "recurly_secret": "WINBACK_RECURLY_WEBHOOK_SECRET",
    "google_token": "WINBACK_GOOGLE_PUSH_TOKEN",
    "csv_token": "WINBACK_CSV_UPLOAD_TOKEN",
    "allow_unauthenticated": "WINBACK_RECEIVER_ALLOW_UNAUTHENTICATED",
}

_SCHEMES = {
    "stripe": "Stripe-Signature HMAC-SHA256",
    "apple": "JWS x5c chain to the configured Apple root",
    "chargebee": "HTTP Basic auth",
    "recurly": "recurly-signature HMAC-SHA256",
    "google": "push token (?token=)",
    "csv": "bearer token",
}

_FIX = {
    "stripe": "pass --stripe-secret (or WINBACK_STRIPE_WEBHOOK_SECRET) / IntakeLedger(stripe_secret=...)",
    "apple": "pass --apple-root (Apple's root certificate) / IntakeLedger(apple_root=...)",
    "chargebee": (
        "set WINBACK_CHARGEBEE_WEBHOOK_USERNAME and WINBACK_CHARGEBEE_WEBHOOK_PASSWORD "
        "(the webhook's basic-auth credentials in Chargebee) / ReceiverAuth(chargebee_username=..., "
        "chargebee_password=...)"
    ),
    "recurly": "set WINBACK_RECURLY_WEBHOOK_SECRET (the endpoint's secret key) / ReceiverAuth(recurly_secret=...)",
    "google": "set WINBACK_GOOGLE_PUSH_TOKEN and push to /webhooks/google?token=<it> / ReceiverAuth(google_token=...)",
    "csv": "set WINBACK_CSV_UPLOAD_TOKEN and send 'Authorization: Bearer <it>' / ReceiverAuth(csv_token=...)",
}


def env_value(environ: Mapping[str, str], name: str) -> str:
    """``environ[name]`` without a trailing line break (``""`` when unset).

    Only ``\\r`` and ``\\n`` are dropped: a secret may end in a space on purpose.
    """
    return environ.get(name, "").rstrip("\r\n")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP ``status`` (401 or 403), ``reason``, extra ``headers``."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, repr=False)
class ReceiverAuth:
    """Credentials of the sources the receiver authenticates itself.

    Stripe and Apple are verified by the :class:`~winback_ml.intake.IntakeLedger`
    (its ``stripe_secret`` and ``apple_root``); this object holds the rest.

    Parameters
    ----------
    chargebee_username, chargebee_password : str, optional
        The HTTP Basic credentials set on the Chargebee webhook (both or neither).
    recurly_secret : str, optional
        The Recurly webhook endpoint's secret key (``recurly-signature``).
    recurly_tolerance : int
        Seconds a ``recurly-signature`` timestamp may be from now (replay protection);
        0 turns the time check off (not for a public endpoint).
    google_token : str, optional
        The token in the Pub/Sub push endpoint's query string (``?token=``).
    csv_token : str, optional
        The bearer token CSV uploads must carry.
    allow_unauthenticated : iterable of str
        Sources accepted **without** authentication when nothing is configured
        for them (a loopback-only test setup). Each must be a known provider.

    Raises
    ------
    ConfigError
        An unknown source in ``allow_unauthenticated``, an empty secret, or
        only one of the two Chargebee credentials.

    Examples
    --------
    >>> from winback_ml.intake.auth import ReceiverAuth
    >>> auth = ReceiverAuth(csv_token="t0k3n", allow_unauthenticated=["google"])
    >>> auth
    ReceiverAuth(csv=configured, allow_unauthenticated=['google'])
    >>> auth.mode("csv", stripe_secret=False, apple_root=False)
    'authenticated'
    >>> auth.mode("chargebee", stripe_secret=False, apple_root=False)
    'refused'
    """

    chargebee_username: str | None = None
    chargebee_password: str | None = None
    recurly_secret: str | None = None
    recurly_tolerance: int = 300
    google_token: str | None = None
    csv_token: str | None = None
    allow_unauthenticated: Iterable[str] = frozenset()

    def __post_init__(self) -> None:
        allowed = self.allow_unauthenticated
        if allowed is None:  # "none allowed", as the other settings' None means "not set"
            allowed = ()
        if isinstance(allowed, str):
            allowed = [allowed]
        if not isinstance(allowed, Iterable):
            raise ConfigError(
                "The 'allow_unauthenticated' parameter of ReceiverAuth must be a list of sources "
                f"(e.g. ['csv']). Got {type(allowed).__name__} instead."
            )
        allowed = frozenset(str(a).strip().lower() for a in allowed)
        unknown = sorted(allowed - set(PROVIDERS))
        if unknown:
            raise ConfigError(
                f"The 'allow_unauthenticated' parameter of ReceiverAuth must list known sources "
                f"{list(PROVIDERS)}. Got {unknown} instead."
            )
        object.__setattr__(self, "allow_unauthenticated", allowed)
        for name in (
            "chargebee_username",
            "chargebee_password",
            "recurly_secret",
            "google_token",
            "csv_token",
        ):
            self._no_empty(name)
        if (self.chargebee_username is None) != (self.chargebee_password is None):
            raise ConfigError(
                "ReceiverAuth needs both chargebee_username and chargebee_password (the webhook's "
                "basic-auth credentials in Chargebee), or neither. Got only one."
            )
        tol = self.recurly_tolerance
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
            raise ConfigError(
                "The 'recurly_tolerance' parameter of ReceiverAuth must be >= 0 seconds. "
                f"Got {self.recurly_tolerance} instead."
            )

    def _no_empty(self, name: str) -> None:
        v = getattr(self, name)
        if v is not None and (not isinstance(v, str) or not v):
            raise ConfigError(
                f"The '{name}' parameter of ReceiverAuth must be a non-empty string or None "
                "(an empty secret authenticates anybody). Got an empty or non-string value instead."
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReceiverAuth:
        """Read the settings from the environment (:data:`ENV_VARS`); unset or empty is None.

        A trailing line break is dropped from every value: secrets mounted from files
        (``--env-file``, Kubernetes secrets, ``echo`` into a file) usually end with one, and a
        secret that carries it would never match what the provider signs with.
        """
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            v = env_value(env, var)
            if name == "allow_unauthenticated":
                kw[name] = [p for p in (s.strip() for s in v.split(",")) if p]
            elif v:
                kw[name] = v
        return cls(**kw)

    def __repr__(self) -> str:  # secrets never shown
        parts = [
            f"{p}=configured"
            for p, ok in (
                ("chargebee", self.chargebee_username is not None),
                ("recurly", self.recurly_secret is not None),
                ("google", self.google_token is not None),
                ("csv", self.csv_token is not None),
            )
            if ok
        ]
        if self.allow_unauthenticated:
            parts.append(f"allow_unauthenticated={sorted(self.allow_unauthenticated)}")
        return f"ReceiverAuth({', '.join(parts)})"

    def configured(self, provider: str, *, stripe_secret: bool, apple_root: bool) -> bool:
        """Whether ``provider`` has its credentials configured."""
        return {
            "stripe": stripe_secret,
            "apple": apple_root,
            "chargebee": self.chargebee_username is not None,
            "recurly": self.recurly_secret is not None,
            "google": self.google_token is not None,
            "csv": self.csv_token is not None,
        }[provider]

    def mode(self, provider: str, *, stripe_secret: bool, apple_root: bool) -> str:
        """``authenticated``, ``unauthenticated`` (explicitly allowed) or ``refused``."""
        if self.configured(provider, stripe_secret=stripe_secret, apple_root=apple_root):
            return "authenticated"
        return "unauthenticated" if provider in self.allow_unauthenticated else "refused"

    def summary(self, *, stripe_secret: bool, apple_root: bool) -> dict[str, str]:
        """One line per source, as logged at start-up (no secrets)."""
        out = {}
        for p in PROVIDERS:
            m = self.mode(p, stripe_secret=stripe_secret, apple_root=apple_root)
            if m == "authenticated":
                out[p] = f"authenticated ({_SCHEMES[p]})"
            elif m == "unauthenticated":
                out[p] = (
                    "UNAUTHENTICATED: anyone who can reach the receiver may post "
                    "(allowed by allow_unauthenticated; for a loopback-only test setup)"
                )
            else:
                out[p] = f"refused (403): nothing configured. Fix: {_FIX[p]}"
        return out


def _eq(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _basic(headers: Mapping[str, str], user: str, password: str) -> Refusal | None:
    challenge = {"WWW-Authenticate": 'Basic realm="winback chargebee webhooks"'}
    value = _header(headers, "authorization")
    if not value:
        return Refusal(
            401,
            "chargebee: missing HTTP Basic credentials (Authorization header). Fix: set the "
            "webhook's basic-auth username and password in Chargebee to the configured ones.",
            challenge,
        )
    scheme, _, cred = value.strip().partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError
        given_user, sep, given_pw = (
            base64.b64decode(cred.strip(), validate=True).decode("utf-8").partition(":")
        )
        if not sep:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return Refusal(
            401,
            "chargebee: the Authorization header is not HTTP Basic ('Basic base64(user:password)').",
            challenge,
        )
    # both compared, then combined: the time does not tell which one was wrong
    ok_user = _eq(given_user.encode(), user.encode())
    ok_pw = _eq(given_pw.encode(), password.encode())
    if not (ok_user & ok_pw):
        return Refusal(
            401,
            "chargebee: wrong HTTP Basic credentials. Fix: the webhook's basic-auth username "
            "and password in Chargebee must equal the configured ones.",
            challenge,
        )
    return None


def _bearer(headers: Mapping[str, str], token: str) -> Refusal | None:
    challenge = {"WWW-Authenticate": 'Bearer realm="winback csv uploads"'}
    value = _header(headers, "authorization")
    scheme, _, given = (value or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Refusal(
            401,
            "csv: missing bearer token. Fix: send 'Authorization: Bearer <token>' with the "
            "configured upload token.",
            challenge,
        )
    if not _eq(given.strip().encode("utf-8", "surrogateescape"), token.encode()):
        return Refusal(401, "csv: wrong bearer token.", challenge)
    return None


def _query_token(query: Mapping[str, str], token: str) -> Refusal | None:
    given = query.get("token")
    if not given:
        return Refusal(
            401,
            "google: missing push token. Fix: set the Pub/Sub push endpoint to "
            "/webhooks/google?token=<configured token>.",
        )
    if not _eq(given.encode("utf-8", "surrogateescape"), token.encode()):
        return Refusal(401, "google: wrong push token (?token=).")
    return None


def check_request(
    provider: str,
    auth: ReceiverAuth,
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    stripe_secret: bool,
    apple_root: bool,
) -> Refusal | None:
    """Check what can be checked before the body is read; ``None`` when it may go on.

    Stripe, Apple (verified by the ledger) and Recurly (whose signature covers the
    body: :func:`check_body`) pass here when configured.

    Parameters
    ----------
    provider : str
        A known provider (the receiver answers 404 for the rest first).
    auth : ReceiverAuth
    headers, query : mapping
        The request's headers and query parameters.
    stripe_secret, apple_root : bool
        Whether the ledger verifies Stripe signatures and Apple JWS.

    Returns
    -------
    Refusal or None
    """
    mode = auth.mode(provider, stripe_secret=stripe_secret, apple_root=apple_root)
    if mode == "refused":
        return Refusal(
            403,
            f"{provider}: refused: the receiver has no credentials configured for this source, "
            f"and an unauthenticated source is refused (secure by default). Fix: {_FIX[provider]}; "
            f"or, for a loopback-only test setup, allow_unauthenticated=['{provider}'].",
        )
    if mode == "unauthenticated":
        return None
    if provider == "chargebee":
        return _basic(headers, auth.chargebee_username or "", auth.chargebee_password or "")
    if provider == "csv":
        return _bearer(headers, auth.csv_token or "")
    if provider == "google":
        return _query_token(query, auth.google_token or "")
    return None


def check_body(
    provider: str,
    auth: ReceiverAuth,
    body: bytes,
    *,
    headers: Mapping[str, str],
    now: float | None = None,
) -> Refusal | None:
    """Check a signature that covers the body (Recurly); ``None`` when it may go on."""
    if provider != "recurly" or auth.recurly_secret is None:
        return None
    from winback_ml.intake.recurly import verify_recurly_signature

    try:
        verify_recurly_signature(
            body,
            _header(headers, "recurly-signature"),
            auth.recurly_secret,
            tolerance=auth.recurly_tolerance,
            now=now,
        )
    except SignatureError as e:
        return Refusal(401, str(e))
    return None
