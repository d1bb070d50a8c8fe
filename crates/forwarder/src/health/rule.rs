//! When a destination is due to be paused: the pure rule the destination's state asks
//! ([`pause_due`]), apart from the write ([`super::pause`]) so that the state does not depend
//! on Kafka.

use std::time::Duration;

/// A pause the forwarder wants recorded in the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseRequest {
    pub reason: String,
    pub last_status: Option<String>,
}

/// What a destination's state says about pausing it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PauseFacts<'a> {
    /// A pause asked for (misconfigured) and not recorded yet.
    pub requested: Option<&'a PauseRequest>,
    /// Paused already (in the settings, or locally).
    pub paused: bool,
    /// How long the destination has failed without a success in between.
    pub failing_for: Option<Duration>,
    pub last_status: Option<&'a str>,
}

/// The pause to write, if one is due: the one asked for, else one for a failure streak of
/// at least `pause_after` (unless already paused).
pub(crate) fn pause_due(facts: &PauseFacts<'_>, pause_after: Duration) -> Option<PauseRequest> {
    if let Some(request) = facts.requested {
        return Some(request.clone());
    }
    if facts.paused {
        return None;
    }
    let failing_for = facts.failing_for?;
    (failing_for >= pause_after).then(|| PauseRequest {
        reason: format!(
            "failing continuously for {} s (last status {})",
            failing_for.as_secs(),
            facts.last_status.unwrap_or("unknown")
        ),
        last_status: facts.last_status.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn facts(failing_for: Option<Duration>) -> PauseFacts<'static> {
        PauseFacts {
            requested: None,
            paused: false,
            failing_for,
            last_status: Some("503"),
        }
    }

    #[test]
    fn a_pause_is_due_when_asked_for_or_after_a_long_failure_streak() {
        let minute = Duration::from_secs(60);
        assert_eq!(pause_due(&facts(None), minute), None, "not failing");
        assert_eq!(
            pause_due(&facts(Some(Duration::from_secs(59))), minute),
            None,
            "not for long enough"
        );
        let due = pause_due(&facts(Some(Duration::from_millis(61_500))), minute).unwrap();
        assert_eq!(
            due.reason,
            "failing continuously for 61 s (last status 503)"
        );
        assert_eq!(due.last_status.as_deref(), Some("503"));
        let unknown = PauseFacts {
            last_status: None,
            ..facts(Some(minute))
        };
        assert_eq!(
            pause_due(&unknown, minute).unwrap().reason,
            "failing continuously for 60 s (last status unknown)"
        );
        let paused = PauseFacts {
            paused: true,
            ..facts(Some(minute))
        };
        assert_eq!(pause_due(&paused, minute), None, "paused already");

        let asked = PauseRequest {
            reason: "misconfigured: HTTP 403 bad token".into(),
            last_status: Some("403".into()),
        };
        let requested = PauseFacts {
            requested: Some(&asked),
            paused: true,
            ..facts(None)
        };
        assert_eq!(pause_due(&requested, minute), Some(asked.clone()));
    }
}
