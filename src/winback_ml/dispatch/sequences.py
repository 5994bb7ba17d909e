"""Sequences (which message goes out on which day, on which channel) and dispatch settings.

A sequences file is YAML (see the package's ``sequences/default.yaml``)::

    settings: {...}              # DispatchSettings fields, all optional
    sequences:
      - id: winback_30d
        match: {segment: [hot, warm], offer_type: [discount], channel: [multi]}
        steps:
          - {name: intro, day: 0, channel: email, template: intro}

Invariants: step days are >= 0 and non-decreasing within a sequence; step
names are unique within a sequence (the idempotency key uses the index and
the name); every channel is one of ``email sms in_app``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from winback_ml.exceptions import ConfigError

__all__ = [
    "Step",
    "Sequence",
    "SequenceBook",
    "DispatchSettings",
    "STEP_CHANNELS",
    "ALLOWED_STEP_CHANNELS",
    "load_sequences",
]

STEP_CHANNELS = ("email", "sms", "in_app")
#: Which step channels a target's ``channel`` allows.
ALLOWED_STEP_CHANNELS: dict[str, frozenset[str]] = {
    "email": frozenset({"email", "in_app"}),
    "sms": frozenset({"sms", "in_app"}),
    "in_app": frozenset({"in_app"}),
    "multi": frozenset({"email", "sms", "in_app"}),
}


@dataclass(frozen=True)
class Step:
    """One message of a sequence."""

    name: str
    day: int
    channel: str
    template: str


@dataclass(frozen=True)
class Sequence:
    """A named list of steps and the targets it applies to."""

    id: str
    steps: tuple[Step, ...]
    match: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def matches(self, **attrs: Any) -> bool:
        return all(str(attrs.get(k)) in v for k, v in self.match.items())

    def steps_for(self, target_channel: str) -> list[tuple[int, Step]]:
        """(index, step) pairs allowed by a target's channel."""
        allowed = ALLOWED_STEP_CHANNELS.get(target_channel)
        if allowed is None:
            raise ConfigError(
                f"A target's channel must be one of {list(ALLOWED_STEP_CHANNELS)}. "
                f"Got {target_channel!r} instead."
            )
        return [(i, s) for i, s in enumerate(self.steps) if s.channel in allowed]


