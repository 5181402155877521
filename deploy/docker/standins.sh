#!/usr/bin/env bash
# Base images for building and testing veneer's images where no registry can
# be reached (offline build machines, CI here): each is pulled if it can be,
# else built locally. A stand-in carries the same tag as the image it stands
# in for, so the real Dockerfiles and manifests build and run unchanged.
#   debian:bookworm-slim  debootstrap of Debian bookworm (minbase)
#   python:3.12-slim      that, plus Debian's python3 as `python`
#   veneer-test-client    that, plus curl (the client of the tests)
set -euo pipefail

have() { docker image inspect "$1" >/dev/null 2>&1; }
pull() { timeout 60 docker pull -q "$1" >/dev/null 2>&1; }

if ! have debian:bookworm-slim && ! pull debian:bookworm-slim; then
  echo "standins: debian:bookworm-slim from debootstrap"
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  # As the real slim image: no package cache, docs, manuals or locales.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
fi

if ! have python:3.12-slim && ! pull python:3.12-slim; then
  echo "standins: python:3.12-slim from Debian's python3"
  docker build -q -t python:3.12-slim - >/dev/null <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
 && ln -s /usr/bin/python3 /usr/local/bin/python && rm -rf /var/lib/apt/lists/*
DOCKERFILE
fi

if ! have veneer-test-client; then
  docker build -q -t veneer-test-client - >/dev/null <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/*
DOCKERFILE
fi
