#!/usr/bin/env bash
# Business rules under load on `hub serve` (embedded store, release build):
# check-ins per second (each judged against the member's purchases and
# appointments), appointment creates per second (each one checked against the
# practitioner's bookings through their guard items), payments per second
# (each one moving its invoice's balance in the same write), and the
# latency of a 31-day availability query for a practitioner with 500
# booked appointments. Bounded: $DURATION seconds per wrk run.
# Usage: bench/domain.sh   (HUB_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
if ! command -v wrk >/dev/null; then
  (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; })
fi
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
"$HUB_BIN" serve --addr 127.0.0.1:0 --data "$work/data" --log off --rate-limit off > "$work/serve.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
port=${base##*:}
org=$("$HUB_BIN" org create --name "Bench Clinic" --empty --json --data "$work/data")
export HUB_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"]["test"]["secret"])' "$org")
eval "$(python3 bench/domain.py setup 127.0.0.1 "$port" "$HUB_KEY")"
run() { # script
  local out
  out=$(wrk -t2 -c32 -d"${DURATION}s" --latency -s "bench/$1" "$base" 2>&1)
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "{\"rps\": $rps, \"p99\": \"$p99\", \"non2xx\": ${non2xx:-0}}"
}
avail=$(python3 bench/domain.py availability 127.0.0.1 "$port" "$HUB_KEY" "$BUSY" "$ATY_ID" 50)
creates=$(run appointments.lua)
payments=$(run payments.lua)
checkins=$(run check-ins.lua)
mkdir -p bench/results
cat > bench/results/domain.json <<JSON
{"availability_31_days_500_booked": $avail,
 "appointment_creates": $creates,
 "payments": $payments,
 "check_ins": $checkins}
JSON
cat bench/results/domain.json
