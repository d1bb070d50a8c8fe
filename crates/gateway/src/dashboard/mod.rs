//! The Security → Audit Logs dashboard page: `GET /orgs/{org}/security/audit-logs`.
//!
//! One static HTML page plus its stylesheet and ES modules, embedded in the binary with
//! `include_str!` (no build step, no framework). The page talks to the read API
//! (`/v1/orgs/{org}/events…`, `/v1/catalogue`) with the bearer token the user signed in with;
//! the server never renders organization or event data into HTML, so the page itself is the
//! same for everyone and needs no authentication.
//!
//! | route | what |
//! |---|---|
//! | `GET /orgs/{org}/security/audit-logs` | the page (strict CSP, never framed) |
//! | `GET /assets/{name}` | the assets below |
//!
//! | asset | what |
//! |---|---|
//! | `audit-logs.js` | the entry module: wires the page's controls and starts (its header lists the others) |
//! | `state.js` | constants and the one mutable state object |
//! | `dom.js` | DOM helpers (text only, never HTML) and small formatters |
//! | `session.js` | the token, signing in and out, the page's views |
//! | `api.js` | the read API client and how its errors are shown |
//! | `time.js` | UTC or local times, the zone always named |
//! | `filters.js` | the filters, in the URL and the form |
//! | `catalogue.js` | category chips and action suggestions |
//! | `results.js` | the list: pages, rows, selection |
//! | `detail.js` | the panel of one event |
//! | `integrity.js` | the range's integrity verdict and the event's proof |
//! | `export.js` | CSV / JSON downloads |
//! | `live.js` | live mode |
//! | `keyboard.js` | keyboard shortcuts |
//! | `audit-logs.css` | the stylesheet: theme, base elements, top bar, controls, layout |
//! | `results.css` | … then the filters, the results bar and banners, the table |
//! | `panels.css` | … then the detail drawer, sign-in and dialogs, motion, narrower screens |
//! | `favicon.svg` | the icon |
//!
//! The modules import one another by relative URL (`./api.js` is `/assets/api.js`); the page
//! also preloads them (`<link rel="modulepreload">`) so they are fetched at once.
//!
//! Security headers: a strict Content Security Policy (`script-src 'self'`, `style-src 'self'`,
//! no inline code, `connect-src 'self'`, `frame-ancestors 'none'`), `nosniff`, no referrer
//! (the sign-in link carries the token in the URL fragment, which the page removes at once).
//! Event fields are attacker-controlled text: the script only ever writes them with
//! `textContent`, never as HTML.
//!
//! Caching: the page and its assets are served `no-cache` with a strong `ETag` (a content
//! hash), so a browser revalidates cheaply (`304`) and a new gateway version is picked up on
//! the next load without versioned file names.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::App;

/// The policy of the page. Nothing inline, nothing from elsewhere, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'; object-src 'none'";

/// A file embedded in the binary.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("assets/index.html"),
};

/// An ES module of the page.
const fn module(name: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

/// A stylesheet of the page (linked by it in the order of [`ASSETS`]).
const fn stylesheet(name: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type: "text/css; charset=utf-8",
        body,
    }
}

/// What `/assets/{name}` serves.
const ASSETS: &[Asset] = &[
    module("audit-logs.js", include_str!("assets/audit-logs.js")),
    module("state.js", include_str!("assets/state.js")),
    module("dom.js", include_str!("assets/dom.js")),
    module("session.js", include_str!("assets/session.js")),
    module("api.js", include_str!("assets/api.js")),
    module("time.js", include_str!("assets/time.js")),
    module("filters.js", include_str!("assets/filters.js")),
    module("catalogue.js", include_str!("assets/catalogue.js")),
    module("results.js", include_str!("assets/results.js")),
    module("detail.js", include_str!("assets/detail.js")),
    module("integrity.js", include_str!("assets/integrity.js")),
    module("export.js", include_str!("assets/export.js")),
    module("live.js", include_str!("assets/live.js")),
    module("keyboard.js", include_str!("assets/keyboard.js")),
    stylesheet("audit-logs.css", include_str!("assets/audit-logs.css")),
    stylesheet("results.css", include_str!("assets/results.css")),
    stylesheet("panels.css", include_str!("assets/panels.css")),
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

/// Strong ETags by asset name (the page under its own name), computed once.
static ETAGS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    std::iter::once(&PAGE)
        .chain(ASSETS.iter())
        .map(|asset| (asset.name, etag_of(asset.body)))
        .collect()
});

