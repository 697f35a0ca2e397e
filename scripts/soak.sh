#!/bin/sh
# The long crash test (`make soak`): tests/integration/test_13_crash.py with
# CONEY_SOAK=1, i.e. kill -9 cycles with bigger volumes and bodies for
# CONEY_SOAK_SECONDS (default 300). The test prints its seed; set
# CONEY_CRASH_SEED to replay a schedule. Extra arguments go to pytest
# (e.g. -k cycles, -x).
set -eu
cd "$(dirname "$0")/.."
CONEY_BIN=${CONEY_BIN:-$(pwd)/build/coney}
if [ ! -x "$CONEY_BIN" ]; then
    echo "soak: $CONEY_BIN is missing; run make build/coney first (or set CONEY_BIN)" >&2
    exit 2
fi
export CONEY_BIN
export CONEY_SOAK=1
export CONEY_SOAK_SECONDS="${CONEY_SOAK_SECONDS:-300}"
echo "soak: $CONEY_BIN, ${CONEY_SOAK_SECONDS}s of kill -9 cycles${CONEY_CRASH_SEED:+, seed $CONEY_CRASH_SEED}"
exec /usr/bin/python3 -m pytest -q -s tests/integration/test_13_crash.py "$@"
