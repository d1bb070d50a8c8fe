//! Background readiness probe: every few seconds, ask the broker for the topic's metadata.

use std::time::Duration;

use audit_runtime::Readiness;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;

/// Spawns a task that keeps `readiness[component]` in step with the broker's answers.
pub fn spawn_kafka_probe(
    kafka: &KafkaConfig,
    topic: &str,
    readiness: Readiness,
    component: &'static str,
    shutdown: CancellationToken,
) -> crate::Result<tokio::task::JoinHandle<()>> {
    let client: BaseConsumer = kafka.client_config("audit-readiness-probe").create()?;
    let client = std::sync::Arc::new(client);
    let topic = topic.to_string();
    Ok(tokio::spawn(async move {
        loop {
            let probe_client = client.clone();
            let probe_topic = topic.clone();
            let answer = tokio::task::spawn_blocking(move || {
                probe_client
                    .fetch_metadata(Some(&probe_topic), Duration::from_secs(3))
                    .map(|metadata| {
                        metadata
                            .topics()
                            .first()
                            .map(|t| (t.partitions().len(), t.error()))
                            .unwrap_or((0, None))
                    })
            })
            .await;
            match answer {
                Ok(Ok((partitions, None))) if partitions > 0 => readiness.set(
                    component,
                    true,
                    format!("topic {topic}: {partitions} partitions"),
                ),
                Ok(Ok((_, error))) => readiness.set(
                    component,
                    false,
                    format!("topic {topic} not available: {error:?}"),
                ),
                Ok(Err(error)) => readiness.set(component, false, error.to_string()),
                Err(join_error) => readiness.set(component, false, join_error.to_string()),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }))
}
