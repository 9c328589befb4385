#!/usr/bin/env python3
"""A DynamoDB endpoint that misbehaves as DynamoDB does (issue 22).

Stands between the hub and DynamoDB Local and forwards every request, but
at the rates given injects what DynamoDB Local never does:

  --throttle R     ProvisionedThroughputExceededException (400), before the call
  --conflict R     TransactionCanceledException with a TransactionConflict
                   reason (400) on TransactWriteItems, before the call
  --error R        InternalServerError (500), before the call
  --error-after R  InternalServerError (500) after a write (PutItem, UpdateItem,
                   DeleteItem, TransactWriteItems, BatchWriteItem) is applied:
                   the reply is lost, the write is not
  --hang R         no answer at all, before the call: the request is held
                   until the client gives up and closes the connection (or
                   300 s pass), as a connection that stopped answering
  --latency MS     up to MS of added latency on every call (uniform)
  --stale R        a Query on an index (IndexName) answered, at rate R, as an
                   index not caught up would: with an earlier answer to the
                   same request if one is at most --stale-age seconds old
                   (default 1.0), else without the items written (put,
                   updated or deleted through the proxy) in the last
                   --stale-age seconds

Prints "PID PORT" once listening on 127.0.0.1 (a free port unless --port).
GET /__stats answers the counts injected so far as JSON, and under "ops"
each operation's calls forwarded, their total upstream milliseconds and
(for transactions and batches) the items they carried; with
HUB_PROXY_DUMP=FILE about 1 % of those calls' bodies are appended to FILE,
one JSON per line (to replay a write as the hub makes it); POST /__rates with
{"throttle": 1.0, ...} changes rates from then on; {"lose_next_write": N}
makes the next TransactWriteItems that is applied answer a 500 and the N
after it be throttled (once: an applied write whose every retry fails).
Python's standard library only.
"""
import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
PREFIX = "com.amazonaws.dynamodb.v20120810#"

args = None
stats = {"calls": 0, "throttle": 0, "conflict": 0, "error": 0, "error_after": 0, "stale": 0, "hang": 0, "index_queries": 0, "ops": {}}
lock = threading.Lock()
# Query body (bytes) -> list of (time, status, headers, body) answers.
answers = {}
rng = random.Random()
# Transactions still to throttle after a lost write (lose_next_write).
throttle_writes = [0]
# (PK, SK) -> when a write to that item was last applied (for --stale).
written = {}


def item_key(k):
    """An item's or a key's (PK, SK), or None."""
    try:
        return (k["PK"]["S"], k["SK"]["S"])
    except (KeyError, TypeError):
        return None


def written_keys(target, doc):
    """The (PK, SK) of every item a write request changes."""
    found = []
    if target == "PutItem":
        found.append(item_key(doc.get("Item")))
    elif target in ("UpdateItem", "DeleteItem"):
        found.append(item_key(doc.get("Key")))
    elif target == "TransactWriteItems":
        for t in doc.get("TransactItems", []):
            if "Put" in t:
                found.append(item_key(t["Put"].get("Item")))
            for kind in ("Update", "Delete"):
                if kind in t:
                    found.append(item_key(t[kind].get("Key")))
    elif target == "BatchWriteItem":
        for reqs in doc.get("RequestItems", {}).values():
            for r in reqs:
                if "PutRequest" in r:
                    found.append(item_key(r["PutRequest"].get("Item")))
                if "DeleteRequest" in r:
                    found.append(item_key(r["DeleteRequest"].get("Key")))
    return [k for k in found if k]


