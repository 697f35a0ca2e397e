#!/bin/sh
# `make bench`: Coney and RabbitMQ side by side, same scenarios, medians.
# The logic is in scripts/bench.py; docs/bench.md says how to read it.
#   BUILD=build            where coney and coney-perf are
#   BENCH_ROUNDS=3         rounds per scenario and broker (median reported)
#   BENCH_SECONDS=10       seconds per round
#   BENCH_QUICK=1          1 round of 3 s, no memory scenario
#   BENCH_ONLY=a,b         only these scenarios (names: BENCH_ONLY=list)
#   BENCH_BROKERS=coney    skip RabbitMQ
#   BENCH_PERF=path        another load tool binary (default $BUILD/coney-perf)
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/bench.py "$@"
