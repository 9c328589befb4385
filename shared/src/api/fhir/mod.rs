//! A read-only FHIR R4 facade at `/fhir/R4` over the same data, keys,
//! modes and tenancy as `/v1`: reads and searches of Patient,
//! Practitioner, Location, Appointment, Slot, Observation and Invoice, the
//! CapabilityStatement, and errors as OperationOutcome. Searches become
//! queries of the `/v1` query language and run through the same list path
//! (tenant scoping, cursors bound to tenant and query). docs/fhir.md has the
//! mapping.

pub mod map;

use crate::api::{App, Request, Response};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::resources::{self, Ctx, Resource};
use bytes::Bytes;
use serde_json::{json, Value};

pub const BASE: &str = "/fhir/R4";
pub const CONTENT_TYPE: &str = "application/fhir+json";

/// One FHIR resource type served, and what it is made from.
#[derive(Debug)]
pub struct FhirType {
    /// `Patient`.
    pub name: &'static str,
    /// The `/v1` resource whose objects it shows (and whose read permission
    /// a restricted key needs).
    pub access: &'static str,
    /// May publishable keys read it (as they may in `/v1`)?
    pub publishable: bool,
    /// Search parameters beyond `_count` and the paging one.
    pub params: &'static [(&'static str, &'static str, &'static str)],
}

pub static TYPES: &[FhirType] = &[
    FhirType {
        name: "Patient",
        access: "patients",
        publishable: false,
        params: &[
            (
                "name",
                "string",
                "Words of the full name (matched by stem, any word).",
            ),
            ("phone", "token", "The primary or secondary phone number."),
            ("email", "token", "The email address."),
            (
                "identifier",
                "token",
                "[system|]value: our id, the medical number or the barcode.",
            ),
        ],
    },
    FhirType {
        name: "Practitioner",
        access: "practitioners",
        publishable: false,
        params: &[("name", "string", "Words of the full name.")],
    },
    FhirType {
        name: "Location",
        access: "clinics",
        publishable: false,
        params: &[("name", "string", "Words of the clinic's name.")],
    },
    FhirType {
        name: "Appointment",
        access: "appointments",
        publishable: false,
        params: &[
            ("patient", "reference", "Patient/{id}."),
            ("practitioner", "reference", "Practitioner/{id}."),
            ("location", "reference", "Location/{id}."),
            (
                "date",
                "date",
                "The start; prefixes eq, ge, gt, le, lt; repeatable.",
            ),
        ],
    },
    FhirType {
        name: "Slot",
        access: "appointments",
        publishable: true,
        params: &[
            (
                "service-type",
                "token",
                "Required: the appointment type's id.",
            ),
            (
                "start",
                "date",
                "The window: ge/gt (default now) and lt/le (default 7 days on, at most 31).",
            ),
            (
                "schedule.actor",
                "reference",
                "Practitioner/{id} or Location/{id}.",
            ),
        ],
    },
    FhirType {
        name: "Observation",
        access: "hearing-tests",
        publishable: false,
        params: &[("patient", "reference", "Patient/{id}.")],
    },
    FhirType {
        name: "Invoice",
        access: "invoices",
        publishable: false,
        params: &[
            ("patient", "reference", "Patient/{id}."),
            ("status", "token", "draft, issued, balanced or cancelled."),
        ],
    },
];

/// The paging parameter of searches (an opaque cursor, or an offset for Slot).
const PAGE_PARAM: &str = "_page";

pub fn is_fhir_path(path: &str) -> bool {
    path == BASE || path.starts_with("/fhir/")
}

/// A FHIR id: ids allow no `_`, so `pat_01J…` is `pat-01J…`.
pub fn fhir_id(id: &str) -> String {
    id.replace('_', "-")
}

/// Our id from either form.
pub fn our_id(id: &str) -> String {
    id.replace('-', "_")
}

pub fn reference(kind: &str, id: &str) -> Value {
    json!({"reference": format!("{kind}/{}", fhir_id(id))})
}

