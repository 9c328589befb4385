#!/usr/bin/env bash
# Lists at a real clinic's size on DynamoDB: one organization of
# HUB_SCALE_PATIENTS (default 100,000) patients on DynamoDB Local; for each
# daily query (search, phone and email lookups, the directory, counts) the
# items read, read units and p50/p99 latency, beside the embedded store's.
# Runs `dynamodb_lists_at_scale` (tests/conformance.rs, ignored in the test
# run; a debug build, whose dependencies are optimised as in every test
# build). Results: bench/results/dynamodb-scale.md.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
mkdir -p bench/results
export HUB_SCALE_REPORT="$PWD/bench/results/dynamodb-scale.md"
cargo test -q -p hub-tests --test conformance dynamodb_lists_at_scale -- --ignored --nocapture >/dev/null
cat "$HUB_SCALE_REPORT"
