"""schemathesis hooks for tests/contract/schemathesis.sh: the key it tests
with comes from an auth provider, because generated requests may roll it
(`POST /v1/api-keys/{id}/roll` with an id the tester found in a list, and
`expiresInHours: 0` stops the old key at once). On a 401 schemathesis asks
for the key again and replays the request once: the provider keeps the
key while it works, and otherwise rolls the sandbox's working test secret
key with the operator's command, `hub keys roll` (beside the running
server, over the same data directory or table)."""

import json
import os
import subprocess
import urllib.error
import urllib.request

import schemathesis

HUB = os.environ["HUB"]
# Where the running server keeps its data: "--data DIR" or "--table NAME --endpoint-url URL".
STORE_ARGS = os.environ["HUB_CONTRACT_STORE_ARGS"].split()
BASE = os.environ["HUB_CONTRACT_BASE"]
ORG = os.environ["HUB_CONTRACT_ORG"]


def works(key):
    req = urllib.request.Request(f"{BASE}/v1/organization", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        if e.code == 401:
            return False
        raise


@schemathesis.auth()
class SandboxKey:
    key = os.environ["HUB_CONTRACT_KEY"]
    rolls = 0

    def get(self, case, ctx):
        if not works(SandboxKey.key):
            out = subprocess.run(
                [HUB, "keys", "roll", "--org", ORG, "--mode", "test", "--type", "secret", "--json", *STORE_ARGS],
                check=True,
                capture_output=True,
                text=True,
            )
            SandboxKey.key = json.loads(out.stdout)["secret"]
            SandboxKey.rolls += 1
        return SandboxKey.key

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
