"""Dispatch: the scored target list becomes messages, sent exactly once.

Stages of the journey, one module each::

    sequences   which message, which day, which channel (YAML) + settings
    templates   sandboxed Jinja2, HTML autoescaped, per language with English fallback
    codes       random unique single-use discount codes, CSV export, redemption
    experiments deterministic arms and a never-contacted holdout -> campaign tables
    enrol       targets (or the intake queue, see autolaunch) -> enrolments + outbox
    policy      stop rules, suppression, consent, quiet hours, unsubscribe, STOP
    channels    SMTP e-mail, Twilio-style SMS, in-app webhook/table, dry run
    outbox      the Dispatcher: claim, render, send, record; recovery after a crash
    autolaunch  the intake queue -> scored targets -> enrolments (contact window)
    web         unsubscribe (one-click) and inbound SMS (STOP) endpoints
    testing     loopback SMTP/HTTP servers for tests, demo and benchmark

Time zone: every timestamp in frames and tables is naive UTC; quiet hours
are evaluated in the customer's IANA time zone. See ``docs/dispatch.md`` for
the delivery guarantee.
"""

from __future__ import annotations

from winback_ml.dispatch.channels import (
    Channel,
    DryRunChannel,
    OutboundMessage,
    SendResult,
    SMTPEmailChannel,
    TableInAppChannel,
    TwilioSMSChannel,
    WebhookInAppChannel,
)
from winback_ml.dispatch.codes import (
    export_codes_csv,
    generate_code,
    issue_codes,
    mark_redeemed_from_events,
    redeem_code,
)
from winback_ml.dispatch.enrol import EnrolPlan, enrol_targets, plan_enrolment, validate_targets
from winback_ml.dispatch.experiments import Arm, Experiment, assign_arms, default_experiment
from winback_ml.dispatch.outbox import Dispatcher, TickReport, dead_letters, outbox_counts
from winback_ml.dispatch.policy import (
    apply_stop_rules,
    handle_inbound_sms,
    make_unsubscribe_token,
    record_feedback,
    unsubscribe,
    verify_unsubscribe_token,
)
from winback_ml.dispatch.schema import DispatchDB
from winback_ml.dispatch.sequences import DispatchSettings, SequenceBook, load_sequences
from winback_ml.dispatch.templates import RenderError, TemplateRenderer

__all__ = [
    "Arm",
    "Channel",
    "DispatchDB",
    "DispatchSettings",
    "Dispatcher",
    "DryRunChannel",
    "EnrolPlan",
    "Experiment",
    "OutboundMessage",
    "RenderError",
    "SMTPEmailChannel",
    "SendResult",
    "SequenceBook",
    "TableInAppChannel",
    "TemplateRenderer",
    "TickReport",
    "TwilioSMSChannel",
    "WebhookInAppChannel",
    "apply_stop_rules",
    "assign_arms",
    "dead_letters",
    "default_experiment",
    "enrol_targets",
    "export_codes_csv",
    "generate_code",
    "handle_inbound_sms",
    "issue_codes",
    "load_sequences",
    "make_unsubscribe_token",
    "mark_redeemed_from_events",
    "outbox_counts",
    "plan_enrolment",
    "record_feedback",
    "redeem_code",
    "unsubscribe",
    "validate_targets",
    "verify_unsubscribe_token",
]
