"""Apple App Store Server Notifications v2 to contract events and state.

The POST body is ``{"signedPayload": "<JWS>"}``. The JWS (ES256, compact
serialisation) carries in its header an ``x5c`` certificate chain (leaf,
intermediate, root; base64 DER). Its payload holds ``notificationType``,
``subtype``, ``notificationUUID``, ``signedDate`` and ``data`` with two more
JWS: ``signedTransactionInfo`` and ``signedRenewalInfo``.

Verification
------------
When the user supplies Apple's root certificate (``apple_root``: PEM or DER
bytes, a path, or a ``cryptography`` certificate), every JWS is verified: each
certificate of ``x5c`` must be signed by the next, the last must be the given
root (byte for byte) or be signed by it, every issuing certificate must be a
CA, the leaf must carry Apple's App Store receipt-signing marker extension
(OID ``1.2.840.113635.100.6.11.1``) and the next certificate Apple's WWDR
intermediate marker (``1.2.840.113635.100.6.2.1``), as Apple's own App Store
Server Library checks, the certificates must be valid at the notification's
``signedDate``, and the ES256 signature must verify with the leaf key. (The
marker check keeps any other certificate that Apple's root happens to
certify, directly or through another Apple intermediate, from signing
notifications.) A failure raises :class:`~winback_ml.exceptions.SignatureError`.
Without a root the payload is decoded but marked ``verification="unverified"``
(stored so in the inbox). Nothing is ever fetched from the network.

Units: ``price`` in milliunits (9990 = 9.99), times in unix milliseconds.
``subscription_id`` is ``originalTransactionId``; ``customer_id`` is the app's
``appAccountToken`` when set, else ``app_store:<originalTransactionId>``. The
billing interval is read from the period length (``expiresDate`` minus
``purchaseDate``; 300 days or more is ``year``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from winback_ml.exceptions import IntakeError, SignatureError
from winback_ml.intake._common import (
    Normalized,
    detail_tokens,
    from_unix_millis,
    make_event,
    monthly_mrr,
    opt,
    parse_json_body,
    require,
)
from winback_ml.intake.reasons import APPLE_EXPIRATION_INTENT, APPLE_EXPIRED_SUBTYPES

__all__ = [
    "normalize_apple",
    "decode_jws",
    "verify_jws",
    "load_root_certificate",
    "APPLE_LEAF_MARKER_OID",
    "APPLE_INTERMEDIATE_MARKER_OID",
    "APPLE_HANDLED_TYPES",
    "APPLE_IGNORED_TYPES",
]

P = "apple"

#: Apple's marker extension on the App Store signing (leaf) certificate
APPLE_LEAF_MARKER_OID = "1.2.840.113635.100.6.11.1"
#: Apple's marker extension on the WWDR intermediate certificate
APPLE_INTERMEDIATE_MARKER_OID = "1.2.840.113635.100.6.2.1"

APPLE_HANDLED_TYPES = frozenset(
    {
        "SUBSCRIBED",
        "DID_RENEW",
        "DID_FAIL_TO_RENEW",
        "DID_CHANGE_RENEWAL_STATUS",
        "DID_CHANGE_RENEWAL_PREF",
        "EXPIRED",
        "GRACE_PERIOD_EXPIRED",
        "REFUND",
        "REVOKE",
        "OFFER_REDEEMED",
    }
)
APPLE_IGNORED_TYPES = frozenset(
    {
        "PRICE_INCREASE",
        "RENEWAL_EXTENDED",
        "RENEWAL_EXTENSION",
        "REFUND_DECLINED",
        "REFUND_REVERSED",
        "CONSUMPTION_REQUEST",
        "TEST",
        "EXTERNAL_PURCHASE_TOKEN",
        "ONE_TIME_CHARGE",
        "METADATA_UPDATE",
        "MIGRATION",
        "PRICE_CHANGE",
        "RESCIND_CONSENT",
    }
)
_STATUS = {1: "active", 2: "expired", 3: "past_due", 4: "past_due", 5: "cancelled"}


def _b64url(s: str, what: str) -> bytes:
    if not isinstance(s, str):
        raise IntakeError(f"{P}: {what} must be a base64url string. Got {type(s).__name__}.")
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        raise IntakeError(f"{P}: {what} is not valid base64url.") from None


def decode_jws(
    token: Any, what: str = "signedPayload", *, verify: bool = True
) -> tuple[dict, dict, bytes, bytes]:
    """Split a compact JWS into ``(header, payload, signing_input, signature)``.

    With ``verify=False`` only the payload is decoded (the header, which holds
    the certificate chain, and the signature are not needed): header ``{}``,
    signing input and signature empty.

    Raises
    ------
    IntakeError
        Not three base64url parts, or header/payload not JSON objects.
    """
    if not isinstance(token, str):
        raise IntakeError(f"{P}: {what} must be a JWS string. Got {type(token).__name__}.")
    parts = token.split(".")
    if len(parts) != 3:
        raise IntakeError(
            f"{P}: {what} must be a compact JWS 'header.payload.signature'; got {len(parts)} parts."
        )
    out: list[dict] = [] if verify else [{}]
    todo = (("header", parts[0]), ("payload", parts[1])) if verify else (("payload", parts[1]),)
    for label, part in todo:
        raw = _b64url(part, f"{what} {label}")
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise IntakeError(f"{P}: {what} {label} is not JSON.") from None
        if not isinstance(obj, dict):
            raise IntakeError(f"{P}: {what} {label} must be a JSON object.")
        out.append(obj)
    if not verify:
        return out[0], out[1], b"", b""
    sig = _b64url(parts[2], f"{what} signature")
    return out[0], out[1], f"{parts[0]}.{parts[1]}".encode("ascii"), sig


def load_root_certificate(source: Any) -> Any:
    """Load a root certificate from PEM/DER bytes, a path, or pass a certificate through."""
    from cryptography import x509

    if source is None:
        return None
    if isinstance(source, x509.Certificate):
        return source
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise IntakeError(
                f"{P}: apple_root {str(source)!r} cannot be read ({type(e).__name__}). "
                "Fix: pass the path of AppleRootCA-G3.cer."
            ) from None
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise IntakeError(
            f"{P}: apple_root must be PEM/DER bytes, a path or a certificate; got {type(source).__name__}."
        )
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise IntakeError(
            f"{P}: apple_root is not a certificate ({e}). Fix: pass AppleRootCA-G3.cer."
        ) from None


def verify_jws(
    header: dict, signing_input: bytes, signature: bytes, root: Any, at: datetime | None, what: str
) -> None:
    """Verify an App Store JWS: x5c chain up to ``root`` and the ES256 signature.

    Raises
    ------
    SignatureError
        With the precise step that failed.
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if header.get("alg") != "ES256":
        raise SignatureError(f"{P}: {what} alg is {header.get('alg')!r}; expected 'ES256'.")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
        raise SignatureError(f"{P}: {what} header has no x5c certificate chain.")
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
    except (ValueError, binascii.Error):
        raise SignatureError(
            f"{P}: {what} x5c holds something that is not a DER certificate."
        ) from None
    root_der = root.public_bytes(serialization.Encoding.DER)
    for i in range(1, len(chain)):
        # an issuer must be a CA: else anyone holding any leaf certificate under the root
        # (and its key) could issue a "leaf" of their own and sign notifications with it
        try:
            ca = chain[i].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (x509.ExtensionNotFound, ValueError):  # absent, or unparsable extensions
            ca = False
        if not ca:
            raise SignatureError(
                f"{P}: {what} x5c[{i}] issues x5c[{i - 1}] but is not a CA certificate "
                "(basicConstraints CA:TRUE missing): forged certificate chain."
            )
    for i in range(len(chain) - 1):
        try:
            chain[i].verify_directly_issued_by(chain[i + 1])
        except (ValueError, TypeError, InvalidSignature):
            raise SignatureError(
                f"{P}: {what} x5c[{i}] is not signed by x5c[{i + 1}]: broken certificate chain."
            ) from None
    last = chain[-1]
    if last.public_bytes(serialization.Encoding.DER) != root_der:
        try:
            last.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            raise SignatureError(
                f"{P}: {what} certificate chain does not end at the supplied Apple root "
                f"(last subject {last.subject.rfc4514_string()!r}). Fix: pass Apple's root CA "
                "(AppleRootCA-G3) or check the sender."
            ) from None
    if len(chain) < 2:
        raise SignatureError(
            f"{P}: {what} x5c holds {len(chain)} certificate; expected Apple's chain: the "
            "signing certificate, Apple's WWDR intermediate and (optionally) the root."
        )
    for i, oid, role in (
        (0, APPLE_LEAF_MARKER_OID, "App Store signing (leaf)"),
        (1, APPLE_INTERMEDIATE_MARKER_OID, "Apple WWDR intermediate"),
    ):
        try:
            chain[i].extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
        except (x509.ExtensionNotFound, ValueError):  # absent, or unparsable extensions
            raise SignatureError(
                f"{P}: {what} x5c[{i}] lacks Apple's {role} marker extension (OID {oid}): "
                "not a certificate Apple issues for App Store notifications. Fix: check the "
                "sender; only notifications from the App Store are accepted."
            ) from None
    if at is not None:
        for i, c in enumerate(chain):
            nb = c.not_valid_before_utc.replace(tzinfo=None)
            na = c.not_valid_after_utc.replace(tzinfo=None)
            if not nb <= at <= na:
                raise SignatureError(
                    f"{P}: {what} x5c[{i}] is not valid at signedDate {at.isoformat()} "
                    f"(valid {nb.isoformat()} to {na.isoformat()})."
                )
    if len(signature) != 64:
        raise SignatureError(
            f"{P}: {what} ES256 signature must be 64 bytes (r||s); got {len(signature)}."
        )
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError(f"{P}: {what} leaf certificate key is not an EC key.")
    try:
        key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(
            f"{P}: {what} signature does not verify with the leaf certificate key."
        ) from None


