"""``python -m winback_ml`` is the ``winback`` command."""

from winback_ml.cli import main

if __name__ == "__main__":
    main()
