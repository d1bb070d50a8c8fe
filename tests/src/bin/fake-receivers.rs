//! `fake-receivers`: the four fake SIEM receivers on fixed local ports, for `make run` and the
//! forwarder benchmark. Prints where they listen and the credentials they accept; runs until
//! SIGINT/SIGTERM. Each also answers `GET /_fake/stats` and `GET /_fake/received`.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use audit_tests::fakes::datadog::DatadogSetup;
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::wazuh::WazuhSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeDatadog, FakeHec, FakeWazuh, FakeWebhook, SIGNING_SECRET};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "fake-receivers",
    about = "Fake Splunk HEC, Datadog, Wazuh and webhook receivers on local ports."
)]
struct Cli {
    #[arg(long, default_value_t = 18088)]
    hec_port: u16,
    #[arg(long, default_value_t = 18089)]
    datadog_port: u16,
    #[arg(long, default_value_t = 18090)]
    wazuh_port: u16,
    #[arg(long, default_value_t = 18091)]
    webhook_port: u16,
    /// Standard Webhooks secrets accepted (repeat for several).
    #[arg(long = "signing-secret", default_values_t = [SIGNING_SECRET.to_string()])]
    signing_secrets: Vec<String>,
    /// The HEC token accepted.
    #[arg(long, default_value = "11111111-2222-3333-4444-555555555555")]
    hec_token: String,
    /// Turn on HEC indexer acknowledgement.
    #[arg(long)]
    hec_ack: bool,
    /// Wazuh requests per minute before 429.
    #[arg(long, default_value_t = 30)]
    wazuh_requests_per_minute: usize,
    /// Wazuh token lifetime in seconds.
    #[arg(long, default_value_t = 900)]
    wazuh_token_lifetime_secs: u64,
    /// Keep only ids and arrival times, not the payloads (benchmarks).
    #[arg(long)]
    ids_only: bool,
    /// Also start a hung webhook receiver on this port: it answers every request only after
    /// `--hung-webhook-latency-ms` (a SIEM that hangs, for the forwarder's isolation benchmark).
    #[arg(long)]
    hung_webhook_port: Option<u16>,
    /// How long the hung webhook waits before answering.
    #[arg(long, default_value_t = 20_000)]
    hung_webhook_latency_ms: u64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let record_items = !cli.ids_only;
    let hec = FakeHec::start(HecSetup {
        token: cli.hec_token.clone(),
        indexer_ack: cli.hec_ack,
        signing_secrets: cli.signing_secrets.clone(),
        record_items,
        port: cli.hec_port,
        ..HecSetup::default()
    })
    .await;
    let datadog = FakeDatadog::start(DatadogSetup {
        signing_secrets: cli.signing_secrets.clone(),
        record_items,
        port: cli.datadog_port,
        ..DatadogSetup::default()
    })
    .await;
    let wazuh = FakeWazuh::start(WazuhSetup {
        requests_per_minute: cli.wazuh_requests_per_minute,
        token_lifetime: Duration::from_secs(cli.wazuh_token_lifetime_secs),
        signing_secrets: cli.signing_secrets.clone(),
        record_items,
        port: cli.wazuh_port,
        ..WazuhSetup::default()
    })
    .await;
    let webhook = FakeWebhook::start(WebhookSetup {
        signing_secrets: cli.signing_secrets.clone(),
        record_items,
        port: cli.webhook_port,
    })
    .await;
    let hung_webhook = match cli.hung_webhook_port {
        Some(port) => {
            let hung = FakeWebhook::start(WebhookSetup {
                signing_secrets: cli.signing_secrets.clone(),
                record_items,
                port,
            })
            .await;
            hung.set_latency(Duration::from_millis(cli.hung_webhook_latency_ms));
            Some(hung)
        }
        None => None,
    };
    println!("fake receivers listening (Standard Webhooks signatures verified on every request):");
    println!(
        "  splunk_hec  {}  token {}{}",
        hec.url(),
        hec.token(),
        if cli.hec_ack { ", indexer ack on" } else { "" }
    );
    println!(
        "  datadog     {}/api/v2/logs  DD-API-KEY {}",
        datadog.url(),
        datadog.api_key()
    );
    println!(
        "  wazuh       {}  user {} password {}",
        wazuh.url(),
        wazuh.username(),
        wazuh.password()
    );
    println!("  webhook     {}/<any path>", webhook.url());
    if let Some(hung) = &hung_webhook {
        println!(
            "  webhook     {}/<any path>  hung: answers after {} ms",
            hung.url(),
            cli.hung_webhook_latency_ms
        );
    }
    println!("  stats:      GET <url>/_fake/stats, GET <url>/_fake/received?from=0&limit=100");
    wait_for_signal().await;
    println!("fake receivers stopping");
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
