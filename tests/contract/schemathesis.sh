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
# Usage: tests/contract/schemathesis.sh [path/to/hub]   (default target/debug/hub)
set -euo pipefail
cd "$(dirname "$0")/../.."
hub=${1:-target/debug/hub}
examples=${SCHEMATHESIS_EXAMPLES:-50}
export HUB=$hub EXAMPLES=$examples
if [[ $(id -u) -eq 0 ]]; then ns=(unshare -n); else ns=(unshare -rn); fi
exec "${ns[@]}" bash -c '
set -euo pipefail
ip link set lo up
data=$(mktemp -d)
trap "kill \$pid 2>/dev/null || true; rm -rf \"$data\"" EXIT
"$HUB" serve --addr 127.0.0.1:8099 --data "$data" --rate-limit off --log error >"$data/serve.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  [[ -f "$data/sandbox.json" ]] && curl -sf http://127.0.0.1:8099/health >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$data/serve.log" >&2; exit 1; }
  sleep 0.1
done
export HUB_CONTRACT_KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"keys\"][\"test\"][\"secret\"])" "$data/sandbox.json")
export HUB_CONTRACT_ORG=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"organizationId\"])" "$data/sandbox.json")
export HUB_CONTRACT_DATA=$data HUB_CONTRACT_BASE=http://127.0.0.1:8099
# The key comes from an auth provider (tests/contract/hooks.py): generated
# requests may roll it, and then it rolls the sandbox key again.
export SCHEMATHESIS_HOOKS=tests/contract/hooks.py
status=0
# One worker: CPython 3.11 can fail inside schemathesis ("AST constructor
# recursion depth mismatch") when several threads compile its regexes.
.venv/bin/schemathesis run http://127.0.0.1:8099/openapi.json \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --mode all --phases examples,coverage,fuzzing,stateful --max-examples "$EXAMPLES" \
  --workers 1 --request-timeout 10 --seed 1 --no-color \
  --suppress-health-check all --generation-database none || status=$?
if grep -q "panicked" "$data/serve.log"; then
  echo "hub serve logged a panic:" >&2
  grep -m5 "panicked" "$data/serve.log" >&2
  status=1
fi
exit $status
'
