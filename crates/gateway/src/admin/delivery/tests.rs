#![allow(clippy::unwrap_used)]

use super::*;
use audit_settings::{Destination, Filters};
use time::OffsetDateTime;

fn destination(state: DestinationState) -> Destination {
    Destination {
        id: "dst_1".into(),
        name: "SOC".into(),
        enabled: true,
        state,
        filters: Filters::default(),
        signing_secrets: vec![],
        config: serde_json::from_value(
            serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"}),
        )
        .unwrap(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        format: Default::default(),
    }
}

fn report(instance: &str, state: &str, failures: u64, backlog: u64, at: i64) -> DestinationHealth {
    let at = OffsetDateTime::from_unix_timestamp(at).expect("time");
    DestinationHealth {
        org_id: "org_a".into(),
        destination_id: "dst_1".into(),
        instance: instance.into(),
        state: state.into(),
        last_success_at: Some(at),
        last_failure_at: (failures > 0).then_some(at),
        last_failure_status: (failures > 0).then(|| format!("503 from {instance}")),
        last_failure_excerpt: None,
        consecutive_failures: failures,
        backlog,
        delivered_total: 10,
        dead_lettered_total: 1,
        updated_at: at,
        expires_at: None,
    }
}

#[test]
fn aggregates_the_worst_state_latest_failure_and_sums() {
    let a = report("fwd-a", "healthy", 0, 5, 1_700_000_000);
    let b = report("fwd-b", "retrying", 3, 7, 1_700_000_100);
    let view = aggregate(&destination(DestinationState::Active), &[&a, &b]);
    assert_eq!(view["state"], "retrying");
    assert_eq!(view["backlog"], 12);
    assert_eq!(view["delivered_total"], 20);
    assert_eq!(view["consecutive_failures"], 3);
    assert_eq!(view["last_failure"]["status"], "503 from fwd-b");
    assert_eq!(view["instances"].as_array().map(Vec::len), Some(2));

    let paused = aggregate(
        &destination(DestinationState::Paused {
            since: OffsetDateTime::UNIX_EPOCH,
            reason: "HEC code 4".into(),
        }),
        &[&a],
    );
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["paused"]["reason"], "HEC code 4");
    assert_eq!(
        aggregate(&destination(DestinationState::Active), &[])["state"],
        "unknown"
    );
}