fn fhir_response(status: u16, body: &Value) -> Response {
    let mut bytes = Vec::with_capacity(1024);
    let _ = serde_json::to_writer(&mut bytes, body);
    Response {
        status,
        headers: vec![("content-type", CONTENT_TYPE.into())],
        body: Bytes::from(bytes),
    }
}

/// An error as an OperationOutcome, with the error's status.
pub fn outcome_response(e: &ApiError, event_id: &str) -> Response {
    let code = match e.kind {
        ErrorKind::Auth => "login",
        ErrorKind::Permissions | ErrorKind::Credentials => "forbidden",
        ErrorKind::NotFound => "not-found",
        ErrorKind::InvalidParameters | ErrorKind::InvalidContentType => "invalid",
        ErrorKind::MethodNotSupported => "not-supported",
        ErrorKind::RateLimitExceeded => "throttled",
        ErrorKind::Security => "security",
        ErrorKind::PayloadTooLarge => "too-costly",
        ErrorKind::Conflict | ErrorKind::PreconditionFailed | ErrorKind::LockTimeout => "conflict",
        ErrorKind::Unavailable => "transient",
        ErrorKind::Unknown => "exception",
    };
    let mut issues = vec![json!({
        "severity": "error",
        "code": code,
        "details": {"text": e.kind.name()},
        "diagnostics": e.message,
    })];
    if e.errors.len() > 1 {
        for f in &e.errors {
            issues.push(json!({
                "severity": "error",
                "code": code,
                "diagnostics": format!("`{}`: {}", f.field, f.message),
            }));
        }
    }
    fhir_response(
        e.kind.status(),
        &json!({"resourceType": "OperationOutcome", "id": event_id, "issue": issues}),
    )
}

/// `GET /fhir/R4/metadata`.
pub fn capability_statement(req: &Request) -> Response {
    let resources: Vec<Value> = TYPES
        .iter()
        .map(|t| {
            let mut params: Vec<Value> = t
                .params
                .iter()
                .map(|(n, ty, doc)| json!({"name": n, "type": ty, "documentation": doc}))
                .collect();
            params.push(json!({"name": "_count", "type": "number", "documentation": "Page size, 1 to 100 (default 10)."}));
            json!({
                "type": t.name,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "versioned",
                "readHistory": false,
                "searchParam": params,
            })
        })
        .collect();
    fhir_response(
        200,
        &json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-06",
            "publisher": "Practice Hub",
            "kind": "instance",
            "software": {"name": "Practice Hub", "version": env!("CARGO_PKG_VERSION")},
            "implementation": {"description": "Practice Hub's read-only FHIR R4 facade", "url": base_url(req)},
            "fhirVersion": "4.0.1",
            "format": ["json", CONTENT_TYPE],
            "rest": [{
                "mode": "server",
                "documentation": "Read-only. The same Bearer keys, modes and organizations as /v1; a restricted key needs read on the underlying resource.",
                "security": {"description": "Authorization: Bearer sk_…, rk_… (or pk_… where /v1 allows publishable keys)."},
                "resource": resources,
            }],
        }),
    )
}

fn resource_of(t: &FhirType) -> ApiResult<&'static Resource> {
    resources::by_path(t.access).ok_or_else(ApiError::internal)
}

fn map_doc(t: &FhirType, doc: &Value) -> Value {
    match t.name {
        "Patient" => map::patient(doc),
        "Practitioner" => map::practitioner(doc),
        "Location" => map::location(doc),
        "Appointment" => map::appointment(doc),
        "Observation" => map::observation(doc),
        _ => map::invoice(doc),
    }
}

fn not_found(t: &FhirType, id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!(
            "No {} with id `{}`.",
            t.name,
            crate::query::qs::truncate(id)
        ),
    )
}

