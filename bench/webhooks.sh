#!/usr/bin/env bash
# Webhooks from write to verified delivery, 10,000 events, in one process
# (API, outbox, fan-out, durable queue, delivery, and local receivers), each
# event to HUB_BENCH_ENDPOINTS endpoints (default 4; each its own receiver
# and secret, every delivery's signature checked, none may be missing).
# Two runs: the writes as fast as 32 writers go (what the pipeline
# sustains; the latency is then mostly the backlog's, as the deliveries
# outnumber the writes 4 to 1), then the writes paced at HUB_BENCH_PACED
# per second (default 600: 2,400 deliveries/s offered) for the latency
# below capacity. Results: bench/results/webhooks.json (unpaced) and
# bench/results/webhooks-paced.json.
#
# bench/webhooks.sh --dynamodb: the same over the AWS code path of
# `hub serve --table` (DynamoDB Local and its stream, moto's SQS, the two
# pollers and the Lambda handlers; both servers started and stopped here);
# HUB_BENCH_EVENTS events (default 10,000), HUB_BENCH_CONCURRENCY writers at
# once (default 32), HUB_BENCH_RATE writes/s at most (default: as fast as
# they go; pace them below the pipeline's capacity to see its latency rather
# than a backlog's). Results:
# bench/results/webhooks-dynamodb.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--dynamodb" ]]; then
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  (cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
  read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
  trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT
  read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
  trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true' EXIT
  export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  export HUB_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
  export HUB_BENCH_SQS_ENDPOINT="http://127.0.0.1:$moto_port"
fi
if [[ "${1:-}" == "--dynamodb" ]]; then
  cargo bench -q -p practice-hub --bench webhook_delivery
  exit
fi
cargo bench -q -p practice-hub --bench webhook_delivery
HUB_BENCH_RATE="${HUB_BENCH_PACED:-600}" HUB_BENCH_OUT=webhooks-paced.json \
  cargo bench -q -p practice-hub --bench webhook_delivery
