#!/usr/bin/env bash
# Installs the Debian packages shardlab needs that are not installed yet. Idempotent: runs
# `apt-get update` at most once, and only when something is missing. Works as root or via sudo.
#
#   ci/deps.sh               what the build and `make check` need
#   ci/deps.sh --with-torch  also Debian's PyTorch (python3-torch, in /usr/bin/python3), for the
#                            optional PyTorch peer rows of `shardlab bench` and the peer check
#                            scripts of bench/peer/; never needed by `make check`
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcmocka-dev libyaml-dev libopenblas-dev
  libopenmpi-dev openmpi-bin
  libbenchmark-dev gnuplot-nox
)
for arg in "$@"; do
  case "$arg" in
    --with-torch) packages+=(python3-torch) ;;
    *)
      echo "ci/deps.sh: unknown argument '$arg'; expected --with-torch or nothing" >&2
      exit 2
      ;;
  esac
done

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
