//! The receivers' protocols: throttling, token expiry, oversized batches, partial failures, indexer acknowledgements.

use std::time::Duration;

use audit_tests::events::Gateway;
use audit_tests::fakes::datadog::DatadogSetup;
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::wazuh::WazuhSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeDatadog, FakeHec, FakeWazuh, FakeWebhook, Injected};
use audit_tests::{Namespace, Service, ServiceKind};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn throttling_token_expiry_oversized_batches_partial_failures_and_indexer_acks_are_handled() {
    let ns = Namespace::new("fwd-limits");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    // 429 with Retry-After, twice.
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    hook.fail_next([
        Injected::new(429, r#"{"error":"slow down"}"#).retry_after(1),
        Injected::new(429, r#"{"error":"slow down"}"#).retry_after(1),
    ]);
    // Tokens that expire every 3 s; a rate limit the destination's pacing must respect.
    let wazuh = FakeWazuh::start(WazuhSetup {
        token_lifetime: Duration::from_secs(3),
        requests_per_minute: 240,
        ..WazuhSetup::default()
    })
    .await;
    // An intake that refuses payloads over 20 kB: the forwarder's 5 MB batches must be split.
    let datadog = FakeDatadog::start(DatadogSetup {
        max_request_bytes: 20_000,
        ..DatadogSetup::default()
    })
    .await;
    // "Delivered" means "indexed".
    let hec = FakeHec::start(HecSetup {
        indexer_ack: true,
        ack_delay: Duration::from_millis(300),
        ..HecSetup::default()
    })
    .await;
    enterprise(&gateway, "org_limits").await;
    let only_auth = json!({"categories": ["authentication"]});
    destination(
        &gateway,
        "org_limits",
        "hook",
        webhook_config(&hook),
        only_auth.clone(),
    )
    .await;
    destination(
        &gateway,
        "org_limits",
        "wazuh",
        json!({"type": "wazuh", "url": wazuh.url(), "username": wazuh.username(), "password": wazuh.password(), "requests_per_minute": 120}),
        only_auth.clone(),
    )
    .await;
    destination(
        &gateway,
        "org_limits",
        "datadog",
        json!({"type": "datadog", "site": "datadoghq.eu", "url": datadog.url(), "api_key": datadog.api_key(), "ddtags": "env:test"}),
        only_auth.clone(),
    )
    .await;
    let mut hec_config = hec_config(&hec);
    hec_config["indexer_ack"] = json!(true);
    destination(&gateway, "org_limits", "splunk", hec_config, only_auth).await;
    let _forwarder = Forwarder::start(&ns, &[]).await;
    let key = gateway.producer_key("limits-tests", &["*"], None).await;

    let mut sent = Vec::new();
    for wave in 0..4 {
        let batch = events(
            "org_limits",
            &["user.login.failed", "user.mfa.enrolled"],
            120,
        );
        if wave == 1 {
            // Partial failures: Wazuh refuses these once; only they are retried.
            for event in batch.iter().take(5) {
                wazuh.flaky(event["id"].as_str().unwrap());
            }
        }
        if wave == 2 {
            // Every token issued so far stops working: the next request gets 401.
            wazuh.revoke_tokens();
        }
        sent.extend(publish(&gateway, &key, &batch).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    delivered_all(
        "every event on the hook despite 429s",
        &hook,
        &sent,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "every event in Wazuh across token expiries",
        &wazuh,
        &sent,
        Duration::from_secs(90),
    )
    .await;
    delivered_all(
        "every event in Datadog in split batches",
        &datadog,
        &sent,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "every event indexed by Splunk",
        &hec,
        &sent,
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(hook.stats().statuses.get(&429), Some(&2));
    let wazuh_stats = wazuh.stats();
    assert!(
        wazuh.logins() >= 2,
        "tokens were refreshed: {} logins",
        wazuh.logins()
    );
    assert_eq!(
        wazuh_stats.statuses.get(&429),
        None,
        "pacing keeps under the manager's limit"
    );
    assert_eq!(
        wazuh_stats.duplicates, 0,
        "partial failures resend only the failed items"
    );
    let datadog_stats = datadog.stats();
    assert!(
        datadog_stats.statuses.get(&413).is_some_and(|n| *n >= 1),
        "{datadog_stats:?}"
    );
    assert!(datadog.gzip_requests() > 0);
    let log = datadog.received()[0].item.clone().unwrap();
    assert_eq!(log["ddsource"], "solarius-audit-log");
    assert!(
        log["ddtags"]
            .as_str()
            .unwrap()
            .starts_with("env:test,org_id:org_limits")
    );
    assert!(log["timestamp"].as_i64().is_some());
    for (name, stats) in [
        ("hook", hook.stats()),
        ("wazuh", wazuh_stats),
        ("datadog", datadog_stats),
        ("hec", hec.stats()),
    ] {
        assert_eq!(stats.signature_failures, 0, "{name}");
    }
}
