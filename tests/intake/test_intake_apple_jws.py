"""Apple signedPayload: x5c chain up to a user-supplied root, ES256 signature."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest

from winback_ml.exceptions import SignatureError
from winback_ml.intake import normalize
from winback_ml.intake.samples import TestPKI, apple_notification, apple_renewal, apple_transaction

NOW = datetime(2026, 1, 1)


@pytest.fixture(scope="module")
def pki():
    return TestPKI.create()


@pytest.fixture(scope="module")
def body(pki):
    return apple_notification(
        "EXPIRED",
        apple_transaction(),
        subtype="BILLING_RETRY",
        status=2,
        renewal=apple_renewal(expiration_intent=2),
        pki=pki,
    )


def test_verified_with_the_right_root(pki, body):
    n = normalize("apple", body, apple_root=pki.root_pem, now=NOW)
    assert n.verification == "verified"
    assert n.events[0]["event_type"] == "expired" and n.events[0]["reason"] == "payment_failed"


def test_unverified_without_root(body):
    assert normalize("apple", body, now=NOW).verification == "unverified"


def test_other_root_fails(body):
    with pytest.raises(SignatureError, match="does not end at the supplied Apple root"):
        normalize("apple", body, apple_root=TestPKI.create(name="Evil").root_pem, now=NOW)


def test_tampered_payload_fails(pki, body):
    token = json.loads(body)["signedPayload"]
    h, p, s = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["subtype"] = "VOLUNTARY"  # turn an involuntary churn into a voluntary one
    p2 = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    forged = json.dumps({"signedPayload": f"{h}.{p2}.{s}"}).encode()
    assert (
        normalize("apple", forged, now=NOW).events[0]["reason"] == "unknown"
    )  # unverified mode decodes it
    with pytest.raises(SignatureError, match="signature does not verify"):
        normalize("apple", forged, apple_root=pki.root_pem, now=NOW)


def test_tampered_inner_transaction_fails(pki):
    other = TestPKI.create(name="Other")
    tx_jws = other.sign(apple_transaction())  # inner JWS signed by a different chain
    payload = {
        "notificationType": "DID_RENEW",
        "notificationUUID": "u-1",
        "signedDate": 1_740_000_000_000,
        "data": {"signedTransactionInfo": tx_jws, "status": 1},
    }
    body = json.dumps({"signedPayload": pki.sign(payload)}).encode()
    with pytest.raises(SignatureError, match="signedTransactionInfo"):
        normalize("apple", body, apple_root=pki.root_pem, now=NOW)


def test_certificate_not_valid_at_signed_date(body):
    old = TestPKI.create(valid_from=datetime(2010, 1, 1), days=365)
    b = apple_notification("DID_RENEW", apple_transaction(), pki=old)
    with pytest.raises(SignatureError, match="not valid at signedDate"):
        normalize("apple", b, apple_root=old.root_pem, now=NOW)


def test_broken_chain(pki):
    evil = TestPKI.create(name="Evil")
    mixed = TestPKI(
        root_pem=pki.root_pem, x5c=[evil.x5c[0], pki.x5c[1], pki.x5c[2]], _key=evil._key
    )
    b = apple_notification("DID_RENEW", apple_transaction(), pki=mixed)
    with pytest.raises(SignatureError, match=r"x5c\[0\] is not signed by x5c\[1\]"):
        normalize("apple", b, apple_root=pki.root_pem, now=NOW)


def test_a_leaf_certificate_cannot_issue_another(pki):
    # an attacker holding a genuine leaf (not a CA) and its key issues a leaf of their own
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    real_leaf = x509.load_der_x509_certificate(base64.b64decode(pki.x5c[0]))
    key = ec.generate_private_key(ec.SECP256R1())
    fake = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Forged Leaf")]))
        .issuer_name(real_leaf.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1))
        .not_valid_after(datetime(2020, 1, 1) + timedelta(days=3650))
        .sign(pki._key, hashes.SHA256())
    )
    forged = TestPKI(
        root_pem=pki.root_pem,
        x5c=[base64.b64encode(fake.public_bytes(serialization.Encoding.DER)).decode(), *pki.x5c],
        _key=key,
    )
    b = apple_notification("DID_RENEW", apple_transaction(), pki=forged)
    with pytest.raises(SignatureError, match=r"x5c\[1\] issues x5c\[0\] but is not a CA"):
        normalize("apple", b, apple_root=pki.root_pem, now=NOW)


def _pki_with_markers(leaf_oid: str | None, inter_oid: str | None) -> TestPKI:
    """A test CA whose leaf and intermediate carry the given marker OIDs (None: none)."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert(subject, key, issuer, issuer_key, ca, oid):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2020, 1, 1))
            .not_valid_after(datetime(2020, 1, 1) + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if oid:
            b = b.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00"), critical=False
            )
        return b.sign(issuer_key, hashes.SHA256())

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = cert("M Root", keys[0], "M Root", keys[0], True, None)
    inter = cert("M Inter", keys[1], "M Root", keys[0], True, inter_oid)
    leaf = cert("M Leaf", keys[2], "M Inter", keys[1], False, leaf_oid)
    der = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, inter, root)]
    return TestPKI(
        root_pem=root.public_bytes(serialization.Encoding.PEM),
        x5c=[base64.b64encode(d).decode() for d in der],
        _key=keys[2],
    )


