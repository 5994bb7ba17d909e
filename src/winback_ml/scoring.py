"""``winback score``: from contract tables to a ranked, profit-maximising win-back plan.

:func:`score` runs the whole chain as of ``as_of`` and writes, under
``output_dir``:

* ``targets.csv``: the contract's targets table (one row per lapsed
  customer, ranked; ``model_version`` names the registry name and version of
  every model used);
* ``churn_risk.csv``: the contract's churn-risk table (one row per active
  customer);
* ``summary.json`` and ``summary.md``: expected reactivations, spend and
  incremental profit of the plan, compared with the reason playbook and a
  blanket 25 %-for-3-months discount *under the same models*, plus every
  fallback that was taken (stated, never silent).

The chain (:func:`build_plan` does steps 1-8 without writing anything):

1. load and validate the data as of ``as_of`` (nothing later is read);
2. lapse episodes, the lapsed cohort (``lapsed_window_days``), reasons
   (stated, else inferred), segments;
3. ``p_return_base``: a return model (Kaplan-Meier by reason, trained on
   lapses censored at campaign contact) conditioned on the days lapsed;
4. LTV: post-return survival from past reactivations with the measured
   discount-end churn bump (:mod:`winback_ml.ltv.ltv`);
5. the campaign history: per-arm evaluation (:mod:`winback_ml.models.uplift_campaigns`);
6. the structured offer-response model (:mod:`winback_ml.models.uplift_offer`); its
   reason probabilities weigh stated reasons against behaviour and refine
   inferred ones with the days lapsed and trusted interviews, as known when
   each row is scored (``reason_evidence``);
7. the optimizer (:mod:`winback_ml.offers.optimizer`);
8. churn risk of active customers (a churn survival model).

Without campaign history (the optional campaign tables are absent, or no
control arm) the plan cannot measure any offer's effect: every customer is
left alone and the summary says why. Models are logged to MLflow (the
tracking URI of :func:`winback_ml.tracking.mlflow.configure`); with
``log_models=False`` or when MLflow fails, ``model_version`` says
``unregistered`` and the summary gives the reason.

No PII leaves this module: targets and churn risk carry ids and numbers only;
MLflow gets parameters, metrics and id-free tables. Timestamps tz-naive UTC.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.cohort.reasons import REASON_EVIDENCE
from winback_ml.config import BusinessConfig, Offer, load_config
from winback_ml.exceptions import ConfigError, WinbackError

__all__ = [
    "ScoreResult",
    "Plan",
    "CHURN_RISK_COLUMNS",
    "BLANKET_OFFER",
    "build_plan",
    "score",
    "policy_frame",
]

CHURN_RISK_COLUMNS = [
    "customer_id",
    "p_churn_90d",
    "expected_churn_date",
    "top_drivers",
    "suggested_action",
    "model_version",
]
#: The comparison policy of the summary: everybody gets 25 % off for 3 months.
BLANKET_OFFER = Offer("discount", 25.0, 3)
_DISCOUNT_MONTHS = {"discount": None, "free_month": 1, "early_renewal": None}


@dataclass
class Plan:
    """Everything :func:`build_plan` computed (in memory; no PII beyond ids)."""

    as_of: pd.Timestamp
    config: BusinessConfig
    cohort: pd.DataFrame
    targets: pd.DataFrame
    p_base: np.ndarray
    features: pd.DataFrame
    response_fn: Any
    ltv_fn: Any
    arm_table: pd.DataFrame | None
    models: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    data: Any = None
    training: pd.DataFrame | None = None
    p0_train: np.ndarray | None = None
    p_base_model: np.ndarray | None = None


@dataclass
class ScoreResult:
    """What :func:`score` wrote, and the frames themselves."""

    targets: pd.DataFrame
    churn_risk: pd.DataFrame
    summary: dict[str, Any]
    output_dir: Path
    files: dict[str, Path]


def policy_frame(
    cohort: pd.DataFrame, offers: list[Offer | None], channels: list[str]
) -> pd.DataFrame:
    """A policy as the truth and the optimizer's totals read it (``None`` offer = no contact)."""
    return pd.DataFrame(
        {
            "customer_id": cohort["customer_id"].astype(str).to_numpy(),
            "contact": [o is not None for o in offers],
            "offer_type": [o.offer_type if o is not None else "none" for o in offers],
            "discount_pct": [float(o.discount_pct) if o is not None else 0.0 for o in offers],
            "discount_months": [int(o.discount_months) if o is not None else 0 for o in offers],
            "channel": channels,
        }
    )


def _first_consented(cohort: pd.DataFrame, cfg: BusinessConfig) -> list[str | None]:
    pref = [c for c in ("email", "sms", "in_app") if c in cfg.channels]
    col = {"email": "can_email", "sms": "can_sms", "in_app": "can_in_app"}
    out: list[str | None] = []
    for row in cohort[[col[c] for c in pref]].itertuples(index=False):
        out.append(next((c for c, ok in zip(pref, row, strict=True) if bool(ok)), None))
    return out


