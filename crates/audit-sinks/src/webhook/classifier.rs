//! Webhook responses → verdicts (Standard Webhooks delivery guidance).

use crate::Verdict;

pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        400 | 422 => Verdict::PoisonSomewhere,
        413 => Verdict::TooLarge,
        408 | 409 | 425 | 429 | 500..=599 => Verdict::Retriable,
        // 3xx (never followed), 401, 403, 404, 405, 410 (disable the endpoint), …
        300..=499 => Verdict::Misconfigured,
        _ => Verdict::Retriable,
    }
}
