#!/bin/sh
# Builds coney and coney-ctl and installs them, with the example config,
# the systemd unit and the docs, under DESTDIR (first argument) with
# PREFIX=/usr. The Dockerfile's build stage runs exactly this; so does
# tests/integration/test_41_packaging.py, outside Docker, on a copy of
# the repository. Needs the build packages of scripts/deps.sh.
set -eu
dest=${1:?usage: packaging/build.sh DESTDIR}
cd "$(dirname "$0")/.."
make -s -j"$(nproc)" build/coney build/coney-ctl
make -s install DESTDIR="$dest" PREFIX=/usr
