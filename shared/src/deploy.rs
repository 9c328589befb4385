//! Deployment artefacts generated from the route table, so nothing drifts:
//! the SAM template (one function per route, plus the fan-out, delivery and
//! expiry functions, all running the one `hub-lambda` binary, each naming
//! its route in `HUB_FUNCTION`) and the sample events. `hub generate`
//! writes them; a test checks the committed files equal what this produces.

use crate::api::{routes, Op};
use std::fmt::Write;

pub const FANOUT: &str = "stream-fanout";
pub const DELIVERY: &str = "webhook-delivery";
pub const EXPIRY: &str = "purchase-expiry";

/// The one binary every function runs (`functions/lambda`); the template
/// names each function's route in [`crate::lambda::FUNCTION_ENV`].
pub const BINARY: &str = "hub-lambda";

/// Every function of the template, by the name it gives in `HUB_FUNCTION`:
/// one per route, then the fan-out, delivery and expiry functions.
pub fn functions() -> Vec<String> {
    routes()
        .iter()
        .map(|r| r.name.to_string())
        .chain([FANOUT, DELIVERY, EXPIRY].map(String::from))
        .collect()
}

/// The build settings every function shares, so `sam build` builds the
/// binary once for all of them.
fn build_metadata() -> String {
    format!("    Metadata:\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: {BINARY}\n")
}

fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The logical id of a function in the template.
pub fn function_id(binary: &str) -> String {
    format!("{}Function", camel(binary))
}

/// The table's key attributes and GSIs, as the store defines them.
fn table_keys() -> String {
    let mut t = String::from("      AttributeDefinitions:\n");
    let mut attrs = vec!["PK", "SK"];
    for (_, pk, sk) in crate::store::dynamodb::INDEXES {
        attrs.extend([pk, sk]);
    }
    for a in attrs {
        let _ = writeln!(
            t,
            "        - AttributeName: {a}\n          AttributeType: S"
        );
    }
    t.push_str("      KeySchema:\n        - AttributeName: PK\n          KeyType: HASH\n        - AttributeName: SK\n          KeyType: RANGE\n");
    t.push_str("      # GSI3: lists by updatedAt; GSI6: by a kind's own date (appointments' startAt).\n      # Equality lookups, the directory, search postings and counters are items of the\n      # table itself, written in each object's transaction. See shared/src/store/dynamodb.rs.\n      GlobalSecondaryIndexes:\n");
    for (index, pk, sk) in crate::store::dynamodb::INDEXES {
        let _ = writeln!(
            t,
            "        - IndexName: {index}\n          KeySchema:\n            - AttributeName: {pk}\n              KeyType: HASH\n            - AttributeName: {sk}\n              KeyType: RANGE\n          Projection:\n            ProjectionType: ALL"
        );
    }
    t
}

/// The IAM role a function runs with: one per access class, each allowing
/// only what its functions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads (and records a key's use: `lastUsedAt` on API keys' records).
    Read,
    /// Writes everything but API keys, their hashes and hash claims.
    Write,
    /// [`Role::Write`] and sends to the delivery queue (webhook tests,
    /// redeliveries).
    WriteQueue,
    /// Writes API keys (create, update, delete, roll).
    Keys,
    /// The stream fan-out: reads the stream and the table, sends deliveries.
    Fanout,
    /// The delivery function: writes delivery logs and endpoint state,
    /// receives from the delivery queue.
    Delivery,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Read,
        Role::Write,
        Role::WriteQueue,
        Role::Keys,
        Role::Fanout,
        Role::Delivery,
    ];

    /// The role's logical id in the template.
    pub fn id(self) -> &'static str {
        match self {
            Role::Read => "ReadRole",
            Role::Write => "WriteRole",
            Role::WriteQueue => "WriteQueueRole",
            Role::Keys => "KeysRole",
            Role::Fanout => "FanoutRole",
            Role::Delivery => "DeliveryRole",
        }
    }
}

/// The routes whose handlers send to the delivery queue themselves
/// (`need_queue` in shared/src/resources): a webhook endpoint's test event
/// and an event's redelivery.
pub const QUEUE_ROUTES: [&str; 2] = ["webhook-endpoints-test", "events-redeliver"];

