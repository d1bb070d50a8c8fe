//! The pipeline on real clusters: a 3-node KRaft Kafka (every topic at replication factor 3,
//! `min.insync.replicas=2`) and a ClickHouse of 2 shards (`layout = "sharded"`), started once
//! per run by `make test`. Each test breaks a node on purpose and checks the promises that
//! matter on a cluster: an acknowledged event survives the loss of the broker leading its
//! partition; a stopped shard costs neither events nor the other shard's reads; every copy
//! of an event lands on one shard, so it is returned once; retention reaches every shard.
//! The tests take the cluster in turn ([`Cluster::exclusive`]).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::cluster::Cluster;
use audit_tests::events::{Gateway, event};
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook, SIGNING_SECRET};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka, user_token};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Starts a service of `ns` configured for the cluster, with `extra` overrides.
async fn start(
    cluster: &Cluster,
    ns: &Namespace,
    kind: ServiceKind,
    extra: &[(&str, &str)],
) -> Service {
    let mut env = cluster.service_env(kind.env_prefix());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Service::start(kind, ns, &env).await
}

/// What clients were told, per event id.
#[derive(Debug, Default)]
struct Ledger {
    /// Acknowledged (gateway 202, or a Kafka ack for direct producers): id → org.
    acknowledged: HashMap<String, String>,
    /// Answered 503 with Retry-After (not acknowledged; a client retries them).
    refused: usize,
    /// Any other answer: (status, Retry-After, body). Must stay empty.
    unexpected: Vec<(u16, Option<String>, String)>,
}

/// Posts batches of `batch` events for `orgs` every `every` until `stop`, through `gateway`.
async fn gateway_load(
    gateway: String,
    key: String,
    orgs: Vec<String>,
    batch: usize,
    every: Duration,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut n = 0usize;
    let mut ticker = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let events: Vec<Value> = (0..batch)
            .map(|i| event(&orgs[(n + i) % orgs.len()], "user.login.succeeded"))
            .collect();
        n += batch;
        let answer = http
            .post(format!("{gateway}/v1/events"))
            .bearer_auth(&key)
            .json(&events)
            .send()
            .await;
        let mut ledger = ledger.lock().await;
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                ledger
                    .unexpected
                    .push((0, None, format!("no answer: {error}")));
                continue;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match status {
            202 => {
                for event in &events {
                    ledger.acknowledged.insert(
                        event["id"].as_str().unwrap().to_string(),
                        event["org_id"].as_str().unwrap().to_string(),
                    );
                }
            }
            503 if retry_after.is_some() => ledger.refused += events.len(),
            _ => {
                let body = response.text().await.unwrap_or_default();
                ledger.unexpected.push((status, retry_after, body));
            }
        }
    }
}

/// Produces one event per org every `every` straight to Kafka until `stop`.
async fn kafka_load(
    brokers: String,
    topic: String,
    orgs: Vec<String>,
    every: Duration,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let producer = kafka::producer(&brokers);
    let mut ticker = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        for org in &orgs {
            let sent = event(org, "resource.created");
            let payload = sent.to_string();
            let record = rdkafka::producer::FutureRecord::to(&topic)
                .key(org.as_str())
                .payload(&payload);
            if producer.send(record, Duration::from_secs(30)).await.is_ok() {
                ledger
                    .lock()
                    .await
                    .acknowledged
                    .insert(sent["id"].as_str().unwrap().to_string(), org.clone());
            }
        }
    }
}

/// Every stored event id with its count in query results (FINAL), through the Distributed table.
async fn stored(ns: &Namespace) -> HashMap<String, u64> {
    ns.sql("SELECT toString(id), count() FROM events FINAL GROUP BY id FORMAT TSVRaw")
        .await
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, count)| (id.to_string(), count.parse().unwrap()))
        .collect()
}

