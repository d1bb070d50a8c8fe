//! HEC responses → verdicts, from the HTTP status and the HEC `code` (PROTOCOLS.md).

use serde::Deserialize;

use crate::Verdict;

/// The JSON body HEC answers with.
#[derive(Debug, Default, Deserialize)]
pub struct HecReply {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub code: Option<u32>,
    #[serde(default, rename = "invalid-event-number")]
    pub invalid_event_number: Option<usize>,
    #[serde(default, rename = "ackId")]
    pub ack_id: Option<u64>,
}

pub fn parse(body: &[u8]) -> HecReply {
    serde_json::from_slice(body).unwrap_or_default()
}

/// HEC codes whose event can never be indexed as sent: 5 no data, 6 invalid data format,
/// 12 event field required, 13 event field blank.
const POISON_CODES: [u32; 4] = [5, 6, 12, 13];
/// HEC codes that only an operator can fix: 1 token disabled, 2 token required, 3 invalid
/// authorization, 4 invalid token, 7 incorrect index, 10 data channel missing, 11 invalid data
/// channel, 14 ACK disabled.
const MISCONFIGURED_CODES: [u32; 8] = [1, 2, 3, 4, 7, 10, 11, 14];
/// 8 internal server error, 9 server busy.
const RETRIABLE_CODES: [u32; 2] = [8, 9];

pub fn classify(status: u16, reply: &HecReply) -> Verdict {
    if (200..300).contains(&status) && reply.code.is_none_or(|code| code == 0) {
        return Verdict::Delivered;
    }
    if let Some(code) = reply.code {
        if POISON_CODES.contains(&code) {
            return match reply.invalid_event_number {
                Some(index) => Verdict::PoisonAt { index },
                None => Verdict::PoisonSomewhere,
            };
        }
        if MISCONFIGURED_CODES.contains(&code) {
            return Verdict::Misconfigured;
        }
        if RETRIABLE_CODES.contains(&code) {
            return Verdict::Retriable;
        }
    }
    match status {
        413 => Verdict::TooLarge,
        408 | 429 | 500..=599 => Verdict::Retriable,
        // 3xx (we never follow redirects), 401, 403, 404, 405…: the URL or credentials are wrong.
        300..=499 => Verdict::Misconfigured,
        _ => Verdict::Retriable,
    }
}
