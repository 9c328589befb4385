#!/usr/bin/env bash
# Start LocalStack (community, Apache-2.0; from PyPI, pinned in
# bench/localstack-requirements.txt, installed into .venv-localstack) with
# only its SQS service, on a free 127.0.0.1 port; print "PID PORT". Used by
# bench/fanout.sh, which runs it inside a network namespace with loopback
# only: LocalStack looks up its own domain and DNS servers at start, and
# nothing of it may leave this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv-localstack/bin/python ]]; then
  python3 -m venv .venv-localstack
  .venv-localstack/bin/pip install --quiet --no-deps -r bench/localstack-requirements.txt
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
log="$dir/log"
# Its gateway also listens for TLS and makes itself a certificate with an
# OpenSSL API that the pinned pyOpenSSL no longer has; given one (key and
# certificate in one file, which it splits), it makes none.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
cat "$dir/server.key" "$dir/server.crt" >"$dir/server.pem"
env SERVICES=sqs EAGER_SERVICE_LOADING=1 GATEWAY_LISTEN="127.0.0.1:$port" LOCALSTACK_HOST="127.0.0.1:$port" \
  DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 PERSISTENCE=0 DEBUG=0 DNS_ADDRESS=0 \
  CUSTOM_SSL_CERT_PATH="$dir/server.pem" LOCALSTACK_VOLUME_DIR="$dir/volume" FILESYSTEM_ROOT="$dir/root" \
  .venv-localstack/bin/python -m localstack.runtime.main >"$log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  if grep -q '^Ready\.' "$log"; then
    echo "$pid $port"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.1
done
kill "$pid"; cat "$log" >&2; exit 1