/// `GET /fhir/R4/{Type}/{id}`.
pub async fn read(ctx: &Ctx<'_>, t: &FhirType, id: &str) -> ApiResult<Response> {
    if t.name == "Slot" {
        return slot_read(ctx, id).await;
    }
    let res = resource_of(t)?;
    let ours = our_id(id);
    if !ours.starts_with(&format!("{}_", res.prefix)) {
        return Err(not_found(t, id));
    }
    let doc = resources::get(ctx, res, &ours)
        .await
        .map_err(|e| match e.kind {
            ErrorKind::NotFound => not_found(t, id),
            _ => e,
        })?;
    let mut r = fhir_response(200, &map_doc(t, &doc));
    r.headers
        .push(("etag", format!("W/\"{}\"", crate::store::version_of(&doc))));
    Ok(r)
}

/// The request's parameters, decoded, in order.
fn params(raw: &str) -> ApiResult<Vec<(String, String)>> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = crate::query::qs::decode(k)?;
            let v = crate::query::qs::decode(v)?;
            Ok((k, v))
        })
        .collect()
}

fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bad_param(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::field(name, why.to_string())
}

/// `Patient/pat-…`, `pat-…` or `pat_…` → our id, of the expected type.
fn ref_param(name: &str, value: &str, kind: &str, prefix: &str) -> ApiResult<String> {
    let v = value
        .strip_prefix(&format!("{kind}/"))
        .or_else(|| value.rsplit_once(&format!("/{kind}/")).map(|(_, id)| id))
        .unwrap_or(value);
    let id = our_id(v);
    if id.starts_with(&format!("{prefix}_")) && !v.contains('/') {
        Ok(id)
    } else {
        Err(bad_param(
            name,
            format!("must be a reference to a {kind} (`{kind}/{prefix}-…`)"),
        ))
    }
}

/// A FHIR date or dateTime search value → [lo, hi) in Unix ms, and its prefix.
fn date_param(name: &str, value: &str) -> ApiResult<(String, i64, i64)> {
    let (prefix, v) = match value.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p.to_string(), &value[2..]),
        Some(p) if p.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(bad_param(
                name,
                format!("prefix `{p}` is not supported (eq, ge, gt, le, lt)"),
            ))
        }
        _ => ("eq".to_string(), value),
    };
    let bad = || {
        bad_param(
            name,
            "must be a date (YYYY, YYYY-MM, YYYY-MM-DD) or an RFC 3339 dateTime",
        )
    };
    let (lo, hi) = if v.len() > 10 {
        let t = crate::time::parse_timestamp(v)
            .filter(|_| v.contains('T'))
            .ok_or_else(bad)?;
        (t, t + 1)
    } else {
        let parts: Vec<&str> = v.split('-').collect();
        let num = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i64>().ok())
                .flatten()
        };
        let at = |y: i64, m: i64, d: i64| {
            crate::time::parse_timestamp(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"))
        };
        match parts.as_slice() {
            [y] => {
                let y = num(y, 4).ok_or_else(bad)?;
                (
                    at(y, 1, 1).ok_or_else(bad)?,
                    at(y + 1, 1, 1).ok_or_else(bad)?,
                )
            }
            [y, m] => {
                let (y, m) = (num(y, 4).ok_or_else(bad)?, num(m, 2).ok_or_else(bad)?);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (at(y, m, 1).ok_or_else(bad)?, at(ny, nm, 1).ok_or_else(bad)?)
            }
            [y, m, d] => {
                let lo = at(
                    num(y, 4).ok_or_else(bad)?,
                    num(m, 2).ok_or_else(bad)?,
                    num(d, 2).ok_or_else(bad)?,
                )
                .ok_or_else(bad)?;
                (lo, lo + 86_400_000)
            }
            _ => return Err(bad()),
        }
    };
    Ok((prefix, lo, hi))
}

/// The base URL of this server's FHIR endpoint, from the request.
fn base_url(req: &Request) -> String {
    match req.headers.get("host").and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ']) => {
            let scheme = if req.secure { "https" } else { "http" };
            format!("{scheme}://{host}{BASE}")
        }
        _ => BASE.to_string(),
    }
}

struct Search {
    /// The `/v1` query string.
    qs: Vec<String>,
    /// `$search` looks in these fields.
    search_fields: &'static [&'static str],
    count: usize,
    page: Option<String>,
    /// The FHIR parameters to repeat in links (without the page).
    echo: Vec<(String, String)>,
}

