//! The soak's calls to the operator API of a gateway: organizations on their plans, the
//! Enterprise ones with a webhook and a Splunk HEC destination each (the fake receivers), and
//! the producer key the load uses.

use anyhow::{Context, bail};
use audit_tests::fakes::SIGNING_SECRET;
use serde_json::{Value, json};

use crate::{HEC_TOKEN, Soak};

/// One operator API call; the answer's body, or an error with its status.
pub(crate) async fn admin(
    soak: &Soak,
    port: u16,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = soak
        .http
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth("dev-operator-token");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{path}: {status} {body}");
    }
    Ok(body)
}

/// A producer key for every category.
pub(crate) async fn producer_key(soak: &Soak, port: u16) -> anyhow::Result<String> {
    let body = admin(
        soak,
        port,
        reqwest::Method::POST,
        "/v1/admin/producer-keys",
        Some(json!({"name": "soak", "categories": ["*"]})),
    )
    .await?;
    body["api_key"]
        .as_str()
        .map(str::to_string)
        .context("no api_key")
}

/// Enterprise organizations and their destinations: (org, webhook id, hec id).
pub(crate) async fn seed(
    soak: &Soak,
    port: u16,
    webhook_url: &str,
    hec_url: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut enterprise = Vec::new();
    for n in 0..soak.cli.orgs {
        let org = format!("org_{n:03}");
        let plan = if n < soak.cli.orgs / 10 {
            "enterprise"
        } else if n % 2 == 0 {
            "team"
        } else {
            "free"
        };
        admin(
            soak,
            port,
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(json!({"plan": plan})),
        )
        .await?;
        if plan != "enterprise" {
            continue;
        }
        let webhook = admin(
            soak,
            port,
            reqwest::Method::POST,
            &format!("/v1/admin/orgs/{org}/destinations"),
            Some(json!({"name": "soc webhook", "signing_secret": SIGNING_SECRET, "config": {"type": "webhook", "url": format!("{webhook_url}/audit/{org}")}})),
        )
        .await?;
        let hec = admin(
            soak,
            port,
            reqwest::Method::POST,
            &format!("/v1/admin/orgs/{org}/destinations"),
            Some(json!({"name": "splunk", "signing_secret": SIGNING_SECRET, "filters": {"categories": ["authentication", "security"]},
                        "config": {"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}})),
        )
        .await?;
        enterprise.push((
            org,
            webhook["id"].as_str().unwrap_or_default().to_string(),
            hec["id"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(enterprise)
}
