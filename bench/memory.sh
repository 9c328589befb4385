#!/usr/bin/env bash
# Memory of `hub serve` (embedded store) per patient: loads N varied
# patients (bench/load.py, about 0.5 KB of stored JSON each) for each N in
# $COUNTS (default "10000 100000"), then reads the server's resident memory
# (VmRSS) — once in the process that loaded them, and once in a fresh
# process started over the same data directory (what a restart holds) —
# and prints per patient: (RSS − RSS of the same server before loading) / N,
# beside the average stored JSON per patient (GET by id body).
# Usage: bench/memory.sh   (HUB_BIN=path to skip the release build; COUNTS="10000")
# Results: bench/results/memory.json.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS="${COUNTS:-10000 100000}"
RESULTS=bench/results/memory.json
if [[ -z "${HUB_BIN:-}" ]]; then
  cargo build --release -q -p hub-functions --bin hub
  HUB_BIN=target/release/hub
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Start `hub serve` over $1; sets server_pid, base, port.
start() {
  "$HUB_BIN" serve --addr 127.0.0.1:0 --data "$1" --log off --rate-limit off > "$1.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do grep -q "listening on" "$1.out" 2>/dev/null && break; sleep 0.1; done
  base=$(grep -o 'http://[0-9.:]*' "$1.out" | head -1)
  port=${base##*:}
}

stop() {
  kill -INT "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# A few reads so lazily built state (route table, OpenAPI, caches) is in
# the baseline, not in the per-patient figure.
warm() {
  for _ in 1 2 3; do
    curl -sf "$base/v1/patients?\$limit=10" -H "Authorization: Bearer $key" > /dev/null
    curl -sf -g "$base/v1/patients?address.city=Leeds&\$sort[fullName]=1&\$limit=10" -H "Authorization: Bearer $key" > /dev/null
  done
}

mkdir -p bench/results
echo "[" > "$work/results"
first=1
for n in $COUNTS; do
  data="$work/data-$n"
  start "$data"
  org=$("$HUB_BIN" org create --name "Memory Clinic" --empty --json --data "$data")
  key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"]["test"]["secret"])' "$org")
  post() { curl -sf -X POST "$base/v1/$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
  clinic=$(post clinics '{"name":"Leeds","timeZone":"Europe/London"}')
  status=$(post patient-statuses '{"name":"Active","order":1}')
  referral=$(post referral-sources '{"name":"Google"}')
  warm
  before=$(rss_kb "$server_pid")
  t0=$(date +%s.%N)
  python3 bench/load.py 127.0.0.1 "$port" "$key" "$n" "$clinic" "$status" "$referral" > "$work/ids-$n"
  t1=$(date +%s.%N)
  warm
  after=$(rss_kb "$server_pid")
  # The stored JSON of a sample of them, as GET by id answers it.
  json_bytes=$(python3 - "$base" "$key" "$work/ids-$n" <<'EOF'
import sys, urllib.request
base, key, path = sys.argv[1:4]
ids = open(path).read().split()
sample = ids[:: max(1, len(ids) // 200)]
total = 0
for i in sample:
    req = urllib.request.Request(f"{base}/v1/patients/{i}", headers={"Authorization": f"Bearer {key}"})
    total += len(urllib.request.urlopen(req).read())
print(round(total / len(sample)))
EOF
)
  stop
  # A fresh process over the same data: what it holds after loading it.
  start "$data"
  warm
  fresh=$(rss_kb "$server_pid")
  stop
  # The same baseline for the fresh process: an empty organization's server.
  empty="$work/empty-$n"
  start "$empty"
  eorg=$("$HUB_BIN" org create --name "Empty" --empty --json --data "$empty")
  key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"]["test"]["secret"])' "$eorg")
  warm
  fresh_base=$(rss_kb "$server_pid")
  stop
  line=$(python3 - "$n" "$before" "$after" "$fresh_base" "$fresh" "$json_bytes" "$t0" "$t1" <<'EOF'
import json, sys
n, before, after, fresh_base, fresh, json_bytes = map(int, sys.argv[1:7])
t0, t1 = map(float, sys.argv[7:9])
out = {
    "patients": n,
    "rss_before_kb": before,
    "rss_after_load_kb": after,
    "bytes_per_patient_loaded": round((after - before) * 1024 / n),
    "rss_fresh_empty_kb": fresh_base,
    "rss_fresh_kb": fresh,
    "bytes_per_patient_fresh": round((fresh - fresh_base) * 1024 / n),
    "stored_json_bytes_per_patient": json_bytes,
    "load_seconds": round(t1 - t0, 1),
}
print(json.dumps(out))
EOF
)
  echo "$line"
  [[ $first == 1 ]] || echo "," >> "$work/results"
  first=0
  echo "$line" >> "$work/results"
  rm -rf "$data" "$empty"
done
echo "]" >> "$work/results"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), indent=2))' "$work/results" > "$RESULTS"
echo "results: $RESULTS"
