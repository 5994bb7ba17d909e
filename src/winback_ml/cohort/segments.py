"""Win-back segments (hot, warm, lost, misclassified) from interviews, else predicted.

Interview rules (the seed on win-back interviews)
-------------------------------------------------
A cohort member's interview is their latest one answered after the spell
that ended began (``answered_at > spell_start``) and at or before ``as_of``.
Answers with ``quality_score < 3`` are not trusted: they are ignored (the
member is treated as not interviewed; ``interview_quality`` still shows the
score). On a trusted interview, the first rule that fires wins:

1. **misclassified**: the story (q1, q2, q3, q6) says they cancelled by
   accident, out of billing confusion (a failed card, a charge they did not
   recognise), or while planning to come back (a break, a pause); or the
   cancel reason is ``accidental``.
2. **lost**: ``q7_offer_interest == 'no'``; or they switched to a competitor
   (q5 names one) with a deep switching cost (migrated everything, a
   multi-year or annual contract, the whole team, built around it); or a
   life circumstance (left the industry, company closed, retired, ...).
3. **hot**: ``q7 == 'yes'`` and the concession they cite in q6 is one we can
   make (price -> ``discount``/``free_month``, features -> ``feature_trial``,
   billing -> ``resume_billing``, renewal terms -> ``early_renewal``, each
   only when the config's catalog has it), or they cite nothing specific
   (q7 asks about our concrete offers).
4. **warm**: ``q7 == 'maybe'``, or ``yes`` with only concessions we cannot
   make (bugs fixed, better support, speed, ...).

A trusted interview without a q7 answer falls through to the predicted rule
(after rules 1 and 2).

Predicted rule (no trusted interview)
-------------------------------------
1. ``misclassified`` when the reason is ``accidental`` or ``payment_failed``
   (involuntary: they never chose to leave; the seed's "billing confusion").
2. With ``p_return`` (a return model's probability, e.g. of returning
   within the attribution window, one per customer): ``hot`` when it is at
   or above the ``hot_quantile`` (0.75) of the predicted members' values,
   ``lost`` at or below the ``lost_quantile`` (0.25), else ``warm``.
3. Without ``p_return``: ``lost`` when lapsed over 120 days (the seed:
   past 120 days switching costs dominate); otherwise the member's
   *historical return rate*: the share of past lapses with the same reason
   that came back within 180 days (:func:`reason_return_rates`; for an
   inferred reason, weighted by the classifier's ``p_<reason>``).
   ``hot`` at or above ``hot_threshold`` (0.40), ``lost`` below
   ``lost_threshold`` (0.15), else ``warm``.

``segment_rule`` names the rule that fired. Interview answers are free text
(PII): they are read in memory only and never copied into the output.
All timestamps are tz-naive UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.cohort._inputs import as_contract_data, require_columns
from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.config import BusinessConfig, load_config
from winback_ml.data.loader import ContractData
from winback_ml.exceptions import ConfigError

__all__ = [
    "MIN_TRUSTED_QUALITY",
    "SEGMENT_COLUMNS",
    "PATTERNS",
    "CONCESSIONS",
    "interview_segment",
    "reason_return_rates",
    "assign_segments",
]

#: Interviews with a lower quality score are not trusted (the seed).
MIN_TRUSTED_QUALITY = 3

SEGMENT_COLUMNS = [
    "customer_id",
    "segment",
    "segment_source",
    "segment_rule",
    "interview_quality",
    "interview_trusted",
    "q7_offer_interest",
    "cited_concessions",
    "expected_return_rate",
]

_W = r"[\s\-]+"

#: Regular expressions (case-insensitive) of the interview rules.
PATTERNS: dict[str, str] = {
    "accident": (
        r"by (accident|mistake)|accidental|mistaken|didn'?t (mean|intend|want) to cancel"
        r"|did not (mean|intend|want) to cancel|wrong button|clicked (the )?(wrong|cancel)"
        r"|meant to (pause|downgrade|switch plans?)|thought i was (pausing|downgrading)"
        r"|not on purpose|unintentional|cancel+ed without (meaning|realizing|realising)"
    ),
    "billing_confusion": (
        r"billing (confusion|error|mix.?up|mistake|problem)|confus\w*.{0,30}(bill|invoice|charge)"
        r"|charged twice|double.?charged|card (expired|was declined|declined|got declined)"
        r"|expired card|payment (failed|didn'?t go through|bounced|was declined)"
        r"|didn'?t recogni[sz]e the charge|new (credit )?card|update[ds]? (my )?(card|payment)"
        r"|bank (blocked|declined)"
    ),
    "plan_to_return": (
        r"(plan(ning|ned)?|meant|intend\w*|going) to (come back|return|resubscribe|re-?subscribe)"
        r"|taking a break|just a break|temporar\w+|pause[ds]?\b"
        r"|be back (in|after|when|next)|come back (in|after|when|next)"
    ),
    "life": (
        r"left the (industry|field|business)|chang\w+ (careers?|jobs?|industr\w+|fields?)"
        r"|(company|business|startup|shop|store|agency|firm)\b.{0,20}\b(closed|shut|went under"
        r"|folded|out of business|was (acquired|sold)|bankrupt)|shut (it|the company|the business"
        r"|down)|out of business|retir(ed|ing|ement)|laid off|lost my job|no longer work"
        r"|passed away|moved (abroad|countries|to another country)|health (reasons|issues)"
        r"|went bankrupt|closed (the|my|our) (company|business|shop)"
    ),
    "deep_switch": (
        r"(migrat\w+|moved|switched|ported|transferred) (all|everything|our (whole|entire|data)"
        r"|the whole|the entire|every)|(signed|locked|committed|tied)\b.{0,25}\b(contract|year|annual"
        r"|multi.?year) (with|at|for) (them|the other|the new|another)|(multi.?year|two.?year"
        r"|2.?year|three.?year|3.?year) (contract|commitment|deal|agreement)"
        r"|(whole|entire) (team|company|org\w*) (is|has|now|moved|switched)"
        r"|too (much work|hard|costly|expensive|painful) to (switch|move|migrate)"
        r"|(company|team|org)[ -]?wide|standardi[sz](ed|ing) on|built (our|everything|all)\b.{0,20}\b"
        r"(on|around)|integrated (it )?(into|with) (everything|our)|can'?t (switch|go) back"
    ),
}

#: Concession themes of q6 and the offer types that can meet them (None = cannot offer).
CONCESSIONS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "price": (
        r"price|pricing|cheap|cost|discount|afford|budget|expensive|deal|coupon|free month"
        r"|less money|lower (plan|tier)",
        ("discount", "free_month"),
    ),
    "features": (
        r"feature|integrat|module|export|import|api\b|report|dashboard|if you (add|had|built"
        r"|supported)|support for|gantt|calendar|offline|mobile app",
        ("feature_trial",),
    ),
    "billing": (r"billing|payment|card|invoice|charge", ("resume_billing",)),
    "renewal": (r"renew|contract|annual|commitment|term\b", ("early_renewal",)),
    "not_offerable": (
        r"bug|crash|stab|slow|speed|fast|quality|reliab|outage|downtime|customer service"
        r"|support (team|staff|response|was)|respon\w+ support|simpl|easier|confusing (ui|interface)"
        r"|onboarding|ux\b|design",
        None,
    ),
}

_RX = {k: re.compile(v, re.IGNORECASE) for k, v in PATTERNS.items()}
_CRX = {k: re.compile(v[0], re.IGNORECASE) for k, v in CONCESSIONS.items()}
#: q5 answers that name no competitor (nothing, or a generic substitute).
_NO_COMPETITOR = re.compile(
    r"^\s*(nothing|none|n/?a|no|not sure|idk|-+|\.+)?\s*$|\bnothing\b|spreadsheet|excel|paper"
    r"|notebook|free (app|tool|version)|by hand|manual",
    re.IGNORECASE,
)


def _txt(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _cited(q6: str, catalog_types: set[str]) -> tuple[list[str], bool]:
    """(themes cited in q6, whether one of them is a concession we can make)."""
    themes = [k for k, rx in _CRX.items() if rx.search(q6)]
    offerable = any(
        CONCESSIONS[t][1] is not None and set(CONCESSIONS[t][1]) & catalog_types for t in themes
    )
    return themes, offerable


def interview_segment(
    answers: Mapping[str, Any],
    cancel_reason: str | None = None,
    catalog_types: set[str] | None = None,
) -> tuple[str | None, str, list[str]]:
    """The segment of one trusted interview: ``(segment or None, rule, cited concessions)``.

    ``answers`` holds the interview columns (``q1_cancel_story`` ...
    ``q7_offer_interest``). ``None`` means the interview does not decide
    (no q7 answer and no misclassified/lost signal). The quality check is the
    caller's (see :func:`assign_segments`).

    Examples
    --------
    >>> interview_segment({"q1_cancel_story": "I clicked cancel by accident",
    ...                    "q7_offer_interest": "no"})[:2]
    ('misclassified', 'accident')
    >>> interview_segment({"q6_return_conditions": "a lower price",
    ...                    "q7_offer_interest": "yes"})[:2]
    ('hot', 'q7_yes_offerable')
    """
    types = (
        catalog_types
        if catalog_types is not None
        else {"discount", "free_month", "feature_trial", "resume_billing", "early_renewal"}
    )
    story = " ".join(
        _txt(answers.get(k))
        for k in ("q1_cancel_story", "q2_breaking_point", "q3_tried_before", "q6_return_conditions")
    )
    q5 = _txt(answers.get("q5_using_instead")).strip()
    q6 = _txt(answers.get("q6_return_conditions"))
    q7 = answers.get("q7_offer_interest")
    q7 = q7.strip().lower() if isinstance(q7, str) else None
    themes, offerable = _cited(q6, types)
    for rule in ("accident", "billing_confusion", "plan_to_return"):
        if _RX[rule].search(story):
            return "misclassified", rule, themes
    if cancel_reason == "accidental":
        return "misclassified", "reason_accidental", themes
    if q7 == "no":
        return "lost", "q7_no", themes
    if _RX["life"].search(story) or _RX["life"].search(q5):
        return "lost", "life_circumstances", themes
    switched = not _NO_COMPETITOR.search(q5)
    if switched and _RX["deep_switch"].search(" ".join((story, q5))):
        return "lost", "deep_switching_cost", themes
    if q7 == "yes":
        if offerable or not themes:
            return "hot", "q7_yes_offerable", themes
        return "warm", "q7_yes_not_offerable", themes
    if q7 == "maybe":
        return "warm", "q7_maybe", themes
    return None, "no_q7", themes


def reason_return_rates(
    episodes: pd.DataFrame, horizon_days: int = 180, min_lapses: int = 20
) -> pd.Series:
    """Share of past lapses that came back within ``horizon_days``, per stated reason.

    Only lapses whose outcome at the horizon is known by ``as_of`` count
    (returned within it, or observed for at least ``horizon_days``). Reasons
    with fewer than ``min_lapses`` such lapses get the overall share. Lapses
    without a stated reason count as ``unknown``. Returns caused by past
    campaigns are included (the data do not tell them apart).
    """
    from winback_ml.data.contract import CANCEL_REASONS

    require_columns(
        episodes, ["stated_reason", "returned", "days_to_return", "days_observed"], "episodes"
    )
    dtr = episodes["days_to_return"].astype(float)
    back = episodes["returned"].astype(bool) & (dtr <= horizon_days)
    known = back | (episodes["days_observed"].astype(float) >= horizon_days)
    r = episodes["stated_reason"].astype(object).where(episodes["stated_reason"].notna(), "unknown")
    k = pd.DataFrame({"reason": r[known], "back": back[known].astype(float)})
    overall = float(k["back"].mean()) if len(k) else np.nan
    g = k.groupby("reason")["back"].agg(["mean", "size"])
    rates = pd.Series(overall, index=list(CANCEL_REASONS), dtype=float)
    ok = g[g["size"] >= min_lapses]
    rates[ok.index] = ok["mean"]
    rates.attrs["n_lapses"] = int(len(k))
    return rates


def _expected_return(
    reasons: pd.DataFrame | None, ids: np.ndarray, reason: np.ndarray, rates: pd.Series
) -> np.ndarray:
    """Historical return rate of each member: probability-weighted over ``p_<reason>`` if given."""
    base = rates.reindex(reason).to_numpy(dtype=float)
    if reasons is None:
        return base
    pcols = [c for c in reasons.columns if c.startswith("p_") and c[2:] in rates.index]
    if not pcols:
        return base
    P = reasons.drop_duplicates("customer_id").set_index("customer_id")[pcols].reindex(ids)
    P = P.to_numpy(dtype=float)
    tot = np.nansum(P, axis=1)
    mix = np.nansum(P * rates.reindex([c[2:] for c in pcols]).to_numpy()[None, :], axis=1)
    return np.where(tot > 0.5, mix / np.where(tot > 0, tot, 1.0), base)


def _latest_interviews(iv: pd.DataFrame, cohort: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Latest interview per cohort member within their spell, trusted ones first."""
    start = cohort.set_index("customer_id")["spell_start"]
    iv = iv[iv["customer_id"].isin(start.index) & (iv["answered_at"] <= as_of)].copy()
    iv = iv[iv["answered_at"] > iv["customer_id"].map(start)]
    iv["_trusted"] = iv["quality_score"].astype(float) >= MIN_TRUSTED_QUALITY
    iv = iv.sort_values(["customer_id", "_trusted", "answered_at"], kind="mergesort")
    trusted = iv[iv["_trusted"]].drop_duplicates("customer_id", keep="last")
    best_quality = iv.groupby("customer_id")["quality_score"].max()
    latest_any = iv.sort_values("answered_at").drop_duplicates("customer_id", keep="last")
    out = pd.concat([trusted, latest_any[~latest_any["customer_id"].isin(trusted["customer_id"])]])
    out["_best_quality"] = out["customer_id"].map(best_quality)
    return out.set_index("customer_id")