fn count_param(v: &str) -> ApiResult<usize> {
    match v.parse::<usize>() {
        Ok(n) if (1..=crate::query::MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad_param(
            "_count",
            format!(
                "must be a whole number from 1 to {}",
                crate::query::MAX_LIMIT
            ),
        )),
    }
}

fn unknown_param(t: &FhirType, name: &str) -> ApiError {
    let known: Vec<&str> = t.params.iter().map(|p| p.0).collect();
    bad_param(
        name,
        format!(
            "is not a supported search parameter of {}; supported: {}, _count",
            t.name,
            known.join(", ")
        ),
    )
}

fn build_search(t: &FhirType, raw: &str) -> ApiResult<Search> {
    let mut s = Search {
        qs: Vec::new(),
        search_fields: &[],
        count: crate::query::DEFAULT_LIMIT,
        page: None,
        echo: Vec::new(),
    };
    let mut or_n = 0usize;
    for (k, v) in params(raw)? {
        if k == PAGE_PARAM {
            s.page = Some(v);
            continue;
        }
        s.echo.push((k.clone(), v.clone()));
        if k == "_count" {
            s.count = count_param(&v)?;
            continue;
        }
        if !t.params.iter().any(|p| p.0 == k) {
            return Err(unknown_param(t, &k));
        }
        if v.is_empty() {
            return Err(bad_param(&k, "must have a value"));
        }
        let eq = |qs: &mut Vec<String>, field: &str, value: &str| {
            qs.push(format!("{}={}", enc(field), enc(value)));
        };
        match (t.name, k.as_str()) {
            (_, "name") => {
                if s.search_fields.is_empty() {
                    s.search_fields = match t.name {
                        "Location" => &["name"],
                        _ => &["fullName"],
                    };
                    eq(&mut s.qs, "$search", &v);
                } else {
                    return Err(bad_param(&k, "may be given once"));
                }
            }
            ("Patient", "phone") => {
                for (i, f) in ["primaryPhoneNumber", "secondaryPhoneNumber"]
                    .iter()
                    .enumerate()
                {
                    s.qs.push(format!("$and[{or_n}][$or][{i}][{f}]={}", enc(&v)));
                }
                or_n += 1;
            }
            ("Patient", "email") => eq(&mut s.qs, "emailAddress", &v),
            ("Patient", "identifier") => {
                let (system, value) = match v.split_once('|') {
                    Some((sys, val)) => (Some(sys), val),
                    None => (None, v.as_str()),
                };
                let fields: &[&str] = match system {
                    None | Some("") => &["id", "medicalNumber", "barcodeId"],
                    Some(map::SYS_ID) => &["id"],
                    Some(map::SYS_MEDICAL_NUMBER) => &["medicalNumber"],
                    Some(map::SYS_BARCODE) => &["barcodeId"],
                    Some(other) => {
                        return Err(bad_param(
                            &k,
                            format!(
                                "system `{}` is not one of ours ({}, {}, {})",
                                crate::query::qs::truncate(other),
                                map::SYS_ID,
                                map::SYS_MEDICAL_NUMBER,
                                map::SYS_BARCODE
                            ),
                        ))
                    }
                };
                for (i, f) in fields.iter().enumerate() {
                    let value = if *f == "id" {
                        our_id(value)
                    } else {
                        value.to_string()
                    };
                    s.qs.push(format!("$and[{or_n}][$or][{i}][{f}]={}", enc(&value)));
                }
                or_n += 1;
            }
            (_, "patient") => eq(
                &mut s.qs,
                "patientId",
                &ref_param(&k, &v, "Patient", "pat")?,
            ),
            (_, "practitioner") => eq(
                &mut s.qs,
                "practitionerId",
                &ref_param(&k, &v, "Practitioner", "prc")?,
            ),
            (_, "location") => eq(
                &mut s.qs,
                "clinicId",
                &ref_param(&k, &v, "Location", "cli")?,
            ),
            ("Appointment", "date") => {
                let (prefix, lo, hi) = date_param(&k, &v)?;
                let f = crate::time::format_ms;
                match prefix.as_str() {
                    "ge" => eq(&mut s.qs, "startAt[$gte]", &f(lo)),
                    "gt" => eq(&mut s.qs, "startAt[$gte]", &f(hi)),
                    "lt" => eq(&mut s.qs, "startAt[$lt]", &f(lo)),
                    "le" => eq(&mut s.qs, "startAt[$lt]", &f(hi)),
                    _ => {
                        eq(&mut s.qs, "startAt[$gte]", &f(lo));
                        eq(&mut s.qs, "startAt[$lt]", &f(hi));
                    }
                }
            }
            ("Invoice", "status") => {
                let mut any = false;
                for code in v.split(',') {
                    let ours = map::invoice_statuses(code).ok_or_else(|| {
                        bad_param(
                            &k,
                            format!(
                                "`{}` is not an invoice status (draft, issued, balanced, cancelled, entered-in-error)",
                                crate::query::qs::truncate(code)
                            ),
                        )
                    })?;
                    for o in ours {
                        s.qs.push(format!("$and[{or_n}][status][$in][]={o}"));
                        any = true;
                    }
                }
                if !any {
                    // entered-in-error: none of ours.
                    s.qs.push(format!("$and[{or_n}][id]=none"));
                }
                or_n += 1;
            }
            _ => return Err(unknown_param(t, &k)),
        }
    }
    Ok(s)
}

