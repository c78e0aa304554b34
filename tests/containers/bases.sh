#!/bin/bash
# Base images the committed Dockerfiles name, made here ONLY when `docker pull` cannot get them (a machine
# without Docker Hub, like these test machines). Each stand-in is tagged with the real name, so the project's
# Dockerfiles build unchanged. Made from Debian bookworm (debootstrap from Debian's archive, then
# `docker import`), with this machine's CA certificates, so that pip, npm, Go and Ivy reach their registries
# through a TLS-intercepting egress proxy. Nothing of that goes into the project's own Dockerfiles.
#
#   tests/containers/bases.sh             the bases of deploy/*.Dockerfile
#   tests/containers/bases.sh services    the third-party services (Kafka, MongoDB, Prometheus): prints
#                                         `standins` when one cannot be pulled and stand-ins were built (then
#                                         tests/containers/standins.yml replaces them), else `real`
# (root, for debootstrap, only when a base must be made; run by tests/containers/run.py)
#
# What a stand-in leaves untested is written beside it (tests/containers/standins/*.Dockerfile).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${LAB_CONTAINERS_WORK:-$root/.lab/containers-test}"
debian=lab-standin/debian:bookworm

from_of() { sed -n 's/^FROM \([^ ]*\).*/\1/p' "$@"; }

have() { docker image inspect "$1" >/dev/null 2>&1; }
pulled() { have "$1" || docker pull -q "$1" >/dev/null 2>&1; }

debian_base() {
  have "$debian" && return
  command -v debootstrap >/dev/null || { echo "debootstrap is needed to make base images (apt-get install debootstrap)" >&2; exit 1; }
  echo "  · making $debian with debootstrap (once)" >&2
  rm -rf "$work/rootfs" && mkdir -p "$work"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$debian" >/dev/null
  rm -rf "$work/rootfs"
}

# A build context: the stand-in's Dockerfile, this machine's CA certificates, and what else it copies in.
context() {
  local ctx="$work/ctx-$1"
  rm -rf "$ctx" && mkdir -p "$ctx/certs"
  cp "$here/standins/$1.Dockerfile" "$ctx/Dockerfile"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
  echo "$ctx"
}

build() {  # build NAME TAG [extra docker build args]
  local name="$1" tag="$2"; shift 2
  echo "  · building stand-in $tag (tests/containers/standins/$name.Dockerfile)" >&2
  docker build -q -t "$tag" "$@" "$(context "$name")" >/dev/null
}

tool() {  # the binary or jar folder embedded set-up built into .lab/tools
  local found; found="$(ls -d "${LAB_TOOLS_DIR:-$root/.lab/tools}"/$1 2>/dev/null | head -1)"
  [ -n "$found" ] || { echo "$1 is not in .lab/tools: run \`lab setup --for-tests\` first" >&2; exit 1; }
  echo "$found"
}

services() {
  local kafka mongo prom
  kafka="$(sed -n 's/^    image: \(apache\/kafka:.*\)/\1/p' "$root/docker-compose.yml")"
  mongo="$(sed -n 's/^    image: \(mongo:.*\)/\1/p' "$root/docker-compose.yml")"
  prom="$(sed -n 's/^    image: \(prom\/prometheus:.*\)/\1/p' "$root/docker-compose.yml")"
  if pulled "$kafka" && pulled "$mongo" && pulled "$prom"; then echo real; return; fi
  debian_base
  local ctx
  ctx="$(context kafka)"; cp "$here/standins/kafka-start.sh" "$ctx/"; cp -r "$(tool "kafka-*/libs")" "$ctx/libs"
  echo "  · building stand-in lab-standin/kafka for $kafka" >&2
  docker build -q -t lab-standin/kafka "$ctx" >/dev/null
  ctx="$(context ferretdb)"; cp "$(tool "bin/ferretdb-*")" "$ctx/ferretdb"
  echo "  · building stand-in lab-standin/ferretdb for $mongo" >&2
  docker build -q -t lab-standin/ferretdb "$ctx" >/dev/null
  ctx="$(context prometheus)"; cp "$(tool "bin/prometheus-*")" "$ctx/prometheus"
  echo "  · building stand-in lab-standin/prometheus for $prom" >&2
  docker build -q -t lab-standin/prometheus "$ctx" >/dev/null
  echo standins
}

if [ "${1:-}" = services ]; then services; exit; fi

# The bases of the project's Dockerfiles, by the names they use.
for image in $(from_of "$root/deploy/lab.Dockerfile" "$root/deploy/seaweedfs.Dockerfile" | sort -u); do
  pulled "$image" && continue
  debian_base
  case "$image" in
    python:*) build python "$image" ;;
    node:*) build node "$image" ;;
    alpine:*) build alpine "$image" ;;
    golang:*)
      ctx="$(context golang)"; cp -a "$(go env GOROOT)" "$ctx/go"
      echo "  · building stand-in $image (this machine's $(go version | cut -d' ' -f3))" >&2
      docker build -q -t "$image" "$ctx" >/dev/null ;;
    *) echo "no stand-in for base image $image, and it cannot be pulled" >&2; exit 1 ;;
  esac
done
