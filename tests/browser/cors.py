"""CORS as a browser checks it (Playwright for Python, Debian's chromium).

A web form on a clinic's own site (a page served from another origin: a
second port on 127.0.0.1) posts a patient to a real `hub serve` with a
publishable key and reads the 201, which takes a preflight whose
`Access-Control-Allow-Origin` the browser accepts (exactly one value). A
secret key used from that page gets no CORS grant: the browser refuses to
let the page read the answer. scripts/test.sh runs it:

    .venv/bin/python tests/browser/cors.py target/debug/hub
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard import CHROMIUM, FLAGS, Hub, OtherOrigin, http  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

FORM = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Book a hearing test</title></head>
<body><h1>Book a hearing test</h1>
<script>
async function send(base, key, method, path, body) {
  try {
    const r = await fetch(base + path, {
      method,
      headers: body ? {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
                    : {"Authorization": "Bearer " + key},
      body: body ? JSON.stringify(body) : undefined,
    });
    return {status: r.status, body: await r.json(), requestId: r.headers.get("request-id")};
  } catch (e) {
    return {refused: String(e)};
  }
}
</script></body></html>
"""


def main():
    started = time.time()
    tmp = tempfile.TemporaryDirectory(prefix="hub-cors-")
    site = OtherOrigin(lambda path: FORM)
    hub = Hub(tmp.name)
    try:
        org = hub.org("Clinic With A Web Form")
        secret = org["keys"]["test"]["secret"]
        publishable = org["keys"]["test"]["publishable"]
        refs = []
        for path in ["/v1/clinics", "/v1/patient-statuses", "/v1/referral-sources"]:
            status, page, _ = http("GET", f"{hub.base}{path}?$limit=1", secret)
            assert status == 200 and page["data"], page
            refs.append(page["data"][0]["id"])
        patient = {
            "fullName": "Web Form Patient",
            "primaryPhoneNumber": "07700 900123",
            "primaryClinicId": refs[0],
            "statusId": refs[1],
            "referralId": refs[2],
            "tracking": {"source": "clinic-web-form"},
        }
        assert site.base != hub.base
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page()
                refused = []
                page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
                page.goto(f"{site.base}/form")
                call = "([base, key, method, path, body]) => send(base, key, method, path, body)"

                # A publishable key: the preflight passes and the page reads the 201.
                got = page.evaluate(call, [hub.base, publishable, "POST", "/v1/patients", patient])
                assert got.get("status") == 201, f"publishable key from another origin: {got}"
                assert got["body"]["object"] == "patient" and got["body"]["id"], got
                assert got["requestId"], "Request-Id is exposed to the page"
                status, stored, _ = http("GET", f"{hub.base}/v1/patients/{got['body']['id']}", secret)
                assert status == 200 and stored["fullName"] == patient["fullName"], stored
                print("ok   cors::publishable_key_posts_a_patient_from_another_origin")

                # Errors are readable too (the page can tell the user why).
                got = page.evaluate(call, [hub.base, publishable, "GET", "/v1/clinics", None])
                assert got.get("status") == 403 and got["body"]["name"] == "PERMISSIONS_ERROR", got
                print("ok   cors::publishable_key_errors_are_readable")

                # A secret key gets no CORS grant: the browser refuses the answer.
                before = len(refused)
                got = page.evaluate(call, [hub.base, secret, "GET", "/v1/patients", None])
                assert "refused" in got, f"a secret key was usable from a browser: {got}"
                assert any("CORS" in m or "Access-Control-Allow-Origin" in m for m in refused[before:]), refused
                print("ok   cors::secret_key_gets_no_cors_grant")
            finally:
                browser.close()
        log = "\n".join(hub.log())
        for k in [k for mode in org["keys"].values() for k in mode.values()]:
            assert k not in log, "a key in the hub's log"
        assert "Web Form Patient" not in log, "a patient field in the hub's log"
    finally:
        site.stop()
        hub.stop()
        tmp.cleanup()
    print(f"cors: 3 scenarios passed in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
