//! Every destination this process has seen, by destination id: the lanes of both consumers
//! share one [`DestinationShared`] per destination through it, and the health loop and the
//! ops API walk it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::state::{DestinationShared, HealthSnapshot};

/// Every destination this process has seen, by destination id.
#[derive(Debug, Default)]
pub struct Registry {
    destinations: Mutex<HashMap<String, Arc<DestinationShared>>>,
}

impl Registry {
    pub fn get(&self, org_id: &str, destination_id: &str) -> Arc<DestinationShared> {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(destination_id.to_string())
            .or_insert_with(|| Arc::new(DestinationShared::new(org_id, destination_id)))
            .clone()
    }

    pub fn all(&self) -> Vec<Arc<DestinationShared>> {
        let map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }

    pub fn find(&self, destination_id: &str) -> Option<Arc<DestinationShared>> {
        let map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        map.get(destination_id).cloned()
    }

    pub fn snapshots(&self) -> Vec<HealthSnapshot> {
        let mut snapshots: Vec<HealthSnapshot> =
            self.all().iter().map(|shared| shared.snapshot()).collect();
        snapshots.sort_by(|a, b| {
            (a.org_id.as_str(), a.destination_id.as_str())
                .cmp(&(b.org_id.as_str(), b.destination_id.as_str()))
        });
        snapshots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_state_per_destination_and_sorted_snapshots() {
        let registry = Registry::default();
        let first = registry.get("org_b", "dst_2");
        let again = registry.get("org_b", "dst_2");
        assert!(Arc::ptr_eq(&first, &again), "the lanes share one state");
        registry.get("org_a", "dst_1");
        assert!(registry.find("dst_3").is_none());
        let order: Vec<_> = registry
            .snapshots()
            .into_iter()
            .map(|snapshot| (snapshot.org_id, snapshot.destination_id))
            .collect();
        assert_eq!(
            order,
            vec![
                ("org_a".to_string(), "dst_1".to_string()),
                ("org_b".to_string(), "dst_2".to_string())
            ]
        );
    }
}
