//! The outbound HTTP client: SSRF-safe by construction.
//!
//! * URLs are checked with [`OutboundPolicy::check_url`] when a destination is built (scheme,
//!   IP literals, local names): reqwest does not resolve IP literals, so this is where they are
//!   refused.
//! * Host names are resolved by [`PolicyResolver`], which drops every address the policy
//!   refuses (private, loopback, link-local… unless allow-listed) and fails when none is left,
//!   so a DNS answer changed after the destination was saved (rebinding) cannot reach inside.
//! * Redirects are never followed (a 3xx is a failure), proxies from the environment are
//!   ignored (a proxy would resolve names for us), and connect and request timeouts bound
//!   every attempt (the request timeout covers the answer's head and body).
//! * No compressed answers are asked for, and none is ever decompressed: a receiver cannot
//!   make us inflate a bomb (bodies are read within bounds, [`crate::sinks::response`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use audit_settings::OutboundPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::{Error, Result};

/// Timeouts of the outbound client.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    pub connect: Duration,
    pub request: Duration,
}

/// Builds the client every destination shares (one connection pool per host).
pub fn build_client(policy: &OutboundPolicy, timeouts: ClientTimeouts) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver {
            policy: policy.clone(),
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // reqwest's `gzip` feature is on in the workspace; answers are read as they come.
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(8)
        .tcp_nodelay(true)
        .user_agent(concat!(
            "solarius-audit-forwarder/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|error| Error::Http(error.to_string()))
}

/// A DNS resolver that only returns addresses the outbound policy allows.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: OutboundPolicy,
}

impl PolicyResolver {
    pub fn new(policy: OutboundPolicy) -> Self {
        Self { policy }
    }

    /// Keeps the allowed addresses; an error names the first refused one when none is left.
    pub fn filter(
        &self,
        host: &str,
        addresses: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, String> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|address| match self.policy.check_ip(address.ip()) {
                Ok(()) => true,
                Err(reason) => {
                    refused.get_or_insert(reason);
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            return Err(match refused {
                Some(reason) => format!("`{host}` resolves only to refused addresses: {reason}"),
                None => format!("`{host}` did not resolve to any address"),
            });
        }
        Ok(allowed)
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = resolver.filter(&host, addresses).map_err(|reason| {
                tracing::warn!(host = %host, %reason, "outbound address refused");
                Box::<dyn std::error::Error + Send + Sync>::from(reason)
            })?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Checks a destination URL against the policy (scheme, credentials, IP literals, local names).
pub fn check_url(policy: &OutboundPolicy, raw: &str) -> Result<url::Url, String> {
    policy.check_url(raw).map_err(|refused| refused.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn resolver_drops_refused_addresses() {
        let resolver = PolicyResolver::new(OutboundPolicy::default());
        let public: SocketAddr = "203.0.113.7:0".parse().expect("addr");
        let private: SocketAddr = "10.0.0.7:0".parse().expect("addr");
        let metadata: SocketAddr = "169.254.169.254:0".parse().expect("addr");
        assert_eq!(
            resolver
                .filter("siem.example.com", vec![private, public])
                .expect("one public address"),
            vec![public]
        );
        let error = resolver
            .filter("rebound.example.com", vec![private, metadata])
            .expect_err("all refused");
        assert!(
            error.contains("10.0.0.7") && error.contains("private"),
            "{error}"
        );
    }

    #[test]
    fn allow_listed_private_targets_pass() {
        let resolver = PolicyResolver::new(OutboundPolicy {
            allow_http: true,
            allow_private: vec!["127.0.0.1/32".into()],
        });
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        assert!(resolver.filter("localhost", vec![loopback]).is_ok());
    }

    #[tokio::test]
    async fn the_client_refuses_loopback_names_unless_allowed() {
        let client = build_client(
            &OutboundPolicy {
                allow_http: true,
                allow_private: vec![],
            },
            ClientTimeouts {
                connect: Duration::from_secs(2),
                request: Duration::from_secs(2),
            },
        )
        .expect("client");
        // `localhost` resolves to loopback: the resolver refuses it before any connection.
        let error = client
            .get("http://localhost:9/")
            .send()
            .await
            .expect_err("refused");
        let text = format!("{error:?}");
        assert!(text.contains("refused addresses"), "{text}");
    }
}
