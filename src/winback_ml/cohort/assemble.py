"""One call for the whole cohort stage: who is lapsed, why, how winnable, and the playbook.

:func:`build_winback_cohort` chains :func:`~winback_ml.cohort.lapsed.build_lapsed_cohort`,
:func:`~winback_ml.cohort.reasons.infer_reasons`,
:func:`~winback_ml.cohort.segments.assign_segments` and
:func:`~winback_ml.cohort.playbook.playbook_policy` on one ``as_of``, building
the lapse episodes and reason features once.

Invariants: one row per lapsed customer, sorted by ``customer_id``; no free
text and no e-mail/phone (safe to log as a table of ids and numbers); all
timestamps tz-naive UTC; nothing after ``as_of`` is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from winback_ml.cohort._inputs import as_contract_data
from winback_ml.cohort.episodes import build_lapse_episodes
from winback_ml.cohort.lapsed import build_lapsed_cohort
from winback_ml.cohort.playbook import playbook_policy
from winback_ml.cohort.reasons import ReasonClassifier, infer_reasons, reason_features
from winback_ml.cohort.segments import assign_segments
from winback_ml.config import BusinessConfig, load_config
from winback_ml.data.loader import ContractData

__all__ = ["build_winback_cohort"]


def build_winback_cohort(
    data: ContractData | Mapping[str, pd.DataFrame],
    as_of: Any = None,
    config: BusinessConfig | Mapping[str, Any] | str | None = None,
    p_return: pd.Series | np.ndarray | None = None,
    classifier: ReasonClassifier | None = None,
) -> pd.DataFrame:
    """The lapsed cohort with reasons, segments and the playbook's offer, as of one date.

    Parameters
    ----------
    data : ContractData or dict of contract DataFrames
    as_of : date or timestamp, optional
    config : business config (``lapsed_window_days``, catalog, channels, ``playbook:``)
    p_return : optional return probabilities for the predicted segment rule
        (see :func:`~winback_ml.cohort.segments.assign_segments`).
    classifier : optional fitted or unfitted :class:`~winback_ml.cohort.reasons.ReasonClassifier`.

    Returns
    -------
    DataFrame
        The cohort columns, then ``cancel_reason``, ``reason_source``,
        ``reason_proba``, ``reason_rule``, ``p_<reason>``, the segment columns
        and the playbook's ``contact``, ``offer_type``, ``discount_pct``,
        ``discount_months``, ``channel``, ``playbook_rule``. ``attrs``:
        ``as_of``, ``window_days``, ``missing_signals``, ``n_train``,
        ``classifier``.

    Examples
    --------
    >>> from winback_ml.data.synthetic import make_world  # doctest: +SKIP
    >>> w = make_world(2000, seed=3)  # doctest: +SKIP
    >>> view = build_winback_cohort(w.tables, as_of=w.end)  # doctest: +SKIP
    >>> view.groupby("segment")["contact"].mean()  # doctest: +SKIP
    """
    cfg = config if isinstance(config, BusinessConfig) else load_config(config)
    cd, T = as_contract_data(data, as_of)
    eps = build_lapse_episodes(cd, T)
    cohort = build_lapsed_cohort(cd, T, window_days=cfg.lapsed_window_days, episodes=eps)
    feats = reason_features(cd, eps, T)
    reasons = infer_reasons(cd, cohort, T, classifier=classifier, features=feats)
    segs = assign_segments(
        cd, cohort, T, p_return=p_return, reasons=reasons, config=cfg, episodes=eps
    )
    out = cohort.merge(reasons.drop(columns=["lapse_id"]), on="customer_id", how="left")
    out = out.merge(segs, on="customer_id", how="left")
    policy = playbook_policy(out, cfg)
    for c in ("contact", "offer_type", "discount_pct", "discount_months", "channel"):
        out[c] = policy[c].to_numpy()
    out["playbook_rule"] = policy["playbook_rule"].to_numpy()
    missing = list(dict.fromkeys(cohort.attrs["missing_signals"]))
    out.attrs.update(
        as_of=T,
        window_days=cfg.lapsed_window_days,
        missing_signals=missing,
        n_train=reasons.attrs.get("n_train"),
        classifier=reasons.attrs.get("classifier"),
    )
    return out
