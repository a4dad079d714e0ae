//! VNIC definitions (feature `net`): the one parser of the VNIC syntax of
//! the command line (`vnic.<N>=...`) and the shell (`vnic create ...`),
//! producing the driver's [`VnicSpec`] and the interface's [`IfConfig`],
//! and the table of defined VNICs by number.
//!
//! Syntax: items separated by ',' (or spaces), any order, each optional,
//! `:` or `=` after the key:
//! `mac:<aa:bb:cc:dd:ee:ff|auto>` (default auto: the driver generates a
//! locally administered MAC), `vlan:<1..4094>` (default untagged),
//! `queues:<1|2|4..64>` (receive queues, default 1; more than one: RSS,
//! with several CPUs queues 1.. received on the next CPUs, see the
//! kernel's `rxspread`),
//! `over:net<i>` (the port it is on, default net0: the first function) or
//! `over:aggr<n>` (a VNIC on every member of that aggregation),
//! `ip:<dhcp|none|a.b.c.d/nn>` (default none) followed by cxos-net's
//! `gw=`, `ip6=`, `gw6=`, `lease=`, `mtu=` items (`mtu=N`: the VNIC's IP
//! MTU, at most its port's), `cpu:<n>` (the CPU that owns it: polls its
//! queues, runs its stack and apps; default round-robin; `cpu <n>` with a
//! space works too, as the shell's `vnic create ... cpu 1`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use cxos_net::config::{ConfigError, IfConfig};
use mlx5::vnic::VnicSpec;
use mlx5::vport::Mac;

use crate::cmdline::MAX_VNICS;

/// The highest CPU a VNIC can name (the kernel starts at most 16).
pub const MAX_CPU: u8 = 15;

/// One VNIC: what the adapter steers to it, and its stack's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VnicDef {
    pub spec: VnicSpec,
    pub ip: IfConfig,
    /// What it is on: a port (`over:net1`; default the first) or an
    /// aggregation (`over:aggr0`).
    pub over: Over,
    /// The CPU that owns it (`None`: round-robin).
    pub cpu: Option<u8>,
}

/// Where a VNIC lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// Port `net<i>`.
    Port(u8),
    /// Aggregation `aggr<n>`: a VNIC on every member.
    Aggr(u8),
}

impl Default for Over {
    fn default() -> Self {
        Over::Port(0)
    }
}

/// Why a VNIC definition was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VnicDefError {
    BadMac(String),
    BadVlan(String),
    BadQueues(String),
    BadOver(String),
    BadCpu(String),
    UnknownKey(String),
    IpTwice,
    /// A `gw=`/`ip6=`/`gw6=`/`lease=` item before any `ip:`.
    IpItemFirst(String),
    Ip(ConfigError),
}

impl fmt::Display for VnicDefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VnicDefError::BadMac(s) => write!(f, "bad MAC address '{s}'"),
            VnicDefError::BadVlan(s) => write!(f, "bad VLAN id '{s}' (1..=4094)"),
            VnicDefError::BadQueues(s) => write!(f, "bad queue count '{s}' (1, 2, 4 .. 64)"),
            VnicDefError::BadOver(s) => write!(f, "bad port '{s}' (net0 .. net7, aggr0 .. aggr3)"),
            VnicDefError::BadCpu(s) => {
                write!(f, "bad CPU '{s}' (0 .. {MAX_CPU})")
            }
            VnicDefError::UnknownKey(s) => write!(f, "unknown VNIC setting '{s}'"),
            VnicDefError::IpTwice => f.write_str("ip given twice"),
            VnicDefError::IpItemFirst(s) => write!(f, "'{s}' needs ip: before it"),
            VnicDefError::Ip(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for VnicDefError {}

/// IfConfig keys that continue an `ip:` item (`ip:10.0.0.2/24,gw=10.0.0.1`).
const IP_KEYS: &[&str] = &["gw=", "ip6=", "gw6=", "lease="];

/// Six hex bytes separated by ':' or '-'.
fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in m.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(m))
}

impl FromStr for VnicDef {
    type Err = VnicDefError;

