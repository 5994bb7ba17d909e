#!/usr/bin/env bash
# The main job: set up (idempotent), then run the weekly win-back pipeline on the
# embedded sample world. Extra arguments go to `winback pipeline run`
# (e.g. -p as_of=2025-12-31).
set -euo pipefail
source "$(dirname "$0")/_env.sh"
exec winback pipeline run pipelines/weekly_winback.yaml "$@"
