//! Issue 15 — tamper evidence on the real Kafka and ClickHouse: tampering with ClickHouse
//! directly is found and named (window and event), crashes and rebalances never look like
//! tampering, and a key rotation keeps old digests verifiable.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka, user_token};
use serde_json::Value;

/// Windows of two seconds, so tests see seals quickly.
const INDEXER: [(&str, &str); 1] = [("INDEXER__INTEGRITY__WINDOW_SECS", "2")];
/// Batches reach the sealer within a second here (the default, 30 s, covers a slow insert).
const GATEWAY: [(&str, &str); 2] = [
    ("GATEWAY__INTEGRITY__WINDOW_SECS", "2"),
    ("GATEWAY__INTEGRITY__IN_FLIGHT_SECS", "1"),
];

async fn get(gateway: &Service, org: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.url()))
        .bearer_auth(user_token(org, "admin", "auditor@example.com", 600))
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

async fn verify(gateway: &Service, org: &str) -> Value {
    let (status, body) = get(gateway, org, &format!("/v1/orgs/{org}/integrity/verify")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the organization's whole last day verifies as sealed and intact.
async fn intact(gateway: &Service, org: &str) -> Value {
    eventually(
        &format!("{org} sealed and intact"),
        Duration::from_secs(60),
        || async {
            let body = verify(gateway, org).await;
            (body["state"] == "intact" && body["head_confirmed"] == true).then_some(body)
        },
    )
    .await
}

/// Publishes `count` events of `org` through the gateway; returns their ids.
async fn publish(gateway: &Gateway, key: &str, org: &str, count: usize) -> Vec<String> {
    let events: Vec<Value> = (0..count).map(|_| event(org, "resource.created")).collect();
    let (status, body) = gateway
        .post_events(key, &Value::Array(events.clone()))
        .await;
    assert_eq!(status, 202, "{body}");
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn findings(body: &Value) -> Vec<(String, Option<String>, Option<u64>)> {
    body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["event_id"].as_str().map(str::to_string),
                f["seq"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_clickhouse_is_found_and_named() {
    let ns = Namespace::new("integrity-tamper");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &INDEXER).await;
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &GATEWAY).await;
    let gateway = Gateway::new(&gateway_service.url());
    let key = gateway.producer_key("tests", &["*"], None).await;
    let orgs = [
        "org_delete",
        "org_update",
        "org_bytes",
        "org_insert",
        "org_cut",
        "org_clean",
    ];
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for org in orgs {
        ids.insert(org, publish(&gateway, &key, org, 20).await);
    }
    for org in orgs {
        let body = intact(&gateway_service, org).await;
        assert!(body["leaves"].as_u64().unwrap() >= 20, "{body}");
    }
    let mutate = |sql: String| {
        let ns = &ns;
        async move { ns.sql(&format!("{sql} SETTINGS mutations_sync = 2")).await }
    };

    // Deleted: one event removed.
    let victim = &ids["org_delete"][7];
    mutate(format!("ALTER TABLE events DELETE WHERE id = '{victim}'")).await;
    // Altered (a column): filters would no longer find it.
    let victim_column = &ids["org_update"][3];
    mutate(format!("ALTER TABLE events UPDATE actor_email = 'someone@else.example' WHERE id = '{victim_column}'")).await;
    // Altered (the event's bytes).
    let victim_bytes = &ids["org_bytes"][11];
    mutate(format!("ALTER TABLE events UPDATE raw = replaceOne(raw, 'resource.created', 'resource.deleted'), action = 'resource.deleted' WHERE id = '{victim_bytes}'")).await;
    // Inserted: a forged copy under a new id, and a duplicate of a real event moved in time.
    let template = &ids["org_insert"][0];
    let forged_id = uuid::Uuid::now_v7().to_string();
    // Its indexing time is backdated among the sealed rows (a fresh one would be "not yet
    // sealed" until the sealer is due).
    ns.sql(&format!(
        "INSERT INTO events SELECT * REPLACE (toUUID('{forged_id}') AS id, replaceOne(raw, '{template}', '{forged_id}') AS raw, \
         indexed_at - INTERVAL 10 SECOND AS indexed_at) FROM (SELECT * FROM events WHERE id = '{template}')"
    ))
    .await;
    // Truncated: the newest rows and their digests and leaves removed from ClickHouse.
    mutate("ALTER TABLE integrity_leaves DELETE WHERE org_id = 'org_cut'".into()).await;
    mutate("ALTER TABLE integrity_digests DELETE WHERE org_id = 'org_cut'".into()).await;
    mutate("ALTER TABLE events DELETE WHERE org_id = 'org_cut'".into()).await;

    let deleted = findings(&verify(&gateway_service, "org_delete").await);
    assert!(
        deleted.iter().any(|(kind, id, seq)| kind == "deleted"
            && id.as_deref() == Some(victim.as_str())
            && seq.is_some()),
        "{deleted:?}"
    );
    let altered = findings(&verify(&gateway_service, "org_update").await);
    assert!(
        altered.iter().any(|(kind, id, _)| kind == "altered" && id.as_deref() == Some(victim_column.as_str())),
        "{altered:?}"
    );
    let bytes = verify(&gateway_service, "org_bytes").await;
    assert!(
        findings(&bytes)
            .iter()
            .any(|(kind, id, _)| kind == "altered" && id.as_deref() == Some(victim_bytes.as_str())),
        "{bytes}"
    );
    let inserted_body = verify(&gateway_service, "org_insert").await;
    let inserted = findings(&inserted_body);
    assert!(
        inserted
            .iter()
            .any(|(kind, id, _)| kind == "inserted" && id.as_deref() == Some(forged_id.as_str())),
        "{inserted_body}\n{}",
        ns.sql("SELECT id, indexed_at, now64(3) FROM events WHERE org_id = 'org_insert' ORDER BY indexed_at FORMAT TSV").await
    );
    let cut = verify(&gateway_service, "org_cut").await;
    assert!(
        findings(&cut)
            .iter()
            .any(|(kind, _, _)| kind == "truncated"),
        "the chain held outside ClickHouse shows the cut: {cut}"
    );
    // Nothing reported where nothing happened.
    let clean = verify(&gateway_service, "org_clean").await;
    assert_eq!(clean["findings"].as_array().unwrap().len(), 0, "{clean}");

    // The proof of one event: its leaf hashes up to its window's signed root.
    let proven = &ids["org_clean"][5];
    let (status, proof) = get(
        &gateway_service,
        "org_clean",
        &format!("/v1/orgs/org_clean/integrity/proof/{proven}"),
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    let leaf = hex32(proof["leaf"].as_str().unwrap());
    let path: Vec<[u8; 32]> = proof["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex32(h.as_str().unwrap()))
        .collect();
    let note = audit_integrity_note_root(proof["digest"]["note"].as_str().unwrap());
    assert!(audit_integrity::verify_path(
        &leaf,
        proof["leaf_index"].as_u64().unwrap() as usize,
        proof["tree_size"].as_u64().unwrap() as usize,
        &path,
        &note
    ));
}

fn hex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

fn audit_integrity_note_root(note: &str) -> [u8; 32] {
    let root = note
        .lines()
        .find_map(|line| line.strip_prefix("root: "))
        .unwrap();
    hex32(root)
}

/// Produces events straight to Kafka for `orgs` until `stop`; returns the ids per org.
fn produce_until(
    ns: &Namespace,
    orgs: &'static [&'static str],
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let brokers = ns.infra.kafka.clone();
    let topic = ns.events_topic.clone();
    tokio::spawn(async move {
        let producer = kafka::producer(&brokers);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut sends = Vec::new();
            for org in orgs {
                let payload = event(org, "resource.config.edited").to_string();
                let producer = producer.clone();
                let topic = topic.clone();
                sends.push(async move {
                    kafka::produce(&producer, &topic, Some(org), payload.as_bytes()).await
                });
            }
            futures::future::join_all(sends).await;
            sent += orgs.len();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    })
}

/// Killed and rebalanced indexers re-read and re-insert batches: every organization's chain
/// still verifies intact, and no window was ever published twice with different contents.
#[tokio::test(flavor = "multi_thread")]
async fn crashes_and_rebalances_never_look_like_tampering() {
    static ORGS: [&str; 8] = [
        "org_a", "org_b", "org_c", "org_d", "org_e", "org_f", "org_g", "org_h",
    ];
    let ns = Namespace::new("integrity-faults");
    let extra = [
        ("INDEXER__INTEGRITY__WINDOW_SECS", "2"),
        ("INDEXER__BATCH__MAX_ROWS", "200"),
        ("INDEXER__BATCH__MAX_WAIT_MS", "50"),
    ];
    let mut first = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let mut second = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &GATEWAY).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(&ns, &ORGS, stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    first.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.restart().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let third = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = producing.await.unwrap();
    println!("{sent} events produced across two kills and three rebalances");
    eventually("every event indexed", Duration::from_secs(120), || async {
        (ns.try_sql_u64("SELECT count() FROM events FINAL").await >= Some(sent as u64))
            .then_some(())
    })
    .await;
    for org in ORGS {
        let body = intact(&gateway, org).await;
        println!(
            "{org}: {} windows, {} leaves, {} events",
            body["windows"], body["leaves"], body["events"]
        );
    }
    // What was published on the anchor topic never contradicts itself.
    let mut published: HashMap<(String, u64), HashSet<String>> = HashMap::new();
    for message in kafka::read_all(&ns.infra.kafka, &ns.digests_topic) {
        let digest: Value =
            serde_json::from_slice(rdkafka::Message::payload(&message).unwrap()).unwrap();
        published
            .entry((
                digest["org_id"].as_str().unwrap().to_string(),
                digest["seq"].as_u64().unwrap(),
            ))
            .or_default()
            .insert(digest["hash"].as_str().unwrap().to_string());
    }
    let conflicts: Vec<_> = published
        .iter()
        .filter(|(_, hashes)| hashes.len() > 1)
        .collect();
    assert!(
        conflicts.is_empty(),
        "windows published twice with different contents: {conflicts:?}"
    );
    drop(third);
}

/// A key rotation: new digests are signed with the new key and the old ones keep verifying.
#[tokio::test(flavor = "multi_thread")]
async fn old_digests_verify_after_a_key_rotation() {
    const OLD: &str = "old:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    const NEW: &str = "new:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
    let ns = Namespace::new("integrity-rotation");
    let public = |entries: &[&str]| -> String {
        let keys = audit_integrity::SigningKeys::parse(entries).unwrap();
        let listed = keys.public_keys().entries();
        format!(
            "[{}]",
            listed
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let old_only = format!("[\"{OLD}\"]");
    let rotated = format!("[\"{NEW}\",\"{OLD}\"]");
    let gateway_keys = public(&[NEW, OLD]);
    let mut indexer = Service::start(
        ServiceKind::Indexer,
        &ns,
        &[
            ("INDEXER__INTEGRITY__WINDOW_SECS", "2"),
            ("INDEXER__INTEGRITY__SIGNING_KEYS", &old_only),
        ],
    )
    .await;
    let gateway_service = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[
            ("GATEWAY__INTEGRITY__WINDOW_SECS", "2"),
            ("GATEWAY__INTEGRITY__PUBLIC_KEYS", &gateway_keys),
        ],
    )
    .await;
    let gateway = Gateway::new(&gateway_service.url());
    let key = gateway.producer_key("tests", &["*"], None).await;
    publish(&gateway, &key, "org_rotating", 10).await;
    intact(&gateway_service, "org_rotating").await;
    assert!(
        terminate_and_restart(
            &mut indexer,
            &[
                ("INDEXER__INTEGRITY__WINDOW_SECS", "2"),
                ("INDEXER__INTEGRITY__SIGNING_KEYS", &rotated)
            ],
            &ns
        )
        .await
    );
    publish(&gateway, &key, "org_rotating", 10).await;
    let body = eventually(
        "the second batch sealed with the new key",
        Duration::from_secs(60),
        || async {
            let body = intact(&gateway_service, "org_rotating").await;
            (body["leaves"].as_u64().unwrap() >= 20).then_some(body)
        },
    )
    .await;
    let (_, digests) = get(
        &gateway_service,
        "org_rotating",
        "/v1/orgs/org_rotating/integrity/digests",
    )
    .await;
    let key_ids: HashSet<&str> = digests["digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(key_ids, HashSet::from(["old", "new"]), "{body}");
    let (status, keys) = get(&gateway_service, "org_rotating", "/v1/integrity/keys").await;
    assert_eq!(status, 200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
}

/// Stops an indexer gracefully and starts one with other settings on the same namespace.
async fn terminate_and_restart(
    indexer: &mut Service,
    extra: &[(&str, &str)],
    ns: &Namespace,
) -> bool {
    let clean = indexer.terminate();
    *indexer = Service::start(ServiceKind::Indexer, ns, extra).await;
    clean
}

/// What a user downloads for offline verification: the NDJSON export, the bundle of the same
/// range and the published keys, as served.
struct Download {
    dir: tempfile::TempDir,
    export: Vec<u8>,
}

impl Download {
    async fn fetch(gateway: &Service, org: &str, since: &str, until: &str) -> Self {
        let range = format!("since={since}&until={until}");
        let client = reqwest::Client::new();
        let token = user_token(org, "admin", "auditor@example.com", 600);
        let fetch = |path: String| {
            let request = client
                .get(format!("{}{path}", gateway.url()))
                .bearer_auth(&token);
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                response.bytes().await.unwrap().to_vec()
            }
        };
        let export = fetch(format!(
            "/v1/orgs/{org}/events/export?format=ndjson&{range}"
        ))
        .await;
        let bundle = fetch(format!("/v1/orgs/{org}/integrity/bundle?{range}")).await;
        let keys = fetch("/v1/integrity/keys".into()).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.json"), bundle).unwrap();
        std::fs::write(dir.path().join("keys.json"), keys).unwrap();
        Self { dir, export }
    }

    /// Runs `audit-verify` on `export` (the downloaded one, or a changed copy): exit code and
    /// report.
    fn verify(&self, export: &[u8]) -> (i32, String) {
        let path = self.dir.path().join("export.ndjson");
        std::fs::write(&path, export).unwrap();
        let output =
            std::process::Command::new(audit_tests::service::bin_dir().join("audit-verify"))
                .arg("--export")
                .arg(&path)
                .arg("--bundle")
                .arg(self.dir.path().join("bundle.json"))
                .arg("--keys")
                .arg(self.dir.path().join("keys.json"))
                .output()
                .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), report)
    }
}

/// An export verified offline with the standalone verifier (written from docs/integrity.md,
/// sharing no code with the sealer): intact as served; one flipped byte, a removed line and
/// an added line are each named with the event.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_verifies_offline_and_a_flipped_byte_is_named() {
    let ns = Namespace::new("integrity-offline");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &INDEXER).await;
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &GATEWAY).await;
    let gateway = Gateway::new(&gateway_service.url());
    let key = gateway.producer_key("tests", &["*"], None).await;
    let ids = publish(&gateway, &key, "org_offline", 25).await;
    intact(&gateway_service, "org_offline").await;
    let now = time::OffsetDateTime::now_utc();
    let format = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (since, until) = (format(now - time::Duration::hours(1)), format(now));
    let download = Download::fetch(&gateway_service, "org_offline", &since, &until).await;
    let lines: Vec<&[u8]> = download
        .export
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 25, "the export holds every event");

    let (code, report) = download.verify(&download.export);
    assert_eq!(code, 0, "{report}");
    assert!(report.trim_end().ends_with("intact"), "{report}");

    // One byte of one event flipped (a letter of its action): altered, and that event named.
    let mut flipped = download.export.clone();
    let victim_line = 7;
    let start: usize = lines[..victim_line].iter().map(|line| line.len() + 1).sum();
    let at = start
        + lines[victim_line]
            .windows(b"resource.created".len())
            .position(|window| window == b"resource.created")
            .unwrap();
    flipped[at] ^= 0x01;
    let victim: Value = serde_json::from_slice(lines[victim_line]).unwrap();
    let victim_id = victim["id"].as_str().unwrap();
    assert!(ids.iter().any(|id| id == victim_id));
    let (code, report) = download.verify(&flipped);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("altered") && report.contains(victim_id),
        "{report}"
    );

    // A line removed: deleted, named.
    let removed = lines
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 3)
        .flat_map(|(_, line)| [*line, b"\n"].concat())
        .collect::<Vec<u8>>();
    let removed_id = serde_json::from_slice::<Value>(lines[3]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, report) = download.verify(&removed);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("deleted") && report.contains(&removed_id),
        "{report}"
    );

    // A line added (a copy of a real event under a new id): inserted, named.
    let forged_id = uuid::Uuid::now_v7().to_string();
    let forged = String::from_utf8(lines[0].to_vec()).unwrap().replace(
        serde_json::from_slice::<Value>(lines[0]).unwrap()["id"]
            .as_str()
            .unwrap(),
        &forged_id,
    );
    let mut added = download.export.clone();
    added.extend_from_slice(forged.as_bytes());
    added.push(b'\n');
    let (code, report) = download.verify(&added);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("inserted") && report.contains(&forged_id),
        "{report}"
    );
}