/// The role a route's function runs with.
pub fn route_role(r: &crate::api::Route) -> Role {
    let writes = matches!(r.op, Op::Create | Op::Update | Op::Delete | Op::Action(_));
    if !writes {
        Role::Read
    } else if r.resource.is_some_and(|res| res.path == "api-keys") {
        Role::Keys
    } else if QUEUE_ROUTES.contains(&r.name) {
        Role::WriteQueue
    } else {
        Role::Write
    }
}

/// checkov's findings that do not apply, suppressed where they are raised
/// with the reason (every function gets the same list: its Metadata is part
/// of the build settings SAM groups functions by).
const FUNCTION_CHECKOV_SKIPS: &[(&str, &str)] = &[
    ("CKV_AWS_116", "API functions are invoked synchronously (a dead-letter queue applies to asynchronous invocations); the queue's redrive policy and the stream's on-failure destination send failed deliveries and records to DeadLetterQueue"),
    ("CKV_AWS_117", "the functions reach only DynamoDB, SQS and customers' public webhook URLs; there is nothing in a VPC to reach"),
    ("CKV_AWS_115", "concurrency is bounded for the whole API by the stage throttle (ApiThrottleRate, ApiThrottleBurst); reserving concurrency per function would take it from the account's pool"),
    ("CKV_AWS_173", "Lambda encrypts environment variables at rest with an AWS managed key; a customer managed key adds no protection against this account's own principals"),
];

/// A YAML single-quoted scalar.
fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn function_metadata() -> String {
    let mut m = build_metadata();
    m.push_str("      checkov:\n        skip:\n");
    for (id, reason) in FUNCTION_CHECKOV_SKIPS {
        let _ = writeln!(
            m,
            "          - id: {id}\n            comment: {}",
            q(reason)
        );
    }
    m
}

/// The statements of a role's inline policy (YAML, indented for the
/// template).
fn role_statements(role: Role) -> String {
    let table = "              Resource:\n                - !GetAtt Table.Arn\n                - !Sub \"${Table.Arn}/index/*\"\n";
    let read = format!("            - Sid: ReadTable\n              Effect: Allow\n              Action: [dynamodb:GetItem, dynamodb:Query]\n{table}");
    // Authentication records a key's use (`lastUsedAt`, once a minute): every
    // API function may write API keys' records, and only with PutItem.
    let key_use = "            - Sid: RecordKeyUse\n              Effect: Allow\n              Action: dynamodb:PutItem\n              Resource: !GetAtt Table.Arn\n              Condition:\n                ForAllValues:StringLike:\n                  dynamodb:LeadingKeys:\n                    - 'T#*#api-keys'\n";
    let write_actions =
        "[dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem, dynamodb:ConditionCheckItem]";
    // Writes (all in transactions) to every item but API keys, their
    // private hash records and their hash claims.
    let write = format!("            - Sid: WriteTableButKeys\n              Effect: Allow\n              Action: {write_actions}\n              Resource: !GetAtt Table.Arn\n              Condition:\n                ForAllValues:StringNotLike:\n                  dynamodb:LeadingKeys:\n                    - 'T#*#api-key*'\n                    - 'U#api-key-hash*'\n");
    let write_all = format!("            - Sid: WriteTable\n              Effect: Allow\n              Action: {write_actions}\n              Resource: !GetAtt Table.Arn\n");
    let send = "            - Sid: SendDeliveries\n              Effect: Allow\n              Action: sqs:SendMessage\n              Resource: !GetAtt DeliveryQueue.Arn\n";
    let mut out = String::from("            - Sid: Logs\n              Effect: Allow\n              Action: [logs:CreateLogStream, logs:PutLogEvents]\n              Resource: !GetAtt LogGroup.Arn\n");
    out.push_str(&read);
    match role {
        Role::Read => out.push_str(key_use),
        Role::Write => {
            out.push_str(key_use);
            out.push_str(&write);
        }
        Role::WriteQueue => {
            out.push_str(key_use);
            out.push_str(&write);
            out.push_str(send);
        }
        Role::Keys => out.push_str(&write_all),
        Role::Fanout => {
            out.push_str("            - Sid: ReadStream\n              Effect: Allow\n              Action: [dynamodb:DescribeStream, dynamodb:GetRecords, dynamodb:GetShardIterator]\n              Resource: !GetAtt Table.StreamArn\n            - Sid: ListStreams\n              Effect: Allow\n              Action: dynamodb:ListStreams\n              Resource: \"*\"\n");
            out.push_str(send);
            out.push_str("            - Sid: StreamFailures\n              Effect: Allow\n              Action: sqs:SendMessage\n              Resource: !GetAtt DeadLetterQueue.Arn\n");
        }
        Role::Delivery => {
            out.push_str(&write);
            out.push_str("            - Sid: ReceiveDeliveries\n              Effect: Allow\n              Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes]\n              Resource: !GetAtt DeliveryQueue.Arn\n");
        }
    }
    out
}