    fn from_str(s: &str) -> Result<Self, VnicDefError> {
        let mut spec = VnicSpec {
            mac: None,
            vlan: None,
            queues: 1,
        };
        let mut ip: Option<String> = None;
        let mut over = Over::default();
        let mut cpu = None;
        // `mtu=` may come anywhere; cxos-net's parser checks it.
        let mut mtu: Option<&str> = None;
        let mut items = s.split([',', ' ']).map(str::trim).filter(|i| !i.is_empty());
        while let Some(item) = items.next() {
            if item.starts_with("mtu=") {
                if mtu.replace(item).is_some() {
                    return Err(VnicDefError::Ip(ConfigError::Duplicate("mtu")));
                }
                continue;
            }
            if IP_KEYS.iter().any(|k| item.starts_with(k)) {
                let Some(cfg) = ip.as_mut() else {
                    return Err(VnicDefError::IpItemFirst(item.into()));
                };
                cfg.push(',');
                cfg.push_str(item);
                continue;
            }
            let (key, value) = match item.find([':', '=']) {
                Some(i) => (&item[..i], &item[i + 1..]),
                None => (item, ""),
            };
            match key {
                "mac" if value == "auto" => spec.mac = None,
                "mac" => {
                    spec.mac = Some(parse_mac(value).ok_or(VnicDefError::BadMac(value.into()))?);
                }
                "vlan" => {
                    let v = value
                        .parse::<u16>()
                        .ok()
                        .filter(|v| (1..=4094).contains(v))
                        .ok_or_else(|| VnicDefError::BadVlan(value.into()))?;
                    spec.vlan = Some(v);
                }
                "queues" => {
                    let q = value
                        .parse::<u8>()
                        .ok()
                        .filter(|q| (1..=64).contains(q) && q.is_power_of_two())
                        .ok_or_else(|| VnicDefError::BadQueues(value.into()))?;
                    spec.queues = q;
                }
                "over" => {
                    let number = |prefix: &str, max: usize| {
                        value
                            .strip_prefix(prefix)
                            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|n| n.parse::<u8>().ok())
                            .filter(|&n| usize::from(n) < max)
                    };
                    over = number("net", crate::cmdline::MAX_INTERFACES)
                        .map(Over::Port)
                        .or_else(|| {
                            number("aggr", crate::aggr_def::MAX_AGGRS as usize).map(Over::Aggr)
                        })
                        .ok_or_else(|| VnicDefError::BadOver(value.into()))?;
                }
                "cpu" => {
                    // `cpu 1`: the value is the next word.
                    let value = if value.is_empty() && item == "cpu" {
                        items.next().unwrap_or("")
                    } else {
                        value
                    };
                    let c = value
                        .parse::<u8>()
                        .ok()
                        .filter(|c| *c <= MAX_CPU)
                        .ok_or_else(|| VnicDefError::BadCpu(value.into()))?;
                    cpu = Some(c);
                }
                "ip" => {
                    if ip.is_some() {
                        return Err(VnicDefError::IpTwice);
                    }
                    ip = Some(value.to_string());
                }
                _ => return Err(VnicDefError::UnknownKey(item.into())),
            }
        }
        let mut ip = ip.unwrap_or_else(|| "none".into());
        if let Some(m) = mtu {
            ip.push(',');
            ip.push_str(m);
        }
        let ip = IfConfig::from_str(&ip).map_err(VnicDefError::Ip)?;
        Ok(VnicDef {
            spec,
            ip,
            over,
            cpu,
        })
    }
}

impl fmt::Display for VnicDef {
    /// The syntax it parses from: `mac:..,vlan:..,queues:..,ip:..`
    /// (`mac:auto` when the driver picks the MAC, no `vlan` when untagged).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.over {
            Over::Port(0) => {}
            Over::Port(i) => write!(f, "over:net{i},")?,
            Over::Aggr(n) => write!(f, "over:aggr{n},")?,
        }
        match self.spec.mac {
            Some(m) => write!(f, "mac:{m},")?,
            None => f.write_str("mac:auto,")?,
        }
        if let Some(v) = self.spec.vlan {
            write!(f, "vlan:{v},")?;
        }
        write!(f, "queues:{},ip:{}", self.spec.queues, self.ip)?;
        if let Some(c) = self.cpu {
            write!(f, ",cpu:{c}")?;
        }
        Ok(())
    }
}

impl VnicDef {
    /// The CPU that owns VNIC `n` (whatever it is over: a port or an
    /// aggregation) on a machine with `cpus` CPUs online (`online(c)`:
    /// CPU c runs): the one `cpu:` names, refused when it is not online;
    /// by default round-robin from CPU 1 (`(n + 1) mod cpus`: the ports'
    /// own interfaces and the aggregations are on CPU 0).
    pub fn owner_cpu(
        &self,
        n: u32,
        cpus: usize,
        online: impl Fn(usize) -> bool,
    ) -> Result<usize, String> {
        match self.cpu {
            Some(c) if online(usize::from(c)) => Ok(usize::from(c)),
            Some(c) => Err(alloc::format!("no CPU {c} online")),
            None => Ok((n as usize + 1) % cpus.max(1)),
        }
    }
}

/// The defined VNICs by number (`vnic<N>`, N below [`MAX_VNICS`]), in
/// number order. Definitions outlive the adapter: every attach creates
/// them again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VnicDefs {
    defs: Vec<(u32, VnicDef)>,
}

