"""Who may post to the receiver: every source authenticated, secure by default.

A forged cancellation (Chargebee, Recurly, Google Play, CSV) used to be accepted
and enrolled for a discount. Now each source needs its own credentials; a source
with nothing configured is refused unless explicitly allowed; nothing from a
refused caller is stored; secrets never reach the log or the answer.
"""

from __future__ import annotations

import base64
import logging
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from winback_ml.exceptions import ConfigError, SignatureError
from winback_ml.intake import IntakeLedger
from winback_ml.intake.auth import ReceiverAuth
from winback_ml.intake.ledger import inbox_table, winback_queue_table
from winback_ml.intake.receiver import create_app
from winback_ml.intake.recurly import sign_recurly_payload, verify_recurly_signature
from winback_ml.intake.samples import (
    chargebee_event,
    chargebee_subscription,
    csv_export,
    google_envelope,
    google_subscription,
    recurly_envelope,
    recurly_subscription,
    stripe_event,
    stripe_subscription,
)

T0 = datetime(2025, 3, 1, 12)


def TestClient(app):  # noqa: N802 - starlette's client, imported without its httpx notice
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient as _TC
    return _TC(app)


def _ours(caplog) -> str:
    """What the package logged (the test's own httpx client logs URLs, tokens included)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("winback_ml"))


END = T0 + timedelta(days=40)
SECRETS = {
    "chargebee_username": "cb-user-Zq",
    "chargebee_password": "cb-pass-Xy9",
    "recurly_secret": "rc-secret-Kw7",
    "google_token": "g-token-Pv3",
    "csv_token": "csv-token-Lm5",
}
AUTH = ReceiverAuth(**SECRETS)


def _cancellations() -> dict[str, bytes]:
    """A forged-looking end of service per source: each would be enqueued for win-back."""
    return {
        "chargebee": chargebee_event(
            "subscription_cancelled",
            chargebee_subscription(
                status="cancelled", start=T0, cancelled_at=END, cancel_reason_code="too expensive"
            ),
            occurred_at=END,
        ),
        "recurly": recurly_envelope(
            "expired",
            recurly_subscription(
                state="expired",
                start=T0,
                canceled_at=END,
                expires_at=END,
                expiration_reason="canceled",
            ),
            event_time=END,
        ),
        "google": google_envelope(
            13, google_subscription(state="SUBSCRIPTION_STATE_EXPIRED", start=T0), event_time=END
        ),
        "csv": csv_export(
            [
                {
                    "event_id": "f1",
                    "occurred_at": "2025-01-01",
                    "customer_id": "victim",
                    "subscription_id": "vs",
                    "event_type": "subscribed",
                    "plan_id": "p",
                    "plan_tier": "basic",
                    "billing_interval": "month",
                    "price": "9",
                    "currency": "USD",
                },
                {
                    "event_id": "f2",
                    "occurred_at": "2025-02-01",
                    "customer_id": "victim",
                    "subscription_id": "vs",
                    "event_type": "expired",
                },
            ]
        ),
    }


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def _genuine(provider: str, body: bytes) -> tuple[str, dict[str, str]]:
    if provider == "chargebee":
        return "/webhooks/chargebee", _basic(
            SECRETS["chargebee_username"], SECRETS["chargebee_password"]
        )
    if provider == "recurly":
        return "/webhooks/recurly", {
            "recurly-signature": sign_recurly_payload(body, SECRETS["recurly_secret"])
        }
    if provider == "google":
        return f"/webhooks/google?token={SECRETS['google_token']}", {}
    return "/webhooks/csv", {"Authorization": f"Bearer {SECRETS['csv_token']}"}


def _forgeries(provider: str, body: bytes) -> list[tuple[str, dict[str, str]]]:
    """No credentials, then wrong ones, then malformed ones."""
    path = f"/webhooks/{provider}"
    if provider == "chargebee":
        return [
            (path, {}),
            (path, _basic(SECRETS["chargebee_username"], "guess-0")),
            (path, _basic("guess-1", SECRETS["chargebee_password"])),
            (path, {"Authorization": "Basic !!notbase64"}),
            (path, {"Authorization": f"Bearer {SECRETS['chargebee_password']}"}),
        ]
    if provider == "recurly":
        other = sign_recurly_payload(body + b" ", SECRETS["recurly_secret"])
        return [
            (path, {}),
            (path, {"recurly-signature": sign_recurly_payload(body, "guess-2")}),
            (path, {"recurly-signature": other}),  # a signature of other bytes
            (path, {"recurly-signature": "garbage"}),
            # a genuine signature an hour old: replayed
            (
                path,
                {
                    "recurly-signature": sign_recurly_payload(
                        body, SECRETS["recurly_secret"], int((time.time() - 3600) * 1000)
                    )
                },
            ),
        ]
    if provider == "google":
        return [(path, {}), (path + "?token=guess-3", {}), (path + "?token=", {})]
    return [
        (path, {}),
        (path, {"Authorization": "Bearer guess-4"}),
        (path, {"Authorization": f"Basic {SECRETS['csv_token']}"}),
    ]


def _counts(led: IntakeLedger) -> tuple[int, int]:
    with led.engine.connect() as conn:
        inbox = conn.execute(sa.select(sa.func.count()).select_from(inbox_table)).scalar()
        queue = conn.execute(sa.select(sa.func.count()).select_from(winback_queue_table)).scalar()
    return inbox, queue


@pytest.mark.parametrize("provider", ["chargebee", "recurly", "google", "csv"])
def test_forged_cancellation_is_refused_and_the_genuine_one_enrolled(
    tmp_path, provider, caplog
) -> None:
    led = IntakeLedger(f"sqlite:///{tmp_path}/a.db")
    body = _cancellations()[provider]
    texts = []
    with caplog.at_level(logging.INFO), TestClient(create_app(led, auth=AUTH)) as c:
        for path, headers in _forgeries(provider, body):
            r = c.post(path, content=body, headers=headers)
            texts.append(r.text)
            assert r.status_code == 401, (path, headers, r.text)
            assert r.json()["status"] == "refused" and r.json()["reason"].startswith(provider)
            if provider in ("chargebee", "csv"):
                assert r.headers["www-authenticate"].split()[0] in ("Basic", "Bearer")
        assert _counts(led) == (0, 0)  # nothing from a refused caller is stored
        path, headers = _genuine(provider, body)
        r = c.post(path, content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json().get("enqueued", r.json().get("accepted")) >= 1
    inbox, queue = _counts(led)
    assert inbox >= 1 and queue == 1
    # the secrets (and the wrong guesses) never reach the log or an answer
    logged = _ours(caplog) + "".join(texts)
    assert "refused POST /webhooks/" + provider in logged
    for secret in [*SECRETS.values(), "guess-0", "guess-1", "guess-2", "guess-3", "guess-4"]:
        assert secret not in logged


def test_recurly_specific_refusals_name_the_cause(tmp_path) -> None:
    led = IntakeLedger(f"sqlite:///{tmp_path}/r.db")
    body = _cancellations()["recurly"]
    stale = sign_recurly_payload(body, SECRETS["recurly_secret"], int((time.time() - 3600) * 1000))
    with TestClient(create_app(led, auth=AUTH)) as c:
        r = c.post("/webhooks/recurly", content=body, headers={"recurly-signature": stale})
        assert "replay protection" in r.json()["reason"]
        r = c.post("/webhooks/recurly", content=body)
        assert "missing recurly-signature" in r.json()["reason"]
        big = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = c.post(
            "/webhooks/recurly",
            content=big,
            headers={"recurly-signature": sign_recurly_payload(big, SECRETS["recurly_secret"])},
        )
        assert r.status_code == 413 and "cannot be verified" in r.json()["reason"]
    assert _counts(led) == (0, 0)


def test_recurly_signature_scheme() -> None:
    body = b'{"id":"rn_1"}'
    key = "k"
    now = 1_700_000_000.0
    ms = int(now * 1000)
    verify_recurly_signature(body, sign_recurly_payload(body, key, ms), key, now=now)
    # Recurly's documented example header has a 10-digit (seconds) timestamp: read as seconds
    import hashlib
    import hmac

    mac = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    verify_recurly_signature(body, f"1700000000,{mac}", key, now=now + 10)
    # key rotation: two signatures, one of them by the configured key
    rotated = sign_recurly_payload(body, "old", ms).split(",")[1]
    verify_recurly_signature(body, f"{ms},{rotated},{mac_of(body, key, ms)}", key, now=now)
    for header, match in [
        (None, "missing"),
        ("", "missing"),
        ("1700000000000", "must be"),
        ("abc,def", "must be"),
        (f"{ms},{rotated}", "mismatch"),
        (f"{ms},\u00e9\u00e9", "mismatch"),  # non-ASCII: a signature error, not a TypeError
        (sign_recurly_payload(body, key, ms - 301_000), "replay protection"),
    ]:
        with pytest.raises(SignatureError, match=match):
            verify_recurly_signature(body, header, key, now=now)


@pytest.mark.parametrize(
    "stamp",
    [
        "\u00b2",  # superscript two: str.isdigit() is True, int() raises ValueError
        "1" * 400,  # int, but the ms -> s division overflows a float
        "9" * 5000,  # past Python's int/str digit limit
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic
    ],
)
def test_recurly_malformed_timestamp_is_a_signature_error_not_a_crash(tmp_path, stamp) -> None:
    body = b'{"id":"rn_1"}'
    with pytest.raises(SignatureError, match="must be"):
        verify_recurly_signature(body, f"{stamp},{mac_of(body, 'k', 1)}", "k", now=1.0)
    # through the receiver: 401, nothing stored (it was a 500 from an uncaught exception)
    led = IntakeLedger(f"sqlite:///{tmp_path}/m.db")
    with TestClient(create_app(led, auth=AUTH)) as c:
        r = c.post(
            "/webhooks/recurly",
            content=_cancellations()["recurly"],
            headers={"recurly-signature": f"{stamp},abcdef".encode()},
        )
        assert r.status_code == 401 and "must be" in r.json()["reason"]
    assert _counts(led) == (0, 0)


@pytest.mark.parametrize("stamp", ["9" * 400, "\u0661\u0662", "+1700000000", " 1700000000x"])
def test_stripe_malformed_timestamp_is_a_signature_error_not_a_crash(stamp) -> None:
    from winback_ml.intake.stripe import verify_stripe_signature

    with pytest.raises(SignatureError, match="no valid 't=' timestamp"):
        verify_stripe_signature(b"{}", f"t={stamp},v1=abcdef", "whsec_x", now=1.0)


def mac_of(body: bytes, key: str, ms: int) -> str:
    return sign_recurly_payload(body, key, ms).split(",")[1]


def test_secure_by_default_every_unconfigured_source_is_refused(tmp_path, caplog) -> None:
    led = IntakeLedger(f"sqlite:///{tmp_path}/d.db")  # no Stripe secret, no Apple root
    bodies = dict(_cancellations())
    bodies["stripe"] = stripe_event(
        "customer.subscription.deleted",
        stripe_subscription(start=T0, status="canceled", canceled_at=END, ended_at=END),
        created=END,
    )
    bodies["apple"] = b'{"signedPayload": "x.y.z"}'
    with caplog.at_level(logging.INFO), TestClient(create_app(led, auth=ReceiverAuth())) as c:
        for provider, body in bodies.items():
            r = c.post(f"/webhooks/{provider}", content=body)
            assert r.status_code == 403, (provider, r.text)
            reason = r.json()["reason"]
            assert "secure by default" in reason and "Fix:" in reason
            assert f"allow_unauthenticated=['{provider}']" in reason
    assert _counts(led) == (0, 0)
    start_up = [r.getMessage() for r in caplog.records if "receiver: /webhooks/" in r.getMessage()]
    assert len(start_up) == 6 and all("refused (403)" in m for m in start_up)
    assert all(
        r.levelno == logging.WARNING for r in caplog.records if "receiver: /" in r.getMessage()
    )


def test_explicitly_allowed_unauthenticated_source_is_accepted_and_logged(tmp_path, caplog) -> None:
    led = IntakeLedger(f"sqlite:///{tmp_path}/u.db")
    auth = ReceiverAuth(google_token=SECRETS["google_token"], allow_unauthenticated=["csv"])
    body = _cancellations()["csv"]
    with caplog.at_level(logging.INFO), TestClient(create_app(led, auth=auth)) as c:
        r = c.post("/webhooks/csv", content=body)
        assert r.status_code == 200 and r.json()["accepted"] == 2
        assert c.post("/webhooks/chargebee", content=b"{}").status_code == 403
        assert c.post("/webhooks/google", content=b"{}").status_code == 401
    lines = {
        r.getMessage().split(":")[1].strip(): r
        for r in caplog.records
        if r.getMessage().startswith("receiver: /webhooks/")
    }
    assert "UNAUTHENTICATED" in lines["/webhooks/csv"].getMessage()
    assert lines["/webhooks/csv"].levelno == logging.WARNING
    assert "authenticated (push token" in lines["/webhooks/google"].getMessage()
    assert lines["/webhooks/google"].levelno == logging.INFO
    assert SECRETS["google_token"] not in _ours(caplog)


def test_a_configured_secret_is_checked_even_when_the_source_is_also_allowed(tmp_path) -> None:
    led = IntakeLedger(f"sqlite:///{tmp_path}/b.db")
    auth = ReceiverAuth(csv_token=SECRETS["csv_token"], allow_unauthenticated=["csv"])
    with TestClient(create_app(led, auth=auth)) as c:
        assert c.post("/webhooks/csv", content=_cancellations()["csv"]).status_code == 401


def test_receiver_auth_config_errors_and_environment(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="allow_unauthenticated.*Got \\['paddle'\\]"):
        ReceiverAuth(allow_unauthenticated=["paddle"])
    with pytest.raises(ConfigError, match="empty secret authenticates anybody"):
        ReceiverAuth(csv_token="")
    with pytest.raises(ConfigError, match="both chargebee_username and chargebee_password"):
        ReceiverAuth(chargebee_username="u")
    # bad types are ConfigErrors, not TypeErrors; None allows nothing (secure by default)
    assert ReceiverAuth(allow_unauthenticated=None).allow_unauthenticated == frozenset()
    with pytest.raises(ConfigError, match="must be a list of sources"):
        ReceiverAuth(allow_unauthenticated=5)
    for tol in ("300", None, -1, float("nan"), True):
        with pytest.raises(ConfigError, match="recurly_tolerance"):
            ReceiverAuth(recurly_tolerance=tol)
    env = {
        "WINBACK_CHARGEBEE_WEBHOOK_USERNAME": "u1",
        "WINBACK_CHARGEBEE_WEBHOOK_PASSWORD": "p1",
        "WINBACK_RECURLY_WEBHOOK_SECRET": "",  # empty: not configured
        "WINBACK_CSV_UPLOAD_TOKEN": "t1",
        "WINBACK_RECEIVER_ALLOW_UNAUTHENTICATED": " Apple , google",
    }
    a = ReceiverAuth.from_env(env)
    assert (a.chargebee_username, a.chargebee_password, a.csv_token) == ("u1", "p1", "t1")
    assert a.recurly_secret is None and a.allow_unauthenticated == frozenset({"apple", "google"})
    assert "p1" not in repr(a) and "t1" not in repr(a)
    modes = {
        p: a.mode(p, stripe_secret=True, apple_root=False)
        for p in ("stripe", "apple", "chargebee", "recurly", "google", "csv")
    }
    assert modes == {
        "stripe": "authenticated",
        "apple": "unauthenticated",
        "chargebee": "authenticated",
        "recurly": "refused",
        "google": "unauthenticated",
        "csv": "authenticated",
    }
    # create_app without auth reads the environment
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    app = create_app(IntakeLedger("sqlite:///:memory:"))
    assert app.state.auth.csv_token == "t1"


@pytest.mark.parametrize("provider", ["chargebee", "recurly", "google", "csv"])
def test_secrets_mounted_from_files_keep_working_despite_their_trailing_line_break(
    tmp_path, provider
) -> None:
    # `--env-file`, Kubernetes secrets and `echo secret > file` leave "\n" (or "\r\n") at the end;
    # the provider signs with the secret itself, so the line break must not become part of it
    from winback_ml.intake.auth import ENV_VARS

    env = {ENV_VARS[k]: v + ("\r\n" if i % 2 else "\n") for i, (k, v) in enumerate(SECRETS.items())}
    auth = ReceiverAuth.from_env(env)
    assert auth.recurly_secret == SECRETS["recurly_secret"]
    assert auth.chargebee_password == SECRETS["chargebee_password"]
    led = IntakeLedger(f"sqlite:///{tmp_path}/nl.db")
    body = _cancellations()[provider]
    with TestClient(create_app(led, auth=auth)) as c:
        path, headers = _genuine(provider, body)
        assert c.post(path, content=body, headers=headers).status_code == 200
        forged_path, forged_headers = _forgeries(provider, body)[1]
        assert c.post(forged_path, content=body, headers=forged_headers).status_code == 401
    # only line breaks go: a space at the end may be part of a password on purpose
    spaced = ReceiverAuth.from_env({ENV_VARS["csv_token"]: "tok \n"})
    assert spaced.csv_token == "tok "
