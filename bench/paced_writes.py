"""Write at a steady rate beside a wrk run: alternately create a patient and
PATCH a loaded one, paced to RATE writes per second for SECONDS, from four
keep-alive connections. Prints one JSON line: the rate reached and the
writes' latency. Python standard library only; loopback only.
Usage: paced_writes.py HOST PORT KEY IDS_FILE RATE SECONDS CLINIC STATUS REFERRAL"""
import http.client
import json
import random
import sys
import threading
import time

host, port, key, ids_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rate, seconds = float(sys.argv[5]), float(sys.argv[6])
clinic, status, referral = sys.argv[7], sys.argv[8], sys.argv[9]
ids = [l.strip() for l in open(ids_file) if l.strip()]
CITIES = ["Leeds", "York", "London", "Manchester", "Bristol", "Hull", "Bradford", "Sheffield"]
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
lock = threading.Lock()
latencies, failures = [], []
start = time.monotonic()
total = int(rate * seconds)
next_slot = [0]


def worker(seed):
    rnd = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while True:
        with lock:
            i = next_slot[0]
            next_slot[0] += 1
        if i >= total:
            return
        due = start + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if i % 2 == 0:
            method, path = "POST", "/v1/patients"
            body = {"fullName": f"Paced Writer {i}", "emailAddress": f"paced{seed}-{i}@example.com",
                    "address": {"city": rnd.choice(CITIES), "country": "GBR"}, "age": rnd.randint(20, 90),
                    "gender": "female", "primaryPhoneNumber": f"07700 9{i % 100000:05d}",
                    "tracking": {"source": "bench"}, "primaryClinicId": clinic, "statusId": status, "referralId": referral}
        else:
            method, path = "PATCH", f"/v1/patients/{rnd.choice(ids)}"
            body = {"address": {"city": rnd.choice(CITIES)}, "age": rnd.randint(20, 90)}
        t0 = time.monotonic()
        try:
            conn.request(method, path, json.dumps(body), headers)
            r = conn.getresponse()
            data = r.read()
            ok = r.status in (200, 201)
            if not ok and not failures:
                print(f"{method} {path}: {r.status} {data[:300]!r}", file=sys.stderr)
        except OSError:
            ok = False
            conn = http.client.HTTPConnection(host, port, timeout=30)
        with lock:
            (latencies if ok else failures).append(time.monotonic() - t0)


threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
latencies.sort()
def pct(p):
    return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None
print(json.dumps({"target_per_s": rate, "writes": len(latencies), "failed": len(failures),
                  "per_s": round(len(latencies) / elapsed, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99)}))
