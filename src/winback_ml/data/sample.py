"""The embedded sample world: a fixed-seed synthetic business in the local store.

The demo, the README's main job and the notebooks' default parameters all
read this store, so a fresh checkout runs end to end with no data of its own.
"""

from __future__ import annotations

import pandas as pd

from winback_ml.data.loader import ContractData
from winback_ml.data.store import Store

__all__ = ["SAMPLE_CUSTOMERS", "SAMPLE_SEED", "ensure_sample_store", "summarize"]

SAMPLE_CUSTOMERS = 5000
SAMPLE_SEED = 42


def ensure_sample_store(
    url: str | None = None,
    *,
    customers: int = SAMPLE_CUSTOMERS,
    seed: int = SAMPLE_SEED,
    rebuild: bool = False,
) -> tuple[Store, bool]:
    """Build the sample world into the store unless it already holds data.

    Returns the store and whether it was (re)built.
    """
    from winback_ml.data.synthetic import make_world

    store = Store(url)
    if store.exists() and not rebuild:
        return store, False
    world = make_world(customers, seed)
    store.write(world.tables)
    return store, True


def summarize(data: ContractData) -> str:
    """A short, human summary of a business's data (no PII)."""
    s = data.subscriptions
    e = data.events
    lines = ["Tables: " + ", ".join(f"{k}={v:,}" for k, v in data.summary().items())]
    if data.missing:
        lines.append("Optional tables absent: " + ", ".join(data.missing))
    lines.append(f"Events from {e['occurred_at'].min()} to {e['occurred_at'].max()}")
    lines.append(
        "Subscriptions by status: "
        + ", ".join(f"{k}={v:,}" for k, v in s["status"].value_counts().items())
    )
    end = e["occurred_at"].max()
    recent = s[s["ended_at"].notna() & (s["ended_at"] > end - pd.Timedelta(days=90))]
    lines.append(f"Subscriptions ended in the last 90 days: {len(recent):,}")
    if len(recent):
        mix = recent["cancel_reason"].fillna("unknown").value_counts(normalize=True)
        lines.append("  stated reasons: " + ", ".join(f"{k} {v:.0%}" for k, v in mix.items()))
    active = s[s["status"].isin(["active", "trialing", "past_due", "paused"])]
    lines.append(f"Live subscriptions: {len(active):,}, MRR {active['mrr'].sum():,.0f}")
    return "\n".join(lines)
