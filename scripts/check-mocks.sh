#!/usr/bin/env bash
# Fails when the committed mocks differ from what mockgen generates now.
set -euo pipefail
cd "$(dirname "$0")/.."

before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
cp -r internal/mocks/. "$before/"
go generate ./ports/...
if ! diff -r "$before" internal/mocks >/dev/null; then
  diff -r "$before" internal/mocks >&2 || true
  cp -r "$before/." internal/mocks/
  echo "internal/mocks is out of date: run 'make mocks' and commit the result" >&2
  exit 1
fi
