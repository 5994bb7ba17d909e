"""Intake: provider payloads -> contract ``events``, ``subscriptions``, win-back queue.

The first stage of the journey. Billing providers (Stripe, Chargebee,
Recurly, Apple App Store, Google Play) and CSV exports send payloads in their
own shapes and units; intake turns them into the contract's ``events`` and
``subscriptions`` through one governed flow:

1. :func:`normalize` (pure): body -> :class:`Normalized` (contract events,
   a subscription snapshot, customer details), money in major units, times
   tz-naive UTC, provider reasons mapped to canonical reasons
   (:mod:`winback_ml.intake.reasons`), voluntary versus involuntary kept.
2. :class:`IntakeLedger`: stores the raw body first, then upserts events
   (idempotent on ``event_id``), recomputes the subscription from its
   snapshots (out-of-order delivery converges), creates unknown customers,
   enqueues every end of service in ``winback_queue`` (read by dispatch),
   and dead-letters whatever it cannot take, with the reason.
3. :func:`create_app`: the ASGI webhook receiver
   (``POST /webhooks/{provider}``, ``GET /healthz``). Every source is
   authenticated (:class:`ReceiverAuth`, :mod:`winback_ml.intake.auth`); a
   source with nothing configured is refused unless explicitly allowed.

Invariants: nothing is dropped (every body is accepted, a duplicate or a
dead letter with a reason); a rejected body changes no contract row; all
timestamps are tz-naive UTC; PII is never logged.
"""

from winback_ml.intake._common import MAX_BODY_BYTES, PROVIDERS, Normalized
from winback_ml.intake.auth import ReceiverAuth
from winback_ml.intake.ledger import (
    INTAKE_METADATA,
    HealthReport,
    IntakeLedger,
    Outcome,
    winback_queue_table,
)
from winback_ml.intake.normalize import normalize, split_bodies
from winback_ml.intake.recurly import verify_recurly_signature
from winback_ml.intake.stripe import verify_stripe_signature

__all__ = [
    "PROVIDERS",
    "MAX_BODY_BYTES",
    "Normalized",
    "normalize",
    "split_bodies",
    "verify_stripe_signature",
    "verify_recurly_signature",
    "ReceiverAuth",
    "IntakeLedger",
    "Outcome",
    "HealthReport",
    "INTAKE_METADATA",
    "winback_queue_table",
    "create_app",
]


def __getattr__(name: str):  # lazy: the receiver imports starlette
    if name == "create_app":
        from winback_ml.intake.receiver import create_app

        return create_app
    raise AttributeError(name)