def _run_date(as_of: Any) -> pd.Timestamp | None:
    """``as_of`` as a tz-naive UTC timestamp (an offset is converted), or a clear error."""
    from winback_ml.data.loader import to_timestamp

    if as_of is None:
        return None
    try:
        ts = to_timestamp(as_of)
    except (ValueError, TypeError) as e:
        ts, err = pd.NaT, e
    else:
        err = None
    if pd.isna(ts):
        raise ConfigError(
            f"as_of {as_of!r} is not a date ({err or 'empty'}). "
            "Fix: give an ISO-8601 date or timestamp, e.g. --as-of 2025-12-31."
        )
    return ts


def _tic(timings: dict[str, float], key: str, t0: float) -> float:
    t = time.perf_counter()
    timings[key] = round(t - t0, 3)
    return t


def build_plan(
    data: Any,
    as_of: Any = None,
    config: BusinessConfig | dict | str | None = None,
    *,
    return_model: str = "kaplan_meier",
    reason_classifier: Any = None,
    reason_evidence: tuple[str, ...] = REASON_EVIDENCE,
) -> Plan:
    """Steps 1-7 of the module docstring, in memory: the ranked targets and the models behind them.

    Parameters
    ----------
    data : folder, SQLAlchemy URL, dict of DataFrames or ContractData
    as_of : the run date (default: the data's latest timestamp)
    config : business config (path, dict or BusinessConfig)
    return_model : ``"kaplan_meier"`` (by reason) or ``"weibull_cure"`` (features)
    reason_classifier : a ReasonClassifier as the template of every reason fit (default
        settings when None); a fitted one is cloned and refitted as of ``as_of``, never used
        as is (it may have learnt from lapses after ``as_of``)
    reason_evidence : what refines the inferred reasons of the response model's inputs
        (:data:`REASON_EVIDENCE`): ``"days_lapsed"`` (still away after so many days,
        :class:`~winback_ml.cohort.reasons.ReasonReturnCurves`) and ``"interviews"``
        (trusted interview answers, :class:`~winback_ml.cohort.reasons.InterviewReasonModel`)
    """
    from winback_ml.cohort import build_lapse_episodes
    from winback_ml.cohort.lapsed import build_lapsed_cohort
    from winback_ml.cohort.reasons import infer_reasons, reason_features
    from winback_ml.data.loader import ContractData, load_data

    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    as_of = _run_date(as_of)
    cd = data if isinstance(data, ContractData) else load_data(data, as_of=as_of)
    T = as_of if as_of is not None else cd.as_of
    if T is None:
        T = cd.events["occurred_at"].max()
        notes.append(f"as_of not given: using the latest event time {T}.")
    t0 = _tic(timings, "load", t0)
    eps = build_lapse_episodes(cd, T)
    feats = reason_features(cd, eps, T)
    cohort = build_lapsed_cohort(cd, T, window_days=cfg.lapsed_window_days)
    from winback_ml.models.uplift_offer import check_reason_evidence

    reason_evidence = check_reason_evidence(reason_evidence)
    if reason_classifier is not None:
        from sklearn.base import clone

        # a template only: a fitted classifier may have learnt from lapses after as_of
        reason_classifier = clone(reason_classifier)
    reasons = infer_reasons(
        cd, cohort, T, classifier=reason_classifier, episodes=eps, features=feats
    )
    clf = reasons.attrs.get("classifier")
    for s in reasons.attrs.get("missing_signals", []):
        notes.append(f"optional table {s!r} absent: reasons and segments use the other signals.")
    t0 = _tic(timings, "cohort_and_reasons", t0)

    # --- p_return_base -------------------------------------------------------------------
    base = _fit_return_model(cd, T, eps, feats, clf, return_model, notes)
    cohort = cohort.reset_index(drop=True)
    cohort["cancel_reason"] = reasons["cancel_reason"].to_numpy()
    cohort["reason_source"] = reasons["reason_source"].to_numpy()
    cohort["acquisition_channel"] = cohort["customer_id"].map(
        cd.customers.drop_duplicates("customer_id").set_index("customer_id")["acquisition_channel"]
    )
    p_base = (
        base.predict(cohort, reasons, cfg.attribution_window_days) if len(cohort) else np.zeros(0)
    )
    t0 = _tic(timings, "return_model", t0)

    # --- segments ------------------------------------------------------------------------
    try:
        from winback_ml.cohort.segments import assign_segments

        seg = assign_segments(cd, cohort, T, p_return=p_base, reasons=reasons, config=cfg)
        cohort["segment"] = seg["segment"].to_numpy()
    except (ImportError, WinbackError, KeyError) as e:  # pragma: no cover - depends on cohort stage
        cohort["segment"] = "warm"
        notes.append(f"segments unavailable ({e}); every customer is 'warm'.")
    t0 = _tic(timings, "segments", t0)

    # --- LTV -----------------------------------------------------------------------------
    from winback_ml.ltv.ltv import PostReturnSurvival, expected_ltv, post_return_tenures

    outcomes = None
    if all(cd.table(n) is not None for n in ("campaigns", "campaign_arms", "campaign_assignments")):
        from winback_ml.models.uplift_campaigns import build_campaign_outcomes

        outcomes = build_campaign_outcomes(cd, T, cfg.attribution_window_days)
    tenures = post_return_tenures(eps, T)
    disc = _discount_returns(outcomes)
    surv = PostReturnSurvival().fit(tenures, discount_returns=disc)
    notes.append(f"post-return survival: {surv.source_}.")
    b = surv.bump_
    if b.source == "measured":
        notes.append(
            f"discount-end churn multiplier measured from {b.exposed} discount returns: "
            f"{b.ratio:.2f} (95 % CI {b.ci_low:.2f}-{b.ci_high:.2f}; {b.observed} observed vs "
            f"{b.expected:.1f} expected); applied as an excess cumulative hazard of "
            f"{b.excess_hazard:.3f} at the renewal where the discount ends."
        )
    else:
        notes.append(f"discount-end churn multiplier: {b.source}; 1.0 assumed.")
    ltv_cache: dict[Any, np.ndarray] = {}

    def ltv_fn(c: pd.DataFrame, offer: Offer | None) -> np.ndarray:
        key = (id(c), offer)
        if key not in ltv_cache:
            ltv_cache[key] = expected_ltv(c, offer, cfg, surv).to_numpy(float)
        return ltv_cache[key]

    t0 = _tic(timings, "ltv", t0)

    # --- campaign history and response model ----------------------------------------------
    from winback_ml.models.uplift_offer import (
        StructuredOfferResponseModel,
        behaviour_rows,
        offer_features,
        offer_training_frame,
        reason_posterior,
        refine_with_evidence,
    )

    arm_table = None
    response = None
    tf = None
    p0_tr = None
    F = None
    if len(cohort):
        # stated reasons weighed against the behaviour (a stated reason is wrong now and then)
        fx = feats.drop_duplicates("lapse_id").set_index("lapse_id")
        post = reason_posterior(reasons, clf, fx.loc[cohort["lapse_id"].to_numpy()])
        # inferred reasons weighed with what came after the lapse: still away, interview answers
        post = refine_with_evidence(
            cd,
            eps,
            post,
            cohort[["customer_id", "ended_at"]],
            T,
            cohort["days_lapsed"],
            T,
            reason_evidence,
        )
        if post.attrs.get("refined") and post.attrs.get("evidence_used"):
            notes.append(
                f"inferred reasons of {post.attrs['refined']} customers refined with "
                f"{' and '.join(post.attrs['evidence_used'])} (reason_evidence)."
            )
        F = offer_features(cohort, post, behaviour=behaviour_rows(feats, cohort))
    if outcomes is None:
        notes.append(
            "no campaign history (campaigns, campaign_arms, campaign_assignments absent): "
            "no offer's effect can be measured, so nobody is contacted."
        )
    else:
        from winback_ml.models.uplift_campaigns import evaluate_arms

        arm_table = evaluate_arms(outcomes, on_missing_control="skip") if len(outcomes) else None
        if arm_table is not None:
            notes.extend(arm_table.attrs.get("skipped", []))
        # reasons of past assignments as known then (classifiers refitted per quarter on
        # the lapses stated before it), never the run date's classifier
        tf = offer_training_frame(
            cd,
            T,
            cfg.attribution_window_days,
            episodes=eps,
            reason_classifier=reason_classifier if reason_classifier is not None else clf,
            features=feats,
            reason_evidence=reason_evidence,
        )
        if len(tf):
            p0_tr = base.predict(tf, tf, cfg.attribution_window_days, at_days_lapsed=True)
            try:
                prior = _playbook_prior(cfg)
                response = StructuredOfferResponseModel(prior_pairs=prior).fit(tf, p0_tr)
                if prior:
                    notes.append(
                        "offer response: the playbook's reason -> offer pairs are a prior "
                        f"(log lift {response.prior_log_lift}) that the campaign data override: {prior}."
                    )
                untried = sorted(
                    {o.offer_type for o in cfg.offer_catalog()} - set(response.tried_types_)
                )
                if untried:
                    notes.append(
                        f"offer types never tried (enough) in past campaigns, so never chosen: {untried}."
                    )
                lo, hi = response.discount_range_
                notes.append(
                    f"offer response fitted on {response.n_train_} contacted and {response.n_control_} "
                    f"control assignments; discounts tried {lo:g}-{hi:g} %, deeper or shallower "
                    "catalog discounts are priced at the nearest tried depth."
                )
            except WinbackError as e:
                notes.append(f"offer-response model not fitted: {e}. Nobody is contacted.")
        else:
            notes.append("campaign tables hold no completed assignment: nobody is contacted.")
    p_raw = p_base  # the return model's P(return | no contact): the response model's input
    if response is not None and response.calibrate_base and len(cohort):
        # the randomized control arms recalibrate P(return | no contact) (level and covariates)
        p_base = np.clip(response.expected_base_probability(F, p_raw), 0.0, 1.0)
        notes.append(
            "p_return_base recalibrated on the campaigns' control arms: mean "
            f"{float(np.mean(p_raw)):.4f} -> {float(np.mean(p_base)):.4f}."
        )
    t0 = _tic(timings, "response_model", t0)

    def response_fn(c: pd.DataFrame, offer: Offer, channel: str) -> np.ndarray:
        if response is None:
            return np.full(len(c), np.nan)
        return response.predict_return_probability(F, offer, channel, p_raw)

    from winback_ml.offers.optimizer import TARGET_COLUMNS, optimize_offers

    models = {"return": base, "ltv": surv, "response": response}
    if response is not None and len(cohort):
        targets = optimize_offers(cohort, p_base, ltv_fn, response_fn, cfg)
    else:
        targets = _leave_all_alone(cohort, p_base, ltv_fn)
        if len(cohort) == 0:
            notes.append(f"no customer lapsed within {cfg.lapsed_window_days} days before {T}.")
    targets = targets[TARGET_COLUMNS]
    _tic(timings, "optimizer", t0)
    return Plan(
        as_of=T,
        config=cfg,
        cohort=cohort,
        targets=targets,
        p_base=p_base,
        features=F if F is not None else pd.DataFrame(),
        response_fn=response_fn,
        ltv_fn=ltv_fn,
        arm_table=arm_table,
        models=models,
        notes=notes,
        timings=timings,
        data=cd,
        training=tf,
        p0_train=p0_tr,
        p_base_model=p_raw,
    )


