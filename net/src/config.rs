//! Interface configuration as written on the kernel command line
//! (`net.0=...`) and in the shell.
//!
//! Grammar: `<ipv4>[,key=value]...` where `<ipv4>` is `dhcp`, `none` or an
//! address with its prefix length (`10.0.0.2/24`), and the keys are `gw`
//! (IPv4 default gateway, static addresses only), `ip6` (an IPv6 address
//! with prefix length) and `gw6` (IPv6 default gateway). The IPv4 part may
//! be empty (`,ip6=fd00::2/64`), meaning `none`. With `dhcp`, `lease=N`
//! caps the lease the client uses at N seconds (renewal at half of it;
//! for tests against servers with long minimum leases). `mtu=N` sets the
//! interface's IP MTU when its device opens (1280..=9216: IPv6's minimum
//! to the stack's limit; the device may allow less). The IPv6
//! link-local address (from the MAC) is always configured.

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};

/// How the interface gets its IPv4 address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ipv4Config {
    /// No IPv4 address.
    #[default]
    None,
    /// DHCPv4 client.
    Dhcp,
    Static {
        address: Ipv4Cidr,
        gateway: Option<Ipv4Address>,
    },
}

/// One interface's addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfConfig {
    pub ipv4: Ipv4Config,
    /// A static IPv6 address besides the link-local one.
    pub ipv6: Option<Ipv6Cidr>,
    pub gateway6: Option<Ipv6Address>,
    /// DHCP only: use at most this many seconds of any lease.
    pub max_lease_secs: Option<u32>,
    /// IP MTU the device opens with (its default otherwise).
    pub mtu: Option<u16>,
}

/// Why a configuration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Nothing given.
    Empty,
    /// Not `dhcp`, `none` or `a.b.c.d/len` with len 1..=32.
    BadIpv4Cidr(String),
    /// Not `address/len` with an IPv6 address and len 1..=128.
    BadIpv6Cidr(String),
    /// A gateway that is not an address of the right family.
    BadGateway(String),
    /// An interface address that is multicast, broadcast, unspecified or
    /// loopback.
    NotUnicast(String),
    /// An item that is not `gw=`, `ip6=` or `gw6=`.
    UnknownKey(String),
    /// The same key twice.
    Duplicate(&'static str),
    /// `gw=` with `dhcp` or `none`, or `gw6=` without `ip6=`.
    GatewayWithoutAddress,
    /// The gateway is not on the interface's subnet.
    GatewayOutsideSubnet(String),
    /// `lease=` is not a number of seconds in 1..=2^31.
    BadLease(String),
    /// `lease=` without `dhcp`.
    LeaseWithoutDhcp,
    /// `mtu=` is not a number in 1280..=9216.
    BadMtu(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Empty => f.write_str("empty interface configuration"),
            ConfigError::BadIpv4Cidr(s) => {
                write!(f, "'{s}' is not dhcp, none or an IPv4 address/prefix")
            }
            ConfigError::BadIpv6Cidr(s) => write!(f, "'{s}' is not an IPv6 address/prefix"),
            ConfigError::BadGateway(s) => write!(f, "'{s}' is not a gateway address"),
            ConfigError::NotUnicast(s) => write!(f, "{s} is not a unicast address"),
            ConfigError::UnknownKey(s) => {
                write!(
                    f,
                    "unknown item '{s}' (expected gw=, ip6=, gw6=, lease= or mtu=)"
                )
            }
            ConfigError::Duplicate(k) => write!(f, "'{k}=' given twice"),
            ConfigError::GatewayWithoutAddress => {
                f.write_str("a gateway needs a static address of its family")
            }
            ConfigError::GatewayOutsideSubnet(s) => {
                write!(f, "gateway {s} is not on the interface's subnet")
            }
            ConfigError::BadLease(s) => write!(f, "'{s}' is not a lease time in seconds"),
            ConfigError::LeaseWithoutDhcp => f.write_str("lease= needs dhcp"),
            ConfigError::BadMtu(s) => write!(f, "'{s}' is not an MTU in 1280..=9216"),
        }
    }
}

