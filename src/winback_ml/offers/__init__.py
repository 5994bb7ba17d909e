"""Offers stage: choose, per lapsed customer, the offer and channel worth their cost.

* :mod:`winback_ml.offers.optimizer`: ``optimize_offers`` -> the contract's ``targets``.
"""

from winback_ml.offers.optimizer import TARGET_COLUMNS, optimize_offers, policy_totals

__all__ = ["TARGET_COLUMNS", "optimize_offers", "policy_totals"]
