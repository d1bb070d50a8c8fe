//! Turns librdkafka's periodic statistics into Prometheus gauges (consumer lag per partition,
//! producer queue depth) without any extra broker round trip.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;

/// Turns on librdkafka statistics; only for clients created with a [`StatsContext`] (or a
/// context that forwards to it), since the default context would log them.
pub fn enable_statistics(config: &mut ClientConfig) {
    config.set("statistics.interval.ms", "5000");
}

/// A client context that exports lag and queue metrics. Services wrap or reuse it.
#[derive(Debug, Clone, Default)]
pub struct StatsContext {
    /// Label for the metrics, e.g. the consumer group.
    pub role: &'static str,
}

impl StatsContext {
    pub fn new(role: &'static str) -> Self {
        Self { role }
    }

    pub fn record(&self, statistics: &Statistics) {
        record_statistics(self.role, statistics);
    }
}

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        self.record(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(self.role, &error, reason);
    }
}

/// Logs a client-level error; end-of-partition notices are expected, not errors.
pub fn log_client_error(role: &str, error: &KafkaError, reason: &str) {
    let end_of_partition = matches!(
        error,
        KafkaError::PartitionEOF(_)
            | KafkaError::Global(rdkafka::error::RDKafkaErrorCode::PartitionEOF)
    );
    if end_of_partition {
        tracing::debug!(role, reason, "end of partition");
        return;
    }
    metrics::counter!("kafka_client_errors_total", "role" => role.to_string()).increment(1);
    tracing::warn!(role, %error, reason, "kafka client error");
}

impl ConsumerContext for StatsContext {}

/// Exports `kafka_consumer_lag{role,topic,partition}` and the producer queue gauges.
pub fn record_statistics(role: &'static str, statistics: &Statistics) {
    metrics::gauge!("kafka_producer_queue_messages", "role" => role).set(statistics.msg_cnt as f64);
    metrics::gauge!("kafka_producer_queue_bytes", "role" => role).set(statistics.msg_size as f64);
    for (topic_name, topic) in &statistics.topics {
        for (partition_id, partition) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; lag -1 means unknown.
            if *partition_id < 0 || partition.consumer_lag < 0 {
                continue;
            }
            metrics::gauge!(
                "kafka_consumer_lag",
                "role" => role,
                "topic" => topic_name.clone(),
                "partition" => partition_id.to_string()
            )
            .set(partition.consumer_lag as f64);
        }
    }
}