LEAF_OID, INTER_OID = "1.2.840.113635.100.6.11.1", "1.2.840.113635.100.6.2.1"


@pytest.mark.parametrize(
    ("leaf_oid", "inter_oid", "match"),
    [
        (
            None,
            INTER_OID,
            r"x5c\[0\] lacks Apple's App Store signing \(leaf\) marker.*"
            r"1\.2\.840\.113635\.100\.6\.11\.1",
        ),
        (
            LEAF_OID,
            None,
            r"x5c\[1\] lacks Apple's Apple WWDR intermediate marker.*"
            r"1\.2\.840\.113635\.100\.6\.2\.1",
        ),
        (None, None, r"x5c\[0\] lacks"),
        (INTER_OID, LEAF_OID, r"x5c\[0\] lacks"),  # markers swapped
        ("1.2.840.113635.100.6.11.2", INTER_OID, r"x5c\[0\] lacks"),  # a sibling Apple OID
    ],
)
def test_chain_without_apple_marker_oids_is_rejected(leaf_oid, inter_oid, match):
    # a chain that is cryptographically sound up to the trusted root, but whose certificates
    # Apple did not issue for App Store notifications, must not be trusted
    pki = _pki_with_markers(leaf_oid, inter_oid)
    b = apple_notification("DID_RENEW", apple_transaction(), pki=pki)
    with pytest.raises(SignatureError, match=match):
        normalize("apple", b, apple_root=pki.root_pem, now=NOW)
    assert normalize("apple", b, now=NOW).verification == "unverified"  # no root: not checked


def test_chain_with_both_markers_verifies():
    pki = _pki_with_markers(LEAF_OID, INTER_OID)
    b = apple_notification("DID_RENEW", apple_transaction(), pki=pki)
    assert normalize("apple", b, apple_root=pki.root_pem, now=NOW).verification == "verified"
    unmarked = TestPKI.create(markers=False)
    b = apple_notification("DID_RENEW", apple_transaction(), pki=unmarked)
    with pytest.raises(SignatureError, match="marker extension"):
        normalize("apple", b, apple_root=unmarked.root_pem, now=NOW)


def test_a_lone_certificate_is_not_apples_chain():
    # a marked leaf issued straight by the trusted root: no WWDR intermediate in between
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pki = _pki_with_markers(LEAF_OID, INTER_OID)
    inter = x509.load_der_x509_certificate(base64.b64decode(pki.x5c[1]))
    trusted = inter.public_bytes(serialization.Encoding.PEM)
    lone = TestPKI(root_pem=trusted, x5c=pki.x5c[:1], _key=pki._key)
    b = apple_notification("DID_RENEW", apple_transaction(), pki=lone)
    with pytest.raises(SignatureError, match="x5c holds 1 certificate"):
        normalize("apple", b, apple_root=trusted, now=NOW)
