"""A webhook receiver for the tests, on 127.0.0.1. It verifies every
delivery with the official libraries — stripe.WebhookSignature.verify_header
on Hub-Signature and standardwebhooks' Webhook(secret).verify — against each
secret configured for the path, and logs what it saw.

Behaviour by path: /ok answers 200; /fail answers 500; /flaky?n=N fails the
first N attempts of each event; /slow sleeps 5 s; /reset drops the
connection without an answer; /ratelimit answers 429 with Retry-After: 1 on
the first attempt of each event. Control: POST /_secrets {"path", "secrets"};
GET /_log returns every delivery seen. Listens on the port given as the
first argument (default: any free one) and prints it on the first line;
with a certificate and key as further arguments, also serves https on a
second port, printed on the second line."""
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import standardwebhooks
import stripe

lock = threading.Lock()
secrets = {}
log = []
seen = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_log":
            with lock:
                body = json.dumps(log).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        self.reply(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        url = urlparse(self.path)
        if url.path == "/_secrets":
            cfg = json.loads(raw)
            with lock:
                secrets[cfg["path"]] = cfg["secrets"]
            return self.reply(204)
        payload = raw.decode()
        event_id = self.headers.get("webhook-id", "")
        with lock:
            keys = list(secrets.get(url.path, []))
            attempt = seen.get((url.path, event_id), 0) + 1
            seen[(url.path, event_id)] = attempt
        stripe_ok, std_ok = [], []
        for secret in keys:
            try:
                stripe.WebhookSignature.verify_header(payload, self.headers.get("Hub-Signature", ""), secret, tolerance=300)
                stripe_ok.append(True)
            except Exception:
                stripe_ok.append(False)
            try:
                standardwebhooks.Webhook(secret).verify(payload, {
                    "webhook-id": event_id,
                    "webhook-timestamp": self.headers.get("webhook-timestamp", ""),
                    "webhook-signature": self.headers.get("webhook-signature", ""),
                })
                std_ok.append(True)
            except Exception:
                std_ok.append(False)
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        behaviour = url.path
        n = int(parse_qs(url.query).get("n", ["0"])[0])
        status = 200
        if behaviour == "/fail":
            status = 500
        elif behaviour == "/flaky" and attempt <= n:
            status = 503
        elif behaviour == "/ratelimit" and attempt == 1:
            status = 429
        entry = {
            "path": behaviour, "eventId": event_id, "attempt": attempt, "at": time.time(),
            "type": self.headers.get("Hub-Event"), "delivery": self.headers.get("Hub-Delivery"),
            "custom": self.headers.get("X-Custom-Auth"),
            "authorization": self.headers.get("Authorization"), "stripe": stripe_ok, "standard": std_ok,
            "body": body, "answered": status,
        }
        if behaviour == "/reset":
            entry["answered"] = None
            with lock:
                log.append(entry)
            # SO_LINGER 0: close with a TCP reset, no answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if behaviour == "/slow":
            entry["answered"] = None
            with lock:
                log.append(entry)
            time.sleep(5)
            return self.reply(200)
        with lock:
            log.append(entry)
        headers = [("Retry-After", "1")] if status == 429 else []
        self.reply(status, b'{"received": true}', headers)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
if len(sys.argv) > 3:
    # With a certificate and key: also serve https on another port (printed
    # second); the plain port stays for control.
    import ssl
    tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    print(tls.server_address[1], flush=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
# Stop when the test closes our stdin (or after 10 minutes at most).
try:
    sys.stdin.read()
except Exception:
    pass
server.shutdown()
