"""The known truth of a synthetic world: latent parameters and exact effect functions.

:func:`winback_ml.data.synthetic.make_world` simulates a subscription business
from the mechanisms below; this module holds the *same* mechanisms as closed
forms, so tests can compare what a model learns from the contract tables with
what is true. The simulation and the truth share one set of functions (the
churn hazard engine, the cure model of natural returns, the offer response),
so they cannot drift apart.

Invariants
----------
* Time: every timestamp is tz-naive UTC. Internally times are ``int64``
  seconds since 1970-01-01 UTC; the public API takes and returns pandas
  timestamps.
* Money: USD per month unless a name says otherwise (``list_mrr`` is the
  monthly list price in USD; a subscription's ``price`` in the contract
  tables is per billing interval in its own currency).
* Customers are addressed by ``customer_id`` (strings of the contract); every
  vectorised function returns an array aligned with the ids given. Rows that
  the question does not apply to (for example ``p_return`` of a customer who is
  active) get ``NaN``.
* No future: every ``as_of``-conditioned answer uses the latents and what is
  observable at ``as_of`` (a cancel request already made, a dunning period
  already running, the days lapsed); never a simulated outcome after it.

Mechanisms and parameters (keys of :data:`DEFAULT_PARAMS`)
----------------------------------------------------------
Latents per customer (``WorldTruth.customers``)
    ``price_sensitivity`` (Gamma, mean 1), ``deal_seeker`` (0/1),
    ``engagement0`` (LogNormal, starting engagement of each subscription) and
    ``engagement_decay`` (per month; a fast-decaying minority), ``feature_need``
    (Beta), ``satisfaction`` (Beta), ``skill`` (Beta), ``competitor_exposure``
    (Beta), ``payment_fail_prob`` (Beta, per renewal), ``affinity`` (Normal,
    drives the cure fraction and interview answers), ``resp_email``,
    ``resp_sms``, ``resp_in_app`` (Beta, how well a channel reaches the
    customer) and consent flags ``email_ok``, ``sms_ok``, ``in_app_ok``.

Churn hazard engine (:func:`voluntary_hazards`)
    At each renewal boundary ``k`` of a subscription (every month or every
    year after ``started_at``), a voluntary cancel happens with probability
    ``1 - exp(-sum_j H_j)``, and the reason is driver ``j`` with probability
    ``H_j / sum H`` (competing risks). Monthly rates:

    * ``too_expensive``: ``h_too_expensive * price_sensitivity *
      (price_next / ref_price) ** price_elasticity`` (``price_next`` is the
      monthly USD price of the coming period, discount included), plus
      ``deal_seeker_end_hazard * deal_seeker`` once, at the boundary where a
      discount ends;
    * ``missing_features``: ``h_missing_features * feature_need``;
    * ``switched_service``: ``h_switched_base + h_switched * competitor_exposure``;
    * ``unused``: ``h_unused * exp(-unused_k * e)`` with engagement
      ``e = engagement0 * exp(-engagement_decay * months_since_start)``;
    * ``customer_service``, ``low_quality``: ``h_* * (1 - satisfaction) ** 2``;
    * ``too_complex``: ``h_too_complex * (1 - skill) ** 2``;
    * ``accidental``, ``other``: constants ``h_accidental``, ``h_other``.

    Annual subscriptions multiply the monthly rates by ``12 *
    annual_commitment`` and add ``contract_ended`` with rate
    ``h_contract_ended * (0.5 + 0.5 * price_sensitivity)``.
    The cancel request comes uniformly within ``cancel_window_days`` (at most
    90 % of the period) before the boundary; access ends at the boundary.
    If not cancelled, the renewal payment fails with ``payment_fail_prob``;
    dunning recovers it with probability ``dunning_recovery`` after an
    exponential time (mean ``dunning_recovery_mean_days``, truncated to the
    ``dunning_days`` of dunning); otherwise access ends ``dunning_days`` after
    the boundary with reason ``payment_failed``.

Behavioural traces of the reason
    A cancel request leaves the reason's mark in the tables, as real
    cancellations do: with ``trace_ticket_by_reason[reason] = [category,
    probability]`` the customer opens a ticket of that category within a day
    after the request (feature request for ``missing_features``, complaint for
    ``customer_service``, bug for ``low_quality``, how-to for
    ``too_complex``, billing for ``too_expensive``); a customer who
    ``switched_service`` keeps each weekly session from the request on with
    probability ``switched_usage_keep`` (the work has moved). Both come after
    the request, so ``p_churn`` (which knows requests made by ``as_of``) stays
    exact; both use child random streams, so the rest of the world is the
    same with or without them.

Natural return (cure model, :func:`cure_params`)
    A lapsed customer is *returnable* with probability
    ``pi = sigmoid(logit(cure_by_reason[r]) + cure_affinity * affinity +
    cure_deal_seeker * deal_seeker * [r == too_expensive])`` and a returnable
    one returns after an exponential time with rate
    ``mu = return_rate_by_reason[r] * exp(rate_affinity * affinity)`` (per
    day). So after ``d`` days lapsed, ``P(return in (d, d+w] | not yet) =
    pi (exp(-mu d) - exp(-mu (d+w))) / (1 - pi + pi exp(-mu d))``.

Win-back offers (:func:`offer_response`, :func:`channel_reach`)
    A contact converts (independently of the natural return) with probability
    ``u = reach(channel) * response(offer | reason, latents) *
    exp(-days_lapsed / offer_decay_days)``, and the converted customer returns
    within ``offer_window_days`` after the first message (exponential with mean
    ``treat_return_mean_days``, truncated). Hence ``P(return | offer) = 1 -
    (1 - p_base) (1 - u)``. ``response`` is ``response_table[offer][reason]``
    times: for discounts ``price_sensitivity * (1 - exp(-pct /
    discount_kappa)) * (1 - exp(-months / discount_months_tau)) * (1 +
    deal_seeker_boost * deal_seeker)``; for ``free_month``
    ``sqrt(price_sensitivity) * (1 + deal_seeker_boost * deal_seeker)``; for
    ``feature_trial`` ``min(2, feature_need / feature_need_ref)``; all times
    ``exp(response_affinity * affinity)``, capped at ``response_cap``. Reach:
    ``email``: ``email_ok * resp_email``; ``sms``: ``sms_ok * resp_sms``;
    ``in_app``: ``in_app_ok * resp_in_app`` (customers of the app stores);
    ``multi``: ``1 - (1 - reach_email)(1 - reach_sms)``. A channel without
    consent reaches nobody and costs nothing.

After a return
    The new subscription has the same plan; it runs through the same hazard
    engine from tenure 0, at the offer's discounted price during its
    ``discount_months`` (``free_month`` = 100 % for 1 month, ``early_renewal``
    = 15 % for 12 months), with the deal-seeker hazard when the discount ends.
    Every returner within the window after a contact gets the offer (the
    discount is cannibalised by those who would have come back anyway).

Stated reasons
    Involuntary ends are stated ``payment_failed``. A voluntary reason is left
    ``unknown`` with ``unknown_share_by_source[source]``; a stated one is
    wrong (``other`` or a confusable reason) with ``misreport_prob``.

Other parameters
    ``campaign_first_month`` (first campaign this many months after start),
    ``campaign_min_days``/``campaign_max_days`` (days lapsed to be eligible),
    ``campaign_inclusion`` (share of eligible lapses enrolled),
    ``control_share``; ``interview_share`` (lapses interviewed 30-90 days
    after the end if not back), ``interview_low_quality`` (expected share of
    quality scores below 3); ``sessions_per_week`` (Poisson mean at engagement
    1); ticket rates per month ``tickets_feature_request`` (x feature_need),
    ``tickets_complaint`` (x (1 - satisfaction)^2), ``tickets_how_to``
    (x (1 - skill)), ``tickets_bug``, ``tickets_other``, and
    ``tickets_billing_on_failure`` (chance of a billing ticket after a failed
    payment); ``minutes_affinity`` (a week's active minutes are its sessions
    times a Gamma(2, 6) draw times ``exp(minutes_affinity * affinity)``: the
    customers who like the product stay longer per session, the one place
    besides interviews where affinity shows); ``comment_prob_by_source`` (free-text comment, drawn from a
    phrase bank of the *true* reason); ``monthly_price_usd``,
    ``annual_months_price``, ``fx_to_usd`` (plan prices and currency rates).

Open campaign windows
    A past campaign whose window is still open at ``as_of`` counts:
    ``p_return`` (with or without a new offer) includes what that earlier
    contact may still bring (``WorldTruth._with_open_campaign``).

Limits (said plainly)
    ``oracle_policy`` honours ``budget`` greedily by profit per unit of
    expected spend, where spend = contact cost + expected incentive cost (the
    discount revenue given away to those who return).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.config import BusinessConfig, Offer
from winback_ml.data.contract import CANCEL_REASONS, CHANNELS
from winback_ml.exceptions import ConfigError, DataContractError

__all__ = [
    "DEFAULT_PARAMS",
    "VOLUNTARY_REASONS",
    "TRUE_REASONS",
    "WorldTruth",
    "load_truth",
    "voluntary_hazards",
    "cure_params",
    "offer_response",
    "channel_reach",
    "add_months",
]

DAY = 86400
#: Reasons a voluntary cancel can have (order = column order of the hazard matrix).
VOLUNTARY_REASONS: tuple[str, ...] = (
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
)
#: Every true reason (never ``unknown``): involuntary first, then voluntary.
TRUE_REASONS: tuple[str, ...] = ("payment_failed",) + VOLUNTARY_REASONS
_R = {r: i for i, r in enumerate(TRUE_REASONS)}
_OFFER_TYPES = (
    "none",
    "discount",
    "free_month",
    "feature_trial",
    "resume_billing",
    "early_renewal",
)


def _reason_vec(d: dict[str, float], default: float) -> list[float]:
    return [float(d.get(r, default)) for r in TRUE_REASONS]


DEFAULT_PARAMS: dict[str, Any] = {
    # --- churn hazard engine (monthly rates) ---
    "ref_price": 29.0,
    "price_elasticity": 0.5,
    "h_too_expensive": 0.018,
    "deal_seeker_end_hazard": 0.45,
    "h_missing_features": 0.06,
    "h_switched_base": 0.003,
    "h_switched": 0.03,
    "h_unused": 0.09,
    "unused_k": 3.0,
    "h_customer_service": 0.03,
    "h_low_quality": 0.025,
    "h_too_complex": 0.02,
    "h_accidental": 0.002,
    "h_other": 0.003,
    "annual_commitment": 0.5,
    "h_contract_ended": 0.15,
    "cancel_window_days": 21.0,
    # --- payments ---
    "dunning_days": 14,
    "dunning_recovery": 0.6,
    "dunning_recovery_mean_days": 3.0,
    # --- natural return (cure model) ---
    "cure_by_reason": _reason_vec(
        {
            "payment_failed": 0.55,
            "accidental": 0.70,
            "contract_ended": 0.35,
            "too_expensive": 0.25,
            "unused": 0.20,
            "missing_features": 0.20,
            "switched_service": 0.06,
            "customer_service": 0.10,
            "low_quality": 0.10,
            "too_complex": 0.12,
            "other": 0.15,
        },
        0.15,
    ),
    "return_rate_by_reason": _reason_vec(  # per day, for the returnable
        {
            "payment_failed": 1 / 20,
            "accidental": 1 / 10,
            "contract_ended": 1 / 45,
            "too_expensive": 1 / 60,
            "unused": 1 / 90,
            "missing_features": 1 / 120,
            "switched_service": 1 / 120,
            "customer_service": 1 / 90,
            "low_quality": 1 / 90,
            "too_complex": 1 / 90,
            "other": 1 / 60,
        },
        1 / 60,
    ),
    "cure_affinity": 0.8,
    "cure_deal_seeker": 0.6,
    "rate_affinity": 0.2,
    # --- offers ---
    "response_table": {
        "none": _reason_vec({"accidental": 0.45, "unused": 0.08, "payment_failed": 0.12}, 0.03),
        "discount": _reason_vec(
            {"too_expensive": 0.70, "contract_ended": 0.25, "payment_failed": 0.10, "unused": 0.10},
            0.05,
        ),
        "free_month": _reason_vec(
            {"too_expensive": 0.30, "unused": 0.18, "accidental": 0.45, "payment_failed": 0.10},
            0.05,
        ),
        "feature_trial": _reason_vec(
            {"missing_features": 0.55, "unused": 0.10, "too_complex": 0.15}, 0.02
        ),
        "resume_billing": _reason_vec({"payment_failed": 0.65}, 0.0),
        "early_renewal": _reason_vec({"contract_ended": 0.60, "too_expensive": 0.10}, 0.02),
    },
    "discount_kappa": 15.0,
    "discount_months_tau": 1.5,
    "deal_seeker_boost": 1.0,
    "feature_need_ref": 0.22,
    "response_affinity": 0.25,
    "response_cap": 0.95,
    "offer_decay_days": 200.0,
    "offer_window_days": 30,
    "treat_return_mean_days": 6.0,
    # --- stated reasons ---
    "unknown_share_by_source": {
        "stripe": 0.30,
        "chargebee": 0.35,
        "recurly": 0.35,
        "app_store": 0.80,
        "google_play": 0.45,
        "manual": 0.50,
    },
    "misreport_prob": 0.10,
    "comment_prob_by_source": {
        "stripe": 0.35,
        "chargebee": 0.30,
        "recurly": 0.30,
        "app_store": 0.0,
        "google_play": 0.15,
        "manual": 0.50,
    },
    # --- past campaigns ---
    "campaign_first_month": 3,  # months after start (the 4th month)
    "campaign_min_days": 14,
    "campaign_max_days": 90,
    "campaign_inclusion": 0.8,
    "control_share": 0.17,
    # --- interviews ---
    "interview_share": 0.12,
    "interview_low_quality": 0.15,
    # --- usage and tickets ---
    "sessions_per_week": 5.0,
    "minutes_affinity": 0.5,  # active minutes per session x exp(minutes_affinity * affinity)
    "tickets_feature_request": 0.25,  # per month * feature_need
    "tickets_complaint": 0.6,  # per month * (1 - satisfaction) ** 2
    "tickets_how_to": 0.08,  # per month * (1 - skill)
    "tickets_bug": 0.02,
    "tickets_other": 0.01,
    "tickets_billing_on_failure": 0.35,
    # --- behavioural traces of the reason (with the cancel request) ---
    "trace_ticket_by_reason": {
        "missing_features": ["feature_request", 0.85],
        "customer_service": ["complaint", 0.85],
        "low_quality": ["bug", 0.8],
        "too_complex": ["how_to", 0.8],
        "too_expensive": ["billing", 0.6],
    },
    "switched_usage_keep": 0.1,
    # --- world ---
    "monthly_price_usd": {"basic": 9.0, "pro": 29.0, "business": 99.0},
    "annual_months_price": 10.0,  # an annual plan costs 10 monthly prices
    "fx_to_usd": {"USD": 1.0, "EUR": 1.08, "GBP": 1.27},
}


# ----------------------------------------------------------------------------------------
# time helpers
# ----------------------------------------------------------------------------------------
def add_months(t_sec: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Add calendar months to times in seconds, clipping the day to the month's end.

    The anchor is always the given time, so ``add_months(s, k)`` for
    ``k = 1, 2, ...`` gives the renewal dates of a subscription started at ``s``.
    """
    t = np.asarray(t_sec, dtype=np.int64).astype("datetime64[s]")
    day = t.astype("datetime64[D]")
    month = t.astype("datetime64[M]")
    tod = (t - day.astype("datetime64[s]")).astype(np.int64)
    dom = (day - month.astype("datetime64[D]")).astype(np.int64)
    m2 = month + np.asarray(months, dtype=np.int64)
    first = m2.astype("datetime64[D]")
    dim = ((m2 + 1).astype("datetime64[D]") - first).astype(np.int64)
    out = first + np.minimum(dom, dim - 1)
    return out.astype("datetime64[s]").astype(np.int64) + tod


