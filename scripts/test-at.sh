#!/usr/bin/env bash
# The tests with the clock set elsewhere: the Rust tests (both stores), and
# with --browser the booking widget's and the dashboard's browser tests,
# each run with the clock starting at every time given (UTC), by
# libfaketime (Debian's faketime, installed if missing). Tests that book
# "tomorrow", check in "today" or read "the next free slot" depend on the
# time of day, the weekday, month and year ends and daylight saving;
# scripts/test.sh only ever sees the time it happens to run at. Not part of
# the test command (each time costs about 80 s, and several minutes with
# --browser: chromium is slow under libfaketime); run it after a change to
# anything that reads the clock.
#
#   scripts/test-at.sh [--browser] ["YYYY-MM-DD HH:MM:SS" ...]
#
# Without times it runs the ones below: the UTC day's end, a Monday with one
# sandbox slot left that day (the widget test failed so before 6226fd2: the
# old test fails under --browser at 15:25, the fixed one passes), a clinic's
# last slot of the day, New York's midnight, the year's end, February's end,
# both of London's daylight-saving changes, a summer evening (London's day
# ends at 23:00 UTC) and a Sunday. Needs what scripts/test.sh installs
# (.venv, tests/aws/node_modules, chromium for --browser).
#
# Known not to run under libfaketime, whatever the time: Python's
# time.sleep fails there (EINVAL), which drops the webhook receiver's /slow
# answer, so
# webhooks::failures_are_retried_until_delivered_or_dead_and_none_is_lost
# (its /slow endpoint) is left out; the browser tests' harness may end with
# "OSError: [Errno 22]" from subprocess.wait after its scenarios passed.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
if [[ ${1:-} == --browser ]]; then browser=1; shift; fi
times=("$@")
if [[ ${#times[@]} -eq 0 ]]; then
  times=(
    "2026-12-07 23:59:00" "2026-12-07 15:25:00" "2026-12-07 16:58:30" "2026-12-08 04:59:00"
    "2026-12-31 23:59:20" "2027-02-28 23:59:00" "2027-03-28 00:59:00"
    "2027-10-31 00:59:00" "2027-07-15 22:59:00" "2026-12-13 12:00:00"
  )
fi

lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [[ ! -e $lib ]]; then
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq faketime >/dev/null
fi

ddb_pid="" moto_pid=""
trap '[[ -z $ddb_pid ]] || kill "$ddb_pid"; [[ -z $moto_pid ]] || kill "$moto_pid"' EXIT
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
export HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
export HUB_TEST_SQS_ENDPOINT="http://127.0.0.1:$moto_port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

cargo nextest run --workspace --no-run
cargo build --quiet -p hub-functions --bin hub
# Only the tests (and what they start: hub, receivers, chromium) run under
# the faked clock, through a target runner: cargo and rustc hang under
# libfaketime. The monotonic clock and file times stay real.
runner=$(mktemp)
printf '#!/bin/sh\nexport LD_PRELOAD=%s\nexec "$@"\n' "$lib" >"$runner"
chmod +x "$runner"
export NO_FAKE_STAT=1 DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_RESET=1

failed=()
for t in "${times[@]}"; do
  echo "== the clock starting at $t UTC"
  FAKETIME="@$t" CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$runner" \
    cargo nextest run --workspace --no-fail-fast --status-level fail \
    -E 'not test(/failures_are_retried_until_delivered_or_dead_and_none_is_lost/)' || failed+=("$t (tests)")
  if [[ $browser == 1 ]]; then
    for b in widget dashboard; do
      log=$(mktemp)
      FAKETIME="@$t" "$runner" .venv/bin/python "tests/browser/$b.py" target/debug/hub >"$log" 2>&1 || true
      grep -E '^(ok |FAIL|[a-z]+: [0-9]+ scenarios passed)' "$log" || true
      if ! grep -qE '^[a-z]+: [0-9]+ scenarios passed' "$log" && ! grep -qE '^ok +dashboard::no_console_errors' "$log"; then
        tail -30 "$log"
        failed+=("$t ($b)")
      fi
    done
  fi
done
rm -f "$runner"
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'failed at: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "every clock passed: ${times[*]}"
