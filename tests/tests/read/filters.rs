//! Filters checked against seeded data (each one's result compared with the same predicate
//! applied to the seeded events), pagination stable under concurrent inserts, hostile query
//! input, and exports streamed and parsed back (CSV with formula-injection guards, NDJSON),
//! with the audit events they leave.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, eventually, user_token};
use serde_json::{Value, json};

use crate::common::{Reader, ids_where};

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
