"""Seed data for bench/domain.sh and measure availability latency.

Usage: domain.py setup HOST PORT KEY        -> prints shell exports
       domain.py availability HOST PORT KEY PRACTITIONER ATY N
"""
import http.client
import json
import statistics
import sys
import time


def call(conn, method, path, key, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read() or b"null")
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data}")
    return data


def setup(host, port, key):
    c = http.client.HTTPConnection(host, port)
    clinic = call(c, "POST", "/v1/clinics", key, {"name": "Bench", "timeZone": "Europe/London"})["id"]
    st = call(c, "POST", "/v1/patient-statuses", key, {"name": "Active"})["id"]
    ref = call(c, "POST", "/v1/referral-sources", key, {"name": "Google"})["id"]
    patient = call(c, "POST", "/v1/patients", key, {
        "fullName": "Bench Patient", "primaryPhoneNumber": "07700 900123", "tracking": {},
        "primaryClinicId": clinic, "statusId": st, "referralId": ref})["id"]
    aty = call(c, "POST", "/v1/appointment-types", key,
               {"name": "Test", "durationMinutes": 30, "price": 7500, "currency": "GBP"})["id"]
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    hours = [{"clinicId": clinic, "day": d, "start": "08:00", "end": "20:00"} for d in days]
    prcs = [call(c, "POST", "/v1/practitioners", key,
                 {"fullName": f"Dr {i}", "clinicIds": [clinic], "workingHours": hours})["id"]
            for i in range(41)]
    # 500 appointments for the first practitioner over the next 31 days.
    busy = prcs[0]
    day0 = (int(time.time()) // 86400 + 1) * 86400
    made = 0
    for d in range(31):
        for h in range(17):
            if made == 500:
                break
            start = day0 + d * 86400 + 8 * 3600 + h * 1800 * 1.5
            call(c, "POST", "/v1/appointments", key, {
                "patientId": patient, "practitionerId": busy, "clinicId": clinic,
                "appointmentTypeId": aty,
                "startAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start))})
            made += 1
    invoices = [call(c, "POST", "/v1/invoices", key, {
        "patientId": patient, "currency": "GBP", "status": "open",
        "lineItems": [{"description": "Aids", "quantity": 1, "unitAmount": 10**12}]})["id"]
        for _ in range(64)]
    # 64 members, each with a year's membership, for check-ins.
    gold = call(c, "POST", "/v1/packages", key, {"name": "Gold", "type": "membership",
                "price": 9900, "currency": "GBP", "durationDays": 365})["id"]
    members = []
    for i in range(64):
        m = call(c, "POST", "/v1/patients", key, {
            "fullName": f"Member {i}", "primaryPhoneNumber": "07700 900123", "tracking": {},
            "primaryClinicId": clinic, "statusId": st, "referralId": ref})["id"]
        call(c, "POST", "/v1/purchases", key, {"patientId": m, "packageId": gold})
        members.append(m)
    print(f"export MEMBERS={','.join(members)}")
    print(f"export PATIENT_ID={patient} CLINIC_ID={clinic} ATY_ID={aty} BUSY={busy}")
    print(f"export PRACTITIONERS={','.join(prcs[1:])}")
    print(f"export INVOICES={','.join(invoices)}")
    print(f"export BASE_SECS={day0 + 400 * 86400}")


def availability(host, port, key, prc, aty, n):
    c = http.client.HTTPConnection(host, port)
    day0 = (int(time.time()) // 86400 + 1) * 86400
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day0))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day0 + 31 * 86400))
    path = f"/v1/availability?appointmentTypeId={aty}&practitionerId={prc}&from={frm}&to={to}"
    times, slots = [], 0
    for _ in range(int(n)):
        t = time.perf_counter()
        body = call(c, "GET", path, key)
        times.append((time.perf_counter() - t) * 1000)
        slots = len(body["data"])
    times.sort()
    print(json.dumps({"slots": slots, "p50_ms": round(statistics.median(times), 2),
                      "p99_ms": round(times[int(len(times) * 0.99) - 1], 2)}))


if __name__ == "__main__":
    {"setup": setup, "availability": availability}[sys.argv[1]](*sys.argv[2:])
