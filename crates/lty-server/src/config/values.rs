//! Value types that settings are written in and parse into: term lists
//! (a list, or comma-separated text as environment variables give it) and
//! the trusted proxy networks of `limits.trusted_proxies`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A list of terms, written as a list or as comma-separated text (the
/// form environment variables take).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermList(pub Vec<String>);

impl TermList {
    /// A list of the given terms.
    pub fn from_str_list(terms: &[&str]) -> Self {
        Self(terms.iter().map(|t| (*t).to_owned()).collect())
    }
}

impl Serialize for TermList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for TermList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let list = match Raw::deserialize(d)? {
            Raw::Text(t) => t.split(',').map(str::to_owned).collect(),
            Raw::List(l) => l,
        };
        Ok(Self(
            list.into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        ))
    }
}

/// One trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Read from a list or a
/// comma-separated string (`10.0.0.1, 10.1.0.0/16`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(IpNet::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::List(l) => l.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_come_from_a_list_or_comma_separated_text() {
        let t: TermList = serde_json::from_str(r#"" a, b ,,c""#).unwrap();
        assert_eq!(t.0, ["a", "b", "c"]);
        let t: TermList = serde_json::from_str(r#"["x"," "]"#).unwrap();
        assert_eq!(t.0, ["x"]);
    }

    #[test]
    fn cidr_blocks_match_v4_v6_and_mapped_addresses() {
        let p: TrustedProxies = "10.0.0.0/8,fd00::/8,127.0.0.1".parse().unwrap();
        for yes in ["10.255.0.1", "fd12::1", "::ffff:10.0.0.5", "127.0.0.1"] {
            assert!(
                p.contains(yes.parse::<IpAddr>().unwrap().to_canonical()),
                "{yes}"
            );
        }
        for no in ["11.0.0.1", "fe80::1", "127.0.0.2"] {
            assert!(!p.contains(no.parse().unwrap()), "{no}");
        }
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("localhost".parse::<TrustedProxies>().is_err());
        let all: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