fn roles() -> String {
    let mut t = String::from(
        "\n  # One role per access class (not one per function), each least-privilege.\n",
    );
    for role in Role::ALL {
        let skip = if role == Role::Fanout {
            "    Metadata:\n      checkov:\n        skip:\n          - id: CKV_AWS_111\n            comment: 'dynamodb:ListStreams takes no resource (only \"*\"); every other action is on the table, its stream or a queue'\n"
        } else {
            ""
        };
        let _ = write!(
            t,
            "\n  {id}:\n    Type: AWS::IAM::Role\n{skip}    Properties:\n      AssumeRolePolicyDocument:\n        Version: \"2012-10-17\"\n        Statement:\n          - Effect: Allow\n            Principal:\n              Service: lambda.amazonaws.com\n            Action: sts:AssumeRole\n      Policies:\n        - PolicyName: {id}\n          PolicyDocument:\n            Version: \"2012-10-17\"\n            Statement:\n{statements}",
            id = role.id(),
            statements = role_statements(role),
        );
    }
    t
}

/// One CloudWatch alarm (YAML), to the alarm topic when one is given.
fn alarm(id: &str, description: &str, body: &str) -> String {
    format!("\n  {id}:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n      AlarmDescription: {}\n      ActionsEnabled: !If [HasAlarmTopic, true, false]\n      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n      OKActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n      TreatMissingData: notBreaching\n{body}", q(description))
}

fn alarms() -> String {
    let mut t = String::from("\n  # Alarms, sent to AlarmTopicArn when it is given.\n");
    t.push_str(&alarm(
        "DeadLetterAlarm",
        "Deliveries (or stream records) in the dead-letter queue",
        "      Namespace: AWS/SQS\n      MetricName: ApproximateNumberOfMessagesVisible\n      Dimensions:\n        - Name: QueueName\n          Value: !GetAtt DeadLetterQueue.QueueName\n      Statistic: Maximum\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 1\n      ComparisonOperator: GreaterThanOrEqualToThreshold\n",
    ));
    t.push_str("\n  # Errors the fan-out and delivery functions log (a delivery or fan-out\n  # that failed on our side: the table, the queue, an unreadable message).\n  DeliveryFailureMetric:\n    Type: AWS::Logs::MetricFilter\n    Properties:\n      LogGroupName: !Ref LogGroup\n      FilterPattern: '{ $.level = \"error\" && ($.component = \"delivery\" || $.component = \"fanout\") }'\n      MetricTransformations:\n        - MetricNamespace: !Sub \"PracticeHub/${AWS::StackName}\"\n          MetricName: DeliveryFailures\n          MetricValue: \"1\"\n          DefaultValue: 0\n");
    t.push_str(&alarm(
        "DeliveryFailureAlarm",
        "Webhook fan-out or delivery failed on our side (see the log group's error lines)",
        "      Namespace: !Sub \"PracticeHub/${AWS::StackName}\"\n      MetricName: DeliveryFailures\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 1\n      ComparisonOperator: GreaterThanOrEqualToThreshold\n",
    ));
    t.push_str(&alarm(
        "Api5xxAlarm",
        "More than 1% of API requests answered 5xx over 5 minutes",
        "      Namespace: AWS/ApiGateway\n      MetricName: 5xx\n      Dimensions:\n        - Name: ApiId\n          Value: !Ref Api\n        - Name: Stage\n          Value: $default\n      Statistic: Average\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 0.01\n      ComparisonOperator: GreaterThanThreshold\n",
    ));
    t.push_str(&alarm(
        "ThrottleAlarm",
        "Lambda throttled invocations (this account and region: functions at the concurrency limit)",
        "      Namespace: AWS/Lambda\n      MetricName: Throttles\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 1\n      ComparisonOperator: GreaterThanOrEqualToThreshold\n",
    ));
    t.push_str(&alarm(
        "IteratorAgeAlarm",
        "The stream fan-out is more than a minute behind the table's writes",
        "      Namespace: AWS/Lambda\n      MetricName: IteratorAge\n      Dimensions:\n        - Name: FunctionName\n          Value: !Ref StreamFanoutFunction\n      Statistic: Maximum\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 60000\n      ComparisonOperator: GreaterThanThreshold\n",
    ));
    t
}