def assign_segments(
    data: ContractData | Mapping[str, pd.DataFrame],
    cohort: pd.DataFrame,
    as_of: Any = None,
    p_return: pd.Series | np.ndarray | None = None,
    reasons: pd.DataFrame | None = None,
    config: BusinessConfig | Mapping[str, Any] | str | None = None,
    hot_quantile: float = 0.75,
    lost_quantile: float = 0.25,
    hot_threshold: float = 0.40,
    lost_threshold: float = 0.15,
    horizon_days: int = 180,
    episodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Segment every cohort member: from a trusted interview, else by the predicted rule.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames (``interviews`` is optional).
    cohort : DataFrame from :func:`~winback_ml.cohort.lapsed.build_lapsed_cohort`.
    as_of : date or timestamp, optional
    p_return : Series indexed by ``customer_id`` or array aligned with ``cohort``, optional
        A return model's probability per member (see the module docstring).
    reasons : DataFrame from :func:`~winback_ml.cohort.reasons.infer_reasons`, optional
        Without it the stated reason of the cohort is used (``unknown`` if none).
    config : business config; its offer catalog decides which concessions we can make.
    hot_quantile, lost_quantile : float
        Cut points of the ``p_return`` rule.
    hot_threshold, lost_threshold : float
        Cut points of the historical return rate rule (without ``p_return``).
    horizon_days : int
        Horizon of the historical return rate (see :func:`reason_return_rates`).
    episodes : DataFrame, optional
        Already built lapse episodes for the same ``as_of``.

    Returns
    -------
    DataFrame
        :data:`SEGMENT_COLUMNS`, in cohort order. ``segment_source`` is
        ``interview`` or ``predicted``. ``attrs["missing_signals"]`` lists
        ``interviews`` when that table is absent.
    """
    require_columns(cohort, ["customer_id", "spell_start", "days_lapsed"], "The 'cohort' frame")
    if not 0 <= lost_quantile <= hot_quantile <= 1:
        raise ConfigError(
            "assign_segments needs 0 <= lost_quantile <= hot_quantile <= 1. Got "
            f"lost_quantile={lost_quantile}, hot_quantile={hot_quantile} instead."
        )
    cd, T = as_contract_data(data, as_of)
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    types = {o.offer_type for o in cfg.offer_catalog()} - {"none"}
    n = len(cohort)
    ids = cohort["customer_id"].to_numpy()
    if reasons is not None:
        require_columns(reasons, ["customer_id", "cancel_reason"], "The 'reasons' frame")
        r = reasons.drop_duplicates("customer_id").set_index("customer_id")
        reason = r["cancel_reason"].reindex(ids).to_numpy(dtype=object)
    else:
        reason = cohort.get("stated_reason", pd.Series([None] * n)).to_numpy(dtype=object)
    reason = np.array([x if isinstance(x, str) else "unknown" for x in reason], dtype=object)

    seg = np.full(n, None, dtype=object)
    rule = np.full(n, None, dtype=object)
    quality = np.full(n, np.nan)
    trusted = np.zeros(n, dtype=bool)
    q7 = np.full(n, None, dtype=object)
    cited = np.full(n, None, dtype=object)
    if cd.interviews is not None and n:
        iv = _latest_interviews(cd.interviews, cohort, T)
        pos = {c: i for i, c in enumerate(ids)}
        for cid, row in iv.iterrows():
            i = pos[cid]
            quality[i] = float(row["quality_score"])
            if not row["_trusted"]:
                rule[i] = "untrusted_interview"
                continue
            trusted[i] = True
            q7[i] = row.get("q7_offer_interest")
            s, how, themes = interview_segment(row.to_dict(), reason[i], types)
            cited[i] = ",".join(themes) if themes else None
            if s is not None:
                seg[i], rule[i] = s, how
            else:
                rule[i] = how
    from_interview = seg != None  # noqa: E711
    todo = ~from_interview
    # predicted rule
    invol = todo & np.isin(reason, ["accidental", "payment_failed"])
    seg[invol] = "misclassified"
    rule[invol] = "predicted_" + reason[invol]
    rest = todo & ~invol
    if p_return is not None:
        if isinstance(p_return, pd.Series):
            p = p_return.reindex(ids).to_numpy(dtype=float)
        else:
            p = np.asarray(p_return, dtype=float)
            if p.shape != (n,):
                raise ConfigError(
                    f"p_return must have one value per cohort member ({n}). Got shape {p.shape}. "
                    "Pass a Series indexed by customer_id or an aligned array."
                )
        have = rest & ~np.isnan(p)
        if have.any():
            hi = np.quantile(p[have], hot_quantile)
            lo = np.quantile(p[have], lost_quantile)
            hot = have & (p >= hi)
            lost = have & ~hot & (p <= lo)
            seg[hot], rule[hot] = "hot", "predicted_p_return_high"
            seg[lost], rule[lost] = "lost", "predicted_p_return_low"
            warm = have & ~hot & ~lost
            seg[warm], rule[warm] = "warm", "predicted_p_return_mid"
        rest = rest & np.isnan(p)
    days = cohort["days_lapsed"].to_numpy(dtype=float)
    eps = build_lapse_episodes(cd, T) if episodes is None else episodes
    rates = reason_return_rates(eps, horizon_days=horizon_days)
    exp_ret = _expected_return(reasons, ids, reason, rates)
    late = rest & (days > 120)
    seg[late], rule[late] = "lost", "predicted_past_120_days"
    rest = rest & ~late
    lost = rest & (exp_ret < lost_threshold)
    hot = rest & (exp_ret >= hot_threshold)
    warm = rest & ~lost & ~hot
    seg[lost], rule[lost] = "lost", "predicted_low_return_rate"
    seg[hot], rule[hot] = "hot", "predicted_high_return_rate"
    seg[warm], rule[warm] = "warm", "predicted_mid_return_rate"
    out = pd.DataFrame(
        {
            "customer_id": ids,
            "segment": seg,
            "segment_source": np.where(from_interview, "interview", "predicted").astype(object),
            "segment_rule": rule,
            "interview_quality": quality,
            "interview_trusted": trusted,
            "q7_offer_interest": q7,
            "cited_concessions": cited,
            "expected_return_rate": exp_ret,
        }
    )
    out.attrs["missing_signals"] = ["interviews"] if cd.interviews is None else []
    out.attrs["as_of"] = T
    return out