def _playbook_prior(cfg: BusinessConfig) -> dict[str, str]:
    """Reason -> offer type of the configured playbook's effect claims (``is_response_prior``).

    Incentive offers are claims; a plain message is one only where the entry says so
    (the default playbook's ``accidental``).
    """
    try:
        from winback_ml.cohort.playbook import load_playbook

        pb = load_playbook(cfg)
    except (ImportError, WinbackError):  # pragma: no cover - depends on the cohort stage
        return {}
    return {r: e.offer.offer_type for r, e in pb.entries.items() if e.is_response_prior}


def _leave_all_alone(cohort: pd.DataFrame, p_base: np.ndarray, ltv_fn: Any) -> pd.DataFrame:
    from winback_ml.offers.optimizer import TARGET_COLUMNS

    n = len(cohort)
    out = pd.DataFrame(
        {
            "customer_id": cohort["customer_id"].astype(str).to_numpy() if n else [],
            "segment": cohort["segment"].to_numpy() if n else [],
            "cancel_reason": cohort["cancel_reason"].to_numpy() if n else [],
            "reason_source": cohort["reason_source"].to_numpy() if n else [],
            "days_lapsed": cohort["days_lapsed"].astype(int).to_numpy() if n else [],
            "p_return_base": p_base,
            "p_return_offer": p_base,
            "expected_ltv": ltv_fn(cohort, None) if n else [],
            "contact": np.zeros(n, bool),
            "offer_type": "none",
            "discount_pct": 0.0,
            "discount_months": 0,
            "channel": "email",
            "expected_incremental_profit": 0.0,
            "rank": np.arange(1, n + 1),
            "model_version": "",
        }
    )
    from winback_ml.offers.optimizer import policy_totals

    out = out[TARGET_COLUMNS]
    out.attrs["summary"] = policy_totals(out)
    out.attrs["excluded"] = []
    return out


