"""The booking widget (`/widget.js`, docs/widget.md) in a browser (Playwright
for Python, Debian's chromium), embedded in a clinic's own page served from
another origin (a second port on 127.0.0.1) with the canonical snippet:

    <div id="booking"></div>
    <script src="HUB/widget.js" data-key="pk_test_…"
      data-appointment-type="aty_…" data-target="#booking"></script>

Scenarios: a visitor books a slot (the `practicehub:booked` CustomEvent and
the postMessage carry the appointment; the patient got the organization's
defaults) and the next visitor is not offered it; a slot taken meanwhile
gives a clear message and fresh slots; at 360 px, by keyboard, with
`data-redirect`. No console error anywhere (but the 409 the browser logs
in the taken-slot scenario). scripts/test.sh runs it:

    .venv/bin/python tests/browser/widget.py target/debug/hub
"""

import re
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime
from zoneinfo import ZoneInfo
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard import CHROMIUM, FLAGS, PHONE, ROOT, WAIT, Console, Hub, OtherOrigin, http  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

SHOTS = ROOT / "target/widget-screenshots"
TIME = re.compile(r"^\d\d:\d\d\b")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Book a hearing test</title></head>
<body><h1>Book a hearing test</h1>
<div id="booking"></div>
<script>
window.booked = []; window.messages = [];
document.addEventListener("practicehub:booked", e => window.booked.push(e.detail));
window.addEventListener("message", e => { if (e.data && e.data.type) window.messages.push(e.data); });
</script>
<script src="HUB/widget.js" data-key="KEY" data-appointment-type="ATY" data-target="#booking"EXTRA></script>
</body></html>
"""


def make_site(hub, key, aty):
    """The clinic's own site: `/book` (the snippet), `/thanks`."""

    def page(path):
        url = urllib.parse.urlsplit(path)
        if url.path != "/book":
            return b"<!doctype html><title>Thanks</title><h1>Thanks</h1>"
        q = urllib.parse.parse_qs(url.query)
        extra = ""
        if "redirect" in q:
            extra = f' data-redirect="{other.base}/thanks?from=widget"'
        body = PAGE
        for k, v in {"HUB": hub, "KEY": key, "ATY": aty, "EXTRA": extra}.items():
            body = body.replace(k, v)
        return body.encode()

    other = OtherOrigin(page)
    return other


def offered(page):
    """The start times of the slot buttons the widget shows."""
    buttons = page.locator("#booking button[data-start]")
    expect(buttons.first).to_be_visible(timeout=WAIT)
    return buttons.evaluate_all("bs => bs.map(b => b.dataset.start)")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def only_one_free_at(hub, secret, aty, start):
    """Book (with the secret key, as the clinic's own diary would) every
    practitioner free at `start` but one, so that the time is one slot:
    the widget shows one button per time. Returns that slot."""
    t = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    q = urllib.parse.urlencode({"appointmentTypeId": aty, "from": start, "to": iso(t + 1)})
    status, page, _ = http("GET", f"{hub.base}/v1/availability?{q}", secret)
    assert status == 200 and page["data"], page
    status, patients, _ = http("GET", f"{hub.base}/v1/patients?$limit=1", secret)
    for s in page["data"][1:]:
        status, apt, _ = http("POST", f"{hub.base}/v1/appointments", secret, {
            "patientId": patients["data"][0]["id"], "practitionerId": s["practitionerId"],
            "clinicId": s["clinicId"], "appointmentTypeId": aty, "startAt": s["startAt"],
        })
        assert status == 201, apt
    return page["data"][0]


def take(hub, secret, aty, slot):
    status, patients, _ = http("GET", f"{hub.base}/v1/patients?$limit=1", secret)
    status, apt, _ = http("POST", f"{hub.base}/v1/appointments", secret, {
        "patientId": patients["data"][0]["id"], "practitionerId": slot["practitionerId"],
        "clinicId": slot["clinicId"], "appointmentTypeId": aty, "startAt": slot["startAt"],
    })
    assert status == 201, apt


