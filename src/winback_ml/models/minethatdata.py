"""The Hillstrom (MineThatData) e-mail campaign: an adapter to the campaign-evaluation shape.

64,000 customers who bought in the last 12 months were randomly split into
three arms of about a third each: "Mens E-Mail", "Womens E-Mail" and
"No E-Mail" (the control). Outcomes over the following two weeks: ``visit``
(0/1), ``conversion`` (0/1) and ``spend`` (dollars).

:func:`load_hillstrom` turns the file into the *assignment frame* that
:func:`winback_ml.models.uplift_campaigns.evaluate_arms` takes, so the same
evaluation code runs on the synthetic campaigns and on this real test. The
file is never shipped with the package: pass its path (the project keeps it
in ``../shared/data/hillstrom.csv``).

Known arm effects (on the full file): visit rate Mens 18.28 %, Womens
15.14 %, No E-Mail 10.62 %; conversion 1.25 % / 0.88 % / 0.57 %; spend per
customer $1.42 / $1.08 / $0.65.

Columns of the frame: ``campaign_id`` ("hillstrom"), ``customer_id`` (row
number as a string), ``arm_id`` (the ``segment``), ``is_control``,
``offer_type`` ("none": a plain message), ``channel`` ("email"),
``visit``, ``conversion``, ``spend``, ``revenue`` (= spend),
``contact_cost`` (NaN: the dataset does not give it), and the customer
features ``recency``, ``history_segment``, ``history``, ``mens``,
``womens``, ``zip_code``, ``newbie``, ``purchase_channel`` (the file's
``channel``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from winback_ml.exceptions import DataContractError

__all__ = ["HILLSTROM_ARMS", "HILLSTROM_CONTROL", "load_hillstrom", "hillstrom_features"]

HILLSTROM_ARMS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
HILLSTROM_CONTROL = "No E-Mail"
_COLUMNS = (
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
    "segment",
    "visit",
    "conversion",
    "spend",
)


def load_hillstrom(path: str | Path) -> pd.DataFrame:
    """Read the Hillstrom CSV into an assignment frame (see the module docstring).

    Raises
    ------
    DataContractError
        The file is missing, lacks a column, or has an unknown arm.
    """
    p = Path(path)
    if not p.exists():
        raise DataContractError(
            f"The Hillstrom file {str(p)!r} does not exist. Fix: download the MineThatData "
            "e-mail analytics challenge CSV and pass its path."
        )
    raw = pd.read_csv(p)
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise DataContractError(
            f"The Hillstrom file lacks columns {missing}. Expected {list(_COLUMNS)}."
        )
    bad = sorted(set(raw["segment"].unique()) - set(HILLSTROM_ARMS))
    if bad:
        raise DataContractError(f"Unknown Hillstrom arms {bad}. Expected {list(HILLSTROM_ARMS)}.")
    df = pd.DataFrame(
        {
            "campaign_id": "hillstrom",
            "customer_id": np.arange(len(raw)).astype(str),
            "arm_id": raw["segment"].astype(str),
            "is_control": raw["segment"].eq(HILLSTROM_CONTROL),
            "offer_type": "none",
            "discount_pct": 0.0,
            "discount_months": 0,
            "channel": "email",
            "visit": raw["visit"].astype(int),
            "conversion": raw["conversion"].astype(int),
            "spend": raw["spend"].astype(float),
            "revenue": raw["spend"].astype(float),
            "contact_cost": np.nan,
            "recency": raw["recency"].astype(int),
            "history_segment": raw["history_segment"].astype(str),
            "history": raw["history"].astype(float),
            "mens": raw["mens"].astype(int),
            "womens": raw["womens"].astype(int),
            "zip_code": raw["zip_code"].astype(str),
            "newbie": raw["newbie"].astype(int),
            "purchase_channel": raw["channel"].astype(str),
        }
    )
    return df


def hillstrom_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric model features of a Hillstrom frame (one-hot zip code and purchase channel)."""
    X = frame[["recency", "history", "mens", "womens", "newbie"]].astype(float).copy()
    for col in ("zip_code", "purchase_channel"):
        for v in sorted(frame[col].unique()):
            X[f"{col}={v}"] = frame[col].eq(v).astype(float)
    return X
