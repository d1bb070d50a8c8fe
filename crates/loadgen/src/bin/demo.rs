//! `demo`: seeds demo tenants through the operator API and publishes demo events through the
//! ingest API — the same paths a real operator and product team use. Used by `make run`.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "demo",
    about = "Seed demo tenants and publish demo events through a running gateway."
)]
struct Cli {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a seed file (config/seed.toml) through the operator API; idempotent.
    Seed {
        #[arg(long, default_value = "config/seed.toml")]
        file: PathBuf,
        /// Operator token.
        #[arg(
            long,
            env = "AUDIT_OPERATOR_TOKEN",
            default_value = "dev-operator-token"
        )]
        operator_token: String,
        /// Where created producer keys are remembered (they are shown only once).
        #[arg(long, default_value = ".local/demo-keys.json")]
        keys_file: PathBuf,
    },
    /// Publish demo events for organizations, spread over the last `days` days.
    Publish {
        /// Producer API key.
        #[arg(long)]
        key: String,
        /// Organizations, comma separated.
        #[arg(long, value_delimiter = ',')]
        orgs: Vec<String>,
        /// Events per organization.
        #[arg(long, default_value_t = 500)]
        count: u64,
        #[arg(long, default_value_t = 14)]
        days: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::new();
    match cli.command {
        Command::Seed {
            file,
            operator_token,
            keys_file,
        } => seed(&http, &cli.gateway, &file, &operator_token, &keys_file).await,
        Command::Publish {
            key,
            orgs,
            count,
            days,
        } => publish(&http, &cli.gateway, &key, &orgs, count, days).await,
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn seed(
    http: &reqwest::Client,
    gateway: &str,
    file: &PathBuf,
    token: &str,
    keys_file: &PathBuf,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let seed: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let seed: Value = serde_json::to_value(seed)?;
    let mut remembered: Value = std::fs::read_to_string(keys_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));

    let (_, existing) = call(
        http,
        reqwest::Method::GET,
        format!("{gateway}/v1/admin/producer-keys"),
        token,
        None,
    )
    .await?;
    for key in seed["producer_keys"].as_array().into_iter().flatten() {
        let name = key["name"].as_str().unwrap_or_default();
        let exists = existing["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["name"] == name && k["revoked_at"].is_null());
        if exists && remembered.get(name).is_some() {
            println!("producer key `{name}`: exists");
            continue;
        }
        let (status, body) = call(
            http,
            reqwest::Method::POST,
            format!("{gateway}/v1/admin/producer-keys"),
            token,
            Some(key),
        )
        .await?;
        if status != 201 {
            bail!("creating producer key `{name}`: {status} {body}");
        }
        remembered[name] = body["api_key"].clone();
        println!("producer key `{name}`: created");
    }
    if let Some(parent) = keys_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(keys_file, serde_json::to_string_pretty(&remembered)?)?;

    for org in seed["orgs"].as_array().into_iter().flatten() {
        let org_id = org["org_id"].as_str().unwrap_or_default();
        let mut change = json!({"plan": org["plan"]});
        if let Some(days) = org.get("retention_days") {
            change["retention_days"] = days.clone();
        }
        let (status, current) = call(
            http,
            reqwest::Method::PATCH,
            format!("{gateway}/v1/admin/orgs/{org_id}"),
            token,
            Some(&change),
        )
        .await?;
        if status != 200 {
            bail!("updating `{org_id}`: {status} {current}");
        }
        println!(
            "organization `{org_id}`: plan {}, retention {} days",
            current["plan"], current["retention_days"]
        );
        for destination in org["destinations"].as_array().into_iter().flatten() {
            let name = destination["name"].as_str().unwrap_or_default();
            let exists = current["destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["name"] == name);
            if exists {
                println!("  destination `{name}`: exists");
                continue;
            }
            let (status, body) = call(
                http,
                reqwest::Method::POST,
                format!("{gateway}/v1/admin/orgs/{org_id}/destinations"),
                token,
                Some(destination),
            )
            .await?;
            if status != 201 {
                bail!("creating destination `{name}` of `{org_id}`: {status} {body}");
            }
            println!("  destination `{name}`: created ({})", body["id"]);
        }
    }
    Ok(())
}

async fn publish(
    http: &reqwest::Client,
    gateway: &str,
    key: &str,
    orgs: &[String],
    count: u64,
    days: i64,
) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let span = time::Duration::days(days);
    for org in orgs {
        let mut sent = 0;
        while sent < count {
            let batch: Vec<Value> = (sent..(sent + 100).min(count))
                .map(|n| {
                    // Spread evenly over the span, oldest first, newest a few seconds ago.
                    let age = span * ((count - n) as f64 / count as f64);
                    let at = (now - age)
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    loadgen::generated_event(org, n, &at)
                })
                .collect();
            let response = http
                .post(format!("{gateway}/v1/events"))
                .bearer_auth(key)
                .json(&batch)
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                bail!(
                    "publishing to `{org}`: {status} {}",
                    response.text().await.unwrap_or_default()
                );
            }
            sent += batch.len() as u64;
        }
        println!("published {count} events for `{org}`");
    }
    Ok(())
}