def _to_sec(ts: Any) -> np.ndarray | int:
    """Timestamp(s) -> int64 seconds (tz-naive UTC; aware ones are converted)."""
    if isinstance(ts, (pd.Series, pd.Index, np.ndarray, list, tuple)):
        s = pd.to_datetime(pd.Series(np.asarray(ts)) if not isinstance(ts, pd.Series) else ts)
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.to_numpy("datetime64[ns]").astype(np.int64) // 10**9
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return int(t.value // 10**9)


# ----------------------------------------------------------------------------------------
# the shared mechanisms
# ----------------------------------------------------------------------------------------
def voluntary_hazards(
    L: dict[str, np.ndarray],
    months_at: np.ndarray,
    interval_months: np.ndarray,
    price_factor: np.ndarray,
    discount_ended: np.ndarray,
    P: dict[str, Any],
) -> np.ndarray:
    """Cumulative voluntary hazards per reason at a renewal boundary.

    Parameters
    ----------
    L : latents of the rows (arrays aligned with the other arguments).
    months_at : months since the subscription started, at the boundary.
    interval_months : 1 or 12.
    price_factor : price of the coming period relative to list (1 - discount share).
    discount_ended : 1 where a discount ends at this boundary.
    P : world parameters.

    Returns
    -------
    ndarray of shape (n, len(VOLUNTARY_REASONS)).
    """
    n = len(months_at)
    e = L["engagement0"] * np.exp(-L["engagement_decay"] * months_at)
    annual = interval_months == 12
    mult = np.where(annual, 12.0 * P["annual_commitment"], 1.0)
    ps = L["price_sensitivity"]
    sat2 = (1.0 - L["satisfaction"]) ** 2
    H = np.empty((n, len(VOLUNTARY_REASONS)))
    price_next = L["list_mrr"] * price_factor
    H[:, 0] = (
        P["h_too_expensive"] * ps * (price_next / P["ref_price"]) ** P["price_elasticity"] * mult
        + discount_ended * L["deal_seeker"] * P["deal_seeker_end_hazard"]
    )
    H[:, 1] = P["h_missing_features"] * L["feature_need"] * mult
    H[:, 2] = (P["h_switched_base"] + P["h_switched"] * L["competitor_exposure"]) * mult
    H[:, 3] = P["h_unused"] * np.exp(-P["unused_k"] * e) * mult
    H[:, 4] = P["h_customer_service"] * sat2 * mult
    H[:, 5] = P["h_too_complex"] * (1.0 - L["skill"]) ** 2 * mult
    H[:, 6] = P["h_low_quality"] * sat2 * mult
    H[:, 7] = np.where(annual, P["h_contract_ended"] * (0.5 + 0.5 * ps), 0.0)
    H[:, 8] = P["h_accidental"] * mult
    H[:, 9] = P["h_other"] * mult
    return H


def engagement_at(L: dict[str, np.ndarray], months: np.ndarray) -> np.ndarray:
    """Engagement ``engagement0 * exp(-engagement_decay * months)`` of a subscription."""
    return L["engagement0"] * np.exp(-L["engagement_decay"] * months)


def discount_fraction(k: np.ndarray, im: np.ndarray, disc_months: np.ndarray) -> np.ndarray:
    """Share of billing period ``k`` (0 = first) covered by the discount months."""
    k = np.asarray(k, dtype=np.float64)
    return np.clip(disc_months - k * im, 0.0, im) / im


def price_factor(
    k: np.ndarray, im: np.ndarray, disc_pct: np.ndarray, disc_months: np.ndarray
) -> np.ndarray:
    """Price of billing period ``k`` relative to list price."""
    return 1.0 - disc_pct / 100.0 * discount_fraction(k, im, disc_months)


def cure_params(
    reason_idx: np.ndarray, L: dict[str, np.ndarray], P: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Cure fraction ``pi`` and daily return rate ``mu`` of lapses (see module docstring)."""
    base = np.asarray(P["cure_by_reason"])[reason_idx]
    logit = np.log(base / (1 - base)) + P["cure_affinity"] * L["affinity"]
    logit = logit + P["cure_deal_seeker"] * L["deal_seeker"] * (reason_idx == _R["too_expensive"])
    pi = 1.0 / (1.0 + np.exp(-logit))
    mu = np.asarray(P["return_rate_by_reason"])[reason_idx] * np.exp(
        P["rate_affinity"] * L["affinity"]
    )
    return pi, mu


def natural_return_prob(
    pi: np.ndarray, mu: np.ndarray, d_days: np.ndarray, w_days: float
) -> np.ndarray:
    """P(return in (d, d+w] | not returned by d) under the cure model."""
    a = np.exp(-mu * d_days)
    b = np.exp(-mu * (d_days + w_days))
    return pi * (a - b) / (1.0 - pi + pi * a)


def offer_response(
    reason_idx: np.ndarray,
    offer_type: str | np.ndarray,
    discount_pct: float | np.ndarray,
    discount_months: float | np.ndarray,
    L: dict[str, np.ndarray],
    P: dict[str, Any],
) -> np.ndarray:
    """Conversion probability of a reached, just-lapsed customer (before time decay)."""
    n = len(reason_idx)
    ot = np.broadcast_to(np.asarray(offer_type, dtype=object), (n,))
    pct = np.broadcast_to(np.asarray(discount_pct, dtype=np.float64), (n,))
    mon = np.broadcast_to(np.asarray(discount_months, dtype=np.float64), (n,))
    out = np.zeros(n)
    ds_mult = 1.0 + P["deal_seeker_boost"] * L["deal_seeker"]
    for t in _OFFER_TYPES:
        m = ot == t
        if not m.any():
            continue
        base = np.asarray(P["response_table"][t])[reason_idx[m]]
        if t == "discount":
            base = (
                base
                * L["price_sensitivity"][m]
                * (1.0 - np.exp(-pct[m] / P["discount_kappa"]))
                * (1.0 - np.exp(-mon[m] / P["discount_months_tau"]))
                * ds_mult[m]
            )
        elif t == "free_month":
            base = base * np.sqrt(L["price_sensitivity"][m]) * ds_mult[m]
        elif t == "feature_trial":
            base = base * np.minimum(2.0, L["feature_need"][m] / P["feature_need_ref"])
        out[m] = base
    unknown = ~np.isin(ot, _OFFER_TYPES)
    if unknown.any():
        raise ConfigError(
            f"offer_type must be one of {list(_OFFER_TYPES)}. Got {sorted(set(ot[unknown]))} instead."
        )
    out = out * np.exp(P["response_affinity"] * L["affinity"])
    return np.clip(out, 0.0, P["response_cap"])


def channel_reach(channel: str | np.ndarray, L: dict[str, np.ndarray]) -> np.ndarray:
    """Probability that a message on ``channel`` reaches the customer (0 without consent)."""
    n = len(L["resp_email"])
    ch = np.broadcast_to(np.asarray(channel, dtype=object), (n,))
    re = L["email_ok"] * L["resp_email"]
    rs = L["sms_ok"] * L["resp_sms"]
    ra = L["in_app_ok"] * L["resp_in_app"]
    out = np.select(
        [ch == "email", ch == "sms", ch == "in_app", ch == "multi"],
        [re, rs, ra, 1.0 - (1.0 - re) * (1.0 - rs)],
        default=np.nan,
    )
    if np.isnan(out).any():
        bad = sorted(set(ch[np.isnan(out)]))
        raise ConfigError(f"channel must be one of {list(CHANNELS)}. Got {bad} instead.")
    return out


def channel_consent(channel: str | np.ndarray, L: dict[str, np.ndarray]) -> np.ndarray:
    """True where a message on ``channel`` can be sent at all (consent / app present)."""
    n = len(L["resp_email"])
    ch = np.broadcast_to(np.asarray(channel, dtype=object), (n,))
    e = L["email_ok"] > 0
    s = L["sms_ok"] > 0
    a = L["in_app_ok"] > 0
    return np.select(
        [ch == "email", ch == "sms", ch == "in_app", ch == "multi"], [e, s, a, e | s], default=False
    )


def treat_return_cdf(w_days: np.ndarray | float, window: float, mean_days: float) -> np.ndarray:
    """P(a converted customer has returned within ``w`` days of the first message)."""
    w = np.minimum(np.asarray(w_days, dtype=np.float64), window)
    return (1.0 - np.exp(-w / mean_days)) / (1.0 - np.exp(-window / mean_days))


def _offer_terms(offer: Offer | None) -> tuple[str, float, float]:
    """(offer_type, discount percent, discount months) as the world applies them."""
    if offer is None:
        return "none", 0.0, 0.0
    if offer.offer_type == "free_month":
        return "free_month", 100.0, float(max(offer.discount_months, 1))
    if offer.offer_type in ("discount", "early_renewal"):
        return offer.offer_type, float(offer.discount_pct), float(offer.discount_months)
    return offer.offer_type, 0.0, 0.0


# ----------------------------------------------------------------------------------------
# WorldTruth
# ----------------------------------------------------------------------------------------
_LATENT_COLS = (
    "price_sensitivity",
    "deal_seeker",
    "engagement0",
    "engagement_decay",
    "feature_need",
    "satisfaction",
    "skill",
    "competitor_exposure",
    "payment_fail_prob",
    "affinity",
    "resp_email",
    "resp_sms",
    "resp_in_app",
    "email_ok",
    "sms_ok",
    "in_app_ok",
    "list_mrr",
    "interval_months",
)


@dataclass
class WorldTruth:
    """The truth of a synthetic world.

    Attributes
    ----------
    customers : DataFrame
        One row per customer: ``customer_id``, plan (``plan_tier``,
        ``billing_interval``, ``interval_months``, ``list_mrr`` in USD per month,
        ``source``) and the latents listed in the module docstring.
    episodes : DataFrame
        One row per subscription (a customer's *episode*): ``subscription_id``,
        ``customer_id``, ``episode`` (0 = first), ``started_at``, ``ended_at``
        (NaT while active at the world's end), ``cancel_requested_at``,
        ``voluntary``, ``true_reason``, ``stated_reason``, the offer it started
        with (``offer_pct``, ``offer_months``), ``start_cause`` (``signup``,
        ``natural``, ``campaign``), cure parameters ``cure_prob`` and
        ``return_rate``, ``returned_at``, ``return_cause``, the win-back
        campaign of the lapse (``campaign_id``, ``arm_id``, ``assigned_at``,
        ``uplift_at_assignment``) and the interview segment ``true_segment``.
    payment_failures : DataFrame
        ``subscription_id``, ``failed_at``, ``recovered_at`` (NaT if not).
    params : dict
        The world parameters (:data:`DEFAULT_PARAMS` plus overrides).
    end : Timestamp
        The world's end (its default ``as_of``).

    Examples
    --------
    >>> import numpy as np
    >>> from winback_ml.config import Offer, load_config
    >>> from winback_ml.data.synthetic import make_world
    >>> w = make_world(2000, seed=3)
    >>> ids = w.tables["customers"]["customer_id"].to_numpy()
    >>> base = w.truth.p_return(ids, w.end)  # NaN for customers not lapsed
    >>> lapsed = ids[np.isfinite(base)]
    >>> offer = w.truth.p_return(lapsed, w.end, 30, Offer("discount", 25, 3), "email")
    >>> bool((offer >= base[np.isfinite(base)]).all())
    True
    >>> plan = w.truth.oracle_policy(lapsed, w.end, load_config(None))
    >>> w.truth.policy_value(plan, w.end, load_config(None)) > 0
    True
    """

    customers: pd.DataFrame
    episodes: pd.DataFrame
    payment_failures: pd.DataFrame
    params: dict[str, Any]
    end: pd.Timestamp
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # -------------------------------------------------------------- views
    @property
    def lapses(self) -> pd.DataFrame:
        """Episodes that ended by the world's end: one row per lapse."""
        return self.episodes[self.episodes["ended_at"].notna()].reset_index(drop=True)

    # -------------------------------------------------------------- internals
    def _prep(self) -> dict[str, Any]:
        if "prep" in self._cache:
            return self._cache["prep"]
        c = self.customers
        cid_index = pd.Index(c["customer_id"].astype(str))
        lat = {k: c[k].to_numpy(np.float64) for k in _LATENT_COLS}
        ep = self.episodes
        cidx = cid_index.get_indexer(ep["customer_id"].astype(str))
        start = _ns_to_sec(ep["started_at"])
        ended = _ns_to_sec(ep["ended_at"])
        order = np.lexsort((start, cidx))
        key = cidx[order].astype(np.int64) * (1 << 32) + start[order]
        reason = ep["true_reason"].map(_R).fillna(-1).to_numpy(np.int64)
        req = _ns_to_sec(ep["cancel_requested_at"])
        ret = _ns_to_sec(ep["returned_at"])
        pf = self.payment_failures
        sub_index = pd.Index(ep["subscription_id"].astype(str))
        f_ep = sub_index.get_indexer(pf["subscription_id"].astype(str))
        prep = {
            "cid_index": cid_index,
            "lat": lat,
            "cidx": cidx,
            "order": order,
            "key": key,
            "start": start,
            "ended": ended,
            "reason": reason,
            "req": req,
            "ret": ret,
            "pi": ep["cure_prob"].to_numpy(np.float64),
            "mu": ep["return_rate"].to_numpy(np.float64),
            "offer_pct": ep["offer_pct"].to_numpy(np.float64),
            "offer_months": ep["offer_months"].to_numpy(np.float64),
            "asg_at": _ns_to_sec(ep["assigned_at"]),
            "asg_u": np.nan_to_num(ep["uplift_at_assignment"].to_numpy(np.float64)),
            "asg_delay": (
                ep["send_delay_days"].to_numpy(np.float64)
                if "send_delay_days" in ep.columns
                else np.zeros(len(ep))
            ),
            "f_ep": f_ep,
            "f_at": _ns_to_sec(pf["failed_at"]),
            "f_rec": _ns_to_sec(pf["recovered_at"]),
        }
        self._cache["prep"] = prep
        return prep

    def _cust_idx(self, customer_ids: Any) -> np.ndarray:
        prep = self._prep()
        ids = np.asarray(customer_ids, dtype=object).astype(str)
        idx = prep["cid_index"].get_indexer(ids)
        if (idx < 0).any():
            bad = ids[idx < 0][:5].tolist()
            raise DataContractError(
                f"customer_ids must be ids of this world's customers. Got unknown ids {bad}. "
                "Fix: pass ids from world.tables['customers'].customer_id."
            )
        return idx

    def _episode_at(self, cidx: np.ndarray, as_of_sec: np.ndarray) -> np.ndarray:
        """Index (into episodes) of the latest episode started at or before as_of, or -1."""
        prep = self._prep()
        q = cidx.astype(np.int64) * (1 << 32) + as_of_sec
        pos = np.searchsorted(prep["key"], q, side="right") - 1
        ok = pos >= 0
        ep = np.full(len(cidx), -1, dtype=np.int64)
        cand = prep["order"][np.where(ok, pos, 0)]
        good = ok & (prep["cidx"][cand] == cidx)
        ep[good] = cand[good]
        return ep

    def _latents(self, cidx: np.ndarray) -> dict[str, np.ndarray]:
        lat = self._prep()["lat"]
        return {k: v[cidx] for k, v in lat.items()}

    def _as_of(self, as_of: Any, n: int) -> np.ndarray:
        if as_of is None:
            as_of = self.end
        s = _to_sec(as_of)
        return np.broadcast_to(np.asarray(s, dtype=np.int64), (n,)).copy()

    def _lapsed_state(
        self, customer_ids: Any, as_of: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(customer index, episode index or -1, days lapsed, lapsed mask) at as_of."""
        prep = self._prep()
        cidx = self._cust_idx(customer_ids)
        t = self._as_of(as_of, len(cidx))
        ep = self._episode_at(cidx, t)
        e = np.where(ep >= 0, ep, 0)
        ended = prep["ended"][e]
        lapsed = (ep >= 0) & (ended >= 0) & (ended <= t)
        d = np.where(lapsed, (t - ended) / DAY, np.nan)
        return cidx, ep, d, lapsed

    # -------------------------------------------------------------- public API
    def p_return(
        self,
        customer_ids: Any,
        as_of: Any = None,
        within_days: float = 30,
        offer: Offer | None = None,
        channel: str | None = None,
    ) -> np.ndarray:
        """True P(reactivate in (as_of, as_of + within_days]) if contacted now.

        Parameters
        ----------
        customer_ids : array-like of str
        as_of : timestamp (or one per customer); default the world's end.
        within_days : the window in days.
        offer : :class:`~winback_ml.config.Offer` or None (= no contact).
        channel : one of ``CHANNELS``; ignored when ``offer`` is None.

        Returns
        -------
        ndarray of float: NaN for customers not lapsed at ``as_of`` (active,
        never subscribed yet, or already returned).
        """
        P = self.params
        prep = self._prep()
        cidx, ep, d, lapsed = self._lapsed_state(customer_ids, as_of)
        out = np.full(len(cidx), np.nan)
        if not lapsed.any():
            return out
        e = ep[lapsed]
        base = natural_return_prob(prep["pi"][e], prep["mu"][e], d[lapsed], within_days)
        t_l = self._as_of(as_of, len(cidx))[lapsed]
        base = self._with_open_campaign(base, e, t_l, within_days)
        if offer is None or channel is None:
            out[lapsed] = base
            return out
        u = self._uplift_u(cidx[lapsed], prep["reason"][e], d[lapsed], offer, channel)
        g = treat_return_cdf(within_days, P["offer_window_days"], P["treat_return_mean_days"])
        ug = u * g
        out[lapsed] = np.where(ug > 0, 1.0 - (1.0 - base) * (1.0 - ug), base)
        return out

    def uplift(
        self,
        customer_ids: Any,
        as_of: Any = None,
        offer: Offer | None = None,
        channel: str | None = None,
        within_days: float = 30,
    ) -> np.ndarray:
        """True uplift ``p_return(offer, channel) - p_return(None)`` (NaN if not lapsed)."""
        base = self.p_return(customer_ids, as_of, within_days)
        return self.p_return(customer_ids, as_of, within_days, offer, channel) - base

    def _with_open_campaign(
        self, base: np.ndarray, e: np.ndarray, t: np.ndarray, within_days: float
    ) -> np.ndarray:
        """Add what a past campaign whose window is still open at ``t`` may still bring.

        A contact at ``assigned_at`` converts with probability ``u`` and the
        converted customer returns ``send_delay_days`` + a truncated exponential
        time later, within ``offer_window_days``. Given no return by ``t``, the
        chance that this happens in ``(t, t + w]`` is ``u (G(a + w) - G(a)) /
        (1 - u G(a))`` with ``a`` the days since assignment; it is independent
        of the natural return. Assignments at ``t`` itself count as the fresh
        contact that ``p_return(offer=...)`` asks about, not as a past one.
        """
        prep = self._prep()
        at = prep["asg_at"][e]
        win = float(self.params["offer_window_days"])
        open_ = (at >= 0) & (at < t) & (t < at + int(win * DAY)) & (prep["asg_u"][e] > 0)
        if not open_.any():
            return base
        u = prep["asg_u"][e][open_]
        delay = prep["asg_delay"][e][open_]
        a = (t[open_] - at[open_]) / DAY
        mean = self.params["treat_return_mean_days"]
        span = win - delay

        def G(x: np.ndarray) -> np.ndarray:
            y = np.clip(x - delay, 0.0, span)
            return (1.0 - np.exp(-y / mean)) / (1.0 - np.exp(-span / mean))

        extra = u * (G(a + within_days) - G(a)) / (1.0 - u * G(a))
        out = base.copy()
        out[open_] = 1.0 - (1.0 - base[open_]) * (1.0 - extra)
        return out

    def _uplift_u(
        self, cidx: np.ndarray, reason: np.ndarray, d: np.ndarray, offer: Offer, channel: str
    ) -> np.ndarray:
        P = self.params
        L = self._latents(cidx)
        t, pct, mon = _offer_terms(offer)
        resp = offer_response(reason, t, pct, mon, L, P)
        return channel_reach(channel, L) * resp * np.exp(-d / P["offer_decay_days"])

    def ltv(
        self,
        customer_ids: Any,
        offer: Offer | None = None,
        horizon_months: int = 24,
        margin: float = 0.8,
        annual_discount_rate: float = 0.10,
    ) -> np.ndarray:
        """True expected discounted margin (USD) over the horizon if the customer returns now.

        The returned subscription has the customer's plan and runs through the
        churn hazard engine from tenure 0, at the offer's price during its
        discount months (deal-seekers' extra hazard when it ends).
        """
        cidx = self._cust_idx(customer_ids)
        t, pct, mon = _offer_terms(offer)
        return self._ltv_idx(cidx, pct, mon, horizon_months, margin, annual_discount_rate)

    def _ltv_idx(
        self,
        cidx: np.ndarray,
        pct: float,
        mon: float,
        horizon_months: int,
        margin: float,
        rate: float,
        latents: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """LTV of ``cidx`` back on the offer; ``latents`` replaces their true traits (diagnostics)."""
        P = self.params
        L = self._latents(cidx) if latents is None else latents
        n = len(cidx)
        im = L["interval_months"]
        pfp = L["payment_fail_prob"]
        q = pfp * (1.0 - P["dunning_recovery"])
        surv = np.ones(n)
        total = np.zeros(n)
        pct_a = np.full(n, pct)
        mon_a = np.full(n, mon)
        for k in range(int(horizon_months)):
            m = k * im  # month of this payment
            live = m < horizon_months
            if not live.any():
                break
            if k > 0:
                f_prev = discount_fraction(k - 1, im, mon_a) * (pct_a > 0)
                f_now = discount_fraction(k, im, mon_a) * (pct_a > 0)
                ended = ((f_prev > 0) & (f_now == 0)).astype(np.float64)
                H = voluntary_hazards(
                    L, m.astype(np.float64), im, price_factor(k, im, pct_a, mon_a), ended, P
                )
                v = 1.0 - np.exp(-H.sum(axis=1))
                surv = surv * (1.0 - v) * (1.0 - q)
            pay = L["list_mrr"] * im * price_factor(k, im, pct_a, mon_a)
            disc = (1.0 + rate) ** (-m / 12.0)
            total += np.where(live, surv * pay * disc, 0.0)
        return margin * total

    def expected_incremental_profit(
        self,
        customer_ids: Any,
        as_of: Any,
        offer: Offer | None,
        channel: str,
        config: BusinessConfig,
    ) -> np.ndarray:
        """``p(offer, channel) ltv(offer) - cost[channel] - p(None) ltv(None)`` (NaN if not lapsed).

        Uses ``config.margin``, ``ltv_horizon_months``, ``attribution_window_days``
        and ``annual_discount_rate``. Without consent for ``channel`` nothing is
        sent: the value is 0 (no cost, no effect).
        """
        parts = self._eip_parts(customer_ids, as_of, offer, channel, config)
        return parts["eip"]

    def _eip_context(self, customer_ids: Any, as_of: Any, config: BusinessConfig) -> dict:
        """What every offer x channel evaluation of the same customers shares (cached)."""
        P = self.params
        prep = self._prep()
        cidx, ep, d, lapsed = self._lapsed_state(customer_ids, as_of)
        w = config.attribution_window_days
        e = np.where(ep >= 0, ep, 0)
        p0 = np.full(len(cidx), np.nan)
        p0[lapsed] = self._with_open_campaign(
            natural_return_prob(prep["pi"][e[lapsed]], prep["mu"][e[lapsed]], d[lapsed], w),
            e[lapsed],
            self._as_of(as_of, len(cidx))[lapsed],
            w,
        )
        args = (config.ltv_horizon_months, config.margin, config.annual_discount_rate)
        return {
            "cidx": cidx,
            "p0": p0,
            "L": self._latents(cidx),
            "reason": np.maximum(prep["reason"][e], 0),
            "decay": np.exp(-np.nan_to_num(d) / P["offer_decay_days"]),
            "g": treat_return_cdf(w, P["offer_window_days"], P["treat_return_mean_days"]),
            "args": args,
            "ltv": {(0.0, 0.0): self._ltv_idx(cidx, 0.0, 0.0, *args)},
            "resp": {},
            "config": config,
        }

    def _eip_from(self, ctx: dict, offer: Offer | None, channel: str) -> dict[str, np.ndarray]:
        P = self.params
        config = ctx["config"]
        t, pct, mon = _offer_terms(offer)
        l0 = ctx["ltv"][(0.0, 0.0)]
        if pct > 0:
            if (pct, mon) not in ctx["ltv"]:
                ctx["ltv"][(pct, mon)] = self._ltv_idx(ctx["cidx"], pct, mon, *ctx["args"])
            l1 = ctx["ltv"][(pct, mon)]
        else:
            l1 = l0
        L = ctx["L"]
        p0 = ctx["p0"]
        if offer is None:
            p1 = p0
        else:
            if (t, pct, mon) not in ctx["resp"]:
                ctx["resp"][(t, pct, mon)] = offer_response(ctx["reason"], t, pct, mon, L, P)
            ug = channel_reach(channel, L) * ctx["resp"][(t, pct, mon)] * ctx["decay"] * ctx["g"]
            p1 = np.where(ug > 0, 1.0 - (1.0 - p0) * (1.0 - ug), p0)
        ok = channel_consent(channel, L)
        cost = np.where(ok, float(config.contact_cost.get(channel, 0.0)), 0.0)
        eip = np.where(ok, p1 * l1 - cost - p0 * l0, 0.0)
        eip = np.where(np.isnan(p0), np.nan, eip)
        # incentive cost: revenue given away to returners (before margin), for budgets
        incentive = np.where(ok, p1 * (l0 - l1) / max(config.margin, 1e-12), 0.0)
        return {"eip": eip, "p0": p0, "p1": p1, "cost": cost, "incentive": incentive}

    def _eip_parts(
        self,
        customer_ids: Any,
        as_of: Any,
        offer: Offer | None,
        channel: str,
        config: BusinessConfig,
    ) -> dict[str, np.ndarray]:
        return self._eip_from(self._eip_context(customer_ids, as_of, config), offer, channel)

    def oracle_policy(self, customer_ids: Any, as_of: Any, config: BusinessConfig) -> pd.DataFrame:
        """The best catalog offer x channel per customer under the truth.

        Every offer of ``config.offer_catalog()`` on every channel of
        ``config.channels`` is evaluated; each customer gets the one with the
        highest expected incremental profit, and ``contact=False`` when none is
        positive (or the customer is not lapsed). With ``config.budget``,
        contacts are kept greedily in order of profit per unit of expected
        spend (contact cost + incentive cost) until the budget is used. With
        ``config.max_cost_per_reactivation``, an offer whose expected spend per
        *incremental* reactivation (spend / (p_offer - p_base)) exceeds it is
        not considered.

        Returns
        -------
        DataFrame with ``customer_id, contact, offer_type, discount_pct,
        discount_months, channel, expected_incremental_profit`` (profit of the
        row's offer; 0 where ``contact`` is False).
        """
        ids = np.asarray(customer_ids, dtype=object).astype(str)
        n = len(ids)
        best = np.full(n, 0.0)
        best_i = np.full(n, -1)
        best_spend = np.zeros(n)
        combos: list[tuple[Offer, str]] = []
        ctx = self._eip_context(ids, as_of, config)
        for o in config.offer_catalog():
            for ch in config.channels:
                combos.append((o, ch))
                parts = self._eip_from(ctx, o, ch)
                v = np.nan_to_num(parts["eip"], nan=-np.inf)
                if config.max_cost_per_reactivation is not None:
                    gain = parts["p1"] - parts["p0"]
                    spend = parts["cost"] + parts["incentive"]
                    too_dear = spend > config.max_cost_per_reactivation * np.maximum(gain, 0.0)
                    v = np.where(too_dear, -np.inf, v)
                better = v > best
                best = np.where(better, v, best)
                best_i = np.where(better, len(combos) - 1, best_i)
                best_spend = np.where(better, parts["cost"] + parts["incentive"], best_spend)
        contact = best_i >= 0
        if config.budget is not None and contact.any():
            ratio = np.where(best_spend > 0, best / np.maximum(best_spend, 1e-12), np.inf)
            order = np.argsort(-np.where(contact, ratio, -np.inf), kind="stable")
            spend = np.where(contact, best_spend, 0.0)[order]
            keep_sorted = np.cumsum(spend) <= config.budget + 1e-9
            keep = np.zeros(n, dtype=bool)
            keep[order] = keep_sorted
            contact = contact & keep
        rows = [combos[i] if i >= 0 else (Offer("none"), config.channels[0]) for i in best_i]
        return pd.DataFrame(
            {
                "customer_id": ids,
                "contact": contact,
                "offer_type": [o.offer_type for o, _ in rows],
                "discount_pct": [float(o.discount_pct) for o, _ in rows],
                "discount_months": [int(o.discount_months) for o, _ in rows],
                "channel": [ch for _, ch in rows],
                "expected_incremental_profit": np.where(contact, best, 0.0),
            }
        )

    def policy_value(self, policy: pd.DataFrame, as_of: Any, config: BusinessConfig) -> float:
        """Exact expected incremental profit of a policy frame (rows with contact False count 0).

        ``policy`` needs ``customer_id, contact, offer_type, discount_pct,
        discount_months, channel``. Customers not lapsed at ``as_of`` count 0.
        """
        need = [
            "customer_id",
            "contact",
            "offer_type",
            "discount_pct",
            "discount_months",
            "channel",
        ]
        missing = [c for c in need if c not in policy.columns]
        if missing:
            raise DataContractError(
                f"policy must have columns {need}. Missing {missing}. "
                "Fix: build it like oracle_policy() does."
            )
        pol = policy[policy["contact"].astype(bool)]
        total = 0.0
        if pol.empty:
            return 0.0
        keys = pol[["offer_type", "discount_pct", "discount_months", "channel"]].astype(
            {"discount_pct": float, "discount_months": int}
        )
        ctx = self._eip_context(pol["customer_id"].to_numpy(), as_of, config)
        for (ot, pct, mon, ch), idx in keys.groupby(
            ["offer_type", "discount_pct", "discount_months", "channel"], sort=True
        ).indices.items():
            o = Offer(str(ot), float(pct), int(mon))
            v = self._eip_from(ctx, o, str(ch))["eip"][idx]
            total += float(np.nansum(v))
        return total

    def p_churn(self, customer_ids: Any, as_of: Any = None, horizon_days: float = 90) -> np.ndarray:
        """True P(the active subscription ends in (as_of, as_of + horizon]) (NaN if not active).

        Uses what is known at ``as_of``: a cancel request already made ends the
        subscription at its period end for sure; a running dunning period ends
        it unless recovered (conditional on no recovery so far); later
        boundaries use the hazard engine, with the chance that a cancel request
        for the next boundary is still to come.
        """
        P = self.params
        prep = self._prep()
        cidx = self._cust_idx(customer_ids)
        t = self._as_of(as_of, len(cidx))
        ep = self._episode_at(cidx, t)
        e0 = np.where(ep >= 0, ep, 0)
        ended = prep["ended"][e0]
        active = (ep >= 0) & ((ended < 0) | (ended > t))
        out = np.full(len(cidx), np.nan)
        if not active.any():
            return out
        a = np.where(active)[0]
        e = ep[a]
        ta = t[a]
        hor = ta + int(round(horizon_days * DAY))
        L = self._latents(cidx[a])
        im = L["interval_months"].astype(np.int64)
        start = prep["start"][e]
        pct = prep["offer_pct"][e]
        mon = prep["offer_months"][e]
        q = L["payment_fail_prob"] * (1.0 - P["dunning_recovery"])
        dunning = P["dunning_days"] * DAY
        # next boundary index after as_of
        months_el = (ta - start) / (30.436875 * DAY) / im
        k = np.maximum(np.floor(months_el).astype(np.int64) - 1, 1)
        for _ in range(4):
            tk = add_months(start, k * im)
            k = np.where(tk <= ta, k + 1, k)
        p_end = np.zeros(len(a))
        surv = np.ones(len(a))
        # 1) an open dunning period at as_of
        f_ep, f_at, f_rec = prep["f_ep"], prep["f_at"], prep["f_rec"]
        if len(f_ep):
            pos = pd.Series(np.arange(len(a)), index=e)
            m = np.isin(f_ep, e) & (f_at <= ta.max())
            if m.any():
                fe = f_ep[m]
                rows = pos.reindex(fe).to_numpy()
                open_ = (f_at[m] <= ta[rows]) & (f_at[m] + dunning > ta[rows])
                open_ &= (f_rec[m] < 0) | (f_rec[m] > ta[rows])
                if open_.any():
                    r = rows[open_]
                    el = (ta[r] - f_at[m][open_]) / DAY
                    mean = P["dunning_recovery_mean_days"]
                    F = (1 - np.exp(-el / mean)) / (1 - np.exp(-P["dunning_days"] / mean))
                    rec = P["dunning_recovery"]
                    p_fail = (1 - rec) / (1 - rec * F)
                    ends_in = (f_at[m][open_] + dunning) <= hor[r]
                    p_end[r] = np.where(ends_in, p_fail, 0.0)
                    surv[r] = 1.0 - p_fail
        # 2) a cancel request already made: ends at the next boundary
        req = prep["req"][e]
        requested = (req >= 0) & (req <= ta)
        # 3) boundaries within the horizon
        max_b = int(np.ceil(horizon_days / 28.0)) + 1
        win_cap = np.minimum(P["cancel_window_days"] * DAY, 0.9 * im * 28 * DAY)
        for j in range(max_b):
            kk = k + j
            tk = add_months(start, kk * im)
            inside = tk <= hor
            if not inside.any():
                break
            f_prev = discount_fraction(kk - 1, im, mon) * (pct > 0)
            f_now = discount_fraction(kk, im, mon) * (pct > 0)
            d_end = ((f_prev > 0) & (f_now == 0)).astype(np.float64)
            H = voluntary_hazards(
                L, (kk * im).astype(np.float64), im, price_factor(kk, im, pct, mon), d_end, P
            )
            v = 1.0 - np.exp(-H.sum(axis=1))
            if j == 0:
                # request window for this boundary may have started before as_of
                frac_after = np.clip((tk - ta) / win_cap, 0.0, 1.0)
                v = v * frac_after / (1.0 - v * (1.0 - frac_after))
                v = np.where(requested, 1.0, v)
            else:
                v = np.where(requested, 0.0, v)  # already gone at the first boundary
            p_end += np.where(inside, surv * v, 0.0)
            surv = np.where(inside, surv * (1.0 - v), surv)
            inv_in = inside & (tk + dunning <= hor)
            p_end += np.where(inv_in, surv * q, 0.0)
            surv = np.where(inv_in, surv * (1.0 - q), surv)
        out[a] = np.clip(p_end, 0.0, 1.0)
        return out

    def true_reason(self, customer_ids: Any, as_of: Any = None) -> np.ndarray:
        """Canonical true reason of each customer's latest lapse by ``as_of`` (None if none)."""
        prep = self._prep()
        cidx = self._cust_idx(customer_ids)
        t = self._as_of(as_of, len(cidx))
        ep = self._episode_at(cidx, t)
        out = np.full(len(cidx), None, dtype=object)
        e = np.where(ep >= 0, ep, 0)
        ended = prep["ended"][e]
        lapsed_now = (ep >= 0) & (ended >= 0) & (ended <= t)
        # an active customer at as_of: their latest lapse is their previous episode
        q = cidx.astype(np.int64) * (1 << 32) + t
        pos = np.searchsorted(prep["key"], q, side="right") - 1
        prev_pos = np.where(lapsed_now, pos, pos - 1)
        ok = (ep >= 0) & (prev_pos >= 0)
        pe = prep["order"][np.where(ok, prev_pos, 0)]
        same = ok & (prep["cidx"][pe] == cidx)
        same &= (prep["ended"][pe] >= 0) & (prep["ended"][pe] <= t)
        names = np.array(TRUE_REASONS, dtype=object)
        r = prep["reason"][pe]
        good = same & (r >= 0)
        out[good] = names[r[good]]
        return out

    def true_segment(self, customer_ids: Any, as_of: Any = None) -> np.ndarray:
        """Interview segment (hot/warm/lost/misclassified) of the latest lapse by ``as_of``."""
        cidx = self._cust_idx(customer_ids)
        t = self._as_of(as_of, len(cidx))
        ep = self._episode_at(cidx, t)
        prep = self._prep()
        e = np.where(ep >= 0, ep, 0)
        ok = (ep >= 0) & (prep["ended"][e] >= 0) & (prep["ended"][e] <= t)
        seg = self.episodes["true_segment"].to_numpy(dtype=object)
        out = np.full(len(cidx), None, dtype=object)
        out[ok] = seg[e[ok]]
        return out

    # -------------------------------------------------------------- I/O
    def write(self, folder: str | Path) -> Path:
        """Write the truth to ``folder`` (Parquet frames + ``params.json``)."""
        p = Path(folder)
        p.mkdir(parents=True, exist_ok=True)
        self.customers.to_parquet(p / "customers.parquet", index=False)
        self.episodes.to_parquet(p / "episodes.parquet", index=False)
        self.payment_failures.to_parquet(p / "payment_failures.parquet", index=False)
        meta = {"params": self.params, "end": self.end.isoformat()}
        (p / "params.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        return p


def _ns_to_sec(s: pd.Series) -> np.ndarray:
    """datetime64 series -> int64 seconds, -1 for NaT."""
    v = pd.to_datetime(s).to_numpy("datetime64[ns]")
    out = v.astype(np.int64) // 10**9
    out[np.isnat(v)] = -1
    return out


def load_truth(folder: str | Path) -> WorldTruth:
    """Read a truth written by :meth:`World.write` (``folder`` or ``folder/_truth``)."""
    p = Path(folder)
    if (p / "_truth").is_dir():
        p = p / "_truth"
    need = ["customers.parquet", "episodes.parquet", "payment_failures.parquet", "params.json"]
    missing = [n for n in need if not (p / n).exists()]
    if missing:
        raise DataContractError(
            f"A world truth folder must hold {need}. {str(p)!r} lacks {missing}. "
            "Fix: point at the OUT folder of `winback make-world OUT`."
        )
    meta = json.loads((p / "params.json").read_text())
    return WorldTruth(
        customers=pd.read_parquet(p / "customers.parquet"),
        episodes=pd.read_parquet(p / "episodes.parquet"),
        payment_failures=pd.read_parquet(p / "payment_failures.parquet"),
        params=meta["params"],
        end=pd.Timestamp(meta["end"]),
    )


assert set(TRUE_REASONS) | {"unknown"} == set(CANCEL_REASONS)
