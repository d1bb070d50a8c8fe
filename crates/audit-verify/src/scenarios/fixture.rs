//! A small chain signed with the document's test key, its export, and helpers to verify
//! them. The notes are written here from the document's format, not by the parser under test.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use time::macros::datetime;

use crate::bundle::{Bundle, SignedDigest};
use crate::export::ExportLine;
use crate::keys::KeyRing;
use crate::merkle::{Hash, leaf_hash, root, to_hex};
use crate::note::digest_hash;
use crate::report::{Kind, Report};
use crate::verify::{Options, Verification};

pub(super) const ORG: &str = "org_acme";

pub(super) fn test_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|index| index as u8 + 1))
}

pub(super) fn rogue_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub(super) fn keys() -> KeyRing {
    let public = STANDARD.encode(test_key().verifying_key().as_bytes());
    let json = json!({"keys": [{"key_id": "test", "algorithm": "ed25519", "public_key": public}]});
    KeyRing::from_json(json.to_string().as_bytes()).unwrap()
}

pub(super) fn event(number: u32, occurred_at: &str) -> String {
    format!(
        r#"{{"id":"evt-{number:04}","org_id":"{ORG}","occurred_at":"{occurred_at}","category":"authentication","action":"user.login.succeeded","outcome":"success","actor":{{"type":"user","id":"u_{number}"}}}}"#
    )
}

/// One window to seal.
pub(super) struct Spec {
    pub(super) events: Vec<String>,
    pub(super) sealed_at: &'static str,
    pub(super) retention_days: u32,
}

/// A signed chain as a bundle (JSON, to tamper with) and the export of its events.
#[derive(Clone)]
pub(super) struct Chain {
    pub(super) bundle: Value,
    pub(super) export: Vec<String>,
}

impl Chain {
    pub(super) fn windows(&mut self) -> &mut Vec<Value> {
        self.bundle["windows"].as_array_mut().unwrap()
    }

    pub(super) fn digest(&self, window: usize) -> Value {
        self.bundle["windows"][window]["digest"].clone()
    }

    pub(super) fn remove_lines_of(&mut self, ids: &[&str]) {
        self.export
            .retain(|line| !ids.iter().any(|id| line.contains(id)));
    }
}

pub(super) fn note(seq: usize, spec: &Spec, offset: usize, prev: &Hash) -> String {
    let leaves: Vec<Hash> = spec
        .events
        .iter()
        .map(|event| leaf_hash(event.as_bytes()))
        .collect();
    format!(
        "solarius-audit-digest/v1\norg: {ORG}\nseq: {seq}\npartition: 3\noffsets: {offset} {end}\n\
         sealed_at: {sealed_at}\ncount: {count}\nroot: {root}\nprev: {prev}\nretention_days: {days}\n",
        end = offset + leaves.len(),
        sealed_at = spec.sealed_at,
        count = leaves.len(),
        root = to_hex(&root(&leaves)),
        prev = to_hex(prev),
        days = spec.retention_days,
    )
}

pub(super) fn signed(seq: usize, note: &str, key: &SigningKey, key_id: &str) -> Value {
    json!({
        "org_id": ORG, "seq": seq, "note": note, "key_id": key_id,
        "signature": STANDARD.encode(key.sign(note.as_bytes()).to_bytes()),
        "hash": to_hex(&digest_hash(note.as_bytes())),
    })
}

pub(super) fn chain(specs: &[Spec]) -> Chain {
    let mut prev = [0u8; 32];
    let mut offset = 1200;
    let mut windows = Vec::new();
    let mut export = Vec::new();
    for (seq, spec) in specs.iter().enumerate() {
        let note = note(seq, spec, offset, &prev);
        let leaves: Vec<Value> = spec
            .events
            .iter()
            .map(|event| {
                let fields: Value = serde_json::from_str(event).unwrap();
                json!({"leaf": to_hex(&leaf_hash(event.as_bytes())),
                       "id": fields["id"], "occurred_at": fields["occurred_at"]})
            })
            .collect();
        windows.push(json!({"digest": signed(seq, &note, &test_key(), "test"), "leaves": leaves}));
        prev = digest_hash(note.as_bytes());
        offset += spec.events.len();
        export.extend(spec.events.iter().cloned());
    }
    let bundle = json!({
        "format": "solarius-audit-integrity-bundle/v1", "org_id": ORG,
        "since": "2026-10-01T00:00:00.000Z", "until": "2026-12-03T00:00:00.000Z",
        "generated_at": "2026-12-02T10:17:00.000Z", "windows": windows,
    });
    Chain { bundle, export }
}

/// Three windows of five minutes: three events, two events, none.
pub(super) fn specs(retention_days: u32) -> Vec<Spec> {
    vec![
        Spec {
            events: vec![
                event(1, "2026-12-02T10:00:00.000Z"),
                event(2, "2026-12-02T10:01:00.000Z"),
                event(3, "2026-12-02T10:02:00.000Z"),
            ],
            sealed_at: "2026-12-02T10:05:00.000Z",
            retention_days,
        },
        Spec {
            events: vec![
                event(4, "2026-12-02T10:06:00.000Z"),
                event(5, "2026-12-02T10:07:00.000Z"),
            ],
            sealed_at: "2026-12-02T10:10:00.000Z",
            retention_days,
        },
        Spec {
            events: vec![],
            sealed_at: "2026-12-02T10:15:00.000Z",
            retention_days,
        },
    ]
}

pub(super) fn standard() -> Chain {
    chain(&specs(90))
}

pub(super) fn verify(chain: &Chain) -> Report {
    verify_with(chain, None, 100)
}

pub(super) fn verify_with(chain: &Chain, head: Option<&Value>, max_findings: usize) -> Report {
    let bundle = Bundle::from_json(chain.bundle.to_string().as_bytes()).unwrap();
    let head: Option<SignedDigest> = head.map(|head| serde_json::from_value(head.clone()).unwrap());
    let options = Options {
        now: datetime!(2026-12-02 12:00 UTC),
        window_length: None,
        max_findings,
    };
    let mut verification = Verification::new(bundle, &keys(), head.as_ref(), &options);
    for (index, line) in chain.export.iter().enumerate() {
        verification.check_line(&ExportLine::from_bytes(index as u64 + 1, line.as_bytes()));
    }
    verification.finish()
}

/// (kind, seq, event id, line) of a finding.
pub(super) type Summary<'a> = (Kind, Option<u64>, Option<&'a str>, Option<u64>);

/// (kind, seq) of every finding, for findings about windows.
pub(super) fn window_findings(report: &Report) -> Vec<(Kind, Option<u64>)> {
    let findings = report.findings.iter();
    findings
        .map(|finding| (finding.kind, finding.seq))
        .collect()
}

pub(super) fn findings(report: &Report) -> Vec<Summary<'_>> {
    report
        .findings
        .iter()
        .map(|finding| {
            let id = finding.event_id.as_deref();
            (finding.kind, finding.seq, id, finding.line)
        })
        .collect()
}
