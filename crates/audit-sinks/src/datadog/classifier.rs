//! Datadog intake responses → verdicts (PROTOCOLS.md).

use crate::Verdict;

pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        // Bad payload: some log in the batch is refused; never resend it as it is.
        400 => Verdict::PoisonSomewhere,
        413 => Verdict::TooLarge,
        408 | 429 | 500..=599 => Verdict::Retriable,
        // 401 missing key, 403 invalid key, 404 wrong URL, 3xx (never followed).
        300..=499 => Verdict::Misconfigured,
        _ => Verdict::Retriable,
    }
}
