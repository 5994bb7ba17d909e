"""Diagnostic: how much of the churn truth our features carry, and how much the model recovers.

For each synthetic world (``make_world(n, seed)``, ``as_of = 2025-09-30``, as in
``tests/models/test_return_recovery.py``) and each *feature variant* (the full
feature set, or with a group of features left out):

* **model**: :class:`~winback_ml.models.churn_model.DiscreteHazardChurnModel`
  (default parameters; the variants ``before`` and ``all_no_renewal`` switch its
  per-interval renewal features off) fitted on the churn training frame (12 snapshots 30 days
  apart) and scored on the customers active at ``as_of``; compared with
  ``WorldTruth.p_churn(., as_of, 90)`` by
  :func:`~winback_ml.models.evaluation.recovery_metrics` (AUC against outcomes
  drawn from the truth, 20 draws; MAE; decile calibration).
* **ceiling**: a gradient-boosted regression fitted on the *true* probabilities
  themselves from the same features (5-fold, out-of-fold predictions): the AUC a
  model could reach if it learnt the truth perfectly from these features. This
  reads the truth, so it is a diagnostic only, never part of the product.

The variants share one feature build per world (feature subsets pass through
``feature_cols``), so the levers are measured on identical data; the ceiling
depends on the feature columns only (the renewal features are part of the
model, not of the frame: the regression sees ``days_to_renewal`` either way).

Usage::

    python benchmarks/diag_churn.py                       # seeds 7 11 13, every variant
    python benchmarks/diag_churn.py --seeds 7 --variants all before renewal
    python benchmarks/diag_churn.py --no-ceiling

Writes ``benchmarks/results/diag_churn.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from winback_ml.features.point_in_time import ENGAGEMENT_FEATURES, PAYMENT_PROPENSITY_FEATURES

__all__ = ["FEATURE_GROUPS", "variants", "ceiling_predictions", "run_world", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "diag_churn.json"
AS_OF = pd.Timestamp("2025-09-30")

#: The churn features added for issue #5 (item 5), by lever. "before" leaves all of them out.
FEATURE_GROUPS: dict[str, list[str]] = {
    "engagement": list(ENGAGEMENT_FEATURES),
    "payment": list(PAYMENT_PROPENSITY_FEATURES),
}


def variants(columns: list[str]) -> dict[str, tuple[list[str], bool]]:
    """Feature variants: name -> (feature columns, renewal features of the hazard model on).

    ``before`` is the model as it was (no new feature, no per-interval renewal
    features); ``renewal`` adds the renewal features only; ``all`` is the model as
    it is now; ``no_<group>`` leaves one group of new features out of ``all``.
    """
    new = {c for g in FEATURE_GROUPS.values() for c in g}
    old = [c for c in columns if c not in new]
    out = {
        "before": (old, False),
        "renewal": (old, True),
        "all": (list(columns), True),
        "all_no_renewal": (list(columns), False),
    }
    for g, cols in FEATURE_GROUPS.items():
        if any(c in columns for c in cols):
            out[f"no_{g}"] = ([c for c in columns if c not in cols], True)
    return out


def _design(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    X = frame[cols].copy()
    cat = [c for c in cols if not pd.api.types.is_numeric_dtype(X[c])]
    X = pd.get_dummies(X, columns=cat, dummy_na=True, dtype=float)
    return X.to_numpy(dtype=float)


def ceiling_predictions(
    frame: pd.DataFrame, cols: list[str], p_true: np.ndarray, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold predictions of a boosted regression fitted on the true probabilities."""
    import xgboost as xgb

    X = _design(frame, cols)
    idx = np.random.default_rng(seed).permutation(len(X))
    out = np.empty(len(X))
    for f in range(folds):
        te = idx[f::folds]
        tr = np.setdiff1d(idx, te)
        m = xgb.XGBRegressor(
            objective="reg:logistic",
            n_estimators=400,
            learning_rate=0.05,
            max_depth=5,
            min_child_weight=5.0,
            subsample=0.8,
            n_jobs=2,
            random_state=0,
        )
        m.fit(X[tr], p_true[tr])
        out[te] = m.predict(X[te])
    return out


def run_world(seed: int, n: int, names: list[str] | None, ceiling: bool) -> list[dict[str, object]]:
    """Every variant on one world; one result row per variant."""
    from winback_ml.data.loader import load_data
    from winback_ml.data.synthetic import make_world
    from winback_ml.features import build_churn_scoring_frame, build_churn_training_frame
    from winback_ml.models.churn_model import DiscreteHazardChurnModel
    from winback_ml.models.evaluation import recovery_metrics

    t0 = time.perf_counter()
    w = make_world(n, seed=seed)
    cd = load_data(w.tables, as_of=AS_OF, validate=False)
    t1 = time.perf_counter()
    train = build_churn_training_frame(cd, AS_OF, n_snapshots=12, spacing_days=30)
    score = build_churn_scoring_frame(cd, AS_OF)
    t2 = time.perf_counter()
    p_true = w.truth.p_churn(score["customer_id"].to_numpy(), AS_OF, 90)
    keep = ~np.isnan(p_true)
    feats = [c for c in score.columns if c not in ("customer_id", "at")]
    print(
        f"seed {seed}: world {t1 - t0:.1f}s, frames {t2 - t1:.1f}s "
        f"({len(train)} training rows, {int(keep.sum())} scored)",
        flush=True,
    )
    rows = []
    ceilings: dict[tuple[str, ...], dict[str, float]] = {}
    for name, (cols, renewal) in variants(feats).items():
        if names and name not in names:
            continue
        t3 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = DiscreteHazardChurnModel(
                feature_cols=cols, renewal_col="days_to_renewal" if renewal else None
            ).fit(train)
        p_hat = model.expected_churn_probability(score, within_days=90)
        r: dict[str, object] = {
            "seed": seed,
            "n": n,
            "variant": name,
            "n_features": len(cols),
            "renewal_features": renewal,
        }
        r.update({k: round(v, 4) for k, v in recovery_metrics(p_true[keep], p_hat[keep]).items()})
        if ceiling:
            key = tuple(cols)
            if key not in ceilings:
                pc = ceiling_predictions(score.loc[keep], cols, p_true[keep])
                ceilings[key] = recovery_metrics(p_true[keep], pc)
            c = ceilings[key]
            r["ceiling_auc"] = round(c["auc"], 4)
            r["ceiling_gap"] = round(c["auc_gap"], 4)
        r["seconds"] = round(time.perf_counter() - t3, 1)
        print(json.dumps(r), flush=True)
        rows.append(r)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[7, 11, 13])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--variants", nargs="+", default=None, help="only these variants")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    rows = []
    for s in args.seeds:
        rows += run_world(s, args.n, args.variants, not args.no_ceiling)
    out = {
        "benchmark": "diag_churn",
        "as_of": str(AS_OF.date()),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
