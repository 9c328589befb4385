#!/usr/bin/env bash
# DynamoDB capacity units per route, measured: DynamoDB Local reports the
# consumed capacity of every call. Runs `capacity_units_per_route`
# (tests/conformance.rs: API routes over a tenant of 200 patients) and the
# end-to-end test (tests/aws_e2e.rs: the stream fan-out and delivery
# handlers, with moto's SQS). Results: bench/results/dynamodb-units.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { python3 -m venv .venv; .venv/bin/pip install -q -r tests/requirements.txt; }
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true' EXIT
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
export HUB_TEST_SQS_ENDPOINT="http://127.0.0.1:$moto_port"
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p bench/results
export HUB_UNITS_REPORT="$PWD/bench/results/dynamodb-units.md"
rm -f "$HUB_UNITS_REPORT"
cargo test -q -p hub-tests --test conformance capacity_units_per_route -- --nocapture >/dev/null
cargo test -q -p hub-tests --test aws_e2e write_stream_fanout -- --nocapture >/dev/null
cat "$HUB_UNITS_REPORT"
