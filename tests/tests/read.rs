//! Issue 6 — the read side: who may read, filters checked against seeded data, pagination
//! stable under concurrent inserts, hostile input, streamed exports parsed back, the audit
//! trail of reads, and the arrival-ordered feed for Enterprise API tokens.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, eventually, user_token};
use serde_json::{Value, json};

struct Reader {
    http: reqwest::Client,
    url: String,
}

impl Reader {
    fn new(gateway: &Service) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: gateway.url(),
        }
    }

    async fn get(
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

    async fn json(&self, token: &str, path_and_query: &str) -> (u16, Value) {
        let (status, text, _) = self.get(Some(token), path_and_query).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Every page of a listing; returns the ids in order.
    async fn all_pages(&self, token: &str, org: &str, query: &str) -> Vec<String> {
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

async fn patch_org(client: &Gateway, org: &str, body: Value) {
    let (status, body) = client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn who_may_read_what() {
    let ns = Namespace::new("read-authz");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let reader = Reader::new(&gateway);
    patch_org(&client, "org_ent", json!({"plan": "enterprise"})).await;
    patch_org(&client, "org_team", json!({"plan": "team"})).await;
    let key = client.producer_key("svc", &["*"], None).await;
    for org in ["org_ent", "org_team"] {
        assert_eq!(
            client
                .post_events(&key, &event(org, "resource.created"))
                .await
                .0,
            202
        );
    }
    let list = "/v1/orgs/org_ent/events";

    for role in ["owner", "admin"] {
        let token = user_token("org_ent", role, "u_1", 600);
        assert_eq!(
            reader.get(Some(&token), list).await.0,
            200,
            "{role} of the organization"
        );
        let other = user_token("org_team", role, "u_2", 600);
        assert_eq!(
            reader.get(Some(&other), list).await.0,
            404,
            "{role} of another organization"
        );
        let expired = user_token("org_ent", role, "u_1", -600);
        let (status, body, headers) = reader.get(Some(&expired), list).await;
        assert_eq!(status, 401, "expired {role}: {body}");
        assert!(headers.contains_key("www-authenticate"));
    }
    let member = user_token("org_ent", "member", "u_3", 600);
    let (status, body, _) = reader.get(Some(&member), list).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Owners and Admins"));
    assert_eq!(
        reader
            .get(Some(&user_token("org_team", "member", "u_4", 600)), list)
            .await
            .0,
        404
    );
    assert_eq!(reader.get(None, list).await.0, 401);
    assert_eq!(reader.get(Some("garbage"), list).await.0, 401);
    let mut forged = user_token("org_ent", "owner", "u_1", 600);
    forged.push('x');
    assert_eq!(reader.get(Some(&forged), list).await.0, 401);
    // A producer key or an operator token is not a reader credential.
    assert_eq!(reader.get(Some(&key), list).await.0, 401);
    assert_eq!(
        reader.get(Some(audit_tests::OPERATOR_TOKEN), list).await.0,
        401
    );

    // API tokens: Enterprise only, created by Owners/Admins, shown once, read-only, revocable.
    let admin = user_token("org_ent", "admin", "u_admin", 600);
    let create = |org: &'static str, token: String| {
        let http = reader.http.clone();
        let url = reader.url.clone();
        async move {
            let response = http
                .post(format!("{url}/v1/orgs/{org}/api-tokens"))
                .bearer_auth(token)
                .json(&json!({"name": "siem-pull"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = create("org_ent", admin.clone()).await;
    assert_eq!(status, 201, "{created}");
    let api_token = created["token"].as_str().unwrap().to_string();
    assert!(api_token.starts_with("at_"));
    assert_eq!(
        create("org_ent", member.clone()).await.0,
        403,
        "members cannot create tokens"
    );
    assert_eq!(
        create("org_team", user_token("org_team", "owner", "u_5", 600))
            .await
            .0,
        403,
        "not Enterprise"
    );
    assert_eq!(
        create("org_ent", api_token.clone()).await.0,
        403,
        "tokens are read-only"
    );
    let (status, listed) = reader.json(&admin, "/v1/orgs/org_ent/api-tokens").await;
    assert_eq!(status, 200);
    assert!(
        !listed
            .to_string()
            .contains(&api_token[api_token.len() - 20..]),
        "secrets are never listed"
    );

    assert_eq!(reader.get(Some(&api_token), list).await.0, 200);
    assert_eq!(
        reader
            .get(
                Some(&api_token),
                "/v1/orgs/org_ent/events/export?format=ndjson"
            )
            .await
            .0,
        200
    );
    assert_eq!(
        reader
            .get(Some(&api_token), "/v1/orgs/org_team/events")
            .await
            .0,
        404,
        "other organization"
    );
    // A downgrade suspends API access; revocation ends it.
    patch_org(&client, "org_ent", json!({"plan": "team"})).await;
    assert_eq!(
        reader.get(Some(&api_token), list).await.0,
        403,
        "non-Enterprise"
    );
    patch_org(&client, "org_ent", json!({"plan": "enterprise"})).await;
    assert_eq!(reader.get(Some(&api_token), list).await.0, 200);
    let token_id = created["token_id"].as_str().unwrap();
    let response = reader
        .http
        .delete(format!(
            "{}/v1/orgs/org_ent/api-tokens/{token_id}",
            reader.url
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(reader.get(Some(&api_token), list).await.0, 401, "revoked");
}

/// Seeds `n` varied events for `org`, one minute apart ending an hour ago.
fn seeded(org: &str, n: usize) -> Vec<Value> {
    let actions = [
        "user.login.succeeded",
        "user.login.failed",
        "member.role.changed",
        "billing.invoice.generated",
        "resource.created",
        "api_key.generated",
    ];
    let base = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    (0..n)
        .map(|i| {
            let mut e = event(org, actions[i % actions.len()]);
            let at = base - time::Duration::minutes(i as i64);
            e["occurred_at"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
            e["outcome"] = json!(if i % 3 == 0 { "failure" } else { "success" });
            e["actor"] = json!({"type": "user", "id": format!("u_{}", i % 5), "email": format!("u{}@r.example", i % 5),
                                "name": if i == 7 { "=HYPERLINK(\"http://evil.example\",\"click\")".to_string() } else { format!("User {}", i % 5) }});
            e["targets"] = json!([{"type": "project", "id": format!("p_{}", i % 3), "name": "Apollo"}]);
            e["context"] = json!({"ip": format!("203.0.113.{}", i % 4), "user_agent": if i == 8 { "@SUM(1+1)" } else { "Mozilla/5.0" },
                                  "request_id": if i == 9 { "+cmd|' /C calc'!A0" } else { "req" }});
            e["metadata"] = json!({"ticket": format!("T-{i}"), "note": if i % 10 == 4 { "Zebra crossing" } else { "plain" }});
            e
        })
        .collect()
}

fn ids_where(events: &[Value], predicate: impl Fn(&Value) -> bool) -> HashSet<String> {
    events
        .iter()
        .filter(|e| predicate(e))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_pages_exports_and_hostile_input() {
    let ns = Namespace::new("read-filters");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let reader = Reader::new(&gateway);
    let key = client.producer_key("svc", &["*"], None).await;
    let events = seeded("org_r", 60);
    let noise = seeded("org_noise", 20);
    assert_eq!(
        client
            .post_events(&key, &Value::Array(events.clone()))
            .await
            .0,
        202
    );
    assert_eq!(client.post_events(&key, &Value::Array(noise)).await.0, 202);
    eventually("seeded events indexed", Duration::from_secs(30), || async {
        (ns.try_sql_u64("SELECT count() FROM events FINAL WHERE org_id = 'org_r'")
            .await
            >= Some(60))
        .then_some(())
    })
    .await;
    let token = user_token("org_r", "admin", "u_admin", 600);
    let all_business = "category=authentication,user_management,billing,service,security";

    let since = events[40]["occurred_at"].as_str().unwrap().to_string();
    let until = events[10]["occurred_at"].as_str().unwrap().to_string();
    let at = |e: &Value| e["occurred_at"].as_str().unwrap().to_string();
    let cases: Vec<(String, HashSet<String>)> = vec![
        (all_business.to_string(), ids_where(&events, |_| true)),
        (
            "category=billing".into(),
            ids_where(&events, |e| e["category"] == "billing"),
        ),
        (
            "action=user.*".into(),
            ids_where(&events, |e| {
                e["action"].as_str().unwrap().starts_with("user.")
            }),
        ),
        (
            "action=member.role.changed".into(),
            ids_where(&events, |e| e["action"] == "member.role.changed"),
        ),
        (
            "action=user.login.failed,api_key.generated".into(),
            ids_where(&events, |e| {
                e["action"] == "user.login.failed" || e["action"] == "api_key.generated"
            }),
        ),
        (
            format!("{all_business}&actor=u_1"),
            ids_where(&events, |e| e["actor"]["id"] == "u_1"),
        ),
        (
            format!("{all_business}&actor=u2%40r.example"),
            ids_where(&events, |e| e["actor"]["email"] == "u2@r.example"),
        ),
        (
            format!("{all_business}&target_type=project&target_id=p_2"),
            ids_where(&events, |e| e["targets"][0]["id"] == "p_2"),
        ),
        (
            format!("{all_business}&outcome=failure"),
            ids_where(&events, |e| e["outcome"] == "failure"),
        ),
        (
            format!("{all_business}&ip=203.0.113.3"),
            ids_where(&events, |e| e["context"]["ip"] == "203.0.113.3"),
        ),
        (
            format!("{all_business}&q=ZEBRA"),
            ids_where(&events, |e| e["metadata"]["note"] == "Zebra crossing"),
        ),
        (
            format!("{all_business}&q=T-17"),
            ids_where(&events, |e| e["metadata"]["ticket"] == "T-17"),
        ),
        (
            format!(
                "{all_business}&since={}&until={}",
                urlencode(&since),
                urlencode(&until)
            ),
            ids_where(&events, |e| at(e) >= since && at(e) < until),
        ),
        (
            "category=authentication&outcome=failure".into(),
            ids_where(&events, |e| {
                e["category"] == "authentication" && e["outcome"] == "failure"
            }),
        ),
    ];
    for (query, expected) in &cases {
        assert!(
            !expected.is_empty(),
            "{query}: the seed must cover the case"
        );
        let got = reader.all_pages(&token, "org_r", query).await;
        let unique: HashSet<String> = got.iter().cloned().collect();
        assert_eq!(unique.len(), got.len(), "{query}: duplicates across pages");
        assert_eq!(&unique, expected, "{query}");
    }
    // Newest first.
    let (_, page) = reader
        .json(&token, "/v1/orgs/org_r/events?category=billing&limit=100")
        .await;
    let times: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    // Pagination stays stable while new events arrive.
    let writer = {
        let client = client.clone();
        let key = key.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let fresh = event(
                    "org_r",
                    if i % 2 == 0 {
                        "user.login.failed"
                    } else {
                        "resource.created"
                    },
                );
                client.post_events(&key, &fresh).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let during = reader.all_pages(&token, "org_r", all_business).await;
    writer.await.unwrap();
    let unique: HashSet<String> = during.iter().cloned().collect();
    assert_eq!(unique.len(), during.len(), "no event twice across pages");
    assert!(
        ids_where(&events, |_| true).is_subset(&unique),
        "no seeded event skipped"
    );

    // One event by id; another organization's id is not found.
    let id = events[5]["id"].as_str().unwrap();
    let (status, one) = reader
        .json(&token, &format!("/v1/orgs/org_r/events/{id}"))
        .await;
    assert_eq!((status, one["id"].as_str()), (200, Some(id)));
    assert_eq!(
        reader
            .json(&token, "/v1/orgs/org_r/events/not-a-uuid")
            .await
            .0,
        400
    );

    // Hostile input: 400 naming the parameter, or a correct empty answer — never a 500.
    let (status, body) = reader
        .json(&token, "/v1/orgs/org_r/events?actor=%27%20OR%201%3D1%20--")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        0,
        "SQL in a filter is just a value"
    );
    let (status, body) = reader
        .json(
            &token,
            &format!("/v1/orgs/org_r/events?{all_business}&q=%25"),
        )
        .await;
    assert_eq!(
        (status, body["data"].as_array().unwrap().len()),
        (200, 0),
        "LIKE wildcards are literal"
    );
    for (query, param) in [
        (format!("q={}", "a".repeat(5000)), "q"),
        ("category=billing%27--".to_string(), "category"),
        ("action=%27%3BDROP".to_string(), "action"),
        ("limit=100000".to_string(), "limit"),
        ("cursor=eyJub3QiOiJhIGN1cnNvciJ9.AAAA".to_string(), "cursor"),
        ("since=1%20OR%201%3D1".to_string(), "since"),
        ("order=desc".to_string(), "order"),
        ("ip=%27%27".to_string(), "ip"),
    ] {
        let (status, body) = reader
            .json(&token, &format!("/v1/orgs/org_r/events?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
    }
    let (_, page) = reader
        .json(
            &user_token("org_noise", "admin", "x", 600),
            "/v1/orgs/org_noise/events?limit=1",
        )
        .await;
    let foreign_cursor = page["next_cursor"].as_str().unwrap();
    let (status, _) = reader
        .json(
            &token,
            &format!("/v1/orgs/org_r/events?cursor={foreign_cursor}"),
        )
        .await;
    assert_eq!(status, 400, "another organization's cursor");

    // CSV export, parsed back by a real CSV parser, with formula cells neutralised.
    let (status, csv_text, headers) = reader
        .get(
            Some(&token),
            &format!("/v1/orgs/org_r/events/export?format=csv&{all_business}"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("audit-log_org_r_start_now.csv")
    );
    let mut parser = csv::Reader::from_reader(csv_text.as_bytes());
    let columns: Vec<String> = parser
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(columns[..3], ["id", "occurred_at", "received_at"]);
    let rows: Vec<HashMap<String, String>> = parser
        .records()
        .map(|record| {
            columns
                .iter()
                .cloned()
                .zip(record.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect();
    let exported: HashSet<String> = rows.iter().map(|r| r["id"].clone()).collect();
    assert!(ids_where(&events, |_| true).is_subset(&exported));
    for row in &rows {
        assert!(
            row["occurred_at"].ends_with('Z') && row["occurred_at"].contains('T'),
            "UTC ISO-8601: {}",
            row["occurred_at"]
        );
        for (column, value) in row {
            let first = value.chars().next();
            assert!(
                !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
                "{column} = {value:?} would run as a formula"
            );
        }
    }
    let evil = rows
        .iter()
        .find(|r| r["id"] == events[7]["id"].as_str().unwrap())
        .unwrap();
    assert!(
        evil["actor_name"].starts_with("'=HYPERLINK("),
        "{}",
        evil["actor_name"]
    );
    let evil = rows
        .iter()
        .find(|r| r["id"] == events[8]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(evil["user_agent"], "'@SUM(1+1)");
    let evil = rows
        .iter()
        .find(|r| r["id"] == events[9]["id"].as_str().unwrap())
        .unwrap();
    assert!(evil["request_id"].starts_with("'+cmd"));

    // Filters on aliased CSV columns (time range, ip, category) apply to the stored values.
    let (status, narrowed, _) = reader
        .get(Some(&token), &format!("/v1/orgs/org_r/events/export?format=csv&since={}&until={}&ip=203.0.113.3&category=authentication,security", urlencode(&since), urlencode(&until)))
        .await;
    assert_eq!(status, 200);
    let narrowed_ids: HashSet<String> = csv::Reader::from_reader(narrowed.as_bytes())
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    let expected = ids_where(&events, |e| {
        at(e) >= since
            && at(e) < until
            && e["context"]["ip"] == "203.0.113.3"
            && (e["category"] == "authentication" || e["category"] == "security")
    });
    assert!(!expected.is_empty());
    assert_eq!(narrowed_ids, expected);

    // JSON exports: an array and NDJSON with the same events.
    let (status, array, _) = reader
        .get(
            Some(&token),
            "/v1/orgs/org_r/events/export?format=json&category=billing",
        )
        .await;
    assert_eq!(status, 200);
    let array: Vec<Value> = serde_json::from_str(&array).unwrap();
    assert_eq!(
        ids_where(&array, |_| true),
        ids_where(&events, |e| e["category"] == "billing")
    );
    let (_, ndjson, _) = reader
        .get(
            Some(&token),
            "/v1/orgs/org_r/events/export?format=ndjson&category=billing",
        )
        .await;
    assert_eq!(ndjson.lines().count(), array.len());
    let (_, empty, _) = reader
        .get(
            Some(&token),
            "/v1/orgs/org_r/events/export?format=json&ip=198.51.100.1",
        )
        .await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&empty).unwrap().len(), 0);

    // Exports and views are themselves in the organization's log, with their filters.
    let recorded = eventually("export audit events", Duration::from_secs(30), || async {
        let text = ns
            .sql("SELECT action, toJSONString(metadata) FROM events FINAL WHERE org_id = 'org_r' AND category = 'audit_log' FORMAT TSVRaw")
            .await;
        (text.contains("audit_log.exported") && text.contains("audit_log.viewed")).then_some(text)
    })
    .await;
    assert!(
        recorded.lines().any(|l| l.contains("audit_log.exported")
            && l.contains("\"format\":\"csv\"")
            && l.contains("filter.category")),
        "{recorded}"
    );
}

fn urlencode(text: &str) -> String {
    url_encode(text)
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls the feed (3 events per call) until every id of `expected` has been delivered.
async fn drain_feed(
    reader: &Reader,
    token: &str,
    cursor: &mut Option<String>,
    delivered: &mut Vec<Value>,
    expected: &HashSet<String>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let path = match cursor.as_deref() {
            Some(after) => format!("/v1/orgs/org_feed/events/feed?after={after}&limit=3"),
            None => "/v1/orgs/org_feed/events/feed?limit=3".to_string(),
        };
        let (status, body) = reader.json(token, &path).await;
        assert_eq!(status, 200, "{body}");
        delivered.extend(body["data"].as_array().unwrap().iter().cloned());
        *cursor = body["next_cursor"].as_str().map(str::to_string);
        let seen = ids_where(delivered, |_| true);
        if expected.is_subset(&seen) && body["has_more"] == false {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "feed did not deliver {expected:?}; got {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_returns_everything_once_in_arrival_order() {
    let ns = Namespace::new("read-feed");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[("GATEWAY__READ__FEED_SETTLE_SECS", "1")],
    )
    .await;
    let client = Gateway::new(&gateway.url());
    let reader = Reader::new(&gateway);
    patch_org(&client, "org_feed", json!({"plan": "enterprise"})).await;
    let key = client
        .producer_key("svc", &["authentication", "service"], None)
        .await;
    let admin = user_token("org_feed", "admin", "u_admin", 600);
    let response = reader
        .http
        .post(format!("{}/v1/orgs/org_feed/api-tokens", reader.url))
        .bearer_auth(&admin)
        .json(&json!({"name": "siem"}))
        .send()
        .await
        .unwrap();
    let api_token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut delivered: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let first: Vec<Value> = (0..5)
        .map(|_| event("org_feed", "user.login.succeeded"))
        .collect();
    assert_eq!(
        client
            .post_events(&key, &Value::Array(first.clone()))
            .await
            .0,
        202
    );
    drain_feed(
        &reader,
        &api_token,
        &mut cursor,
        &mut delivered,
        &ids_where(&first, |_| true),
    )
    .await;

    // A late-arriving event (it happened 30 days ago) and a resubmission of an event already
    // delivered: the late one is delivered, the duplicate is not delivered again.
    let mut late = event("org_feed", "resource.deleted");
    late["occurred_at"] = json!(
        (time::OffsetDateTime::now_utc() - time::Duration::days(30))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let fresh = event("org_feed", "resource.created");
    assert_eq!(
        client
            .post_events(&key, &json!([late, first[2].clone(), fresh]))
            .await
            .0,
        202
    );
    drain_feed(
        &reader,
        &api_token,
        &mut cursor,
        &mut delivered,
        &ids_where(&[late.clone(), fresh.clone()], |_| true),
    )
    .await;
    // Give the duplicate every chance to show up before checking.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drain_feed(
        &reader,
        &api_token,
        &mut cursor,
        &mut delivered,
        &HashSet::new(),
    )
    .await;

    // The feed carries the whole log, meta events (token creation, views) included.
    let business: Vec<String> = delivered
        .iter()
        .filter(|e| e["category"] != "audit_log")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = business.iter().collect();
    assert_eq!(
        unique.len(),
        business.len(),
        "every event once: {business:?}"
    );
    assert_eq!(unique.len(), 7, "5 + the late arrival + the fresh one");
    let all: Vec<&str> = delivered
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "meta events are not repeated either"
    );
    // Arrival order: the late event (old occurred_at) comes after the first five.
    let position = |id: &str| business.iter().position(|b| b == id).unwrap();
    assert!(position(late["id"].as_str().unwrap()) > position(first[4]["id"].as_str().unwrap()));
}
