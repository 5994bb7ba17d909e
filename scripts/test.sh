#!/usr/bin/env bash
# The whole test suite: set up (idempotent), lint, unit/integration tests, notebooks under nbval.
# PostgreSQL round trips run when WINBACK_TEST_POSTGRES_URL is set (.ci/run starts a server).
set -euo pipefail
source "$(dirname "$0")/_env.sh"
echo "[test] ruff" >&2
ruff check src tests benchmarks
ruff format --check src tests benchmarks
echo "[test] notebooks under nbval" >&2
python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env notebooks/ -q
echo "[test] pytest" >&2
python -m pytest -p no:cacheprovider tests "$@"
