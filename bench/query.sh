#!/usr/bin/env bash
# The list engine against Feathers' memory adapter (Node) on the same data,
# 10,000 and 100,000 patients, in one run. Results: bench/results/query.json.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/feathers && npm ci --no-audit --no-fund --loglevel=error)
cargo bench -q -p practice-hub --bench query_vs_feathers
