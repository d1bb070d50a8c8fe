//! The `gateway` command line: its arguments and subcommands, and what each one does. The
//! binary only parses the arguments and runs [`dispatch`] (see `main.rs`).
//!
//! `hash-token` and `openapi` need no configuration; every other subcommand loads and validates
//! it first, so `check-config` fails exactly where `run` would.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::GatewayConfig;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "The audit-log gateway: event ingest to Kafka, the read/export API and dashboard, and the operator settings API."
)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables `GATEWAY__SECTION__KEY` override it.
    #[arg(
        long,
        short,
        env = "GATEWAY_CONFIG",
        default_value = "config/gateway.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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

/// Runs the subcommand (`run` when none is given).
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::HashToken) => return hash_token(),
        Some(Command::Openapi) => return print(&crate::openapi::render()),
        _ => {}
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
            let claims = crate::auth::user::MintClaims {
                subject: &subject,
                org_id: &org,
                role: &role,
                ttl_secs: ttl,
                email: email.as_deref(),
                issuer: config.auth.issuer.as_deref(),
                audience: config.auth.audience.as_deref(),
            };
            mint_token(&config, &claims)
        }
        Command::HashToken | Command::Openapi => Ok(()),
        Command::Run => {
            let metrics = audit_runtime::telemetry::init(&config.telemetry, "gateway");
            crate::run(config, metrics, audit_runtime::shutdown_token()).await
        }
    }
}

/// `hash-token`: the stored form of an operator token read from stdin.
fn hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin().read_line(&mut token)?;
    print(&format!("{}\n", audit_settings::hash_secret(token.trim())))
}

/// `mint-token`: a user token signed with `auth.hs256_secret`.
fn mint_token(
    config: &GatewayConfig,
    claims: &crate::auth::user::MintClaims<'_>,
) -> anyhow::Result<()> {
    let secret = config
        .auth
        .hs256_secret
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("auth.hs256_secret is not set; cannot mint tokens"))?;
    let token = crate::auth::user::mint_hs256(secret.expose(), claims)?;
    print(&format!("{token}\n"))
}

/// Writes `text` to stdout as is.
fn print(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