def without_recent(data):
    """An index answer without the items written in the last --stale-age
    seconds (their index entries not there yet), and how many it hid."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data, 0
    now = time.monotonic()
    items = doc.get("Items", [])
    with lock:
        kept = [i for i in items if now - written.get(item_key(i), -1e9) > args.stale_age]
    hidden = len(items) - len(kept)
    if not hidden:
        return data, 0
    doc["Items"] = kept
    doc["Count"] = len(kept)
    return json.dumps(doc).encode(), hidden


def count(name):
    with lock:
        stats[name] += 1


def chance(rate):
    if rate <= 0:
        return False
    with lock:
        return rng.random() < rate


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer goes out as its headers, then its body: with Nagle's
    # algorithm the body waits for the client's delayed ACK (40 ms a call).
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def upstream(self):
        conn = getattr(self.server.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(args.upstream_host, args.upstream_port, timeout=60)
            self.server.local.conn = conn
        return conn

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() in ("content-length", "connection", "transfer-encoding", "date", "server"):
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, name, message, extra=None):
        doc = {"__type": PREFIX + name, "message": message}
        if extra:
            doc.update(extra)
        body = json.dumps(doc).encode()
        self.reply(status, [("Content-Type", "application/x-amz-json-1.0"),
                            ("x-amzn-RequestId", "fault-%d" % rng.randrange(1 << 30))], body)

    def throttled(self):
        count("throttle")
        return self.error(400, "ProvisionedThroughputExceededException",
                          "The level of configured provisioned throughput for the table was exceeded.")

    def failed(self, name):
        count(name)
        return self.error(500, "InternalServerError", "Internal server error")

    def hold(self):
        """Answer nothing; return once the client has closed the connection
        (or sent more on it), or after 300 s."""
        self.close_connection = True
        self.connection.settimeout(1.0)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                self.connection.recv(1, socket.MSG_PEEK)
                return
            except socket.timeout:
                continue
            except OSError:
                return

    def do_GET(self):
        if self.path == "/__stats":
            with lock:
                body = json.dumps(stats).encode()
            self.reply(200, [("Content-Type", "application/json")], body)
        else:
            self.reply(404, [], b"")

    def forward(self, body):
        for attempt in range(2):
            conn = self.upstream()
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request("POST", self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                return r.status, r.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self.server.local.conn = None
                if attempt == 1:
                    raise

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/__rates":
            # {"throttle": 1.0, ...}: new rates from now on.
            for k, v in json.loads(body or b"{}").items():
                setattr(args, k.replace("-", "_"), float(v))
            return self.reply(200, [("Content-Type", "application/json")], b"{}")
        target = (self.headers.get("X-Amz-Target") or "").split(".")[-1]
        count("calls")
        if args.latency > 0:
            time.sleep(rng.uniform(0, args.latency) / 1000.0)
        if target == "TransactWriteItems":
            with lock:
                storm = throttle_writes[0] > 0
                if storm:
                    throttle_writes[0] -= 1
            if storm:
                return self.throttled()
        if chance(args.hang):
            count("hang")
            return self.hold()
        if chance(args.throttle):
            return self.throttled()
        if target == "TransactWriteItems" and chance(args.conflict):
            count("conflict")
            try:
                n = len(json.loads(body).get("TransactItems", []))
            except ValueError:
                n = 1
            reasons = [{"Code": "TransactionConflict",
                        "Message": "Transaction is ongoing for the item"}] + [{"Code": "None"}] * (n - 1)
            return self.error(400, "TransactionCanceledException",
                              "Transaction cancelled, please refer cancellation reasons for specific reasons "
                              "[TransactionConflict" + ", None" * (n - 1) + "]",
                              {"CancellationReasons": reasons})
        if chance(args.error):
            return self.failed("error")
        index_query = target == "Query" and b'"IndexName"' in body
        if index_query:
            count("index_queries")
        stale = index_query and args.stale > 0 and chance(args.stale)
        if stale:
            now = time.monotonic()
            with lock:
                earlier = [a for a in answers.get(body, []) if now - a[0] <= args.stale_age]
            if earlier:
                count("stale")
                _, status, headers, data = earlier[0]
                return self.reply(status, headers, data)
        began = time.monotonic()
        status, headers, data = self.forward(body)
        took = (time.monotonic() - began) * 1000.0
        items = 0
        if target in ("TransactWriteItems", "TransactGetItems", "BatchWriteItem", "BatchGetItem"):
            try:
                doc = json.loads(body)
                if target.startswith("Transact"):
                    items = len(doc.get("TransactItems", []))
                elif target == "BatchWriteItem":
                    items = sum(len(v) for v in doc.get("RequestItems", {}).values())
                else:
                    items = sum(len(v.get("Keys", [])) for v in doc.get("RequestItems", {}).values())
            except (ValueError, AttributeError):
                pass
            if os.environ.get("HUB_PROXY_DUMP") and random.random() < 0.01:
                with open(os.environ["HUB_PROXY_DUMP"], "a") as f:
                    f.write(body.decode() + "\n")
        with lock:
            op = stats["ops"].setdefault(target, {"calls": 0, "ms": 0.0, "items": 0})
            op["calls"] += 1
            op["ms"] = round(op["ms"] + took, 1)
            op["items"] += items
        if index_query and status == 200:
            now = time.monotonic()
            with lock:
                kept = [a for a in answers.get(body, []) if now - a[0] <= args.stale_age]
                kept.append((now, status, headers, data))
                answers[body] = kept
                if len(answers) > 20000:
                    answers.clear()
            if stale:
                data, hidden = without_recent(data)
                if hidden:
                    count("stale")
                    # The checksum was of the whole answer.
                    headers = [(k, v) for k, v in headers if k.lower() != "x-amz-crc32"]
        if args.stale > 0 and target in WRITES and status == 200:
            try:
                keys = written_keys(target, json.loads(body))
            except (ValueError, AttributeError):
                keys = []
            now = time.monotonic()
            with lock:
                for k in keys:
                    written[k] = now
                if len(written) > 200000:
                    for k in [k for k, t in written.items() if now - t > args.stale_age]:
                        del written[k]
        if target == "TransactWriteItems" and status == 200 and args.lose_next_write > 0:
            with lock:
                throttle_writes[0] = int(args.lose_next_write)
                args.lose_next_write = 0
            return self.failed("error_after")
        if target in WRITES and status == 200 and chance(args.error_after):
            return self.failed("error_after")
        self.reply(status, headers, data)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that closed its connection (the SDK drops one after a
        # 500 or a timeout) is not the proxy's error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of DynamoDB Local")
    p.add_argument("--port", type=int, default=0)
    for name in ("throttle", "conflict", "error", "error-after", "stale", "hang"):
        p.add_argument("--" + name, type=float, default=0.0)
    p.add_argument("--latency", type=float, default=0.0, help="max added ms")
    p.add_argument("--stale-age", type=float, default=1.0)
    p.add_argument("--lose-next-write", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    if args.seed is not None:
        rng.seed(args.seed)
    hostport = args.upstream.split("//", 1)[-1].rstrip("/")
    args.upstream_host, port = hostport.rsplit(":", 1)
    args.upstream_port = int(port)
    server = Server(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.local = threading.local()
    print(os.getpid(), server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
