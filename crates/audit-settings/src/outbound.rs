//! Which outbound URLs and addresses the forwarder may reach (SSRF safety).
//!
//! Destination URLs must be `https` (plain `http` only with `allow_http`, for local use), and
//! must not point at loopback, private, link-local, CGNAT, multicast or unspecified addresses
//! unless the address or host is allow-listed. The check runs when a destination is saved
//! (URL and IP literals) and again on every connection (the forwarder's DNS resolver), so DNS
//! rebinding cannot sneak a private address in later.
//!
//! IPv6 addresses that carry an IPv4 address are judged by the IPv4 address they reach too:
//! IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`
//! (RFC 6052), 6to4 `2002:aabb:ccdd::/48` and Teredo `2001::/32` (server and client
//! addresses); the local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215, translated inside the
//! site, with no fixed place for the IPv4 address) is refused as a whole.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Why a destination URL is refused (the message is shown to the operator who entered it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a valid URL: {0}")]
    NotAUrl(url::ParseError),
    #[error("must use https (http is allowed only with the local-use setting outbound.allow_http)")]
    PlainHttp,
    #[error("scheme `{0}` is not allowed; use https")]
    Scheme(String),
    #[error("must not contain credentials; use the destination's credential fields")]
    Credentials,
    #[error("has no host")]
    NoHost,
    /// `localhost`, `*.localhost`, `*.internal` and not allow-listed.
    #[error("host `{0}` is a local name; allow-list it in outbound.allow_private to use it")]
    LocalName(String),
    /// An IP literal that [`OutboundPolicy::check_ip`] refuses.
    #[error(transparent)]
    Address(#[from] AddressRefused),
}

