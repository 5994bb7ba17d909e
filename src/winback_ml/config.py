"""Business config: the YAML file every scheduled run takes.

All keys are optional; the defaults are those of the data contract. Load with
:func:`load_config`; an inconsistent config (negative cost, margin above 1,
an unknown offer type, ...) raises :class:`~winback_ml.exceptions.ConfigError`
that names the key and the fix.

Example
-------
>>> from winback_ml.config import load_config
>>> cfg = load_config(None)
>>> cfg.margin, cfg.attribution_window_days
(0.8, 30)
>>> len(cfg.offer_catalog())  # every concrete offer the optimizer may choose
29
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from winback_ml.data.contract import CHANNELS, OFFER_TYPES
from winback_ml.exceptions import ConfigError

__all__ = ["BusinessConfig", "Offer", "DEFAULT_CONFIG", "load_config"]

DEFAULT_CONFIG: dict[str, Any] = {
    "margin": 0.8,
    "ltv_horizon_months": 24,
    "attribution_window_days": 30,
    "lapsed_window_days": 90,
    "contact_cost": {"email": 0.006, "sms": 0.03, "in_app": 0.0, "multi": 0.036},
    "offers": [
        {"offer_type": "none"},
        {
            "offer_type": "discount",
            "discount_pct": [5, 10, 15, 20, 25, 30, 40, 50],
            "discount_months": [1, 3, 6],
        },
        {"offer_type": "free_month", "discount_months": 1},
        {"offer_type": "feature_trial"},
        {"offer_type": "resume_billing"},
        {"offer_type": "early_renewal", "discount_pct": 15, "discount_months": 12},
    ],
    "channels": ["email", "sms", "in_app", "multi"],
    "budget": None,
    "max_cost_per_reactivation": None,
    # extensions (not in the contract's example, all optional)
    "annual_discount_rate": 0.10,  # for discounting LTV cash flows
}


@dataclass(frozen=True, order=True)
class Offer:
    """One concrete offer: type, discount depth and duration.

    ``discount_pct`` is 0..100; ``free_month`` is a 100 % discount for
    ``discount_months`` (default 1).
    """

    offer_type: str
    discount_pct: float = 0.0
    discount_months: int = 0

    @property
    def key(self) -> str:
        if self.offer_type in ("discount", "early_renewal"):
            return f"{self.offer_type}_{self.discount_pct:g}pct_{self.discount_months}m"
        if self.offer_type == "free_month":
            return f"free_month_{self.discount_months}m"
        return self.offer_type

    @property
    def effective_discount_pct(self) -> float:
        """Price reduction in percent during ``discount_months``."""
        return 100.0 if self.offer_type == "free_month" else float(self.discount_pct)


@dataclass
class BusinessConfig:
    """A validated business config (see the module docstring)."""

    margin: float = 0.8
    ltv_horizon_months: int = 24
    attribution_window_days: int = 30
    lapsed_window_days: int = 90
    contact_cost: dict[str, float] = field(default_factory=dict)
    offers: list[dict[str, Any]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    budget: float | None = None
    max_cost_per_reactivation: float | None = None
    annual_discount_rate: float = 0.10
    extra: dict[str, Any] = field(default_factory=dict)  # keys the package does not know

    def offer_catalog(self) -> list[Offer]:
        """Every concrete :class:`Offer` the optimizer may choose, expanded from ``offers``."""
        out: list[Offer] = []
        for spec in self.offers:
            t = spec["offer_type"]
            pcts = _as_list(spec.get("discount_pct", 100 if t == "free_month" else 0))
            months = _as_list(spec.get("discount_months", 1 if t == "free_month" else 0))
            if t == "free_month":
                pcts = [0]
            for p, m in itertools.product(pcts, months):
                if t in ("none", "feature_trial", "resume_billing"):
                    p, m = 0, int(m)
                out.append(Offer(t, float(p), int(m)))
        seen: set[Offer] = set()
        uniq = []
        for o in out:
            if o not in seen:
                seen.add(o)
                uniq.append(o)
        return uniq

    def to_dict(self) -> dict[str, Any]:
        d = {k: copy.deepcopy(getattr(self, k)) for k in DEFAULT_CONFIG}
        d.update(self.extra)
        return d


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _check_number(name: str, v: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"The config key '{name}' must be a number. Got {v!r} instead.")
    if lo is not None and v < lo:
        raise ConfigError(f"The config key '{name}' must be >= {lo}. Got {v!r} instead.")
    if hi is not None and v > hi:
        raise ConfigError(f"The config key '{name}' must be <= {hi}. Got {v!r} instead.")
    return float(v)


def load_config(source: str | Path | dict[str, Any] | None = None) -> BusinessConfig:
    """Read and validate a business config.

    Parameters
    ----------
    source : path to a YAML file, a dict, or None for the defaults.
        Missing keys take the contract's defaults; unknown keys are kept in
        ``extra`` (the contract may grow).
    """
    raw: dict[str, Any]
    if source is None:
        raw = {}
    elif isinstance(source, dict):
        raw = dict(source)
    else:
        p = Path(source)
        if not p.exists():
            raise ConfigError(
                f"The config file {str(p)!r} does not exist. Pass an existing YAML file or omit --config."
            )
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"The config file {str(p)!r} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"The config file {str(p)!r} must hold a mapping of keys. Got {type(loaded).__name__}."
            )
        raw = loaded
    merged = copy.deepcopy(DEFAULT_CONFIG)
    extra = {k: v for k, v in raw.items() if k not in DEFAULT_CONFIG}
    for k, v in raw.items():
        if k in DEFAULT_CONFIG:
            if k == "contact_cost" and isinstance(v, dict):
                merged[k] = {**merged[k], **v}
            else:
                merged[k] = v

    margin = _check_number("margin", merged["margin"], 0.0, 1.0)
    horizon = int(_check_number("ltv_horizon_months", merged["ltv_horizon_months"], 1, 240))
    window = int(
        _check_number("attribution_window_days", merged["attribution_window_days"], 1, 365)
    )
    lapsed = int(_check_number("lapsed_window_days", merged["lapsed_window_days"], 1, 3650))
    rate = _check_number("annual_discount_rate", merged["annual_discount_rate"], 0.0, 1.0)
    cc = merged["contact_cost"]
    if not isinstance(cc, dict):
        raise ConfigError(
            f"The config key 'contact_cost' must map channel to cost. Got {cc!r} instead."
        )
    for ch, cost in cc.items():
        if ch not in CHANNELS:
            raise ConfigError(
                f"The config key 'contact_cost' has unknown channel {ch!r}. Use one of {list(CHANNELS)}."
            )
        _check_number(f"contact_cost.{ch}", cost, 0.0)
    channels = merged["channels"]
    if not isinstance(channels, list) or not channels:
        raise ConfigError(
            f"The config key 'channels' must be a non-empty list. Got {channels!r} instead."
        )
    for ch in channels:
        if ch not in CHANNELS:
            raise ConfigError(
                f"The config key 'channels' has unknown channel {ch!r}. Use one of {list(CHANNELS)}."
            )
        if ch not in cc:
            raise ConfigError(
                f"Channel {ch!r} is enabled but has no 'contact_cost'. Add contact_cost.{ch}."
            )
    offers = merged["offers"]
    if not isinstance(offers, list) or not offers:
        raise ConfigError(
            f"The config key 'offers' must be a non-empty list. Got {offers!r} instead."
        )
    for i, spec in enumerate(offers):
        if not isinstance(spec, dict) or spec.get("offer_type") not in OFFER_TYPES:
            raise ConfigError(
                f"offers[{i}] must have an 'offer_type' among {list(OFFER_TYPES)}. Got {spec!r} instead."
            )
        for p in _as_list(spec.get("discount_pct", 0)):
            _check_number(f"offers[{i}].discount_pct", p, 0.0, 100.0)
        for m in _as_list(spec.get("discount_months", 0)):
            _check_number(f"offers[{i}].discount_months", m, 0, 120)
        if spec["offer_type"] == "discount" and 0 in _as_list(spec.get("discount_pct", 0)):
            raise ConfigError(
                f"offers[{i}] is a discount with discount_pct 0. Give a depth above 0 or use offer_type 'none'."
            )
    budget = merged["budget"]
    if budget is not None:
        budget = _check_number("budget", budget, 0.0)
    mcpr = merged["max_cost_per_reactivation"]
    if mcpr is not None:
        mcpr = _check_number("max_cost_per_reactivation", mcpr, 0.0)
    return BusinessConfig(
        margin=margin,
        ltv_horizon_months=horizon,
        attribution_window_days=window,
        lapsed_window_days=lapsed,
        contact_cost={k: float(v) for k, v in cc.items()},
        offers=offers,
        channels=list(channels),
        budget=budget,
        max_cost_per_reactivation=mcpr,
        annual_discount_rate=rate,
        extra=extra,
    )
