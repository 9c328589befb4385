"""The API reference (/docs) in a browser (Playwright for Python, Debian's
chromium): Redoc, embedded in the binary, renders the hub's own
/openapi.json under the page's strict Content-Security-Policy — no request
leaves the hub's origin, no policy violation, no console error — and every
resource of the document (each of its tags) is on the page, with its
operations. scripts/test.sh runs it:

    .venv/bin/python tests/browser/docs.py target/debug/hub

A screenshot is written to target/docs-screenshots/.
"""

import json
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard import CHROMIUM, DESKTOP, FLAGS, ROOT, Hub  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

SHOTS = ROOT / "target/docs-screenshots"
WAIT = 30_000

# Collects the page's Content-Security-Policy violations before any script runs.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e =>
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def main():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        hub = Hub(data)
        try:
            with urllib.request.urlopen(hub.base + "/openapi.json") as r:
                doc = json.load(r)
            with urllib.request.urlopen(hub.base + "/docs") as r:
                csp = r.headers["Content-Security-Policy"]
                assert "script-src 'self';" in csp and "default-src 'none'" in csp, csp
            tags = [t["name"] for t in doc["tags"]]
            operations = {t: [] for t in tags}
            for item in doc["paths"].values():
                for op in item.values():
                    operations[op["tags"][0]].append(op["operationId"])
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport=DESKTOP)
                page.add_init_script(WATCH_CSP)
                errors, foreign = [], []
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on(
                    "request",
                    lambda r: r.url.startswith(("http:", "https:")) and not r.url.startswith(hub.base) and foreign.append(r.url),
                )
                page.goto(hub.base + "/docs")
                expect(page.get_by_role("heading", name="Practice Hub API", exact=False).first).to_be_visible(timeout=WAIT)
                menu = page.locator(".menu-content")
                for tag in tags:
                    # Each resource: its group in the menu and its section.
                    expect(menu.get_by_text(tag, exact=True).first).to_be_attached(timeout=WAIT)
                    section = page.locator(f'[id="tag/{tag.replace(" ", "-")}"]')
                    expect(section).to_be_attached(timeout=WAIT)
                    for op_id in operations[tag]:
                        # Each of its operations: a section with its heading.
                        op = page.locator(f'[id="tag/{tag.replace(" ", "-")}/operation/{op_id}"]')
                        expect(op.get_by_role("heading").first).to_be_attached(timeout=WAIT)
                page.screenshot(path=str(SHOTS / "docs.png"))
                violations = page.evaluate("window.__csp")
                browser.close()
            assert not violations, f"Content-Security-Policy violations: {violations}"
            assert not foreign, f"requests off the hub's origin: {foreign}"
            assert not errors, f"console errors: {errors}"
            print(f"docs: {len(tags)} resources and {sum(map(len, operations.values()))} operations rendered by Redoc; no CSP violation, no console error")
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
