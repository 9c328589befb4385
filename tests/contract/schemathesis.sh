#!/usr/bin/env bash
# The API contract from outside: schemathesis against `hub serve`'s own
# /openapi.json, every operation, positive and negative examples, with the
# server-error, status-code, content-type and response-schema checks.
#
# Generated input chooses webhook URLs, so the server and schemathesis run in
# a network namespace with loopback only (`unshare -n`): no delivery attempt
# can leave the machine (as root `unshare -n`, otherwise `unshare -rn` in a
# user namespace). Needs .venv with schemathesis (scripts/test.sh installs it).
#
# Usage: tests/contract/schemathesis.sh [path/to/hub] [embedded|dynamodb]
#   embedded (default): `hub serve --data DIR`.
#   dynamodb: `hub serve --table` on a DynamoDB Local and a moto (SQS) this
#   script starts inside the namespace (tests/aws/start-*.sh; needs `npm ci`
#   in tests/aws), and stops.
# SCHEMATHESIS_EXAMPLES: examples per operation (default 50).
# HUB_CONTRACT_FAULTS (dynamodb only): fault-proxy options, e.g. "--throttle
# 0.01 --conflict 0.01 --error 0.005 --latency 2 --stale 0.2" (scripts/test.sh
# passes the fault pass's rates): the server reaches DynamoDB Local through
# tests/faults/proxy.py with them.
set -euo pipefail
cd "$(dirname "$0")/../.."
hub=${1:-target/debug/hub}
store=${2:-embedded}
case $store in embedded | dynamodb) ;; *) echo "store: embedded or dynamodb, not $store" >&2; exit 2 ;; esac
examples=${SCHEMATHESIS_EXAMPLES:-50}
export HUB=$hub EXAMPLES=$examples STORE=$store HUB_CONTRACT_FAULTS=${HUB_CONTRACT_FAULTS:-}
if [[ $(id -u) -eq 0 ]]; then ns=(unshare -n); else ns=(unshare -rn); fi
exec "${ns[@]}" bash -c '
set -euo pipefail
ip link set lo up
data=$(mktemp -d)
pids=()
trap "kill \${pids[*]} 2>/dev/null || true; rm -rf \"$data\"" EXIT
serve=(--data "$data")
sandbox=$data/sandbox.json
# How the hooks roll the sandbox key beside the running server.
export HUB_CONTRACT_STORE_ARGS="--data $data"
if [[ $STORE == dynamodb ]]; then
  export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
  pids+=("$ddb_pid")
  read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
  pids+=("$moto_pid")
  ddb_url=http://127.0.0.1:$ddb_port
  if [[ -n ${HUB_CONTRACT_FAULTS:-} ]]; then
    # shellcheck disable=SC2086
    read -r proxy_pid proxy_port < <(python3 tests/faults/proxy.py --upstream "$ddb_url" $HUB_CONTRACT_FAULTS)
    pids+=("$proxy_pid")
    ddb_url=http://127.0.0.1:$proxy_port
  fi
  serve+=(--table contract --endpoint-url "$ddb_url" --sqs-endpoint-url "http://127.0.0.1:$moto_port")
  sandbox=$data/sandbox.contract.json
  export HUB_CONTRACT_STORE_ARGS="--table contract --endpoint-url http://127.0.0.1:$ddb_port"
fi
"$HUB" serve --addr 127.0.0.1:8099 "${serve[@]}" --rate-limit off --log error >"$data/serve.log" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 1200); do
  [[ -f "$sandbox" ]] && curl -sf http://127.0.0.1:8099/health >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$data/serve.log" >&2; exit 1; }
  sleep 0.1
done
export HUB_CONTRACT_KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"keys\"][\"test\"][\"secret\"])" "$sandbox")
export HUB_CONTRACT_ORG=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"organizationId\"])" "$sandbox")
export HUB_CONTRACT_BASE=http://127.0.0.1:8099
# The key comes from an auth provider (tests/contract/hooks.py): generated
# requests may roll it, and then it rolls the sandbox key again.
export SCHEMATHESIS_HOOKS=tests/contract/hooks.py
status=0
# One worker: CPython 3.11 can fail inside schemathesis ("AST constructor
# recursion depth mismatch") when several threads compile its regexes.
.venv/bin/schemathesis run http://127.0.0.1:8099/openapi.json \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --mode all --phases examples,coverage,fuzzing,stateful --max-examples "$EXAMPLES" \
  --workers 1 --request-timeout 20 --seed 1 --no-color \
  --suppress-health-check all --generation-database none || status=$?
if [[ -n ${proxy_port:-} ]]; then
  echo "injected: $(curl -s "http://127.0.0.1:$proxy_port/__stats" | head -c 200)…"
fi
if grep -q "panicked" "$data/serve.log"; then
  echo "hub serve logged a panic:" >&2
  grep -m5 "panicked" "$data/serve.log" >&2
  status=1
fi
exit $status
'