_HM = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass
class DispatchSettings:
    """Operational settings of dispatch (the ``settings`` block of a sequences file)."""

    code_valid_days: int = 30
    code_length: int = 12
    quiet_hours: dict[str, str] | None = field(
        default_factory=lambda: {"start": "21:00", "end": "09:00"}
    )
    default_timezone: str = "UTC"
    frequency_cap: dict[str, int] = field(default_factory=lambda: {"per_day": 1, "per_week": 3})
    max_attempts: int = 5
    backoff_minutes: float = 10.0
    lease_seconds: float = 120.0
    contact_delay_days: int = 14
    immediate_reasons: list[str] = field(default_factory=lambda: ["payment_failed"])
    on_uncertain: str = "dead"
    brand_name: str = "Our service"
    product_url: str = "https://example.com"
    from_address: str = "winback@example.com"
    unsubscribe_base_url: str = "https://example.com/unsubscribe"

    def __post_init__(self) -> None:
        if self.on_uncertain not in ("dead", "resend"):
            raise ConfigError(
                f"settings.on_uncertain must be 'dead' or 'resend'. Got {self.on_uncertain!r} instead."
            )
        for name in ("max_attempts", "code_valid_days"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"settings.{name} must be >= 1. Got {getattr(self, name)!r}.")
        if self.code_length * 5 < 50:
            raise ConfigError(
                f"settings.code_length must give >= 50 bits (>= 10 characters). Got {self.code_length}."
            )
        if self.lease_seconds <= 0:
            raise ConfigError(f"settings.lease_seconds must be > 0. Got {self.lease_seconds}.")
        # checked here, not at the first tick (where a bad value crashed every send)
        if self.quiet_hours is not None:
            q = self.quiet_hours
            if not isinstance(q, dict) or set(q) != {"start", "end"}:
                raise ConfigError(
                    f"settings.quiet_hours must be null or {{start: 'HH:MM', end: 'HH:MM'}}. Got {q!r}."
                )
            for k in ("start", "end"):
                m = _HM.match(str(q[k])) if isinstance(q[k], str) else None
                if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
                    raise ConfigError(
                        f"settings.quiet_hours.{k} must be a 'HH:MM' string. Got {q[k]!r}. "
                        "Fix: quote it in YAML (unquoted 21:00 is read as the number 1260)."
                    )
        try:
            ZoneInfo(str(self.default_timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"settings.default_timezone {self.default_timezone!r} is not an IANA time zone. "
                "Fix: use a name like 'UTC' or 'Europe/Berlin'."
            ) from None
        cap = self.frequency_cap or {}
        if not isinstance(cap, dict) or set(cap) - {"per_day", "per_week"}:
            raise ConfigError(
                f"settings.frequency_cap must be {{per_day: n, per_week: n}}. Got {cap!r}."
            )
        for k, v in cap.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(
                    f"settings.frequency_cap.{k} must be an integer >= 0 (0: no cap). Got {v!r}."
                )


@dataclass
class SequenceBook:
    """All sequences of a file plus its settings; :meth:`choose` picks one per target."""

    sequences: list[Sequence]
    settings: DispatchSettings

    def choose(
        self, segment: Any, offer_type: Any, channel: Any, cancel_reason: Any = None
    ) -> Sequence:
        """The first sequence whose ``match`` holds for these target attributes."""
        for s in self.sequences:
            if s.matches(
                segment=segment, offer_type=offer_type, channel=channel, cancel_reason=cancel_reason
            ):
                return s
        raise ConfigError(
            f"No sequence matches segment={segment!r}, offer_type={offer_type!r}, channel={channel!r}. "
            "Fix: add a sequence with an empty 'match' as the last one (a catch-all)."
        )

    def get(self, sequence_id: str) -> Sequence:
        for s in self.sequences:
            if s.id == sequence_id:
                return s
        raise ConfigError(
            f"No sequence with id {sequence_id!r}; have {[s.id for s in self.sequences]}."
        )


def load_sequences(source: str | Path | dict[str, Any] | None = None) -> SequenceBook:
    """Read and validate a sequences file (None: the package default).

    Examples
    --------
    >>> book = load_sequences()
    >>> [s.day for s in book.get("winback_30d").steps]
    [0, 3, 7, 14, 28]
    """
    if source is None:
        text = resources.files("winback_ml.dispatch").joinpath("sequences/default.yaml").read_text()
        raw = yaml.safe_load(text)
        where = "default.yaml"
    elif isinstance(source, dict):
        raw, where = source, "<dict>"
    else:
        p = Path(source)
        if not p.exists():
            raise ConfigError(f"The sequences file {str(p)!r} does not exist.")
        try:
            raw = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"The sequences file {str(p)!r} is not valid YAML: {e}") from e
        where = str(p)
    if not isinstance(raw, dict) or not isinstance(raw.get("sequences"), list):
        raise ConfigError(
            f"{where}: expected a mapping with a 'sequences' list. Got {type(raw).__name__}."
        )
    known = {f.name for f in fields(DispatchSettings)}
    st = raw.get("settings") or {}
    unknown = set(st) - known
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}; known: {sorted(known)}.")
    settings = DispatchSettings(**st)
    seqs = []
    ids = set()
    for i, s in enumerate(raw["sequences"]):
        if not isinstance(s, dict) or "id" not in s or not s.get("steps"):
            raise ConfigError(
                f"{where}: sequences[{i}] needs an 'id' and a non-empty 'steps' list."
            )
        if s["id"] in ids:
            raise ConfigError(f"{where}: sequence id {s['id']!r} appears twice.")
        ids.add(s["id"])
        steps = []
        last_day = 0
        names = set()
        for j, st_ in enumerate(s["steps"]):
            where_j = f"{where}: sequences[{i}] ({s['id']}) step {j}"
            try:
                step = Step(
                    str(st_["name"]), int(st_["day"]), str(st_["channel"]), str(st_["template"])
                )
            except (KeyError, TypeError, ValueError) as e:
                raise ConfigError(
                    f"{where_j} needs name, day (int), channel and template: {e}"
                ) from e
            if step.channel not in STEP_CHANNELS:
                raise ConfigError(
                    f"{where_j}: channel must be one of {STEP_CHANNELS}. Got {step.channel!r}."
                )
            if step.day < last_day:
                raise ConfigError(
                    f"{where_j}: days must not decrease. Got {step.day} after {last_day}."
                )
            if step.name in names:
                raise ConfigError(f"{where_j}: step name {step.name!r} appears twice.")
            names.add(step.name)
            last_day = step.day
            steps.append(step)
        match = {
            k: tuple(str(x) for x in (v if isinstance(v, list) else [v]))
            for k, v in (s.get("match") or {}).items()
        }
        bad = set(match) - {"segment", "offer_type", "channel", "cancel_reason"}
        if bad:
            raise ConfigError(f"{where}: sequences[{i}] match keys {sorted(bad)} are unknown.")
        seqs.append(Sequence(str(s["id"]), tuple(steps), match))
    return SequenceBook(seqs, settings)
