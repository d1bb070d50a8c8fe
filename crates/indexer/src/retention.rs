//! Keeps stored rows' retention equal to what the settings say, so ClickHouse's TTL removes
//! each row exactly when its organization's plan says.
//!
//! New rows are stamped at indexing time. Stored rows are reconciled: after every settings
//! change (once the batches decoded with the old value are written) and periodically, the
//! reconciler compares `retention_days` per organization in ClickHouse with the settings and
//! issues an `ALTER TABLE … UPDATE retention_days` mutation for each mismatch. The mutation
//! rewrites the rows and with them their TTL: extending keeps old rows, shortening drops them.
//! Its progress is visible in `system.mutations` (and on the operator API). Several indexers
//! may reconcile at once: a mutation already running for the same target is not repeated, and
//! a repeated one finds nothing to change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use audit_settings::{PlansConfig, SettingsStore, SettingsView};
use audit_store::Store;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

pub struct RetentionReconciler {
    pub store: Store,
    pub settings: SettingsStore,
    pub plans: PlansConfig,
    pub shared: Arc<Shared>,
    pub interval: Duration,
}

impl RetentionReconciler {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.settings.subscribe();
        let mut desired = self.desired(&self.settings.view());
        let mut next_full = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next_full) => {
                    self.reconcile_logged().await;
                    next_full = tokio::time::Instant::now() + self.interval;
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Let a burst of changes settle, then see whether any retention moved.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let now = self.desired(&changes.borrow_and_update().clone());
                    if now == desired {
                        continue;
                    }
                    desired = now;
                    self.wait_for_batches_decoded_before_now().await;
                    self.reconcile_logged().await;
                }
            }
        }
    }

    /// Desired retention of every organization with a settings record.
    fn desired(&self, view: &SettingsView) -> HashMap<String, u16> {
        view.orgs
            .iter()
            .map(|(org, settings)| (org.clone(), self.plans.retention_days(Some(settings))))
            .collect()
    }

    /// Rows decoded before the change carry the old value; wait until their batches are
    /// settled (written, or abandoned and decoded again) so the mutation covers them.
    async fn wait_for_batches_decoded_before_now(&self) {
        // The consumer picks up the change at its next message.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let target = self.shared.batches_started.load(Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.shared.batches_finished.load(Ordering::SeqCst) < target
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn reconcile_logged(&self) {
        match self.reconcile().await {
            Ok(0) => {}
            Ok(mutations) => tracing::info!(mutations, "retention reconciled"),
            Err(error) => tracing::warn!(%error, "retention reconciliation failed; will retry"),
        }
    }

    /// Issues a mutation for every organization whose stored rows carry another retention.
    pub async fn reconcile(&self) -> audit_store::Result<usize> {
        let view = self.settings.view();
        let classes = self.store.retention_classes().await?;
        let mut issued = 0;
        let mut seen = std::collections::HashSet::new();
        for class in classes {
            let want = self
                .plans
                .retention_days(view.org(&class.org_id).map(|o| o.as_ref()));
            metrics::gauge!("indexer_stored_rows", "org_id" => class.org_id.clone(), "retention_days" => class.retention_days.to_string())
                .set(class.rows as f64);
            if class.retention_days == want || !seen.insert(class.org_id.clone()) {
                continue;
            }
            if self
                .store
                .retention_mutation_running(&class.org_id, want)
                .await?
            {
                continue;
            }
            tracing::info!(org_id = %class.org_id, from = class.retention_days, to = want, rows = class.rows, "applying retention to stored rows");
            self.store.apply_retention(&class.org_id, want).await?;
            metrics::counter!("indexer_retention_mutations_total").increment(1);
            issued += 1;
        }
        Ok(issued)
    }
}
