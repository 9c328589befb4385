//! The API reference at `/docs`: Redoc's standalone bundle (npm `redoc`,
//! vendored in `shared/docs/` by `scripts/vendor-redoc.sh` at the version in
//! `shared/docs/REDOC_VERSION`) rendering this hub's own `/openapi.json`.
//! Everything is embedded in the binary and served from this origin by
//! `hub serve` and, on AWS, by the `docs` functions of the route table: no
//! CDN, no third-party request.
//!
//! The policy: scripts, fonts, images and requests from this origin only (no
//! inline or evaluated script); styles from this origin plus the ones Redoc
//! inserts at run time (styled-components writes `<style>` elements:
//! `'unsafe-inline'` for styles only); its search index runs in a worker
//! Redoc creates from a `blob:`; no framing, no forms, no `<base>`.

use crate::dashboard::{etags_of, serve_static, Asset, File};
use crate::error::ApiResult;
use http::HeaderMap;
use std::sync::OnceLock;

static ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../docs/index.html"),
    },
    Asset {
        name: "docs.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../docs/docs.css"),
    },
    Asset {
        name: "redoc.standalone.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../docs/redoc.standalone.js"),
    },
];

/// The policy every file of the reference is sent with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src blob:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// `GET /docs` (the page) or `GET /docs/{file}`.
pub fn serve(file: Option<&str>, headers: &HeaderMap) -> ApiResult<File> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| etags_of(ASSETS));
    serve_static("API reference", ASSETS, etags, CSP, file, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_bundle_and_the_document_of_this_origin() {
        let page = serve(None, &HeaderMap::new()).unwrap();
        let html = std::str::from_utf8(&page.body).unwrap();
        assert!(html.contains(r#"<redoc spec-url="/openapi.json">"#));
        for src in ["/docs/redoc.standalone.js", "/docs/docs.css"] {
            assert!(html.contains(src), "{src}");
            let file = src.trim_start_matches("/docs/");
            assert_eq!(serve(Some(file), &HeaderMap::new()).unwrap().status, 200);
        }
        assert!(!html.contains("http"), "no third-party URL in the page");
        assert!(serve(Some("nope.js"), &HeaderMap::new()).is_err());
    }
}
