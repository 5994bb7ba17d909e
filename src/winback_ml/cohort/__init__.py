"""Cohort stage: lapse episodes, the lapsed cohort, reasons, segments and the playbook.

Who left, why, and how winnable they are. Every function here takes the
contract tables (a :class:`~winback_ml.data.loader.ContractData` or a dict of
DataFrames) and an ``as_of``; nothing dated after ``as_of`` is read. All
frame timestamps are tz-naive UTC.

Modules
-------
episodes   ``build_lapse_episodes``: one row per lapse, with its return
lapsed     ``build_lapsed_cohort``: who is lapsed now, with context
reasons    ``ReasonClassifier``, ``reason_features``, ``infer_reasons``
segments   ``assign_segments``: hot / warm / lost / misclassified
playbook   ``DEFAULT_PLAYBOOK``, ``playbook_offer``, ``playbook_policy``
"""

from __future__ import annotations

from winback_ml.cohort.episodes import EPISODE_COLUMNS, build_lapse_episodes

__all__ = ["EPISODE_COLUMNS", "build_lapse_episodes"]
