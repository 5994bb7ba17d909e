"""Cohort stage: lapse episodes, the lapsed cohort, reasons, segments and the playbook.

Who left, why, and how winnable they are. Every function here takes the
contract tables (a :class:`~winback_ml.data.loader.ContractData` or a dict of
DataFrames) and an ``as_of``; nothing dated after ``as_of`` is read. All
frame timestamps are tz-naive UTC. Free text (cancel comments, interview
answers) is read in memory only and never returned.

Modules
-------
episodes   ``build_lapse_episodes``: one row per lapse, with its return
lapsed     ``build_lapsed_cohort``: who is lapsed now, with context and contact window
reasons    ``ReasonClassifier``, ``reason_features``, ``infer_reasons``, ``evaluate_reasons``;
           evidence after the lapse: ``ReasonReturnCurves``, ``InterviewReasonModel``,
           ``refine_reasons``
segments   ``assign_segments``: hot / warm / lost / misclassified
playbook   ``DEFAULT_PLAYBOOK``, ``playbook_offer``, ``playbook_policy``
assemble   ``build_winback_cohort``: all of the above in one call

See ``docs/cohort.md`` for the rules and the measured quality.
"""

from __future__ import annotations

from winback_ml.cohort.assemble import build_winback_cohort
from winback_ml.cohort.episodes import EPISODE_COLUMNS, build_lapse_episodes
from winback_ml.cohort.lapsed import CONTACT_WINDOWS, build_lapsed_cohort, contact_window
from winback_ml.cohort.playbook import (
    DEFAULT_PLAYBOOK,
    Playbook,
    PlaybookEntry,
    load_playbook,
    playbook_offer,
    playbook_policy,
)
from winback_ml.cohort.reasons import (
    LABEL_NOISE,
    REASON_EVIDENCE,
    REASONS,
    InterviewReasonModel,
    ReasonClassifier,
    ReasonEvaluation,
    ReasonReturnCurves,
    evaluate_reasons,
    infer_reasons,
    reason_features,
    reason_training_set,
    refine_reasons,
)
from winback_ml.cohort.segments import (
    MIN_TRUSTED_QUALITY,
    assign_segments,
    interview_segment,
    reason_return_rates,
)

__all__ = [
    "EPISODE_COLUMNS",
    "build_lapse_episodes",
    "CONTACT_WINDOWS",
    "build_lapsed_cohort",
    "contact_window",
    "REASONS",
    "LABEL_NOISE",
    "REASON_EVIDENCE",
    "ReasonClassifier",
    "ReasonEvaluation",
    "ReasonReturnCurves",
    "InterviewReasonModel",
    "refine_reasons",
    "evaluate_reasons",
    "infer_reasons",
    "reason_features",
    "reason_training_set",
    "MIN_TRUSTED_QUALITY",
    "assign_segments",
    "interview_segment",
    "reason_return_rates",
    "DEFAULT_PLAYBOOK",
    "Playbook",
    "PlaybookEntry",
    "load_playbook",
    "playbook_offer",
    "playbook_policy",
    "build_winback_cohort",
]
