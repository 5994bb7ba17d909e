"""The data contract (v1) as code: every table, column, type and enum.

This module is the single source of truth for the shape of the tables that
winback_ml reads (see ``CONTRACT.md`` of the project). Everything else
(loader, store, synthetic world, intake) takes its column lists and enums
from here.

Invariants of frames that leave the loader:

* timestamps are ``datetime64[ns]``, tz-naive, in UTC (aware inputs are
  converted to UTC; naive inputs are taken as UTC);
* dates (``usage.week_start``) are ``datetime64[ns]`` at midnight;
* money is ``float64`` in major units; ``mrr`` is in the reporting currency;
* strings are pandas ``object`` columns with ``None`` for missing;
* booleans are ``bool`` (nullable booleans are refused where the contract
  has no null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Column",
    "Table",
    "Violation",
    "TABLES",
    "REQUIRED_TABLES",
    "OPTIONAL_TABLES",
    "SOURCES",
    "BILLING_INTERVALS",
    "SUBSCRIPTION_STATUSES",
    "ENDED_STATUSES",
    "CANCEL_REASONS",
    "EVENT_TYPES",
    "TICKET_CATEGORIES",
    "INTERVIEW_MODES",
    "OFFER_INTEREST",
    "CAMPAIGN_OBJECTIVES",
    "OFFER_TYPES",
    "CHANNELS",
    "SEGMENTS",
    "REASON_SOURCES",
]

Kind = Literal["string", "timestamp", "date", "float", "int", "bool"]

SOURCES = ("stripe", "chargebee", "recurly", "app_store", "google_play", "manual")
BILLING_INTERVALS = ("month", "year")
SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "paused", "cancelled", "expired")
ENDED_STATUSES = ("cancelled", "expired")
CANCEL_REASONS = (
    "payment_failed",
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "contract_ended",
    "accidental",
    "other",
    "unknown",
)
EVENT_TYPES = (
    "subscribed",
    "renewed",
    "payment_failed",
    "payment_recovered",
    "cancel_requested",
    "cancelled",
    "expired",
    "reactivated",
    "plan_changed",
    "refunded",
)
TICKET_CATEGORIES = ("billing", "bug", "how_to", "feature_request", "complaint", "other")
INTERVIEW_MODES = ("text", "voice")
OFFER_INTEREST = ("yes", "maybe", "no")
CAMPAIGN_OBJECTIVES = ("winback", "save", "proactive")
OFFER_TYPES = ("none", "discount", "free_month", "feature_trial", "resume_billing", "early_renewal")
CHANNELS = ("email", "sms", "in_app", "multi")
SEGMENTS = ("hot", "warm", "lost", "misclassified")
REASON_SOURCES = ("stated", "inferred")


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    kind: Kind
    nullable: bool = True
    enum: tuple[str, ...] | None = None
    unique: bool = False
    min: float | None = None
    max: float | None = None
    pii: bool = False
    pattern: str | None = None  # a regular expression the non-null values must match
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """One contract table: its columns, key and references."""

    name: str
    columns: tuple[Column, ...]
    required: bool = True
    key: tuple[str, ...] = ()
    # (columns here, table there, columns there)
    references: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = ()
    doc: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


@dataclass
class Violation:
    """One broken contract rule: where, what, and how to fix it."""

    table: str
    column: str | None
    rule: str
    message: str
    fix: str
    count: int = 0
    examples: list = field(default_factory=list)  # first offending ids (or row numbers)

    def __str__(self) -> str:
        where = self.table + (f".{self.column}" if self.column else "")
        ex = ""
        if self.examples:
            ex = " e.g. " + ", ".join(repr(e) for e in self.examples[:5])
            if self.count > len(self.examples[:5]):
                ex += f" (+{self.count - len(self.examples[:5])} more)"
        return f"[{self.rule}] {where}: {self.message}{ex}. Fix: {self.fix}"


_ISO2 = r"^[A-Z]{2}$"
_ISO4217 = r"^[A-Z]{3}$"
_BCP47_PRIMARY = r"^[a-z]{2,3}$"
_E164 = r"^\+[1-9][0-9]{6,14}$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

TABLES: dict[str, Table] = {}


def _t(table: Table) -> Table:
    TABLES[table.name] = table
    return table


_t(
    Table(
        "customers",
        (
            Column("customer_id", "string", nullable=False, unique=True),
            Column("signup_at", "timestamp", nullable=False),
            Column("country", "string", pattern=_ISO2, doc="ISO 3166-1 alpha-2"),
            Column("language", "string", pattern=_BCP47_PRIMARY, doc="BCP-47 primary tag"),
            Column("timezone", "string", doc="IANA name"),
            Column("email", "string", pii=True, pattern=_EMAIL),
            Column("phone", "string", pii=True, pattern=_E164),
            Column("email_opt_in", "bool", nullable=False),
            Column("sms_opt_in", "bool", nullable=False),
            Column("acquisition_channel", "string"),
        ),
        key=("customer_id",),
    )
)
_t(
    Table(
        "subscriptions",
        (
            Column("subscription_id", "string", nullable=False, unique=True),
            Column("customer_id", "string", nullable=False),
            Column("source", "string", nullable=False, enum=SOURCES),
            Column("plan_id", "string", nullable=False),
            Column("plan_tier", "string", nullable=False),
            Column("billing_interval", "string", nullable=False, enum=BILLING_INTERVALS),
            Column("price", "float", nullable=False, min=0.0),
            Column("currency", "string", nullable=False, pattern=_ISO4217),
            Column("mrr", "float", nullable=False, min=0.0),
            Column("status", "string", nullable=False, enum=SUBSCRIPTION_STATUSES),
            Column("started_at", "timestamp", nullable=False),
            Column("current_period_end", "timestamp"),
            Column("cancel_requested_at", "timestamp"),
            Column("ended_at", "timestamp"),
            Column("cancel_reason", "string", enum=CANCEL_REASONS),
            Column("cancel_comment", "string", pii=True),
        ),
        key=("subscription_id",),
        references=((("customer_id",), "customers", ("customer_id",)),),
    )
)
_t(
    Table(
        "events",
        (
            Column("event_id", "string", nullable=False, unique=True),
            Column("occurred_at", "timestamp", nullable=False),
            Column("customer_id", "string", nullable=False),
            Column("subscription_id", "string", nullable=False),
            Column("source", "string", nullable=False, enum=SOURCES),
            Column("event_type", "string", nullable=False, enum=EVENT_TYPES),
            Column("amount", "float"),
            Column("currency", "string", pattern=_ISO4217),
            Column("reason", "string", enum=CANCEL_REASONS),
            Column("detail", "string"),
        ),
        key=("event_id",),
        references=(
            (("customer_id",), "customers", ("customer_id",)),
            (("subscription_id",), "subscriptions", ("subscription_id",)),
        ),
    )
)
_t(
    Table(
        "usage",
        (
            Column("customer_id", "string", nullable=False),
            Column("week_start", "date", nullable=False, doc="a Monday"),
            Column("sessions", "int", nullable=False, min=0),
            Column("active_minutes", "float", nullable=False, min=0.0),
            Column("features_used", "int", nullable=False, min=0),
        ),
        required=False,
        key=("customer_id", "week_start"),
        references=((("customer_id",), "customers", ("customer_id",)),),
    )
)
_t(
    Table(
        "support_tickets",
        (
            Column("ticket_id", "string", nullable=False, unique=True),
            Column("customer_id", "string", nullable=False),
            Column("created_at", "timestamp", nullable=False),
            Column("category", "string", nullable=False, enum=TICKET_CATEGORIES),
            Column("is_complaint", "bool", nullable=False),
            Column("csat", "int", min=1, max=5),
        ),
        required=False,
        key=("ticket_id",),
        references=((("customer_id",), "customers", ("customer_id",)),),
    )
)
_t(
    Table(
        "interviews",
        (
            Column("customer_id", "string", nullable=False),
            Column("answered_at", "timestamp", nullable=False),
            Column("mode", "string", nullable=False, enum=INTERVIEW_MODES),
            Column("quality_score", "int", nullable=False, min=1, max=5),
            Column("q1_cancel_story", "string", pii=True),
            Column("q2_breaking_point", "string", pii=True),
            Column("q3_tried_before", "string", pii=True),
            Column("q4_leave_strength", "int", min=1, max=5),
            Column("q5_using_instead", "string", pii=True),
            Column("q6_return_conditions", "string", pii=True),
            Column("q7_offer_interest", "string", enum=OFFER_INTEREST),
            Column("q8_ideal_product", "string", pii=True),
        ),
        required=False,
        key=("customer_id", "answered_at"),
        references=((("customer_id",), "customers", ("customer_id",)),),
    )
)
_t(
    Table(
        "campaigns",
        (
            Column("campaign_id", "string", nullable=False, unique=True),
            Column("name", "string", nullable=False),
            Column("objective", "string", nullable=False, enum=CAMPAIGN_OBJECTIVES),
            Column("started_at", "timestamp", nullable=False),
            Column("ended_at", "timestamp"),
        ),
        required=False,
        key=("campaign_id",),
    )
)
_t(
    Table(
        "campaign_arms",
        (
            Column("campaign_id", "string", nullable=False),
            Column("arm_id", "string", nullable=False),
            Column("is_control", "bool", nullable=False),
            Column("offer_type", "string", nullable=False, enum=OFFER_TYPES),
            Column("discount_pct", "float", nullable=False, min=0.0, max=100.0),
            Column("discount_months", "int", nullable=False, min=0),
            Column("channel", "string", nullable=False, enum=CHANNELS),
            Column("message_variant", "string"),
            Column("send_delay_days", "int", nullable=False, min=0),
        ),
        required=False,
        key=("campaign_id", "arm_id"),
        references=((("campaign_id",), "campaigns", ("campaign_id",)),),
    )
)
_t(
    Table(
        "campaign_assignments",
        (
            Column("campaign_id", "string", nullable=False),
            Column("customer_id", "string", nullable=False),
            Column("arm_id", "string", nullable=False),
            Column("assigned_at", "timestamp", nullable=False),
            Column("contact_cost", "float", nullable=False, min=0.0),
        ),
        required=False,
        key=("campaign_id", "customer_id"),
        references=(
            (("customer_id",), "customers", ("customer_id",)),
            (("campaign_id", "arm_id"), "campaign_arms", ("campaign_id", "arm_id")),
        ),
    )
)

REQUIRED_TABLES = tuple(n for n, t in TABLES.items() if t.required)
OPTIONAL_TABLES = tuple(n for n, t in TABLES.items() if not t.required)
#: The three campaign tables are optional together: all or none.
CAMPAIGN_TABLES = ("campaigns", "campaign_arms", "campaign_assignments")
