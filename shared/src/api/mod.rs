//! Request → auth → validation → one atomic write → response. Transport
//! neutral: `hub serve` (hyper) and the Lambda runtime both build a
//! `Request` and send back the `Response`.

pub mod fhir;
pub mod openapi;
mod routes;

pub use routes::{match_route, routes, Op, Route, RouteMatch};

use crate::auth::{self, idempotency, KeyKind};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::query::{self, QuerySchema};
use crate::resources::{self, Ctx, Reply, Resource};
use crate::store::{Doc, DynStore};
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};
use std::sync::Arc;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query string.
    pub path: String,
    /// The raw query string, without `?` (empty when none).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Did the request arrive over TLS (directly or at a proxy in front)?
    pub secure: bool,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        Self::json_from(status, body)
    }

    pub fn json_from<T: serde::Serialize>(status: u16, body: &T) -> Response {
        // Serialising plain data to a Vec cannot fail.
        let mut bytes = Vec::with_capacity(1024);
        let _ = serde_json::to_writer(&mut bytes, body);
        Self::json_text(status, Bytes::from(bytes))
    }

    /// A response whose body is JSON text already made.
    pub fn json_text(status: u16, body: Bytes) -> Response {
        Response {
            status,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Refuse live-mode requests that did not arrive over TLS (426).
    pub require_tls: bool,
    /// Per-key request rate limits.
    pub rate_limits: crate::auth::ratelimit::Limits,
    /// Key that signs list cursors; random per process when not given.
    pub cursor_key: Option<[u8; 32]>,
}

pub struct App {
    cursor_key: [u8; 32],
    pub store: DynStore,
    /// The delivery queue (webhook tests and redeliveries enqueue directly).
    pub queue: Option<crate::queue::DynQueue>,
    pub config: Config,
    limiter: crate::auth::ratelimit::Limiter,
}

/// A UUID v4 (unique, not secret: `ids::unique_bytes`), the id of one
/// request and of its error, if any.
pub fn uuid_v4() -> String {
    let mut b = crate::ids::unique_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::ids::hex(&b);
    let mut s = String::with_capacity(36);
    for (i, part) in [&h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            s.push('-');
        }
        s.push_str(part);
    }
    s
}

const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, If-Match";
const CORS_EXPOSE_HEADERS: &str = "ETag, Request-Id, Link, Retry-After";

fn etag(doc: &Value) -> String {
    etag_of(crate::store::version_of(doc))
}

fn etag_of(version: u64) -> String {
    format!("\"{version}\"")
}

/// `If-Match: "3"` (also `W/"3"` or `3`); `*` matches any version.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get("if-match") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::invalid("If-Match must be an ETag such as \"3\"."))?
        .trim();
    if s == "*" {
        return Ok(None);
    }
    let t = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    t.parse::<u64>().map(Some).map_err(|_| {
        ApiError::new(
            ErrorKind::PreconditionFailed,
            format!(
                "If-Match `{}` matches no version of this object; use the ETag of a response.",
                crate::query::qs::truncate(s)
            ),
        )
    })
}

fn json_body(req: &Request) -> ApiResult<Value> {
    if req.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            "The request body is larger than 1 MiB.",
        ));
    }
    let ct = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    let is_json = media.eq_ignore_ascii_case("application/json")
        || (media.len() > 5 && media.to_ascii_lowercase().ends_with("+json"));
    if req.body.is_empty() && ct.is_empty() {
        return Ok(json!({}));
    }
    if !is_json {
        return Err(ApiError::new(
            ErrorKind::InvalidContentType,
            format!(
                "Request bodies must be JSON with `Content-Type: application/json`, not `{}`.",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        ));
    }
    if req.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::invalid(format!("The request body is not valid JSON: {e}.")))
}

