"""Experiments: deterministic arms, a holdout that is never contacted, written to the contract.

Invariants

* Assignment is a pure function of ``(salt, customer_id)``: the first 60
  bits of ``SHA-256(salt + ":" + customer_id)`` as a uniform number in
  [0, 1), cut by the arms' cumulative weights. Re-running gives the same arm;
  a new salt gives an independent draw.
* A control arm (``is_control``) is the holdout: its customers get an
  enrolment row (so nothing enrols them later) but no message and no code.
* Assignments are written to the contract tables ``campaigns``,
  ``campaign_arms`` and ``campaign_assignments`` so that the next uplift
  evaluation reads them. One contract arm row per (arm, offer, channel)
  actually used: ``<arm_id>|<offer key>|<channel>``. A holdout row has
  ``offer_type='none'`` (the contract: a control arm is not contacted) and
  names in its arm id the offer and channel the customer *would* have got,
  so uplift can be estimated per offer against its own control.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.exceptions import ConfigError

__all__ = ["Arm", "Experiment", "assign_arms", "assignment_uniform", "default_experiment"]


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment.

    Parameters
    ----------
    arm_id : unique within the experiment.
    weight : relative share of customers.
    is_control : holdout: never contacted.
    message_variant : passed to templates as ``variant``.
    send_delay_days : days from enrolment to the first message (timing variant).
    offer : optional fixed offer ``{"offer_type", "discount_pct", "discount_months"}``
        that replaces the target's (offer variant); None keeps the target's offer.
    sequence_id : optional sequence that replaces the one the book chooses.
    """

    arm_id: str
    weight: float = 1.0
    is_control: bool = False
    message_variant: str = "default"
    send_delay_days: int = 0
    offer: dict[str, Any] | None = None
    sequence_id: str | None = None


@dataclass
class Experiment:
    """A campaign with arms; ``salt`` makes its assignment independent of others."""

    campaign_id: str
    arms: list[Arm] = field(default_factory=list)
    salt: str | None = None
    name: str | None = None
    objective: str = "winback"

    def __post_init__(self) -> None:
        if not self.arms:
            raise ConfigError(f"Experiment {self.campaign_id!r} needs at least one arm. Got none.")
        ids = [a.arm_id for a in self.arms]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"Experiment {self.campaign_id!r} has duplicate arm ids: {ids}.")
        w = [float(a.weight) for a in self.arms]
        # NaN passes "< 0" and "<= 0": every customer would land in the last arm
        if not all(np.isfinite(x) and x >= 0 for x in w) or sum(w) <= 0:
            raise ConfigError(
                f"Experiment {self.campaign_id!r}: arm weights must be finite, >= 0 and sum > 0. "
                f"Got {w}."
            )
        for a in self.arms:
            if "|" in a.arm_id:
                raise ConfigError(f"Arm id {a.arm_id!r} must not contain '|'.")
        if self.salt is None:
            self.salt = self.campaign_id

    def arm(self, arm_id: str) -> Arm:
        for a in self.arms:
            if a.arm_id == arm_id:
                return a
        raise KeyError(arm_id)


def default_experiment(campaign_id: str, holdout: float = 0.1) -> Experiment:
    """A treatment arm and a holdout of share ``holdout`` (0 = no holdout)."""
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"holdout must be in [0, 1). Got {holdout!r} instead.")
    arms = [Arm("treatment", 1.0 - holdout)]
    if holdout > 0:
        arms.append(Arm("holdout", holdout, is_control=True))
    return Experiment(campaign_id, arms)


def assignment_uniform(customer_ids: Any, salt: str) -> np.ndarray:
    """The deterministic uniform [0, 1) number of each customer for ``salt``."""
    out = np.empty(len(customer_ids), dtype=float)
    for i, cid in enumerate(customer_ids):
        h = hashlib.sha256(f"{salt}:{cid}".encode()).digest()
        out[i] = (int.from_bytes(h[:8], "big") >> 4) / float(1 << 60)
    return out


def assign_arms(customer_ids: Any, experiment: Experiment) -> pd.Series:
    """Arm id per customer (index: customer id).

    Examples
    --------
    >>> exp = default_experiment("c1", holdout=0.2)
    >>> a = assign_arms([f"cus_{i}" for i in range(10_000)], exp)
    >>> round(float((a == "holdout").mean()), 2)
    0.2
    """
    ids = list(customer_ids)
    u = assignment_uniform(ids, str(experiment.salt))
    w = np.array([a.weight for a in experiment.arms], dtype=float)
    edges = np.cumsum(w) / w.sum()
    idx = np.minimum(np.searchsorted(edges, u, side="right"), len(w) - 1)
    names = np.array([a.arm_id for a in experiment.arms], dtype=object)
    return pd.Series(names[idx], index=pd.Index(ids, name="customer_id"), name="arm_id")