fn etag_of(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let short: String = digest
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"{short}\"")
}

fn etag(name: &str) -> &'static str {
    ETAGS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, etag)| etag.as_str())
        .unwrap_or("\"\"")
}

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/orgs/{org}/security/audit-logs", get(page))
        .route("/assets/{name}", get(asset))
}

/// The page. The organization in the path is read by the script; it is not echoed here.
async fn page(Path(_org): Path<String>, request_headers: HeaderMap) -> Response {
    let mut response = serve(&PAGE, &request_headers);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    response
}

async fn asset(Path(name): Path<String>, request_headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset, &request_headers),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// The asset with its content type, validators and the headers every response of this
/// module carries; `304` when the browser's copy is current.
fn serve(asset: &Asset, request_headers: &HeaderMap) -> Response {
    let etag = etag(asset.name);
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
    }
    headers.insert(header::ETAG, HeaderValue::from_static(etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[tokio::test]
    async fn the_page_has_a_strict_policy_and_no_inline_code() {
        let response = page(Path("org_a".into()), HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let html = PAGE.body;
        assert!(
            !html.contains("<script>") && !html.contains("style=") && !html.contains("<style"),
            "the CSP forbids inline scripts and styles"
        );
        for handler in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            "javascript:",
        ] {
            assert!(!html.contains(handler), "inline handler {handler}");
        }
    }

    #[tokio::test]
    async fn assets_have_types_validators_and_answer_304() {
        let response = asset(Path("audit-logs.js".into()), HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = response.headers()[header::ETAG]
            .to_str()
            .expect("etag")
            .to_string();
        let again = asset(
            Path("audit-logs.js".into()),
            request(&[("if-none-match", &etag)]),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let css = asset(Path("audit-logs.css".into()), HeaderMap::new()).await;
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        let missing = asset(Path("../Cargo.toml".into()), HeaderMap::new()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_module_imported_is_served_and_preloaded() {
        let modules: Vec<&str> = ASSETS
            .iter()
            .filter(|asset| asset.name.ends_with(".js"))
            .map(|asset| asset.name)
            .collect();
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            for line in asset
                .body
                .lines()
                .filter(|line| line.starts_with("import "))
            {
                let imported = line
                    .split("from './")
                    .nth(1)
                    .and_then(|rest| rest.strip_suffix("';"))
                    .unwrap_or_else(|| panic!("{}: unexpected import `{line}`", asset.name));
                assert!(
                    modules.contains(&imported),
                    "{} imports {imported}, which /assets does not serve",
                    asset.name
                );
            }
        }
        for name in modules.iter().filter(|name| **name != "audit-logs.js") {
            let preload = format!(r#"<link rel="modulepreload" href="/assets/{name}">"#);
            assert!(
                PAGE.body.contains(&preload),
                "the page does not preload {name}"
            );
        }
    }

    #[test]
    fn every_stylesheet_served_is_linked_in_order() {
        let mut last = 0;
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".css")) {
            let link = format!(r#"<link rel="stylesheet" href="/assets/{}">"#, asset.name);
            let at = PAGE.body.find(&link);
            assert!(at.is_some(), "the page does not link {}", asset.name);
            let at = at.unwrap_or_default();
            assert!(at > last, "{} is linked out of order", asset.name);
            last = at;
        }
    }

    #[test]
    fn etags_differ_per_asset() {
        assert_ne!(etag("audit-logs.js"), etag("audit-logs.css"));
        assert!(etag("index.html").starts_with('"'));
    }
}