def _discount_returns(outcomes: pd.DataFrame | None) -> pd.DataFrame | None:
    """Returns that followed a discount-type offer of a past campaign, with its months."""
    if outcomes is None or outcomes.empty:
        return None
    o = outcomes[
        (outcomes["reactivated"] == 1) & outcomes["offer_type"].isin(list(_DISCOUNT_MONTHS))
    ]
    if o.empty:
        return None
    months = np.where(
        o["offer_type"] == "free_month", np.maximum(o["discount_months"], 1), o["discount_months"]
    )
    return pd.DataFrame(
        {
            "customer_id": o["customer_id"].to_numpy(),
            "returned_at": o["reactivated_at"].to_numpy(),
            "discount_months": months.astype(int),
        }
    )


class _BaseReturn:
    """P(return within the window | no contact), from a survival model of the return."""

    def __init__(self, model: Any, kind: str, frame_cols: list[str]) -> None:
        self.model = model
        self.kind = kind
        self.frame_cols = frame_cols
        self.features_: pd.DataFrame | None = None

    def predict(
        self, rows: pd.DataFrame, reasons: pd.DataFrame, window: int, at_days_lapsed: bool = False
    ) -> np.ndarray:
        """P(return within ``window`` days | lapsed ``days_lapsed`` days, no contact).

        ``at_days_lapsed``: the rows are scored at an earlier point than ``as_of`` (past
        campaign assignments, ``days_lapsed`` exact days after the lapse), so the lapse's
        interview counts only if it was answered by then.
        """
        X = pd.DataFrame(
            {
                "reason": reasons["cancel_reason"].fillna("unknown").to_numpy(),
                "days_lapsed": rows["days_lapsed"].astype(float).to_numpy(),
            }
        )
        if self.kind != "kaplan_meier" and self.features_ is not None:
            from winback_ml.models.evaluation import ENTRY_FEATURES

            f = self.features_.reindex(rows["lapse_id"].to_numpy())
            # the lapse's interview is known only once answered: a row scored at an earlier
            # point (a past campaign assignment, days_lapsed after the lapse) must not read
            # answers given later (the training frame keeps them up to the return or as_of)
            late = np.zeros(len(f), dtype=bool)
            if at_days_lapsed and "entry_days" in f.columns:
                late = f["entry_days"].to_numpy(float) > X["days_lapsed"].to_numpy(float)
            for c in self.frame_cols:
                if c not in X.columns:
                    v = f[c].to_numpy()
                    if c in ENTRY_FEATURES and late.any():
                        v = v.astype(object) if isinstance(ENTRY_FEATURES[c], str) else v.copy()
                        v[late] = ENTRY_FEATURES[c]
                    X[c] = v
        return np.clip(self.model.expected_return_probability(X, within_days=window), 0.0, 1.0)