pub fn sam_template() -> String {
    let mut t = String::from(
        r#"# Practice Hub on AWS (generated by `hub generate` from the route table).
# Deploy: sam build && sam deploy --guided (docs/aws-deploy.md)
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: Practice Hub - REST API with signed webhooks for clinics and booking businesses.

Parameters:
  Architecture:
    Type: String
    Default: arm64
    AllowedValues: [arm64, x86_64]
    Description: The functions' architecture (arm64 needs `rustup target add aarch64-unknown-linux-gnu` where you build).
  LogRetentionDays:
    Type: Number
    Default: 365
    AllowedValues: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]
    Description: Days the functions' and the API's logs are kept.
  AlarmTopicArn:
    Type: String
    Default: ""
    Description: An SNS topic for the alarms (optional; empty sends them nowhere).
  RetrySchedule:
    Type: String
    Default: 30s,2m,10m,1h,6h
    Description: Delays between webhook delivery attempts (at most 72 h in total).
  DeliveryAttempts:
    Type: Number
    Default: 6
    MinValue: 1
    MaxValue: 26
    Description: Attempts per delivery (the schedule's delays plus one); the queue's maxReceiveCount.
  DeliveryTimeout:
    Type: String
    Default: 30s
    Description: A 2xx within this time is a successful delivery.
  RequireTls:
    Type: String
    Default: "true"
    AllowedValues: ["true", "false"]
    Description: Refuse live-mode requests that did not arrive over HTTPS.
  CursorKey:
    Type: String
    NoEcho: true
    MinLength: 32
    Description: Secret that signs list cursors (32 or more random characters).
  ApiThrottleRate:
    Type: Number
    Default: 1000
    MinValue: 1
    Description: Requests per second the whole API accepts (API Gateway stage throttling); the per-key token buckets run in each function instance.
  ApiThrottleBurst:
    Type: Number
    Default: 2000
    MinValue: 1
    Description: Burst the whole API accepts above ApiThrottleRate.

Conditions:
  HasAlarmTopic: !Not [!Equals [!Ref AlarmTopicArn, ""]]

# Every function runs the one binary (functions/lambda) with the same build
# settings, so `sam build` builds it once; each names its route in HUB_FUNCTION.
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [!Ref Architecture]
    Handler: bootstrap
    MemorySize: 256
    Timeout: 29
    LoggingConfig:
      LogGroup: !Ref LogGroup
      LogFormat: JSON
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        QUEUE_URL: !Ref DeliveryQueue
        REQUIRE_TLS: !Ref RequireTls
        CURSOR_KEY: !Ref CursorKey
        HUB_RETRY_SCHEDULE: !Ref RetrySchedule
        HUB_DELIVERY_TIMEOUT: !Ref DeliveryTimeout

Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_309
            comment: every route authenticates with the organization's API keys in the function (the API's own auth); API Gateway authorizers do not apply
    Properties:
      DefaultRouteSettings:
        ThrottlingRateLimit: !Ref ApiThrottleRate
        ThrottlingBurstLimit: !Ref ApiThrottleBurst
      AccessLogSettings:
        DestinationArn: !GetAtt ApiAccessLogGroup.Arn
        Format: '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime","method":"$context.httpMethod","routeKey":"$context.routeKey","status":"$context.status","responseLength":"$context.responseLength","latencyMs":"$context.responseLatency","integrationError":"$context.integrationErrorMessage"}'

  # One log group for every function (JSON lines; Lambda's logging config).
  LogGroup:
    Type: AWS::Logs::LogGroup
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_158
            comment: CloudWatch Logs encrypts log data at rest; the lines hold no keys, bodies or patient fields (docs/aws-deploy.md), so a customer managed key is left to the customer
    Properties:
      LogGroupName: !Sub "/aws/lambda/${AWS::StackName}"
      RetentionInDays: !Ref LogRetentionDays

  ApiAccessLogGroup:
    Type: AWS::Logs::LogGroup
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_158
            comment: CloudWatch Logs encrypts log data at rest; access log lines hold no keys, bodies or query strings
    Properties:
      LogGroupName: !Sub "/aws/apigateway/${AWS::StackName}"
      RetentionInDays: !Ref LogRetentionDays

  # One table; tenant-leading partition keys; the stream carries event inserts.
  Table:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    UpdateReplacePolicy: Retain
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_119
            comment: encrypted at rest with the AWS managed key (SSESpecification); a customer managed key is the customer's choice and cost
    Properties:
      BillingMode: PAY_PER_REQUEST
      SSESpecification:
        SSEEnabled: true
"#,
    );
    t.push_str(&table_keys());
    t.push_str(
        r#"      StreamSpecification:
        StreamViewType: NEW_IMAGE
      TimeToLiveSpecification:
        AttributeName: expiresAt
        Enabled: true
      PointInTimeRecoverySpecification:
        PointInTimeRecoveryEnabled: true

  # Deliveries; after DeliveryAttempts receives a message moves to the dead-letter queue.
  DeliveryQueue:
    Type: AWS::SQS::Queue
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_27
            comment: encrypted at rest with SQS managed keys (SqsManagedSseEnabled); checkov recognises only a KMS key, which every sender and the redrive would then need grants for
    Properties:
      VisibilityTimeout: 90
      SqsManagedSseEnabled: true
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn
        maxReceiveCount: !Ref DeliveryAttempts

  # Deliveries out of attempts, and stream records the fan-out could not
  # process after its retries (the on-failure destination).
  DeadLetterQueue:
    Type: AWS::SQS::Queue
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_27
            comment: encrypted at rest with SQS managed keys (SqsManagedSseEnabled); checkov recognises only a KMS key, which every sender and the redrive would then need grants for
    Properties:
      MessageRetentionPeriod: 1209600
      SqsManagedSseEnabled: true
"#,
    );
    t.push_str(&roles());
    for r in routes() {
        let _ = write!(
            t,
            "\n  {id}:\n    Type: AWS::Serverless::Function\n{meta}    Properties:\n      CodeUri: .\n      Description: {method} {path}\n      Role: !GetAtt {role}.Arn\n      Environment:\n        Variables:\n          HUB_FUNCTION: {name}\n      Events:\n        Api:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref Api\n            Method: {method}\n            Path: {path}\n",
            id = function_id(r.name),
            name = r.name,
            method = r.method,
            path = r.path,
            role = route_role(r).id(),
            meta = function_metadata(),
        );
    }
    let _ = write!(
        t,
        r#"
  # DynamoDB stream → one SQS message per subscribed endpoint (event inserts only).
  {fanout}:
    Type: AWS::Serverless::Function
{meta}    Properties:
      CodeUri: .
      Description: Webhook fan-out from the table's stream
      Role: !GetAtt FanoutRole.Arn
      Environment:
        Variables:
          HUB_FUNCTION: {fanout_bin}
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            # Up to 100 events a batch, fanned out concurrently in the handler.
            BatchSize: 100
            # No batching window: at low rates a window only adds its length to
            # every event's latency; at high rates a poll (4 a second a shard)
            # fills a batch anyway.
            MaximumBatchingWindowInSeconds: 0
            # Up to 4 batches of one shard at once (a key's records stay in
            # order): one shard then fans out well over 1,000 events/s.
            ParallelizationFactor: 4
            MaximumRetryAttempts: 100
            FunctionResponseTypes: [ReportBatchItemFailures]
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt DeadLetterQueue.Arn
            FilterCriteria:
              Filters:
                - Pattern: '{{"eventName": ["INSERT"], "dynamodb": {{"NewImage": {{"kind": {{"S": ["events"]}}}}}}}}'

  # SQS → signed delivery; back-off by ChangeMessageVisibility on the receive count.
  {delivery}:
    Type: AWS::Serverless::Function
{meta}    Properties:
      CodeUri: .
      Description: Webhook delivery
      Timeout: 60
      Role: !GetAtt DeliveryRole.Arn
      Environment:
        Variables:
          HUB_FUNCTION: {delivery_bin}
      Events:
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt DeliveryQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]

  # Every minute: purchases past their expiresAt expire (and their patients' status).
  {expiry}:
    Type: AWS::Serverless::Function
{meta}    Properties:
      CodeUri: .
      Description: Purchase expiry
      Timeout: 60
      Role: !GetAtt WriteRole.Arn
      Environment:
        Variables:
          HUB_FUNCTION: {expiry_bin}
      Events:
        Schedule:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
{alarms}
Outputs:
  ApiUrl:
    Description: The API's base URL (append /v1/...).
    Value: !Sub "https://${{Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
  DashboardUrl:
    Description: The developer dashboard (paste a secret key).
    Value: !Sub "https://${{Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/dashboard"
  TableName:
    Description: The DynamoDB table (hub org create --table NAME).
    Value: !Ref Table
  DeliveryQueueUrl:
    Value: !Ref DeliveryQueue
  DeadLetterQueueUrl:
    Value: !Ref DeadLetterQueue
  LogGroupName:
    Description: Every function's log lines.
    Value: !Ref LogGroup
