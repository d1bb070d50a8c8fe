//! Digests delivered to the SIEM of an organization that asks for them, verifiable there with
//! the published key; none to a destination that did not ask.

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::Gateway;
use audit_tests::{Namespace, Service, ServiceKind, eventually};
use serde_json::Value;

use crate::common::{GATEWAY, INDEXER, get, publish};

/// Digests reach the SIEM of an organization that asks for them (`filters.integrity_digests`),
/// as `audit_log.integrity.sealed` events whose signed note verifies under the published key
/// and whose seqs follow one another; a destination that did not ask gets none of them.
#[tokio::test(flavor = "multi_thread")]
async fn digests_reach_the_siem_of_organizations_that_ask_for_them() {
    use audit_tests::fakes::webhook::{FakeWebhook, WebhookSetup};
    use audit_tests::fakes::{Fake, SIGNING_SECRET};

    let ns = Namespace::new("integrity-siem");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &INDEXER).await;
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &GATEWAY).await;
    let gateway = Gateway::new(&gateway_service.url());
    let key = gateway.producer_key("tests", &["*"], None).await;
    let wants = FakeWebhook::start(WebhookSetup::default()).await;
    let plain = FakeWebhook::start(WebhookSetup::default()).await;
    for (org, receiver, digests) in [("org_holds", &wants, true), ("org_plain", &plain, false)] {
        gateway.enterprise(org).await;
        let (status, body) = gateway
            .admin_post(
                &format!("/v1/admin/orgs/{org}/destinations"),
                &serde_json::json!({"name": "SOC", "signing_secret": SIGNING_SECRET,
                    "filters": {"integrity_digests": digests},
                    "config": {"type": "webhook", "url": format!("{}/audit", receiver.url())}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["filters"]["integrity_digests"], digests, "{body}");
    }
    let _forwarder = Service::start(
        ServiceKind::Forwarder,
        &ns,
        &[("FORWARDER__DELIVERY__LINGER_MS", "50")],
    )
    .await;
    let held = publish(&gateway, &key, "org_holds", 10).await;
    let plain_ids = publish(&gateway, &key, "org_plain", 10).await;

    let sealed_items = |receiver: &FakeWebhook| -> Vec<Value> {
        receiver
            .core()
            .received()
            .into_iter()
            .filter_map(|event| event.item)
            .filter(|item| item["action"] == "audit_log.integrity.sealed")
            .collect()
    };
    let digests = eventually(
        "three digests at the SIEM that asked",
        Duration::from_secs(60),
        || async {
            let items = sealed_items(&wants);
            (items.len() >= 3).then_some(items)
        },
    )
    .await;
    let (status, keys) = get(&gateway_service, "org_holds", "/v1/integrity/keys").await;
    assert_eq!(status, 200, "{keys}");
    let entries: Vec<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{}:{}",
                k["key_id"].as_str().unwrap(),
                k["public_key"].as_str().unwrap()
            )
        })
        .collect();
    let public = audit_integrity::PublicKeys::parse(&entries).unwrap();
    let mut seqs = Vec::new();
    for item in &digests {
        assert_eq!(item["org_id"], "org_holds");
        assert_eq!(item["provenance"], "system", "{item}");
        let metadata = &item["metadata"];
        let signed = audit_integrity::SignedDigest {
            org_id: "org_holds".into(),
            seq: metadata["seq"].as_str().unwrap().parse().unwrap(),
            note: metadata["note"].as_str().unwrap().into(),
            key_id: metadata["key_id"].as_str().unwrap().into(),
            signature: metadata["signature"].as_str().unwrap().into(),
            hash: metadata["hash"].as_str().unwrap().into(),
        };
        let note = signed.verify(&public).unwrap();
        assert_eq!(note.org_id, "org_holds");
        seqs.push(note.seq);
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert!(
        seqs.windows(2).any(|pair| pair[1] == pair[0] + 1),
        "consecutive windows reach the SIEM: {seqs:?}"
    );
    // Both organizations' own events arrive; the one that did not ask gets no digest.
    eventually(
        "every event at both SIEMs",
        Duration::from_secs(60),
        || async {
            let got_held: HashSet<String> = wants.core().received_ids().into_iter().collect();
            let got_plain: HashSet<String> = plain.core().received_ids().into_iter().collect();
            (held.iter().all(|id| got_held.contains(id))
                && plain_ids.iter().all(|id| got_plain.contains(id)))
            .then_some(())
        },
    )
    .await;
    assert!(
        sealed_items(&plain).is_empty(),
        "no digest at the SIEM that did not ask"
    );
}
