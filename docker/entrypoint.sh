#!/bin/sh
# Container entrypoint of vecdb (also run by tests/rpc outside Docker).
#
#   (no arguments)      -> vecdb serve with the container defaults below
#   --flag ...          -> vecdb serve --flag ...   (extra serve flags)
#   anything else       -> run it as given          (e.g. `vecdb info`, `sh`)
#
# Defaults come from VECDB_* variables so `docker run -e VECDB_PORT=...` and compose files can change
# them; explicit flags still win. `exec` makes vecdb PID 1's replacement, so `docker stop`'s SIGTERM
# reaches it directly and triggers the graceful shutdown (NOT_SERVING -> drain -> fsync -> close).
set -eu

export VECDB_DATA_DIR="${VECDB_DATA_DIR:-/data}"
# Inside a container the port is only reachable through the published port, so bind all interfaces;
# without VECDB_API_KEYS vecdb logs a warning about serving without keys.
export VECDB_HOST="${VECDB_HOST:-0.0.0.0}"
export VECDB_PORT="${VECDB_PORT:-50051}"
# Unset -> 9090; set to the empty string -> no metrics endpoint.
export VECDB_METRICS_PORT="${VECDB_METRICS_PORT-9090}"
# numba writes its compiled-kernel cache here; it must be writable by the non-root user.
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-${VECDB_DATA_DIR}/.numba-cache}"
mkdir -p "$VECDB_DATA_DIR" "$NUMBA_CACHE_DIR"

if command -v vecdb >/dev/null 2>&1; then
    VECDB="vecdb"
else
    VECDB="python -m vecdb.cli"
fi

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    # shellcheck disable=SC2086  # $VECDB may be two words on purpose
    exec $VECDB serve "$@"
fi
exec "$@"
