//! What the HTTP transport and the OAuth server both need to know about a request's sender,
//! below both of them (so neither imports the other): the client's address as `TRUST_PROXY`
//! resolves it ([`client_ip`], [`ClientAddr`]), and the bucket a rate limit or a session cap
//! counts it in ([`AddrBucket`]: an IPv4 address, or an IPv6 /64, the smallest block one
//! subscriber usually gets, so that rotating through one's own /64 buys nothing), and the mark of
//! an answer that is a page for a person ([`HtmlPage`]), which the JSON error layer leaves alone.

use std::net::IpAddr;

use crate::config::TrustProxy;

/// The client's address as the request handlers and the logs see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unknown"),
        }
    }
}

/// The client address by 1.7.0's `TRUST_PROXY` rules (Express's `trust proxy`): untrusted, the
/// peer; `true`, the left-most `X-Forwarded-For` entry; a hop count `n`, the address `n` hops
/// from the peer; a list, the first address from the right that the list does not trust.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trust: &TrustProxy,
) -> Option<IpAddr> {
    let forwarded = || -> Vec<IpAddr> {
        forwarded_for
            .map(|v| {
                v.split(',')
                    .filter_map(|s| parse_ip(s.trim()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    match trust {
        TrustProxy::Unset | TrustProxy::Bool(false) => peer,
        TrustProxy::Bool(true) => forwarded().first().copied().or(peer),
        TrustProxy::Hops(n) => {
            // [peer, right-most forwarded, …, left-most forwarded]
            let chain: Vec<IpAddr> = peer
                .into_iter()
                .chain(forwarded().into_iter().rev())
                .collect();
            let i = (*n as usize).min(chain.len().saturating_sub(1));
            chain.get(i).copied()
        }
        TrustProxy::List(items) => {
            let peer = peer?;
            let mut current = peer;
            if !trusted(current, items) {
                return Some(current);
            }
            for hop in forwarded().into_iter().rev() {
                current = hop;
                if !trusted(current, items) {
                    break;
                }
            }
            Some(current)
        }
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim_start_matches('[');
    let s = s.split_once(']').map_or(s, |(ip, _)| ip);
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| {
            // `1.2.3.4:5678`
            s.rsplit_once(':')
                .and_then(|(ip, _)| ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4))
        })
        .map(canonical)
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn trusted(ip: IpAddr, items: &[String]) -> bool {
    let ip = canonical(ip);
    items.iter().any(|item| match item.as_str() {
        "loopback" => in_any(ip, &["127.0.0.0/8", "::1/128"]),
        "linklocal" => in_any(ip, &["169.254.0.0/16", "fe80::/10"]),
        "uniquelocal" => in_any(
            ip,
            &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
        ),
        other => in_cidr(ip, other),
    })
}

fn in_any(ip: IpAddr, cidrs: &[&str]) -> bool {
    cidrs.iter().any(|c| in_cidr(ip, c))
}

/// Whether `ip` is `cidr` (an address, or `address/bits`).
fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (net, bits) = match cidr.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.parse::<IpAddr>().map(canonical) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

/// Put in a response's extensions by a handler whose error answer is an HTML page for a person
/// (the OAuth consent page after a wrong password): the JSON error layer keeps it as it is.
#[derive(Debug, Clone, Copy)]
pub struct HtmlPage;

/// The rate-limit and session-cap bucket of an address: IPv4 as it is, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrBucket(IpAddr);

impl AddrBucket {
    /// The bucket `ip` falls in.
    pub fn of(ip: IpAddr) -> AddrBucket {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & (u128::MAX << 64);
                AddrBucket(IpAddr::V6(bits.into()))
            }
            v4 => AddrBucket(v4),
        }
    }
}

impl std::fmt::Display for AddrBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_follows_trust_proxy() {
        let peer: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        let xff = Some("203.0.113.7, 198.51.100.1, 10.0.0.9");
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, xff, &TrustProxy::Unset), peer);
        assert_eq!(client_ip(peer, xff, &TrustProxy::Bool(false)), peer);
        assert_eq!(
            client_ip(peer, xff, &TrustProxy::Bool(true)),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip(peer, xff, &TrustProxy::Hops(0)), peer);
        assert_eq!(client_ip(peer, xff, &TrustProxy::Hops(1)), ip("10.0.0.9"));
        assert_eq!(
            client_ip(peer, xff, &TrustProxy::Hops(2)),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(peer, xff, &TrustProxy::Hops(9)),
            ip("203.0.113.7")
        );
        let list = |items: &[&str]| TrustProxy::List(items.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            client_ip(peer, xff, &list(&["uniquelocal"])),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(peer, xff, &list(&["loopback"])), peer);
        assert_eq!(
            client_ip(peer, xff, &list(&["10.0.0.0/8", "198.51.100.1"])),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip(peer, None, &TrustProxy::Bool(true)), peer);
        assert_eq!(
            client_ip(peer, Some("garbage"), &TrustProxy::Bool(true)),
            peer
        );
        let mapped: Option<IpAddr> = Some("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(
            client_ip(mapped.map(canonical), Some("1.2.3.4"), &list(&["loopback"])),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let a = AddrBucket::of("2001:db8:1:2::1".parse().unwrap());
        let b = AddrBucket::of("2001:db8:1:2:ffff:1:2:3".parse().unwrap());
        let c = AddrBucket::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let v4 = AddrBucket::of("10.0.0.1".parse().unwrap());
        assert_ne!(v4, AddrBucket::of("10.0.0.2".parse().unwrap()));
        assert_eq!(v4, AddrBucket::of("::ffff:10.0.0.1".parse().unwrap()));
    }
}
