#!/usr/bin/env bash
# Webhooks from write to verified delivery, 10,000 events, in one process
# (API, outbox, fan-out, durable queue, delivery, and a local receiver).
# Results: bench/results/webhooks.json.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p practice-hub --bench webhook_delivery
