#!/usr/bin/env bash
# Load benchmark of `hub serve` on loopback: loads 10,000 patients, then
# measures GET by id, a filtered+sorted list, and create at concurrency 32
# with wrk. Bounded: each measurement runs for $DURATION seconds.
# Usage: bench/run.sh [--dynamodb]   (HUB_BIN=path to skip the release build)
#   --dynamodb: `hub serve --table` over DynamoDB Local and moto's SQS (the
#   AWS code path; started and stopped here), and a list the table's indexes
#   serve (the embedded store's list would read the whole tenant there).
#   Results: bench/results/latest.json, or bench/results/dynamodb.json.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=embedded
[[ "${1:-}" == "--dynamodb" ]] && MODE=dynamodb
DURATION="${DURATION:-10}"
PATIENTS="${PATIENTS:-10000}"
CONNS=32
DEFAULT_LIST_QUERY='address.city=Leeds&$sort[fullName]=1&$limit=10'
# Over DynamoDB: the clinic's patients (GSI2), in creation order, filtered.
[[ $MODE == dynamodb ]] && DEFAULT_LIST_QUERY='primaryClinicId=$CLINIC&address.city=Leeds&$limit=10'
LIST_QUERY="${LIST_QUERY:-$DEFAULT_LIST_QUERY}"
RESULTS=bench/results/latest.json
[[ $MODE == dynamodb ]] && RESULTS=bench/results/dynamodb.json

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; })
fi
if [[ -z "${HUB_BIN:-}" ]]; then
  cargo build --release -q -p hub-functions --bin hub
  HUB_BIN=target/release/hub
fi

work=$(mktemp -d)
server_pid=""
aws_pids=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [[ -n "$aws_pids" ]] && kill $aws_pids 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

org_args=(--data "$work/data")
serve_args=()
if [[ $MODE == dynamodb ]]; then
  echo "starting DynamoDB Local and moto's SQS"
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  (cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
  read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
  aws_pids="$ddb_pid"
  read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
  aws_pids="$ddb_pid $moto_pid"
  export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  org_args=(--table "bench-$(date +%s)" --endpoint-url "http://127.0.0.1:$ddb_port")
  serve_args=("${org_args[@]}" --sqs-endpoint-url "http://127.0.0.1:$moto_port")
fi

"$HUB_BIN" serve --addr 127.0.0.1:0 --data "$work/data" "${serve_args[@]}" --log off --rate-limit off > "$work/serve.out" 2>&1 &
server_pid=$!
for _ in $(seq 300); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
port=${base##*:}
org=$("$HUB_BIN" org create --name "Bench Clinic" --empty --json "${org_args[@]}")
key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"]["test"]["secret"])' "$org")

post() { curl -sf -X POST "$base/v1/$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
clinic=$(post clinics '{"name":"Leeds","timeZone":"Europe/London"}')
status=$(post patient-statuses '{"name":"Active","order":1}')
referral=$(post referral-sources '{"name":"Google"}')

echo "loading $PATIENTS patients…"
t0=$(date +%s.%N)
python3 bench/load.py 127.0.0.1 "$port" "$key" "$PATIENTS" "$clinic" "$status" "$referral" > "$work/ids"
t1=$(date +%s.%N)
loaded=$(wc -l < "$work/ids")
echo "loaded $loaded patients in $(python3 -c "print(round($t1-$t0,1))") s (8 sequential Python clients)"

LIST_QUERY="${LIST_QUERY//\$CLINIC/$clinic}"
export HUB_KEY="$key" IDS_FILE="$work/ids" LIST_QUERY CLINIC_ID="$clinic" STATUS_ID="$status" REFERRAL_ID="$referral"
results=()
measure() { # name script
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "bench/$2" "$base" 2>&1)
  echo "$out" > "$work/$1.txt"
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk -F': ' '/Non-2xx or 3xx responses/ {print $2}' <<<"$out")
  results+=("$1|$rps|$p50|$p99|${non2xx:-0}")
}
measure "get-by-id" get.lua
measure "list-filter-sort" list.lua
measure "create" create.lua

python3 - "$MODE" "$RESULTS" "$PATIENTS" "$LIST_QUERY" "${results[@]}" <<'PY'
import json, os, re, sys
mode, results, patients, query, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s or "")
    if not m: return None
    v, u = float(m.group(1)), m.group(2)
    return round(v / 1000 if u == "us" else v * 1000 if u == "s" else v, 3)
targets = {"get-by-id": 15000, "list-filter-sort": 2000, "create": 2000}
out = {"store": mode, "patients": int(patients), "concurrency": 32, "list_query": query, "results": []}
print(f"\n{'route':<18} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}   target")
bad = False
for row in rows:
    name, rps, p50, p99, non2xx = row.split("|")
    r = {"route": name, "requests_per_sec": float(rps), "p50_ms": ms(p50), "p99_ms": ms(p99), "non_2xx": int(non2xx)}
    out["results"].append(r)
    if mode == "embedded":
        ok = r["requests_per_sec"] >= targets[name] and (r["p99_ms"] or 1e9) <= 20
        verdict = f"≥{targets[name]} req/s, p99 ≤ 20 ms: {'met' if ok else 'MISSED'}"
    else:
        verdict = "(DynamoDB Local: an emulator; the cost per request, not AWS's speed)"
    print(f"{name:<18} {r['requests_per_sec']:>10.0f} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['non_2xx']:>8}   {verdict}")
    bad |= r["non_2xx"] > 0
os.makedirs("bench/results", exist_ok=True)
json.dump(out, open(results, "w"), indent=2)
print(f"\nwritten to {results}")
if bad:
    print("\n!!! SOME RESPONSES WERE NOT 2xx — the figures above are not valid !!!")
    sys.exit(1)
PY