fn link_url(base: &str, t: &FhirType, echo: &[(String, String)], page: Option<&str>) -> String {
    let mut parts: Vec<String> = echo
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    if let Some(p) = page {
        parts.push(format!("{PAGE_PARAM}={}", enc(p)));
    }
    if parts.is_empty() {
        format!("{base}/{}", t.name)
    } else {
        format!("{base}/{}?{}", t.name, parts.join("&"))
    }
}

fn bundle(
    base: &str,
    t: &FhirType,
    s: &Search,
    resources: Vec<Value>,
    total: Option<usize>,
    next: Option<String>,
) -> Response {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{base}/{}/{}", t.name, r["id"].as_str().unwrap_or_default()),
                "resource": r,
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut links =
        vec![json!({"relation": "self", "url": link_url(base, t, &s.echo, s.page.as_deref())})];
    if let Some(n) = next {
        links.push(json!({"relation": "next", "url": link_url(base, t, &s.echo, Some(&n))}));
    }
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    if let Some(n) = total {
        b["total"] = json!(n);
    }
    fhir_response(200, &b)
}

/// `GET /fhir/R4/{Type}`: a searchset Bundle. `total` is given when it is
/// cheap: when the whole result is this one page.
pub async fn search(app: &App, ctx: &Ctx<'_>, t: &FhirType, req: &Request) -> ApiResult<Response> {
    if t.name == "Slot" {
        return slot_search(ctx, req).await;
    }
    let res = resource_of(t)?;
    let s = build_search(t, &req.query)?;
    let mut qs = s.qs.clone();
    qs.push(format!("$limit={}", s.count));
    if let Some(p) = &s.page {
        qs.push(format!("$after={}", enc(p)));
    }
    let search_fields = if s.search_fields.is_empty() {
        res.search_fields
    } else {
        s.search_fields
    };
    let (page, _, next, _) = app
        .list_page(ctx, res, &qs.join("&"), None, search_fields)
        .await
        .map_err(|e| match e.kind {
            // A cursor of another query, tenant or server: the page parameter is wrong.
            ErrorKind::InvalidParameters if e.message.contains("$after") => {
                bad_param(PAGE_PARAM, "is not a page of this search")
            }
            _ => e,
        })?;
    let total = (s.page.is_none() && next.is_none()).then_some(page.data.len());
    let resources = page.docs().iter().map(|d| map_doc(t, d)).collect();
    Ok(bundle(&base_url(req), t, &s, resources, total, next))
}

