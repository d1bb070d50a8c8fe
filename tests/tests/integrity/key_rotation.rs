//! A rotation of the signing key: new digests are signed with the new key, the old ones keep
//! verifying, and both keys are published.

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::Gateway;
use audit_tests::{Namespace, Service, ServiceKind, eventually};

use crate::common::{get, intact, publish};

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