impl VnicDefs {
    pub const fn new() -> Self {
        Self { defs: Vec::new() }
    }

    /// Define (or redefine) VNIC `n`; false if `n` is out of range.
    pub fn define(&mut self, n: u32, def: VnicDef) -> bool {
        if n >= MAX_VNICS {
            return false;
        }
        match self.defs.binary_search_by_key(&n, |(m, _)| *m) {
            Ok(i) => self.defs[i].1 = def,
            Err(i) => self.defs.insert(i, (n, def)),
        }
        true
    }

    /// Define `def` under the lowest free number; `None` when all are in
    /// use.
    pub fn define_next(&mut self, def: VnicDef) -> Option<u32> {
        let n = (0..MAX_VNICS).find(|n| self.get(*n).is_none())?;
        self.define(n, def);
        Some(n)
    }

    /// Forget VNIC `n`; false if it was not defined.
    pub fn remove(&mut self, n: u32) -> bool {
        let before = self.defs.len();
        self.defs.retain(|(m, _)| *m != n);
        self.defs.len() != before
    }

    pub fn get(&self, n: u32) -> Option<&VnicDef> {
        self.defs.iter().find(|(m, _)| *m == n).map(|(_, d)| d)
    }

    /// Give VNIC `n` new addresses; false if it is not defined.
    pub fn set_ip(&mut self, n: u32, ip: IfConfig) -> bool {
        match self.defs.iter_mut().find(|(m, _)| *m == n) {
            Some((_, d)) => {
                d.ip = ip;
                true
            }
            None => false,
        }
    }

