"""The playbook: the default win-back offer for each cancellation reason.

This is the rule-of-thumb policy of the module seed ("payment failure ->
resume billing; end of contract term -> early-renewal incentive; missing
features -> a trial of those modules"; discount codes for price) and the
baseline that the offer optimizer must beat by a measured margin.

Default playbook
----------------
================== ============================== ==========================================
reason             offer                          why
================== ============================== ==========================================
payment_failed     resume_billing                 involuntary: they never chose to leave
accidental         none (plain message)           seed: misclassified cancels convert when reached
contract_ended     early_renewal 15 % x 12 months seed: early-bird renewal incentive
missing_features   feature_trial                  seed: a trial of the missing modules
too_expensive      discount 20 % x 3 months       seed: discount code for price-sensitive
switched_service   free_month                     a free month to compare again
customer_service   free_month                     an apology credit
too_complex        none (plain message)           onboarding help, no incentive
low_quality        none (plain message)           "what we fixed" (close the loop)
unused             none (plain message)           an incentive is wasted on non-users
other, unknown     none (plain message)
================== ============================== ==========================================

Channels: the first of ``email, sms, in_app`` that the customer consented to
(``can_email``, ``can_sms``, ``can_in_app`` of the cohort) and that the
business config enables; a customer with none is not contacted. Customers of
a skipped segment (default ``lost``: the interview seed says not to spend
budget there) are not contacted.

Every chosen offer is one the config's catalog contains: an offer missing
from the catalog is replaced by the nearest one of the same type (closest
discount, then months), else by the plain message ``none``, else the
customer is not contacted; ``playbook_rule`` says which happened.

Configuration (key ``playbook:`` of the business config YAML)
-------------------------------------------------------------
.. code-block:: yaml

    playbook:
      channels: [email, sms, in_app]   # preference order (default)
      skip_segments: [lost]            # segments never contacted (default)
      reasons:                         # per-reason overrides, all keys optional
        too_expensive: {offer_type: discount, discount_pct: 30, discount_months: 3}
        unused: {contact: false}
        payment_failed: {channels: [sms, email]}
        switched_service: {offer_type: none, response_prior: true}  # a claim about the effect

``response_prior`` marks the entries that the offer-response model takes as
a prior on the reason x offer effect (a log lift that the campaign data
override). When not set: true for an incentive offer, false for a plain
message; the default ``accidental`` entry sets it true for its plain
message. Configuring a different offer for a reason drops the default's
setting (restate it to keep it); spelling out the same offer keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.cohort._inputs import require_columns
from winback_ml.config import BusinessConfig, Offer, load_config
from winback_ml.data.contract import CANCEL_REASONS, CHANNELS, OFFER_TYPES, SEGMENTS
from winback_ml.exceptions import ConfigError

__all__ = [
    "PlaybookEntry",
    "Playbook",
    "DEFAULT_PLAYBOOK",
    "DEFAULT_CHANNEL_PREFERENCE",
    "POLICY_COLUMNS",
    "load_playbook",
    "match_offer",
    "playbook_offer",
    "playbook_policy",
]

DEFAULT_CHANNEL_PREFERENCE: tuple[str, ...] = ("email", "sms", "in_app")

#: Columns of :func:`playbook_policy` (the targets' policy columns plus context).
POLICY_COLUMNS = [
    "customer_id",
    "cancel_reason",
    "segment",
    "contact",
    "offer_type",
    "discount_pct",
    "discount_months",
    "channel",
    "playbook_rule",
]


@dataclass(frozen=True)
class PlaybookEntry:
    """What to do for one reason: the offer, channel preference, and whether to contact.

    ``response_prior`` says whether the entry is also a claim about the offer's *effect*,
    which the offer-response model takes as a prior (a log lift the campaign data can
    override; see :attr:`is_response_prior`). ``None`` (default): an incentive offer is
    such a claim, a plain message is not (it is the no-incentive default of its reason).
    """

    offer: Offer
    channels: tuple[str, ...] | None = None  # None = the playbook's default preference
    contact: bool = True
    why: str = ""
    response_prior: bool | None = None

    @property
    def is_response_prior(self) -> bool:
        """True when the response model should treat this reason -> offer pair as a prior."""
        if not self.contact:
            return False
        if self.response_prior is not None:
            return self.response_prior
        return self.offer.offer_type != "none"


DEFAULT_PLAYBOOK: dict[str, PlaybookEntry] = {
    "payment_failed": PlaybookEntry(Offer("resume_billing"), why="involuntary: resume billing"),
    # the interview seed: "misclassified cancellations (by accident, billing confusion) convert
    # at 60 %+ when reached": reaching them is the lever, so the plain message is an effect claim
    "accidental": PlaybookEntry(
        Offer("none"), why="misclassified: convert when reached", response_prior=True
    ),
    "contract_ended": PlaybookEntry(
        Offer("early_renewal", 15.0, 12), why="early-bird renewal incentive"
    ),
    "missing_features": PlaybookEntry(Offer("feature_trial"), why="trial of the missing modules"),
    "too_expensive": PlaybookEntry(Offer("discount", 20.0, 3), why="discount code"),
    "switched_service": PlaybookEntry(Offer("free_month", 0.0, 1), why="a free month to compare"),
    "customer_service": PlaybookEntry(Offer("free_month", 0.0, 1), why="apology credit"),
    "too_complex": PlaybookEntry(Offer("none"), why="onboarding help, no incentive"),
    "low_quality": PlaybookEntry(Offer("none"), why="what we fixed"),
    "unused": PlaybookEntry(Offer("none"), why="no incentive for non-users"),
    "other": PlaybookEntry(Offer("none"), why="plain win-back message"),
    "unknown": PlaybookEntry(Offer("none"), why="plain win-back message"),
}


@dataclass(frozen=True)
class Playbook:
    """A resolved playbook: entries per reason, channel preference, skipped segments."""

    entries: Mapping[str, PlaybookEntry]
    channels: tuple[str, ...] = DEFAULT_CHANNEL_PREFERENCE
    skip_segments: tuple[str, ...] = ("lost",)

    def entry(self, reason: str | None) -> PlaybookEntry:
        """The entry of ``reason`` (``unknown``'s for an absent or unlisted reason)."""
        if reason is None or (isinstance(reason, float) and np.isnan(reason)):
            reason = "unknown"
        return self.entries.get(str(reason), self.entries["unknown"])


def _channels(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not v or any(c not in CHANNELS for c in v):
        raise ConfigError(
            f"The config key '{where}' must be a non-empty list of channels among "
            f"{list(CHANNELS)}. Got {v!r} instead."
        )
    return tuple(v)


def load_playbook(config: BusinessConfig | Mapping[str, Any] | str | None = None) -> Playbook:
    """The playbook of a business config: :data:`DEFAULT_PLAYBOOK` with the ``playbook:`` overrides.

    Raises :class:`ConfigError` naming the key for an unknown reason, offer
    type, channel or segment.
    """
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    raw = cfg.extra.get("playbook") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"The config key 'playbook' must be a mapping (channels, skip_segments, reasons). "
            f"Got {type(raw).__name__} instead."
        )
    unknown_keys = set(raw) - {"channels", "skip_segments", "reasons"}
    if unknown_keys:
        raise ConfigError(
            f"The config key 'playbook' has unknown key(s) {sorted(unknown_keys)}. "
            "Use channels, skip_segments and reasons."
        )
    channels = _channels(raw.get("channels", list(DEFAULT_CHANNEL_PREFERENCE)), "playbook.channels")
    skip = raw.get("skip_segments", ["lost"])
    if not isinstance(skip, (list, tuple)) or any(s not in SEGMENTS for s in skip):
        raise ConfigError(
            f"The config key 'playbook.skip_segments' must be a list among {list(SEGMENTS)}. "
            f"Got {skip!r} instead."
        )
    entries = dict(DEFAULT_PLAYBOOK)
    reasons = raw.get("reasons") or {}
    if not isinstance(reasons, Mapping):
        raise ConfigError(
            f"The config key 'playbook.reasons' must map reason to offer. Got {reasons!r} instead."
        )
    for reason, spec in reasons.items():
        key = f"playbook.reasons.{reason}"
        if reason not in CANCEL_REASONS:
            raise ConfigError(
                f"The config key '{key}' names an unknown reason. Use one of {list(CANCEL_REASONS)}."
            )
        if not isinstance(spec, Mapping):
            raise ConfigError(f"The config key '{key}' must be a mapping. Got {spec!r} instead.")
        bad = set(spec) - {
            "offer_type",
            "discount_pct",
            "discount_months",
            "channels",
            "contact",
            "response_prior",
        }
        if bad:
            raise ConfigError(
                f"The config key '{key}' has unknown key(s) {sorted(bad)}. Use offer_type, "
                "discount_pct, discount_months, channels, contact, response_prior."
            )
        e = entries[reason]
        if "offer_type" in spec:
            ot = spec["offer_type"]
            if ot not in OFFER_TYPES:
                raise ConfigError(
                    f"The config key '{key}.offer_type' must be one of {list(OFFER_TYPES)}. "
                    f"Got {ot!r} instead."
                )
            pct = spec.get("discount_pct", 0.0)
            mon = spec.get("discount_months", 1 if ot == "free_month" else 0)
            for name, v, hi in (("discount_pct", pct, 100), ("discount_months", mon, 120)):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi:
                    raise ConfigError(
                        f"The config key '{key}.{name}' must be a number in 0..{hi}. "
                        f"Got {v!r} instead."
                    )
            if ot == "discount" and pct <= 0:
                raise ConfigError(
                    f"The config key '{key}' is a discount with discount_pct 0. Give a depth "
                    "above 0 or use offer_type 'none'."
                )
            # a different offer drops the default's effect claim unless response_prior restates
            # it; the same offer spelled out keeps it
            new = Offer(ot, float(pct), int(mon))
            keep = e.response_prior if new == e.offer else None
            e = replace(e, offer=new, why="configured", response_prior=keep)
        if "channels" in spec:
            e = replace(e, channels=_channels(spec["channels"], f"{key}.channels"))
        for flag in ("contact", "response_prior"):
            if flag in spec:
                if not isinstance(spec[flag], bool):
                    raise ConfigError(
                        f"The config key '{key}.{flag}' must be true or false. "
                        f"Got {spec[flag]!r} instead."
                    )
                e = replace(e, **{flag: spec[flag]})
        if e.response_prior and not e.contact:
            raise ConfigError(
                f"The config key '{key}' sets response_prior true and contact false: a reason "
                "that is never contacted makes no claim about an offer's effect. Fix: drop "
                "response_prior or set contact true."
            )
        entries[reason] = e
    return Playbook(entries=entries, channels=channels, skip_segments=tuple(skip))


def match_offer(offer: Offer, catalog: list[Offer]) -> tuple[Offer | None, str]:
    """The catalog offer closest to ``offer``, and how it was found.

    Returns ``(offer, 'playbook')`` when the catalog has it, ``(nearest of the
    same type, 'nearest_in_catalog')``, ``(Offer('none'), 'plain_message')``
    when the type is absent, or ``(None, 'no_catalog_offer')``.
    """
    if offer in catalog:
        return offer, "playbook"
    same = [o for o in catalog if o.offer_type == offer.offer_type]
    if same:
        best = min(
            same,
            key=lambda o: (
                abs(o.discount_pct - offer.discount_pct),
                abs(o.discount_months - offer.discount_months),
                o.discount_pct,
            ),
        )
        return best, "nearest_in_catalog"
    none = [o for o in catalog if o.offer_type == "none"]
    if none:
        return none[0], "plain_message"
    return None, "no_catalog_offer"


def playbook_offer(
    reason: str | None,
    config: BusinessConfig | Mapping[str, Any] | str | None = None,
) -> Offer | None:
    """The playbook's offer for ``reason``, restricted to the config's catalog.

    ``None`` when the playbook says not to contact or the catalog has nothing usable.

    Examples
    --------
    >>> playbook_offer("contract_ended")
    Offer(offer_type='early_renewal', discount_pct=15.0, discount_months=12)
    >>> playbook_offer("too_expensive").key
    'discount_20pct_3m'
    """
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    e = load_playbook(cfg).entry(reason)
    if not e.contact:
        return None
    return match_offer(e.offer, cfg.offer_catalog())[0]


def playbook_policy(
    cohort_with_reasons: pd.DataFrame,
    config: BusinessConfig | Mapping[str, Any] | str | None = None,
) -> pd.DataFrame:
    """The playbook's decision for every cohort member, in the targets' policy columns.

    Parameters
    ----------
    cohort_with_reasons : DataFrame
        One row per customer with ``customer_id``, ``cancel_reason`` (from
        :func:`~winback_ml.cohort.reasons.infer_reasons`), the consent flags
        ``can_email``, ``can_sms``, ``can_in_app`` (from the cohort) and
        optionally ``segment`` (from :func:`~winback_ml.cohort.segments.assign_segments`).
    config : BusinessConfig, dict, YAML path or None
        Catalog, enabled channels and the ``playbook:`` key.

    Returns
    -------
    DataFrame
        :data:`POLICY_COLUMNS`, in input order: ``contact`` (bool),
        ``offer_type``, ``discount_pct``, ``discount_months``, ``channel``
        (``None`` when not contacted) and ``playbook_rule`` (``playbook``,
        ``nearest_in_catalog``, ``plain_message``, ``no_catalog_offer``,
        ``skip_segment``, ``no_contact_reason``, ``no_consented_channel``).
    """
    require_columns(
        cohort_with_reasons,
        ["customer_id", "cancel_reason", "can_email", "can_sms", "can_in_app"],
        "The 'cohort_with_reasons' frame (cohort merged with infer_reasons)",
    )
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    pb = load_playbook(cfg)
    catalog = cfg.offer_catalog()
    enabled = set(cfg.channels)
    df = cohort_with_reasons
    n = len(df)
    reasons = df["cancel_reason"].astype(object).where(df["cancel_reason"].notna(), "unknown")
    segment = (
        df["segment"].astype(object).to_numpy()
        if "segment" in df.columns
        else np.full(n, None, dtype=object)
    )
    consent = {
        "email": df["can_email"].fillna(False).astype(bool).to_numpy(),
        "sms": df["can_sms"].fillna(False).astype(bool).to_numpy(),
        "in_app": df["can_in_app"].fillna(False).astype(bool).to_numpy(),
    }
    consent["multi"] = consent["email"] & consent["sms"]
    contact = np.zeros(n, dtype=bool)
    offer_type = np.full(n, "none", dtype=object)
    pct = np.zeros(n)
    months = np.zeros(n, dtype=np.int64)
    channel = np.full(n, None, dtype=object)
    rule = np.full(n, "", dtype=object)
    for reason in pd.unique(reasons):
        m = (reasons == reason).to_numpy()
        e = pb.entry(reason)
        if not e.contact:
            rule[m] = "no_contact_reason"
            continue
        offer, how = match_offer(e.offer, catalog)
        if offer is None:
            rule[m] = how
            continue
        offer_type[m], pct[m], months[m] = (
            offer.offer_type,
            offer.discount_pct,
            offer.discount_months,
        )
        rule[m] = how
        chosen = np.full(n, None, dtype=object)
        for ch in e.channels or pb.channels:
            if ch not in enabled:
                continue
            free = m & (chosen == None) & consent[ch]  # noqa: E711
            chosen[free] = ch
        ok = m & (chosen != None)  # noqa: E711
        channel[ok] = chosen[ok]
        contact[ok] = True
        rule[m & ~ok] = "no_consented_channel"
    skip = np.isin(segment.astype(str), list(pb.skip_segments)) & pd.notna(segment)
    contact[skip] = False
    rule[skip] = "skip_segment"
    channel[~contact] = None
    offer_type[~contact] = "none"
    pct[~contact] = 0.0
    months[~contact] = 0
    return pd.DataFrame(
        {
            "customer_id": df["customer_id"].to_numpy(),
            "cancel_reason": reasons.to_numpy(),
            "segment": segment,
            "contact": contact,
            "offer_type": offer_type,
            "discount_pct": pct,
            "discount_months": months,
            "channel": channel,
            "playbook_rule": rule,
        }
    )
