//! Link aggregation definitions (feature `net`): the one parser of the
//! command line's `aggr.<N>=ports:net0+net1,lacp:active,policy:l4,
//! timer:fast,ip:...` and of the shell's `aggr create <name> <if> <if>
//! [lacp active|passive|off] [policy L2|L3|L4] [timer fast|slow]` (the
//! words of dladm create-aggr: `-L` mode, `-P` policy, `-T` timer).
//! Defaults: LACP active, policy L4, timer fast, no address.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use cxos_net::config::{ConfigError, IfConfig};
use cxos_net::lacp::{HashPolicy, Mode, Rate};

pub use crate::cmdline::MAX_AGGRS;

/// One aggregation: its member ports (`net<i>` indices), LACP mode and
/// timer, hash policy and the interface's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggrDef {
    pub ports: Vec<usize>,
    pub mode: Mode,
    pub rate: Rate,
    pub policy: HashPolicy,
    pub ip: IfConfig,
}

/// Why a definition was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggrDefError {
    /// Fewer than 2 or more than 4 ports, a port twice, or not `net<i>`.
    Ports(String),
    BadMode(String),
    BadPolicy(String),
    BadTimer(String),
    UnknownKey(String),
    Ip(ConfigError),
}

impl fmt::Display for AggrDefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AggrDefError::Ports(s) => write!(f, "bad ports '{s}' (2 to 4 distinct net<i>)"),
            AggrDefError::BadMode(s) => write!(f, "bad LACP mode '{s}' (active, passive, off)"),
            AggrDefError::BadPolicy(s) => write!(f, "bad policy '{s}' (L2, L3, L4 or a list)"),
            AggrDefError::BadTimer(s) => write!(f, "bad timer '{s}' (fast, slow)"),
            AggrDefError::UnknownKey(s) => write!(f, "unknown aggregation setting '{s}'"),
            AggrDefError::Ip(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for AggrDefError {}

impl Default for AggrDef {
    fn default() -> Self {
        AggrDef {
            ports: Vec::new(),
            mode: Mode::Active,
            rate: Rate::Fast,
            policy: HashPolicy::L4,
            ip: IfConfig::default(),
        }
    }
}

fn port_index(name: &str) -> Option<usize> {
    let n = name.strip_prefix("net")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

impl AggrDef {
    fn set_ports<'a>(&mut self, names: impl Iterator<Item = &'a str>) -> Result<(), AggrDefError> {
        let names: Vec<&str> = names.collect();
        let bad = || AggrDefError::Ports(names.join("+"));
        let mut ports = Vec::new();
        for n in &names {
            let i = port_index(n).ok_or_else(bad)?;
            if ports.contains(&i) {
                return Err(bad());
            }
            ports.push(i);
        }
        if !(2..=4).contains(&ports.len()) {
            return Err(bad());
        }
        self.ports = ports;
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), AggrDefError> {
        match key {
            "lacp" | "mode" => {
                self.mode = match value.to_ascii_lowercase().as_str() {
                    "active" => Mode::Active,
                    "passive" => Mode::Passive,
                    "off" | "static" => Mode::Static,
                    _ => return Err(AggrDefError::BadMode(value.into())),
                }
            }
            "policy" => {
                self.policy =
                    HashPolicy::parse(value).map_err(|_| AggrDefError::BadPolicy(value.into()))?;
            }
            "timer" => {
                self.rate = match value.to_ascii_lowercase().as_str() {
                    "fast" | "short" => Rate::Fast,
                    "slow" | "long" => Rate::Slow,
                    _ => return Err(AggrDefError::BadTimer(value.into())),
                }
            }
            _ => return Err(AggrDefError::UnknownKey(key.into())),
        }
        Ok(())
    }

    /// The shell's words after `aggr create <name>`: the ports, then
    /// `lacp <mode>`, `policy <p>`, `timer <t>` in any order.
    pub fn from_words(words: &str) -> Result<AggrDef, AggrDefError> {
        let mut def = AggrDef::default();
        let mut w = words.split_whitespace().peekable();
        let mut ports = Vec::new();
        while let Some(p) = w.next_if(|p| p.starts_with("net")) {
            ports.push(p);
        }
        def.set_ports(ports.into_iter())?;
        while let Some(key) = w.next() {
            let value = w
                .next()
                .ok_or_else(|| AggrDefError::UnknownKey(key.into()))?;
            def.set(key, value)?;
        }
        Ok(def)
    }

    /// `dladm`-style words for `aggr show`: `lacp active policy L4 timer fast`.
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            Mode::Active => "active",
            Mode::Passive => "passive",
            Mode::Static => "off",
        };
        let mut policy = Vec::new();
        for (on, n) in [
            (self.policy.l2, "L2"),
            (self.policy.l3, "L3"),
            (self.policy.l4, "L4"),
        ] {
            if on {
                policy.push(n);
            }
        }
        let timer = match self.rate {
            Rate::Fast => "fast",
            Rate::Slow => "slow",
        };
        alloc::format!("lacp {mode} policy {} timer {timer}", policy.join(","))
    }
}

