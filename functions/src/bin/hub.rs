//! The `hub` command: `hub serve` runs every route on one machine over the
//! embedded database; `hub org create` creates an organization (in the
//! embedded database or a DynamoDB table); `hub table create` makes the
//! table; `hub generate` writes the deployment files.

use hub::api::{App, Config};
use hub::store::embedded::EmbeddedStore;
use hub::store::DynStore;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc instead of glibc's allocator, measured A/B on GET by id: +10%
/// when connections moved between the shared runtime's threads (glibc locked
/// the arena of buffers freed on another thread: most of the futex calls),
/// +4% with each connection kept on one thread (`serve::run_per_thread`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
Practice Hub

USAGE:
    hub serve [--addr 127.0.0.1:8080] [--data DIR] [--require-tls] [--log info|error|off]
              [--rate-limit TEST,LIVE|off]   (requests/s per key; default 200,1000)
              [--retry-schedule 30s,2m,10m,1h,6h|none]   (webhook retry delays; or HUB_RETRY_SCHEDULE)
              [--delivery-timeout 30s]   (or HUB_DELIVERY_TIMEOUT)
              [--header-timeout 30s]   (close connections whose request headers have not arrived; also idle ones)
              [--expiry-interval 30s]   (how often purchases past their expiresAt are expired)
              [--table NAME [--endpoint-url URL] [--sqs-endpoint-url URL]
               [--queue-visibility 90s] [--stream-poll 250ms]]
                 (the AWS code path: DynamoDB, its stream and SQS instead of the embedded
                  database; or HUB_TABLE, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SQS)
    hub org create --name NAME [--json] [--empty] [--data DIR | --table NAME [--endpoint-url URL]]
    hub table create --table NAME [--endpoint-url URL]   (the table as template.yaml makes it; for DynamoDB Local)
    hub table backfill --table NAME [--endpoint-url URL] (once, after upgrading a table made before the index entries; resumable)
    hub keys roll --org ID --mode test|live --type secret|publishable [--expires-in-hours 0-12] [--json]
                  [--data DIR | --table NAME [--endpoint-url URL]]   (a new key, e.g. when the only secret key is lost)
    hub smoke --url URL --key KEY [--webhook-url URL]
                  (a deployed API end to end: creates, reads, lists and deletes a patient; with
                   --webhook-url, sends a webhook test event there; each step's status and time;
                   exit 1 on any failure)
    hub audit [--data DIR | --table NAME [--endpoint-url URL]]
                  (recompute derived values — membership statuses, invoice amounts, balances
                   and statuses, appointment guards; on DynamoDB also every index entry and
                   counter — from the objects; print each difference; exit 1 if any)
    hub generate [--root DIR]   (write template.yaml and events/ from the route table)
    hub openapi   (print the OpenAPI document, as GET /openapi.json answers it)
    hub events fill [--out events/local] [--name NAME] [--data DIR | --table NAME [--endpoint-url URL]]
                  (a new sandbox organization; the sample events with its real test key and ids)

The data directory defaults to $HUB_DATA, else ./.hub-data.
";

struct Args {
    items: Vec<String>,
}

impl Args {
    fn flag(&mut self, name: &str) -> bool {
        match self.items.iter().position(|a| a == name) {
            Some(i) => {
                self.items.remove(i);
                true
            }
            None => false,
        }
    }

    fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let prefix = format!("{name}=");
        if let Some(i) = self.items.iter().position(|a| a.starts_with(&prefix)) {
            return Ok(Some(self.items.remove(i)[prefix.len()..].to_string()));
        }
        match self.items.iter().position(|a| a == name) {
            Some(i) if i + 1 < self.items.len() => {
                self.items.remove(i);
                Ok(Some(self.items.remove(i)))
            }
            Some(_) => Err(format!("{name} needs a value")),
            None => Ok(None),
        }
    }

    fn done(self) -> Result<(), String> {
        match self.items.first() {
            Some(extra) => Err(format!("unexpected argument `{extra}`")),
            None => Ok(()),
        }
    }
}

fn data_dir(args: &mut Args) -> Result<PathBuf, String> {
    Ok(args
        .value("--data")?
        .or_else(|| std::env::var("HUB_DATA").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".hub-data")))
}

