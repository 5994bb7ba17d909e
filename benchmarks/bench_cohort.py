"""Cohort stage benchmark: episodes, cohort, reason features, classifier fit/infer, segments, playbook.

Usage: python bench_cohort.py [N_CUSTOMERS] [SEED]; prints seconds and peak RSS per step and
writes benchmarks/results/bench_cohort.json when run from the repository root.
"""

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.cohort.lapsed import build_lapsed_cohort
from winback_ml.cohort.playbook import playbook_policy
from winback_ml.cohort.reasons import (
    REASONS,
    InterviewReasonModel,
    ReasonClassifier,
    ReasonReturnCurves,
    evaluate_reasons,
    infer_reasons,
    reason_features,
    reason_training_set,
    refine_reasons,
)
from winback_ml.cohort.segments import assign_segments
from winback_ml.config import load_config
from winback_ml.data.loader import load_data
from winback_ml.data.synthetic import make_world

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
res = {"n_customers": N, "seed": seed}


def step(name, fn):
    t = time.perf_counter()
    out = fn()
    res[f"{name}_s"] = round(time.perf_counter() - t, 3)
    print(f"{name:>18}: {res[name + '_s']:8.2f} s", flush=True)
    return out


w = step("make_world", lambda: make_world(N, seed=seed))
d = step("load_data", lambda: load_data(w.tables))
T = w.end
eps = step("episodes", lambda: build_lapse_episodes(d, T))
coh = step("cohort", lambda: build_lapsed_cohort(d, T, episodes=eps))
f = step("reason_features", lambda: reason_features(d, eps, T))
r = step("infer_reasons", lambda: infer_reasons(d, coh, T, features=f))
s = step("segments", lambda: assign_segments(d, coh, T, reasons=r, episodes=eps))
m = coh.merge(r[["customer_id", "cancel_reason"]], on="customer_id").merge(
    s[["customer_id", "segment"]], on="customer_id"
)
p = step("playbook_policy", lambda: playbook_policy(m))
ev = step("evaluate_reasons", lambda: evaluate_reasons(f))
tr = w.truth.true_reason(coh["customer_id"], T)
inf = (r["reason_source"] == "inferred").to_numpy()
X, y = reason_training_set(f)
clf = r.attrs["classifier"]
unk = f[f["stated_reason"].isna()]
truth = w.truth.episodes.set_index("subscription_id")["true_reason"]
true_unk = eps.loc[unk.index, "subscription_id"].map(truth).to_numpy()
res.update(
    n_lapses=len(eps),
    n_cohort=len(coh),
    n_train=int(len(y)),
    n_unknown_lapses=int(len(unk)),
    heldout_accuracy=round(ev.accuracy, 4),
    heldout_top2=round(ev.top2_accuracy, 4),
    heldout_baseline=round(ev.baseline_accuracy, 4),
    truth_accuracy_unknown_lapses=round(float(np.mean(clf.predict(unk) == true_unk)), 4),
    truth_accuracy_cohort_inferred=round(
        float(np.mean(r["cancel_reason"].to_numpy()[inf] == tr[inf])), 4
    ),
    n_cohort_inferred=int(inf.sum()),
)


def _quality(P, classes, true):
    """Top-1 accuracy and log loss (clipped at 1e-6) of probabilities against true reasons."""
    cls = list(classes)
    idx = np.array([cls.index(t) if t in cls else -1 for t in true])
    p = np.where(idx >= 0, P[np.arange(len(idx)), np.clip(idx, 0, None)], 0.0)
    return {
        "accuracy": round(float(np.mean(np.argmax(P, axis=1) == idx)), 4),
        "log_loss": round(float(-np.mean(np.log(np.clip(p, 1e-6, 1.0)))), 4),
    }


# the same lapses with the stated labels taken as they are (label_noise=0): the EM's effect
plain = step("fit_plain_labels", lambda: ReasonClassifier(label_noise=0.0).fit(X, y))
res["truth_unknown_lapses_em"] = _quality(clf.predict_proba(unk), clf.classes_, true_unk)
res["truth_unknown_lapses_plain_labels"] = _quality(
    plain.predict_proba(unk), plain.classes_, true_unk
)
# the cohort's inferred reasons refined with days lapsed and interviews (as the plan does)
cls_rows = (r["reason_rule"] == "classifier").to_numpy()
curves = step("return_curves", lambda: ReasonReturnCurves().fit(eps, T))
ivm = step("interview_model", lambda: InterviewReasonModel().fit(d.interviews, eps, T))
ratio = ivm.ratios_for(d.interviews, coh[["customer_id", "ended_at"]], T)
rr = refine_reasons(r, coh["days_lapsed"].to_numpy(float), curves, ratio)
pc = [f"p_{x}" for x in REASONS]
res["truth_cohort_classifier_rows"] = {
    "n": int(cls_rows.sum()),
    "before": _quality(r[pc].to_numpy()[cls_rows], REASONS, tr[cls_rows]),
    "refined": _quality(rr[pc].to_numpy()[cls_rows], REASONS, tr[cls_rows]),
}
res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
tseg = w.truth.true_segment(coh["customer_id"], T)
iv = (s["segment_source"] == "interview").to_numpy()
res.update(
    segment_agree_interview=round(float(np.mean(s["segment"].to_numpy()[iv] == tseg[iv])), 4),
    n_interview=int(iv.sum()),
    segment_agree_predicted=round(float(np.mean(s["segment"].to_numpy()[~iv] == tseg[~iv])), 4),
    contact_share=round(float(p["contact"].mean()), 4),
)
print(json.dumps(res, indent=1))
# the playbook's exact value under the world's truth, against the oracle (same catalog/channels)
cfg = load_config(None)
t0 = time.perf_counter()
pb_value = w.truth.policy_value(p, T, cfg)
oracle = w.truth.oracle_policy(coh["customer_id"], T, cfg)
or_value = w.truth.policy_value(oracle, T, cfg)
all_none = p.assign(
    contact=True, offer_type="none", discount_pct=0.0, discount_months=0, channel="email"
)
res.update(
    playbook_value_true=round(pb_value, 2),
    oracle_value_true=round(or_value, 2),
    plain_email_all_value_true=round(w.truth.policy_value(all_none, T, cfg), 2),
    playbook_contacts=int(p["contact"].sum()),
    oracle_contacts=int(oracle["contact"].sum()),
    value_s=round(time.perf_counter() - t0, 1),
)
print(
    json.dumps(
        {
            k: res[k]
            for k in (
                "playbook_value_true",
                "oracle_value_true",
                "plain_email_all_value_true",
                "playbook_contacts",
                "oracle_contacts",
            )
        },
        indent=1,
    )
)
out = Path(__file__).resolve().parent / "results"
out.mkdir(exist_ok=True)
(out / "bench_cohort.json").write_text(json.dumps(res, indent=1))
print(f"wrote {out / 'bench_cohort.json'}")
