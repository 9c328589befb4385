"""Summarise bench/lambda-size.sh's measurements (JSON rows on stdin):
medians (and the range) of five cold starts per function."""
import json
import statistics
import sys

rows = json.load(sys.stdin)
for r in rows:
    inits = [x["init_ms"] for x in r["runs"] if x["init_ms"] is not None]
    invokes = [x["first_invoke_ms"] for x in r["runs"] if x["first_invoke_ms"] is not None]
    r["init_ms_median"] = statistics.median(inits) if inits else None
    r["first_invoke_ms_median"] = statistics.median(invokes) if invokes else None
    r["init_ms_range"] = [min(inits), max(inits)] if inits else None
json.dump(rows, open("bench/results/lambda.json", "w"), indent=2)
print(f"{'function':<22} {'binary MB':>10} {'zip MB':>8} {'init ms':>8} {'(min-max)':>14} {'1st invoke ms':>14}   (medians of 5; targets: zip <= 4 MB, init <= 10 ms)")
for r in rows:
    lo, hi = r["init_ms_range"] or (None, None)
    print(f"{r['function']:<22} {r['binary_bytes'] / 1e6:>10.2f} {r['zip_bytes'] / 1e6:>8.2f} {r['init_ms_median']!s:>8} {f'{lo}-{hi}':>14} {r['first_invoke_ms_median']!s:>14}")
    for x in r["runs"]:
        if x.get("error") or x.get("stderr"):
            print("   !", x.get("error") or x.get("stderr"))
            print("   response:", x.get("response"))
            break