def _fit_return_model(
    cd: Any, T: Any, eps: pd.DataFrame, feats: pd.DataFrame, clf: Any, kind: str, notes: list[str]
) -> _BaseReturn:
    from winback_ml.cohort.reasons import infer_reasons
    from winback_ml.features import build_return_training_frame
    from winback_ml.models.return_model import KaplanMeierReturnModel, WeibullCureReturnModel

    all_reasons = infer_reasons(
        cd, eps[["customer_id", "lapse_id"]], T, classifier=clf, episodes=eps, features=feats
    )
    rmap = pd.Series(
        all_reasons["cancel_reason"].to_numpy(), index=all_reasons["lapse_id"].to_numpy()
    )
    train = build_return_training_frame(cd, T, reasons=rmap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "weibull_cure":
            model = WeibullCureReturnModel().fit(train)
        elif kind == "kaplan_meier":
            model = KaplanMeierReturnModel(group_col="reason").fit(train)
        else:
            raise WinbackError(
                f"return_model must be 'kaplan_meier' or 'weibull_cure'. Got {kind!r}."
            )
    notes.append(
        f"p_return_base: {type(model).__name__} on {len(train)} lapses ({int(train['event'].sum())} "
        "returns), censored at campaign contact, conditioned on the days lapsed."
    )
    out = _BaseReturn(model, kind, list(getattr(model, "feature_names_in_", [])))
    from sklearn.base import clone

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.holdout_brier_ = holdout_brier(
            lambda tr: clone(model).fit(tr), train, 30, "customer_id", as_of=T
        )
    if kind != "kaplan_meier":
        out.features_ = train.set_index("lapse_id")
    return out


def holdout_brier(
    fit: Any,
    train: pd.DataFrame,
    within_days: float,
    key: str,
    share: float = 0.2,
    as_of: Any = None,
    origin_col: str = "at",
) -> float:
    """Brier score of P(event within ``within_days``) on a held-out ``share`` of ``train``.

    Rows are split by a hash of ``key`` (stable across runs; use the customer so
    that no customer is on both sides). A held-out row counts when its outcome
    at ``within_days`` is known (event seen, or followed at least that long)
    and, given ``as_of``, when it could have been followed that long (its
    ``origin_col`` at least ``within_days`` before ``as_of``): without that,
    rows censored by the run date drop out only when they had no event, which
    biases the score towards events. Returns NaN when nothing is known.
    """
    h = pd.util.hash_pandas_object(train[key].astype(str), index=False).to_numpy()
    test = (h % 1000) < share * 1000
    model = fit(train[~test])
    te = train[test]
    d = te["duration_days"].to_numpy(float)
    e = te["event"].to_numpy(float)
    known = (d >= within_days) | (e > 0)
    if as_of is not None and origin_col in te.columns:
        horizon_end = pd.to_datetime(te[origin_col]) + pd.Timedelta(days=within_days)
        known &= (horizon_end <= pd.Timestamp(as_of)).to_numpy()
    if not known.any():
        return float("nan")
    y = ((e > 0) & (d <= within_days)).astype(float)[known]
    p = model.predict_event_probability(te[known], within_days, conditional_after=0.0)
    return float(np.mean((p - y) ** 2))


# ------------------------------------------------------------------------------- churn risk
_ACTIONS = (
    ("payment", "send a card-update reminder before the next renewal"),
    ("fail", "send a card-update reminder before the next renewal"),
    ("session", "re-engagement sequence: show unused features"),
    ("minutes", "re-engagement sequence: show unused features"),
    ("usage", "re-engagement sequence: show unused features"),
    ("complaint", "customer-success call"),
    ("ticket", "customer-success call"),
    ("price", "offer the annual plan at a discount"),
    ("mrr", "offer the annual plan at a discount"),
    ("cancel", "save flow: ask why and offer the playbook's save offer"),
)


def _action(drivers: list[str], p: float) -> str:
    if p < 0.1:
        return "none: low risk"
    for d in drivers:
        for key, act in _ACTIONS:
            if key in d:
                return act
    return "check in: ask what would make the product more useful"


def churn_risk(cd: Any, as_of: Any, notes: list[str]) -> tuple[pd.DataFrame, Any]:
    """Contract churn-risk table of active customers, and the fitted churn model (or None)."""
    from winback_ml.features import build_churn_scoring_frame, build_churn_training_frame
    from winback_ml.models.churn_model import (
        DiscreteHazardChurnModel,
        KaplanMeierChurnModel,
        WeibullCureChurnModel,
    )

    X = build_churn_scoring_frame(cd, as_of)
    if X.empty:
        notes.append("no active customer at as_of: churn_risk.csv is empty.")
        return pd.DataFrame(columns=CHURN_RISK_COLUMNS), None
    train = build_churn_training_frame(cd, as_of).reset_index(drop=True)
    fitted: dict[str, Any] = {}

    def fit(tr: pd.DataFrame) -> Any:
        # the discrete-time hazard recovers the truth best (docs/models.md); fallbacks are said
        for cls in (DiscreteHazardChurnModel, WeibullCureChurnModel):
            try:
                fitted["m"] = cls().fit(tr)
                return fitted["m"]
            except WinbackError as e:
                msg = f"churn: {cls.__name__} failed ({e}); trying the next model."
                if msg not in notes:  # fitted twice (holdout, then everyone)
                    notes.append(msg)
        if "churn: Kaplan-Meier by plan tier used." not in notes:
            notes.append("churn: Kaplan-Meier by plan tier used.")
        fitted["m"] = KaplanMeierChurnModel().fit(tr)
        return fitted["m"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 20 % of the customers (all their snapshots) give the holdout Brier score; the model
        # that scores and is registered is then fitted on everyone
        brier = holdout_brier(fit, train, 90, "customer_id", as_of=as_of)
        model = fit(train)
        model.holdout_brier_ = brier
        p = model.expected_churn_probability(X, within_days=90)
        date = model.expected_churn_date(X, as_of)
        try:
            contrib = model.predict_risk_contributions(X)
            top = [
                [c for c in row.sort_values(ascending=False).index[:3] if row[c] > 0]
                for _, row in contrib.iterrows()
            ]
        except WinbackError:
            top = [[] for _ in range(len(X))]
    out = pd.DataFrame(
        {
            "customer_id": X["customer_id"].astype(str).to_numpy(),
            "p_churn_90d": np.round(p, 6),
            "expected_churn_date": pd.to_datetime(date).dt.strftime("%Y-%m-%d").to_numpy(),
            "top_drivers": [";".join(t) for t in top],
            "suggested_action": [_action(t, float(pp)) for t, pp in zip(top, p, strict=True)],
        }
    )
    out = out.sort_values("p_churn_90d", ascending=False, kind="mergesort").reset_index(drop=True)
    return out, model


# ------------------------------------------------------------------------------- MLflow
def _log_models(plan: Plan, churn_model: Any, notes: list[str]) -> dict[str, str]:
    """Log and register the models; return kind -> "registry-name/version"."""
    versions: dict[str, str] = {}
    warnings.filterwarnings("ignore", message=".*type hints.*")
    try:
        import mlflow

        from winback_ml.tracking.mlflow import configure, log_fit

        configure()
        base = plan.models["return"]
        ex = pd.DataFrame({"reason": ["too_expensive"], "days_lapsed": [30.0]})
        rec = log_fit(
            base.model,
            "return",
            input_example=ex,
            as_of=plan.as_of,
            metrics={"holdout_brier_30d": base.holdout_brier_},
            register_as="winback-return",
            holdout_metric="holdout_brier_30d",
            run_name="score: return model",
        )
        if rec.registration is not None:
            versions["return"] = f"{rec.registration.name}/{rec.registration.version}"
        if churn_model is not None:
            from winback_ml.features import build_churn_scoring_frame

            exc = build_churn_scoring_frame(plan.data, plan.as_of).head(3)
            rec = log_fit(
                churn_model,
                "churn",
                input_example=exc,
                as_of=plan.as_of,
                metrics={"holdout_brier_90d": churn_model.holdout_brier_},
                register_as="winback-churn",
                holdout_metric="holdout_brier_90d",
                run_name="score: churn model",
            )
            if rec.registration is not None:
                versions["churn"] = f"{rec.registration.name}/{rec.registration.version}"
        resp = plan.models.get("response")
        if resp is not None:
            versions["response"] = _log_response_model(mlflow, resp, plan)
    except Exception as e:  # MLflow problems must not lose the plan: stated in the summary
        notes.append(
            f"MLflow logging failed ({type(e).__name__}: {e}); model_version says 'unregistered'."
        )
    return versions


def _log_response_model(mlflow: Any, resp: Any, plan: Plan) -> str:
    import pickle
    import tempfile

    from winback_ml.tracking.mlflow import _experiment_id

    name = "winback-offer-response"
    with mlflow.start_run(
        experiment_id=_experiment_id("winback-offers"), run_name="score: offer response"
    ):
        mlflow.log_params({f"model.{k}": v for k, v in resp.get_params().items()})
        mlflow.log_params(
            {
                "as_of": str(plan.as_of),
                "n_train": resp.n_train_,
                "n_control": resp.n_control_,
                "tried_types": ",".join(resp.tried_types_),
                "tried_channels": ",".join(resp.tried_channels_),
            }
        )
        mlflow.log_metric("neg_log_likelihood", resp.nll_)
        for k, v in resp.reach_.items():
            mlflow.log_metric(f"reach_{k}", v)
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "response_table.csv"
            resp.response_table().to_csv(p)
            mlflow.log_artifact(str(p))
            if plan.arm_table is not None and len(plan.arm_table):
                q = Path(tmp) / "campaign_arms_evaluation.csv"
                plan.arm_table.to_csv(q, index=False)
                mlflow.log_artifact(str(q))
            m = Path(tmp) / "model.pkl"
            m.write_bytes(pickle.dumps(resp))
            info = mlflow.pyfunc.log_model(
                name="offer_response", python_model=_ResponsePyfunc(), artifacts={"model": str(m)}
            )
    mv = mlflow.register_model(info.model_uri, name)
    return f"{name}/{mv.version}"


class _ResponsePyfunc:  # a minimal pyfunc: offer_features rows + offer columns + p_return_base
    def __new__(cls) -> Any:
        import mlflow.pyfunc

        class ResponsePyfunc(mlflow.pyfunc.PythonModel):
            def load_context(self, context: Any) -> None:
                import pickle

                self.model = pickle.loads(Path(context.artifacts["model"]).read_bytes())

            def predict(
                self, context: Any, model_input: pd.DataFrame, params: Any = None
            ) -> np.ndarray:
                out = np.empty(len(model_input))
                for i, r in model_input.reset_index(drop=True).iterrows():
                    o = Offer(
                        str(r["offer_type"]), float(r["discount_pct"]), int(r["discount_months"])
                    )
                    out[i] = self.model.predict_return_probability(
                        model_input.iloc[[i]],
                        o,
                        str(r["channel"]),
                        np.array([float(r["p_return_base"])]),
                        base_calibrated=True,  # the targets' p_return_base is recalibrated
                    )[0]
                return out

        return ResponsePyfunc()


# ------------------------------------------------------------------------------- score
def _comparisons(plan: Plan) -> dict[str, Any]:
    """Playbook and blanket discount under the plan's own models (expected values)."""
    cfg, cohort = plan.config, plan.cohort
    out: dict[str, Any] = {}
    if plan.models.get("response") is None or len(cohort) == 0:
        return out

    def value(pol: pd.DataFrame) -> dict[str, float]:
        tot = {
            "contacted": 0,
            "expected_incremental_reactivations": 0.0,
            "expected_spend": 0.0,
            "expected_incremental_profit": 0.0,
        }
        p0 = plan.p_base
        l0 = plan.ltv_fn(cohort, None)
        for (ot, pct, mon, ch), g in pol[pol["contact"]].groupby(
            ["offer_type", "discount_pct", "discount_months", "channel"]
        ):
            o = Offer(str(ot), float(pct), int(mon))
            idx = g.index.to_numpy()
            p1 = plan.response_fn(cohort, o, str(ch))[idx]
            if np.all(np.isnan(p1)):
                continue
            p1 = np.where(np.isnan(p1), p0[idx], p1)
            l1 = plan.ltv_fn(cohort, o)[idx]
            cost = cfg.contact_cost[str(ch)]
            tot["contacted"] += len(idx)
            tot["expected_incremental_reactivations"] += float(np.sum(p1 - p0[idx]))
            tot["expected_spend"] += float(
                np.sum(cost + p1 * np.maximum(l0[idx] - l1, 0) / cfg.margin)
            )
            tot["expected_incremental_profit"] += float(np.sum(p1 * l1 - cost - p0[idx] * l0[idx]))
        return tot

    try:
        from winback_ml.cohort.playbook import playbook_policy

        pb = playbook_policy(cohort, cfg).reset_index(drop=True)
        out["playbook"] = value(pb)
    except Exception as e:  # pragma: no cover - depends on the cohort stage
        out["playbook"] = {"error": str(e)}
    chans = _first_consented(cohort, cfg)
    bl = policy_frame(
        cohort, [BLANKET_OFFER if c else None for c in chans], [c or "email" for c in chans]
    )
    out["blanket_25pct_3m"] = value(bl)
    return out


def _markdown(summary: dict[str, Any]) -> str:
    p = summary["plan"]
    lines = [
        f"# Win-back plan as of {summary['as_of']}",
        "",
        f"Lapsed customers scored: {p['customers']:,}; contacted: {p['contacted']:,}.",
        f"Expected reactivations: {p['expected_reactivations']:.1f} "
        f"({p['expected_incremental_reactivations']:.1f} incremental).",
        f"Expected spend: {p.get('expected_spend', 0):,.2f} (contact {p.get('expected_contact_cost', 0):,.2f}, "
        f"incentives {p.get('expected_incentive_cost', 0):,.2f}).",
        f"Expected incremental profit: {p['expected_incremental_profit']:,.2f}.",
        "",
        "## Comparison under the same models",
        "",
        "| policy | contacted | incremental reactivations | spend | incremental profit |",
        "|---|---|---|---|---|",
        f"| this plan | {p['contacted']} | {p['expected_incremental_reactivations']:.1f} | "
        f"{p.get('expected_spend', 0):,.2f} | {p['expected_incremental_profit']:,.2f} |",
    ]
    for k, v in summary.get("comparison", {}).items():
        if "error" in v:
            lines.append(f"| {k} | error: {v['error']} | | | |")
        else:
            lines.append(
                f"| {k} | {v['contacted']} | {v['expected_incremental_reactivations']:.1f} | "
                f"{v['expected_spend']:,.2f} | {v['expected_incremental_profit']:,.2f} |"
            )
    lines += ["", "## Offers chosen", ""]
    for k, v in p.get("offers", {}).items():
        lines.append(f"* {k}: {v}")
    lines += ["", "## Models", ""]
    for k, v in summary.get("model_versions", {}).items():
        lines.append(f"* {k}: {v}")
    lines += ["", "## Notes and fallbacks", ""]
    lines += [f"* {n}" for n in summary.get("notes", [])]
    return "\n".join(lines) + "\n"


def score(
    data_source: Any,
    as_of: Any,
    output_dir: str | Path,
    config: BusinessConfig | dict | str | None = None,
    *,
    log_models: bool = True,
    return_model: str = "kaplan_meier",
    with_churn: bool = True,
) -> ScoreResult:
    """Run the whole chain and write targets, churn risk and the summary (see the module docstring).

    Parameters
    ----------
    data_source : folder, SQLAlchemy URL, dict of DataFrames or ContractData
    as_of : the run date; nothing after it is read
    output_dir : folder to write (created); existing files of the same names are replaced
    config : business config
    log_models : log and register the models in MLflow
    return_model : see :func:`build_plan`
    with_churn : also score active customers' churn risk

    Returns
    -------
    ScoreResult
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = build_plan(data_source, as_of, config, return_model=return_model)
    notes = plan.notes
    churn_model = None
    if with_churn:
        try:
            cr, churn_model = churn_risk(plan.data, plan.as_of, notes)
        except WinbackError as e:
            notes.append(f"churn risk not scored: {e}")
            cr = pd.DataFrame(columns=CHURN_RISK_COLUMNS)
    else:
        cr = pd.DataFrame(columns=CHURN_RISK_COLUMNS)
    versions = _log_models(plan, churn_model, notes) if log_models else {}
    if not log_models:
        notes.append("models not logged to MLflow (log_models=False).")
    names = {
        "return": f"unregistered:{type(plan.models['return'].model).__name__}",
        "response": "unregistered:StructuredOfferResponseModel"
        if plan.models.get("response")
        else "none",
        "ltv": "PostReturnSurvival (refit each run)",
    }
    names.update(versions)
    mv = ";".join(f"{k}={names[k]}" for k in ("return", "response", "ltv"))
    targets = plan.targets.copy()
    targets["model_version"] = mv
    if len(cr):
        cr["model_version"] = (
            f"churn={versions.get('churn', 'unregistered:' + type(churn_model).__name__)}"
        )
    cr = cr.reindex(columns=CHURN_RISK_COLUMNS)
    summary = {
        "as_of": str(plan.as_of),
        "config": plan.config.to_dict(),
        "plan": plan.targets.attrs.get("summary", {}),
        "excluded_candidates": plan.targets.attrs.get("excluded", []),
        "comparison": _comparisons(plan),
        "model_versions": names,
        "active_customers_scored": int(len(cr)),
        "notes": notes,
        "timings_s": {**plan.timings, "total": round(time.perf_counter() - t0, 3)},
    }
    files = {
        "targets": out / "targets.csv",
        "churn_risk": out / "churn_risk.csv",
        "summary_json": out / "summary.json",
        "summary_md": out / "summary.md",
    }
    targets.to_csv(files["targets"], index=False)
    cr.to_csv(files["churn_risk"], index=False)
    files["summary_json"].write_text(json.dumps(summary, indent=1, default=str))
    files["summary_md"].write_text(_markdown(summary))
    if plan.arm_table is not None and len(plan.arm_table):
        files["campaign_arms"] = out / "campaign_arms.csv"
        plan.arm_table.to_csv(files["campaign_arms"], index=False)
    return ScoreResult(targets=targets, churn_risk=cr, summary=summary, output_dir=out, files=files)