    /// Every definition, by number.
    pub fn list(&self) -> Vec<(u32, VnicDef)> {
        self.defs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use cxos_net::Ipv4Config;

    fn def(s: &str) -> VnicDef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_owner_is_the_named_cpu_if_online_else_round_robin_from_cpu_1() {
        let online = |c: usize| c < 2;
        let d = def("over:aggr0,cpu:1");
        assert_eq!(d.owner_cpu(5, 2, online), Ok(1));
        assert_eq!(
            def("over:aggr0,cpu 3").owner_cpu(5, 2, online),
            Err("no CPU 3 online".into())
        );
        let d = def("over:aggr0");
        assert_eq!(
            [0, 1, 2, 3].map(|n| d.owner_cpu(n, 2, online)),
            [Ok(1), Ok(0), Ok(1), Ok(0)]
        );
        // One CPU: everything on it (and cpu:0 is always there).
        assert_eq!(d.owner_cpu(4, 1, |c| c == 0), Ok(0));
        assert_eq!(def("cpu:0").owner_cpu(4, 1, |c| c == 0), Ok(0));
        assert_eq!(d.owner_cpu(4, 0, |c| c == 0), Ok(0));
    }

    #[test]
    fn a_vnic_names_its_port_with_over() {
        assert_eq!(def("ip:dhcp").over, Over::Port(0));
        let a = def("vlan:19,over:aggr0");
        assert_eq!(a.over, Over::Aggr(0));
        assert_eq!(def(&format!("{a}")), a);
        let d = def("over:net1,vlan:10,ip:10.0.10.2/24");
        assert_eq!((d.over, d.spec.vlan), (Over::Port(1), Some(10)));
        assert_eq!(
            format!("{d}"),
            format!("over:net1,mac:auto,vlan:10,queues:1,ip:{}", d.ip)
        );
        assert_eq!(def(&format!("{d}")), d);
        for bad in [
            "over:eth1",
            "over:net",
            "over:net8",
            "over:net1x",
            "over:aggr4",
        ] {
            assert_eq!(
                bad.parse::<VnicDef>(),
                Err(VnicDefError::BadOver(bad["over:".len()..].into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_setting_parses_in_any_order() {
        let d = def("ip:10.0.0.2/24,gw=10.0.0.1,queues:2,vlan:10,mac:02:00:00:00:00:01");
        assert_eq!(
            d.spec,
            VnicSpec {
                mac: Some(Mac([2, 0, 0, 0, 0, 1])),
                vlan: Some(10),
                queues: 2
            }
        );
        assert_eq!(d.ip, "10.0.0.2/24,gw=10.0.0.1".parse().unwrap());
        assert_eq!(def("mac:auto,ip:dhcp,mtu=9000").ip.mtu, Some(9000));
        assert_eq!(def("mtu=1400,vlan:5").ip.mtu, Some(1400));
        // Spaces separate too, '=' works after a key, '-' inside a MAC.
        let d = def("mac=02-00-00-00-00-02 vlan=20 ip=dhcp lease=60");
        assert_eq!(d.spec.mac, Some(Mac([2, 0, 0, 0, 0, 2])));
        assert_eq!(d.spec.vlan, Some(20));
        assert_eq!(d.ip.ipv4, Ipv4Config::Dhcp);
        assert_eq!(d.ip.max_lease_secs, Some(60));
    }

    #[test]
    fn defaults_are_auto_mac_untagged_one_queue_no_address() {
        for text in ["", "mac:auto", "ip:none"] {
            let d = def(text);
            assert_eq!(
                d.spec,
                VnicSpec {
                    mac: None,
                    vlan: None,
                    queues: 1
                },
                "{text}"
            );
            assert_eq!(d.ip, "none".parse().unwrap(), "{text}");
        }
    }

    #[test]
    fn a_vnic_is_pinned_to_a_cpu_with_cpu() {
        assert_eq!(def("ip:dhcp").cpu, None);
        assert_eq!(def("vlan:5,cpu:1").cpu, Some(1));
        assert_eq!(def("cpu=2,vlan:5").cpu, Some(2));
        // The shell's spelling: `vnic create vlan:5 cpu 1`.
        let d = def("vlan:5 cpu 1 ip:dhcp");
        assert_eq!((d.cpu, d.spec.vlan), (Some(1), Some(5)));
        assert_eq!(d.ip.ipv4, Ipv4Config::Dhcp);
        assert_eq!(format!("{d}"), "mac:auto,vlan:5,queues:1,ip:dhcp,cpu:1");
        assert_eq!(def(&format!("{d}")), d);
        let e = |s: &str| s.parse::<VnicDef>().unwrap_err();
        assert_eq!(e("cpu"), VnicDefError::BadCpu("".into()));
        assert_eq!(e("cpu:x"), VnicDefError::BadCpu("x".into()));
        assert_eq!(e("cpu 300"), VnicDefError::BadCpu("300".into()));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "mac:auto,queues:1,ip:none",
            "mac:02:00:00:00:00:01,vlan:10,queues:4,ip:10.0.10.2/24,gw=10.0.10.1",
            "mac:auto,vlan:4094,queues:64,ip:dhcp",
        ] {
            let d = def(text);
            assert_eq!(format!("{d}"), text);
            assert_eq!(def(&format!("{d}")), d);
        }
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let e = |s: &str| s.parse::<VnicDef>().unwrap_err();
        assert_eq!(e("vlan:0"), VnicDefError::BadVlan("0".into()));
        assert_eq!(e("vlan:4095"), VnicDefError::BadVlan("4095".into()));
        assert_eq!(e("vlan"), VnicDefError::BadVlan("".into()));
        assert_eq!(e("queues:3"), VnicDefError::BadQueues("3".into()));
        assert_eq!(e("queues:128"), VnicDefError::BadQueues("128".into()));
        assert_eq!(
            e("mac:02:00:00:00:00"),
            VnicDefError::BadMac("02:00:00:00:00".into())
        );
        assert_eq!(
            e("mac:02:00:00:00:00:001"),
            VnicDefError::BadMac("02:00:00:00:00:001".into())
        );
        assert_eq!(e("color:red"), VnicDefError::UnknownKey("color:red".into()));
        assert_eq!(e("ip:dhcp,ip:none"), VnicDefError::IpTwice);
        assert_eq!(
            e("gw=10.0.0.1"),
            VnicDefError::IpItemFirst("gw=10.0.0.1".into())
        );
        assert!(matches!(e("ip:10.0.0.300/24"), VnicDefError::Ip(_)));
        assert_eq!(
            format!("{}", e("vlan:0")),
            "bad VLAN id '0' (1..=4094)",
            "the console's wording"
        );
    }

    #[test]
    fn the_table_keeps_numbers_in_order_and_fills_the_lowest_free() {
        let mut t = VnicDefs::new();
        assert!(t.define(3, def("vlan:3")));
        assert!(t.define(1, def("vlan:1")));
        assert!(!t.define(MAX_VNICS, def("")));
        assert_eq!(t.define_next(def("vlan:7")), Some(0));
        assert_eq!(t.define_next(def("vlan:8")), Some(2));
        let numbers: Vec<u32> = t.list().iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
        assert!(t.set_ip(1, "dhcp".parse().unwrap()));
        assert_eq!(t.get(1).unwrap().ip.ipv4, Ipv4Config::Dhcp);
        assert!(!t.set_ip(9, "dhcp".parse().unwrap()));
        assert!(t.remove(0));
        assert!(!t.remove(0));
        assert_eq!(t.define_next(def("")), Some(0));
        for _ in 4..MAX_VNICS {
            assert!(t.define_next(def("")).is_some());
        }
        assert_eq!(t.define_next(def("")), None);
    }
}
