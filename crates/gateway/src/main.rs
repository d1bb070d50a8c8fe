//! `gateway`: ingest, read/export API, dashboard and operator API.

// mimalloc, tuned for RSS: see `audit_runtime::alloc`.
audit_runtime::global_allocator!();

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use gateway::GatewayConfig;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "The audit-log gateway: event ingest to Kafka, the read/export API and dashboard, and the operator settings API."
)]
struct Cli {
    /// Configuration file (TOML). Environment variables `GATEWAY__SECTION__KEY` override it.
    #[arg(
        long,
        short,
        env = "GATEWAY_CONFIG",
        default_value = "config/gateway.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Mint a signed user token for local use (needs `auth.hs256_secret`; carries the
    /// configured `auth.issuer` and `auth.audience`).
    MintToken {
        /// Organization the token grants access to.
        #[arg(long)]
        org: String,
        /// owner, admin or member.
        #[arg(long, default_value = "admin")]
        role: String,
        /// User id (`sub`).
        #[arg(long, default_value = "user_dev")]
        subject: String,
        #[arg(long)]
        email: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 8 * 3600)]
        ttl: i64,
    },
    /// Print the SHA-256 to put in `operators.tokens` for an operator token read from stdin.
    HashToken,
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET /openapi.json` serves; needs no
    /// configuration). `make openapi` writes it to docs/openapi.json.
    Openapi,
}

fn main() -> std::process::ExitCode {
    audit_runtime::cli::block_on_main("gateway", run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::HashToken) = cli.command {
        let mut token = String::new();
        std::io::stdin().read_line(&mut token)?;
        let mut stdout = std::io::stdout().lock();
        std::io::Write::write_all(
            &mut stdout,
            format!("{}\n", audit_settings::hash_secret(token.trim())).as_bytes(),
        )?;
        return Ok(());
    }
    if let Some(Command::Openapi) = cli.command {
        let mut stdout = std::io::stdout().lock();
        std::io::Write::write_all(&mut stdout, gateway::openapi::render().as_bytes())?;
        return Ok(());
    }
    let config: GatewayConfig = audit_runtime::config::load(Some(&cli.config), "GATEWAY")?;
    config.validate()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            eprintln!("gateway: configuration {} is valid", cli.config.display());
            Ok(())
        }
        Command::MintToken {
            org,
            role,
            subject,
            email,
            ttl,
        } => {
            let secret = config.auth.hs256_secret.as_ref().ok_or_else(|| {
                anyhow::anyhow!("auth.hs256_secret is not set; cannot mint tokens")
            })?;
            let token = gateway::auth::user::mint_hs256(
                secret.expose(),
                &gateway::auth::user::MintClaims {
                    subject: &subject,
                    org_id: &org,
                    role: &role,
                    ttl_secs: ttl,
                    email: email.as_deref(),
                    issuer: config.auth.issuer.as_deref(),
                    audience: config.auth.audience.as_deref(),
                },
            )?;
            let mut stdout = std::io::stdout().lock();
            std::io::Write::write_all(&mut stdout, format!("{token}\n").as_bytes())?;
            Ok(())
        }
        Command::HashToken | Command::Openapi => Ok(()),
        Command::Run => {
            let metrics = audit_runtime::telemetry::init(&config.telemetry, "gateway");
            gateway::run(config, metrics, audit_runtime::shutdown_token()).await
        }
    }
}
