"""Benchmark: exact expected incremental profit of the scoring policy against the world's truth.

For each seed, build a synthetic world, run :func:`winback_ml.scoring.build_plan`
as of the world's end (the same code as ``winback score``), and compute with
the world's truth the exact expected incremental profit of

* ``policy``: the optimizer's targets;
* ``oracle``: the truth's best offer x channel per customer;
* ``playbook``: the reason playbook (:func:`winback_ml.cohort.playbook.playbook_policy`);
* ``blanket``: 25 % off for 3 months to every lapsed customer, on the first
  channel they consented to.

Prints the ratios and writes ``benchmarks/results/bench_policy.json``.

With ``--decompose`` it also measures where the gap to the oracle comes
from: the same optimizer is rerun with one input at a time replaced by the
world's truth (a *diagnostic*, never what the product does): the true
reasons (of the cohort and of every past assignment, model refitted; and
of the cohort alone, same model), the
true response latents (price sensitivity, deal seeking, feature need,
affinity as covariates, model refitted), the true channel reach (e-mail and
SMS reach as the consent columns, model refitted), the true ``p0`` (no
contact), the true LTV by offer, and all of them together.

With ``--bounds`` it measures what the *true* mechanism would earn with
less than full knowledge (also a diagnostic): each customer gets the offer
that maximises the true expected incremental profit averaged over the
model's reason probabilities (``p_<reason>``, what the product knows of the
reason), with the true latent traits; then the same with the response traits
(price sensitivity, deal seeking, feature need, affinity), the channel reach,
or both replaced by their cohort means (no per-customer knowledge of them).
``observables_posterior`` is the bound that matters for the goal: the traits
(response and reach) are what the product's data can tell about them. Each trait is regressed
(gradient boosting, fitted on the campaign history's customers outside the
cohort, one row per customer) on the response model's covariates
(:data:`~winback_ml.models.uplift_offer.Z_FEATURES`) and the leading reason
probabilities; each cohort customer's posterior is the joint true traits of
the ``POSTERIOR_DRAWS`` history customers nearest in predicted traits, and
the offer maximises the true profit averaged over those draws and the
reasons. No policy built on the same observables can expect more than
this, up to the approximation of the posterior.
The gap between these bounds and the policy is what the response model
loses; the gap between the bounds and 1 is what the missing knowledge costs.

With ``--history-shares`` it draws the learning curve of the response model
(a diagnostic): the model is refitted on a random share of the campaign
history's customers (every assignment of a drawn customer is kept; draws
``--history-repeats`` times per share, seeded), everything else of the plan
unchanged, and the policy valued under the truth. A curve that still climbs at
share 1 says the policy is limited by how much campaign history there is,
not by what the data could tell with more of it.

Usage::

    python benchmarks/bench_policy.py --seeds 1 2 3 --customers 20000 [--decompose] [--bounds]
        [--history-shares 0.5 0.8 1] [--history-repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import winback_ml.cohort.reasons as reasons_mod
from winback_ml.cohort.playbook import playbook_policy
from winback_ml.cohort.reasons import LABEL_NOISE, ReasonClassifier
from winback_ml.config import load_config
from winback_ml.data.synthetic import make_world
from winback_ml.scoring import BLANKET_OFFER, _first_consented, build_plan, policy_frame

__all__ = [
    "LEVERS",
    "POSTERIOR_DRAWS",
    "reason_quality",
    "run_seed",
    "decompose",
    "bounds",
    "levers",
    "history_curve",
    "main",
]

OUT = Path(__file__).resolve().parent / "results" / "bench_policy.json"


#: Reason-probability levers of ``--levers`` (each row adds one to the previous row).
LEVERS: dict[str, dict] = {
    "before (stated labels, wide request window, no evidence)": {
        "trace": False,
        "label_noise": 0.0,
        "evidence": (),
    },
    "+ request-trace features": {"trace": True, "label_noise": 0.0, "evidence": ()},
    "+ label-noise EM": {"trace": True, "label_noise": LABEL_NOISE, "evidence": ()},
    "+ days lapsed": {"trace": True, "label_noise": LABEL_NOISE, "evidence": ("days_lapsed",)},
    "+ interviews (the product)": {
        "trace": True,
        "label_noise": LABEL_NOISE,
        "evidence": ("days_lapsed", "interviews"),
    },
}


def reason_quality(w, plan) -> dict:
    """Top-1 accuracy and log loss of the cohort's inferred reason probabilities vs the truth.

    Rows: cohort members whose reason the classifier inferred (not stated, not
    the unrecovered-payment rule); probabilities as the response model reads
    them (after :func:`~winback_ml.models.uplift_offer.refine_with_evidence`).
    """
    from winback_ml.models.uplift_offer import REASONS

    coh, F = plan.cohort, plan.features
    m = (coh["reason_source"] == "inferred").to_numpy() & ~coh[
        "unrecovered_payment_failure"
    ].astype(bool).to_numpy()
    if not m.any():
        return {"n": 0}
    true = np.asarray(w.truth.true_reason(coh["customer_id"].to_numpy(), w.end), dtype=object)[m]
    P = F[[f"p_{r}" for r in REASONS]].to_numpy(float)[m]
    idx = np.array([REASONS.index(r) for r in true])
    p_true = np.clip(P[np.arange(len(idx)), idx], 1e-6, 1.0)
    return {
        "n": int(m.sum()),
        "accuracy": round(float(np.mean(np.argmax(P, axis=1) == idx)), 4),
        "log_loss": round(float(-np.mean(np.log(p_true))), 4),
    }


def run_seed(
    seed: int,
    customers: int,
    config: dict | None = None,
    decompose_gap: bool = False,
    lever: dict | None = None,
    with_bounds: bool = False,
    world=None,
    history_shares: tuple[float, ...] = (),
    history_repeats: int = 2,
) -> dict:
    """One world: the four policies' exact expected incremental profit and the ratios."""
    cfg = load_config(config)
    t0 = time.perf_counter()
    w = make_world(customers, seed) if world is None else world
    t_world = time.perf_counter() - t0
    t0 = time.perf_counter()
    lever = lever or LEVERS["+ interviews (the product)"]
    saved = list(reasons_mod.NUMERIC_FEATURES)
    if not lever["trace"]:  # ablation only: the classifier without the request-trace columns
        reasons_mod.NUMERIC_FEATURES[:] = [c for c in saved if not c.endswith("_trace")]
    try:
        plan = build_plan(
            w.tables,
            w.end,
            cfg,
            reason_classifier=ReasonClassifier(label_noise=lever["label_noise"]),
            reason_evidence=lever["evidence"],
        )
    finally:
        reasons_mod.NUMERIC_FEATURES[:] = saved
    t_plan = time.perf_counter() - t0
    T, as_of, coh = w.truth, w.end, plan.cohort
    ids = coh["customer_id"].to_numpy()
    v_policy = T.policy_value(plan.targets, as_of, cfg)
    oracle = T.oracle_policy(ids, as_of, cfg)
    v_oracle = T.policy_value(oracle, as_of, cfg)
    v_playbook = T.policy_value(playbook_policy(coh, cfg), as_of, cfg)
    chans = _first_consented(coh, cfg)
    blanket = policy_frame(
        coh, [BLANKET_OFFER if c else None for c in chans], [c or "email" for c in chans]
    )
    v_blanket = T.policy_value(blanket, as_of, cfg)
    claimed = plan.targets.attrs["summary"]["expected_incremental_profit"]
    tg = plan.targets
    extra = {"decomposition": decompose(w, plan, cfg)} if decompose_gap else {}
    if with_bounds:
        extra["bounds"] = bounds(w, plan, cfg)
    if history_shares:
        extra["history_curve"] = history_curve(w, plan, cfg, history_shares, history_repeats)
    return {
        **extra,
        "seed": seed,
        "customers": customers,
        "lapsed_scored": int(len(coh)),
        "inferred_reasons": reason_quality(w, plan),
        "contacted": int(tg["contact"].sum()),
        "oracle_contacted": int(oracle["contact"].sum()),
        "profit": {
            "policy": round(v_policy, 2),
            "oracle": round(v_oracle, 2),
            "playbook": round(v_playbook, 2),
            "blanket_25pct_3m": round(v_blanket, 2),
            "policy_claimed_by_its_models": round(claimed, 2),
        },
        "ratios": {
            "policy_over_oracle": round(v_policy / v_oracle, 4) if v_oracle else None,
            "policy_over_playbook": round(v_policy / v_playbook, 4) if v_playbook else None,
            "policy_over_blanket": round(v_policy / v_blanket, 4) if v_blanket else None,
            "playbook_over_oracle": round(v_playbook / v_oracle, 4) if v_oracle else None,
        },
        "offers_chosen": {
            str(k): int(v) for k, v in tg.loc[tg["contact"], "offer_type"].value_counts().items()
        },
        "seconds": {
            "make_world": round(t_world, 2),
            "build_plan": round(t_plan, 2),
            **plan.timings,
        },
        "notes": plan.notes,
    }


