#!/bin/sh
# `make bench`: Coney against RabbitMQ (AMQP) and Mosquitto (MQTT), side by
# side, same scenarios, medians.
# The logic is in scripts/bench.py; docs/bench.md says how to read it.
#   BUILD=build            where coney, coney-perf and coney-mqtt-perf are
#   BENCH_ROUNDS=3         rounds per scenario and broker (median reported)
#   BENCH_SECONDS=10       seconds per round
#   BENCH_QUICK=1          1 round of 3 s, no memory scenario
#   BENCH_ONLY=a,b         only these scenarios (names: BENCH_ONLY=list)
#   BENCH_BROKERS=coney    skip RabbitMQ and Mosquitto (coney,rabbitmq,mosquitto)
#   BENCH_PERF=path        another AMQP load tool (default $BUILD/coney-perf)
#   BENCH_MQTT_PERF=path   another MQTT load tool (default $BUILD/coney-mqtt-perf)
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/bench.py "$@"
