//! Wazuh responses → verdicts (PROTOCOLS.md).

use serde::Deserialize;

use crate::Verdict;
use crate::response::Answer;

#[derive(Debug, Default, Deserialize)]
struct Reply {
    #[serde(default)]
    data: Option<ReplyData>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ReplyData {
    #[serde(default)]
    total_failed_items: u64,
    #[serde(default)]
    failed_items: Vec<FailedItem>,
}

#[derive(Debug, Default, Deserialize)]
struct FailedItem {
    /// The failed events themselves (Wazuh reports an event by its content).
    #[serde(default)]
    id: Vec<serde_json::Value>,
}

/// [`classify`] for an answer read within bounds: a 2xx cut at the read limit cannot say
/// which events failed, so all of them are resent (receivers deduplicate on the event ids).
pub fn classify_answer(answer: &Answer, parts: &[&[u8]]) -> Verdict {
    if !answer.complete && (200..300).contains(&answer.status) {
        return Verdict::Partial {
            failed: (0..parts.len()).collect(),
        };
    }
    classify(answer.status, answer.body(), parts)
}

/// `parts` are the encoded events of the request, to find the failed ones by content.
pub fn classify(status: u16, body: &[u8], parts: &[&[u8]]) -> Verdict {
    let reply: Reply = serde_json::from_slice(body).unwrap_or_default();
    match status {
        200..=299 => partial_failures(&reply, parts),
        400 => {
            let detail = reply.detail.unwrap_or_default().to_ascii_lowercase();
            if detail.contains("bulk size") {
                Verdict::TooLarge
            } else {
                Verdict::PoisonSomewhere
            }
        }
        413 => Verdict::TooLarge,
        408 | 429 | 500..=599 => Verdict::Retriable,
        // 401 (after a fresh login), 403 RBAC, 404/405 wrong URL, 3xx never followed.
        300..=499 => Verdict::Misconfigured,
        _ => Verdict::Retriable,
    }
}

fn partial_failures(reply: &Reply, parts: &[&[u8]]) -> Verdict {
    let Some(data) = &reply.data else {
        return Verdict::Delivered;
    };
    if data.total_failed_items == 0 && data.failed_items.is_empty() {
        return Verdict::Delivered;
    }
    let failed_texts: Vec<&str> = data
        .failed_items
        .iter()
        .flat_map(|item| item.id.iter())
        .filter_map(serde_json::Value::as_str)
        .collect();
    let failed: Vec<usize> = parts
        .iter()
        .enumerate()
        .filter(|(_, part)| {
            serde_json::from_slice::<String>(part)
                .is_ok_and(|text| failed_texts.contains(&text.as_str()))
        })
        .map(|(index, _)| index)
        .collect();
    if failed.is_empty() {
        // The manager reported failures we cannot match: retry the whole batch (receivers
        // deduplicate on the event ids).
        return Verdict::Partial {
            failed: (0..parts.len()).collect(),
        };
    }
    Verdict::Partial { failed }
}