/// A slot's FHIR id: the appointment type's and the practitioner's ids
/// without their prefixes, and the start in base 36 (Unix ms), joined by
/// `.` — at most 64 characters, as FHIR ids must be.
fn slot_id(aty: &str, prc: &str, start_ms: i64) -> String {
    let strip = |id: &str| {
        id.split_once('_')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    };
    let mut n = start_ms.max(0) as u64;
    let mut b36 = Vec::new();
    loop {
        b36.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    b36.reverse();
    format!(
        "{}.{}.{}",
        strip(aty),
        strip(prc),
        String::from_utf8_lossy(&b36)
    )
}

fn parse_slot_id(id: &str) -> Option<(String, String, i64)> {
    let mut it = id.split('.');
    let (a, p, t) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || a.is_empty() || p.is_empty() {
        return None;
    }
    let ok = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok(a) || !ok(p) {
        return None;
    }
    let start = i64::from_str_radix(t, 36).ok()?;
    Some((format!("aty_{a}"), format!("prc_{p}"), start))
}

/// Free slots from the availability view (its rules and checks).
async fn slots_of(ctx: &Ctx<'_>, qs: &str) -> ApiResult<Vec<Value>> {
    let body = resources::run_view(ctx, &resources::appointments::AVAILABILITY, qs).await?;
    Ok(body["data"].as_array().cloned().unwrap_or_default())
}

async fn slot_resources(ctx: &Ctx<'_>, aty_id: &str, data: &[Value]) -> Vec<Value> {
    let aty = match resources::by_path("appointment-types") {
        Some(r) => resources::get(ctx, r, aty_id).await.ok(),
        None => None,
    };
    let name = aty.as_ref().and_then(|a| a["name"].as_str());
    data.iter()
        .map(|d| {
            let start = d["startAt"].as_str().unwrap_or_default();
            let prc = d["practitionerId"].as_str().unwrap_or_default();
            let id = slot_id(
                aty_id,
                prc,
                crate::time::parse_timestamp(start).unwrap_or(0),
            );
            map::slot(&map::SlotIn {
                id: &id,
                aty_id,
                aty_name: name,
                practitioner: prc,
                clinic: d["clinicId"].as_str().unwrap_or_default(),
                start,
                end: d["endAt"].as_str().unwrap_or_default(),
            })
        })
        .collect()
}

fn slot_type() -> &'static FhirType {
    TYPES.iter().find(|t| t.name == "Slot").unwrap_or(&TYPES[0])
}

async fn slot_read(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let t = slot_type();
    let (aty, prc, start) = parse_slot_id(id).ok_or_else(|| not_found(t, id))?;
    let qs = format!(
        "appointmentTypeId={}&practitionerId={}&from={start}&to={}&slotMinutes=5",
        enc(&aty),
        enc(&prc),
        start + 1
    );
    let data = slots_of(ctx, &qs).await.map_err(|e| match e.kind {
        ErrorKind::InvalidParameters => not_found(t, id),
        _ => e,
    })?;
    let hit: Vec<Value> = data
        .into_iter()
        .filter(|d| d["startAt"].as_str().and_then(crate::time::parse_timestamp) == Some(start))
        .collect();
    let mut out = slot_resources(ctx, &aty, &hit).await;
    match out.pop() {
        Some(r) if out.is_empty() => Ok(fhir_response(200, &r)),
        _ => Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "No free Slot with id `{}` (booked, past, or never offered).",
                crate::query::qs::truncate(id)
            ),
        )),
    }
}

