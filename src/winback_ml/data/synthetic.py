"""A synthetic subscription business in contract form, with its truth beside it.

``make_world(n_customers, seed)`` simulates customers who sign up, renew,
fail payments and recover them, cancel for reasons driven by latent traits,
come back on their own (a cure model), are randomised into past win-back
campaigns whose effects depend on the reason and the traits, return at a
discount and churn again, use the product weekly, open tickets and answer
win-back interviews. It returns a :class:`World`: ``tables`` holds the nine
contract tables, ``truth`` a :class:`~winback_ml.data.truth.WorldTruth` with
the latent parameters and the exact effect functions (``p_return``, ``ltv``,
``p_churn``, ``oracle_policy``, ...). The mechanisms and every parameter are
documented in :mod:`winback_ml.data.truth` (``DEFAULT_PARAMS``); this module
adds the world's furniture:

* customers sign up over ``[start, end)`` with mild growth (twice the rate at
  the end than at the start); ids ``cus_<n>`` in signup order;
* countries with consistent language, IANA time zone, currency (USD, EUR, GBP)
  and E.164 phone prefix; e-mail for 92 %, phone for 45 %, opt-ins; the
  acquisition channel hints at deal-seeking (``coupon_site``);
* sources stripe / chargebee / recurly / app_store / google_play / manual;
  tiers basic / pro / business at 9 / 29 / 99 a month (EUR the same figures,
  GBP 0.87x, rounded), annual plans at 10 monthly prices; price-sensitive
  customers pick cheaper tiers; ``mrr`` is the list price per month in USD;
* a returning customer gets a new subscription row on the same plan, opened
  by ``reactivated`` (chargebee, app stores) or ``subscribed`` (others);
* past campaigns: one a month from the 4th month; the lapses that are 14-90
  days old and not yet returned enter with probability
  ``campaign_inclusion`` (at most one campaign per lapse) and are randomised
  into a control arm (``control_share``) and seven offer arms (a plain
  message, two discounts of random depth and length, a free month, a feature
  trial, resume billing and early renewal) on random channels;
  ``contact_cost`` is the contract's default cost of the arm's channel when
  the customer can be reached on it (consent), else 0; a customer who comes
  back after the first message and within the window gets the arm's coupon
  (the opening event's ``detail`` is ``coupon:<pct>pct_<months>m``);
* events: ``subscribed``/``reactivated``, ``renewed`` at every period,
  ``payment_failed`` then ``payment_recovered`` or the end, ``cancel_requested``
  then ``cancelled`` (stripe, chargebee, manual) or ``expired`` (others) with
  the stated reason, and ``refunded`` (negative amount) for 60 % of accidental
  cancels (drawn from a child stream ``[seed, 1]``);
* usage: one row per customer and Monday while subscribed (``sessions`` is
  Poisson with mean ``sessions_per_week * engagement``, minutes per session
  grow with affinity); tickets are Poisson in time by category (feature
  requests ~ feature need, complaints ~ low satisfaction, billing after
  payment failures);
* the reason leaves traces with the cancel request (child random streams
  ``[seed, 2]`` and ``[seed, 3]``): a ticket of the reason's category opened
  within a day after it (``trace_ticket_by_reason``), and a customer who
  switched stops using the product (``switched_usage_keep``); interviews for
  ``interview_share`` of lapses 30-90 days after the end, when not returned;
  8 answers following the win-back template, ``q7_offer_interest`` from the
  cure probability, ~15 % low-quality (score < 3) with noisy answers.

Invariants: every timestamp is tz-naive UTC; nothing is dated after ``end``;
the same ``(n_customers, seed, start, end, params)`` gives identical tables
and truth (one ``numpy`` Generator, draws in a fixed order); the loops run
over renewal periods and rounds of returns, never over customers. Strings are
``object`` columns with ``None`` for missing, non-null integers ``int64``,
nullable ones ``Int64``, money ``float64`` (the loader's dtypes). Contact
details are fake (``example.com`` domains, random digits) but still PII in
the contract's sense: keep them out of logs.

Example
-------
>>> from winback_ml.data.synthetic import make_world
>>> w = make_world(n_customers=500, seed=1)
>>> sorted(w.tables)[:3]
['campaign_arms', 'campaign_assignments', 'campaigns']
>>> bool((w.tables["events"]["occurred_at"] <= w.end).all())
True
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.config import DEFAULT_CONFIG
from winback_ml.data.contract import CHANNELS, TABLES
from winback_ml.data.truth import (
    DAY,
    DEFAULT_PARAMS,
    TRUE_REASONS,
    VOLUNTARY_REASONS,
    WorldTruth,
    _to_sec,
    add_months,
    channel_consent,
    channel_reach,
    cure_params,
    discount_fraction,
    load_truth,
    natural_return_prob,
    offer_response,
    price_factor,
    voluntary_hazards,
)
from winback_ml.exceptions import ConfigError, DataContractError

__all__ = ["World", "WorldTruth", "make_world", "load_world", "load_truth"]

_R = {r: i for i, r in enumerate(TRUE_REASONS)}
_INF = np.int64(2**62)
_USAGE_CHUNK = 2_000_000  # usage rows generated at a time (fixed: part of determinism)

# country, language, time zones, currency, phone prefix, national digits, weight
_COUNTRIES = [
    (
        "US",
        "en",
        ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"],
        "USD",
        "1",
        10,
        0.36,
    ),
    ("CA", "en", ["America/Toronto", "America/Vancouver"], "USD", "1", 10, 0.06),
    ("GB", "en", ["Europe/London"], "GBP", "44", 10, 0.12),
    ("DE", "de", ["Europe/Berlin"], "EUR", "49", 10, 0.10),
    ("FR", "fr", ["Europe/Paris"], "EUR", "33", 9, 0.07),
    ("ES", "es", ["Europe/Madrid"], "EUR", "34", 9, 0.05),
    ("NL", "nl", ["Europe/Amsterdam"], "EUR", "31", 9, 0.04),
    ("IT", "it", ["Europe/Rome"], "EUR", "39", 10, 0.04),
    ("AU", "en", ["Australia/Sydney", "Australia/Melbourne"], "USD", "61", 9, 0.05),
    ("BR", "pt", ["America/Sao_Paulo"], "USD", "55", 11, 0.05),
    ("IN", "en", ["Asia/Kolkata"], "USD", "91", 10, 0.04),
    ("JP", "ja", ["Asia/Tokyo"], "USD", "81", 10, 0.02),
]
_SOURCES = ("stripe", "chargebee", "recurly", "app_store", "google_play", "manual")
_SOURCE_W = (0.42, 0.12, 0.10, 0.18, 0.15, 0.03)
_TIERS = ("basic", "pro", "business")
_GBP_PER_USD_PRICE = 0.87  # GBP list prices: the USD figures x 0.87, rounded; EUR: the same figures
_ACQ = (
    "organic",
    "paid_search",
    "paid_social",
    "referral",
    "partner",
    "coupon_site",
    "app_store_search",
)
_FIRST = (
    "alex",
    "sam",
    "maria",
    "jan",
    "li",
    "noah",
    "emma",
    "lucas",
    "mia",
    "omar",
    "sofia",
    "yuki",
    "ana",
    "ben",
    "chloe",
    "david",
    "eva",
    "felix",
    "grace",
    "hugo",
)
_LAST = (
    "smith",
    "garcia",
    "muller",
    "rossi",
    "martin",
    "kim",
    "silva",
    "novak",
    "jones",
    "dubois",
    "tanaka",
    "khan",
    "brown",
    "lopez",
    "weber",
    "costa",
)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")

# event types
_EV = (
    "subscribed",
    "renewed",
    "payment_failed",
    "payment_recovered",
    "cancel_requested",
    "cancelled",
    "expired",
    "reactivated",
    "refunded",
)
_E = {e: i for i, e in enumerate(_EV)}
_REFUND_ACCIDENTAL = 0.6  # share of accidental cancels refunded (own random stream)

_CONFUSE = {
    "too_expensive": "unused",
    "missing_features": "too_complex",
    "switched_service": "missing_features",
    "unused": "too_expensive",
    "customer_service": "low_quality",
    "too_complex": "missing_features",
    "low_quality": "customer_service",
    "contract_ended": "too_expensive",
    "accidental": "other",
    "other": "too_expensive",
    "payment_failed": "payment_failed",
}

_COMMENTS = {
    "payment_failed": ["card expired", "my card was declined", "bank blocked the payment"],
    "too_expensive": [
        "too expensive for what I use",
        "price went up, can't justify it",
        "cheaper options out there",
        "budget cuts, need to save money",
        "costs too much per month",
    ],
    "missing_features": [
        "missing the export feature we need",
        "no integration with our calendar",
        "needs offline mode",
        "lacks team permissions",
        "we need an API and reporting",
    ],
    "switched_service": [
        "moved to another tool",
        "team switched to a competitor",
        "found a better app",
        "company standardised on a different product",
    ],
    "unused": [
        "not using it anymore",
        "haven't logged in for weeks",
        "don't have time to use it",
        "project ended, no need now",
    ],
    "customer_service": [
        "support never answered my ticket",
        "rude support experience",
        "waited days for help",
    ],
    "too_complex": [
        "too complicated to set up",
        "hard to learn, confusing interface",
        "couldn't figure out how to use it",
    ],
    "low_quality": [
        "too many bugs",
        "app keeps crashing",
        "sync is unreliable and slow",
    ],
    "contract_ended": [
        "contract ended, will review next year",
        "annual plan is over, re-evaluating",
        "not renewing the yearly contract for now",
    ],
    "accidental": [
        "cancelled by mistake",
        "meant to pause, not cancel",
        "clicked the wrong button",
    ],
    "other": ["personal reasons", "moving abroad", "just taking a break"],
}

_Q1 = {
    "payment_failed": "I didn't really decide anything, my card expired and the payment bounced.",
    "too_expensive": "We looked at our subscriptions and this one cost more than it was worth to us.",
    "missing_features": "We kept waiting for a feature we needed and in the end we could not wait any longer.",
    "switched_service": "The team moved to another product and we did not need two tools.",
    "unused": "I simply stopped using it, weeks went by without logging in.",
    "customer_service": "I had a problem, support took days and the answer did not help.",
    "too_complex": "It was too hard to set up and nobody on the team had time to learn it.",
    "low_quality": "Things kept breaking, sync failed and I lost some work.",
    "contract_ended": "Our annual contract came up for renewal and we decided to re-evaluate.",
    "accidental": "Honestly I only wanted to pause it, I did not mean to cancel.",
    "other": "A change in my personal situation, nothing to do with the product.",
}
_Q2 = {
    "payment_failed": "When I saw the e-mail that my account was closed.",
    "too_expensive": "The renewal charge on my statement.",
    "missing_features": "When the roadmap showed the feature was still months away.",
    "switched_service": "When my manager said we are standardising on the other tool.",
    "unused": "When I noticed I had paid for three months without opening it.",
    "customer_service": "The third time I had to explain the same problem.",
    "too_complex": "After a whole afternoon trying to configure it.",
    "low_quality": "When the app crashed during a client demo.",
    "contract_ended": "The renewal notice for another full year.",
    "accidental": "There was no moment, it was a mis-click.",
    "other": "When I moved abroad.",
}
_Q3 = {
    "payment_failed": "Nothing, I did not notice the failed payment.",
    "too_expensive": "I looked for a cheaper plan but there was none that fit.",
    "missing_features": "I filed a feature request and tried a workaround with spreadsheets.",
    "switched_service": "We ran both tools side by side for a month.",
    "unused": "I set reminders to use it but it did not stick.",
    "customer_service": "I opened several tickets and wrote to support.",
    "too_complex": "I read the docs and watched tutorials.",
    "low_quality": "I reported the bugs and reinstalled the app.",
    "contract_ended": "I asked sales for a better annual price.",
    "accidental": "Nothing, I wanted to keep it.",
    "other": "Nothing really.",
}
_Q6 = {
    "payment_failed": "Just let me update my card and keep my data.",
    "too_expensive": "A lower price or a discount for a few months.",
    "missing_features": "If the feature we need ships, I would try it again.",
    "switched_service": "The other tool would have to fail us badly.",
    "unused": "If I had a new project that needs it.",
    "customer_service": "Proof that support got faster.",
    "too_complex": "A simpler setup or someone to onboard us.",
    "low_quality": "A stable version without the sync issues.",
    "contract_ended": "A good deal on renewing early.",
    "accidental": "Nothing, I would come back right away.",
    "other": "When my situation changes.",
}
_Q8 = {
    "payment_failed": "The same product, with a reminder before my card expires.",
    "too_expensive": "A cheaper plan with the basics.",
    "missing_features": "Export, integrations and team permissions built in.",
    "switched_service": "Something that works like the tool we use now.",
    "unused": "Something that reminds me why it is useful.",
    "customer_service": "Support that answers within a day.",
    "too_complex": "A guided setup and fewer settings.",
    "low_quality": "Fast and reliable, no crashes.",
    "contract_ended": "Flexible monthly terms with a loyalty price.",
    "accidental": "Just what I had.",
    "other": "Pretty much what it was.",
}
_COMPETITORS = ("Taskly", "Boardwise", "PlanHub", "Notely", "FlowDesk", "Trackr")
_ALTERNATIVES = ("nothing", "a spreadsheet", "pen and paper", "a free app", "nothing for now")
_JUNK = ("idk", "fine", "n/a", "no", "whatever", "...", "not sure")


@dataclass
class World:
    """A synthetic world: contract tables and their truth.

    Attributes
    ----------
    tables : dict of DataFrame
        All nine contract tables with contract dtypes (timestamps tz-naive UTC).
    truth : WorldTruth
        Latent parameters and exact effect functions.
    end : Timestamp
        The world's end, its default ``as_of``; nothing is dated after it.
    start : Timestamp
        The first possible signup.
    seed : int
    n_customers : int
    """

    tables: dict[str, pd.DataFrame]
    truth: WorldTruth
    end: pd.Timestamp
    start: pd.Timestamp
    seed: int
    n_customers: int

    def write(self, out_dir: str | Path, fmt: str = "csv") -> Path:
        """Write the contract tables as ``<table>.csv``/``.parquet`` and the truth in ``_truth/``.

        Parameters
        ----------
        out_dir : folder to write (created).
        fmt : ``"csv"`` or ``"parquet"``.
        """
        if fmt not in ("csv", "parquet"):
            raise ConfigError(f"fmt must be 'csv' or 'parquet'. Got {fmt!r} instead.")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            if fmt == "parquet":
                _write_parquet(name, df, out / f"{name}.parquet")
            else:
                df.to_csv(out / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S")
        self.truth.write(out / "_truth")
        meta = {
            "seed": self.seed,
            "n_customers": self.n_customers,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }
        import json

        (out / "_truth" / "world.json").write_text(json.dumps(meta, indent=1))
        return out


_PA_CHUNK = 2_000_000  # rows per Parquet row group when writing big tables


def _write_parquet(name: str, df: pd.DataFrame, path: Path) -> None:
    """Write a contract table to Parquet in row groups, with the contract's Arrow types.

    Converting a 45-million-row table in one go would double its memory; slices of
    ``_PA_CHUNK`` rows keep the peak small.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds = {
        "string": pa.string(),
        "timestamp": pa.timestamp("ns"),
        "date": pa.timestamp("ns"),
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
    }
    schema = pa.schema([(c.name, kinds[c.kind]) for c in TABLES[name].columns])
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, max(len(df), 1), _PA_CHUNK):
            part = df.iloc[lo : lo + _PA_CHUNK]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))


