"""Summarise bench/lambda-size.sh's measurements (JSON rows on stdin)."""
import json
import sys

rows = json.load(sys.stdin)
json.dump(rows, open("bench/results/lambda.json", "w"), indent=2)
print(f"{'function':<22} {'binary MB':>10} {'zip MB':>8} {'init ms':>8} {'1st invoke ms':>14}   (targets: zip <= 5 MB, init <= 20 ms)")
for r in rows:
    s = r["start"]
    print(f"{r['function']:<22} {r['binary_bytes'] / 1e6:>10.2f} {r['zip_bytes'] / 1e6:>8.2f} {s['init_ms']!s:>8} {s['first_invoke_ms']!s:>14}")
    if s.get("error") or s.get("stderr"):
        print("   !", s.get("error") or s.get("stderr"))
        print("   response:", s.get("response"))
