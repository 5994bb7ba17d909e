# Sourced by scripts/main.sh and scripts/test.sh: make sure .venv exists and
# matches pyproject.toml. Idempotent: a second run reuses the environment and
# only reinstalls when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "winback_ml needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
VENV="${WINBACK_VENV:-$ROOT/.venv}"
STAMP="$VENV/.winback-installed"
WANT="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $PY" >&2
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[setup] installing winback_ml and its dependencies into $VENV (a few minutes on a fresh machine)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e ".[test]" >&2
  echo "$WANT" > "$STAMP"
else
  echo "[setup] $VENV is up to date" >&2
fi
export PATH="$VENV/bin:$PATH"
export PYTHONUNBUFFERED=1
