"""Browser tests of the developer dashboard (/dashboard).

Playwright for Python drives Debian's chromium (headless) against a real
`hub serve` (the binary, in its own process, over a fresh data directory)
and the real webhook receiver (tests/webhooks/receiver.py, which checks
every signature with the official stripe and standardwebhooks libraries).
scripts/test.sh runs it:

    .venv/bin/python tests/browser/dashboard.py target/debug/hub

Screenshots of every page, at desktop width and at 360 px, are written to
target/dashboard-screenshots/. Exits non-zero on the first failed scenario
(with a screenshot of the page as it was).
"""

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
HUB = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/debug/hub").resolve()
SHOTS = ROOT / "target/dashboard-screenshots"
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WAIT = 20_000  # ms: an upper bound for something to appear, not a pace
XSS_NAME = '<img src=x onerror="alert(1)">Bobby'
XSS_NOTES = '<script>alert("notes")</script><img src=x onerror=alert(2)> & "quotes"'


def lines_of(stream, sink):
    for line in iter(stream.readline, ""):
        sink.put(line.rstrip("\n"))


class Hub:
    """`hub serve` on a free port, over its own data directory."""

    def __init__(self, data):
        self.data = data
        self.proc = subprocess.Popen(
            [str(HUB), "serve", "--addr", "127.0.0.1:0", "--data", data, "--rate-limit", "off", "--retry-schedule", "1h"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = queue.Queue()
        self.err = queue.Queue()
        threading.Thread(target=lines_of, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=lines_of, args=(self.proc.stderr, self.err), daemon=True).start()
        self.base = None
        self.lines = []
        deadline = time.time() + 60
        while self.base is None:
            line = self.out.get(timeout=max(0.1, deadline - time.time()))
            if line.startswith("Practice Hub listening on "):
                self.base = line.split()[-1]

    def org(self, name):
        """`hub org create --json` beside the running server: all four keys."""
        out = subprocess.run(
            [str(HUB), "org", "create", "--name", name, "--json", "--data", self.data],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    def log(self):
        """Every line the server wrote on stderr so far."""
        while not self.err.empty():
            self.lines.append(self.err.get())
        return self.lines

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class OtherOrigin:
    """A site on another origin (a second port on 127.0.0.1), as a clinic's
    own web pages are: `page(path_and_query)` gives each GET's HTML."""

    def __init__(self, page):
        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                body = page(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class Receiver:
    """tests/webhooks/receiver.py: /ok answers 200, /fail 500."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/webhooks/receiver.py"), "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base = f"http://127.0.0.1:{self.proc.stdout.readline().strip()}"

    def secrets(self, path, secrets):
        http("POST", f"{self.base}/_secrets", body={"path": path, "secrets": secrets})

    def log(self):
        return http("GET", f"{self.base}/_log")[1]

    def wait(self, what, done):
        for _ in range(400):
            log = self.log()
            if done(log):
                return log
            time.sleep(0.05)
        raise AssertionError(f"receiver never saw {what}: {json.dumps(self.log())[:2000]}")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def parsed(raw):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode()


def http(method, url, key=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, parsed(raw), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, parsed(raw), {k.lower(): v for k, v in e.headers.items()}


class Console:
    """Every console error and uncaught exception of every page; a scenario
    that provokes one on purpose (an API error) says so with `expect`."""

    def __init__(self):
        self.errors = []
        self.allowed = None

    def watch(self, page):
        page.on("console", lambda m: self.seen(page, m.type, m.text))
        page.on("pageerror", lambda e: self.seen(page, "pageerror", str(e)))

    def seen(self, page, kind, text):
        if kind not in ("error", "pageerror"):
            return
        if self.allowed is not None and kind == "error" and re.search(self.allowed[0], text):
            self.allowed[1].append(text)
            return
        self.errors.append(f"{page.url}: {kind}: {text}")

    @contextmanager
    def expect(self, pattern):
        self.allowed = (pattern, [])
        try:
            yield
        finally:
            got = self.allowed[1]
            self.allowed = None
        assert got, f"expected a console error matching {pattern!r}"


class Suite:
    def __init__(self, pw):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory(prefix="hub-dashboard-")
        self.hub = Hub(self.tmp.name)
        self.receiver = Receiver()
        self.org = self.hub.org("St. Mungo's Clinic")
        self.test_key = self.org["keys"]["test"]["secret"]
        self.live_key = self.org["keys"]["live"]["secret"]
        self.all_keys = [k for mode in self.org["keys"].values() for k in mode.values()]
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        self.console = Console()
        self.dialogs = []
        self.requests = []
        self.context = self.browser.new_context(viewport=DESKTOP)
        self.page = self.new_page()
        self.state = {}

    def new_page(self):
        page = self.context.new_page()
        self.console.watch(page)
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: self.requests.append((r.url, r.headers.get("authorization"))))
        return page

    def url(self, fragment=""):
        return f"{self.hub.base}/dashboard{fragment}"

    def api(self, method, path, body=None, key=None):
        return http(method, f"{self.hub.base}{path}", key or self.test_key, body)

    def go(self, fragment, heading):
        self.page.goto(self.url(fragment))
        expect(self.page.get_by_role("heading", level=1)).to_have_text(heading, timeout=WAIT)

    def shoot(self, name):
        """Full-page screenshots at desktop width and at 360 px; at 360 px
        the page itself must not scroll sideways."""
        page = self.page
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(100)
        page.screenshot(path=str(SHOTS / f"{name}-360.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} scrolls sideways at 360 px ({width} px wide)"
        page.set_viewport_size(DESKTOP)

    def close(self):
        self.browser.close()
        self.receiver.stop()
        self.hub.stop()
        self.tmp.cleanup()


# ---------------------------------------------------------------- scenarios


def served_with_strict_headers(s):
    status, _, headers = http("GET", s.url())
    h = headers
    assert status == 200 and h["content-type"].startswith("text/html"), h
    csp = h["content-security-policy"]
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"]:
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff", h
    status, _, headers = http("GET", s.url("/app.js"))
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    status, body, _ = http("GET", s.url("/nothing.js"))
    assert status == 404 and body["name"] == "NOT_FOUND" and UUID.match(body["eventId"]), body
    # Framing is refused by the browser itself.
    # Framing is refused by the browser itself (set_content waits for the
    # frames to load); /health, which sets no such header, frames fine.
    framer = s.context.new_page()
    framer.set_content(f'<iframe src="{s.url()}"></iframe><iframe src="{s.hub.base}/health"></iframe>')
    dashboard, health = framer.frames[1], framer.frames[2]
    assert health.url.endswith("/health") and '"ok"' in health.content(), health.url
    assert dashboard.url.startswith("chrome-error://"), dashboard.url
    assert dashboard.query_selector("#main") is None
    framer.close()


def paste_a_key(s):
    page = s.page
    page.goto(s.url())
    expect(page.get_by_role("heading", level=1)).to_have_text("Paste your test key", timeout=WAIT)
    key_box = page.get_by_label("Secret key")
    # A publishable key, a malformed one and an unknown one are refused.
    key_box.fill(s.org["keys"]["test"]["publishable"])
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert")).to_contain_text("publishable key")
    key_box.fill("not a key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert")).to_contain_text("A key looks like")
    with s.console.expect("status of 401"):
        key_box.fill("sk_test_" + "0" * 40)
        page.get_by_role("button", name="Use this key").click()
        expect(page.get_by_role("alert")).to_contain_text("AUTH_ERROR")
        event_id = page.locator(".error .event-id").inner_text()
        assert UUID.match(event_id), event_id
    # The real test secret key.
    key_box.fill(s.test_key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview", timeout=WAIT)
    overview = page.locator("main")
    expect(overview).to_contain_text("St. Mungo's Clinic")
    expect(overview).to_contain_text(s.org["organizationId"])
    expect(overview.get_by_role("region", name="Requests in the last hour")).to_contain_text("Not available")
    expect(overview.get_by_role("link", name="OpenAPI document")).to_have_attribute("href", "/openapi.json")
    # Kept in this tab's sessionStorage only; never in the page's text.
    stored = page.evaluate("({s: {...sessionStorage}, l: localStorage.length, c: document.cookie})")
    assert stored["s"].get("hub.key.test") == s.test_key and stored["l"] == 0 and stored["c"] == "", stored
    assert s.test_key not in page.content()
    expect(page.locator(".key-in-use")).to_contain_text(s.test_key[-4:])
    # Test mode colours the page; the switch is in the header.
    assert page.evaluate("document.body.classList.contains('test-mode')")
    expect(page.locator("#test-banner")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 247, 237)"
    expect(page.get_by_role("button", name="Test", exact=True)).to_have_attribute("aria-pressed", "true")
    # A reload keeps the key (same tab).
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview", timeout=WAIT)
    s.shoot("overview")


def create_an_endpoint(s):
    page = s.page
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks", timeout=WAIT)
    expect(page.locator("main")).to_contain_text("No webhook endpoints in this mode yet.")
    page.get_by_role("button", name="Add an endpoint").click()
    page.get_by_label("Endpoint URL").fill(f"{s.receiver.base}/ok")
    page.get_by_label("Description").fill("Reception system")
    # The picker is built from the catalog: `*`, `resource.*` and each type.
    picker = page.get_by_role("group", name="Events to send")
    expect(picker.get_by_label("All events (*)")).to_be_visible()
    picker.get_by_label("All patient events (patient.*)").check()
    expect(picker.get_by_label("patient.created", exact=True)).to_be_disabled()
    picker.get_by_label("clinic.created", exact=True).check()
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 1 name").fill("X-Custom-Auth")
    page.get_by_label("Header 1 value").fill("token-123")
    s.shoot("webhooks-new")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{s.receiver.base}/ok", timeout=WAIT)
    secret = page.locator(".secret-value").inner_text()
    assert secret.startswith("whsec_"), secret
    endpoint_id = page.locator(".crumbs").inner_text().split(" / ")[-1]
    status, ep, _ = s.api("GET", f"/v1/webhook-endpoints/{endpoint_id}")
    assert status == 200, ep
    assert sorted(ep["enabledEvents"]) == ["clinic.created", "patient.*"], ep
    # Header values are write-only: masked when read, shown by reveal-secret.
    assert ep["headers"] == {"X-Custom-Auth": "****"} and ep["description"] == "Reception system", ep
    status, revealed, _ = s.api("POST", f"/v1/webhook-endpoints/{endpoint_id}/reveal-secret", {})
    assert status == 200 and revealed["headers"] == {"X-Custom-Auth": "token-123"}, revealed
    expect(page.locator("main")).to_contain_text("X-Custom-Auth (values hidden)")
    assert "token-123" not in page.locator("main").inner_text()
    # Editing the endpoint keeps a hidden header value it does not retype.
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Description").fill("Reception system (edited)")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main")).to_contain_text("Reception system (edited)", timeout=WAIT)
    status, revealed, _ = s.api("POST", f"/v1/webhook-endpoints/{endpoint_id}/reveal-secret", {})
    assert revealed["headers"] == {"X-Custom-Auth": "token-123"}, revealed
    s.receiver.secrets("/ok", [secret])
    s.state.update(ok_id=endpoint_id, ok_secret=secret)


def test_event_is_delivered(s):
    page = s.page
    log = page.get_by_role("region", name="Delivery log")
    expect(log).to_contain_text("No delivery attempts yet")
    page.get_by_role("button", name="Send test event").click()
    expect(page.locator(".notice-ok")).to_contain_text("Test event evt_")
    # The log refreshes itself: no reload, no click.
    row = log.locator("tbody tr", has_text="test.event")
    expect(row).to_have_count(1, timeout=WAIT)
    expect(row.locator('td[data-label="Status"]')).to_have_text("succeeded", timeout=WAIT)
    expect(row.locator('td[data-label="Response"]')).to_have_text("200")
    expect(row.locator('td[data-label="Attempt"]')).to_have_text("1")
    expect(row.locator('td[data-label="Duration"]')).to_contain_text(" ms")
    seen = s.receiver.wait("the test event", lambda log: any(e["type"] == "test.event" and e["path"] == "/ok" for e in log))
    hit = next(e for e in seen if e["type"] == "test.event")
    assert hit["custom"] == "token-123" and hit["stripe"] == [True] and hit["standard"] == [True], hit
    # A real event the picker subscribed to arrives as well.
    status, patient, _ = s.api("POST", "/v1/patients", patient_body(s, "Delivered Patient"))
    assert status == 201, patient
    expect(log.locator("tbody tr", has_text="patient.created")).to_have_count(1, timeout=WAIT)
    s.receiver.wait("patient.created", lambda log: any(e["type"] == "patient.created" and e["body"]["data"]["id"] == patient["id"] for e in log))
    s.shoot("webhook-detail")


def reveal_and_roll_the_secret(s):
    page = s.page
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.locator(".secret-value")).to_have_text(s.state["ok_secret"])
    page.get_by_label("Old secret keeps signing for (hours, 0–24)").fill("1")
    page.get_by_role("button", name="Roll secret").click()
    expect(page.get_by_role("region", name="New signing secret")).to_contain_text("also signs until")
    new_secret = page.locator(".secret-value").inner_text()
    assert new_secret.startswith("whsec_") and new_secret != s.state["ok_secret"]
    page.get_by_role("button", name="Hide secret").click()
    expect(page.locator(".secret-value")).to_have_count(0)
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.locator(".secret-value")).to_have_text(new_secret)
    s.receiver.secrets("/ok", [new_secret, s.state["ok_secret"]])


def failing_receiver_shows_the_next_retry(s):
    page = s.page
    page.goto(s.url("#/webhooks/new"))
    page.get_by_label("Endpoint URL").fill(f"{s.receiver.base}/fail")
    page.get_by_label("Description").fill('<img src=x onerror="alert(3)">desk')
    page.get_by_role("group", name="Events to send").get_by_label("All patient events (patient.*)").check()
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{s.receiver.base}/fail", timeout=WAIT)
    expect(page.locator("main")).to_contain_text('<img src=x onerror="alert(3)">desk')
    s.state["fail_id"] = page.locator(".crumbs").inner_text().split(" / ")[-1]
    page.get_by_role("button", name="Send test event").click()
    log = page.get_by_role("region", name="Delivery log")
    row = log.locator("tbody tr", has_text="test.event")
    expect(row).to_have_count(1, timeout=WAIT)
    expect(row.locator('td[data-label="Status"]')).to_have_text("failed", timeout=WAIT)
    expect(row.locator('td[data-label="Response"]')).to_have_text("500")
    expect(row.locator('td[data-label="Error"]')).not_to_have_text("—")
    # --retry-schedule 1h: the next attempt is due in about an hour (±20 %).
    expect(row.locator('td[data-label="Next retry"]')).to_contain_text(re.compile(r"\(in (4\d|5\d|6\d|7[0-5]) min|\(in 1 h\)"))
    when = row.locator('td[data-label="Next retry"] time').get_attribute("datetime")
    status, deliveries, _ = s.api("GET", f"/v1/webhook-endpoints/{s.state['fail_id']}/deliveries")
    assert deliveries["data"][0]["nextRetryAt"] == when, (deliveries, when)
    # Redeliver from the log: a second attempt appears by itself.
    row.get_by_role("button", name="Redeliver").click()
    expect(log.locator("tbody tr", has_text="test.event")).to_have_count(2, timeout=WAIT)
    expect(page.locator("dd .failures")).to_have_text("2", timeout=WAIT)
    expect(page.get_by_role("group", name="Endpoint actions")).to_be_visible()
    s.shoot("webhook-failing")
    # Disable, then re-enable.
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("dl .badge")).to_have_text("disabled", timeout=WAIT)
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("dl .badge")).to_have_text("enabled", timeout=WAIT)
    # The list shows both endpoints with their status and failed attempts.
    page.get_by_role("link", name="Webhooks").first.click()
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(2, timeout=WAIT)
    fail_row = rows.filter(has_text="/fail")
    expect(fail_row.locator('td[data-label="Failed attempts"]')).to_have_text("2", timeout=WAIT)
    expect(rows.filter(has_text="/ok").locator('td[data-label="Failed attempts"]')).to_have_text("0", timeout=WAIT)
    expect(fail_row.locator('td[data-label="Status"]')).to_have_text("enabled")
    s.shoot("webhooks")


def events_filter_view_and_redeliver(s):
    page = s.page
    s.go("#/events", "Events")
    page.get_by_label("Event type").select_option("webhookEndpoint.created")
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(2, timeout=WAIT)
    for t in rows.locator('td[data-label="type"]').all_inner_texts():
        assert t == "webhookEndpoint.created", t
    expect(page.locator(".request-line")).to_contain_text("type=webhookEndpoint.created")
    first_id = rows.first.get_by_role("button").inner_text()
    rows.first.get_by_role("button").click()
    detail = page.get_by_role("region", name="Event", exact=True)
    expect(detail.locator("pre")).to_contain_text(f'"id": "{first_id}"')
    expect(detail.locator("pre")).to_contain_text('"type": "webhookEndpoint.created"')
    # Nothing subscribes to webhookEndpoint.* here: say so; then pick /ok.
    detail.get_by_role("button", name="Redeliver").click()
    expect(detail.locator(".notice")).to_contain_text("No endpoint subscribes")
    detail.get_by_label("Send again to").select_option(s.state["ok_id"])
    detail.get_by_role("button", name="Redeliver").click()
    expect(detail.locator(".notice-ok")).to_contain_text(f"Queued for 1 endpoint: {s.state['ok_id']}")
    s.receiver.wait("the redelivered event", lambda log: any(e["eventId"] == first_id and e["path"] == "/ok" for e in log))
    s.shoot("events")


def patient_body(s, name, notes=None):
    if "refs" not in s.state:
        ids = []
        for path in ["/v1/clinics", "/v1/patient-statuses", "/v1/referral-sources"]:
            status, page, _ = s.api("GET", f"{path}?$limit=1")
            assert status == 200 and page["data"], page
            ids.append(page["data"][0]["id"])
        s.state["refs"] = ids
    clinic, status_id, referral = s.state["refs"]
    body = {
        "fullName": name,
        "primaryPhoneNumber": "07700 900123",
        "primaryClinicId": clinic,
        "statusId": status_id,
        "referralId": referral,
        "tracking": {"source": "dashboard-test"},
    }
    if notes is not None:
        body["notes"] = notes
    return body


def find_and_page_patients(s):
    page = s.page
    s.go("#/data/patients", "Data: Patients")
    status, everyone, _ = s.api("GET", "/v1/patients?$limit=100")
    target = everyone["data"][3]
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(10, timeout=WAIT)
    # Find one patient with a filter.
    page.get_by_label("Filter").fill(f"fullName={target['fullName']}")
    page.get_by_role("button", name="Apply").click()
    same_name = [e["id"] for e in everyone["data"] if e["fullName"] == target["fullName"]]
    expect(rows).to_have_count(len(same_name), timeout=WAIT)
    expect(page.locator(".request-line")).to_contain_text("fullName=")
    assert rows.locator('td[data-label="id"]').all_inner_texts() == same_name
    assert len(everyone["data"]) > 20 and len(same_name) < 3
    # Page with cursors, five at a time: pages never overlap, Previous returns.
    page.get_by_label("Filter").fill("$limit=5")
    page.get_by_role("button", name="Apply").click()
    ids = rows.locator('td[data-label="id"]')
    expect(ids).to_have_count(5, timeout=WAIT)
    first = ids.all_inner_texts()
    page.get_by_role("button", name="Next →").click()
    expect(ids.first).not_to_have_text(first[0], timeout=WAIT)
    second = ids.all_inner_texts()
    expect(page.locator(".request-line")).to_contain_text("$after=")
    page.get_by_role("button", name="Next →").click()
    expect(ids.first).not_to_have_text(second[0], timeout=WAIT)
    third = ids.all_inner_texts()
    assert not set(first) & set(second) and not set(second) & set(third), (first, second, third)
    assert first + second + third == [p["id"] for p in everyone["data"][:15]], "creation order, nothing skipped"
    page.get_by_role("button", name="← Previous").click()
    expect(ids.first).to_have_text(second[0], timeout=WAIT)
    assert ids.all_inner_texts() == second
    expect(page.locator(".request-line")).to_contain_text("$before=")
    # One object as JSON.
    rows.first.get_by_role("button").click()
    detail = page.get_by_role("region", name="Patients: one object")
    expect(detail.locator("pre")).to_contain_text(f'"id": "{second[0]}"', timeout=WAIT)
    table_stays_readable_beside_the_panel(s, detail)
    s.shoot("data")
    # An error from the API: its name, message and eventId.
    with s.console.expect("status of 400"):
        page.get_by_label("Filter").fill("noSuchField=1")
        page.get_by_role("button", name="Apply").click()
        alert = page.locator(".results .error")
        expect(alert).to_contain_text("INVALID_PARAMETERS", timeout=WAIT)
        expect(alert).to_contain_text("noSuchField")
        event_id = alert.locator(".event-id").inner_text()
        assert UUID.match(event_id), event_id
    assert any(event_id in line for line in s.hub.log()), "the eventId is in the hub's log"
    s.shoot("data-error")
    # Other resources come from the OpenAPI document.
    page.get_by_role("navigation", name="Resources").get_by_role("link", name="Clinics").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Data: Clinics", timeout=WAIT)
    expect(page.locator("main thead")).to_contain_text("name")


def table_stays_readable_beside_the_panel(s, detail):
    """At 1280 px with the detail panel open beside it, the table stays
    readable: every id and time on one line, no cell's content clipped, the
    page itself not scrolling sideways (a wide table scrolls inside its
    frame), and each row's createdAt shown whole once scrolled to."""
    page = s.page
    page.set_viewport_size(DESKTOP)
    wrap = page.locator("main .table-wrap")
    expect(wrap).to_be_visible(timeout=WAIT)
    table_box, panel_box = wrap.bounding_box(), detail.bounding_box()
    assert panel_box["x"] >= table_box["x"] + table_box["width"] - 1, ("the panel is beside the table", table_box, panel_box)
    found = page.evaluate(
        """() => {
          const wrap = document.querySelector("main .table-wrap");
          const lines = (el) => {
            const r = document.createRange();
            r.selectNodeContents(el);
            // One line box: every fragment of the text shares one top.
            return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size;
          };
          const cells = [...wrap.querySelectorAll("tbody td")];
          const col = (label) => cells.filter((td) => td.dataset.label === label);
          return {
            ids: col("id").map((td) => [td.innerText, lines(td.querySelector("button")), td.getBoundingClientRect().height]),
            times: col("createdAt").map((td) => [td.innerText, lines(td.querySelector("time"))]),
            clipped: cells.filter((td) => td.scrollWidth > td.clientWidth + 1).map((td) => [td.dataset.label, td.innerText]),
            rowHeight: wrap.querySelector("thead th").getBoundingClientRect().height,
            pageWidth: document.documentElement.scrollWidth,
            viewport: window.innerWidth,
            wrapOverflow: getComputedStyle(wrap).overflowX,
          };
        }"""
    )
    assert found["ids"] and found["times"], found
    for text, lines, height in found["ids"]:
        assert lines == 1, f"the id {text} wraps onto {lines} lines"
        assert height < 3 * found["rowHeight"], f"the id cell of {text} is {height} px high"
    for text, lines in found["times"]:
        assert lines == 1, f"createdAt {text} wraps onto {lines} lines"
    assert not found["clipped"], f"cells cut off: {found['clipped']}"
    assert found["pageWidth"] <= found["viewport"], f"the page scrolls sideways ({found['pageWidth']} px)"
    assert found["wrapOverflow"] == "auto", found["wrapOverflow"]
    # Scrolled to, each createdAt is inside the table's frame, whole.
    for cell in wrap.locator('td[data-label="createdAt"]').all():
        cell.scroll_into_view_if_needed()
        box, frame = cell.bounding_box(), wrap.bounding_box()
        assert box["x"] >= frame["x"] - 1 and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1, (box, frame)
        expect(cell).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    page.screenshot(path=str(SHOTS / "data-detail-1280.png"))
    wrap.evaluate("w => { w.scrollLeft = 0; }")


def xss_payloads_render_as_text(s):
    page = s.page
    status, patient, _ = s.api("POST", "/v1/patients", patient_body(s, XSS_NAME, XSS_NOTES))
    assert status == 201, patient
    s.go("#/data/patients", "Data: Patients")
    page.get_by_label("Filter").fill(f"id={patient['id']}&$select[]=fullName&$select[]=notes")
    page.get_by_role("button", name="Apply").click()
    row = page.locator("main tbody tr")
    expect(row).to_have_count(1, timeout=WAIT)
    expect(row.locator('td[data-label="fullName"]')).to_have_text(XSS_NAME)
    expect(row.locator('td[data-label="notes"]')).to_have_text(XSS_NOTES)
    expect(page.get_by_text(XSS_NAME)).to_be_visible()
    row.get_by_role("button").click()
    expect(page.locator(".detail pre")).to_contain_text(json.dumps(XSS_NOTES)[1:-1], timeout=WAIT)
    # The event carries it too.
    s.go(f"#/events", "Events")
    page.get_by_label("Filter").fill(f"data.id={patient['id']}")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("main tbody tr")).to_have_count(1, timeout=WAIT)
    page.locator("main tbody tr").get_by_role("button").click()
    expect(page.locator(".detail pre")).to_contain_text(json.dumps(XSS_NAME)[1:-1], timeout=WAIT)
    page.wait_for_timeout(300)
    assert s.dialogs == [], s.dialogs
    assert page.evaluate("document.querySelectorAll('img[src=x], main script').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    s.state["xss_id"] = patient["id"]


def live_mode_hides_test_objects(s):
    page = s.page
    s.go("#/data/patients", "Data: Patients")
    expect(page.locator("main tbody tr")).to_have_count(10, timeout=WAIT)
    page.get_by_role("button", name="Live", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Paste your live key", timeout=WAIT)
    page.get_by_label("Secret key").fill(s.live_key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Data: Patients", timeout=WAIT)
    expect(page.locator("main")).to_contain_text("No patients match.")
    expect(page.locator("main tbody tr")).to_have_count(0)
    assert s.state["xss_id"] not in page.content()
    assert not page.evaluate("document.body.classList.contains('test-mode')")
    expect(page.locator("#test-banner")).to_be_hidden()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    expect(page.get_by_role("button", name="Live", exact=True)).to_have_attribute("aria-pressed", "true")
    s.shoot("data-live")
    page.get_by_role("link", name="Webhooks").first.click()
    expect(page.locator("main")).to_contain_text("No webhook endpoints in this mode yet.", timeout=WAIT)
    page.get_by_role("link", name="Events").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Events", timeout=WAIT)
    expect(page.locator("main tbody tr")).to_have_count(0)
    # Back to test mode: its key is still there.
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("main tbody tr").first).to_be_visible(timeout=WAIT)
    assert page.evaluate("document.body.classList.contains('test-mode')")


def api_keys_page(s):
    """`/v1/api-keys` (issue 14) through the page: the standard keys listed
    (never in full), a restricted key made with the permission grid and
    working exactly as granted, edited, rolled with an overlap (both keys
    work), revoked (401 at once); standard keys cannot be revoked; the
    dashboard's own key rolled at once, the dashboard moving to the new
    one. Every new secret is shown once."""
    page = s.page
    s.go("#/keys", "API keys")
    table = page.locator("main tbody")
    expect(table.locator("tr").first).to_be_visible(timeout=WAIT)
    mine = table.locator("tr", has_text=f"sk_test_…{s.test_key[-4:]}")
    expect(mine).to_contain_text("(this dashboard)")
    expect(mine.locator('td[data-label="Type"]')).to_have_text("secret")
    expect(mine.locator('td[data-label="Status"]')).to_have_text("active")
    expect(table.locator("tr", has_text="pk_test_…")).to_have_count(1)
    assert s.test_key not in page.content()
    # Standard keys that work are rolled, never revoked.
    expect(mine.get_by_role("button", name="Revoke")).to_have_count(0)

    # A restricted key with the permission grid; its secret shown once.
    page.get_by_role("button", name="Create a restricted key").click()
    page.get_by_label("Note", exact=True).fill('Reports <img src=x onerror="alert(4)">')
    page.get_by_label("patients: read").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_role("region", name="New restricted key").locator(".secret-value")
    expect(secret).to_have_text(re.compile(r"^rk_test_[A-Za-z0-9]{40}$"), timeout=WAIT)
    rk = secret.inner_text()
    s.all_keys.append(rk)
    row = table.locator("tr", has_text="Reports")
    expect(row).to_contain_text('Reports <img src=x onerror="alert(4)">')
    expect(row.locator('td[data-label="Type"]')).to_have_text("restricted")
    status, listed, _ = s.api("GET", "/v1/api-keys?type=restricted")
    assert status == 200 and len(listed["data"]) == 1, listed
    rk_id = listed["data"][0]["id"]
    assert listed["data"][0]["permissions"] == {"patients": "read"}, listed
    assert rk not in json.dumps(listed)
    # It does exactly what it was granted.
    assert s.api("GET", "/v1/patients?$limit=1", key=rk)[0] == 200
    status, body, _ = s.api("POST", "/v1/clinics", {"name": "Nope"}, key=rk)
    assert status == 403 and body["name"] == "PERMISSIONS_ERROR" and "`clinics`" in body["message"], body

    # Edit: patients write, clinics read; then patients back to none.
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("patients: write").check()
    page.get_by_label("clinics: read").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".key-panel form")).to_have_count(0, timeout=WAIT)
    assert s.api("GET", f"/v1/api-keys/{rk_id}")[1]["permissions"] == {"patients": "write", "clinics": "read"}
    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("patients: write")).to_be_checked()
    page.get_by_label("patients: none").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".key-panel form")).to_have_count(0, timeout=WAIT)
    assert s.api("GET", f"/v1/api-keys/{rk_id}")[1]["permissions"] == {"clinics": "read"}
    assert s.api("GET", "/v1/patients?$limit=1", key=rk)[0] == 403

    # Roll it with an hour's overlap: a new secret, once; both keys work.
    row.get_by_role("button", name="Roll", exact=True).click()
    page.get_by_label("The old key keeps working for").select_option("1")
    page.get_by_role("button", name="Roll key").click()
    rolled = page.get_by_role("region", name="New key", exact=True).locator(".secret-value")
    expect(rolled).to_have_text(re.compile(r"^rk_test_[A-Za-z0-9]{40}$"), timeout=WAIT)
    rk2 = rolled.inner_text()
    s.all_keys.append(rk2)
    assert rk2 != rk
    old_row = table.locator("tr", has_text=f"rk_test_…{rk[-4:]}")
    new_row = table.locator("tr", has_text=f"rk_test_…{rk2[-4:]}")
    expect(old_row.locator('td[data-label="Status"]')).to_have_text("expiring", timeout=WAIT)
    expect(new_row.locator('td[data-label="Status"]')).to_have_text("active")
    assert s.api("GET", "/v1/clinics?$limit=1", key=rk)[0] == 200
    assert s.api("GET", "/v1/clinics?$limit=1", key=rk2)[0] == 200
    s.shoot("keys")
    # Revoke the old one now, then the new one: 401 at once.
    revoke = old_row.get_by_role("button", name="Revoke")
    revoke.click()
    old_row.get_by_role("button", name="Click again to revoke").click()
    expect(old_row).to_have_count(0, timeout=WAIT)
    assert s.api("GET", "/v1/clinics?$limit=1", key=rk)[0] == 401
    new_row.get_by_role("button", name="Revoke").click()
    new_row.get_by_role("button", name="Click again to revoke").click()
    expect(new_row).to_have_count(0, timeout=WAIT)
    assert s.api("GET", "/v1/clinics?$limit=1", key=rk2)[0] == 401

    # The dashboard's own key, rolled at once: it moves to the new key.
    old_key = s.test_key
    mine.get_by_role("button", name="Roll", exact=True).click()
    page.get_by_label("The old key keeps working for").select_option("0")
    page.get_by_role("button", name="Roll key").click()
    box = page.get_by_role("region", name="New key", exact=True)
    expect(box).to_contain_text("This dashboard now uses the new key", timeout=WAIT)
    new_key = box.locator(".secret-value").inner_text()
    assert re.match(r"^sk_test_[A-Za-z0-9]{40}$", new_key), new_key
    s.all_keys.append(new_key)
    s.test_key = new_key
    assert page.evaluate("sessionStorage.getItem('hub.key.test')") == new_key
    expect(table.locator("tr", has_text=f"sk_test_…{new_key[-4:]}")).to_contain_text("(this dashboard)", timeout=WAIT)
    revoked = table.locator("tr", has_text=f"sk_test_…{old_key[-4:]}")
    expect(revoked.locator('td[data-label="Status"]')).to_have_text("revoked")
    assert s.api("GET", "/v1/organization", key=old_key)[0] == 401
    assert s.api("GET", "/v1/organization", key=new_key)[0] == 200
    # A key that no longer works can be removed from the list.
    revoked.get_by_role("button", name="Remove").click()
    revoked.get_by_role("button", name="Click again to remove").click()
    expect(revoked).to_have_count(0, timeout=WAIT)
    s.go("#/overview", "Overview")
    assert s.dialogs == [], s.dialogs


