//! What the read tests share: a reading client (any token, every page of a listing), plan
//! changes through the operator API, and id sets of the events matching a predicate.

use std::collections::HashSet;

use audit_tests::Service;
use audit_tests::events::Gateway;
use serde_json::Value;

/// Reads through a gateway with a token of the caller's choosing.
pub struct Reader {
    pub http: reqwest::Client,
    pub url: String,
}

impl Reader {
    pub fn new(gateway: &Service) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: gateway.url(),
        }
    }

    pub async fn get(
        &self,
        token: Option<&str>,
        path_and_query: &str,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut request = self.http.get(format!("{}{path_and_query}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap(), headers)
    }

    pub async fn json(&self, token: &str, path_and_query: &str) -> (u16, Value) {
        let (status, text, _) = self.get(Some(token), path_and_query).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Every page of a listing; returns the ids in order.
    pub async fn all_pages(&self, token: &str, org: &str, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/orgs/{org}/events?{query}&limit=7");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, body) = self.json(token, &path).await;
            assert_eq!(status, 200, "{body}");
            ids.extend(
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_str().unwrap().to_string()),
            );
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return ids,
            }
        }
    }
}

/// Changes an organization's settings (plan, retention…) through the operator API.
pub async fn patch_org(client: &Gateway, org: &str, body: Value) {
    let (status, body) = client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The ids of the events matching `predicate`.
pub fn ids_where(events: &[Value], predicate: impl Fn(&Value) -> bool) -> HashSet<String> {
    events
        .iter()
        .filter(|e| predicate(e))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}
