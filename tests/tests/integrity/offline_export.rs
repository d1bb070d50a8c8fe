//! Offline verification of an export with the standalone verifier (`audit-verify`): intact as
//! served, and a flipped byte, a removed line or an added line named with the event.

use std::collections::HashSet;

use audit_tests::events::Gateway;
use audit_tests::{Namespace, Service, ServiceKind, user_token};
use serde_json::Value;

use crate::common::{GATEWAY, INDEXER, intact, publish};

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
    // Verifying is recorded in the log (`audit_log.viewed`): wait for that event's window too.
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
    let exported: HashSet<String> = lines
        .iter()
        .map(|line| {
            serde_json::from_slice::<Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        ids.iter().all(|id| exported.contains(id)),
        "the export holds every event"
    );

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
