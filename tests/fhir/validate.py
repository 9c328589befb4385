"""Every FHIR resource the sandbox produces, validated against FHIR R4.

Starts a real `hub serve` (its sandbox organization: St. Mungo's Clinic),
walks every search of the FHIR facade page by page (`link` `next`), reads
each resource back by its FHIR id and by our id, books nothing but reads
the free Slots of every appointment type, provokes each error
(401, 403, 404, 400; another organization's and another mode's object),
and validates every CapabilityStatement, Bundle, resource and
OperationOutcome with the `fhir.resources` models of FHIR 4.0.1 (PyPI,
pinned in tests/fhir/requirements.txt; its own venv, since its pydantic 1
clashes with the other test tools' pydantic 2). scripts/test.sh runs it:

    .venv-fhir/bin/python tests/fhir/validate.py target/debug/hub
"""

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import fhir.resources
from fhir.resources import construct_fhir_element

assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__

HUB = sys.argv[1] if len(sys.argv) > 1 else "target/debug/hub"
TYPES = ["Patient", "Practitioner", "Location", "Appointment", "Observation", "Invoice"]
validated = Counter()


def lines_of(stream, q):
    for line in stream:
        q.put(line.rstrip("\n"))


class Hub:
    def __init__(self, data):
        self.data = data
        self.proc = subprocess.Popen(
            [HUB, "serve", "--addr", "127.0.0.1:0", "--data", data, "--rate-limit", "off", "--log", "off"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        out = queue.Queue()
        threading.Thread(target=lines_of, args=(self.proc.stdout, out), daemon=True).start()
        self.base = None
        self.keys = {}
        deadline = time.time() + 60
        while True:
            line = out.get(timeout=max(0.1, deadline - time.time()))
            if line.startswith("Practice Hub listening on "):
                self.base = line.split()[-1]
            for label in ["live secret key", "test secret key"]:
                if line.strip().startswith(label + ":"):
                    self.keys[label] = line.split()[-1]
            if line.startswith("Data directory"):
                break

    def org(self, name):
        out = subprocess.run(
            [HUB, "org", "create", "--name", name, "--json", "--data", self.data],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def get(url, key=None, method="GET", body=None):
    headers = {"Accept": "application/fhir+json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, headers=headers, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


# The models check structure, cardinality and primitive formats, not the
# codes of required bindings: these are R4's value sets for every coded
# element the facade writes (path below the resource, "[]" for each item).
ISSUE_TYPES = (
    "invalid structure required value invariant security login unknown expired forbidden suppressed "
    "processing not-supported duplicate multiple-matches not-found deleted too-long code-invalid extension "
    "too-costly business-rule conflict transient lock-lost no-store exception timeout incomplete throttled "
    "informational"
)
REQUIRED = {
    "Patient": {
        "gender": "male female other unknown",
        "telecom[].system": "phone fax email pager url sms other",
        "name[].use": "usual official temp nickname anonymous old maiden",
        "identifier[].use": "usual official temp secondary old",
        "contact[].telecom[].system": "phone fax email pager url sms other",
    },
    "Practitioner": {
        "telecom[].system": "phone fax email pager url sms other",
        "name[].use": "usual official temp nickname anonymous old maiden",
        "identifier[].use": "usual official temp secondary old",
    },
    "Location": {
        "status": "active suspended inactive",
        "mode": "instance kind",
        "telecom[].system": "phone fax email pager url sms other",
        "identifier[].use": "usual official temp secondary old",
    },
    "Appointment": {
        "status": "proposed pending booked arrived fulfilled cancelled noshow entered-in-error checked-in waitlist",
        "participant[].required": "required optional information-only",
        "participant[].status": "accepted declined tentative needs-action",
        "identifier[].use": "usual official temp secondary old",
    },
    "Slot": {"status": "busy free busy-unavailable busy-tentative entered-in-error"},
    "Observation": {
        "status": "registered preliminary final amended corrected cancelled entered-in-error unknown",
        "identifier[].use": "usual official temp secondary old",
    },
    "Invoice": {
        "status": "draft issued balanced cancelled entered-in-error",
        "lineItem[].priceComponent[].type": "base surcharge deduction discount tax informational",
        "identifier[].use": "usual official temp secondary old",
    },
    "Bundle": {"type": "searchset", "entry[].search.mode": "match include outcome"},
    "OperationOutcome": {"issue[].severity": "fatal error warning information", "issue[].code": ISSUE_TYPES},
    "CapabilityStatement": {"status": "draft active retired unknown", "kind": "instance capability requirements"},
}


def values_at(doc, path):
    items = [doc]
    for part in path.split("."):
        many = part.endswith("[]")
        name = part[:-2] if many else part
        nxt = []
        for it in items:
            v = it.get(name) if isinstance(it, dict) else None
            if v is None:
                continue
            nxt.extend(v if many else [v])
        items = nxt
    return items


def valid(doc, expected_type=None):
    """Validate one resource with its FHIR R4 model and R4's required
    bindings; returns it."""
    kind = doc.get("resourceType")
    if expected_type:
        assert kind == expected_type, (kind, expected_type, doc)
    try:
        construct_fhir_element(kind, doc)
    except Exception as e:  # noqa: BLE001 - report what failed, with the document
        raise AssertionError(f"{kind} does not validate against FHIR R4: {e}\n{json.dumps(doc, indent=1)}")
    for path, codes in REQUIRED.get(kind, {}).items():
        for v in values_at(doc, path):
            assert v in codes.split(), f"{kind}.{path} = {v!r} is not in R4's value set ({codes})"
    validated[kind] += 1
    return doc


def fhir_get(base, path, key, status=200):
    code, headers, body = get(base + "/fhir/R4" + path, key)
    assert code == status, (path, code, body)
    ctype = headers.get("Content-Type") or headers.get("content-type")
    assert ctype == "application/fhir+json", (path, ctype)
    if status >= 400:
        valid(body, "OperationOutcome")
    return body


def search_all(base, kind, key, query="_count=7"):
    """Every page of a search, by its `next` links; every Bundle validated."""
    url = f"{base}/fhir/R4/{kind}?{query}"
    found = []
    pages = 0
    while url:
        code, _, bundle = get(url, key)
        assert code == 200, (url, code, bundle)
        valid(bundle, "Bundle")
        assert bundle["type"] == "searchset"
        pages += 1
        for e in bundle.get("entry", []):
            assert e["fullUrl"].endswith(f"/{kind}/{e['resource']['id']}"), e["fullUrl"]
            found.append(valid(e["resource"], kind))
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if nxt:
            assert "total" not in bundle or bundle["total"] > len(found), bundle.get("total")
        url = nxt[0] if nxt else None
    return found, pages


def main():
    data = tempfile.mkdtemp(prefix="hub-fhir-")
    hub = Hub(data)
    try:
        run(hub)
    finally:
        hub.stop()
    print("FHIR R4 validation: " + ", ".join(f"{k} {v}" for k, v in sorted(validated.items())))


def run(hub):
    base = hub.base
    sk = hub.keys["test secret key"]
    valid(fhir_get(base, "/metadata", None), "CapabilityStatement")

    for kind in TYPES:
        found, pages = search_all(base, kind, sk)
        assert found, f"the sandbox has no {kind}"
        ids = [r["id"] for r in found]
        assert len(ids) == len(set(ids)), f"a {kind} repeated across pages"
        # The whole result in one page has its total.
        one = fhir_get(base, f"/{kind}?_count=100", sk)
        assert one["total"] == len(found), (kind, one.get("total"), len(found))
        for r in found:
            assert "_" not in r["id"], r["id"]
            assert fhir_get(base, f"/{kind}/{r['id']}", sk) == r
            assert fhir_get(base, f"/{kind}/{r['id'].replace('-', '_')}", sk) == r
        print(f"{kind}: {len(found)} resources in {pages} pages")

    # Searches with parameters.
    patients, _ = search_all(base, "Patient", sk, "_count=100")
    p = patients[0]
    family = p["name"][0]["family"]
    found, _ = search_all(base, "Patient", sk, f"name={urllib.request.quote(family)}")
    assert any(r["id"] == p["id"] for r in found), family
    phone = p["telecom"][0]["value"]
    found, _ = search_all(base, "Patient", sk, f"phone={urllib.request.quote(phone)}")
    assert [r["id"] for r in found] == [p["id"]] or p["id"] in [r["id"] for r in found]
    found, _ = search_all(base, "Patient", sk, f"identifier={urllib.request.quote(p['id'])}")
    assert [r["id"] for r in found] == [p["id"]]
    for kind in ["Appointment", "Observation", "Invoice"]:
        all_of, _ = search_all(base, kind, sk, "_count=100")
        subject = next(
            (r.get("subject") or next(a["actor"] for a in r["participant"] if a["actor"]["reference"].startswith("Patient/")))
            for r in all_of
        )
        found, _ = search_all(base, kind, sk, "patient=" + urllib.request.quote(subject["reference"]))
        assert found and len(found) < len(all_of) + 1
    for status in ["draft", "issued", "balanced", "cancelled"]:
        search_all(base, "Invoice", sk, "status=" + status)
    search_all(base, "Appointment", sk, "date=ge2000-01-01&date=lt2100")

    # Free slots of every appointment type, each read back by its id.
    code, _, types = get(base + "/v1/appointment-types?$limit=100", sk)
    assert code == 200, types
    slots = 0
    for aty in types["data"]:
        found, _ = search_all(base, "Slot", sk, f"service-type={aty['id']}&_count=50")
        for s in found[:3]:
            assert fhir_get(base, f"/Slot/{s['id']}", sk) == s
        slots += len(found)
    assert slots > 0, "no free slot in the sandbox's next 7 days"

    # Errors: every one an OperationOutcome with its status.
    fhir_get(base, "/Patient", None, 401)
    fhir_get(base, "/Patient/pat-nothing", sk, 404)
    fhir_get(base, "/Patient?nickname=x", sk, 400)
    fhir_get(base, "/Appointment?date=sometime", sk, 400)
    fhir_get(base, "/Slot", sk, 400)
    fhir_get(base, "/Nothing", sk, 404)
    code, _, key = get(base + "/v1/api-keys", sk, "POST", {"type": "restricted", "permissions": {"clinics": "read"}})
    assert code == 201, key
    fhir_get(base, "/Patient", key["secret"], 403)
    fhir_get(base, f"/Patient/{p['id']}", key["secret"], 403)
    valid(fhir_get(base, "/Location", key["secret"]), "Bundle")
    # Another organization's object, and the other mode's: 404.
    other = hub.org("Other Clinic")
    fhir_get(base, f"/Patient/{p['id']}", other["keys"]["test"]["secret"], 404)
    fhir_get(base, f"/Patient/{p['id']}", hub.keys["live secret key"], 404)


if __name__ == "__main__":
    main()
