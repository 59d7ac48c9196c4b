#!/bin/sh
# Signs testdata/whatsapp/text-message.json with the development app secret
# and POSTs it twice to a connector started with `make run`: the first is
# delivered (one JSON line on the connector's stdout), the second skipped as
# a duplicate ("duplicate skipped" in its logs). Honours HTTP_ADDR, and
# CONNECTOR_CONFIG for another config file. Extra arguments go to
# `connector sample` (-file, -url, -tenant, -n).
set -eu
cd "$(dirname "$0")/.."
exec "${GO:-go}" run ./cmd/connector sample -config "${CONNECTOR_CONFIG:-cmd/connector/dev.yaml}" "$@"
