//! Boundary: whoever calls the read API (or the gateway's public listener at all). A token
//! the identity provider issued for another application, a forged or truncated cursor, or a
//! probe of the operations endpoints gets nothing; a gateway configured without the trust
//! settings does not start.

use std::time::Duration;

use audit_tests::service::bin_dir;
use audit_tests::{JWT_AUDIENCE, JWT_ISSUER, eventually, signed_token, user_token};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::pipeline::Pipeline;

async fn get(url: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn another_applications_tokens_and_truncated_cursors_are_refused() {
    let pipeline = Pipeline::start("hostile-readers").await;
    let list = format!("{}/v1/orgs/org_read/events", pipeline.gateway.url);
    for _ in 0..3 {
        let sent_id = pipeline.publish("org_read", "resource.created").await;
        pipeline.stored(&sent_id).await;
    }

    // Same identity provider key, the right org and role claims — another application's token.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"sub": "u_1", "org_id": "org_read", "role": "owner", "iat": now,
                        "exp": now + 600, "iss": JWT_ISSUER, "aud": JWT_AUDIENCE});
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("billing-portal");
    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://login.other-app.example");
    let mut no_audience = claims.clone();
    no_audience.as_object_mut().unwrap().remove("aud");
    let mut no_issuer = claims.clone();
    no_issuer.as_object_mut().unwrap().remove("iss");
    for (what, forged) in [
        ("wrong audience", wrong_audience),
        ("wrong issuer", wrong_issuer),
        ("no audience", no_audience),
        ("no issuer", no_issuer),
    ] {
        let (status, body) = get(&list, &signed_token(&forged)).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    let (status, body) = get(&list, &signed_token(&claims)).await;
    assert_eq!(status, 200, "this application's token: {body}");

    // A cursor's tag is checked whole: every truncation of a genuine tag is refused.
    let admin = user_token("org_read", "admin", "u_admin", 600);
    let (status, page) = get(&format!("{list}?limit=1"), &admin).await;
    assert_eq!(status, 200, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (payload, tag) = cursor.split_once('.').unwrap();
    let tag = URL_SAFE_NO_PAD.decode(tag).unwrap();
    for length in 0..tag.len() {
        let truncated = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag[..length]));
        let (status, body) = get(&format!("{list}?limit=1&cursor={truncated}"), &admin).await;
        assert_eq!(status, 400, "a {length}-byte tag: {body}");
    }
    // One byte per guess: none of the 256 passes for a forged position.
    let forged_position = URL_SAFE_NO_PAD.encode(format!("0:{}", uuid::Uuid::nil()));
    for byte in 0..=255u8 {
        let forged = format!("{forged_position}.{}", URL_SAFE_NO_PAD.encode([byte]));
        let (status, _) = get(&format!("{list}?limit=1&cursor={forged}"), &admin).await;
        assert_eq!(status, 400, "one-byte tag {byte}");
    }
    let (status, body) = get(&format!("{list}?limit=1&cursor={cursor}"), &admin).await;
    assert_eq!(status, 200, "the genuine cursor: {body}");

    pipeline.others_keep_flowing("org_bystander").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_endpoints_are_not_on_the_public_listener() {
    let pipeline = Pipeline::start("hostile-ops-listener").await;
    let public = pipeline.gateway_service.url();
    let ops = pipeline.gateway_service.ops_url();
    for path in ["/metrics", "/readyz"] {
        let status = reqwest::get(format!("{public}{path}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path} on the public listener");
        let status = reqwest::get(format!("{ops}{path}")).await.unwrap().status();
        assert_eq!(status, 200, "{path} on the operations listener");
    }
    for base in [&public, &ops] {
        let status = reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{base}/healthz");
    }
    let metrics = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ready"), "the gateway's metrics are there");
    pipeline.others_keep_flowing("org_bystander").await;
}

/// `gateway check-config` with the dev config and `env` overrides: exit success and stderr.
fn check_config(env: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(bin_dir().join("gateway"))
        .current_dir(audit_tests::infra::repo_root())
        .args(["--config", "config/gateway.toml", "check-config"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_without_trust_settings_does_not_start() {
    let (ok, stderr) = check_config(&[]);
    assert!(ok, "the dev configuration is valid: {stderr}");
    for (env, key) in [
        (vec![("GATEWAY__AUTH__ISSUER", "")], "auth.issuer"),
        (vec![("GATEWAY__AUTH__AUDIENCE", " ")], "auth.audience"),
        (
            vec![(
                "GATEWAY__AUTH__HS256_SECRET",
                "dev-only-hs256-secret-change-me",
            )],
            "auth.hs256_secret",
        ),
        (
            vec![("GATEWAY__TOPICS__SETTINGS_KEYS", "[]")],
            "topics.settings_keys",
        ),
        (
            vec![("GATEWAY__TOPICS__INTEGRITY_KEY", "short")],
            "topics.integrity_key",
        ),
        (
            vec![("GATEWAY__OPS__LISTEN", "127.0.0.1:8080")],
            "ops.listen",
        ),
    ] {
        let (ok, stderr) = check_config(&env);
        assert!(!ok, "{env:?} must be refused");
        assert!(stderr.contains(key), "{env:?}: {stderr}");
    }
    // Only an explicit local-development switch lets issuer and audience be unset.
    let (ok, stderr) = check_config(&[
        ("GATEWAY__AUTH__ISSUER", ""),
        ("GATEWAY__AUTH__AUDIENCE", ""),
        ("GATEWAY__AUTH__LOCAL_DEVELOPMENT", "true"),
    ]);
    assert!(ok, "{stderr}");
    // And a running gateway with the real settings serves this application's tokens only.
    let pipeline = Pipeline::start("hostile-trust").await;
    let sent_id = pipeline.publish("org_trust", "resource.created").await;
    pipeline.stored(&sent_id).await;
    let list = format!("{}/v1/orgs/org_trust/events", pipeline.gateway.url);
    let count = eventually(
        "the owner reads the event",
        Duration::from_secs(10),
        || async {
            let (status, body) = get(&list, &user_token("org_trust", "owner", "u_1", 600)).await;
            (status == 200).then(|| body["data"].as_array().map_or(0, Vec::len))
        },
    )
    .await;
    assert!(count >= 1);
}
