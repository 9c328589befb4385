#!/usr/bin/env bash
# The webhook fan-out on the AWS code path (issue 22), one command:
# DynamoDB Local and its stream → the stream poller (Lambda's 250 ms poll,
# batches of 100) → the fan-out handler → SQS → the queue poller (5 batches
# of 10 at once) → the delivery handler → local receivers that verify each
# signature. Each run a fresh table and queue:
#   - 1,000 writes at 50/s to one endpoint and to four; 2,000 at 100/s
#     and at 200/s to one; 2,000 at 200/s to four (paced: p50/p99 from
#     each write's acknowledgement to its verified delivery);
#   - a backlog of 2,000 writes to four endpoints, the pollers started once
#     every write is acknowledged: how fast the fan-out and delivery
#     functions drain it, without the writes competing for DynamoDB Local.
# SQS is LocalStack's (HUB_BENCH_SQS=localstack, the default; run as root:
# the runs happen inside a network namespace with loopback only, see
# bench/start-localstack-sqs.sh) or moto's (HUB_BENCH_SQS=moto, 30-100
# times slower here). Results: bench/results/fanout-*.json and a summary
# table on stdout (copied into docs/benchmarks.md). Debug profile with
# optimised dependencies (the workspace's dev profile), as the tests build
# it: HUB_BENCH_PROFILE=release for a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
sqs="${HUB_BENCH_SQS:-localstack}"
profile="${HUB_BENCH_PROFILE:-dev}"
if [[ -z ${HUB_BENCH_INSIDE:-} ]]; then
  (cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
  [[ -x .venv/bin/python ]] || { python3 -m venv .venv; .venv/bin/pip install --quiet -r tests/requirements.txt; }
  bin=$(cargo bench --no-run -q --profile "$profile" -p practice-hub --bench webhook_delivery --message-format=json |
    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
  if [[ $sqs == localstack ]]; then
    [[ $(id -u) == 0 ]] || { echo "LocalStack runs in a network namespace: run as root, or HUB_BENCH_SQS=moto" >&2; exit 1; }
    exec env HUB_BENCH_INSIDE=1 HUB_BENCH_BIN="$bin" unshare -n "$0" "$@"
  fi
  export HUB_BENCH_BIN="$bin"
else
  ip link set lo up
fi
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
trap 'kill "$ddb_pid" 2>/dev/null || true' EXIT
if [[ $sqs == localstack ]]; then
  read -r sqs_pid sqs_port < <(bench/start-localstack-sqs.sh)
else
  read -r sqs_pid sqs_port < <(tests/aws/start-moto.sh)
fi
trap 'kill "$ddb_pid" "$sqs_pid" 2>/dev/null || true' EXIT
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export HUB_BENCH_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
export HUB_BENCH_SQS_ENDPOINT="http://127.0.0.1:$sqs_port"
run() { # name rate events writers endpoints [backlog]
  HUB_BENCH_OUT="fanout-$1.json" HUB_BENCH_RATE="$2" HUB_BENCH_EVENTS="$3" HUB_BENCH_CONCURRENCY="$4" \
    HUB_BENCH_ENDPOINTS="$5" HUB_BENCH_BACKLOG="${6:-0}" "$HUB_BENCH_BIN" --bench >/dev/null
}
# DynamoDB Local is a Java program: its first thousand writes run while
# its JIT is still compiling, at half the speed or less, and the backlog
# they leave made every later latency of a run seconds long (50 writes/s:
# p99 15 s cold, 0.2 s warm). One unmeasured run first, as a deployed
# table has no such start.
run warmup 0 1500 32 1
run 50 50 1000 32 1
run 50x4 50 1000 32 4
run 100 100 2000 64 1
run 200 200 2000 64 1
run 200x4 200 2000 64 4
run backlog 0 2000 64 4 1
SQS="$sqs" python3 - <<'PY'
import json, os
print(f"SQS: {os.environ['SQS']}")
print("| run | endpoints | delivered | writes/s achieved | deliveries/s | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|---|")
for name, label in (("50", "50 writes/s"), ("50x4", "50 writes/s"), ("100", "100 writes/s"), ("200", "200 writes/s"), ("200x4", "200 writes/s"), ("backlog", "backlog of 2,000, drained")):
    r = json.load(open(f"bench/results/fanout-{name}.json"))
    l = r["latency_ms"]
    if r.get("drain_deliveries_per_sec"):
        print(f"| {label} | {r['endpoints']} | {r['delivered_and_verified']}/{r['deliveries_expected']} | {r['writes_per_sec']:.0f} | {r['drain_deliveries_per_sec']:.0f} (draining) | – | – | – |")
    else:
        print(f"| {label} | {r['endpoints']} | {r['delivered_and_verified']}/{r['deliveries_expected']} | {r['writes_per_sec']:.0f} | {r['deliveries_per_sec']:.0f} | {l['p50']:.0f} | {l['p99']:.0f} | {l['max']:.0f} |")
PY
