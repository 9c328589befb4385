"""Load N varied patients into a running hub with a few concurrent workers;
print their ids, one per line. Python standard library only."""
import http.client
import json
import sys
import threading

host, port, key, total, clinic, status, referral = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
FIRST = ["Ann", "Bob", "Cara", "Dev", "Eve", "Finn", "Gita", "Hugo", "Isla", "Jack", "Kira", "Liam", "Mia", "Noah", "Olu", "Pia"]
LAST = ["Smith", "Jones", "Patel", "Brown", "Khan", "Evans", "Wright", "Green", "Hall", "Wood", "Clarke", "Singh"]
CITIES = ["Leeds", "York", "London", "Manchester", "Bristol", "Hull", "Bradford", "Sheffield"]
GENDERS = ["female", "male", "non-binary", "unknown"]


def body(i):
    return {
        "fullName": f"{FIRST[i % 16]} {LAST[(i // 16) % 12]} {i}",
        "primaryPhoneNumber": f"07700 9{i % 100000:05d}",
        "emailAddress": f"p{i}@example.com",
        "dob": f"{1940 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "age": 20 + i % 70,
        "gender": GENDERS[i % 4],
        "address": {"line1": f"{i % 200} High Street", "city": CITIES[(i * 7) % 8], "postcode": "LS1 1AA", "country": "GBR"},
        "tracking": {"source": "google", "campaign": f"c{i % 5}"},
        "primaryClinicId": clinic,
        "statusId": status,
        "referralId": referral,
    }


ids = [None] * total
lock = threading.Lock()
counter = [0]
errors = []


def worker():
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while True:
        with lock:
            i = counter[0]
            counter[0] += 1
        if i >= total:
            return
        conn.request("POST", "/v1/patients", json.dumps(body(i)), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 201:
            errors.append((r.status, data[:200]))
            return
        ids[i] = json.loads(data)["id"]


threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit(f"load failed: {errors[0]}")
print("\n".join(ids))
