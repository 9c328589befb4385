#!/usr/bin/env bash
# Size and cold start of the Lambda functions, built exactly as `sam build`
# builds them for this machine's architecture (x86_64 here): `cargo lambda
# build --release --bin hub-lambda`, which reads its size settings from
# functions/lambda/Cargo.toml — the one binary every function runs, the
# function named in HUB_FUNCTION. Measured: stripped binary and zip size,
# init (exec → first Runtime API request, against a local Runtime API stub,
# with DynamoDB Local and moto behind it) and first invoke. Functions: a few
# representative ones by default, all with ALL=1. Results:
# bench/results/lambda.json.
set -euo pipefail
cd "$(dirname "$0")/.."
funcs=(patients-get patients-create patients-list stream-fanout webhook-delivery)
if [[ "${ALL:-}" == 1 ]]; then mapfile -t funcs < <(ls events/*.json | xargs -n1 basename | sed 's/\.json$//'); fi
# cargo-lambda and zig from PyPI, as docs/aws-deploy.md installs them.
[[ -x .venv-lambda/bin/cargo-lambda ]] || { python3 -m venv .venv-lambda; .venv-lambda/bin/pip install -q cargo-lambda ziglang; }
PATH="$PWD/.venv-lambda/bin:$PATH" cargo lambda build --release --bin hub-lambda

[[ -x .venv/bin/python ]] || { python3 -m venv .venv; .venv/bin/pip install -q -r tests/requirements.txt; }
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
tmp=$(mktemp -d)
trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Lambda sets none of these; some machines do (this one points them at the
# system bundle), and a function would then read that file at start.
unset AWS_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port" AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$moto_port"
export TABLE_NAME=bench-hub
export QUEUE_URL=$(.venv/bin/python - <<PY
import boto3
sqs = boto3.client("sqs", endpoint_url="http://127.0.0.1:$moto_port", region_name="us-east-1")
print(sqs.create_queue(QueueName="bench-deliveries")["QueueUrl"])
PY
)
.venv/bin/python - <<PY
import boto3
d = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:$ddb_port", region_name="us-east-1")
# The table as template.yaml (and hub table create) makes it.
names = ["PK", "SK"] + [f"G{i}{k}" for i in (1, 2, 3, 4, 5, 6) for k in ("PK", "SK")]
d.create_table(TableName="bench-hub", BillingMode="PAY_PER_REQUEST",
  AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in names],
  KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
  GlobalSecondaryIndexes=[{"IndexName": f"GSI{i}", "Projection": {"ProjectionType": "ALL"},
    "KeySchema": [{"AttributeName": f"G{i}PK", "KeyType": "HASH"}, {"AttributeName": f"G{i}SK", "KeyType": "RANGE"}]}
    for i in (1, 2, 3, 4, 5, 6)],
  StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
# DynamoDB Local runs on the JVM: warm it so the first function measured
# does not pay for its JIT.
for _ in range(20):
    d.describe_table(TableName="bench-hub")
PY

# A sandbox organization in the table, and the sample events with its real
# test key, a real patient and a valid body: the first invoke does the
# route's real work (auth, reads, the write), not a 401.
cargo build -q -p hub-functions --bin hub
target/debug/hub org create --name "Bench Clinic" --json --table bench-hub \
  --endpoint-url "http://127.0.0.1:$ddb_port" > "$tmp/org.json"
.venv/bin/python - "$tmp" "$ddb_port" "${funcs[@]}" <<'PY'
import json, sys, boto3
tmp, port, funcs = sys.argv[1], sys.argv[2], sys.argv[3:]
org = json.load(open(f"{tmp}/org.json"))
key = org["keys"]["test"]["secret"]
d = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
items = d.query(TableName="bench-hub", KeyConditionExpression="PK = :pk", Limit=1,
                ExpressionAttributeValues={":pk": {"S": f"T#{org['organizationId']}#test#patients"}})["Items"]
patient = items[0]["SK"]["S"]
for f in funcs:
    text = open(f"events/{f}.json").read()
    text = text.replace("sk_test_REPLACE_WITH_A_TEST_SECRET_KEY", key).replace("pat_01JD0SAMP1E00000000000000", patient)
    event = json.loads(text)
    if f == "patients-create":
        event["body"] = json.dumps({"fullName": "Bench Patient", "primaryPhoneNumber": "07700 900123",
            "primaryClinicName": "St. Mungo's Clinic – Leeds", "statusName": "Active", "referralName": "Google",
            "tracking": {"source": "bench"}})
    json.dump(event, open(f"{tmp}/{f}.json", "w"))
PY

results=()
for f in "${funcs[@]}"; do
  bin="target/lambda/hub-lambda/bootstrap"
  size=$(stat -c %s "$bin")
  zip=$(.venv/bin/python -c "import io,zipfile,sys; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))" "$bin")
  # Five cold starts each (a new process every time); the report takes medians.
  runs=()
  for _ in 1 2 3 4 5; do runs+=("$(HUB_FUNCTION="$f" .venv/bin/python bench/runtime_stub.py "$tmp/$f.json" -- "$bin")"); done
  results+=("{\"function\": \"$f\", \"binary_bytes\": $size, \"zip_bytes\": $zip, \"runs\": [$(IFS=,; echo "${runs[*]}")]}")
done
mkdir -p bench/results
printf '[%s]\n' "$(IFS=,; echo "${results[*]}")" | .venv/bin/python bench/lambda_report.py
