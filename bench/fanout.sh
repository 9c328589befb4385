#!/usr/bin/env bash
# The webhook fan-out on the AWS code path (issue 22), one command:
# DynamoDB Local and its stream → the stream poller (Lambda's 250 ms poll,
# batches of 100) → the fan-out handler → moto's SQS → the queue poller
# (5 batches of 10 at once) → the delivery handler → a local receiver that
# verifies each signature. Three runs, each a fresh table and queue:
#   - 1,000 writes at 50/s and 2,000 at 200/s (paced: p50/p99
#     from each write's acknowledgement to its verified delivery);
#   - unpaced, 2,000 writes by 64 writers (sustained deliveries/s).
# Results: bench/results/fanout-{50,200,unpaced}.json and a summary table on
# stdout (copied into docs/benchmarks.md). Debug profile with optimised
# dependencies (the workspace's dev profile), as the tests build it:
# HUB_BENCH_PROFILE=release for a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
[[ -x .venv/bin/python ]] || { python3 -m venv .venv; .venv/bin/pip install --quiet -r tests/requirements.txt; }
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT
read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true' EXIT
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export HUB_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
export HUB_BENCH_SQS_ENDPOINT="http://127.0.0.1:$moto_port"
profile="${HUB_BENCH_PROFILE:-dev}"
run() { # name rate events writers
  HUB_BENCH_OUT="fanout-$1.json" HUB_BENCH_RATE="$2" HUB_BENCH_EVENTS="$3" HUB_BENCH_CONCURRENCY="$4" \
    cargo bench -q --profile "$profile" -p practice-hub --bench webhook_delivery >/dev/null
}
run 50 50 1000 32
run 200 200 2000 64
run unpaced 0 2000 64
python3 - <<'PY'
import json
print("| writes/s offered | events | writes/s achieved | deliveries/s | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|")
for name in ("50", "200", "unpaced"):
    r = json.load(open(f"bench/results/fanout-{name}.json"))
    l = r["latency_ms"]
    print(f"| {name} | {r['delivered_and_verified']}/{r['events']} | {r['writes_per_sec']:.0f} | {r['deliveries_per_sec']:.0f} | {l['p50']:.0f} | {l['p99']:.0f} | {l['max']:.0f} |")
PY
