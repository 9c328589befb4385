#!/usr/bin/env bash
# Size and cold start of the Lambda functions, built with the `lambda`
# profile for this machine's target: stripped binary and zip size, init
# (exec → first Runtime API request, against a local Runtime API stub, with
# DynamoDB Local and moto behind it) and first invoke. Functions: a few
# representative ones by default, all with ALL=1. Results:
# bench/results/lambda.json.
set -euo pipefail
cd "$(dirname "$0")/.."
funcs=(patients-get patients-create patients-list stream-fanout webhook-delivery)
if [[ "${ALL:-}" == 1 ]]; then mapfile -t funcs < <(ls functions/lambda/src/bin | sed 's/\.rs$//'); fi
args=(); for f in "${funcs[@]}"; do args+=(--bin "$f"); done
cargo build -q --profile lambda -p hub-lambda "${args[@]}"

[[ -x .venv/bin/python ]] || { python3 -m venv .venv; .venv/bin/pip install -q -r tests/requirements.txt; }
(cd tests/aws && npm ci --no-audit --no-fund --loglevel=error)
read -r ddb_pid ddb_port < <(tests/aws/start-dynamodb-local.sh)
read -r moto_pid moto_port < <(tests/aws/start-moto.sh)
trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true' EXIT
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
names = ["PK", "SK"] + [f"G{i}{k}" for i in (1, 2, 3) for k in ("PK", "SK")]
d.create_table(TableName="bench-hub", BillingMode="PAY_PER_REQUEST",
  AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in names],
  KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
  GlobalSecondaryIndexes=[{"IndexName": f"GSI{i}", "Projection": {"ProjectionType": "ALL"},
    "KeySchema": [{"AttributeName": f"G{i}PK", "KeyType": "HASH"}, {"AttributeName": f"G{i}SK", "KeyType": "RANGE"}]}
    for i in (1, 2, 3)],
  StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
# DynamoDB Local runs on the JVM: warm it so the first function measured
# does not pay for its JIT.
for _ in range(20):
    d.describe_table(TableName="bench-hub")
PY

results=()
for f in "${funcs[@]}"; do
  bin="target/lambda/$f"
  size=$(stat -c %s "$bin")
  zip=$(.venv/bin/python -c "import io,zipfile,sys; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))" "$bin")
  # Five cold starts each (a new process every time); the report takes medians.
  runs=()
  for _ in 1 2 3 4 5; do runs+=("$(.venv/bin/python bench/runtime_stub.py "events/$f.json" -- "$bin")"); done
  results+=("{\"function\": \"$f\", \"binary_bytes\": $size, \"zip_bytes\": $zip, \"runs\": [$(IFS=,; echo "${runs[*]}")]}")
done
mkdir -p bench/results
printf '[%s]\n' "$(IFS=,; echo "${results[*]}")" | .venv/bin/python bench/lambda_report.py
