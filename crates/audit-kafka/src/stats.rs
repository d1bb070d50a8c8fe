//! Turns librdkafka's periodic statistics into Prometheus gauges (consumer lag per partition,
//! producer queue depth) without any extra broker round trip.

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;

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