def _decode(token: Any, what: str, root: Any, at: datetime | None) -> dict:
    header, payload, signing_input, sig = decode_jws(token, what, verify=root is not None)
    if root is not None:
        verify_jws(header, signing_input, sig, root, at, what)
    return payload


def normalize_apple(body: bytes | str, *, apple_root: Any = None, **_: Any) -> Normalized:
    """Normalise one App Store Server Notification v2 body ``{"signedPayload": ...}``.

    Parameters
    ----------
    body : bytes or str
        The raw request body.
    apple_root : bytes, path or certificate, optional
        Apple's root certificate. Given: signatures are verified
        (``verification="verified"``); absent: ``"unverified"``.

    Raises
    ------
    IntakeError, SignatureError
    """
    doc = parse_json_body(body, P)
    if not isinstance(doc, dict):
        raise IntakeError(
            f"{P}: body must be a JSON object {{'signedPayload': ...}}. Got {type(doc).__name__}."
        )
    token = require(doc, "signedPayload", str, P)
    root = load_root_certificate(apple_root)
    header, payload, signing_input, sig = decode_jws(
        token, "signedPayload", verify=root is not None
    )
    ntype = require(payload, "notificationType", str, P)
    subtype = opt(payload, "subtype", str, P)
    uuid = require(payload, "notificationUUID", str, P)
    signed = from_unix_millis(require(payload, "signedDate", (int, float), P), P, "signedDate")
    if root is not None:
        verify_jws(header, signing_input, sig, root, signed, "signedPayload")
    if ntype not in APPLE_HANDLED_TYPES and ntype not in APPLE_IGNORED_TYPES:
        raise IntakeError(
            f"{P}: unknown notificationType {ntype!r} (notification {uuid}). Expected one of "
            f"{sorted(APPLE_HANDLED_TYPES | APPLE_IGNORED_TYPES)}."
        )
    ptype = f"{ntype}.{subtype}" if subtype else ntype
    n = Normalized(
        P,
        "app_store",
        uuid,
        ptype,
        signed,
        # a retry may be signed afresh: the hash covers the content, not the signature
        source_doc={k: v for k, v in payload.items() if k not in ("signedDate", "data")},
        verification="verified" if root is not None else "unverified",
    )
    if ntype in APPLE_IGNORED_TYPES:
        return n
    data = require(payload, "data", dict, P)
    tx = _decode(
        require(data, "signedTransactionInfo", str, P), "signedTransactionInfo", root, signed
    )
    renewal = None
    if data.get("signedRenewalInfo") is not None:
        renewal = _decode(data["signedRenewalInfo"], "signedRenewalInfo", root, signed)
    n.source_doc["data"] = {
        "status": data.get("status"),
        "tx": {k: v for k, v in tx.items() if k != "signedDate"},
        "renewal": {k: v for k, v in (renewal or {}).items() if k != "signedDate"},
    }
    otid = require(tx, "originalTransactionId", str, P)
    tid = opt(tx, "transactionId", str, P) or otid
    token_cust = opt(tx, "appAccountToken", str, P)
    cid = token_cust or f"app_store:{otid}"
    st: dict[str, Any] = {"subscription_id": otid, "customer_id": cid, "source": "app_store"}
    pid = opt(tx, "productId", str, P)
    if pid:
        st["plan_id"] = pid
        st["plan_tier"] = pid
    cur = opt(tx, "currency", str, P)
    price = None
    if tx.get("price") is not None:
        if isinstance(tx["price"], bool) or not isinstance(tx["price"], (int, float)):
            raise IntakeError(
                f"{P}: signedTransactionInfo.price must be milliunits (an integer). Got {tx['price']!r}."
            )
        price = tx["price"] / 1000.0
    purchase = tx.get("purchaseDate")
    expires = tx.get("expiresDate")
    purchase_ts = (
        from_unix_millis(purchase, P, "signedTransactionInfo.purchaseDate")
        if purchase is not None
        else None
    )
    expires_ts = (
        from_unix_millis(expires, P, "signedTransactionInfo.expiresDate")
        if expires is not None
        else None
    )
    if price is not None and cur:
        st["currency"] = cur.upper()
        interval = "month"
        if purchase_ts and expires_ts and (expires_ts - purchase_ts).days >= 300:
            interval = "year"
        st["price"] = price
        st["billing_interval"] = interval
        st["mrr"] = monthly_mrr(price, interval)
    opd = tx.get("originalPurchaseDate")
    if opd is not None:
        st["started_at"] = from_unix_millis(opd, P, "signedTransactionInfo.originalPurchaseDate")
    st["current_period_end"] = expires_ts
    status = data.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and status in _STATUS:
        st["status"] = _STATUS[status]
    elif status is not None:
        raise IntakeError(f"{P}: data.status {status!r} is not 1..5.")
    n.subscription = st
    n.customer = (
        {"customer_id": cid, "signup_at": st.get("started_at")}
        if st.get("started_at")
        else {"customer_id": cid}
    )
    codes = []
    offer_id = opt(tx, "offerIdentifier", str, P)
    offer_type = tx.get("offerType")
    if offer_id:
        codes.append(offer_id)
    n.redeemed_codes = codes
    code_toks = [f"code:{c}" for c in codes] + ([f"offer_type:{offer_type}"] if offer_type else [])
    evid = f"apple:{uuid}"
    amount = price
    money = {"amount": amount, "currency": cur} if amount is not None and cur else {}

    def add(et: str, when: datetime, suffix: str = "", **kw: Any) -> None:
        n.events.append(make_event(evid + suffix, when, cid, otid, "app_store", et, **kw))

    if ntype == "SUBSCRIBED":
        et = "reactivated" if subtype == "RESUBSCRIBE" else "subscribed"
        add(
            et,
            purchase_ts or signed,
            **money,
            detail=detail_tokens(ptype, f"transaction:{tid}", *code_toks),
        )
        st.update(
            cancel_requested_at=None,
            ended_at=None,
            cancel_reason=None,
            status=st.get("status", "active"),
        )
    elif ntype == "DID_RENEW":
        et = "payment_recovered" if subtype == "BILLING_RECOVERY" else "renewed"
        add(
            et,
            purchase_ts or signed,
            **money,
            detail=detail_tokens(ptype, f"transaction:{tid}", *code_toks),
        )
        st.update(ended_at=None)
    elif ntype == "DID_FAIL_TO_RENEW":
        add("payment_failed", signed, detail=detail_tokens(ptype, "initiator:system"))
        st.setdefault("status", "past_due")
    elif ntype == "DID_CHANGE_RENEWAL_STATUS":
        if subtype == "AUTO_RENEW_DISABLED":
            add(
                "cancel_requested",
                signed,
                reason="unknown",
                detail=detail_tokens(ptype, "initiator:customer"),
            )
            st["cancel_requested_at"] = signed
        else:
            st.update(cancel_requested_at=None, cancel_reason=None)
    elif ntype == "DID_CHANGE_RENEWAL_PREF":
        to = renewal.get("autoRenewProductId") if renewal else None
        add("plan_changed", signed, detail=detail_tokens(ptype, to and f"to:{to}"))
    elif ntype in ("EXPIRED", "GRACE_PERIOD_EXPIRED"):
        if ntype == "GRACE_PERIOD_EXPIRED":
            reason, who = "payment_failed", "system"
        elif subtype in APPLE_EXPIRED_SUBTYPES:
            reason, who = APPLE_EXPIRED_SUBTYPES[subtype]
        else:
            intent = renewal.get("expirationIntent") if renewal else None
            reason, who = APPLE_EXPIRATION_INTENT.get(intent, ("unknown", "customer"))
        ended = min(expires_ts, signed) if expires_ts else signed
        add("expired", ended, reason=reason, detail=detail_tokens(ptype, f"initiator:{who}"))
        st.update(status="expired", ended_at=ended, cancel_reason=reason)
    elif ntype == "REFUND":
        if amount is None or not cur:
            raise IntakeError(f"{P}: REFUND {uuid} has no price/currency in signedTransactionInfo.")
        add(
            "refunded",
            signed,
            amount=-amount,
            currency=cur,
            detail=detail_tokens(ptype, f"transaction:{tid}"),
        )
        if data.get("status") in (2, 5):
            # the refund ended access: an end of service requested by the customer
            rev = tx.get("revocationDate")
            when = from_unix_millis(rev, P, "revocationDate") if rev is not None else signed
            add(
                "cancelled",
                when,
                ":end",
                reason="other",
                detail=detail_tokens(ptype, "initiator:customer", "refund"),
            )
            st.update(status="cancelled", ended_at=when, cancel_reason="other")
    elif ntype == "REVOKE":
        rev = tx.get("revocationDate")
        when = from_unix_millis(rev, P, "revocationDate") if rev is not None else signed
        add(
            "cancelled",
            when,
            reason="other",
            detail=detail_tokens(ptype, "initiator:merchant", "revoked"),
        )
        st.update(status="cancelled", ended_at=when, cancel_reason="other")
    # OFFER_REDEEMED: state and redeemed codes only
    return n