def history_curve(
    w, plan, cfg, shares: tuple[float, ...], repeats: int = 2, seed: int = 0
) -> dict[str, dict]:
    """Policy / oracle with the response model refitted on a share of the campaign history.

    For each share in ``shares`` (0 < share <= 1) and each of ``repeats``
    draws, a random subset of that share of the history's customers is kept
    with all their assignments (share 1 keeps everything: one fit, the
    plan's own model refitted) and the response model is refitted with the
    plan's parameters; the rest of the plan (cohort, reasons, ``p0``, LTV)
    is unchanged. Returns ``{share: {"values": [...], "mean": m, "assignments": [...]}}``
    (the policy / oracle of each draw, their mean, and the assignments each draw kept).
    """
    from winback_ml.models.uplift_offer import StructuredOfferResponseModel
    from winback_ml.offers.optimizer import optimize_offers

    T, as_of, coh = w.truth, w.end, plan.cohort
    ids = coh["customer_id"].to_numpy()
    v_oracle = T.policy_value(T.oracle_policy(ids, as_of, cfg), as_of, cfg)
    tf, p0_tr, F = plan.training, np.asarray(plan.p0_train, dtype=float), plan.features
    params = plan.models["response"].get_params()
    cust = tf["customer_id"].to_numpy()
    uniq = np.unique(cust)
    rng = np.random.default_rng(seed)
    bad = [s for s in shares if not 0.0 < float(s) <= 1.0]
    if bad:
        raise ValueError(f"history shares must be in (0, 1]; got {bad!r}.")
    out: dict[str, dict] = {}
    for share in shares:
        values, kept = [], []
        for _ in range(1 if share >= 1.0 else int(repeats)):
            keep = np.isin(cust, rng.choice(uniq, int(round(share * len(uniq))), replace=False))
            kept.append(int(keep.sum()))
            m = StructuredOfferResponseModel(**params).fit(
                tf[keep].reset_index(drop=True), p0_tr[keep]
            )
            p_opt = np.clip(m.expected_base_probability(F, plan.p_base_model), 0.0, 1.0)

            def rf(c, offer, ch, m=m):
                return m.predict_return_probability(F, offer, ch, plan.p_base_model)

            pol = optimize_offers(coh, p_opt, plan.ltv_fn, rf, cfg)
            values.append(round(T.policy_value(pol, as_of, cfg) / v_oracle, 4))
        out[f"{float(share):g}"] = {
            "values": values,
            "mean": round(float(np.mean(values)), 4),
            "assignments": kept,
        }
    return out


