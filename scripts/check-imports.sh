#!/usr/bin/env bash
# Fails when domain/ (tests aside) imports anything but the standard library,
# ports/ and golang.org/x/sync: dependencies point inward.
set -euo pipefail
cd "$(dirname "$0")/.."

bad=$(go list -f '{{join .Imports "\n"}}' ./domain/ \
  | grep -vE '^(github\.com/wa2genesys/connectorcache/ports|golang\.org/x/sync/.*)$' \
  | grep '\.' || true)
if [ -n "$bad" ]; then
  echo "domain/ imports infrastructure:" >&2
  echo "$bad" >&2
  exit 1
fi
