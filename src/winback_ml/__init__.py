"""winback_ml: win back cancelled subscription customers."""

__version__ = "0.1.0"
__all__ = ["__version__"]