/// Waits until every acknowledged event is in query results, then checks each is there once.
async fn assert_indexed_exactly_once(ns: &Namespace, acknowledged: &HashMap<String, String>) {
    let results = eventually(
        "every acknowledged event indexed",
        Duration::from_secs(180),
        || async {
            let results = stored(ns).await;
            acknowledged
                .keys()
                .all(|id| results.contains_key(id))
                .then_some(results)
        },
    )
    .await;
    let duplicated: Vec<_> = results.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "returned more than once: {duplicated:?}"
    );
}

/// The event ids stored in `database` on one shard (physical rows, before FINAL).
async fn ids_on_shard(cluster: &Cluster, shard: u32, database: &str) -> HashSet<String> {
    cluster
        .shard_sql(
            shard,
            &format!("SELECT DISTINCT toString(id) FROM {database}.events_local FORMAT TSVRaw"),
        )
        .await
        .lines()
        .map(str::to_string)
        .collect()
}

/// Checks that every event lives on its organization's shard, and there only (physical rows).
async fn assert_each_on_its_shard(
    cluster: &Cluster,
    ns: &Namespace,
    events: &HashMap<String, String>,
) {
    let on_shard = [
        ids_on_shard(cluster, 1, &ns.database).await,
        ids_on_shard(cluster, 2, &ns.database).await,
    ];
    let mut shard_of: HashMap<&str, usize> = HashMap::new();
    for (id, org) in events {
        let shard = match shard_of.get(org.as_str()) {
            Some(shard) => *shard,
            None => {
                let shard = usize::try_from(cluster.shard_of(org).await - 1).unwrap();
                *shard_of.entry(org).or_insert(shard)
            }
        };
        assert!(
            on_shard[shard].contains(id),
            "{id} of {org} not on its shard {}",
            shard + 1
        );
        assert!(
            !on_shard[1 - shard].contains(id),
            "a copy of {id} of {org} on the other shard"
        );
    }
}

/// (partition, leader, in-sync replica count) of every partition of `topic`.
fn partition_leaders(brokers: &str, topic: &str) -> Vec<(i32, i32, usize)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| (p.id(), p.leader(), p.isr().len()))
        .collect()
}

/// Waits until every partition of `topic` has a leader and all three replicas in sync.
async fn wait_fully_replicated(brokers: &str, topic: &str) {
    eventually(
        "every partition back to 3 in-sync replicas",
        Duration::from_secs(90),
        || async {
            let partitions = partition_leaders(brokers, topic);
            (!partitions.is_empty()
                && partitions
                    .iter()
                    .all(|(_, leader, isr)| *leader > 0 && *isr == 3))
            .then_some(())
        },
    )
    .await;
}

