#!/usr/bin/env bash
# Installs what the tests need from Debian's packages when it is missing:
# redis-server (the tests start their own servers from it; nothing is left
# running) and a C compiler (go test -race needs cgo).
set -euo pipefail

missing=()
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  missing+=(redis-server)
fi
if ! command -v gcc >/dev/null 2>&1; then
  missing+=(gcc libc6-dev)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
redis-server --version >&2
