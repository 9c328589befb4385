#!/usr/bin/env bash
# Start moto's server (SQS) on a free 127.0.0.1 port; print "PID PORT".
# Needs the project's .venv (scripts/test.sh installs moto[server] there).
set -euo pipefail
cd "$(dirname "$0")/../.."
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    echo "$pid $port"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.1
done
kill "$pid"; cat "$log" >&2; exit 1