def keyboard_navigation(s):
    page = s.page
    active = lambda: page.evaluate("document.activeElement.textContent")
    s.go("#/overview", "Overview")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview", timeout=WAIT)
    page.keyboard.press("Tab")
    assert active() == "Skip to content", active()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.tagName") == "H1"
    # From the top: the mode switch, then the navigation; Enter opens a page.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview", timeout=WAIT)
    reached = []
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.append(active())
        if reached[-1] == "Webhooks":
            break
    else:
        raise AssertionError(f"the Webhooks link is not reachable with Tab: {reached}")
    assert {"Test", "Live", "Forget keys", "API keys"} <= set(reached), reached
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks", timeout=WAIT)
    assert page.evaluate("document.activeElement.tagName") == "H1", "focus moves to the new page"
    reached = []
    for _ in range(10):
        page.keyboard.press("Tab")
        reached.append(active())
    assert "Add an endpoint" in reached, reached
    # Space on the focused button opens the form; its first field has focus.
    page.get_by_role("button", name="Add an endpoint").focus()
    page.keyboard.press("Space")
    assert page.evaluate("document.activeElement.type") == "url"


def a_key_that_stops_working_asks_for_another(s):
    """A key that no longer works (rolled or revoked): the key form comes
    back with the API's AUTH_ERROR, and the dead key is forgotten."""
    page = s.page
    dead = "sk_test_" + "1" * 40
    page.evaluate(f"sessionStorage.setItem('hub.key.test', '{dead}')")
    with s.console.expect("status of 401"):
        page.goto(s.url("#/events"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Paste your test key", timeout=WAIT)
        expect(page.get_by_role("alert")).to_contain_text("AUTH_ERROR")
    assert page.evaluate("sessionStorage.getItem('hub.key.test')") is None
    page.get_by_label("Secret key").fill(s.test_key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Events", timeout=WAIT)


def key_stays_on_this_origin(s):
    origin = s.hub.base
    for url, auth in s.requests:
        if url.startswith("data:") or url.startswith("about:"):
            continue
        assert url.startswith(origin), f"a request left the hub: {url}"
        assert not any(k in url for k in s.all_keys), "a key in a URL"
        if auth:
            assert url.startswith(f"{origin}/v1/"), f"a key sent to {url}"
    log = "\n".join(s.hub.log())
    for k in s.all_keys:
        assert k not in log, "a key in the hub's log"


def no_console_errors(s):
    assert s.console.errors == [], "\n".join(s.console.errors)
    assert s.dialogs == [], s.dialogs


SCENARIOS = [
    served_with_strict_headers,
    paste_a_key,
    create_an_endpoint,
    test_event_is_delivered,
    reveal_and_roll_the_secret,
    failing_receiver_shows_the_next_retry,
    events_filter_view_and_redeliver,
    find_and_page_patients,
    xss_payloads_render_as_text,
    live_mode_hides_test_objects,
    api_keys_page,
    keyboard_navigation,
    a_key_that_stops_working_asks_for_another,
    key_stays_on_this_origin,
    no_console_errors,
]


def main():
    started = time.time()
    only = [n for n in os.environ.get("HUB_DASHBOARD_ONLY", "").split(",") if n]
    scenarios = [f for f in SCENARIOS if not only or f.__name__ in only]
    for old in SHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as pw:
        s = Suite(pw)
        try:
            for scenario in scenarios:
                t = time.time()
                try:
                    scenario(s)
                except Exception:
                    shot = SHOTS / f"FAILED-{scenario.__name__}.png"
                    try:
                        s.page.screenshot(path=str(shot), full_page=True)
                    except Exception:
                        pass
                    traceback.print_exc()
                    print(f"FAIL dashboard::{scenario.__name__} (screenshot: {shot})")
                    if s.console.errors:
                        print("console errors so far:\n  " + "\n  ".join(s.console.errors))
                    return 1
                print(f"ok   dashboard::{scenario.__name__} ({time.time() - t:.1f} s)")
        finally:
            s.close()
    print(f"dashboard: {len(scenarios)} scenarios passed in {time.time() - started:.1f} s; screenshots in {SHOTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