fn open_store(dir: &Path) -> Result<DynStore, String> {
    EmbeddedStore::open(dir, hub::resources::kinds())
        .map(|s| Arc::new(s) as DynStore)
        .map_err(|e| format!("cannot open the data directory {}: {e}", dir.display()))
}

fn main() -> ExitCode {
    let mut args = Args {
        items: std::env::args().skip(1).collect(),
    };
    if args.items.is_empty() || args.flag("--help") || args.flag("-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    hub::log::init_serve();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cmd: Vec<String> = args.items.drain(..args.items.len().min(2)).collect();
    let result = match cmd
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", rest @ ..] => {
            args.items.splice(0..0, rest.iter().map(|s| s.to_string()));
            rt.block_on(serve(args))
        }
        ["org", "create"] => rt.block_on(org_create(args)),
        ["table", "create"] => rt.block_on(table_create(args)),
        ["table", "backfill"] => rt.block_on(table_backfill(args)),
        ["keys", "roll"] => rt.block_on(keys_roll(args)),
        ["audit", rest @ ..] => {
            args.items.splice(0..0, rest.iter().map(|s| s.to_string()));
            rt.block_on(audit(args))
        }
        ["events", "fill"] => rt.block_on(events_fill(args)),
        ["smoke", rest @ ..] => {
            args.items.splice(0..0, rest.iter().map(|s| s.to_string()));
            rt.block_on(smoke(args))
        }
        ["openapi"] => args.done().map(|()| {
            println!("{:#}", hub::api::openapi::document());
        }),
        ["generate", rest @ ..] => {
            args.items.splice(0..0, rest.iter().map(|s| s.to_string()));
            generate(args)
        }
        _ => Err(format!("unknown command `{}`\n\n{USAGE}", cmd.join(" "))),
    };
    hub::log::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hub smoke`: the steps as they finish, then a summary; an error when any failed.
async fn smoke(mut args: Args) -> Result<(), String> {
    let url = args
        .value("--url")?
        .ok_or("--url URL is required (the ApiUrl output)")?;
    let key = args
        .value("--key")?
        .ok_or("--key KEY is required (a secret key, e.g. from hub org create)")?;
    let webhook = args.value("--webhook-url")?;
    args.done()?;
    let started = std::time::Instant::now();
    let mut steps = 0usize;
    let ok = hub::smoke::run(&url, &key, webhook.as_deref(), &mut |step| {
        steps += 1;
        println!("{}", step.line());
    })
    .await?;
    let took = started.elapsed().as_secs_f64();
    if ok {
        println!("smoke test passed: {steps} steps in {took:.2} s");
        Ok(())
    } else {
        Err(format!("smoke test failed ({steps} steps in {took:.2} s)"))
    }
}

/// Write the deployment files generated from the route table.
fn generate(mut args: Args) -> Result<(), String> {
    let root = PathBuf::from(args.value("--root")?.unwrap_or_else(|| ".".into()));
    args.done()?;
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let events = root.join("events");
    std::fs::create_dir_all(&events).map_err(|e| io(&events, e))?;
    for (name, event) in hub::deploy::sample_events()
        .into_iter()
        .chain(hub::deploy::sample_events_other_shapes())
    {
        let p = events.join(format!("{name}.json"));
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::write(&p, format!("{event:#}\n")).map_err(|e| io(&p, e))?;
    }
    let template = root.join("template.yaml");
    std::fs::write(&template, hub::deploy::sam_template()).map_err(|e| io(&template, e))?;
    println!(
        "wrote template.yaml ({} functions, one build) and their sample events",
        hub::deploy::functions().len()
    );
    Ok(())
}

/// A DynamoDB client from the usual AWS environment (credentials, region),
/// with `--endpoint-url` (or `AWS_ENDPOINT_URL_DYNAMODB`) for DynamoDB Local;
/// a local endpoint needs no credentials (`hub::aws::local::sdk_config`).
async fn dynamodb_client(endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let from_env = hub::aws::local::Endpoints::from_env().dynamodb;
    let endpoint = endpoint.or(from_env.as_deref());
    aws_sdk_dynamodb::Client::new(&hub::aws::local::sdk_config(endpoint).await)
}

/// `hub audit`: every organization's derived values recomputed from its
/// objects (`hub::audit`); each difference printed, exit 1 if any.
async fn audit(mut args: Args) -> Result<(), String> {
    let table = args
        .value("--table")?
        .or_else(|| std::env::var("HUB_TABLE").ok());
    let endpoint = args.value("--endpoint-url")?;
    let mut dynamo = None;
    let (store, orgs): (DynStore, Vec<String>) = match table {
        Some(table) => {
            let client = dynamodb_client(endpoint.as_deref()).await;
            let orgs = hub::audit::dynamo_orgs(&client, &table)
                .await
                .map_err(|e| format!("DynamoDB: {e}"))?;
            let store = Arc::new(hub::store::dynamodb::DynamoStore::new(
                client,
                table,
                hub::resources::kinds(),
            ));
            dynamo = Some(store.clone());
            (store, orgs)
        }
        None => {
            let dir = data_dir(&mut args)?;
            let store = EmbeddedStore::open(&dir, hub::resources::kinds())
                .map_err(|e| format!("cannot open the data directory {}: {e}", dir.display()))?;
            let orgs = store.organizations().map_err(|e| e.to_string())?;
            (Arc::new(store), orgs)
        }
    };
    args.done()?;
    let report = hub::audit::run(store.as_ref(), &orgs, hub::time::now_ms())
        .await
        .map_err(|e| format!("audit: {e}"))?;
    for d in &report.differences {
        println!("{d}");
    }
    let mut differences = report.differences.len();
    let checked: Vec<String> = report
        .checked
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    if let Some(dynamo) = dynamo {
        // The index entries and counters of the whole table, recomputed.
        let d = dynamo
            .audit_derived()
            .await
            .map_err(|e| format!("audit: {e}"))?;
        for (pk, sk) in &d.missing {
            println!("index entry missing: {pk} {sk}");
        }
        for (pk, sk) in &d.stray {
            println!("index entry no object needs: {pk} {sk}");
        }
        for (pk, key, have, want) in &d.miscounted {
            println!("counter {pk} {key}: stored {have}, expected {want}");
        }
        differences += d.missing.len() + d.stray.len() + d.miscounted.len();
        println!(
            "audit: index entries and counters: {} objects, {} entries, {} counts: {} differences",
            d.objects,
            d.entries,
            d.counters,
            d.missing.len() + d.stray.len() + d.miscounted.len()
        );
    }
    println!(
        "audit: {} organizations ({}): {} differences",
        orgs.len(),
        checked.join(", "),
        differences
    );
    if differences == 0 {
        Ok(())
    } else {
        Err(format!("audit: {differences} differences"))
    }
}

async fn table_create(mut args: Args) -> Result<(), String> {
    let table = args
        .value("--table")?
        .or_else(|| std::env::var("HUB_TABLE").ok())
        .ok_or("--table NAME is required")?;
    let endpoint = args.value("--endpoint-url")?;
    args.done()?;
    let client = dynamodb_client(endpoint.as_deref()).await;
    hub::store::dynamodb::DynamoStore::create_table(&client, &table)
        .await
        .map_err(|e| format!("DynamoDB: {e}"))?;
    println!("created table {table} (stream, TTL on expiresAt, GSI3 and GSI6)");
    Ok(())
}

/// `hub table backfill`: a table made by an earlier version gets its index
/// entries and counters (resumable, idempotent; docs/aws-deploy.md).
async fn table_backfill(mut args: Args) -> Result<(), String> {
    let table = args
        .value("--table")?
        .or_else(|| std::env::var("HUB_TABLE").ok())
        .ok_or("--table NAME is required")?;
    let endpoint = args.value("--endpoint-url")?;
    args.done()?;
    let client = dynamodb_client(endpoint.as_deref()).await;
    let store = hub::store::dynamodb::DynamoStore::new(client, &table, hub::resources::kinds());
    let report = store
        .backfill(|line| eprintln!("backfill: {line}"))
        .await
        .map_err(|e| format!("DynamoDB: {e}"))?;
    println!(
        "backfilled {table}: {} objects, {} entries written{}, {} counters set",
        report.objects,
        report.entries,
        if report.resumed {
            " (entries were already complete)"
        } else {
            ""
        },
        report.counters
    );
    Ok(())
}

async fn org_create(mut args: Args) -> Result<(), String> {
    let name = args.value("--name")?.ok_or("--name NAME is required")?;
    let as_json = args.flag("--json");
    let empty = args.flag("--empty");
    let store = store_from_args(&mut args).await?;
    args.done()?;
    let org = hub::org::create(store.as_ref(), &name, empty)
        .await
        .map_err(|e| e.message)?;
    if as_json {
        println!("{}", org.to_json());
    } else {
        println!("Organization {} ({})", org.organization_id, org.name);
        println!("  test secret key:      {}", org.test.secret);
        println!("  test publishable key: {}", org.test.publishable);
        println!("  live secret key:      {}", org.live.secret);
        println!("  live publishable key: {}", org.live.publishable);
        println!("Keys are shown only now; only their hashes are stored.");
    }
    Ok(())
}

/// The store `--table NAME [--endpoint-url URL]` (or HUB_TABLE /
/// TABLE_NAME) names, else the embedded one in `--data DIR`.
async fn store_from_args(args: &mut Args) -> Result<DynStore, String> {
    let table = args
        .value("--table")?
        .or_else(|| std::env::var("HUB_TABLE").ok())
        .or_else(|| std::env::var("TABLE_NAME").ok());
    let endpoint = args.value("--endpoint-url")?;
    Ok(match table {
        // The deployed DynamoDB table (credentials and region from the
        // usual AWS environment; --endpoint-url for DynamoDB Local).
        Some(table) => {
            let client = dynamodb_client(endpoint.as_deref()).await;
            let store =
                hub::store::dynamodb::DynamoStore::new(client, table, hub::resources::kinds());
            store
                .warm_up()
                .await
                .map_err(|e| format!("DynamoDB: {e}"))?;
            Arc::new(store)
        }
        None => {
            let dir = data_dir(args)?;
            open_store(&dir)?
        }
    })
}

/// `hub events fill`: a new sandbox organization in the store, and every
/// sample event (events/*.json, events/rest-api, events/alb) written to
/// `--out` with its real test secret key and real ids in place of the
/// placeholders, for `sam local invoke` and `cargo lambda invoke`.
async fn events_fill(mut args: Args) -> Result<(), String> {
    use hub::api::{Op, Request};
    let out = PathBuf::from(
        args.value("--out")?
            .unwrap_or_else(|| "events/local".into()),
    );
    let name = args
        .value("--name")?
        .unwrap_or_else(|| "Local Lambda Clinic".into());
    let store = store_from_args(&mut args).await?;
    args.done()?;
    hub::log::set_level(hub::log::ERROR);
    let org = hub::org::create(store.as_ref(), &name, false)
        .await
        .map_err(|e| e.message)?;
    let key = org.test.secret.clone();
    let app = hub::api::App::new(store, Default::default());
    let mut headers = http::HeaderMap::new();
    let auth = http::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?;
    headers.insert(http::header::AUTHORIZATION, auth);
    // One real id per resource: the first of its list.
    let mut ids: Vec<(String, String)> = Vec::new();
    for route in hub::api::routes() {
        let (Op::List, Some(resource)) = (route.op, route.resource) else {
            continue;
        };
        let resp = app
            .handle(Request {
                method: http::Method::GET,
                path: route.path.to_string(),
                query: "$limit=1".into(),
                headers: headers.clone(),
                body: Default::default(),
                secure: true,
            })
            .await;
        let page: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        if let Some(id) = page["data"][0]["id"].as_str() {
            ids.push((hub::deploy::sample_id(resource.prefix), id.to_string()));
        }
    }
    let mut written = 0;
    for (name, mut event) in hub::deploy::sample_events()
        .into_iter()
        .chain(hub::deploy::sample_events_other_shapes())
    {
        if name == "patients-create" {
            // A body the route accepts, so the invoke creates a patient.
            event["body"] = serde_json::json!(serde_json::json!({
                "fullName": "Sample Patient", "primaryPhoneNumber": "07700 900123", "tracking": {},
                "primaryClinicId": hub::deploy::sample_id("cli"), "statusId": hub::deploy::sample_id("pst"),
                "referralId": hub::deploy::sample_id("ref")
            })
            .to_string());
        }
        let p = out.join(format!("{name}.json"));
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let event = hub::deploy::fill_sample(&event, &key, &ids);
        std::fs::write(&p, format!("{event:#}\n")).map_err(|e| format!("{}: {e}", p.display()))?;
        written += 1;
    }
    println!(
        "wrote {written} events to {} for organization {} ({} resources with real ids)",
        out.display(),
        org.organization_id,
        ids.len()
    );
    Ok(())
}

/// `hub keys roll`: roll an organization's working secret (or publishable)
/// key of one mode, in the embedded store or the DynamoDB table, for an
/// operator who has lost it. The new key is printed once; the old one
/// keeps working for `--expires-in-hours` (default 0: it stops at once).
async fn keys_roll(mut args: Args) -> Result<(), String> {
    let org = args.value("--org")?.ok_or("--org ID is required")?;
    let mode = match args.value("--mode")?.as_deref() {
        Some("test") => hub::auth::Mode::Test,
        Some("live") => hub::auth::Mode::Live,
        _ => return Err("--mode test|live is required".into()),
    };
    let kind = match args.value("--type")?.as_deref() {
        Some("secret") => hub::auth::KeyKind::Secret,
        Some("publishable") => hub::auth::KeyKind::Publishable,
        Some("restricted") => return Err(
            "--type restricted: roll restricted keys through the API (POST /v1/api-keys/{id}/roll)"
                .into(),
        ),
        _ => return Err("--type secret|publishable is required".into()),
    };
    let hours = match args.value("--expires-in-hours")? {
        Some(h) => h
            .parse::<i64>()
            .ok()
            .filter(|h| (0..=hub::resources::api_keys::MAX_OVERLAP_HOURS).contains(h))
            .ok_or("--expires-in-hours must be a whole number of hours from 0 to 12")?,
        None => 0,
    };
    let as_json = args.flag("--json");
    let store = store_from_args(&mut args).await?;
    args.done()?;
    let tenant = hub::auth::Tenant::new(org, mode);
    let (new, old) = hub::org::roll_key(store.as_ref(), &tenant, kind, hours)
        .await
        .map_err(|e| e.message)?;
    if as_json {
        println!("{new}");
        return Ok(());
    }
    let shown = |k: &Value| {
        format!(
            "{}_…{} ({})",
            k["prefix"].as_str().unwrap_or_default(),
            k["last4"].as_str().unwrap_or_default(),
            k["id"].as_str().unwrap_or_default()
        )
    };
    let until = old["expiresAt"].as_str().unwrap_or_default();
    if hours == 0 {
        println!("Rolled {}: it stopped working now.", shown(&old));
    } else {
        println!("Rolled {}: it keeps working until {until}.", shown(&old));
    }
    println!(
        "New {} {} key {}: {}",
        mode.as_str(),
        kind.as_str(),
        new["id"].as_str().unwrap_or_default(),
        new["secret"].as_str().unwrap_or_default()
    );
    println!("The key is shown only now; only its hash is stored.");
    Ok(())
}

const SANDBOX_FILE: &str = "sandbox.json";

/// The development sandbox's test keys, kept in the data directory (mode
/// 0600) so `hub serve` can print them at every start (`file`: one per
/// store, `sandbox.json` for the embedded one).
async fn sandbox(store: &DynStore, dir: &Path, file: &str) -> Result<Value, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(saved) = serde_json::from_str::<Value>(&text) {
            let org = saved["organizationId"].as_str().unwrap_or_default();
            if hub::org::exists(store.as_ref(), org).await.unwrap_or(false) {
                return Ok(saved);
            }
        }
    }
    let org = hub::org::create(store.as_ref(), "St. Mungo's Clinic", false)
        .await
        .map_err(|e| e.message)?;
    let saved = json!({
        "organizationId": org.organization_id,
        "name": org.name,
        "keys": {"test": {"secret": org.test.secret, "publishable": org.test.publishable}},
    });
    write_private(&file, &format!("{saved:#}\n"))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    println!("Created the sandbox organization. Its live keys, shown only now:");
    println!("  live secret key:      {}", org.live.secret);
    println!("  live publishable key: {}", org.live.publishable);
    Ok(saved)
}

/// The key that signs list cursors, kept in the data directory so cursors
/// stay valid across restarts.
fn cursor_key(dir: &Path) -> Result<[u8; 32], String> {
    let file = dir.join("cursor.key");
    let parse = |text: &str| -> Option<[u8; 32]> {
        let t = text.trim();
        let mut out = [0u8; 32];
        if t.len() != 64 {
            return None;
        }
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(out)
    };
    if let Some(k) = std::fs::read_to_string(&file)
        .ok()
        .as_deref()
        .and_then(parse)
    {
        return Ok(k);
    }
    let key = hub::ids::random_bytes::<32>();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&file, &format!("{hex}\n")).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

async fn serve(mut args: Args) -> Result<(), String> {
    let addr: SocketAddr = args
        .value("--addr")?
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    let dir = data_dir(&mut args)?;
    let require_tls = args.flag("--require-tls");
    let rate_limits = match args
        .value("--rate-limit")?
        .or_else(|| std::env::var("HUB_RATE_LIMIT").ok())
    {
        Some(s) => {
            hub::auth::ratelimit::Limits::parse(&s).map_err(|e| format!("--rate-limit: {e}"))?
        }
        None => Default::default(),
    };
    if let Some(level) = args
        .value("--log")?
        .or_else(|| std::env::var("HUB_LOG").ok())
    {
        hub::log::set_level(
            hub::log::level_from_str(&level).ok_or("--log must be info, error or off")?,
        );
    }
    let schedule = match args
        .value("--retry-schedule")?
        .or_else(|| std::env::var("HUB_RETRY_SCHEDULE").ok())
    {
        Some(s) => {
            hub::webhooks::RetrySchedule::parse(&s).map_err(|e| format!("--retry-schedule: {e}"))?
        }
        None => Default::default(),
    };
    let timeout = match args
        .value("--delivery-timeout")?
        .or_else(|| std::env::var("HUB_DELIVERY_TIMEOUT").ok())
    {
        Some(s) => hub::webhooks::parse_duration(&s)
            .filter(|d| !d.is_zero() && d.as_secs() <= 900)
            .ok_or("--delivery-timeout: expected a duration up to 15m, e.g. 30s")?,
        None => std::time::Duration::from_secs(30),
    };
    let header_timeout = match args.value("--header-timeout")? {
        Some(s) => hub::time::parse_duration(&s)
            .filter(|d| !d.is_zero() && d.as_secs() <= 3600)
            .ok_or("--header-timeout: expected a duration up to 1h, e.g. 30s")?,
        None => std::time::Duration::from_secs(30),
    };
    let expiry_every = match args.value("--expiry-interval")? {
        Some(s) => hub::time::parse_duration(&s)
            .filter(|d| !d.is_zero() && d.as_secs() <= 60)
            .ok_or("--expiry-interval: expected a duration up to 1m, e.g. 30s")?,
        None => std::time::Duration::from_secs(30),
    };
    let aws = aws_mode(&mut args)?;
    args.done()?;
    let delivery = hub::webhooks::deliver::DeliveryConfig {
        timeout,
        schedule,
        ..Default::default()
    };
    let (store, queue, sandbox, _workers, place) = match aws {
        None => {
            let store = open_store(&dir)?;
            let queue: hub::queue::DynQueue = Arc::new(
                hub::queue::embedded::EmbeddedQueue::open(&dir)
                    .map_err(|e| format!("cannot open the delivery queue: {e}"))?,
            );
            let sandbox = sandbox(&store, &dir, SANDBOX_FILE).await?;
            let workers = hub::webhooks::worker::spawn(store.clone(), queue.clone(), delivery);
            (
                store,
                queue,
                sandbox,
                workers,
                format!("Data directory: {}", dir.display()),
            )
        }
        Some(mode) => {
            if mode.visibility <= delivery.timeout {
                return Err(format!(
                    "--queue-visibility must be longer than the delivery timeout ({} s)",
                    delivery.timeout.as_secs_f64()
                ));
            }
            let settings = hub::aws::local::QueueSettings {
                attempts: delivery.schedule.attempts(),
                visibility: mode.visibility,
            };
            let aws =
                hub::aws::local::LocalAws::connect(&mode.table, &mode.endpoints, settings).await?;
            let (store, queue) = (aws.dyn_store(), aws.dyn_queue());
            let file = format!("sandbox.{}.json", mode.table);
            let sandbox = sandbox(&store, &dir, &file).await?;
            let polling = hub::aws::local::Polling {
                stream_interval: mode.stream_poll,
                ..Default::default()
            };
            let workers = aws.spawn_pollers(delivery, polling);
            let place = format!(
                "DynamoDB table {} ({}), delivery queue {} (dead letters: {})",
                aws.table,
                mode.endpoints.dynamodb.as_deref().unwrap_or("AWS"),
                aws.queue.url(),
                aws.dead_letter_url
            );
            (store, queue, sandbox, workers, place)
        }
    };
    // Purchases past their expiresAt expire within a minute (a scheduled
    // function does this on AWS).
    tokio::spawn(hub::resources::purchases::expiry_loop(
        store.clone(),
        expiry_every,
    ));
    // Housekeeping: events past their 30 days go, hourly (DynamoDB's TTL
    // does this on AWS).
    let housekeeping = store.clone();
    tokio::spawn(async move {
        loop {
            match housekeeping.purge_expired().await {
                Ok(0) => {}
                Ok(n) => hub::log::info("housekeeping", &format!("purged {n} expired events")),
                Err(e) => hub::log::error("housekeeping", &e.to_string()),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
    let app = App::with_queue(
        store,
        Some(queue),
        Config {
            require_tls,
            rate_limits,
            cursor_key: Some(cursor_key(&dir)?),
        },
    );
    let (bound, listener) = hub::serve::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("Practice Hub listening on http://{bound}");
    println!("Dashboard: http://{bound}/dashboard (paste the test secret key)");
    println!(
        "Sandbox organization: {} ({})",
        sandbox["organizationId"].as_str().unwrap_or(""),
        sandbox["name"].as_str().unwrap_or("")
    );
    println!(
        "  test secret key:      {}",
        sandbox["keys"]["test"]["secret"].as_str().unwrap_or("")
    );
    println!(
        "  test publishable key: {}",
        sandbox["keys"]["test"]["publishable"]
            .as_str()
            .unwrap_or("")
    );
    println!("{place}");
    tokio::select! {
        r = hub::serve::run_per_thread(listener, app, hub::serve::Timeouts {
            headers: header_timeout,
            ..Default::default()
        }, std::thread::available_parallelism().map_or(2, |n| n.get())) => {
            r.map_err(|e| format!("cannot serve: {e}"))
        }
        signal = stop_signal() => {
            // Whoever started it may have closed our stdout already: a
            // closed pipe is no reason to fail the shutdown.
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "Shutting down ({signal}).");
            Ok(())
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (what service managers and containers send):
/// either ends `hub serve` the same way, through `main`, which writes the
/// log lines still waiting (`hub::log::flush`) before the process exits.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// `hub serve` over DynamoDB and SQS: what `--table` and its companions ask for.
struct AwsMode {
    table: String,
    endpoints: hub::aws::local::Endpoints,
    visibility: std::time::Duration,
    stream_poll: std::time::Duration,
}

fn aws_mode(args: &mut Args) -> Result<Option<AwsMode>, String> {
    let table = args
        .value("--table")?
        .or_else(|| std::env::var("HUB_TABLE").ok())
        .filter(|t| !t.is_empty());
    let mut endpoints = hub::aws::local::Endpoints::from_env();
    let mut flags_given = false;
    if let Some(url) = args.value("--endpoint-url")? {
        endpoints.dynamodb = Some(url);
        flags_given = true;
    }
    if let Some(url) = args.value("--sqs-endpoint-url")? {
        endpoints.sqs = Some(url);
        flags_given = true;
    }
    let (visibility, stream_poll) = (
        args.value("--queue-visibility")?,
        args.value("--stream-poll")?,
    );
    flags_given |= visibility.is_some() || stream_poll.is_some();
    let duration = |flag: &str, v: Option<String>, default: std::time::Duration| match v {
        None => Ok(default),
        Some(v) => hub::webhooks::parse_duration(&v)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{flag}: expected a duration such as 250ms or 90s")),
    };
    let visibility = duration(
        "--queue-visibility",
        visibility,
        hub::aws::local::QUEUE_VISIBILITY,
    )?;
    let stream_poll = duration(
        "--stream-poll",
        stream_poll,
        hub::aws::local::Polling::default().stream_interval,
    )?;
    let Some(table) = table else {
        if flags_given {
            return Err(
                "--endpoint-url, --sqs-endpoint-url, --queue-visibility and --stream-poll \
                        go with --table (or HUB_TABLE)"
                    .into(),
            );
        }
        return Ok(None);
    };
    if visibility > std::time::Duration::from_secs(12 * 3600) {
        return Err("--queue-visibility: at most 12h (SQS's limit)".into());
    }
    Ok(Some(AwsMode {
        table,
        endpoints,
        visibility,
        stream_poll,
    }))
}