"#,
        fanout = function_id(FANOUT),
        fanout_bin = FANOUT,
        delivery = function_id(DELIVERY),
        delivery_bin = DELIVERY,
        expiry = function_id(EXPIRY),
        expiry_bin = EXPIRY,
        meta = function_metadata(),
        alarms = alarms(),
    );
    t
}

/// A syntactically valid id for a resource's sample events.
pub fn sample_id(prefix: &str) -> String {
    format!("{prefix}_01JD0SAMP1E00000000000000")
}

/// One sample event per function: `events/<binary>.json`. API routes get
/// an HTTP API (2.0) request (the key and ids are placeholders a test
/// replaces); the fan-out gets a DynamoDB stream batch and the delivery an
/// SQS batch.
pub fn sample_events() -> Vec<(String, serde_json::Value)> {
    use serde_json::json;
    let mut out = Vec::new();
    for r in routes() {
        let prefix = r.resource.map(|res| res.prefix).unwrap_or("x");
        let id = match r.op {
            Op::FhirRead(t) => crate::api::fhir::fhir_id(&sample_id(
                crate::resources::by_path(t.access)
                    .map(|res| res.prefix)
                    .unwrap_or("x"),
            )),
            _ => sample_id(prefix),
        };
        // A file each static route has (the dashboard's script, the
        // reference's stylesheet).
        let file = if r.path.starts_with("/docs") {
            "docs.css"
        } else {
            "app.js"
        };
        let path = r.path.replace("{id}", &id).replace("{file}", file);
        let body = match r.op {
            Op::Create | Op::Update | Op::Action(_) => Some("{}"),
            _ => None,
        };
        let mut e = json!({
            "version": "2.0",
            "routeKey": format!("{} {}", r.method, r.path),
            "rawPath": path,
            "rawQueryString": if r.op == Op::List { "$limit=5" } else { "" },
            "headers": {
                "authorization": "Bearer sk_test_REPLACE_WITH_A_TEST_SECRET_KEY",
                "content-type": "application/json",
                "host": "abc123.execute-api.eu-west-2.amazonaws.com",
                "x-forwarded-proto": "https"
            },
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc123", "stage": "$default", "requestId": "sample",
                "routeKey": format!("{} {}", r.method, r.path),
                "http": {"method": r.method.as_str(), "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "sample"}
            },
            "isBase64Encoded": false
        });
        if let Some(b) = body {
            e["body"] = json!(b);
        }
        out.push((r.name.to_string(), e));
    }
    let envelope = json!({
        "id": sample_id("evt"), "object": "event", "type": "patient.created", "createdAt": "2026-11-25T03:00:00.000Z",
        "livemode": false, "organizationId": sample_id("org"), "data": {"id": sample_id("pat"), "object": "patient", "fullName": "Sample Patient"}
    });
    out.push((FANOUT.to_string(), json!({"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "eu-west-2",
        "dynamodb": {
            "Keys": {"PK": {"S": format!("T#{}#test#events", sample_id("org"))}, "SK": {"S": sample_id("evt")}},
            "NewImage": {
                "PK": {"S": format!("T#{}#test#events", sample_id("org"))}, "SK": {"S": sample_id("evt")},
                "kind": {"S": "events"}, "tenant": {"S": format!("{}#test", sample_id("org"))}, "version": {"N": "1"},
                "doc": {"S": envelope.to_string()}, "expiresAt": {"N": "1798167600"}
            },
            "SequenceNumber": "111", "SizeBytes": 512, "StreamViewType": "NEW_IMAGE"
        },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-2:123456789012:table/hub/stream/2026-11-25T00:00:00.000"
    }]})));
    out.push((DELIVERY.to_string(), json!({"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": json!({"tenant": format!("{}#test", sample_id("org")), "eventId": sample_id("evt"), "endpointId": sample_id("we")}).to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795575600000"},
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "eu-west-2",
        "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:hub-deliveries"
    }]})));
    out.push((EXPIRY.to_string(), json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.scheduler", "account": "123456789012", "time": "2026-11-25T03:00:00Z",
        "region": "eu-west-2", "resources": ["arn:aws:scheduler:eu-west-2:123456789012:schedule/default/purchase-expiry"],
        "detail": {}
    })));
    out
}