fn parse_prefixed<A: FromStr>(s: &str, max: u8) -> Option<(A, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (1..=max).contains(&len).then_some((addr, len))
}

fn parse_ipv4_cidr(s: &str) -> Result<Ipv4Cidr, ConfigError> {
    let (addr, len): (Ipv4Address, u8) =
        parse_prefixed(s, 32).ok_or_else(|| ConfigError::BadIpv4Cidr(s.to_string()))?;
    let cidr = Ipv4Cidr::new(addr, len);
    let broadcast = len < 31 && cidr.broadcast() == Some(addr);
    if addr.is_multicast()
        || addr.is_broadcast()
        || addr.is_unspecified()
        || addr.is_loopback()
        || broadcast
    {
        return Err(ConfigError::NotUnicast(addr.to_string()));
    }
    Ok(cidr)
}

fn parse_ipv6_cidr(s: &str) -> Result<Ipv6Cidr, ConfigError> {
    let (addr, len): (Ipv6Address, u8) =
        parse_prefixed(s, 128).ok_or_else(|| ConfigError::BadIpv6Cidr(s.to_string()))?;
    if addr.is_multicast() || addr.is_unspecified() || addr.is_loopback() {
        return Err(ConfigError::NotUnicast(addr.to_string()));
    }
    Ok(Ipv6Cidr::new(addr, len))
}

impl FromStr for IfConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ConfigError::Empty);
        }
        let mut items = s.split(',').map(str::trim);
        let first = items.next().unwrap_or("");
        let mut ipv4 = match first {
            "dhcp" => Ipv4Config::Dhcp,
            "none" | "" => Ipv4Config::None,
            cidr => Ipv4Config::Static {
                address: parse_ipv4_cidr(cidr)?,
                gateway: None,
            },
        };
        let mut cfg = IfConfig::default();
        let mut gw: Option<Ipv4Address> = None;
        for item in items {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::UnknownKey(item.to_string()))?;
            match key {
                "gw" => {
                    if gw.is_some() {
                        return Err(ConfigError::Duplicate("gw"));
                    }
                    gw = Some(
                        value
                            .parse()
                            .map_err(|_| ConfigError::BadGateway(value.to_string()))?,
                    );
                }
                "ip6" => {
                    if cfg.ipv6.is_some() {
                        return Err(ConfigError::Duplicate("ip6"));
                    }
                    cfg.ipv6 = Some(parse_ipv6_cidr(value)?);
                }
                "gw6" => {
                    if cfg.gateway6.is_some() {
                        return Err(ConfigError::Duplicate("gw6"));
                    }
                    cfg.gateway6 = Some(
                        value
                            .parse()
                            .map_err(|_| ConfigError::BadGateway(value.to_string()))?,
                    );
                }
                "lease" => {
                    if cfg.max_lease_secs.is_some() {
                        return Err(ConfigError::Duplicate("lease"));
                    }
                    cfg.max_lease_secs = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|s| (1..=1 << 31).contains(s))
                            .ok_or_else(|| ConfigError::BadLease(value.to_string()))?,
                    );
                }
                "mtu" => {
                    if cfg.mtu.is_some() {
                        return Err(ConfigError::Duplicate("mtu"));
                    }
                    cfg.mtu = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|m| (1280..=9216).contains(m))
                            .ok_or_else(|| ConfigError::BadMtu(value.to_string()))?,
                    );
                }
                _ => return Err(ConfigError::UnknownKey(item.to_string())),
            }
        }
        if cfg.max_lease_secs.is_some() && ipv4 != Ipv4Config::Dhcp {
            return Err(ConfigError::LeaseWithoutDhcp);
        }
        if let Some(g) = gw {
            match &mut ipv4 {
                Ipv4Config::Static { address, gateway } => {
                    if !address.contains_addr(&g) || g == address.address() {
                        return Err(ConfigError::GatewayOutsideSubnet(g.to_string()));
                    }
                    *gateway = Some(g);
                }
                _ => return Err(ConfigError::GatewayWithoutAddress),
            }
        }
        if let Some(g) = cfg.gateway6 {
            let Some(net) = cfg.ipv6 else {
                return Err(ConfigError::GatewayWithoutAddress);
            };
            // A link-local router is always reachable on the link.
            if !(net.contains_addr(&g) || g.is_unicast_link_local()) {
                return Err(ConfigError::GatewayOutsideSubnet(g.to_string()));
            }
        }
        cfg.ipv4 = ipv4;
        Ok(cfg)
    }
}