def load_world(out_dir: str | Path) -> World:
    """Read a world written by :meth:`World.write` (tables with contract dtypes + truth)."""
    import json

    p = Path(out_dir)
    meta_p = p / "_truth" / "world.json"
    if not meta_p.exists():
        raise DataContractError(
            f"{str(p)!r} is not a world folder: {str(meta_p)!r} is missing. "
            "Fix: create one with `winback make-world OUT`."
        )
    meta = json.loads(meta_p.read_text())
    tables = {}
    for name in TABLES:
        pq, csv = p / f"{name}.parquet", p / f"{name}.csv"
        if pq.exists():
            df = pd.read_parquet(pq)
        elif csv.exists():
            df = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
        else:
            continue
        tables[name] = _coerce(name, df)
    return World(
        tables=tables,
        truth=load_truth(p),
        end=pd.Timestamp(meta["end"]),
        start=pd.Timestamp(meta["start"]),
        seed=int(meta["seed"]),
        n_customers=int(meta["n_customers"]),
    )


def _coerce(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes for a table read back from CSV or Parquet."""
    out = {}
    for col in TABLES[name].columns:
        s = df[col.name]
        if col.kind in ("timestamp", "date"):
            s = pd.to_datetime(s).astype("datetime64[ns]")
        elif col.kind == "float":
            s = pd.to_numeric(s).astype(np.float64)
        elif col.kind == "int":
            s = pd.to_numeric(s)
            s = s.astype("Int64") if col.nullable else s.astype(np.int64)
        elif col.kind == "bool":
            s = s.map(lambda v: v if isinstance(v, (bool, np.bool_)) else str(v) == "True")
            s = s.astype(bool)
        else:
            s = s.astype(object).where(s.notna(), None)
        out[col.name] = s
    return pd.DataFrame(out)


# ==========================================================================================
# make_world
# ==========================================================================================
def make_world(
    n_customers: int = 5000,
    seed: int = 0,
    start: Any = "2023-01-01",
    end: Any = "2025-12-31",
    *,
    params: dict[str, Any] | None = None,
) -> World:
    """Simulate a subscription business with known truth.

    Parameters
    ----------
    n_customers : number of customers (>= 1).
    seed : seed of the one random generator; same inputs give identical worlds.
    start, end : the world's time span; ``end`` is its default ``as_of``.
    params : overrides of :data:`winback_ml.data.truth.DEFAULT_PARAMS`.

    Returns
    -------
    World
    """
    if not isinstance(n_customers, (int, np.integer)) or n_customers < 1:
        raise ConfigError(f"n_customers must be a positive integer. Got {n_customers!r} instead.")
    P = copy.deepcopy(DEFAULT_PARAMS)
    for k, v in (params or {}).items():
        if k not in P:
            raise ConfigError(
                f"Unknown world parameter {k!r}. Use keys of DEFAULT_PARAMS, e.g. {sorted(P)[:5]}."
            )
        P[k] = v
    S = int(_to_sec(start))
    E = int(_to_sec(end))
    if E <= S + 90 * DAY:
        raise ConfigError(
            f"end must be at least 90 days after start. Got start={start!r}, end={end!r}."
        )
    rng = np.random.default_rng(seed)
    sim = _Sim(int(n_customers), rng, S, E, P)
    return sim.run(seed)


class _Sim:
    """The simulation state (internal)."""

    def __init__(self, n: int, rng: np.random.Generator, S: int, E: int, P: dict[str, Any]):
        self.n, self.rng, self.S, self.E, self.P = n, rng, S, E, P

    # ------------------------------------------------------------------ customers
    def customers(self) -> None:
        n, rng, S, E, P = self.n, self.rng, self.S, self.E, self.P
        g = np.log(2.0)
        x = np.log1p(rng.random(n) * (np.exp(g) - 1.0)) / g
        signup = np.sort(S + (x * (E - S - DAY)).astype(np.int64))
        w = np.array([c[6] for c in _COUNTRIES])
        ci = rng.choice(len(_COUNTRIES), size=n, p=w / w.sum())
        tz_pick = rng.random(n)
        # latents
        ps = rng.gamma(2.0, 0.5, n)
        ds = (rng.random(n) < 0.08 + 0.12 * np.minimum(ps, 2.5)).astype(np.float64)
        e0 = np.exp(rng.normal(0.0, 0.5, n))
        fast = rng.random(n) < 0.3
        decay = np.where(fast, rng.gamma(2.0, 0.12, n), rng.gamma(2.0, 0.01, n))
        fn = rng.beta(1.2, 4.0, n)
        sat = rng.beta(5.0, 2.0, n)
        skill = rng.beta(4.0, 2.0, n)
        comp = rng.beta(1.0, 8.0, n)
        pf = rng.beta(1.0, 25.0, n)
        aff = rng.normal(0.0, 1.0, n)
        r_email = rng.beta(5.0, 3.0, n)
        r_sms = rng.beta(6.0, 3.0, n)
        r_app = rng.beta(3.0, 5.0, n)
        # contact
        has_email = rng.random(n) < 0.92
        email_opt = has_email & (rng.random(n) < 0.80)
        has_phone = rng.random(n) < 0.45
        sms_opt = has_phone & (rng.random(n) < 0.55)
        # source, tier, interval
        src = rng.choice(len(_SOURCES), size=n, p=np.array(_SOURCE_W))
        app = (src == 3) | (src == 4)
        tw = np.stack([0.45 * ps, np.full(n, 0.40), 0.15 / np.maximum(ps, 0.2)], axis=1)
        tw[app, 2] = 0.0
        tw = tw / tw.sum(1, keepdims=True)
        tier = (rng.random(n)[:, None] > np.cumsum(tw, 1)).sum(1).clip(0, 2)
        p_annual = np.array([0.15, 0.20, 0.35])[tier]
        annual = rng.random(n) < p_annual
        im = np.where(annual, 12, 1).astype(np.int64)
        # acquisition channel
        acq_w = np.tile(np.array([0.35, 0.2, 0.15, 0.12, 0.08, 0.05, 0.05]), (n, 1))
        acq_w[:, 5] += 0.35 * ds
        acq_w[~app, 6] = 0.0
        acq_w[app, 6] += 0.4
        acq_w = acq_w / acq_w.sum(1, keepdims=True)
        acq = (rng.random(n)[:, None] > np.cumsum(acq_w, 1)).sum(1).clip(0, len(_ACQ) - 1)
        # geography
        cur = np.array([c[3] for c in _COUNTRIES], dtype=object)[ci]
        fx = np.array([P["fx_to_usd"][c] for c in cur])
        usd = np.array([P["monthly_price_usd"][t] for t in _TIERS], dtype=np.float64)
        price_tab = {"USD": usd, "EUR": usd, "GBP": np.round(usd * _GBP_PER_USD_PRICE)}
        monthly_local = np.empty(n)
        for c, v in price_tab.items():
            m = cur == c
            monthly_local[m] = v[tier[m]]
        period_price = np.where(annual, monthly_local * P["annual_months_price"], monthly_local)
        list_mrr = np.round(period_price / im * fx, 2)
        self.c = {
            "signup": signup,
            "ci": ci,
            "tz_pick": tz_pick,
            "has_email": has_email,
            "email_opt": email_opt,
            "has_phone": has_phone,
            "sms_opt": sms_opt,
            "src": src,
            "tier": tier,
            "im": im,
            "acq": acq,
            "cur": cur,
            "period_price": period_price,
        }
        self.L = {
            "price_sensitivity": ps,
            "deal_seeker": ds,
            "engagement0": e0,
            "engagement_decay": decay,
            "feature_need": fn,
            "satisfaction": sat,
            "skill": skill,
            "competitor_exposure": comp,
            "payment_fail_prob": pf,
            "affinity": aff,
            "resp_email": r_email,
            "resp_sms": r_sms,
            "resp_in_app": r_app,
            "email_ok": email_opt.astype(np.float64),
            "sms_ok": sms_opt.astype(np.float64),
            "in_app_ok": app.astype(np.float64),
            "list_mrr": list_mrr,
            "interval_months": im.astype(np.float64),
        }
        self.phone_digits = rng.integers(0, 10, size=(n, 11))
        self.name_pick = rng.integers(0, 10**6, size=(n, 3))

    def _lat(self, cidx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[cidx] for k, v in self.L.items()}

    # ------------------------------------------------------------------ campaigns design
    def campaigns_design(self) -> None:
        rng, S, E, P = self.rng, self.S, self.E, self.P
        m0 = np.datetime64(int(S), "s").astype("datetime64[M]")
        times = []
        j = int(P["campaign_first_month"])
        while True:
            t = int((m0 + j).astype("datetime64[s]").astype(np.int64)) + 10 * 3600
            if t > E:
                break
            times.append(t)
            j += 1
        self.C = np.array(times, dtype=np.int64)
        nC = len(self.C)
        arm_names = [
            "control",
            "plain",
            "disc_a",
            "disc_b",
            "free_month",
            "feature_trial",
            "resume_billing",
            "early_renewal",
        ]
        arm_types = [
            "none",
            "none",
            "discount",
            "discount",
            "free_month",
            "feature_trial",
            "resume_billing",
            "early_renewal",
        ]
        na = len(arm_names)
        pcts = np.array([5, 10, 15, 20, 25, 30, 40, 50], dtype=np.float64)
        mons = np.array([1, 3, 6], dtype=np.float64)
        ch_p = np.array([0.45, 0.15, 0.15, 0.25])
        self.arm_names = arm_names
        self.arm_type = np.tile(np.array(arm_types, dtype=object), (nC, 1))
        self.arm_pct = np.zeros((nC, na))
        self.arm_mon = np.zeros((nC, na))
        self.arm_pct[:, 2] = pcts[rng.integers(0, len(pcts), nC)]
        self.arm_pct[:, 3] = pcts[rng.integers(0, len(pcts), nC)]
        self.arm_mon[:, 2] = mons[rng.integers(0, len(mons), nC)]
        self.arm_mon[:, 3] = mons[rng.integers(0, len(mons), nC)]
        self.arm_mon[:, 4] = 1
        self.arm_pct[:, 7] = 15
        self.arm_mon[:, 7] = 12
        self.arm_ch = np.array(CHANNELS, dtype=object)[rng.choice(4, size=(nC, na), p=ch_p)]
        self.arm_ch[:, 0] = "email"
        self.arm_delay = rng.integers(0, 3, size=(nC, na))
        self.arm_delay[:, 0] = 0
        self.arm_variant = np.array(["v1", "v2"], dtype=object)[rng.integers(0, 2, size=(nC, na))]
        self.arm_variant[:, 0] = "control"
        probs = np.full(na, (1.0 - P["control_share"]) / (na - 1))
        probs[0] = P["control_share"]
        self.arm_cum = np.cumsum(probs)

    # ------------------------------------------------------------------ one round of episodes
    def episodes(
        self, cust: np.ndarray, start: np.ndarray, pct: np.ndarray, mon: np.ndarray, g0: int
    ) -> dict:
        """Simulate subscriptions from ``start`` until they end or the world ends."""
        rng, E, P = self.rng, self.E, self.P
        n = len(cust)
        im = self.c["im"][cust]
        price = self.c["period_price"][cust]
        end = np.full(n, -1, dtype=np.int64)
        reason = np.full(n, -1, dtype=np.int64)
        req = np.full(n, -1, dtype=np.int64)
        cpe = np.full(n, -1, dtype=np.int64)
        past_due = np.zeros(n, dtype=bool)
        ev_ep, ev_t, ev_ty, ev_amt = [], [], [], []
        f_ep, f_at, f_rec = [], [], []
        # first payment
        ev_ep.append(np.arange(n))
        ev_t.append(start.copy())
        ev_ty.append(np.full(n, -1))  # -1: opening event, decided at assembly
        ev_amt.append(price * price_factor(0, im, pct, mon))
        W = (np.minimum(P["cancel_window_days"], 0.9 * 28 * im) * DAY).astype(np.int64)
        dun = int(P["dunning_days"] * DAY)
        rec_mean = P["dunning_recovery_mean_days"]
        rec_cap = 1.0 - np.exp(-P["dunning_days"] / rec_mean)
        active = np.arange(n)
        k = 1
        while active.size:
            a = active
            t = add_months(start[a], k * im[a])
            later = t - W[a] > E
            cpe[a[later]] = t[later]
            a, t = a[~later], t[~later]
            if not a.size:
                break
            kk = np.full(len(a), k)
            L = self._lat(cust[a])
            f_prev = discount_fraction(kk - 1, im[a], mon[a]) * (pct[a] > 0)
            f_now = discount_fraction(kk, im[a], mon[a]) * (pct[a] > 0)
            d_end = ((f_prev > 0) & (f_now == 0)).astype(np.float64)
            pfac = price_factor(kk, im[a], pct[a], mon[a])
            H = voluntary_hazards(
                L, (kk * im[a]).astype(np.float64), im[a].astype(np.float64), pfac, d_end, P
            )
            tot = H.sum(1)
            v = 1.0 - np.exp(-tot)
            u = rng.random((4, len(a)))
            cancel = u[0] < v
            r_time = t - (W[a] * u[1]).astype(np.int64) - 60
            cum = np.cumsum(H, axis=1)
            pick = (cum < (u[2] * tot)[:, None]).sum(1).clip(0, len(VOLUNTARY_REASONS) - 1)
            vol_reason = 1 + pick
            future = t > E
            # voluntary cancels
            c_now = cancel & ~future
            i = a[c_now]
            end[i], reason[i], req[i], cpe[i] = t[c_now], vol_reason[c_now], r_time[c_now], t[c_now]
            ev_ep += [i, i]
            ev_t += [r_time[c_now], t[c_now]]
            ev_ty += [np.full(len(i), _E["cancel_requested"]), np.full(len(i), -2)]  # -2: end event
            ev_amt += [np.full(len(i), np.nan), np.full(len(i), np.nan)]
            c_fut = cancel & future
            i = a[c_fut]
            cpe[i] = t[c_fut]
            seen = r_time[c_fut] <= E
            req[i[seen]] = r_time[c_fut][seen]
            reason[i[seen]] = vol_reason[c_fut][seen]
            ev_ep.append(i[seen])
            ev_t.append(r_time[c_fut][seen])
            ev_ty.append(np.full(int(seen.sum()), _E["cancel_requested"]))
            ev_amt.append(np.full(int(seen.sum()), np.nan))
            nc_fut = ~cancel & future
            cpe[a[nc_fut]] = t[nc_fut]
            # renewals
            go = ~cancel & ~future
            ag, tg = a[go], t[go]
            amt = price[ag] * pfac[go]
            fail = u[3][go] < L["payment_fail_prob"][go]
            ok = ~fail
            ev_ep.append(ag[ok])
            ev_t.append(tg[ok])
            ev_ty.append(np.full(int(ok.sum()), _E["renewed"]))
            ev_amt.append(amt[ok])
            cont = [ag[ok]]
            if fail.any():
                af, tf, amf = ag[fail], tg[fail], amt[fail]
                nf = len(af)
                uu = rng.random((2, nf))
                rec = uu[0] < P["dunning_recovery"]
                tau = -rec_mean * np.log1p(-uu[1] * rec_cap)
                rt = tf + (tau * DAY).astype(np.int64)
                ev_ep.append(af)
                ev_t.append(tf)
                ev_ty.append(np.full(nf, _E["payment_failed"]))
                ev_amt.append(amf)
                r_ok = rec & (rt <= E)
                ev_ep.append(af[r_ok])
                ev_t.append(rt[r_ok])
                ev_ty.append(np.full(int(r_ok.sum()), _E["payment_recovered"]))
                ev_amt.append(amf[r_ok])
                f_ep.append(af)
                f_at.append(tf)
                f_rec.append(np.where(r_ok, rt, -1))
                cont.append(af[r_ok])
                # recovered later than the world's end: still past due
                pdue = rec & ~r_ok
                past_due[af[pdue]] = True
                cpe[af[pdue]] = tf[pdue]
                lost = ~rec
                te = tf + dun
                l_now = lost & (te <= E)
                i = af[l_now]
                end[i], reason[i], cpe[i] = te[l_now], _R["payment_failed"], tf[l_now]
                ev_ep.append(i)
                ev_t.append(te[l_now])
                ev_ty.append(np.full(len(i), -2))
                ev_amt.append(np.full(len(i), np.nan))
                l_fut = lost & (te > E)
                past_due[af[l_fut]] = True
                cpe[af[l_fut]] = tf[l_fut]
            active = np.sort(np.concatenate(cont))
            k += 1
        cat = np.concatenate
        return {
            "cust": cust,
            "start": start,
            "pct": pct,
            "mon": mon,
            "end": end,
            "reason": reason,
            "req": req,
            "cpe": cpe,
            "past_due": past_due,
            "ev": (cat(ev_ep) + g0, cat(ev_t), cat(ev_ty), cat(ev_amt)),
            "fail": (
                cat(f_ep) + g0 if f_ep else np.zeros(0, np.int64),
                cat(f_at) if f_at else np.zeros(0, np.int64),
                cat(f_rec) if f_rec else np.zeros(0, np.int64),
            ),
        }

    # ------------------------------------------------------------------ lapses of a round
    def lapses(self, ep: dict) -> dict:
        """Natural returns, campaign assignment and treatment of the round's lapses."""
        rng, E, P = self.rng, self.E, self.P

        lap = np.where(ep["end"] >= 0)[0]
        nl = len(lap)
        cust = ep["cust"][lap]
        L = self._lat(cust)
        Lend = ep["end"][lap]
        reason = ep["reason"][lap]
        pi, mu = cure_params(reason, L, P)
        u = rng.random((4, nl))
        cured = u[0] < pi
        t_nat = np.where(cured, Lend + (rng.exponential(1.0, nl) / mu * DAY).astype(np.int64), _INF)
        # campaigns
        C = self.C
        nC = len(C)
        camp = np.full(nl, -1, dtype=np.int64)
        if nC:
            first = np.searchsorted(C, Lend + int(P["campaign_min_days"] * DAY), side="left")
            for j in range(4):
                ci = first + j
                cc = C[np.minimum(ci, nC - 1)]
                valid = (camp < 0) & (ci < nC) & (cc <= Lend + int(P["campaign_max_days"] * DAY))
                valid &= (cc < t_nat) & (cc <= E)
                inc = rng.random(nl) < P["campaign_inclusion"]
                camp = np.where(valid & inc, ci, camp)
        asg = camp >= 0
        arm = np.full(nl, -1, dtype=np.int64)
        arm[asg] = np.searchsorted(self.arm_cum, rng.random(int(asg.sum())), side="right").clip(
            0, len(self.arm_names) - 1
        )
        a_idx = np.where(asg)[0]
        cidx = camp[a_idx]
        aj = arm[a_idx]
        ot = self.arm_type[cidx, aj]
        apct = self.arm_pct[cidx, aj]
        amon = self.arm_mon[cidx, aj]
        ach = self.arm_ch[cidx, aj]
        adel = self.arm_delay[cidx, aj]
        at = C[cidx]
        d = (at - Lend[a_idx]) / DAY
        La = {k: v[a_idx] for k, v in L.items()}
        control = aj == 0
        # world's offer terms (free month = 100 % for a month)
        tpct = np.where(ot == "free_month", 100.0, apct)
        tmon = amon
        resp = offer_response(reason[a_idx], ot, tpct, tmon, La, P)
        reach = channel_reach(ach, La)
        consent = channel_consent(ach, La) & ~control
        uu = np.where(control, 0.0, reach * resp * np.exp(-d / P["offer_decay_days"]))
        p_base = natural_return_prob(pi[a_idx], mu[a_idx], d, P["offer_window_days"])
        conv = u[1][a_idx] < uu
        win = float(P["offer_window_days"])
        span = win - adel
        m_ = P["treat_return_mean_days"]
        tau = -m_ * np.log1p(-u[2][a_idx] * (1.0 - np.exp(-span / m_)))
        t_treat = np.where(conv, at + ((adel + tau) * DAY).astype(np.int64), _INF)
        ret = t_nat.copy()
        ret[a_idx] = np.minimum(t_nat[a_idx], t_treat)
        cause = np.where(np.isfinite(ret) & (ret < _INF), 1, -1)
        cause_a = np.where(t_treat < t_nat[a_idx], 2, cause[a_idx])
        cause[a_idx] = cause_a
        # the coupon reaches those who come back after the first message, within the window
        within = (ret[a_idx] <= at + int(win * DAY)) & (ret[a_idx] >= at + adel * DAY)
        gets_offer = consent & within & (ret[a_idx] <= E)
        new_pct = np.zeros(nl)
        new_mon = np.zeros(nl)
        new_pct[a_idx[gets_offer]] = tpct[gets_offer]
        new_mon[a_idx[gets_offer]] = np.where(tpct[gets_offer] > 0, tmon[gets_offer], 0.0)
        costs = DEFAULT_CONFIG["contact_cost"]
        cost = np.where(consent, pd.Series(ach, dtype=object).map(costs).to_numpy(np.float64), 0.0)
        # interviews
        sel = u[3] < P["interview_share"]
        ans = Lend + ((30 + 60 * rng.random(nl)) * DAY).astype(np.int64)
        iv = sel & (ans < ret) & (ans <= E)
        iv_t = np.where(iv, ans, -1)
        return {
            "lap": lap,
            "pi": pi,
            "mu": mu,
            "ret": ret,
            "cause": cause,
            "new_pct": new_pct,
            "new_mon": new_mon,
            "camp": camp,
            "arm": arm,
            "a_idx": a_idx,
            "cost": cost,
            "u": uu,
            "p_base": p_base,
            "iv_t": iv_t,
        }

    # ------------------------------------------------------------------ run
    def run(self, seed: int) -> World:
        self.customers()
        self.campaigns_design()
        n, E = self.n, self.E
        cust = np.arange(n)
        start = self.c["signup"].copy()
        pct = np.zeros(n)
        mon = np.zeros(n)
        epno = np.zeros(n, dtype=np.int64)
        scause = np.zeros(n, dtype=np.int64)
        rounds = []
        g0 = 0
        while len(cust):
            ep = self.episodes(cust, start, pct, mon, g0)
            lp = self.lapses(ep)
            ep["epno"] = epno
            ep["scause"] = scause
            ep["g0"] = g0
            rounds.append((ep, lp))
            g0 += len(cust)
            back = lp["ret"] <= E
            li = lp["lap"][back]
            cust = ep["cust"][li]
            start = lp["ret"][back]
            pct = lp["new_pct"][back]
            mon = lp["new_mon"][back]
            epno = ep["epno"][li] + 1
            scause = lp["cause"][back]
        return _assemble(self, rounds, seed)


# ==========================================================================================
# assembly of the contract tables and the truth
# ==========================================================================================
def _ids(prefix: str, nums: np.ndarray, width: int) -> np.ndarray:
    return np.array([f"{prefix}{x:0{width}d}" for x in nums.tolist()], dtype=object)


def _ts(sec: np.ndarray) -> np.ndarray:
    """int64 seconds (-1 = missing) -> datetime64[ns] with NaT."""
    sec = np.asarray(sec, dtype=np.int64)
    out = (sec * 10**9).astype("datetime64[ns]")
    out[sec < 0] = np.datetime64("NaT")
    return out


def _assemble(sim: _Sim, rounds: list, seed: int) -> World:
    P, E, n, rng = sim.P, sim.E, sim.n, sim.rng
    c = sim.c
    width = max(6, len(str(n)))
    cust_ids = _ids("cus_", np.arange(1, n + 1), width)

    # ---------------------------------------------------------------- customers
    ci = c["ci"]
    iso = np.array([x[0] for x in _COUNTRIES], dtype=object)[ci]
    lang = np.array([x[1] for x in _COUNTRIES], dtype=object)[ci]
    tz = np.array(
        [
            _COUNTRIES[a][2][int(b * len(_COUNTRIES[a][2]))]
            for a, b in zip(ci.tolist(), c["tz_pick"].tolist(), strict=True)
        ],
        dtype=object,
    )
    pre = np.array([x[4] for x in _COUNTRIES], dtype=object)[ci]
    nd = np.array([x[5] for x in _COUNTRIES])[ci]
    dig = sim.phone_digits.copy()
    dig[:, 0] = 2 + dig[:, 0] % 8
    dstr = ["".join(map(str, row)) for row in dig.tolist()]
    phone = np.array(
        [f"+{p}{s[:k]}" for p, s, k in zip(pre, dstr, nd.tolist(), strict=True)], dtype=object
    )
    phone[~c["has_phone"]] = None
    npk = sim.name_pick
    email = np.array(
        [
            f"{_FIRST[a % len(_FIRST)]}.{_LAST[b % len(_LAST)]}{i}@{_DOMAINS[d % len(_DOMAINS)]}"
            for i, (a, b, d) in enumerate(npk.tolist(), start=1)
        ],
        dtype=object,
    )
    email[~c["has_email"]] = None
    miss = rng.random((3, n))
    iso = np.where(miss[0] < 0.02, None, iso)
    lang = np.where(miss[1] < 0.03, None, lang)
    tz = np.where(miss[2] < 0.05, None, tz)
    customers = pd.DataFrame(
        {
            "customer_id": cust_ids,
            "signup_at": _ts(c["signup"]),
            "country": iso,
            "language": lang,
            "timezone": tz,
            "email": email,
            "phone": phone,
            "email_opt_in": c["email_opt"].astype(bool),
            "sms_opt_in": c["sms_opt"].astype(bool),
            "acquisition_channel": np.array(_ACQ, dtype=object)[c["acq"]],
        },
        copy=False,
    )

    # ---------------------------------------------------------------- episodes (global)
    def cat(key: str, src: int = 0) -> np.ndarray:
        return np.concatenate([r[src][key] for r in rounds])

    ep_cust = cat("cust")
    ep_start = cat("start")
    ep_end = cat("end")
    ep_reason = cat("reason")
    ep_req = cat("req")
    ep_cpe = cat("cpe")
    ep_pd = cat("past_due")
    ep_pct = cat("pct")
    ep_mon = cat("mon")
    ep_no = cat("epno")
    ep_scause = cat("scause")
    n_ep = len(ep_cust)
    # lapse info mapped to episodes
    pi = np.full(n_ep, np.nan)
    mu = np.full(n_ep, np.nan)
    ret = np.full(n_ep, -1, dtype=np.int64)
    rcause = np.full(n_ep, -1, dtype=np.int64)
    camp = np.full(n_ep, -1, dtype=np.int64)
    arm = np.full(n_ep, -1, dtype=np.int64)
    cost = np.full(n_ep, np.nan)
    uplift = np.full(n_ep, np.nan)
    pbase = np.full(n_ep, np.nan)
    iv_t = np.full(n_ep, -1, dtype=np.int64)
    for ep, lp in rounds:
        gi = ep["g0"] + lp["lap"]
        pi[gi], mu[gi] = lp["pi"], lp["mu"]
        r = lp["ret"]
        ret[gi] = np.where(r <= E, r, -1)
        rcause[gi] = np.where(r <= E, lp["cause"], -1)
        camp[gi], arm[gi] = lp["camp"], lp["arm"]
        ga = gi[lp["a_idx"]]
        cost[ga], uplift[ga], pbase[ga] = lp["cost"], lp["u"], lp["p_base"]
        iv_t[gi] = lp["iv_t"]
    ended = ep_end >= 0
    voluntary = ended & (ep_reason >= 1)
    src = c["src"][ep_cust]
    src_name = np.array(_SOURCES, dtype=object)[src]
    sub_ids = np.array(
        [
            f"sub_{a + 1:0{width}d}_{b}"
            for a, b in zip(ep_cust.tolist(), ep_no.tolist(), strict=True)
        ],
        dtype=object,
    )
    # stated reasons (for every episode with a known reason: ended, or a pending request)
    has_reason = ep_reason >= 0
    names = np.array(TRUE_REASONS, dtype=object)
    true_r = np.full(n_ep, None, dtype=object)
    true_r[has_reason] = names[ep_reason[has_reason]]
    stated = true_r.copy()
    uu = rng.random((4, n_ep))
    unk_share = np.array([P["unknown_share_by_source"][s] for s in _SOURCES])[src]
    vol_any = has_reason & (ep_reason >= 1)
    unknown = vol_any & (uu[0] < unk_share)
    mis = vol_any & ~unknown & (uu[1] < P["misreport_prob"])
    conf = np.array([_CONFUSE[r] if r is not None else None for r in true_r], dtype=object)
    stated[mis] = np.where(uu[2][mis] < 0.5, "other", conf[mis])
    stated[unknown] = "unknown"
    # comments from the true reason's phrase bank
    cprob = np.array([P["comment_prob_by_source"][s] for s in _SOURCES])[src]
    has_c = vol_any & (uu[3] < cprob)
    comment = np.full(n_ep, None, dtype=object)
    hc = np.where(has_c)[0]
    pick = rng.random(len(hc))
    comment[hc] = [
        _COMMENTS[true_r[i]][int(p * len(_COMMENTS[true_r[i]]))]
        for i, p in zip(hc.tolist(), pick.tolist(), strict=True)
    ]
    # status
    status = np.full(n_ep, "active", dtype=object)
    status[ep_pd & ~ended] = "past_due"
    web_cancel = np.isin(src_name, ("stripe", "chargebee", "manual"))
    status[ended] = np.where(web_cancel[ended], "cancelled", "expired")
    tier = c["tier"][ep_cust]
    im = c["im"][ep_cust]
    cur = c["cur"][ep_cust]
    tier_name = np.array(_TIERS, dtype=object)[tier]
    interval = np.where(im == 12, "year", "month").astype(object)
    plan_id = np.array(
        [f"{a}_{b}ly_{x.lower()}" for a, b, x in zip(tier_name, interval, cur, strict=True)],
        dtype=object,
    )
    price = c["period_price"][ep_cust]
    subs = pd.DataFrame(
        {
            "subscription_id": sub_ids,
            "customer_id": cust_ids[ep_cust],
            "source": src_name,
            "plan_id": plan_id,
            "plan_tier": tier_name,
            "billing_interval": interval,
            "price": price.astype(np.float64),
            "currency": cur,
            "mrr": sim.L["list_mrr"][ep_cust],
            "status": status,
            "started_at": _ts(ep_start),
            "current_period_end": _ts(ep_cpe),
            "cancel_requested_at": _ts(ep_req),
            "ended_at": _ts(ep_end),
            "cancel_reason": stated,
            "cancel_comment": comment,
        },
        copy=False,
    )

    # ---------------------------------------------------------------- events
    e_ep = np.concatenate([r[0]["ev"][0] for r in rounds])
    e_t = np.concatenate([r[0]["ev"][1] for r in rounds])
    e_ty = np.concatenate([r[0]["ev"][2] for r in rounds]).astype(np.int64)
    e_amt = np.concatenate([r[0]["ev"][3] for r in rounds])
    keep = e_t <= E
    e_ep, e_t, e_ty, e_amt = e_ep[keep], e_t[keep], e_ty[keep], e_amt[keep]
    e_ep, e_t, e_ty, e_amt = _refunds(sim, seed, e_ep, e_t, e_ty, e_amt, ep_reason, ep_req, ep_end)
    e_src = src[e_ep]
    # opening events
    opening = e_ty == -1
    react_src = np.isin(e_src, (1, 3, 4))  # chargebee, app_store, google_play
    reopen = opening & (ep_no[e_ep] > 0)
    e_ty[opening] = _E["subscribed"]
    e_ty[reopen & react_src] = _E["reactivated"]
    end_ev = e_ty == -2
    e_ty[end_ev] = np.where(web_cancel[e_ep[end_ev]], _E["cancelled"], _E["expired"])
    order = np.lexsort((e_ty, e_ep, e_t))
    e_ep, e_t, e_ty, e_amt = e_ep[order], e_t[order], e_ty[order], e_amt[order]
    ne = len(e_ep)
    ev_names = np.array(_EV, dtype=object)[e_ty]
    e_reason = np.full(ne, None, dtype=object)
    rmask = np.isin(e_ty, (_E["cancel_requested"], _E["cancelled"], _E["expired"]))
    e_reason[rmask] = stated[e_ep[rmask]]
    e_cur = cur[e_ep].astype(object)
    has_amt = ~np.isnan(e_amt)
    e_cur[~has_amt] = None
    detail = np.full(ne, None, dtype=object)
    inv = rmask & (ep_reason[e_ep] == 0)
    detail[inv] = "dunning_exhausted"
    detail[rmask & ~inv] = "customer_request"
    detail[e_ty == _E["refunded"]] = "refund_accidental_cancel"
    disc_open = opening[order] & (ep_pct[e_ep] > 0)
    detail[disc_open] = [
        f"coupon:{int(p)}pct_{int(m)}m"
        for p, m in zip(ep_pct[e_ep[disc_open]], ep_mon[e_ep[disc_open]], strict=True)
    ]
    events = pd.DataFrame(
        {
            "event_id": _ids("evt_", np.arange(1, ne + 1), max(8, len(str(ne)))),
            "occurred_at": _ts(e_t),
            "customer_id": cust_ids[ep_cust[e_ep]],
            "subscription_id": sub_ids[e_ep],
            "source": src_name[e_ep],
            "event_type": ev_names,
            "amount": np.round(e_amt, 2),
            "currency": e_cur,
            "reason": e_reason,
            "detail": detail,
        },
        copy=False,
    )
    del e_ep, e_t, e_ty, e_amt, ev_names, e_reason, e_cur, detail
    for r in rounds:
        r[0]["ev"] = None

    # ---------------------------------------------------------------- usage
    usage = _usage(sim, ep_cust, ep_start, ep_end, cust_ids, (seed, ep_reason, ep_req))

    # ---------------------------------------------------------------- tickets
    fails = [r[0]["fail"] for r in rounds]
    f_ep = np.concatenate([f[0] for f in fails])
    f_at = np.concatenate([f[1] for f in fails])
    f_rec = np.concatenate([f[2] for f in fails])
    tickets = _tickets(sim, ep_cust, ep_start, ep_end, f_ep, f_at, cust_ids)
    tickets = _reason_tickets(sim, seed, tickets, ep_cust, ep_reason, ep_req, ep_end, cust_ids)

    # ---------------------------------------------------------------- interviews, segments
    lapsed = np.where(ended)[0]
    seg = np.full(n_ep, None, dtype=object)
    r = ep_reason[lapsed]
    p_ = pi[lapsed]
    s_ = np.where(p_ >= 0.4, "hot", np.where(p_ >= 0.15, "warm", "lost")).astype(object)
    s_[np.isin(r, (_R["accidental"], _R["payment_failed"]))] = "misclassified"
    seg[lapsed] = s_
    interviews = _interviews(sim, np.where(iv_t >= 0)[0], iv_t, ep_cust, true_r, pi, cust_ids)

    # ---------------------------------------------------------------- campaigns
    campaigns, arms, assignments = _campaign_tables(sim, camp, arm, ep_cust, cost, ep_end, cust_ids)

    tables = {
        "customers": customers,
        "subscriptions": subs,
        "events": events,
        "usage": usage,
        "support_tickets": tickets,
        "interviews": interviews,
        "campaigns": campaigns,
        "campaign_arms": arms,
        "campaign_assignments": assignments,
    }

    # ---------------------------------------------------------------- truth
    tc = pd.DataFrame({"customer_id": cust_ids})
    tc["source"] = np.array(_SOURCES, dtype=object)[c["src"]]
    tc["plan_tier"] = np.array(_TIERS, dtype=object)[c["tier"]]
    tc["billing_interval"] = np.where(c["im"] == 12, "year", "month")
    for k, v in sim.L.items():
        tc[k] = v
    camp_ids = _campaign_ids(sim)
    arm_names = np.array(sim.arm_names, dtype=object)
    has_c = camp >= 0
    te = pd.DataFrame(
        {
            "subscription_id": sub_ids,
            "customer_id": cust_ids[ep_cust],
            "episode": ep_no,
            "started_at": _ts(ep_start),
            "ended_at": _ts(ep_end),
            "cancel_requested_at": _ts(ep_req),
            "voluntary": voluntary,
            "true_reason": true_r,
            "stated_reason": stated,
            "offer_pct": ep_pct,
            "offer_months": ep_mon,
            "start_cause": np.array(["signup", "natural", "campaign"], dtype=object)[
                np.clip(ep_scause, 0, 2)
            ],
            "cure_prob": pi,
            "return_rate": mu,
            "returned_at": _ts(ret),
            "return_cause": np.where(
                rcause == 2, "campaign", np.where(rcause == 1, "natural", None)
            ).astype(object),
            "campaign_id": np.where(has_c, camp_ids[np.maximum(camp, 0)], None).astype(object),
            "arm_id": np.where(has_c, arm_names[np.maximum(arm, 0)], None).astype(object),
            "assigned_at": _ts(
                np.where(has_c, sim.C[np.maximum(camp, 0)] if len(sim.C) else -1, -1)
            ),
            "p_base_at_assignment": pbase,
            "uplift_at_assignment": uplift,
            "send_delay_days": np.where(
                has_c,
                sim.arm_delay[np.maximum(camp, 0), np.maximum(arm, 0)] if len(sim.C) else 0,
                0,
            ).astype(np.int64),
            "true_segment": seg,
            "interviewed_at": _ts(iv_t),
        },
        copy=False,
    )
    pf = (
        pd.DataFrame(
            {
                "subscription_id": sub_ids[f_ep],
                "failed_at": _ts(f_at),
                "recovered_at": _ts(f_rec),
            }
        )
        .sort_values(["subscription_id", "failed_at"], kind="stable")
        .reset_index(drop=True)
    )
    truth = WorldTruth(
        customers=tc, episodes=te, payment_failures=pf, params=P, end=pd.Timestamp(E, unit="s")
    )
    return World(
        tables=tables,
        truth=truth,
        end=pd.Timestamp(E, unit="s"),
        start=pd.Timestamp(sim.S, unit="s"),
        seed=int(seed),
        n_customers=n,
    )


def _refunds(
    sim: _Sim,
    seed: int,
    e_ep: np.ndarray,
    e_t: np.ndarray,
    e_ty: np.ndarray,
    e_amt: np.ndarray,
    ep_reason: np.ndarray,
    ep_req: np.ndarray,
    ep_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Append ``refunded`` events: most accidental cancels get their last payment back.

    Drawn from a child random stream (``[seed, 1]``) so the rest of the world
    does not depend on it.
    """
    rng = np.random.default_rng([int(seed), 1])
    cand = np.where((ep_reason == _R["accidental"]) & (ep_end >= 0) & (ep_req >= 0))[0]
    u = rng.random((2, len(cand)))
    cand, u = cand[u[0] < _REFUND_ACCIDENTAL], u[1][u[0] < _REFUND_ACCIDENTAL]
    if not len(cand):
        return e_ep, e_t, e_ty, e_amt
    pay = np.isin(e_ty, (-1, _E["renewed"], _E["payment_recovered"])) & np.isin(e_ep, cand)
    pay_df = pd.DataFrame({"ep": e_ep[pay], "t": e_t[pay], "amt": e_amt[pay]})
    req = pd.Series(ep_req[cand], index=cand)
    pay_df = pay_df[pay_df["t"].to_numpy() <= req.reindex(pay_df["ep"]).to_numpy()]
    last = pay_df.sort_values(["ep", "t"], kind="stable").groupby("ep")["amt"].last()
    amt = last.reindex(cand).to_numpy()
    t = ep_req[cand] + (u * np.minimum(2 * DAY, ep_end[cand] - ep_req[cand])).astype(np.int64)
    ok = (amt > 0) & (t <= sim.E)
    cand, t, amt = cand[ok], t[ok], amt[ok]
    return (
        np.concatenate([e_ep, cand]),
        np.concatenate([e_t, t]),
        np.concatenate([e_ty, np.full(len(cand), _E["refunded"])]),
        np.concatenate([e_amt, -amt]),
    )


def _usage(
    sim: _Sim,
    ep_cust: np.ndarray,
    ep_start: np.ndarray,
    ep_end: np.ndarray,
    cust_ids: np.ndarray,
    switch: tuple[int, np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Weekly usage rows of every episode; ``switch = (seed, reason, request)`` adds the
    switchers' drop (see :func:`_switch_thin`)."""
    E, P, rng = sim.E, sim.P, sim.rng
    keep = float(P["switched_usage_keep"])
    if switch is not None and keep < 1.0:
        seed, ep_reason, ep_req = switch
        sw_req = np.where(
            (ep_reason == _R["switched_service"]) & (ep_req >= 0), ep_req, np.iinfo(np.int64).max
        )
        sw_rng = np.random.default_rng([int(seed), 2])
    else:
        sw_req = None
    week = 7 * DAY
    # 1970-01-05 was a Monday
    mon0 = 4 * DAY
    first = mon0 + -(-(ep_start - mon0) // week) * week  # first Monday at/after start
    stop = np.where(ep_end >= 0, ep_end - 1, E)
    stop = np.minimum(stop, E - week)  # only complete weeks
    nw = np.maximum(0, (stop - first) // week + 1)
    # chunks of episodes of at most _USAGE_CHUNK rows keep the temporaries small at 1M customers
    ends = np.cumsum(nw)
    cuts = [0]
    while cuts[-1] < len(nw):
        base = ends[cuts[-1] - 1] if cuts[-1] > 0 else 0
        nxt = int(np.searchsorted(ends, base + _USAGE_CHUNK, side="right"))
        cuts.append(max(nxt, cuts[-1] + 1))
    tot_all = int(nw.sum())
    col_c = np.empty(tot_all, dtype=object)
    col_w = np.empty(tot_all, dtype="datetime64[ns]")
    col_s = np.empty(tot_all, dtype=np.int64)
    col_m = np.empty(tot_all, dtype=np.float64)
    col_f = np.empty(tot_all, dtype=np.int64)
    pos = 0
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        nwc = nw[lo:hi]
        tot = int(nwc.sum())
        rep = np.repeat(np.arange(lo, hi), nwc)
        off = np.arange(tot) - np.repeat(np.cumsum(nwc) - nwc, nwc)
        ws = first[rep] + off * week
        cidx = ep_cust[rep]
        months = (ws - ep_start[rep]) / (30.436875 * DAY)
        # weeks that overlap the time after a switcher's cancel request (rows stop at the end)
        after_switch = None if sw_req is None else np.flatnonzero(ws + week > sw_req[rep])
        del rep, off
        e = sim.L["engagement0"][cidx] * np.exp(-sim.L["engagement_decay"][cidx] * months)
        del months
        sessions = rng.poisson(P["sessions_per_week"] * e)
        del e
        sl = slice(pos, pos + tot)
        # engrossed customers (high affinity) stay longer per session: deterministic scale, so
        # the draws (and the rest of the world) are the same whatever minutes_affinity is
        m_scale = np.exp(P["minutes_affinity"] * sim.L["affinity"][cidx])
        col_m[sl] = np.round(sessions * rng.gamma(2.0, 6.0, tot) * m_scale, 1)
        col_f[sl] = rng.binomial(np.minimum(sessions, 15), 0.2 + 0.5 * sim.L["skill"][cidx])
        col_s[sl] = sessions
        col_w[sl] = _ts(ws)
        col_c[sl] = cust_ids[cidx]
        if after_switch is not None and len(after_switch):
            _switch_thin(sw_rng, keep, pos + after_switch, col_s, col_m, col_f)
        pos += tot
    return pd.DataFrame(
        {
            "customer_id": col_c,
            "week_start": col_w,
            "sessions": col_s,
            "active_minutes": col_m,
            "features_used": col_f,
        },
        copy=False,
    )


def _tickets(
    sim: _Sim,
    ep_cust: np.ndarray,
    ep_start: np.ndarray,
    ep_end: np.ndarray,
    f_ep: np.ndarray,
    f_at: np.ndarray,
    cust_ids: np.ndarray,
) -> pd.DataFrame:
    E, P, rng, L = sim.E, sim.P, sim.rng, sim.L
    stop = np.where(ep_end >= 0, ep_end, E)
    dur = np.maximum(stop - ep_start, 0)
    months = dur / (30.436875 * DAY)
    cc = ep_cust
    rates = {
        "feature_request": P["tickets_feature_request"] * L["feature_need"][cc],
        "complaint": P["tickets_complaint"] * (1 - L["satisfaction"][cc]) ** 2,
        "how_to": P["tickets_how_to"] * (1 - L["skill"][cc]),
        "bug": np.full(len(cc), P["tickets_bug"]),
        "other": np.full(len(cc), P["tickets_other"]),
    }
    parts_ep, parts_t, parts_cat = [], [], []
    for cat_name, rate in rates.items():
        k = rng.poisson(rate * months)
        rep = np.repeat(np.arange(len(cc)), k)
        t = ep_start[rep] + (rng.random(len(rep)) * dur[rep]).astype(np.int64)
        parts_ep.append(rep)
        parts_t.append(t)
        parts_cat.append(np.full(len(rep), cat_name, dtype=object))
    bill = rng.random(len(f_ep)) < P["tickets_billing_on_failure"]
    bt = f_at[bill] + (rng.random(int(bill.sum())) * 2 * DAY).astype(np.int64)
    parts_ep.append(f_ep[bill])
    parts_t.append(bt)
    parts_cat.append(np.full(int(bill.sum()), "billing", dtype=object))
    ep = np.concatenate(parts_ep)
    t = np.concatenate(parts_t)
    cat = np.concatenate(parts_cat)
    keep = t <= E
    ep, t, cat = ep[keep], t[keep], cat[keep]
    order = np.lexsort((ep, t))
    ep, t, cat = ep[order], t[order], cat[order]
    nt = len(ep)
    sat = L["satisfaction"][ep_cust[ep]]
    comp = cat == "complaint"
    csat = np.where(comp, 1 + rng.binomial(2, sat), 2 + rng.binomial(3, 0.4 + 0.5 * sat))
    csat_s = pd.array(csat, dtype="Int64")
    csat_s[rng.random(nt) < 0.4] = pd.NA
    return pd.DataFrame(
        {
            "ticket_id": _ids("tkt_", np.arange(1, nt + 1), max(7, len(str(nt)))),
            "customer_id": cust_ids[ep_cust[ep]],
            "created_at": _ts(t),
            "category": cat,
            "is_complaint": comp.astype(bool),
            "csat": csat_s,
        },
        copy=False,
    )


def _switch_thin(
    rng: np.random.Generator,
    keep: float,
    rows: np.ndarray,
    sessions: np.ndarray,
    minutes: np.ndarray,
    features: np.ndarray,
) -> None:
    """Thin, in place, the usage ``rows`` of customers who switched, from their cancel request on.

    A customer leaving for a competitor has moved their work by the time they
    ask to cancel: each session of a week overlapping the time after the
    request is kept with probability ``switched_usage_keep``; minutes and
    features used scale with the kept sessions. Drawn from a child random
    stream (``[seed, 2]``, after the main draws of the same rows) so the rest
    of the world does not depend on it. The request is observable in the
    events when this shows, so the truth's ``p_churn`` (which knows a request
    made by ``as_of``) stays exact.
    """
    s_old = sessions[rows]
    s_new = rng.binomial(s_old, keep)
    ratio = np.where(s_old > 0, s_new / np.maximum(s_old, 1), 0.0)
    sessions[rows] = s_new
    minutes[rows] = np.round(minutes[rows] * ratio, 1)
    features[rows] = np.minimum(rng.binomial(features[rows], ratio), s_new)


def _reason_tickets(
    sim: _Sim,
    seed: int,
    tickets: pd.DataFrame,
    ep_cust: np.ndarray,
    ep_reason: np.ndarray,
    ep_req: np.ndarray,
    ep_end: np.ndarray,
    cust_ids: np.ndarray,
) -> pd.DataFrame:
    """Append the ticket a customer opens with a cancel request, in the reason's category.

    ``trace_ticket_by_reason[reason] = [category, probability]``: a customer
    who asks to cancel because of missing features files a feature request,
    one unhappy with support complains, and so on, within a day after the
    request (never after the access ends or the world's end). Drawn from a
    child random stream (``[seed, 3]``); ticket ids are renumbered in time
    order. Dated after the request, so the truth's ``p_churn`` stays exact.
    """
    spec = sim.P["trace_ticket_by_reason"]
    rng = np.random.default_rng([int(seed), 3])
    cand = np.where((ep_req >= 0) & (ep_reason >= 1))[0]
    u = rng.random((3, len(cand)))
    names = np.array(TRUE_REASONS, dtype=object)[ep_reason[cand]]
    prob = np.array([float(spec.get(r, ("other", 0.0))[1]) for r in names])
    cat_ = np.array([spec.get(r, ("other", 0.0))[0] for r in names], dtype=object)
    t = ep_req[cand] + (u[1] * DAY).astype(np.int64)
    end = np.where(ep_end[cand] >= 0, ep_end[cand], sim.E)
    ok = (u[0] < prob) & (t <= np.minimum(end, sim.E))
    cand, t, cat_, u2 = cand[ok], t[ok], cat_[ok], u[2][ok]
    if not len(cand):
        return tickets
    comp = cat_ == "complaint"
    sat = sim.L["satisfaction"][ep_cust[cand]]
    csat = np.where(comp, 1 + (u2 < 0.5 * sat).astype(np.int64), 2 + (u2 < 0.5).astype(np.int64))
    csat_s = pd.array(csat, dtype="Int64")
    csat_s[u2 > 0.6] = pd.NA
    extra = pd.DataFrame(
        {
            "ticket_id": np.full(len(cand), None, dtype=object),
            "customer_id": cust_ids[ep_cust[cand]],
            "created_at": _ts(t),
            "category": cat_,
            "is_complaint": comp.astype(bool),
            "csat": csat_s,
        }
    )
    out = pd.concat([tickets, extra], ignore_index=True)
    out = out.sort_values(["created_at", "customer_id"], kind="stable").reset_index(drop=True)
    nt = len(out)
    out["ticket_id"] = _ids("tkt_", np.arange(1, nt + 1), max(7, len(str(nt))))
    return out


def _interviews(
    sim: _Sim,
    eps: np.ndarray,
    iv_t: np.ndarray,
    ep_cust: np.ndarray,
    true_r: np.ndarray,
    pi: np.ndarray,
    cust_ids: np.ndarray,
) -> pd.DataFrame:
    rng = sim.rng
    m = len(eps)
    reasons = true_r[eps]
    q = rng.choice(np.arange(1, 6), size=m, p=[0.05, 0.10, 0.25, 0.35, 0.25])
    low = q < 3
    noise_r = np.array(TRUE_REASONS, dtype=object)[rng.integers(0, len(TRUE_REASONS), m)]
    used = np.where(low & (rng.random(m) < 0.6), noise_r, reasons)
    junk = np.array(_JUNK, dtype=object)[rng.integers(0, len(_JUNK), (5, m))]

    def ans(bank: dict[str, str], row: int) -> np.ndarray:
        out = np.array([bank[r] for r in used], dtype=object)
        j = low & (rng.random(m) < 0.5)
        out[j] = junk[row][j]
        return out

    p = pi[eps]
    leave = np.clip(np.round(1 + 4 * (1 - p) + rng.normal(0, 0.7, m)), 1, 5).astype(np.int64)
    score = p + rng.normal(0, 0.12, m)
    q7 = np.where(score >= 0.45, "yes", np.where(score >= 0.2, "maybe", "no")).astype(object)
    q7[low] = np.array(["yes", "maybe", "no"], dtype=object)[rng.integers(0, 3, int(low.sum()))]
    comp = np.array(_COMPETITORS, dtype=object)[rng.integers(0, len(_COMPETITORS), m)]
    alt = np.array(_ALTERNATIVES, dtype=object)[rng.integers(0, len(_ALTERNATIVES), m)]
    q5 = np.where(used == "switched_service", comp, alt).astype(object)
    q5[rng.random(m) < 0.1] = None
    mode = np.where(rng.random(m) < 0.3, "voice", "text").astype(object)
    df = pd.DataFrame(
        {
            "customer_id": cust_ids[ep_cust[eps]],
            "answered_at": _ts(iv_t[eps]),
            "mode": mode,
            "quality_score": q.astype(np.int64),
            "q1_cancel_story": ans(_Q1, 0),
            "q2_breaking_point": ans(_Q2, 1),
            "q3_tried_before": ans(_Q3, 2),
            "q4_leave_strength": pd.array(leave, dtype="Int64"),
            "q5_using_instead": q5,
            "q6_return_conditions": ans(_Q6, 3),
            "q7_offer_interest": q7,
            "q8_ideal_product": ans(_Q8, 4),
        }
    )
    return df.sort_values(["answered_at", "customer_id"], kind="stable").reset_index(drop=True)


def _campaign_ids(sim: _Sim) -> np.ndarray:
    months = sim.C.astype("datetime64[s]").astype("datetime64[M]").astype(str)
    return np.array([f"cmp_{m.replace('-', '')}" for m in months], dtype=object)


def _campaign_tables(
    sim: _Sim,
    camp: np.ndarray,
    arm: np.ndarray,
    ep_cust: np.ndarray,
    cost: np.ndarray,
    ep_end: np.ndarray,
    cust_ids: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    E = sim.E
    ids = _campaign_ids(sim)
    nC = len(ids)
    months = sim.C.astype("datetime64[s]").astype("datetime64[M]").astype(str)
    c_end = sim.C + 30 * DAY
    campaigns = pd.DataFrame(
        {
            "campaign_id": ids,
            "name": np.array([f"Win-back {m}" for m in months], dtype=object),
            "objective": np.full(nC, "winback", dtype=object),
            "started_at": _ts(sim.C),
            "ended_at": _ts(np.where(c_end <= E, c_end, -1)),
        }
    )
    na = len(sim.arm_names)
    arms = pd.DataFrame(
        {
            "campaign_id": np.repeat(ids, na),
            "arm_id": np.tile(np.array(sim.arm_names, dtype=object), nC),
            "is_control": np.tile(np.arange(na) == 0, nC),
            "offer_type": sim.arm_type.reshape(-1),
            "discount_pct": sim.arm_pct.reshape(-1).astype(np.float64),
            "discount_months": sim.arm_mon.reshape(-1).astype(np.int64),
            "channel": sim.arm_ch.reshape(-1),
            "message_variant": sim.arm_variant.reshape(-1),
            "send_delay_days": sim.arm_delay.reshape(-1).astype(np.int64),
        }
    )
    a = np.where(camp >= 0)[0]
    asg = pd.DataFrame(
        {
            "campaign_id": ids[camp[a]] if nC else np.array([], dtype=object),
            "customer_id": cust_ids[ep_cust[a]],
            "arm_id": np.array(sim.arm_names, dtype=object)[arm[a]],
            "assigned_at": _ts(sim.C[camp[a]] if nC else np.array([], dtype=np.int64)),
            "contact_cost": cost[a].astype(np.float64),
        }
    )
    asg = asg.sort_values(["assigned_at", "customer_id"], kind="stable").reset_index(drop=True)
    return campaigns, arms, asg
