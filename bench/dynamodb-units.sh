#!/usr/bin/env bash
# DynamoDB capacity units per route, measured: runs the
# `capacity_units_per_route` test (tests/conformance.rs) against DynamoDB
# Local, which reports consumed capacity on every call, over a tenant of 200
# patients. Results: bench/results/dynamodb-units.md.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
# The queue tests in the same binary are not run; the variable is only read by them.
export HUB_TEST_SQS_ENDPOINT="http://127.0.0.1:9"
mkdir -p bench/results
export HUB_UNITS_REPORT="$PWD/bench/results/dynamodb-units.md"
cargo test -q -p hub-tests --test conformance capacity_units_per_route -- --nocapture >/dev/null
cat "$HUB_UNITS_REPORT"
