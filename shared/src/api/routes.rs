//! The route table: the single source for `hub serve`, the Lambda binaries,
//! the OpenAPI document and `template.yaml`.

use crate::auth::{Access, Level};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::resources::{registry, Resource};
use http::Method;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Health,
    OpenApi,
    List,
    Create,
    Get,
    Update,
    Delete,
    /// `POST /v1/{path}/{id}/{name}`.
    Action(&'static str),
    /// `GET /v1/{path}/{id}/{name}`.
    SubList(&'static str),
    /// `GET /v1/{path}`: a read-only view (availability).
    View(&'static crate::resources::View),
    /// `GET /v1/organization`: the caller's organization (crate::org::describe).
    Organization,
    /// The developer dashboard's static files (crate::dashboard); not an API operation.
    Dashboard,
    /// `GET /fhir/R4/metadata`: the FHIR CapabilityStatement (no key needed).
    FhirMetadata,
    /// `GET /fhir/R4/{Type}/{id}`: a FHIR read (crate::fhir).
    FhirRead(&'static crate::api::fhir::FhirType),
    /// `GET /fhir/R4/{Type}`: a FHIR search, a searchset Bundle.
    FhirSearch(&'static crate::api::fhir::FhirType),
    /// The API reference's static files (crate::docs); not an API operation.
    Docs,
    /// `GET /widget.js`: the booking widget (crate::widget); not an API operation.
    Widget,
}

impl Op {
    /// A static file (dashboard, reference, widget), not an API operation.
    pub fn is_static(&self) -> bool {
        matches!(self, Op::Dashboard | Op::Docs | Op::Widget)
    }
}

#[derive(Debug)]
pub struct Route {
    /// Stable name, also the Lambda function's: `patients-list`.
    pub name: &'static str,
    pub method: Method,
    /// `/v1/patients/{id}`.
    pub path: &'static str,
    pub op: Op,
    pub resource: Option<&'static Resource>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut out = vec![
            Route {
                name: "health",
                method: Method::GET,
                path: "/health",
                op: Op::Health,
                resource: None,
            },
            Route {
                name: "openapi",
                method: Method::GET,
                path: "/openapi.json",
                op: Op::OpenApi,
                resource: None,
            },
            Route {
                name: "organization",
                method: Method::GET,
                path: "/v1/organization",
                op: Op::Organization,
                resource: None,
            },
            Route {
                name: "dashboard",
                method: Method::GET,
                path: "/dashboard",
                op: Op::Dashboard,
                resource: None,
            },
            Route {
                name: "dashboard-files",
                method: Method::GET,
                path: "/dashboard/{file}",
                op: Op::Dashboard,
                resource: None,
            },
            Route {
                name: "docs",
                method: Method::GET,
                path: "/docs",
                op: Op::Docs,
                resource: None,
            },
            Route {
                name: "docs-files",
                method: Method::GET,
                path: "/docs/{file}",
                op: Op::Docs,
                resource: None,
            },
            Route {
                name: "widget",
                method: Method::GET,
                path: "/widget.js",
                op: Op::Widget,
                resource: None,
            },
        ];
        out.push(Route {
            name: "fhir-metadata",
            method: Method::GET,
            path: "/fhir/R4/metadata",
            op: Op::FhirMetadata,
            resource: None,
        });
        for t in crate::api::fhir::TYPES {
            let lower = t.name.to_ascii_lowercase();
            out.push(Route {
                name: leak(format!("fhir-{lower}-search")),
                method: Method::GET,
                path: leak(format!("/fhir/R4/{}", t.name)),
                op: Op::FhirSearch(t),
                resource: None,
            });
            out.push(Route {
                name: leak(format!("fhir-{lower}-read")),
                method: Method::GET,
                path: leak(format!("/fhir/R4/{}/{{id}}", t.name)),
                op: Op::FhirRead(t),
                resource: None,
            });
        }
        for v in crate::resources::views() {
            out.push(Route {
                name: v.path,
                method: Method::GET,
                path: leak(format!("/v1/{}", v.path)),
                op: Op::View(v),
                resource: None,
            });
        }
        for r in registry().iter().filter(|r| !r.internal) {
            let coll = leak(format!("/v1/{}", r.path));
            let item = leak(format!("/v1/{}/{{id}}", r.path));
            for (verb, method, path, op) in [
                ("list", Method::GET, coll, Op::List),
                ("create", Method::POST, coll, Op::Create),
                ("get", Method::GET, item, Op::Get),
                ("update", Method::PATCH, item, Op::Update),
                ("delete", Method::DELETE, item, Op::Delete),
            ] {
                if r.read_only && !matches!(op, Op::List | Op::Get) {
                    continue;
                }
                out.push(Route {
                    name: leak(format!("{}-{verb}", r.path)),
                    method,
                    path,
                    op,
                    resource: Some(r),
                });
            }
            for action in r.actions {
                let name = action.name;
                out.push(Route {
                    name: leak(format!("{}-{name}", r.path)),
                    method: Method::POST,
                    path: leak(format!("/v1/{}/{{id}}/{name}", r.path)),
                    op: Op::Action(name),
                    resource: Some(r),
                });
            }
            for sub in r.sublists {
                let name = sub.name;
                out.push(Route {
                    name: leak(format!("{}-{name}", r.path)),
                    method: Method::GET,
                    path: leak(format!("/v1/{}/{{id}}/{name}", r.path)),
                    op: Op::SubList(name),
                    resource: Some(r),
                });
            }
        }
        out
    })
}

impl PartialEq for Op {
    fn eq(&self, other: &Op) -> bool {
        match (self, other) {
            (Op::View(a), Op::View(b)) => std::ptr::eq(*a, *b),
            (Op::FhirRead(a), Op::FhirRead(b)) | (Op::FhirSearch(a), Op::FhirSearch(b)) => {
                a.name == b.name
            }
            (Op::Action(a), Op::Action(b)) | (Op::SubList(a), Op::SubList(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for Op {}

impl Route {
    /// What a key needs to call this route (none for health and OpenAPI).
    pub fn access(&self) -> Option<Access> {
        if let Op::Organization = self.op {
            return Some(Access {
                resource: crate::auth::ORGANIZATION_PERMISSION,
                level: Level::Read,
                publishable: false,
            });
        }
        if let Op::View(v) = self.op {
            return Some(Access {
                resource: v.access,
                level: Level::Read,
                publishable: v.publishable,
            });
        }
        if let Op::FhirRead(t) | Op::FhirSearch(t) = self.op {
            return Some(Access {
                resource: t.access,
                level: Level::Read,
                publishable: t.publishable,
            });
        }
        let r = self.resource?;
        let (level, publishable) = match self.op {
            Op::List | Op::Get | Op::SubList(_) => (Level::Read, r.publishable.read),
            Op::Create => (Level::Write, r.publishable.create),
            Op::Update | Op::Delete | Op::Action(_) => (Level::Write, false),
            Op::Health
            | Op::OpenApi
            | Op::View(_)
            | Op::Organization
            | Op::Dashboard
            | Op::FhirMetadata
            | Op::FhirRead(_)
            | Op::FhirSearch(_)
            | Op::Docs
            | Op::Widget => return None,
        };
        Some(Access {
            resource: r.path,
            level,
            publishable,
        })
    }
}

pub struct RouteMatch {
    pub route: &'static Route,
    /// The `{id}` (or other `{…}`) segment, if the route has one.
    pub id: Option<String>,
}

impl RouteMatch {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

/// Each route's path up to its first parameter, in `routes()` order.
fn fixed_prefixes() -> &'static [&'static str] {
    static FIXED: OnceLock<Vec<&'static str>> = OnceLock::new();
    FIXED.get_or_init(|| {
        routes()
            .iter()
            .map(|r| r.path.split('{').next().unwrap_or(r.path))
            .collect()
    })
}

fn path_matches(pattern: &str, fixed: &str, path: &str) -> Option<Option<String>> {
    // Most patterns differ from the path before their first parameter.
    if !path.starts_with(fixed) {
        return None;
    }
    let mut id = None;
    let mut p = pattern.split('/');
    let mut a = path.split('/');
    loop {
        match (p.next(), a.next()) {
            (None, None) => return Some(id.map(str::to_string)),
            (Some(x), Some(seg)) if x.starts_with('{') && !seg.is_empty() => id = Some(seg),
            (Some(x), Some(y)) if x == y => {}
            _ => return None,
        }
    }
}

/// Find the route for a request: 404 when no route has this path, 405 when
/// some do but not with this method.
pub fn match_route(method: &Method, path: &str) -> ApiResult<RouteMatch> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut allowed: Vec<&str> = Vec::new();
    for (route, fixed) in routes().iter().zip(fixed_prefixes()) {
        if let Some(id) = path_matches(route.path, fixed, path) {
            if route.method == *method || (*method == Method::HEAD && route.method == Method::GET) {
                return Ok(RouteMatch { route, id });
            }
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("No route `{path}`. See /openapi.json for the routes."),
        ))
    } else {
        allowed.push("OPTIONS");
        Err(ApiError::new(
            ErrorKind::MethodNotSupported,
            format!(
                "`{method}` is not supported on `{path}`; allowed: {}.",
                allowed.join(", ")
            ),
        )
        .with_header("allow", allowed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_paths_and_methods() {
        let m = match_route(&Method::GET, "/v1/patients/pat_1").unwrap();
        assert_eq!(m.route.name, "patients-get");
        assert_eq!(m.id(), "pat_1");
        assert_eq!(
            match_route(&Method::POST, "/v1/patients/")
                .unwrap()
                .route
                .name,
            "patients-create"
        );
        let e = match_route(&Method::PUT, "/v1/patients/pat_1")
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::MethodNotSupported);
        assert_eq!(
            match_route(&Method::GET, "/v1/nothing").err().unwrap().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/patients/a/b")
                .err()
                .unwrap()
                .kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn route_names_are_unique() {
        let mut names: Vec<_> = routes().iter().map(|r| r.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
