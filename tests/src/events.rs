//! Building events and talking to the gateway as a producer and as an operator.

use serde_json::{Value, json};

use crate::OPERATOR_TOKEN;

/// A valid event of `org` with `action` (category looked up in the shipped catalogue).
pub fn event(org: &str, action: &str) -> Value {
    let catalogue = audit_core::Catalogue::builtin();
    let category = catalogue
        .category_of(action)
        .unwrap_or_else(|| panic!("unknown action {action}"));
    json!({
        "id": uuid::Uuid::now_v7().to_string(),
        "org_id": org,
        "occurred_at": now_rfc3339(),
        "category": category,
        "action": action,
        "outcome": "success",
        "actor": {"type": "user", "id": "u_1", "name": "Ada Lovelace", "email": "ada@example.com"},
        "targets": [{"type": "user", "id": "u_2", "name": "Grace"}],
        "context": {"ip": "203.0.113.7", "user_agent": "tests/1.0"},
        "metadata": {"test": true},
    })
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A gateway client for tests.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub url: String,
    pub http: reqwest::Client,
}

impl Gateway {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Creates a producer key through the operator API; returns the API key.
    pub async fn producer_key(
        &self,
        name: &str,
        categories: &[&str],
        orgs: Option<&[&str]>,
    ) -> String {
        let mut body = json!({"name": name, "categories": categories});
        if let Some(orgs) = orgs {
            body["orgs"] = json!(orgs);
        }
        let response = self.admin_post("/v1/admin/producer-keys", &body).await;
        assert_eq!(response.0, 201, "creating a producer key: {}", response.1);
        response.1["api_key"].as_str().unwrap().to_string()
    }

    /// `PATCH /v1/admin/orgs/{org}` (plan, retention).
    pub async fn patch_org(&self, org: &str, body: &Value) -> (u16, Value) {
        self.admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(body),
        )
        .await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.admin(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(OPERATOR_TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Posts raw bytes with a content type (None = no header); returns status, body, Retry-After.
    pub async fn post_raw(
        &self,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value, Option<String>) {
        let mut request = self.http.post(format!("{}/v1/events", self.url)).body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request.send().await.unwrap()).await
    }

    /// `POST /v1/events/import` with an NDJSON body (bytes or a stream), starting at line
    /// `first_line` of the file when given; returns status, body, Retry-After.
    pub async fn post_import(
        &self,
        key: &str,
        body: impl Into<reqwest::Body>,
        first_line: Option<u64>,
    ) -> (u16, Value, Option<String>) {
        let mut url = format!("{}/v1/events/import", self.url);
        if let Some(line) = first_line {
            url.push_str(&format!("?first_line={line}"));
        }
        let response = self
            .http
            .post(url)
            .bearer_auth(key)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// Puts `org` on the Enterprise plan (its events are forwarded).
    pub async fn enterprise(&self, org: &str) {
        let (status, body) = self.patch_org(org, &json!({"plan": "enterprise"})).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Posts a JSON body (one event or an array) with a producer key.
    pub async fn post_events(&self, key: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/events", self.url))
            .bearer_auth(key)
            .json(body)
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
}

/// Status, JSON body (or the text as a string) and Retry-After of a response.
async fn answer(response: reqwest::Response) -> (u16, Value, Option<String>) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        retry_after,
    )
}