async fn slot_search(ctx: &Ctx<'_>, req: &Request) -> ApiResult<Response> {
    let t = slot_type();
    let mut s = Search {
        qs: Vec::new(),
        search_fields: &[],
        count: crate::query::DEFAULT_LIMIT,
        page: None,
        echo: Vec::new(),
    };
    let now = crate::time::now_ms();
    let (mut from, mut to): (Option<i64>, Option<i64>) = (None, None);
    let mut aty = None;
    for (k, v) in params(&req.query)? {
        if k == PAGE_PARAM {
            s.page = Some(v);
            continue;
        }
        s.echo.push((k.clone(), v.clone()));
        match k.as_str() {
            "_count" => s.count = count_param(&v)?,
            "service-type" => {
                let code = match v.split_once('|') {
                    Some((sys, code)) if sys.is_empty() || sys == map::SYS_APPOINTMENT_TYPE => code,
                    Some(_) => {
                        return Err(bad_param(
                            &k,
                            format!("the system must be {}", map::SYS_APPOINTMENT_TYPE),
                        ))
                    }
                    None => v.as_str(),
                };
                aty = Some(our_id(code));
            }
            "start" => {
                let (prefix, lo, hi) = date_param(&k, &v)?;
                match prefix.as_str() {
                    "ge" => from = Some(lo),
                    "gt" => from = Some(hi),
                    "lt" => to = Some(lo),
                    "le" => to = Some(hi),
                    _ => {
                        from = Some(lo);
                        to = Some(hi);
                    }
                }
            }
            "schedule.actor" => {
                if v.starts_with("Location/") {
                    let c = ref_param(&k, &v, "Location", "cli")?;
                    s.qs.push(format!("clinicId={}", enc(&c)));
                } else {
                    let p = ref_param(&k, &v, "Practitioner", "prc")?;
                    s.qs.push(format!("practitionerId={}", enc(&p)));
                }
            }
            _ => return Err(unknown_param(t, &k)),
        }
    }
    let aty = aty.ok_or_else(|| {
        bad_param(
            "service-type",
            "is required: the id of the appointment type to book",
        )
    })?;
    let from = from.unwrap_or(now);
    let to = to.unwrap_or(from + 7 * 86_400_000);
    s.qs.push(format!("appointmentTypeId={}", enc(&aty)));
    s.qs.push(format!("from={from}&to={to}"));
    let offset = match &s.page {
        None => 0,
        Some(p) => p
            .parse::<usize>()
            .map_err(|_| bad_param(PAGE_PARAM, "is not a page of this search"))?,
    };
    let data = slots_of(ctx, &s.qs.join("&")).await.map_err(|mut e| {
        // Name the FHIR parameters, not the view's.
        for f in &mut e.errors {
            f.field = match f.field.as_str() {
                "appointmentTypeId" => "service-type".into(),
                "from" | "to" => "start".into(),
                "practitionerId" | "clinicId" => "schedule.actor".into(),
                other => other.to_string(),
            };
        }
        e
    })?;
    let total = data.len();
    let end = (offset + s.count).min(total);
    let window = data.get(offset.min(total)..end).unwrap_or(&[]);
    let next = (end < total).then(|| end.to_string());
    let resources = slot_resources(ctx, &aty, window).await;
    Ok(bundle(&base_url(req), t, &s, resources, Some(total), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_dates() {
        assert_eq!(fhir_id("pat_01JD"), "pat-01JD");
        assert_eq!(our_id("pat-01JD"), "pat_01JD");
        let id = slot_id(
            "aty_01JD0000000000000000000000",
            "prc_01JD0000000000000000000001",
            1_796_000_000_000,
        );
        assert!(id.len() <= 64, "{id}");
        assert_eq!(
            parse_slot_id(&id),
            Some((
                "aty_01JD0000000000000000000000".into(),
                "prc_01JD0000000000000000000001".into(),
                1_796_000_000_000
            ))
        );
        let (p, lo, hi) = date_param("date", "2026-12-07").unwrap();
        assert_eq!(p, "eq");
        assert_eq!(hi - lo, 86_400_000);
        let (p, lo, hi) = date_param("date", "ge2026-12").unwrap();
        assert_eq!(p, "ge");
        assert_eq!(hi - lo, 31 * 86_400_000);
        assert!(date_param("date", "sa2026").is_err());
        assert!(date_param("date", "2026-1-1").is_err());
        assert_eq!(
            map::money(&json!(1999), "GBP"),
            json!({"value": 19.99, "currency": "GBP"})
        );
        assert_eq!(
            map::money(&json!(500), "JPY"),
            json!({"value": 500, "currency": "JPY"})
        );
    }
}