/// The same API requests in the other shapes a deployment may send them
/// in, for `sam local invoke` and tests: `events/rest-api/<route>.json`
/// (API Gateway REST API, payload 1.0, repeated values in the multi-value
/// fields, the create's body base64-encoded) and `events/alb/<route>.json`
/// (an Application Load Balancer target group with multi-value headers).
/// A Function URL sends the HTTP API (2.0) shape of `events/<route>.json`.
pub fn sample_events_other_shapes() -> Vec<(String, serde_json::Value)> {
    use base64::Engine;
    use serde_json::json;
    let key = format!("Bearer {SAMPLE_KEY}");
    let mut out = Vec::new();
    for r in routes() {
        if !matches!(
            r.name,
            "health" | "openapi" | "patients-list" | "patients-create" | "patients-get"
        ) {
            continue;
        }
        let prefix = r.resource.map(|res| res.prefix).unwrap_or("x");
        let path = r.path.replace("{id}", &sample_id(prefix));
        let body = (r.op == Op::Create).then(|| {
            json!({
                "fullName": "Sample Patient", "primaryPhoneNumber": "07700 900123", "tracking": {},
                "primaryClinicId": sample_id("cli"), "statusId": sample_id("pst"), "referralId": sample_id("ref")
            })
            .to_string()
        });
        let query = if r.op == Op::List {
            json!({"$limit": ["5"], "$select[]": ["id", "fullName"]})
        } else {
            json!(null)
        };
        let rest = json!({
            "resource": r.path,
            "path": path,
            "httpMethod": r.method.as_str(),
            "multiValueHeaders": {
                "Authorization": [key],
                "Content-Type": ["application/json"],
                "Accept": ["application/json", "text/plain"],
                "Host": ["abc123.execute-api.eu-west-2.amazonaws.com"],
                "X-Forwarded-Proto": ["https"]
            },
            "multiValueQueryStringParameters": query,
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc123", "stage": "Prod", "requestId": "sample",
                "resourcePath": r.path, "httpMethod": r.method.as_str(), "path": format!("/Prod{path}"),
                "identity": {"sourceIp": "203.0.113.10", "userAgent": "sample"}
            },
            "body": body.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            "isBase64Encoded": body.is_some()
        });
        out.push((format!("rest-api/{}", r.name), rest));
        let alb = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-2:123456789012:targetgroup/hub/0123456789abcdef"}},
            "httpMethod": r.method.as_str(),
            "path": path,
            "multiValueQueryStringParameters": if query.is_null() { json!({}) } else { query },
            "multiValueHeaders": {
                "authorization": [key],
                "content-type": ["application/json"],
                "accept": ["application/json", "*/*"],
                "host": ["hub.example.com"],
                "x-forwarded-proto": ["https"]
            },
            "body": body.unwrap_or_default(),
            "isBase64Encoded": false
        });
        out.push((format!("alb/{}", r.name), alb));
    }
    out
}

/// The placeholder key of the sample events.
pub const SAMPLE_KEY: &str = "sk_test_REPLACE_WITH_A_TEST_SECRET_KEY";

/// A sample event with a real key and real ids (`(sample_id(prefix), id)`)
/// in place of the placeholders, inside a base64-encoded body too.
pub fn fill_sample(
    event: &serde_json::Value,
    key: &str,
    ids: &[(String, String)],
) -> serde_json::Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let real = |text: &str| {
        ids.iter()
            .fold(text.replace(SAMPLE_KEY, key), |t, (placeholder, id)| {
                t.replace(placeholder.as_str(), id)
            })
    };
    let mut out: serde_json::Value =
        serde_json::from_str(&real(&event.to_string())).unwrap_or_else(|_| event.clone());
    if out["isBase64Encoded"] == serde_json::Value::Bool(true) {
        let decoded = out["body"]
            .as_str()
            .and_then(|b| b64.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(body) = decoded {
            out["body"] = serde_json::Value::String(b64.encode(real(&body)));
        }
    }
    out
}
