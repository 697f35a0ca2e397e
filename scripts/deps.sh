#!/usr/bin/env bash
# Install every Debian package the build and the tests need.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
  # build
  gcc make pkg-config libc6-dev
  libssl-dev liblmdb-dev libev-dev check
  libpcre2-dev        # permission patterns, matched as RabbitMQ (PCRE) does
  libjansson-dev      # JSON: the management API, coney-ctl
  libmicrohttpd-dev   # the management API's HTTP server
  librabbitmq-dev     # coney-perf, the load tool (shares no code with the broker)
  libmosquitto-dev    # coney-mqtt-perf, its MQTT sibling
  # tests: real AMQP clients against a real broker
  python3 python3-pytest python3-pika amqp-tools
  python3-yaml        # the packaging test reads docker-compose.yml
  lmdb-utils          # mdb_copy: hot backups of the store (docs/operations.md)
  python3-kombu       # Celery's client library, for the Celery-style tests
  python3-paho-mqtt mosquitto-clients   # real MQTT clients (the mosquitto broker only for `make bench`)
  iproute2            # a network namespace as a second host (loopback_users)
  openssl             # the TLS tests make their CA and certificates with it
  chromium            # the web UI's browser test (tests/browser, playwright-core)
  # fuzzing (make fuzz, make fuzz-smoke): clang -fsanitize=fuzzer links
  # libclang_rt.fuzzer from libclang-rt-dev (libclang-rt-14-dev on Debian 12);
  # the standalone libfuzzer-14-dev is not needed
  clang libclang-rt-dev
  # sanitizer runtime comes with gcc (libasan, libubsan)
)

# node and npm run the browser test; a node from elsewhere (NodeSource,
# which bundles npm) is kept rather than replaced by Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

# `deps.sh bench` adds what `make bench` compares against.
if [ "${1:-}" = bench ]; then
  PACKAGES=(rabbitmq-server mosquitto)
fi

# `deps.sh valgrind` adds memcheck, for `make valgrind` only.
if [ "${1:-}" = valgrind ]; then
  PACKAGES=(valgrind)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
