//! The writer's side of tamper evidence: it closes the windows of the owned partitions on a
//! timer (or early, under a backlog), lets the seal store and publish them while writing goes
//! on, and commits offsets only up to the sealed boundaries (see [`crate::sealer`]).

use rdkafka::consumer::CommitMode;
use tokio::task::JoinHandle;

use super::Writer;
use crate::sealer::SealOutcome;

/// The seal storing and publishing its windows while the writer goes on.
pub(super) type Sealing = Option<JoinHandle<SealOutcome>>;

impl Writer {
    /// Closes the windows of every owned partition and starts storing and publishing them.
    pub(super) async fn begin_seal(&self) -> Sealing {
        let sealer = self.sealer.as_ref()?;
        let job = sealer.lock().await.begin(time::OffsetDateTime::now_utc());
        Some(tokio::spawn(job.run()))
    }

    /// A seal ended: moves the boundaries and commits offsets up to them.
    pub(super) async fn sealed(
        &self,
        outcome: Result<SealOutcome, tokio::task::JoinError>,
        mode: CommitMode,
    ) {
        let Some(sealer) = &self.sealer else {
            return;
        };
        let mut sealer = sealer.lock().await;
        let sealed = match outcome {
            Ok(outcome) => sealer.finish(outcome),
            Err(error) => {
                tracing::error!(%error, "the sealing task failed; its windows are sealed again by the next seal");
                sealer.abandon();
                return;
            }
        };
        drop(sealer);
        self.commit_sealed(&sealed, mode);
    }

    /// Commits offsets up to the new boundaries.
    pub(super) fn commit_sealed(&self, sealed: &[(i32, i64)], mode: CommitMode) {
        if sealed.is_empty() {
            return;
        }
        let offsets = self.shared.tracker.to_commit();
        audit_kafka::consumer::commit(&self.consumer, &self.shared.topic, &offsets, mode);
    }
}

/// The outcome of the seal in flight; pending forever when there is none.
pub(super) async fn in_flight(
    sealing: &mut Sealing,
) -> Result<SealOutcome, tokio::task::JoinError> {
    match sealing {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
