//! Which outbound URLs and addresses the forwarder may reach (SSRF safety).
//!
//! Destination URLs must be `https` (plain `http` only with `allow_http`, for local use), and
//! must not point at loopback, private, link-local, CGNAT, multicast or unspecified addresses
//! unless the address or host is allow-listed. The check runs when a destination is saved
//! (URL and IP literals) and again on every connection (the forwarder's DNS resolver), so DNS
//! rebinding cannot sneak a private address in later.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundPolicy {
    /// Allow `http://` destinations (local development and tests only).
    pub allow_http: bool,
    /// Networks (CIDR) or host names exempt from the private-address rule, e.g. `127.0.0.1/32`.
    pub allow_private: Vec<String>,
}

impl OutboundPolicy {
    /// Checks a destination URL; the error says what is wrong with it.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|error| format!("not a valid URL: {error}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must use https (http is allowed only with the local-use setting outbound.allow_http)".into()),
            other => return Err(format!("scheme `{other}` is not allowed; use https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "must not contain credentials; use the destination's credential fields".into(),
            );
        }
        match url.host() {
            None => return Err("has no host".into()),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                let local_name = domain == "localhost"
                    || domain.ends_with(".localhost")
                    || domain.ends_with(".internal");
                if local_name && !self.host_allowed(&domain) {
                    return Err(format!(
                        "host `{domain}` is a local name; allow-list it in outbound.allow_private to use it"
                    ));
                }
            }
        }
        Ok(url)
    }

    /// Checks one resolved address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if let Some(kind) = restricted_kind(ip)
            && !self.ip_allowed(ip)
        {
            return Err(format!(
                "address {ip} is {kind}; such targets are refused unless allow-listed in outbound.allow_private"
            ));
        }
        Ok(())
    }

    pub fn host_allowed(&self, host: &str) -> bool {
        self.allow_private
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(host))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow_private.iter().any(|entry| {
            entry
                .parse::<IpNet>()
                .map(|net| net.contains(&ip))
                .or_else(|_| {
                    entry
                        .parse::<IpAddr>()
                        .map(|allowed| canonical(allowed) == ip)
                })
                .unwrap_or(false)
        })
    }

    pub fn validate(&self, section: &str) -> Result<(), audit_runtime::ConfigError> {
        for (index, entry) in self.allow_private.iter().enumerate() {
            let looks_like_ip =
                entry.contains('/') || entry.parse::<IpAddr>().is_ok() || entry.contains(':');
            if looks_like_ip && entry.parse::<IpNet>().is_err() && entry.parse::<IpAddr>().is_err()
            {
                return Err(audit_runtime::ConfigError::invalid(
                    format!("{section}.allow_private[{index}]"),
                    "not a valid CIDR network or address",
                ));
            }
        }
        Ok(())
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        IpAddr::V4(_) => ip,
    }
}

fn restricted_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let octets = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if octets[0] == 100 && (64..128).contains(&octets[1]) {
                Some("shared address space (CGNAT)")
            } else if v4.is_unspecified() || octets[0] == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() || octets[0] >= 240 {
                Some("multicast/broadcast/reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique local (private)")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn https_public_urls_pass() {
        let policy = OutboundPolicy::default();
        assert!(
            policy
                .check_url("https://http-inputs-acme.splunkcloud.com/services/collector/event")
                .is_ok()
        );
        assert!(policy.check_url("https://203.0.113.7:8088/x").is_ok());
    }

    #[test]
    fn unsafe_urls_are_refused_with_reasons() {
        let policy = OutboundPolicy::default();
        let cases = [
            ("http://example.com/", "https"),
            ("ftp://example.com/", "scheme"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://127.0.0.1/", "loopback"),
            ("https://[::1]/", "loopback"),
            ("https://10.1.2.3/", "private"),
            ("https://192.168.0.1/", "private"),
            ("https://172.20.0.1/", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[fd00::1]/", "unique local"),
            ("https://[::ffff:10.0.0.1]/", "private"),
            ("https://100.64.0.1/", "CGNAT"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://localhost:8088/", "local name"),
            ("https://metadata.google.internal/", "local name"),
            ("not a url", "not a valid URL"),
        ];
        for (url, needle) in cases {
            let error = policy.check_url(url).expect_err(url);
            assert!(error.contains(needle), "{url}: {error}");
        }
    }

    #[test]
    fn allow_lists_open_specific_targets() {
        let policy = OutboundPolicy {
            allow_http: true,
            allow_private: vec!["127.0.0.1/32".into(), "localhost".into()],
        };
        assert!(policy.check_url("http://127.0.0.1:8088/").is_ok());
        assert!(policy.check_url("http://localhost:8088/").is_ok());
        assert!(policy.check_url("http://10.0.0.1/").is_err());
        assert!(policy.check_ip("127.0.0.1".parse().expect("ip")).is_ok());
        assert!(policy.check_ip("127.0.0.2".parse().expect("ip")).is_err());
    }
}
