//! `bench indexer`: freshness through a crash. The indexer is SIGKILLed a third into a steady
//! 5,000 events/s run and started again at once; the tail of the freshness distribution is
//! how long the partitions it held waited. Run with the default (dynamic) group membership,
//! where the dead member's partitions wait for its session to expire, and with static
//! membership (`[consumer.tuning] group_instance_id`), where the restarted instance takes them
//! back under its name.

use std::time::{Duration, Instant};

use loadgen::{BenchRow, freshness};

use crate::indexer::{freshness_target, warm_up_indexer};
use crate::{Bench, Namespace};

/// One crash run; `static_member` names the indexer instance.
pub(crate) async fn crash_freshness(bench: &mut Bench, static_member: bool) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "crash");
    let instance = format!("{}-indexer-0", ns.id);
    let extra: Vec<(&str, &str)> = if static_member {
        vec![("INDEXER__CONSUMER__TUNING__GROUP_INSTANCE_ID", &instance)]
    } else {
        Vec::new()
    };
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let indexer = bench.start(&ns, "indexer", &extra).await?;
    let key = bench.producer_key(&gateway).await?;
    let url = format!("{}/v1/events", gateway.url());
    warm_up_indexer(bench, &ns, &url, &key).await?;
    let duration = Duration::from_secs(bench.cli.seconds.max(30));
    let target = freshness_target(bench, &ns, url, key);
    let run = tokio::spawn(async move { freshness::measure(&target, duration).await });
    tokio::time::sleep(duration / 3).await;
    // Dropping the service SIGKILLs it: no drain, no commit, no leaving the group.
    drop(indexer);
    let killed = Instant::now();
    let restarted = bench.start(&ns, "indexer", &extra).await?;
    let back = killed.elapsed();
    let measured = run.await?;
    let latencies = &measured.latencies;
    let membership = if static_member {
        "static membership (group_instance_id)"
    } else {
        "dynamic membership (default)"
    };
    bench.rows.push(BenchRow {
        name: format!("freshness through an indexer SIGKILL + restart, {membership}"),
        throughput: format!(
            "{:.0} events/s offered",
            measured.offered as f64 / duration.as_secs_f64()
        ),
        p50_ms: Some(latencies.percentile_ms(50.0)),
        p99_ms: Some(latencies.percentile_ms(99.0)),
        peak_rss_mb: None,
        notes: format!(
            "**max {:.0} ms**; killed {:.0?} into a {duration:.0?} run, restarted and ready {back:.1?} later; {} sampled events, {} not seen; session timeout {} ms{}",
            latencies.percentile_ms(100.0),
            duration / 3,
            latencies.count(),
            measured.unseen,
            audit_kafka::ConsumerTuning::default().session_timeout_ms,
            measured.probe_errors.describe(),
        ),
    });
    drop(restarted);
    drop(gateway);
    Ok(())
}