/// The command line's syntax: `ports:net0+net1,lacp:active,policy:l4,
/// timer:fast,ip:<cfg>` (`ip:` last: the rest is the interface's
/// configuration, commas included).
impl FromStr for AggrDef {
    type Err = AggrDefError;

    fn from_str(s: &str) -> Result<Self, AggrDefError> {
        let mut def = AggrDef::default();
        let (items, ip) = match s.find("ip:").or_else(|| s.find("ip=")) {
            Some(i) => (&s[..i], Some(&s[i + 3..])),
            None => (s, None),
        };
        let mut have_ports = false;
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.find([':', '=']) {
                Some(i) => (&item[..i], &item[i + 1..]),
                None => (item, ""),
            };
            if key == "ports" {
                def.set_ports(value.split('+'))?;
                have_ports = true;
            } else if key == "policy" {
                // `policy:l3+l4` on the command line (commas separate items).
                def.set(key, &value.replace('+', ","))?;
            } else {
                def.set(key, value)?;
            }
        }
        if !have_ports {
            return Err(AggrDefError::Ports(String::new()));
        }
        if let Some(ip) = ip {
            def.ip = ip.parse().map_err(AggrDefError::Ip)?;
        }
        Ok(def)
    }
}

/// `aggr<N>` names: the number.
pub fn aggr_number(name: &str) -> Option<u32> {
    let n = name.strip_prefix("aggr")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|&n| n < MAX_AGGRS)
}

/// The interface name of aggregation `n`.
pub fn aggr_name(n: u32) -> String {
    let mut s = "aggr".to_string();
    s.push_str(&alloc::format!("{n}"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_form_parses_with_ip_last() {
        let d: AggrDef = "ports:net0+net1,lacp:active,policy:l4,ip:10.19.0.2/24,gw=10.19.0.1"
            .parse()
            .unwrap();
        assert_eq!(d.ports, [0, 1]);
        assert_eq!(
            (d.mode, d.rate, d.policy),
            (Mode::Active, Rate::Fast, HashPolicy::L4)
        );
        assert_eq!(d.ip, "10.19.0.2/24,gw=10.19.0.1".parse().unwrap());
        let d: AggrDef = "ports:net1+net0,lacp:passive,policy:l3+l4,timer:slow"
            .parse()
            .unwrap();
        assert_eq!(d.ports, [1, 0]);
        assert_eq!((d.mode, d.rate), (Mode::Passive, Rate::Slow));
        assert!(d.policy.l3 && d.policy.l4 && !d.policy.l2);
        assert_eq!(d.ip, IfConfig::default());
        let d: AggrDef = "ports:net0+net1,lacp:off,ip:dhcp".parse().unwrap();
        assert_eq!(d.mode, Mode::Static);
        assert_eq!(d.describe(), "lacp off policy L4 timer fast");
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        for (text, want) in [
            ("lacp:active", AggrDefError::Ports(String::new())),
            ("ports:net0", AggrDefError::Ports("net0".into())),
            ("ports:net0+net0", AggrDefError::Ports("net0+net0".into())),
            ("ports:net0+eth1", AggrDefError::Ports("net0+eth1".into())),
            (
                "ports:net0+net1,lacp:on",
                AggrDefError::BadMode("on".into()),
            ),
            (
                "ports:net0+net1,policy:l5",
                AggrDefError::BadPolicy("l5".into()),
            ),
            (
                "ports:net0+net1,timer:never",
                AggrDefError::BadTimer("never".into()),
            ),
            (
                "ports:net0+net1,speed:9",
                AggrDefError::UnknownKey("speed".into()),
            ),
        ] {
            assert_eq!(text.parse::<AggrDef>(), Err(want), "{text}");
        }
        assert!(matches!(
            "ports:net0+net1,ip:300.0.0.1/24".parse::<AggrDef>(),
            Err(AggrDefError::Ip(_))
        ));
    }

    #[test]
    fn the_shell_form_takes_options_in_any_order() {
        let d = AggrDef::from_words("net0 net1 policy L2 lacp passive timer slow").unwrap();
        assert_eq!(d.ports, [0, 1]);
        assert_eq!(
            (d.mode, d.rate, d.policy),
            (Mode::Passive, Rate::Slow, HashPolicy::L2)
        );
        let d = AggrDef::from_words("net0 net1").unwrap();
        assert_eq!(d.describe(), "lacp active policy L4 timer fast");
        assert_eq!(
            AggrDef::from_words("net0 net1 lacp"),
            Err(AggrDefError::UnknownKey("lacp".into()))
        );
        assert!(AggrDef::from_words("net0").is_err());
        assert_eq!(aggr_number("aggr0"), Some(0));
        assert_eq!(aggr_number("aggr4"), None);
        assert_eq!(aggr_number("aggr"), None);
        assert_eq!(aggr_name(2), "aggr2");
    }
}
