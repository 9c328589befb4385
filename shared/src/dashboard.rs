//! The developer dashboard at `/dashboard`: plain HTML, CSS and JavaScript
//! modules (no build step) embedded in the binary, served by `hub serve`
//! and, on AWS, by the `dashboard` functions of the same route table, so the
//! page and the API share one origin. The page talks to the public API
//! only, with the key the person pastes in (kept in the tab's
//! `sessionStorage`); the server keeps no session.
//!
//! Every file is sent with a strict Content-Security-Policy: scripts and
//! styles from this origin only, no inline script or style, requests to this
//! origin only, no framing, and Trusted Types required, so an assignment of
//! a string to `innerHTML` throws instead of parsing markup.

use crate::error::{ApiError, ApiResult, ErrorKind};
use bytes::Bytes;
use http::HeaderMap;
use std::sync::OnceLock;

pub(crate) struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../dashboard/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("schema.js", JS),
    asset!("list.js", JS),
    asset!("overview.js", JS),
    asset!("keys.js", JS),
    asset!("webhooks.js", JS),
    asset!("events.js", JS),
    asset!("data.js", JS),
];

/// The policy every dashboard file is sent with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
require-trusted-types-for 'script'; trusted-types 'none'";

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| etags_of(ASSETS))
}

/// An ETag per file: a digest of its content.
pub(crate) fn etags_of(assets: &[Asset]) -> Vec<String> {
    assets
        .iter()
        .map(|a| {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(a.body.as_bytes());
            let hex = crate::ids::hex(&digest[..12]);
            format!("\"{hex}\"")
        })
        .collect()
}

/// A file as it is sent: the API turns it into its response (the
/// dashboard knows nothing of the API's types).
#[derive(Debug)]
pub struct File {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl File {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET /dashboard` (the page) or `GET /dashboard/{file}`.
pub fn serve(file: Option<&str>, headers: &HeaderMap) -> ApiResult<File> {
    serve_static("dashboard", ASSETS, etags(), CSP, file, headers)
}

/// A file of a set of embedded ones (`index.html` by default), with its
/// policy, an ETag of its content and a 304 for a fresh `If-None-Match`.
pub(crate) fn serve_static(
    what: &str,
    assets: &'static [Asset],
    etags: &[String],
    csp: &str,
    file: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<File> {
    let name = file.unwrap_or("index.html");
    let Some(i) = assets.iter().position(|a| a.name == name) else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "The {what} has no file `{}`.",
                crate::query::qs::truncate(name)
            ),
        ));
    };
    let (asset, etag) = (&assets[i], &etags[i]);
    let mut out = File {
        status: 200,
        headers: vec![
            ("content-type", asset.content_type.into()),
            ("content-security-policy", csp.into()),
            ("x-frame-options", "DENY".into()),
            ("x-content-type-options", "nosniff".into()),
            ("referrer-policy", "no-referrer".into()),
            ("cross-origin-opener-policy", "same-origin".into()),
            ("cross-origin-resource-policy", "same-origin".into()),
            ("cache-control", "no-cache".into()),
            ("etag", etag.clone()),
        ],
        body: Bytes::from_static(asset.body.as_bytes()),
    };
    let fresh = headers
        .get_all("if-none-match")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
        });
    if fresh {
        out.status = 304;
        out.body = Bytes::new();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str) -> &'static str {
        ASSETS.iter().find(|a| a.name == name).unwrap().body
    }

    /// Every module a file imports, and every file the page links, is served.
    #[test]
    fn every_reference_is_served() {
        let mut wanted = Vec::new();
        for a in ASSETS {
            for marker in [
                "from \"./",
                "import(\"./",
                "href=\"/dashboard/",
                "src=\"/dashboard/",
            ] {
                let mut rest = a.body;
                while let Some(i) = rest.find(marker) {
                    rest = &rest[i + marker.len()..];
                    let end = rest.find('"').unwrap();
                    wanted.push((a.name, rest[..end].to_string()));
                }
            }
        }
        assert!(wanted.len() > 10, "{wanted:?}");
        for (from, name) in wanted {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{from} refers to {name}, which is not served"
            );
        }
    }

    /// No markup is ever built from strings (the CSP's Trusted Types would
    /// refuse it anyway), nothing is logged or kept beyond the tab's
    /// session, and the page has no inline script or style. (That every
    /// request stays on the hub's origin is the CSP's `connect-src 'self'`,
    /// checked in the browser by tests/browser/dashboard.py.)
    #[test]
    fn no_markup_from_strings_and_nothing_inline() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "console.",
                "localStorage",
            ] {
                assert!(!a.body.contains(banned), "{} uses {banned}", a.name);
            }
        }
        let html = body("index.html");
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script type=\"module\" src=\"/dashboard/app.js\"></script>"));
        assert!(!html.contains(" style="));
        assert!(!html.contains("<style"));
        let handlers = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handlers, "no inline event handlers");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!body("style.css").contains("url(http"));
    }

    #[test]
    fn headers_and_revalidation() {
        let r = serve(None, &HeaderMap::new()).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'"));
        let etag = r.header("etag").unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert("if-none-match", etag.parse().unwrap());
        let again = serve(None, &h).unwrap();
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        h.insert("if-none-match", "\"other\"".parse().unwrap());
        assert_eq!(serve(None, &h).unwrap().status, 200);
        let js = serve(Some("app.js"), &HeaderMap::new()).unwrap();
        assert_eq!(js.header("content-type"), Some(JS));
        let missing = serve(Some("nope.js"), &HeaderMap::new()).err().unwrap();
        assert_eq!(missing.kind, ErrorKind::NotFound);
    }
}
