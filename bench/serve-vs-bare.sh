#!/usr/bin/env bash
# `hub serve` side by side with the machine: the same wrk run (-t2 -c32)
# against a bare hyper server answering a constant body of the same size as
# a patient, then GET by id, a list, a create and a PATCH on `hub serve`
# (release, embedded store, 10,000 patients), each as a fraction of the bare
# server, with p99; then the list again with 0, 10 and 100 writes per second
# beside it (bench/paced_writes.py: creates and PATCHes alternately).
# Loopback only; bounded: $DURATION seconds per wrk run.
# Usage: bench/serve-vs-bare.sh   (HUB_BIN / BARE_BIN: skip the builds)
# Results: bench/results/serve-vs-bare.json
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
PATIENTS="${PATIENTS:-10000}"
LIST_QUERY="${LIST_QUERY:-address.city[\$in]=Leeds&address.city[\$in]=York&age[\$gte]=30&gender=female&\$sort[age]=-1&\$sort[fullName]=1&\$limit=10}"
RESULTS=bench/results/serve-vs-bare.json

if ! command -v wrk >/dev/null; then
  (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; })
fi
if [[ -z "${HUB_BIN:-}" || -z "${BARE_BIN:-}" ]]; then
  cargo build --release -q -p hub-functions --bin hub
  cargo build --release -q -p practice-hub --example bare_server
  HUB_BIN=target/release/hub BARE_BIN=target/release/examples/bare_server
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_listening() { for _ in $(seq 300); do grep -q "listening on" "$1" 2>/dev/null && return; sleep 0.1; done; echo "no server: $(cat "$1")" >&2; exit 1; }

"$HUB_BIN" serve --addr 127.0.0.1:0 --data "$work/data" --log off --rate-limit off > "$work/serve.out" 2>&1 &
pids+=($!)
wait_listening "$work/serve.out"
base=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
port=${base##*:}
org=$("$HUB_BIN" org create --name "Bench Clinic" --empty --json --data "$work/data")
key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"]["test"]["secret"])' "$org")
post() { curl -sf -X POST "$base/v1/$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
clinic=$(post clinics '{"name":"Leeds","timeZone":"Europe/London"}')
status=$(post patient-statuses '{"name":"Active","order":1}')
referral=$(post referral-sources '{"name":"Google"}')
echo "loading $PATIENTS patients…"
python3 bench/load.py 127.0.0.1 "$port" "$key" "$PATIENTS" "$clinic" "$status" "$referral" > "$work/ids"
# Creates and PATCHes in the runs below change the data; the bare server
# gets the body size of a loaded patient as GET returns it.
size=$(curl -sf "$base/v1/patients/$(head -1 "$work/ids")" -H "Authorization: Bearer $key" | wc -c)

"$BARE_BIN" 127.0.0.1:0 "$size" > "$work/bare.out" 2>&1 &
pids+=($!)
wait_listening "$work/bare.out"
bare=$(grep -o 'http://[0-9.:]*' "$work/bare.out" | head -1)
# The same bare server arranged as hub serve runs (a runtime per thread).
"$BARE_BIN" 127.0.0.1:0 "$size" per-thread > "$work/bare2.out" 2>&1 &
pids+=($!)
wait_listening "$work/bare2.out"
bare2=$(grep -o 'http://[0-9.:]*' "$work/bare2.out" | head -1)

export HUB_KEY="$key" IDS_FILE="$work/ids" LIST_QUERY CLINIC_ID="$clinic" STATUS_ID="$status" REFERRAL_ID="$referral"
rows=()
measure() { # name url script [writes/s]
  local out writes="" wpid=""
  if [[ -n "${4:-}" && "$4" != 0 ]]; then
    python3 bench/paced_writes.py 127.0.0.1 "$port" "$key" "$work/ids" "$4" "$DURATION" "$clinic" "$status" "$referral" > "$work/writes.json" &
    wpid=$!
  fi
  out=$(wrk -t2 -c32 -d"${DURATION}s" --latency ${3:+-s "bench/$3"} "$2" 2>&1)
  if [[ -n "$wpid" ]]; then wait "$wpid"; writes=$(cat "$work/writes.json"); fi
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk -F': ' '/Non-2xx or 3xx responses/ {print $2}' <<<"$out")
  rows+=("$1|$rps|$p50|$p99|${non2xx:-0}|${4:-}|$writes")
  echo "  $1: $rps req/s, p99 $p99${writes:+, writes $writes}"
}
echo "same wrk run (-t2 -c32, ${DURATION}s each), body $size bytes:"
measure "bare hyper server" "$bare/" ""
# wrk's Lua `request()` (a random id, the Authorization header) costs wrk
# time per request too: the bare server again with the very requests of the
# GET and list runs, so those fractions can also be read without it.
measure "bare, GET's requests" "$bare" get.lua
measure "bare, list's requests" "$bare" list.lua
# hub serve keeps each connection on one thread with a runtime of its own;
# the bare server arranged that way too, plain and with GET's requests.
measure "bare, per-thread runtimes" "$bare2/" ""
measure "bare, per-thread, GET's" "$bare2" get.lua
measure "GET /v1/patients/{id}" "$base" get.lua
measure "list" "$base" list.lua
# The mixed runs before the write runs, so every list sees ~10,000 patients.
for w in 0 10 100; do
  measure "list, $w writes/s beside" "$base" list.lua "$w"
done
measure "POST /v1/patients" "$base" create.lua
measure "PATCH /v1/patients/{id}" "$base" patch.lua

python3 - "$RESULTS" "$PATIENTS" "$size" "$LIST_QUERY" "${rows[@]}" <<'PY'
import json, os, re, sys
results, patients, size, query, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s or "")
    if not m: return None
    v, u = float(m.group(1)), m.group(2)
    return round(v / 1000 if u == "us" else v * 1000 if u == "s" else v, 3)
