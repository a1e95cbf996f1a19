#!/usr/bin/env bash
# Installs the Debian packages shardlab needs that are not installed yet. Idempotent: runs
# `apt-get update` at most once, and only when something is missing. Works as root or via sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcmocka-dev libyaml-dev libopenblas-dev
  libopenmpi-dev openmpi-bin
  libbenchmark-dev gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "ci/deps.sh: missing packages: ${missing[*]}" >&2
  echo "ci/deps.sh: not root and no sudo; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "ci/deps.sh: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