impl fmt::Display for IfConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ipv4 {
            Ipv4Config::None => f.write_str("none")?,
            Ipv4Config::Dhcp => {
                f.write_str("dhcp")?;
                if let Some(s) = self.max_lease_secs {
                    write!(f, ",lease={s}")?;
                }
            }
            Ipv4Config::Static { address, gateway } => {
                write!(f, "{address}")?;
                if let Some(g) = gateway {
                    write!(f, ",gw={g}")?;
                }
            }
        }
        if let Some(a) = self.ipv6 {
            write!(f, ",ip6={a}")?;
        }
        if let Some(g) = self.gateway6 {
            write!(f, ",gw6={g}")?;
        }
        if let Some(m) = self.mtu {
            write!(f, ",mtu={m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn v4(a: [u8; 4]) -> Ipv4Address {
        Ipv4Address::new(a[0], a[1], a[2], a[3])
    }

    #[test]
    fn the_documented_forms_parse() {
        assert_eq!(
            "dhcp".parse::<IfConfig>().unwrap(),
            IfConfig {
                ipv4: Ipv4Config::Dhcp,
                ..IfConfig::default()
            }
        );
        let c: IfConfig = "10.0.0.2/24".parse().unwrap();
        assert_eq!(
            c.ipv4,
            Ipv4Config::Static {
                address: Ipv4Cidr::new(v4([10, 0, 0, 2]), 24),
                gateway: None
            }
        );
        let c: IfConfig = "10.0.0.2/24,gw=10.0.0.1".parse().unwrap();
        assert_eq!(
            c.ipv4,
            Ipv4Config::Static {
                address: Ipv4Cidr::new(v4([10, 0, 0, 2]), 24),
                gateway: Some(v4([10, 0, 0, 1]))
            }
        );
        let c: IfConfig = "10.0.0.2/24,gw=10.0.0.1,ip6=fd00::2/64".parse().unwrap();
        assert_eq!(c.ipv6, Some(Ipv6Cidr::new("fd00::2".parse().unwrap(), 64)));
        let c: IfConfig = ",ip6=fd00::2/64".parse().unwrap();
        assert_eq!(c.ipv4, Ipv4Config::None);
        assert!(c.ipv6.is_some());
        let c: IfConfig = "dhcp, ip6=fd00::2/64, gw6=fe80::1".parse().unwrap();
        assert_eq!(c.ipv4, Ipv4Config::Dhcp);
        assert_eq!(c.gateway6, Some("fe80::1".parse().unwrap()));
        assert_eq!("none".parse::<IfConfig>().unwrap(), IfConfig::default());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "dhcp",
            "none",
            "10.0.0.2/24",
            "10.0.0.2/24,gw=10.0.0.1",
            "dhcp,ip6=fd00::2/64",
            "dhcp,lease=20,ip6=fd00::2/64",
            "192.168.7.9/16,gw=192.168.0.1,ip6=fd00:1::5/48,gw6=fd00:1::1",
        ] {
            let c: IfConfig = s.parse().unwrap();
            assert_eq!(format!("{c}"), s);
            assert_eq!(format!("{c}").parse::<IfConfig>().unwrap(), c);
        }
    }

    #[test]
    fn bad_input_gets_a_typed_error() {
        let e = |s: &str| s.parse::<IfConfig>().unwrap_err();
        assert_eq!(e(""), ConfigError::Empty);
        assert_eq!(e("  "), ConfigError::Empty);
        assert_eq!(e("dchp"), ConfigError::BadIpv4Cidr("dchp".into()));
        assert_eq!(e("10.0.0.2"), ConfigError::BadIpv4Cidr("10.0.0.2".into()));
        assert_eq!(
            e("10.0.0.2/33"),
            ConfigError::BadIpv4Cidr("10.0.0.2/33".into())
        );
        assert_eq!(
            e("10.0.0.2/0"),
            ConfigError::BadIpv4Cidr("10.0.0.2/0".into())
        );
        assert_eq!(
            e("10.0.0.256/24"),
            ConfigError::BadIpv4Cidr("10.0.0.256/24".into())
        );
        assert_eq!(
            e("224.0.0.1/24"),
            ConfigError::NotUnicast("224.0.0.1".into())
        );
        assert_eq!(
            e("10.0.0.255/24"),
            ConfigError::NotUnicast("10.0.0.255".into())
        );
        assert_eq!(e("0.0.0.0/8"), ConfigError::NotUnicast("0.0.0.0".into()));
        assert_eq!(e("10.0.0.2/24,gw=x"), ConfigError::BadGateway("x".into()));
        assert_eq!(
            e("10.0.0.2/24,gw=10.0.1.1"),
            ConfigError::GatewayOutsideSubnet("10.0.1.1".into())
        );
        assert_eq!(
            e("10.0.0.2/24,gw=10.0.0.2"),
            ConfigError::GatewayOutsideSubnet("10.0.0.2".into())
        );
        assert_eq!(e("dhcp,gw=10.0.0.1"), ConfigError::GatewayWithoutAddress);
        assert_eq!(e("dhcp,gw6=fd00::1"), ConfigError::GatewayWithoutAddress);
        assert_eq!(
            e("10.0.0.2/24,gw=10.0.0.1,gw=10.0.0.3"),
            ConfigError::Duplicate("gw")
        );
        assert_eq!(e("dhcp,mtu=80000"), ConfigError::BadMtu("80000".into()));
        assert_eq!(e("dhcp,mtu=1279"), ConfigError::BadMtu("1279".into()));
        assert_eq!(e("dhcp,mtu=9000,mtu=1500"), ConfigError::Duplicate("mtu"));
        let c: IfConfig = "dhcp,mtu=9000".parse().unwrap();
        assert_eq!((c.ipv4, c.mtu), (Ipv4Config::Dhcp, Some(9000)));
        assert_eq!(format!("{c}"), "dhcp,mtu=9000");
        assert_eq!(e("dhcp,fast"), ConfigError::UnknownKey("fast".into()));
        assert_eq!(e("dhcp,lease=0"), ConfigError::BadLease("0".into()));
        assert_eq!(e("dhcp,lease=x"), ConfigError::BadLease("x".into()));
        assert_eq!(e("dhcp,lease=5,lease=6"), ConfigError::Duplicate("lease"));
        assert_eq!(e("10.0.0.2/24,lease=20"), ConfigError::LeaseWithoutDhcp);
        assert_eq!(
            "dhcp,lease=20".parse::<IfConfig>().unwrap().max_lease_secs,
            Some(20)
        );
        assert_eq!(
            e("dhcp,ip6=fd00::2"),
            ConfigError::BadIpv6Cidr("fd00::2".into())
        );
        assert_eq!(
            e("dhcp,ip6=ff02::1/64"),
            ConfigError::NotUnicast("ff02::1".into())
        );
        assert_eq!(
            e("dhcp,ip6=fd00::2/64,gw6=fd01::1"),
            ConfigError::GatewayOutsideSubnet("fd01::1".into())
        );
        // Every error has a one-line message.
        assert!(!format!("{}", e("dchp")).contains('\n'));
    }
}