async fn ready(service: &Service) -> bool {
    reqwest::get(format!("{}/readyz", service.ops_url()))
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_the_loss_of_the_partition_leader_and_active_controller() {
    let (cluster, _exclusive) = Cluster::exclusive().await;
    let ns = cluster.namespace("cluster-kafka");
    let webhook = FakeWebhook::start(WebhookSetup {
        record_items: false,
        ..WebhookSetup::default()
    })
    .await;
    let indexer = start(&cluster, &ns, ServiceKind::Indexer, &[]).await;
    // A short delivery timeout: while partitions have no leader, some requests are refused
    // (503) rather than answered late — both must hold up.
    let gateway = start(
        &cluster,
        &ns,
        ServiceKind::Gateway,
        &[("GATEWAY__PRODUCER__DELIVERY_TIMEOUT_MS", "4000")],
    )
    .await;
    let forwarder = start(
        &cluster,
        &ns,
        ServiceKind::Forwarder,
        &[
            ("FORWARDER__DELIVERY__LINGER_MS", "50"),
            ("FORWARDER__RETRY__INITIAL_BACKOFF_MS", "200"),
            ("FORWARDER__RETRY__MAX_BACKOFF_MS", "2000"),
        ],
    )
    .await;
    let client = Gateway::new(&gateway.url());
    let key = client.producer_key("cluster-load", &["*"], None).await;
    let orgs: Vec<String> = (0..6).map(|n| format!("org_kafka_{n}")).collect();
    for org in &orgs {
        let (status, body) = client
            .admin(
                reqwest::Method::PATCH,
                &format!("/v1/admin/orgs/{org}"),
                Some(&json!({"plan": "enterprise"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = client
            .admin_post(
                &format!("/v1/admin/orgs/{org}/destinations"),
                &json!({"name": "soc", "signing_secret": SIGNING_SECRET,
                        "config": {"type": "webhook", "url": format!("{}/audit/{org}", webhook.url())}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The forwarder follows settings live; a probe per organization, until one of each
    // arrives, shows it applies every destination (probes sent before are not forwarded, so
    // they stay out of the ledger).
    eventually(
        "a probe of every organization forwarded",
        Duration::from_secs(60),
        || async {
            let delivered = webhook.core().unique_ids();
            let mut probes = Vec::new();
            for org in &orgs {
                let probe = event(org, "user.login.succeeded");
                probes.push(probe["id"].as_str().unwrap().to_string());
                let (status, body) = client.post_events(&key, &probe).await;
                assert_eq!(status, 202, "{body}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let delivered_now = webhook.core().unique_ids();
            (delivered_now.len() > delivered.len()
                && probes.iter().all(|id| delivered_now.contains(id)))
            .then_some(())
        },
    )
    .await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(gateway_load(
                gateway.url(),
                key.clone(),
                orgs.clone(),
                10,
                Duration::from_millis(200),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // 1. SIGKILL the active controller, which also leads partitions of the events topic
    //    (a topic created with all three nodes up has two preferred leaders on each).
    let victim = cluster.active_controller();
    let led: Vec<i32> = partition_leaders(&cluster.kafka, &ns.events_topic)
        .iter()
        .filter(|(_, leader, _)| *leader == i32::try_from(victim).unwrap())
        .map(|(partition, _, _)| *partition)
        .collect();
    assert!(!led.is_empty(), "node {victim} leads no events partition");
    let acknowledged_before = ledger.lock().await.acknowledged.len();
    cluster.kill_broker(victim);
    println!("killed node {victim}: active controller, leader of partitions {led:?}");
    eventually(
        "the killed node's partitions led by the others",
        Duration::from_secs(60),
        || async {
            let partitions = partition_leaders(&cluster.kafka, &ns.events_topic);
            partitions
                .iter()
                .all(|(_, leader, _)| *leader > 0 && *leader != i32::try_from(victim).unwrap())
                .then_some(())
        },
    )
    .await;
    let new_controller = cluster.active_controller();
    assert_ne!(new_controller, victim, "a new controller was elected");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.start_broker(victim);
    wait_fully_replicated(&cluster.kafka, &ns.events_topic).await;

    // 2. A second node restarts (controlled shutdown): one that leads partitions now.
    let partitions = partition_leaders(&cluster.kafka, &ns.events_topic);
    let second = (1..=3u32)
        .filter(|n| *n != victim)
        .max_by_key(|n| {
            partitions
                .iter()
                .filter(|(_, leader, _)| *leader == i32::try_from(*n).unwrap())
                .count()
        })
        .unwrap();
    cluster.stop_broker(second);
    println!("stopped node {second} (controlled shutdown)");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_broker(second);
    wait_fully_replicated(&cluster.kafka, &ns.events_topic).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let ledger = ledger.lock().await;
    println!(
        "acknowledged {} (before the first kill {acknowledged_before}), refused with 503 {}",
        ledger.acknowledged.len(),
        ledger.refused
    );
    assert!(
        ledger.unexpected.is_empty(),
        "every answer is 202 or 503 + Retry-After: {:?}",
        ledger.unexpected
    );
    assert!(
        ledger.acknowledged.len() > acknowledged_before,
        "ingest resumed after the failures without restarting the gateway"
    );
    assert_indexed_exactly_once(&ns, &ledger.acknowledged).await;
    eventually(
        "every acknowledged event forwarded",
        Duration::from_secs(120),
        || async {
            let delivered = webhook.core().unique_ids();
            ledger
                .acknowledged
                .keys()
                .all(|id| delivered.contains(id))
                .then_some(())
        },
    )
    .await;
    // The same processes, never restarted, are ready again.
    for service in [&indexer, &gateway, &forwarder] {
        assert!(
            service.is_running(),
            "{:?} exited:\n{}",
            service.kind,
            service.log_tail()
        );
        eventually("ready again", Duration::from_secs(60), || async {
            ready(service).await.then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_shard_holds_back_indexing_answers_503_for_its_orgs_only_and_loses_nothing() {
    let (cluster, _exclusive) = Cluster::exclusive().await;
    let ns = cluster.namespace("cluster-shard");
    let shards = cluster.orgs_per_shard("org_shard", 2).await;
    let (healthy, stopped) = (&shards[0], &shards[1]);
    let indexer = start(
        &cluster,
        &ns,
        ServiceKind::Indexer,
        &[("INDEXER__RETRY__MAX_BACKOFF_MS", "2000")],
    )
    .await;
    let gateway = start(&cluster, &ns, ServiceKind::Gateway, &[]).await;
    let http = reqwest::Client::new();
    let read = |org: String| {
        let http = http.clone();
        let url = format!("{}/v1/orgs/{org}/events?limit=5", gateway.url());
        async move {
            let response = http
                .get(url)
                .bearer_auth(user_token(&org, "admin", "u_1", 600))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }
    };

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let all_orgs: Vec<String> = shards.iter().flatten().cloned().collect();
    let load = tokio::spawn(kafka_load(
        cluster.kafka.clone(),
        ns.events_topic.clone(),
        all_orgs.clone(),
        Duration::from_millis(50),
        ledger.clone(),
        stop.clone(),
    ));
    eventually(
        "events of both shards indexed",
        Duration::from_secs(60),
        || async {
            let per_shard = [
                ids_on_shard(&cluster, 1, &ns.database).await.len(),
                ids_on_shard(&cluster, 2, &ns.database).await.len(),
            ];
            per_shard.iter().all(|n| *n > 0).then_some(())
        },
    )
    .await;

    cluster.stop_shard(2);
    // Inserts fail as a whole (the Distributed INSERT waits for every shard): the indexer
    // reports it and commits nothing until the shard is back.
    eventually(
        "the indexer reports the failing inserts",
        Duration::from_secs(60),
        || async { (!ready(&indexer).await).then_some(()) },
    )
    .await;
    let group = format!("{}-indexer", ns.id);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed_at_failure = kafka::committed_total(&cluster.kafka, &group, &ns.events_topic);
    for _ in 0..8 {
        for org in healthy {
            let (status, _, body) = read(org.clone()).await;
            assert_eq!(status, 200, "a healthy shard's org keeps reading: {body}");
            assert!(!body["data"].as_array().unwrap().is_empty(), "{body}");
        }
        for org in stopped {
            let (status, retry_after, body) = read(org.clone()).await;
            assert_eq!(status, 503, "the stopped shard's org: {body}");
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            assert!(retry_after.is_some(), "503 carries Retry-After");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        kafka::committed_total(&cluster.kafka, &group, &ns.events_topic),
        committed_at_failure,
        "no offset is committed past rows that are not on their shard"
    );

    cluster.start_shard(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let ledger = ledger.lock().await;
    assert_indexed_exactly_once(&ns, &ledger.acknowledged).await;
    eventually(
        "the indexer ready again",
        Duration::from_secs(60),
        || async { ready(&indexer).await.then_some(()) },
    )
    .await;
    for org in stopped {
        let (status, _, body) = read(org.clone()).await;
        assert_eq!(status, 200, "the returned shard's org reads again: {body}");
    }
    assert_each_on_its_shard(&cluster, &ns, &ledger.acknowledged).await;
    let physical = ns.sql_u64("SELECT count() FROM events").await;
    println!(
        "{} acknowledged, {} rows stored before merges (copies from the retried inserts collapse in FINAL)",
        ledger.acknowledged.len(),
        physical
    );
    assert!(indexer.is_running() && gateway.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_of_an_event_meet_on_one_shard_across_a_rebalance_and_retention_reaches_every_shard()
{
    let (cluster, _exclusive) = Cluster::exclusive().await;
    let ns = cluster.namespace("cluster-copies");
    let shards = cluster.orgs_per_shard("org_copy", 2).await;
    let orgs: Vec<String> = shards.iter().flatten().cloned().collect();
    let mut first = start(&cluster, &ns, ServiceKind::Indexer, &[]).await;
    let second = start(&cluster, &ns, ServiceKind::Indexer, &[]).await;
    let gateway = start(&cluster, &ns, ServiceKind::Gateway, &[]).await;
    // Merges would collapse the copies before they are counted: hold them off meanwhile.
    let merges = |action: &'static str| {
        let cluster = cluster.clone();
        let database = ns.database.clone();
        async move {
            for shard in [1, 2] {
                cluster
                    .shard_sql(
                        shard,
                        &format!("SYSTEM {action} MERGES {database}.events_local"),
                    )
                    .await;
            }
        }
    };
    merges("STOP").await;

    // Every event twice, as a producer's replay would send it: the copies are produced once
    // the first ones are stored, and between the two one indexer is SIGKILLed — the survivor
    // takes its partitions in a rebalance (re-reading what it had not committed), so copies
    // are inserted by another indexer, in other INSERTs, than the first ones.
    let producer = kafka::producer(&cluster.kafka);
    let mut sent: HashMap<String, String> = HashMap::new();
    let mut payloads = Vec::new();
    for i in 0..120 {
        let org = &orgs[i % orgs.len()];
        let payload = event(org, "resource.deleted");
        kafka::produce(
            &producer,
            &ns.events_topic,
            Some(org),
            payload.to_string().as_bytes(),
        )
        .await;
        sent.insert(payload["id"].as_str().unwrap().to_string(), org.clone());
        payloads.push(payload);
    }
    assert_indexed_exactly_once(&ns, &sent).await;
    first.kill();
    for payload in &payloads {
        let org = payload["org_id"].as_str().unwrap();
        kafka::produce(
            &producer,
            &ns.events_topic,
            Some(org),
            payload.to_string().as_bytes(),
        )
        .await;
    }
    eventually(
        "the replayed copies stored",
        Duration::from_secs(90),
        || async {
            (ns.try_sql_u64("SELECT count() FROM events").await? >= 2 * sent.len() as u64)
                .then_some(())
        },
    )
    .await;
    assert_indexed_exactly_once(&ns, &sent).await;
    assert_each_on_its_shard(&cluster, &ns, &sent).await;
    merges("START").await;

    // Retention: rows of one organization on both shards (as rows written before a change
    // of the shard count stay where they were), then a retention change through the API.
    let org = &shards[0][0];
    cluster
        .shard_sql(
            2,
            &format!(
                "INSERT INTO {}.events_local (org_id, occurred_at, id, received_at, retention_days, raw) \
                 VALUES ('{org}', now64(3), generateUUIDv4(), now64(3), 90, '{{}}')",
                ns.database
            ),
        )
        .await;
    let client = Gateway::new(&gateway.url());
    let (status, body) = client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(&json!({"plan": "enterprise", "retention_days": 400})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for shard in [1, 2] {
        eventually(
            "the new retention on every shard",
            Duration::from_secs(60),
            || async {
                let values = cluster
                    .shard_sql(
                        shard,
                        &format!(
                            "SELECT groupUniqArray(retention_days) FROM {}.events_local WHERE org_id = '{org}'",
                            ns.database
                        ),
                    )
                    .await;
                (values.trim() == "[400]").then_some(())
            },
        )
        .await;
    }
    assert!(second.is_running());
}
