#!/bin/sh
# `make soak` and its relatives; docs/operations.md, "Soak". SOAK_KIND:
#   mixed     (the default) tests/soak/soak.py: one broker, CONEY_SOAK_SECONDS
#             (default 3600) of mixed AMQP and MQTT traffic with churn, then
#             message accounting (lost 0, dup 0) and fds and RSS back at their
#             baseline; CONEY_SOAK_SEED replays its choices
#   crash     tests/integration/test_13_crash.py with CONEY_SOAK=1: kill -9
#             cycles with bigger volumes and bodies for CONEY_SOAK_SECONDS
#             (default 300); CONEY_CRASH_SEED replays a schedule; extra
#             arguments go to pytest (e.g. -k cycles, -x)
#   valgrind  the mixed soak for CONEY_SOAK_SECONDS (default 30) at a lower
#             rate, the broker under valgrind memcheck: any error or
#             definitely lost block fails (`make valgrind`, a build without
#             sanitizers)
set -eu
cd "$(dirname "$0")/.."
CONEY_BIN=${CONEY_BIN:-$(pwd)/build/coney}
if [ ! -x "$CONEY_BIN" ]; then
    echo "soak: $CONEY_BIN is missing; run make build/coney first (or set CONEY_BIN)" >&2
    exit 2
fi
export CONEY_BIN
case "${SOAK_KIND:-mixed}" in
mixed)
    export CONEY_SOAK_SECONDS="${CONEY_SOAK_SECONDS:-3600}"
    exec /usr/bin/python3 tests/soak/soak.py
    ;;
crash)
    export CONEY_SOAK=1
    export CONEY_SOAK_SECONDS="${CONEY_SOAK_SECONDS:-300}"
    echo "soak: $CONEY_BIN, ${CONEY_SOAK_SECONDS}s of kill -9 cycles${CONEY_CRASH_SEED:+, seed $CONEY_CRASH_SEED}"
    exec /usr/bin/python3 -m pytest -q -s tests/integration/test_13_crash.py "$@"
    ;;
valgrind)
    command -v valgrind >/dev/null || { echo "soak: valgrind is missing (scripts/deps.sh valgrind)" >&2; exit 2; }
    export CONEY_SOAK_SECONDS="${CONEY_SOAK_SECONDS:-30}"
    # memcheck runs the broker some 30 times slower on one core
    export CONEY_SOAK_RATE="${CONEY_SOAK_RATE:-300}"
    export CONEY_SOAK_WRAPPER="valgrind --tool=memcheck --leak-check=full \
--errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=99 \
--num-callers=30"
    exec /usr/bin/python3 tests/soak/soak.py
    ;;
*)
    echo "soak: SOAK_KIND is mixed, crash or valgrind, not '$SOAK_KIND'" >&2
    exit 2
    ;;
esac