def decompose(w, plan, cfg) -> dict[str, float]:
    """Policy value (/ oracle) with one input at a time swapped for the truth (diagnostic)."""

    from winback_ml.models.uplift_offer import REASONS, StructuredOfferResponseModel
    from winback_ml.offers.optimizer import optimize_offers

    T, as_of, coh = w.truth, w.end, plan.cohort
    ids = coh["customer_id"].to_numpy()
    v_oracle = T.policy_value(T.oracle_policy(ids, as_of, cfg), as_of, cfg)
    tf, p0_tr, F = plan.training, plan.p0_train, plan.features
    resp0 = plan.models["response"]
    prior = resp0.prior_pairs
    P = T.params
    cidx = T._cust_idx(ids)
    L = T._latents(cidx)
    cidx_tr = T._cust_idx(tf["customer_id"].to_numpy())
    L_tr = T._latents(cidx_tr)
    w_days = cfg.attribution_window_days

    def onehot(frame, reasons):
        f = frame.copy()
        for r in REASONS:
            f[f"p_{r}"] = (reasons == r).astype(float)
        return f

    def latents(frame, Lx):
        f = frame.copy()
        f["t_log_ps"] = np.log(Lx["price_sensitivity"])
        f["t_deal"] = Lx["deal_seeker"]
        f["t_log_fn"] = np.log(np.minimum(2.0, Lx["feature_need"] / P["feature_need_ref"]))
        f["t_aff"] = Lx["affinity"]
        return f

    def reach(frame, Lx):
        f = frame.copy()
        f["can_email"] = Lx["email_ok"] * Lx["resp_email"]
        f["can_sms"] = Lx["sms_ok"] * Lx["resp_sms"]
        return f

    zt = ("t_log_ps", "t_deal", "t_log_fn", "t_aff")
    true_r_tr = np.asarray(T.true_reason(tf["customer_id"].to_numpy(), tf["assigned_at"]))
    true_r = np.asarray(T.true_reason(ids, as_of))
    p0_true = T.p_return(ids, as_of, w_days)
    p0_tr_true = T.p_return(tf["customer_id"].to_numpy(), tf["assigned_at"], w_days)
    p0_tr_true = np.where(np.isfinite(p0_tr_true), p0_tr_true, p0_tr)

    def ltv_true(c, offer):
        return T.ltv(
            c["customer_id"].to_numpy(),
            offer,
            cfg.ltv_horizon_months,
            cfg.margin,
            cfg.annual_discount_rate,
        )

    def value(F2=None, tf2=None, p0=None, p0t=None, ltv=None, z=None, reach_known=False) -> float:
        F2 = F if F2 is None else F2
        p_in = plan.p_base_model if p0 is None else p0
        if tf2 is None and p0t is None and z is None and not reach_known:
            model = resp0
        else:
            params = {**resp0.get_params(), "prior_pairs": prior}
            if z is not None:  # the latents as covariates, one vector per offer type
                params.update(z_features=z, beta_by_type=True)
            if reach_known:  # true reach in the consent columns: the model's reach -> 1
                params.update(reach_prior=None, penalty_reach=0.0)
            if p0 is not None:
                params.update(calibrate_base=False)  # the true p0 needs no recalibration
            model = StructuredOfferResponseModel(**params).fit(
                tf if tf2 is None else tf2, p0_tr if p0t is None else p0t
            )
        p_opt = model.expected_base_probability(F2, p_in)

        def rf(c, offer, ch):
            return model.predict_return_probability(F2, offer, ch, p_in)

        pol = optimize_offers(coh, p_opt, ltv or plan.ltv_fn, rf, cfg)
        return round(T.policy_value(pol, as_of, cfg) / v_oracle, 4)

    from winback_ml.models.uplift_offer import Z_FEATURES

    zall = tuple(Z_FEATURES) + zt
    out = {
        "model": value(),
        "true_reasons": value(F2=onehot(F, true_r), tf2=onehot(tf, true_r_tr)),
        "true_reasons_cohort_only": value(F2=onehot(F, true_r)),
        "true_response_latents": value(F2=latents(F, L), tf2=latents(tf, L_tr), z=zall),
        "true_channel_reach": value(F2=reach(F, L), tf2=reach(tf, L_tr), reach_known=True),
        "true_p0": value(p0=p0_true, p0t=p0_tr_true),
        "true_ltv": value(ltv=ltv_true),
    }
    Fa = reach(latents(onehot(F, true_r), L), L)
    ta = reach(latents(onehot(tf, true_r_tr), L_tr), L_tr)
    out["all_true"] = value(
        F2=Fa, tf2=ta, p0=p0_true, p0t=p0_tr_true, ltv=ltv_true, z=zall, reach_known=True
    )
    return out


