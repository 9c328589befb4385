"""A minimal Lambda Runtime API on 127.0.0.1 for measuring a function's
cold start: serves one invocation (the event file given), then reports
(as JSON on stdout) the time from process start to the first
`GET /next` (init) and from handing out the event to the response
(first invoke). Usage: runtime_stub.py EVENT_FILE -- COMMAND..."""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

event = open(sys.argv[1], "rb").read()
command = sys.argv[sys.argv.index("--") + 1:]
marks = {}
done = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/invocation/next"):
            if "init" not in marks:
                marks["init"] = time.perf_counter()
                marks["handed"] = time.perf_counter()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-2:123456789012:function:bench")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(event)))
                self.end_headers()
                self.wfile.write(event)
            else:
                done.wait(5)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if "/response" in self.path:
            marks["response"] = time.perf_counter()
            marks["body"] = body.decode(errors="replace")[:2000]
        else:
            marks["error"] = body.decode(errors="replace")[:300]
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        done.set()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # The function is killed while its second `GET /next` waits: expected.
        pass


server = QuietServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
           AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
           AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench")
start = time.perf_counter()
proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
done.wait(30)
proc.kill()
err = proc.communicate()[1].decode(errors="replace")[-500:]
out = {
    "init_ms": round((marks["init"] - start) * 1000, 2) if "init" in marks else None,
    "first_invoke_ms": round((marks["response"] - marks["handed"]) * 1000, 2) if "response" in marks else None,
    "response": marks.get("body"), "error": marks.get("error"), "stderr": err if "response" not in marks else "",
}
print(json.dumps(out))