out = {"patients": patients, "body_bytes": size, "list_query": query, "wrk": "-t2 -c32", "runs": []}
bare = None
same = {}
bad = False
print(f"\n{'run':<30} {'req/s':>9} {'of bare':>8} {'same req':>8} {'p50 ms':>8} {'p99 ms':>8}  writes beside")
for row in rows:
    name, rps, p50, p99, non2xx, rate, writes = row.split("|", 6)
    r = {"run": name, "requests_per_sec": float(rps), "p50_ms": ms(p50), "p99_ms": ms(p99), "non_2xx": int(non2xx)}
    if bare is None:
        bare = r["requests_per_sec"]
    r["fraction_of_bare"] = round(r["requests_per_sec"] / bare, 3)
    if name.startswith("bare, "):
        same[name.split(maxsplit=1)[1]] = r["requests_per_sec"]
    if name.startswith("GET") and "GET's requests" in same:
        r["fraction_of_bare_same_requests"] = round(r["requests_per_sec"] / same["GET's requests"], 3)
        r["fraction_of_bare_per_thread"] = round(r["requests_per_sec"] / same["per-thread runtimes"], 3)
        r["fraction_of_bare_per_thread_same_requests"] = round(r["requests_per_sec"] / same["per-thread, GET's"], 3)
    elif name.startswith("list") and "list's requests" in same:
        r["fraction_of_bare_same_requests"] = round(r["requests_per_sec"] / same["list's requests"], 3)
    if writes:
        r["writes"] = json.loads(writes)
    out["runs"].append(r)
    w = r.get("writes")
    wtxt = f"{w['per_s']}/s (p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, failed {w['failed']})" if w else ""
    sr = r.get("fraction_of_bare_same_requests")
    print(f"{name:<30} {r['requests_per_sec']:>9.0f} {r['fraction_of_bare']:>8.3f} {(f'{sr:.3f}' if sr else ''):>8} {r['p50_ms']:>8} {r['p99_ms']:>8}  {wtxt}")
    bad |= r["non_2xx"] > 0 or bool(w and w["failed"])
idle = next(r for r in out["runs"] if r["run"].startswith("list, 0"))
busy = next(r for r in out["runs"] if r["run"].startswith("list, 100"))
out["list_p99_ratio_100_writes"] = round(busy["p99_ms"] / idle["p99_ms"], 2)
print(f"\nlist p99 with 100 writes/s ÷ with none: {out['list_p99_ratio_100_writes']}")
get = next(r for r in out["runs"] if r["run"].startswith("GET"))
print(f"GET ÷ bare per-thread: {get['fraction_of_bare_per_thread']} (plain), {get['fraction_of_bare_per_thread_same_requests']} (same requests)")
os.makedirs("bench/results", exist_ok=True)
json.dump(out, open(results, "w"), indent=2)
print(f"written to {results}")
if bad:
    print("\n!!! SOME REQUESTS FAILED — the figures above are not valid !!!")
    sys.exit(1)
PY