#: Latent traits averaged over the cohort in the ``--bounds`` variants.
_RESPONSE_TRAITS = ("price_sensitivity", "deal_seeker", "feature_need", "affinity")
_REACH_TRAITS = ("resp_email", "resp_sms", "resp_in_app")


#: History customers drawn as one cohort customer's trait posterior (``observables_posterior``).
POSTERIOR_DRAWS = 20
#: Reason probabilities that join the covariates as predictors of the traits.
_POSTERIOR_REASONS = ("p_too_expensive", "p_missing_features", "p_unused", "p_contract_ended")


def _trait_posterior_draws(T, plan, ids: np.ndarray, k: int = POSTERIOR_DRAWS) -> list[dict]:
    """``k`` joint draws of the response and reach traits per cohort customer given the observables."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.neighbors import NearestNeighbors

    from winback_ml.models.uplift_offer import Z_FEATURES

    cols = list(Z_FEATURES) + list(_POSTERIOR_REASONS)
    tf = plan.training
    ref = tf[~tf["customer_id"].isin(set(ids))].drop_duplicates("customer_id")
    lat_ref = T._latents(T._cust_idx(ref["customer_id"].to_numpy()))
    x_ref = ref[cols].to_numpy(float)
    x_coh = plan.features[cols].to_numpy(float)
    traits = _RESPONSE_TRAITS + _REACH_TRAITS
    pred_ref, pred_coh = [], []
    for t in traits:
        m = HistGradientBoostingRegressor(
            max_iter=150, learning_rate=0.05, min_samples_leaf=40, random_state=0
        ).fit(x_ref, lat_ref[t])
        pred_ref.append(m.predict(x_ref))
        pred_coh.append(m.predict(x_coh))
    pr, pc = np.column_stack(pred_ref), np.column_stack(pred_coh)
    sd = np.where(pr.std(axis=0) > 0, pr.std(axis=0), 1.0)
    nbr = NearestNeighbors(n_neighbors=k).fit(pr / sd).kneighbors(pc / sd, return_distance=False)
    return [{t: lat_ref[t][nbr[:, j]] for t in traits} for j in range(k)]


def bounds(w, plan, cfg) -> dict[str, float]:
    """True-mechanism policies with the reason known only as the model's probabilities (/ oracle).

    Diagnostic: for every catalog offer x channel, the true expected incremental
    profit of each customer under each reason, averaged with the plan's
    ``p_<reason>``; the best positive one is chosen and valued under the true
    reason. ``observables_posterior`` averages over draws of the response and
    reach traits given the observables (:func:`_trait_posterior_draws`);
    ``no_response_traits`` / ``no_reach`` / ``neither`` replace those latent
    traits by their cohort mean when choosing (consent stays known). The LTV
    by offer is recomputed with the drawn or averaged traits (price
    sensitivity and deal seeking drive churn after the return); ``p0`` (no
    contact) stays the truth's. Budgets and cost caps are not applied (the
    default config has none).
    """
    from winback_ml.data.truth import TRUE_REASONS
    from winback_ml.models.uplift_offer import REASONS

    T, as_of, coh = w.truth, w.end, plan.cohort
    ids = coh["customer_id"].to_numpy()
    ctx = T._eip_context(ids, as_of, cfg)
    probs = plan.features[[f"p_{r}" for r in REASONS]].to_numpy(float)
    combos = [(o, ch) for o in cfg.offer_catalog() for ch in cfg.channels]
    true_eip = np.column_stack(
        [np.nan_to_num(T._eip_from(ctx, o, ch)["eip"], nan=-np.inf) for o, ch in combos]
    )
    oracle = float(np.maximum(true_eip.max(axis=1), 0.0).sum())
    rows = np.arange(len(ids))

    def ltv_with(lat: dict) -> dict:
        """The LTV of every offer already valued, with the latents ``lat`` instead of the true."""
        return {key: T._ltv_idx(ctx["cidx"], *key, *ctx["args"], latents=lat) for key in ctx["ltv"]}

    def value(averaged: tuple[str, ...] = (), draws: list[dict] | None = None) -> float:
        exp_eip = np.zeros_like(true_eip)
        for d in draws or [{}]:
            lat = {**ctx["L"], **d}
            for k in averaged:
                lat[k] = np.full(len(ids), float(np.mean(lat[k])))
            ltv = ltv_with(lat) if (d or averaged) else ctx["ltv"]
            for k, r in enumerate(REASONS):
                reason = np.full(len(ids), TRUE_REASONS.index(r))
                c = {**ctx, "resp": {}, "L": lat, "reason": reason, "ltv": ltv}
                for j, (o, ch) in enumerate(combos):
                    exp_eip[:, j] += probs[:, k] * np.nan_to_num(T._eip_from(c, o, ch)["eip"])
        pick = exp_eip.argmax(axis=1)
        got = np.where(exp_eip[rows, pick] > 0, true_eip[rows, pick], 0.0)
        return round(float(np.where(np.isfinite(got), got, 0.0).sum()) / oracle, 4)

    return {
        "reasons_as_probabilities": value(()),
        "observables_posterior": value(draws=_trait_posterior_draws(T, plan, ids)),
        "no_response_traits": value(_RESPONSE_TRAITS),
        "no_reach": value(_REACH_TRAITS),
        "neither": value(_RESPONSE_TRAITS + _REACH_TRAITS),
    }


def levers(seed: int, customers: int) -> dict[str, dict]:
    """Policy / oracle and inferred-reason quality with the levers of :data:`LEVERS` added in turn."""
    w = make_world(customers, seed)
    out = {}
    for name, lv in LEVERS.items():
        r = run_seed(seed, customers, lever=lv, world=w)
        out[name] = {**r["inferred_reasons"], **r["ratios"]}
        print(f"seed {seed} {name}: {out[name]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--decompose", action="store_true", help="also swap in true inputs")
    ap.add_argument(
        "--bounds", action="store_true", help="also the true mechanism with partial knowledge"
    )
    ap.add_argument(
        "--levers", action="store_true", help="the reason levers one at a time (LEVERS) instead"
    )
    ap.add_argument(
        "--history-shares",
        type=float,
        nargs="+",
        default=[],
        help="also the response model refitted on these shares of the campaign history",
    )
    ap.add_argument("--history-repeats", type=int, default=2, help="draws per share below 1")
    a = ap.parse_args(argv)
    if a.levers:
        res_l = {
            "benchmark": "bench_policy_levers",
            "customers": a.customers,
            "levers": {str(s): levers(s, a.customers) for s in a.seeds},
            "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        names = list(LEVERS)
        res_l["mean"] = {
            n: {
                k: round(float(np.mean([res_l["levers"][str(s)][n][k] for s in a.seeds])), 4)
                for k in ("accuracy", "log_loss", "policy_over_oracle", "policy_over_playbook")
            }
            for n in names
        }
        for n in names:
            print(f"mean {n}: {res_l['mean'][n]}")
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res_l, indent=1))
        return res_l
    runs = []
    for s in a.seeds:
        r = run_seed(
            s,
            a.customers,
            decompose_gap=a.decompose,
            with_bounds=a.bounds,
            history_shares=tuple(a.history_shares),
            history_repeats=a.history_repeats,
        )
        if a.decompose:
            print(f"seed {s}: decomposition (policy / oracle): {r['decomposition']}", flush=True)
        if a.bounds:
            print(f"seed {s}: bounds (/ oracle): {r['bounds']}", flush=True)
        if a.history_shares:
            print(f"seed {s}: history curve (/ oracle): {r['history_curve']}", flush=True)
        runs.append(r)
        q = r["ratios"]
        print(
            f"seed {s}: policy {r['profit']['policy']:,.0f}  oracle {r['profit']['oracle']:,.0f}  "
            f"playbook {r['profit']['playbook']:,.0f}  blanket {r['profit']['blanket_25pct_3m']:,.0f}  |  "
            f"policy/oracle {q['policy_over_oracle']:.3f}  policy/playbook {q['policy_over_playbook']:.3f}  "
            f"policy/blanket {q['policy_over_blanket']:.3f}  ({r['seconds']['build_plan']:.0f} s)",
            flush=True,
        )
    ratios = {
        k: round(float(np.mean([r["ratios"][k] for r in runs])), 4)
        for k in (
            "policy_over_oracle",
            "policy_over_playbook",
            "policy_over_blanket",
            "playbook_over_oracle",
        )
    }
    res = {
        "benchmark": "bench_policy",
        "customers": a.customers,
        "seeds": a.seeds,
        "mean_ratios": ratios,
        "goals": {"policy_over_oracle": 0.90, "policy_over_playbook": 1.15},
        "runs": runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))
    print(f"mean ratios: {ratios}; wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
