# Coney in a container: built on Debian bookworm, run on bookworm-slim as
# the unprivileged user `coney`, state in the volume /var/lib/coney.
#   docker build -t coney .
#   docker run -p 5672:5672 -p 1883:1883 -p 15672:15672 -v coney-data:/var/lib/coney coney
# docker-compose.yml adds definitions and an example producer and consumer.
# tests/integration/test_41_packaging.py runs the build and start commands
# of this file outside Docker.

FROM debian:bookworm AS build
# the build packages of scripts/deps.sh
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc make pkg-config libc6-dev libssl-dev liblmdb-dev libev-dev \
      libpcre2-dev libjansson-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN packaging/build.sh /out

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libssl3 liblmdb0 libev4 libpcre2-8-0 libjansson4 libmicrohttpd12 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /var/lib/coney --shell /usr/sbin/nologin coney \
 && mkdir -p /var/lib/coney \
 && chown coney:coney /var/lib/coney \
 && chmod 0750 /var/lib/coney
COPY --from=build /out/ /
COPY packaging/docker/coney.conf /etc/coney/coney.conf
COPY packaging/docker/definitions.json /etc/coney/definitions.json
USER coney
WORKDIR /var/lib/coney
VOLUME /var/lib/coney
# AMQP, AMQP over TLS, MQTT, MQTT over TLS, management API, Prometheus
EXPOSE 5672 5671 1883 8883 15672 15692
# RabbitMQ's health checks over coney.sock (the local administrator needs
# no password): exit 0 when every check passes
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["coney-ctl", "--data-dir", "/var/lib/coney", "health"]
CMD ["coney", "--config", "/etc/coney/coney.conf", "--data-dir", "/var/lib/coney"]