/// Why an address (an IP literal, or one a host name resolved to) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    /// The address itself is of a restricted `kind` (loopback, private, …).
    #[error(
        "address {ip} is {kind}; such targets are refused unless allow-listed in outbound.allow_private"
    )]
    Restricted { ip: IpAddr, kind: &'static str },
    /// An IPv6 address that reaches a restricted IPv4 address through a transition `form`.
    #[error(
        "address {ip} is a {form} address reaching {v4}, which is {kind}; such targets are refused unless allow-listed in outbound.allow_private"
    )]
    Embedded {
        ip: IpAddr,
        form: &'static str,
        v4: IpAddr,
        kind: &'static str,
    },
}

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
    pub fn check_url(&self, raw: &str) -> Result<Url, UrlRefused> {
        let url = Url::parse(raw).map_err(UrlRefused::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(UrlRefused::PlainHttp),
            other => return Err(UrlRefused::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefused::Credentials);
        }
        match url.host() {
            None => return Err(UrlRefused::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                let local_name = domain == "localhost"
                    || domain.ends_with(".localhost")
                    || domain.ends_with(".internal");
                if local_name && !self.host_allowed(&domain) {
                    return Err(UrlRefused::LocalName(domain));
                }
            }
        }
        Ok(url)
    }

    /// Checks one resolved address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AddressRefused> {
        let ip = canonical(ip);
        if let Some(kind) = restricted_kind(ip)
            && !self.ip_allowed(ip)
        {
            return Err(AddressRefused::Restricted { ip, kind });
        }
        if let IpAddr::V6(v6) = ip {
            for (form, v4) in embedded_ipv4(v6) {
                let v4 = IpAddr::V4(v4);
                if let Some(kind) = restricted_kind(v4)
                    && !self.ip_allowed(v4)
                    && !self.ip_allowed(ip)
                {
                    return Err(AddressRefused::Embedded { ip, form, v4, kind });
                }
            }
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

/// The IPv4 addresses an IPv6 address reaches through a transition mechanism, with the
/// mechanism's name (IPv4-mapped addresses are handled by [`canonical`]).
fn embedded_ipv4(v6: Ipv6Addr) -> Vec<(&'static str, Ipv4Addr)> {
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let segments = v6.segments();
    if bits >> 32 == 0 && bits > 1 {
        // ::a.b.c.d (deprecated IPv4-compatible); `::` and `::1` are judged as themselves.
        return vec![("IPv4-compatible", low32)];
    }
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return vec![("NAT64 (64:ff9b::/96)", low32)];
    }
    if segments[0] == 0x2002 {
        let v4 = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
        return vec![("6to4 (2002::/16)", v4)];
    }
    if segments[0] == 0x2001 && segments[1] == 0 {
        let server = Ipv4Addr::from(((bits >> 64) & 0xffff_ffff) as u32);
        let client = Ipv4Addr::from(!((bits & 0xffff_ffff) as u32));
        return vec![
            ("Teredo (2001::/32)", server),
            ("Teredo (2001::/32)", client),
        ];
    }
    Vec::new()
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
            } else if u128::from(v6) >> 80 == 0x0064_ff9b_0001 {
                Some("local-use NAT64 (64:ff9b:1::/48, RFC 8215)")
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
            let error = policy.check_url(url).expect_err(url).to_string();
            assert!(error.contains(needle), "{url}: {error}");
        }
    }

    #[test]
    fn ipv6_transition_addresses_are_judged_by_the_ipv4_they_reach() {
        let policy = OutboundPolicy::default();
        let refused = [
            ("64:ff9b::7f00:1", "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b::a00:1", "10.0.0.1"),
            ("2002:7f00:1::1", "127.0.0.1"),
            ("2002:a9fe:a9fe::", "169.254.169.254"),
            ("2002:c0a8:0101::5", "192.168.1.1"),
            ("::7f00:1", "127.0.0.1"),
            ("::a00:1", "10.0.0.1"),
            ("::a9fe:a9fe", "169.254.169.254"),
            // Teredo: server 10.0.0.1; client 203.0.113.7 obfuscated.
            ("2001:0:a00:1::34ff:8ef8", "10.0.0.1"),
            // Teredo: server public 198.51.100.1; client 127.0.0.1 (obfuscated 80ff:fffe).
            ("2001:0:c633:6401::80ff:fffe", "127.0.0.1"),
        ];
        for (ip, v4) in refused {
            let error = policy
                .check_ip(ip.parse().unwrap())
                .expect_err(ip)
                .to_string();
            assert!(error.contains(v4), "{ip}: {error}");
            assert!(
                policy.check_url(&format!("https://[{ip}]/")).is_err(),
                "{ip} in a URL"
            );
        }
        let error = policy
            .check_ip("64:ff9b:1::a00:1".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("local-use NAT64"), "{error}");
        for public in [
            "64:ff9b::cb00:7107",          // 203.0.113.7
            "2002:cb00:7107::1",           // 203.0.113.7
            "2001:0:c633:6401::34ff:8ef8", // server 198.51.100.1, client 203.0.113.7
            "2606:4700::1111",
        ] {
            assert!(policy.check_ip(public.parse().unwrap()).is_ok(), "{public}");
        }
        let allowed = OutboundPolicy {
            allow_http: false,
            allow_private: vec!["127.0.0.1/32".into()],
        };
        assert!(allowed.check_ip("64:ff9b::7f00:1".parse().unwrap()).is_ok());
        assert!(allowed.check_ip("64:ff9b::a00:1".parse().unwrap()).is_err());
    }

    #[test]
    fn refusals_read_as_the_operator_is_told() {
        let policy = OutboundPolicy::default();
        let refusal = |url: &str| policy.check_url(url).unwrap_err().to_string();
        assert_eq!(
            refusal("http://example.com/"),
            "must use https (http is allowed only with the local-use setting outbound.allow_http)"
        );
        assert_eq!(
            refusal("ftp://example.com/"),
            "scheme `ftp` is not allowed; use https"
        );
        assert_eq!(
            refusal("https://user:pw@example.com/"),
            "must not contain credentials; use the destination's credential fields"
        );
        assert_eq!(
            refusal("https://Metadata.Google.Internal./"),
            "host `metadata.google.internal` is a local name; allow-list it in outbound.allow_private to use it"
        );
        assert_eq!(
            refusal("https://127.0.0.1/"),
            "address 127.0.0.1 is loopback; such targets are refused unless allow-listed in outbound.allow_private"
        );
        assert_eq!(
            refusal("not a url"),
            "not a valid URL: relative URL without a base"
        );
        assert_eq!(
            policy
                .check_ip("64:ff9b::7f00:1".parse().unwrap())
                .unwrap_err()
                .to_string(),
            "address 64:ff9b::7f00:1 is a NAT64 (64:ff9b::/96) address reaching 127.0.0.1, which is loopback; such targets are refused unless allow-listed in outbound.allow_private"
        );
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