/// The request's own query string without paging parameters, for `Link`.
fn query_without_paging(raw: &str) -> String {
    raw.split('&')
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("");
            let key = query::qs::decode(key).unwrap_or_default();
            !p.is_empty() && !matches!(key.as_str(), "$after" | "$before" | "$skip")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn list_response(
    page: &crate::store::ListPage,
    q: &query::ListQuery,
    cursors: (Option<String>, Option<String>),
    path: &str,
    raw_query: &str,
) -> Response {
    use std::io::Write;
    let (next, prev) = cursors;
    // `{"object":"list","data":[…],"total":…,"skip":…,"limit":…,"next":…,
    // "prev":…}`, written out directly: an item kept packed is copied out
    // as JSON without being parsed. Writing to a Vec cannot fail.
    let mut out = Vec::with_capacity(128 + 768 * page.data.len());
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for (i, d) in page.data.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match &q.select {
            Some(sel) => {
                let _ = serde_json::to_writer(&mut out, &query::project(&d.doc(), sel));
            }
            None => d.write_json(&mut out),
        }
    }
    out.push(b']');
    if let Some(total) = page.total {
        let _ = write!(out, r#","total":{total}"#);
    }
    let _ = write!(out, r#","skip":{},"limit":{},"next":"#, q.skip, q.limit);
    let _ = serde_json::to_writer(&mut out, &next);
    out.extend_from_slice(br#","prev":"#);
    let _ = serde_json::to_writer(&mut out, &prev);
    out.push(b'}');
    let mut r = Response::json_text(200, Bytes::from(out));
    if let Some(link) = page_links(path, raw_query, &next, &prev) {
        r.headers.push(("link", link));
    }
    r
}

/// The RFC 8288 `Link` header of a page with these cursors, if any.
fn page_links(
    path: &str,
    raw_query: &str,
    next: &Option<String>,
    prev: &Option<String>,
) -> Option<String> {
    let base = query_without_paging(raw_query);
    let sep = if base.is_empty() { "" } else { "&" };
    let links: Vec<String> = [("next", next, "$after"), ("prev", prev, "$before")]
        .iter()
        .filter_map(|(rel, c, param)| {
            c.as_ref()
                .map(|c| format!("<{path}?{base}{sep}{param}={c}>; rel=\"{rel}\""))
        })
        .collect();
    (!links.is_empty()).then(|| links.join(", "))
}

fn object_response(status: u16, doc: &Doc, select: Option<&[String]>) -> Response {
    let mut r = match select {
        Some(sel) => Response::json(status, &query::project(doc, sel)),
        None => Response::json(status, doc),
    };
    r.headers.push(("etag", etag(doc)));
    r
}

/// A future whose panic becomes `Err(())` instead of unwinding into the
/// server (what a task per request gave, without spawning one).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(p) => p.map(Ok),
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// What one request did, for its log line.
#[derive(Default)]
struct Outcome {
    route: &'static str,
    org: Option<String>,
    mode: Option<&'static str>,
    key_kind: Option<KeyKind>,
    rate: Option<crate::auth::ratelimit::Decision>,
}

impl App {
    pub fn new(store: DynStore, config: Config) -> Arc<App> {
        Self::with_queue(store, None, config)
    }

    pub fn with_queue(
        store: DynStore,
        queue: Option<crate::queue::DynQueue>,
        config: Config,
    ) -> Arc<App> {
        Arc::new(App {
            cursor_key: config
                .cursor_key
                .unwrap_or_else(crate::ids::random_bytes::<32>),
            store,
            queue,
            config,
            limiter: Default::default(),
        })
    }

    /// Handle one request; never panics outward: a panic in a handler becomes a 500.
    pub async fn handle(self: &Arc<Self>, req: Request) -> Response {
        self.handle_with_id(req, None).await
    }

    /// Handle one request under this request id (the Lambda invocation's);
    /// without one a UUID is made. The id is the `Request-Id` response
    /// header, the error envelope's `eventId` and the log line's `requestId`.
    pub async fn handle_with_id(self: &Arc<Self>, req: Request, id: Option<String>) -> Response {
        let app = Arc::clone(self);
        let method = req.method.clone();
        let path = req.path.clone();
        let started = std::time::Instant::now();
        let request_id = id.unwrap_or_else(uuid_v4);
        let id = request_id.clone();
        match (CatchUnwind(Box::pin(async move { app.handle_inner(req, id).await }))).await {
            Ok(r) => r,
            Err(_) => {
                let err = ApiError::internal();
                tracing::error!(
                    target: "hub::request",
                    requestId = %request_id,
                    eventId = %request_id,
                    method = method.as_str(),
                    path = %path,
                    status = 500u64,
                    error = err.kind.name(),
                    durationMs = started.elapsed().as_secs_f64() * 1000.0,
                    "handler panicked"
                );
                let mut r = Response::json(500, &err.body(&request_id));
                r.headers.push(("request-id", request_id));
                r
            }
        }
    }

    async fn handle_inner(&self, req: Request, event_id: String) -> Response {
        let started = std::time::Instant::now();
        let mut outcome = Outcome::default();
        let result = self.dispatch(&req, &mut outcome).await;
        let (mut resp, error) = match result {
            Ok(r) => (r, None),
            Err(e) if crate::api::fhir::is_fhir_path(&req.path) => {
                let mut r = crate::api::fhir::outcome_response(&e, &event_id);
                r.headers.extend(e.headers.iter().cloned());
                (r, Some(e))
            }
            Err(e) => {
                let mut r = Response::json(e.kind.status(), &e.body(&event_id));
                r.headers.extend(e.headers.iter().cloned());
                (r, Some(e))
            }
        };
        if let Some(d) = outcome.rate {
            resp.headers.push(("ratelimit-limit", d.limit.to_string()));
            resp.headers
                .push(("ratelimit-remaining", d.remaining.to_string()));
            resp.headers
                .push(("ratelimit-reset", d.reset_secs.to_string()));
            if !d.allowed {
                resp.headers
                    .push(("retry-after", d.retry_after_secs.to_string()));
            }
        }
        // The one place a CORS grant is made, so a response carries each
        // header exactly once (browsers refuse "multiple values").
        if req.headers.contains_key("origin")
            && !matches!(
                outcome.key_kind,
                Some(KeyKind::Secret | KeyKind::Restricted)
            )
        {
            resp.headers
                .push(("access-control-allow-origin", "*".into()));
            if outcome.route == "cors-preflight" {
                resp.headers.extend([
                    (
                        "access-control-allow-methods",
                        "GET, POST, PATCH, DELETE, OPTIONS".into(),
                    ),
                    ("access-control-allow-headers", CORS_ALLOW_HEADERS.into()),
                    ("access-control-max-age", "600".into()),
                ]);
            } else {
                resp.headers
                    .push(("access-control-expose-headers", CORS_EXPOSE_HEADERS.into()));
            }
        }
        // One line per request: ids, route, status, duration — never keys,
        // bodies, query strings or patient fields.
        let duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
        let org = outcome.org.as_deref();
        let mode = outcome.mode;
        match &error {
            Some(e) if e.kind.status() >= 500 => tracing::error!(
                target: "hub::request",
                requestId = %event_id,
                eventId = %event_id,
                method = req.method.as_str(),
                path = %req.path,
                route = outcome.route,
                organizationId = org,
                mode,
                status = resp.status as u64,
                error = e.kind.name(),
                durationMs = duration_ms,
            ),
            _ => tracing::info!(
                target: "hub::request",
                requestId = %event_id,
                eventId = error.as_ref().map(|_| event_id.as_str()),
                method = req.method.as_str(),
                path = %req.path,
                route = outcome.route,
                organizationId = org,
                mode,
                status = resp.status as u64,
                error = error.as_ref().map(|e| e.kind.name()),
                durationMs = duration_ms,
            ),
        }
        resp.headers.push(("request-id", event_id));
        resp
    }

    async fn dispatch(&self, req: &Request, outcome: &mut Outcome) -> ApiResult<Response> {
        if req.method == Method::OPTIONS {
            outcome.route = "cors-preflight";
            // The grant itself is added with every other CORS header below.
            return Ok(Response {
                status: 204,
                headers: Vec::new(),
                body: Bytes::new(),
            });
        }
        let m = match_route(&req.method, &req.path)?;
        outcome.route = m.route.name;
        match m.route.op {
            Op::Health => return Ok(Response::json(200, &json!({"status": "ok"}))),
            Op::OpenApi => return Ok(Response::json(200, openapi::document())),
            Op::Dashboard | Op::Docs => {
                let file = if m.route.op == Op::Docs {
                    crate::docs::serve(m.id.as_deref(), &req.headers)?
                } else {
                    crate::dashboard::serve(m.id.as_deref(), &req.headers)?
                };
                return Ok(Response {
                    status: file.status,
                    headers: file.headers,
                    body: file.body,
                });
            }
            Op::FhirMetadata => return Ok(crate::api::fhir::capability_statement(req)),
            Op::Widget => {
                let file = crate::widget::serve(&req.headers)?;
                return Ok(Response {
                    status: file.status,
                    headers: file.headers,
                    body: file.body,
                });
            }
            _ => {}
        }
        self.store.refresh().await?;
        let auth_header = req.headers.get("authorization").map(|v| v.as_bytes());
        let principal = auth::authenticate(self.store.as_ref(), auth_header).await?;
        outcome.org = Some(principal.tenant.org.clone());
        outcome.mode = Some(principal.tenant.mode.as_str());
        outcome.key_kind = Some(principal.kind);
        let limit = match principal.tenant.mode {
            crate::auth::Mode::Test => self.config.rate_limits.test,
            crate::auth::Mode::Live => self.config.rate_limits.live,
        };
        if let Some(limit) = limit {
            let d = self.limiter.take(&principal.key_id, limit);
            outcome.rate = Some(d);
            if !d.allowed {
                return Err(ApiError::new(
                    ErrorKind::RateLimitExceeded,
                    format!("Too many requests with this key; retry after {} s, with exponential back-off.", d.retry_after_secs),
                ));
            }
        }
        if self.config.require_tls && principal.tenant.livemode() && !req.secure {
            return Err(ApiError::new(
                ErrorKind::Security,
                "Live-mode requests must use HTTPS.",
            ));
        }
        if let Some(access) = m.route.access() {
            principal.authorize(access)?;
        }
        if m.route.op == Op::Organization {
            let org = crate::org::describe(self.store.as_ref(), &principal).await?;
            return Ok(Response::json(200, &org));
        }
        let idempotency_key = match req.headers.get("idempotency-key") {
            Some(v) if req.method == Method::POST => Some(v.to_str().map_err(|_| {
                ApiError::field("Idempotency-Key", "must be printable ASCII characters")
            })?),
            _ => None,
        };
        let tenant = principal.tenant.key();
        let claim = match idempotency_key {
            None => None,
            Some(key) => match idempotency::begin(
                self.store.as_ref(),
                &tenant,
                key,
                req.method.as_str(),
                &req.path,
                &req.body,
            )
            .await?
            {
                idempotency::Before::Replay(stored) => {
                    return Ok(Response {
                        status: stored.status,
                        headers: stored.headers,
                        body: stored.body,
                    })
                }
                idempotency::Before::Run(claim) => Some(claim),
            },
        };
        let ctx = Ctx {
            store: self.store.as_ref(),
            queue: self.queue.as_deref(),
            tenant: &principal.tenant,
            key: Some(principal.kind),
            idempotency: claim.as_ref(),
        };
        let result = self.resource_op(&ctx, m, req).await;
        if let Some(claim) = claim {
            let headers = match &result {
                Ok(Answer::Reply(r)) => r.headers(),
                _ => Vec::new(),
            };
            let answered = match &result {
                Ok(Answer::Reply(r)) => Some(idempotency::Answered {
                    status: r.status,
                    headers: &headers,
                    body: &r.body,
                    omit: r.once,
                }),
                _ => None,
            };
            idempotency::finish(self.store.as_ref(), claim, answered).await;
        }
        result.map(Answer::into_response)
    }

    /// A view (availability), paged like every list: `$limit` (default 10,
    /// at most 100), and signed `next`/`prev` cursors (`$after`, `$before`)
    /// naming a position in the view's order (`View::order`, which is
    /// unique per item), bound to the tenant, the view and its parameters.
    async fn view_op(
        &self,
        ctx: &Ctx<'_>,
        view: &'static resources::View,
        req: &Request,
    ) -> ApiResult<Response> {
        let mut params: Vec<&str> = Vec::new();
        let (mut limit, mut after, mut before) = (None, None, None);
        for part in req.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let name = query::qs::decode(k)?;
            let slot = match name.as_str() {
                "$limit" => &mut limit,
                "$after" => &mut after,
                "$before" => &mut before,
                _ => {
                    params.push(part);
                    continue;
                }
            };
            if slot.is_some() {
                return Err(ApiError::field(name, "must be given once"));
            }
            *slot = Some(query::qs::decode(v)?);
        }
        let limit = match limit {
            None => query::DEFAULT_LIMIT,
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| {
                    ApiError::field(
                        "$limit",
                        "must be a non-negative integer (at most 100 are returned)",
                    )
                })?
                .min(query::MAX_LIMIT),
        };
        // The cursor is bound to the view's parameters, in any order.
        params.sort_unstable();
        let rest = params.join("&");
        let fingerprint = {
            use sha2::Digest;
            crate::ids::hex(&sha2::Sha256::digest(rest.as_bytes())[..12])
        };
        let tenant = ctx.tenant.key();
        let binding = query::cursor::Binding {
            tenant: &tenant,
            resource: view.path,
            fingerprint: &fingerprint,
        };
        let position = match (after.as_deref(), before.as_deref()) {
            (Some(c), _) => Some(query::cursor::decode(
                &self.cursor_key,
                &binding,
                c,
                "$after",
            )?),
            (None, Some(c)) => Some(query::cursor::decode(
                &self.cursor_key,
                &binding,
                c,
                "$before",
            )?),
            (None, None) => None,
        };
        let mut body = resources::run_view(ctx, view, &rest).await?;
        let items = match body.get_mut("data").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => return Err(ApiError::internal()),
        };
        let key_of = |item: &Value| -> Vec<Option<Value>> {
            view.order
                .iter()
                .map(|f| item.get(*f).filter(|v| !v.is_null()).cloned())
                .collect()
        };
        let cmp = |a: &[Option<Value>], b: &[Option<Value>]| {
            let text = |v: &Option<Value>| {
                v.as_ref()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
            };
            a.iter().map(text).cmp(b.iter().map(text))
        };
        let (start, end) = match &position {
            None => (0, limit.min(items.len())),
            Some(p) if p.before => {
                let end = items.partition_point(|i| cmp(&key_of(i), &p.keys).is_lt());
                (end.saturating_sub(limit), end)
            }
            Some(p) => {
                let start = items.partition_point(|i| cmp(&key_of(i), &p.keys).is_le());
                (start, (start + limit).min(items.len()))
            }
        };
        let cursor_at = |i: usize, before: bool| {
            let pos = query::cursor::Position {
                keys: key_of(&items[i]),
                id: String::new(),
                before,
            };
            query::cursor::encode(&self.cursor_key, &binding, &pos)
        };
        let next = (end > start && end < items.len()).then(|| cursor_at(end - 1, false));
        let prev = (end > start && start > 0).then(|| cursor_at(start, true));
        let data: Vec<Value> = items[start..end].to_vec();
        let page =
            json!({"object": "list", "data": data, "limit": limit, "next": next, "prev": prev});
        let mut r = Response::json(200, &page);
        if let Some(link) = page_links(&req.path, &req.query, &next, &prev) {
            r.headers.push(("link", link));
        }
        Ok(r)
    }

    /// A list of `res`, optionally narrowed by `scope` (a sub-list's parent).
    async fn list_op(
        &self,
        ctx: &Ctx<'_>,
        res: &'static Resource,
        req: &Request,
        scope: Option<query::Filter>,
    ) -> ApiResult<Response> {
        let (page, q, next, prev) = self
            .list_page(ctx, res, &req.query, scope, res.search_fields)
            .await?;
        Ok(list_response(
            &page,
            &q,
            (next, prev),
            &req.path,
            &req.query,
        ))
    }

    /// One page of a list of `res` from a raw query string (the query
    /// language of `/v1`), with its `next` and `prev` cursors; `$search`
    /// looks in `search_fields`.
    pub(crate) async fn list_page(
        &self,
        ctx: &Ctx<'_>,
        res: &'static Resource,
        raw_query: &str,
        scope: Option<query::Filter>,
        search_fields: &'static [&'static str],
    ) -> ApiResult<(
        crate::store::ListPage,
        query::ListQuery,
        Option<String>,
        Option<String>,
    )> {
        let schema_sets = res.field_sets();
        let schema = QuerySchema {
            field_sets: &schema_sets,
            search_fields,
        };
        let mut q = query::parse(raw_query, &schema)?;
        let mut extra = Vec::new();
        extra.extend(scope);
        // Cursors are bound to the query and its scope, not to the window
        // of objects still alive below (it moves every millisecond).
        let fingerprint = query::cursor::fingerprint(&query::ListQuery {
            filter: query::Filter::And(extra.iter().cloned().chain([q.filter.clone()]).collect()),
            ..q.clone()
        });
        if let Some(ttl) = res.ttl_ms {
            // Objects past their life are gone, even before housekeeping.
            let since = crate::time::format_ms(crate::time::now_ms() - ttl);
            extra.push(query::Filter::Field {
                path: vec!["createdAt".into()],
                op: query::Op::Gte(Value::String(since)),
            });
        }
        if !extra.is_empty() {
            extra.push(std::mem::replace(&mut q.filter, query::Filter::all()));
            q.filter = query::Filter::And(extra);
        }
        let tenant = ctx.tenant.key();
        let binding = query::cursor::Binding {
            tenant: &tenant,
            resource: res.path,
            fingerprint: &fingerprint,
        };
        if let Some((raw, param)) = q
            .after
            .as_deref()
            .map(|c| (c, "$after"))
            .or(q.before.as_deref().map(|c| (c, "$before")))
        {
            q.position = Some(query::cursor::decode(
                &self.cursor_key,
                &binding,
                raw,
                param,
            )?);
        }
        let page = resources::list(ctx, res, &q).await?;
        let cursor_at = |item: Option<&crate::store::Item>, before: bool, wanted: bool| {
            item.filter(|_| wanted).map(|d| {
                let pos = d.position(&q, res.search_fields, before);
                query::cursor::encode(&self.cursor_key, &binding, &pos)
            })
        };
        let next = cursor_at(page.data.last(), false, page.has_next);
        let prev = cursor_at(page.data.first(), true, page.has_prev);
        Ok((page, q, next, prev))
    }

    async fn resource_op(&self, ctx: &Ctx<'_>, m: RouteMatch, req: &Request) -> ApiResult<Answer> {
        if let Op::View(view) = m.route.op {
            return Ok(Answer::Response(self.view_op(ctx, view, req).await?));
        }
        match m.route.op {
            Op::FhirRead(t) => {
                return Ok(Answer::Response(
                    crate::api::fhir::read(ctx, t, m.id()).await?,
                ))
            }
            Op::FhirSearch(t) => {
                return Ok(Answer::Response(
                    crate::api::fhir::search(self, ctx, t, req).await?,
                ))
            }
            _ => {}
        }
        let res: &'static Resource = m.route.resource.ok_or_else(ApiError::internal)?;
        let schema_sets = res.field_sets();
        let schema = QuerySchema {
            field_sets: &schema_sets,
            search_fields: res.search_fields,
        };
        let reply = match m.route.op {
            Op::List => return Ok(Answer::Response(self.list_op(ctx, res, req, None).await?)),
            Op::Get => {
                let select = query::parse_get(&req.query, &schema)?;
                if select.is_none() {
                    let shown = resources::get_with_json(ctx, res, m.id()).await?;
                    let mut r = Response::json_text(200, shown.json);
                    r.headers.push(("etag", etag_of(shown.version)));
                    return Ok(Answer::Response(r));
                }
                let doc = resources::get(ctx, res, m.id()).await?;
                return Ok(Answer::Response(object_response(
                    200,
                    &doc,
                    select.as_deref(),
                )));
            }
            Op::Create => resources::create(ctx, res, json_body(req)?).await?,
            Op::Update => {
                let expect = if_match(&req.headers)?;
                let body = json_body(req)?;
                resources::update(ctx, res, m.id(), body, expect).await?
            }
            Op::Delete => {
                let expect = if_match(&req.headers)?;
                resources::delete(ctx, res, m.id(), expect).await?
            }
            Op::Action(name) => {
                let action = res.action(name).ok_or_else(ApiError::internal)?;
                let body = json_body(req)?;
                resources::run_action(ctx, action, m.id(), body).await?
            }
            Op::SubList(name) => {
                let sub = res.sublist(name).ok_or_else(ApiError::internal)?;
                resources::get(ctx, res, m.id()).await?;
                let scope = query::Filter::Field {
                    path: vec![sub.field.into()],
                    op: query::Op::Eq(Value::String(m.id().to_string())),
                };
                return Ok(Answer::Response(
                    self.list_op(ctx, sub.resource, req, Some(scope)).await?,
                ));
            }
            Op::Health
            | Op::OpenApi
            | Op::View(_)
            | Op::Organization
            | Op::Dashboard
            | Op::FhirMetadata
            | Op::FhirRead(_)
            | Op::FhirSearch(_)
            | Op::Docs
            | Op::Widget => return Err(ApiError::internal()),
        };
        Ok(Answer::Reply(reply))
    }
}

/// What a route answers: a reply of the resource layer (what a POST's
/// idempotency key stores), or a response built here (reads).
enum Answer {
    Reply(Reply),
    Response(Response),
}

impl Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Response(r) => r,
            Answer::Reply(r) => {
                let mut resp = Response::json(r.status, &r.body);
                resp.headers.extend(r.headers());
                resp
            }
        }
    }
}

/// The body a request needs to carry this error, for transports that fail
/// before the app runs (oversized body at the socket).
pub fn error_response(err: &ApiError) -> Response {
    let event_id = uuid_v4();
    tracing::info!(
        target: "hub::request",
        requestId = %event_id,
        eventId = %event_id,
        status = err.kind.status() as u64,
        error = err.kind.name(),
    );
    let mut r = Response::json(err.kind.status(), &err.body(&event_id));
    r.headers.push(("request-id", event_id));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v4() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = super::uuid_v4();
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(id
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
            assert!(seen.insert(id));
        }
    }
}
