#!/usr/bin/env bash
# Install (Debian package) and start a PostgreSQL server on 127.0.0.1, then print
# the SQLAlchemy URL of a fresh test database on stdout. Idempotent.
# Usage: export WINBACK_TEST_POSTGRES_URL=$(bash .ci/postgres.sh)
set -euo pipefail
PORT=${WINBACK_PG_PORT:-54329}
PW=winback
log() { echo "[postgres] $*" >&2; }
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  log "installing the Debian postgresql package"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DATA=${WINBACK_PG_DATA:-/tmp/winback-pg-$PORT}
RUN_AS=""
if [ "$(id -u)" = 0 ]; then RUN_AS="runuser -u postgres --"; fi
if [ ! -s "$DATA/PG_VERSION" ]; then
  log "initdb in $DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
  pwfile=$(mktemp); echo "$PW" > "$pwfile"; chmod 644 "$pwfile"
  $RUN_AS "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" -A scram-sha-256 >&2
  rm -f "$pwfile"
fi
if ! $RUN_AS "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "starting on 127.0.0.1:$PORT"
  $RUN_AS "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=/tmp -c fsync=off" start >&2
fi
export PGPASSWORD=$PW
if ! psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='winback_test'" | grep -q 1; then
  psql -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE winback_test" >&2
fi
echo "postgresql+psycopg://postgres:$PW@127.0.0.1:$PORT/winback_test"
