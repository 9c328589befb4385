//! The booking widget at `/widget.js` (docs/widget.md): one plain script,
//! embedded in the binary, that any site loads with a publishable key. It is
//! served by `hub serve` and, on AWS, by the `widget` function of the route
//! table.
//!
//! Unlike the dashboard's and the reference's files it is meant to be loaded
//! by pages of other origins: `Cross-Origin-Resource-Policy: cross-origin`
//! (a `same-origin` one would stop the `<script src>`), and no page policy
//! (a script's own CSP header has no effect; the host page's applies).

use crate::dashboard::{etags_of, serve_static, Asset, File};
use crate::error::ApiResult;
use http::HeaderMap;
use std::sync::OnceLock;

static ASSETS: &[Asset] = &[Asset {
    name: "widget.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../widget/widget.js"),
}];

/// `GET /widget.js`.
pub fn serve(headers: &HeaderMap) -> ApiResult<File> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| etags_of(ASSETS));
    let mut resp = serve_static(
        "booking widget",
        ASSETS,
        etags,
        "default-src 'none'",
        Some("widget.js"),
        headers,
    )?;
    resp.headers.retain(|(name, _)| {
        !matches!(
            *name,
            "cross-origin-resource-policy"
                | "cross-origin-opener-policy"
                | "x-frame-options"
                | "content-security-policy"
        )
    });
    resp.headers
        .push(("cross-origin-resource-policy", "cross-origin".into()));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_may_be_loaded_by_any_site() {
        let r = serve(&HeaderMap::new()).unwrap();
        assert_eq!(r.status, 200);
        let header = |n: &str| {
            r.headers
                .iter()
                .filter(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(header("content-type"), ["text/javascript; charset=utf-8"]);
        assert_eq!(header("cross-origin-resource-policy"), ["cross-origin"]);
        assert!(header("x-frame-options").is_empty());
        let js = std::str::from_utf8(&r.body).unwrap();
        assert!(js.contains("practicehub:booked"));
        assert!(js.contains("data-appointment-type"));
    }
}
