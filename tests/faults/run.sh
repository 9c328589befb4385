#!/usr/bin/env bash
# The black-box tests that run on DynamoDB (`#[both_stores]`: tests/api.rs,
# api_keys.rs, webhooks.rs, money.rs, memberships.rs, scheduling.rs — their
# DynamoDB variants — and the kill -9 crash test) through the fault-injection
# proxy (tests/faults/proxy.py) in front of DynamoDB Local, at moderate
# rates, then `hub audit` on every table they made, straight from DynamoDB
# Local: every derived value must agree with its objects. Last,
# tests/faults/unavailable.py: `hub serve --table` while every call is
# throttled, then failing, then never answered: 503 with Retry-After,
# nothing written; and a write applied whose answer was lost is read back.
# A call never answered (--hang) costs the 10 s attempt timeout: at 0.05 %
# (a handful a pass) the pass takes about half a minute longer, and no wait
# of a test (30 s at most) meets two on its path but by a rare chance.
# Needs HUB_TEST_DYNAMODB_ENDPOINT (DynamoDB Local) and HUB_TEST_SQS_ENDPOINT,
# as scripts/test.sh exports them. HUB_FAULT_TESTS overrides the test list.
set -euo pipefail
cd "$(dirname "$0")/../.."
upstream="${HUB_TEST_DYNAMODB_ENDPOINT:?start DynamoDB Local first (scripts/test.sh)}"
: "${HUB_TEST_SQS_ENDPOINT:?start moto first (scripts/test.sh)}"
# shellcheck source=tests/faults/rates.sh
source tests/faults/rates.sh
rates=("${fault_rates[@]}" --hang 0.0005)
read -r proxy_pid proxy_port < <(python3 tests/faults/proxy.py --upstream "$upstream" "${rates[@]}")
trap 'kill "$proxy_pid" 2>/dev/null || true' EXIT
echo "fault-injection proxy on 127.0.0.1:$proxy_port (${rates[*]})"
tables() {
  python3 - "$upstream" <<'PY'
import json, sys, urllib.request
start, names = None, []
while True:
    body = {"Limit": 100, **({"ExclusiveStartTableName": start} if start else {})}
    req = urllib.request.Request(sys.argv[1], data=json.dumps(body).encode(), headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"})
    out = json.load(urllib.request.urlopen(req, timeout=10))
    names += out.get("TableNames", [])
    start = out.get("LastEvaluatedTableName")
    if not start:
        break
print("\n".join(names))
PY
}
before=$(tables)
tests=${HUB_FAULT_TESTS:---test api --test api_keys --test webhooks --test money --test memberships --test scheduling}
status=0
# shellcheck disable=SC2086
HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$proxy_port" \
  cargo nextest run -p hub-tests $tests --no-fail-fast -E 'test(/dynamodb$/)' || status=$?
# The crash test: `hub serve --table` killed with SIGKILL under load, through
# the same faults; every acknowledged write and its event is there after.
HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$proxy_port" \
  cargo nextest run -p hub-functions --test cli --no-fail-fast -E 'test(dynamodb_mode_survives_kill_9)' || status=$?
echo "injected: $(curl -s "http://127.0.0.1:$proxy_port/__stats")"
cargo build --quiet -p hub-functions --bin hub
audited=0
for t in $(comm -13 <(echo "$before" | sort) <(tables | sort)); do
  audited=$((audited + 1))
  out=$(target/debug/hub audit --table "$t" --endpoint-url "$upstream" 2>&1) || { echo "$t: $out"; status=1; }
done
echo "hub audit: $audited tables made by the tests"
# DynamoDB failing through every retry: 503 with Retry-After, nothing written.
python3 tests/faults/unavailable.py target/debug/hub || status=1
exit "$status"
