//! Tampering with ClickHouse directly — a row deleted, altered, its bytes changed, a row
//! inserted, the newest rows cut — is found and named (window and event); an untampered
//! organization stays intact and its inclusion proof checks against the signed note, also when
//! its windows were sealed before migration 0004 (one row per leaf in `integrity_leaves`).

use std::collections::HashMap;
use std::time::Duration;

use audit_tests::events::Gateway;
use audit_tests::{Namespace, Service, ServiceKind, eventually};

use crate::common::{GATEWAY, INDEXER, findings, get, intact, publish, verify};

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
        "org_legacy",
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
    mutate("ALTER TABLE integrity_windows DELETE WHERE org_id = 'org_cut'".into()).await;
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
    // Until the next window is sealed, the chain held outside ClickHouse is ahead of the
    // stored one (truncated); once the indexer seals again, the stored chain no longer
    // continues (broken_chain). Either names the cut.
    assert!(
        findings(&cut)
            .iter()
            .any(|(kind, _, _)| kind == "truncated" || kind == "broken_chain"),
        "the cut is found: {cut}"
    );
    let cut_later = eventually(
        "a window sealed after the cut",
        Duration::from_secs(30),
        || async {
            let body = verify(&gateway_service, "org_cut").await;
            (body["windows"].as_u64() > Some(0)).then_some(body)
        },
    )
    .await;
    assert!(
        findings(&cut_later)
            .iter()
            .any(|(kind, _, _)| kind == "broken_chain"),
        "the stored chain no longer continues: {cut_later}"
    );
    // Sealed before migration 0004: the windows so far as one row per leaf, as that release
    // wrote them, and no longer packed.
    let sealed = ns
        .sql_u64("SELECT max(seq) FROM integrity_windows FINAL WHERE org_id = 'org_legacy'")
        .await;
    ns.sql(&format!(
        "INSERT INTO integrity_leaves SELECT org_id, seq, toUInt32(n - 1), digest_hash, leaf, id, at, sealed_at \
         FROM integrity_windows FINAL ARRAY JOIN leaves AS leaf, ids AS id, occurred AS at, arrayEnumerate(leaves) AS n \
         WHERE org_id = 'org_legacy' AND seq <= {sealed}"
    ))
    .await;
    mutate(format!(
        "ALTER TABLE integrity_windows DELETE WHERE org_id = 'org_legacy' AND seq <= {sealed}"
    ))
    .await;
    let legacy = intact(&gateway_service, "org_legacy").await;
    assert!(legacy["leaves"].as_u64().unwrap() >= 20, "{legacy}");
    let legacy_event = &ids["org_legacy"][5];
    let (status, proof) = get(
        &gateway_service,
        "org_legacy",
        &format!("/v1/orgs/org_legacy/integrity/proof/{legacy_event}"),
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(
        ns.sql_u64(&format!(
            "SELECT count() FROM integrity_leaves WHERE org_id = 'org_legacy' AND id = '{legacy_event}'"
        ))
        .await,
        1,
        "the proof was built from the legacy rows"
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