def offered_now(browser, site):
    page = browser.new_page()
    page.goto(f"{site.base}/book")
    try:
        return offered(page)
    finally:
        page.close()


def pick(page, start):
    """Click the slot starting at `start` as a visitor would: its day is a
    disclosure, only the first open, so open the day first if it is shut
    (late in the day the second slot offered is tomorrow's)."""
    slot = f'button[data-start="{start}"]'
    button = page.locator(f"#booking {slot}")
    day = page.locator("#booking details", has=page.locator(slot))
    if day.get_attribute("open") is None:
        day.locator("summary").click()
        expect(day).to_have_attribute("open", "")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")


def fill(page, name, phone, email):
    page.get_by_label("Name").fill(name)
    page.get_by_label("Phone").fill(phone)
    page.get_by_label("Email").fill(email)


def main():
    started = time.time()
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="hub-widget-")
    hub = Hub(tmp.name)
    site = None
    console = Console()
    try:
        org = hub.org("Clinic With A Booking Widget")
        secret = org["keys"]["test"]["secret"]
        publishable = org["keys"]["test"]["publishable"]
        status, types, _ = http("GET", f"{hub.base}/v1/appointment-types?$limit=100", secret)
        aty = next(t for t in types["data"] if t["bookableOnline"] and t["durationMinutes"] >= 30)
        site = make_site(hub.base, publishable, aty["id"])
        assert site.base != hub.base

        status, body, headers = http("GET", f"{hub.base}/widget.js")
        assert status == 200 and headers["content-type"].startswith("text/javascript"), headers
        assert headers["cross-origin-resource-policy"] == "cross-origin", headers

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                # 1. A visitor (in Berlin) books a time; the host page hears of it.
                page = browser.new_page(viewport={"width": 1280, "height": 800}, timezone_id="Europe/Berlin")
                console.watch(page)
                target = only_one_free_at(hub, secret, aty["id"], offered_now(browser, site)[0])
                page.goto(f"{site.base}/book")
                assert target["startAt"] in offered(page)
                button = page.locator(f'#booking button[data-start="{target["startAt"]}"]')
                name = button.get_attribute("aria-label")
                assert TIME.match(name), f"the slot's name holds its time: {name!r}"
                assert button.inner_text() == name[:5]
                local = datetime.fromisoformat(target["startAt"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin"))
                assert name[:5] == local.strftime("%H:%M"), f"{name!r} is not {local} in the visitor's zone"
                expect(page.get_by_role("button", name=name)).to_have_count(1)
                button.click()
                expect(button).to_have_attribute("aria-pressed", "true")
                fill(page, "Widget Visitor", "07700 900456", "visitor@example.com")
                page.get_by_role("button", name="Book", exact=True).click()
                page.wait_for_function("window.booked.length && window.messages.length", timeout=WAIT)
                event = page.evaluate("window.booked[0]")
                message = page.evaluate("window.messages[0]")
                assert event["appointmentId"].startswith("apt_"), event
                assert event["startAt"] == target["startAt"] and event["status"] == "scheduled", event
                assert message == {"type": "practicehub:booked", **event}, (message, event)
                expect(page.get_by_role("status")).to_contain_text("Booked", timeout=WAIT)
                status, apt, _ = http("GET", f"{hub.base}/v1/appointments/{event['appointmentId']}", secret)
                assert status == 200 and apt["endAt"] == event["endAt"], apt
                assert apt["practitionerId"] == target["practitionerId"], apt
                status, patient, _ = http("GET", f"{hub.base}/v1/patients/{apt['patientId']}", secret)
                assert patient["fullName"] == "Widget Visitor", patient
                assert patient["emailAddress"] == "visitor@example.com", patient
                assert patient["primaryClinicId"] == target["clinicId"], patient
                status, statuses, _ = http("GET", f"{hub.base}/v1/patient-statuses?$limit=100", secret)
                first = min(statuses["data"], key=lambda s: s.get("order", 1 << 40))
                assert patient["statusId"] == first["id"], (patient["statusId"], first)
                status, ref, _ = http("GET", f"{hub.base}/v1/referral-sources/{patient['referralId']}", secret)
                assert ref["name"] == "Website", ref
                assert patient["tracking"]["landingPage"] == f"{site.base}/book", patient["tracking"]
                print("ok   widget::books_a_slot_and_tells_the_host_page")

                # 2. The next visitor is not offered that time.
                page2 = browser.new_page(viewport={"width": 1280, "height": 800})
                console.watch(page2)
                page2.goto(f"{site.base}/book")
                assert target["startAt"] not in offered(page2), "the booked slot is offered again"
                print("ok   widget::the_next_visitor_is_not_offered_the_booked_slot")

                # 3. Taken meanwhile: a clear message and the fresh slots.
                other = only_one_free_at(hub, secret, aty["id"], offered(page2)[1])
                page2.reload()
                pick(page2, other["startAt"])
                fill(page2, "Second Visitor", "07700 900457", "second@example.com")
                take(hub, secret, aty["id"], other)
                with console.expect(r"409"):
                    page2.get_by_role("button", name="Book", exact=True).click()
                    expect(page2.get_by_role("alert")).to_contain_text("just taken", timeout=WAIT)
                expect(page2.locator(f'#booking button[data-start="{other["startAt"]}"]')).to_have_count(0)
                assert offered(page2), "fresh slots are shown"
                assert page2.evaluate("window.booked.length") == 0
                # The visitor picks another time and books with the same details.
                page2.locator("#booking button[data-start]").first.click()
                page2.get_by_role("button", name="Book", exact=True).click()
                page2.wait_for_function("window.booked.length", timeout=WAIT)
                second = page2.evaluate("window.booked[0]")
                status, apt2, _ = http("GET", f"{hub.base}/v1/appointments/{second['appointmentId']}", secret)
                status, same, _ = http("GET", f"{hub.base}/v1/patients?emailAddress=second%40example.com", secret)
                assert len(same["data"]) == 1, "one patient for the visitor's two tries"
                assert apt2["patientId"] == same["data"][0]["id"], apt2
                print("ok   widget::a_slot_taken_meanwhile_gives_a_message_and_fresh_slots")

                # 4. At 360 px, by keyboard only, with data-redirect.
                phone = browser.new_page(viewport=PHONE)
                console.watch(phone)
                phone.goto(f"{site.base}/book?redirect=1")
                offered(phone)
                # A busy clinic's first page of times may all be one day:
                # fetch more until a second day is there to open.
                for _ in range(10):
                    if phone.locator("#booking details").count() >= 2:
                        break
                    shown = phone.locator("#booking button[data-start]").count()
                    phone.get_by_role("button", name="More times").click()
                    phone.wait_for_function(
                        "(() => { const m = [...document.querySelectorAll('#booking button')]"
                        ".find(b => b.textContent === 'More times');"
                        " return document.querySelectorAll('#booking button[data-start]').length > %d"
                        " || !m || m.hidden; })()" % shown,
                        timeout=WAIT,
                    )
                phone.locator("#booking summary").first.focus()
                phone.keyboard.press("Shift+Tab")
                phone.keyboard.press("Tab")
                summary = phone.evaluate("document.activeElement.tagName")
                assert summary == "SUMMARY", f"Tab reaches the first day first: {summary}"
                phone.keyboard.press("Tab")
                focused = phone.evaluate("document.activeElement.dataset.start || ''")
                assert focused, "Tab reaches the first slot of the open day"
                phone.keyboard.press("Space")
                expect(phone.locator(f'#booking button[data-start="{focused}"]')).to_have_attribute("aria-pressed", "true")
                later = phone.locator("#booking details").nth(1)
                later.locator("summary").focus()
                phone.keyboard.press("Enter")
                expect(later).to_have_attribute("open", "")
                expect(later.locator("button").first).to_be_visible()
                wide = phone.evaluate("document.documentElement.scrollWidth")
                assert wide <= PHONE["width"], f"the page scrolls sideways at 360 px: {wide}"
                for label in ["Name", "Phone", "Email"]:
                    box = phone.get_by_label(label).bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (label, box)
                size = phone.evaluate("getComputedStyle(document.querySelector('#booking button')).fontSize")
                assert float(size.rstrip("px")) >= 14, size
                phone.screenshot(path=str(SHOTS / "widget-360.png"), full_page=True)
                phone.get_by_label("Name").focus()
                phone.keyboard.type("Keyboard Visitor")
                phone.keyboard.press("Tab")
                phone.keyboard.type("07700 900458")
                phone.keyboard.press("Tab")
                phone.keyboard.type("keys@example.com")
                phone.keyboard.press("Enter")
                phone.wait_for_url(re.compile(r"/thanks\?"), timeout=WAIT)
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(phone.url).query)
                assert q["from"] == ["widget"] and q["appointmentId"][0].startswith("apt_"), q
                assert q["startAt"] == [focused] and q["status"] == ["scheduled"] and q["endAt"], q
                print("ok   widget::at_360px_by_keyboard_with_a_redirect")

                # 5. Paging: the widget follows `next` cursors with `$after`
                # on the same query, up to about 60 slots, then "More
                # times". (The hub's answer cut into pages of 10 here, so
                # this holds whether or not availability pages.)
                cut = browser.new_page()
                console.watch(cut)
                asked, served = [], []
                wholes = {}

                def pages(route):
                    url = urllib.parse.urlsplit(route.request.url)
                    q = dict(urllib.parse.parse_qsl(url.query))
                    after = q.pop("$after", None)
                    q.pop("$limit", None)
                    asked.append((q, after))
                    key = urllib.parse.urlencode(q)
                    if key not in wholes:
                        # The real list, followed page by page (pages of 100).
                        got, cursor = [], None
                        while len(got) < 200:
                            qq = dict(q, **{"$limit": "100"}, **({"$after": cursor} if cursor else {}))
                            _, pg, _ = http("GET", f"{hub.base}/v1/availability?{urllib.parse.urlencode(qq)}", publishable)
                            got.extend(pg["data"])
                            cursor = pg.get("next")
                            if not cursor:
                                break
                        wholes[key] = {"data": got}
                    whole = wholes[key]
                    at = int(after or 0)
                    more = at + 10 < len(whole["data"])
                    served.extend(whole["data"][at:at + 10])
                    body = {"object": "list", "data": whole["data"][at:at + 10], "limit": 10,
                            "next": str(at + 10) if more else None, "prev": str(at) if at else None}
                    route.fulfill(status=200, json=body, headers={"Access-Control-Allow-Origin": "*"})

                cut.route(re.compile(r".*/v1/availability\?.*"), pages)
                cut.goto(f"{site.base}/book")
                first = offered(cut)
                def times(slots):
                    return list(dict.fromkeys(x["startAt"] for x in slots))

                assert len(asked) == 6 and len(served) == 60, (len(asked), len(served))
                assert first == times(served), "one button per time of the 60 slots, in order"
                assert [a for _, a in asked] == [None, "10", "20", "30", "40", "50"], asked
                assert all(q == asked[0][0] for q, _ in asked), "every page asks the same query"
                cut.get_by_role("button", name="More times").click()
                cut.wait_for_function("document.querySelectorAll('#booking button[data-start]').length > %d" % len(first), timeout=WAIT)
                assert len(served) == 120 and offered(cut) == times(served), len(served)
                assert all(q == asked[0][0] for q, _ in asked) and asked[-1][1] == "110", asked
                print("ok   widget::follows_availability_cursors")
            finally:
                browser.close()
        assert not console.errors, console.errors
        log = "\n".join(hub.log())
        for k in [k for mode in org["keys"].values() for k in mode.values()]:
            assert k not in log, "a key in the hub's log"
        assert "Widget Visitor" not in log and "visitor@example.com" not in log, "patient fields in the log"
    finally:
        if site:
            site.stop()
        hub.stop()
        tmp.cleanup()
    print(f"widget: 5 scenarios passed in {time.time() - started:.1f} s (screenshot: target/widget-screenshots/widget-360.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
