//! The kernel command line: space-separated `key=value` words.
//!
//! Known keys: `test=<name>` (run an in-kernel test suite instead of the
//! shell; network apps as `test=<app>:<args>`, see [`test_apps`]),
//! `log=<filter>` (see [`crate::logfilter`]), `attach=on|off`
//! (whether drivers attach the adapters they claim at boot; with `off`
//! they stay claimed and idle until the shell's `attach <pci>`) and
//! `net.<n>=<config>` (network interface `net<n>`, `n` in 0..8: `dhcp`,
//! `none`, `10.0.0.2/24,gw=10.0.0.1[,ip6=fd00::2/64][,mtu=N]`; the kernel
//! checks the value itself, see [`Config::net`]; the port under it takes
//! `speed=`, `led=` and `queues=` items too, see [`port_items`]) and `vnic.<n>=<definition>`
//! (VNIC `vnic<n>`, `n` in 0..64: `mac:..,vlan:..,ip:..,queues:..`, checked
//! by the kernel's VNIC code) and `aggr.<n>=<definition>` (link aggregation
//! `aggr<n>`, `n` in 0..4: `ports:net0+net1,lacp:..,policy:..,ip:..`) and `smp=<n>`
//! (use at most `n` CPUs, the boot CPU included) and `smp-fail=<apic id>`
//! (fault injection for the tests: that application processor parks in
//! the start-up trampoline instead of coming online, so the kernel's
//! "did not come up, skipped" path runs) and `msix=<n>` (bind at most
//! `n` MSI-X vectors per PCI function, as on a platform short of
//! interrupt vectors: mlx5 then has fewer completion vectors than CPUs
//! and CPUs share queue sets). Unknown keys and
//! bad values never stop the boot: they produce a [`Diagnostic`] the kernel
//! prints, and the default stays in force.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::logfilter::LogFilter;

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `test=`: the test suite to run (the kernel checks the name).
    pub test: Option<String>,
    /// `log=`: per-target log levels.
    pub log: LogFilter,
    /// `attach=`: attach drivers at boot (default on).
    pub attach: bool,
    /// `smp=`: the most CPUs to use, at least 1 (default: all).
    pub smp: Option<u16>,
    /// `smp-fail=`: fault injection for the tests, the APIC id of an
    /// application processor to park in the trampoline (never started).
    pub smp_fail: Option<u32>,
    /// `msix=`: the most MSI-X vectors a PCI function gets, at least 1
    /// (default: its table's size).
    pub msix: Option<u16>,
    /// `net.<n>=`: interface index and its configuration text, in command
    /// line order (a later value for the same index replaces an earlier
    /// one, so there is at most one per interface). The text is checked
    /// where the network stack is.
    pub net: heapless::Vec<(usize, String), MAX_INTERFACES>,
    /// `vnic.<n>=`: VNIC number and its definition text (`mac:..,vlan:..,
    /// ip:..,queues:..`), in command line order (a later value for the
    /// same number replaces an earlier one, so there is at most one per
    /// VNIC). Checked where the VNICs are.
    pub vnic: heapless::Vec<(u32, String), { MAX_VNICS as usize }>,
    /// `aggr.<n>=`: link aggregation `aggr<n>` (`n` in 0..4) and its
    /// definition text (`ports:net0+net1,lacp:..,policy:..,timer:..,ip:..`),
    /// checked where the aggregations are.
    pub aggr: heapless::Vec<(u32, String), { MAX_AGGRS as usize }>,
}

/// Aggregation numbers `aggr.<n>=` can name (0..4); here, not in
/// `aggr_def` (feature `net`), because the line is parsed without the
/// network stack too.
pub const MAX_AGGRS: u32 = 4;

/// VNIC numbers `vnic.<n>=` can name (0..64).
pub const MAX_VNICS: u32 = 64;

/// Interfaces `net.<n>=` can name.
pub const MAX_INTERFACES: usize = 8;

impl Default for Config {
    fn default() -> Self {
        Self {
            test: None,
            log: LogFilter::default(),
            attach: true,
            smp: None,
            smp_fail: None,
            msix: None,
            net: heapless::Vec::new(),
            vnic: heapless::Vec::new(),
            aggr: heapless::Vec::new(),
        }
    }
}

impl Config {
    /// The configuration text given for interface `index`, if any.
    pub fn net(&self, index: usize) -> Option<&str> {
        self.net
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, v)| v.as_str())
    }
}

/// The settings of the port under a `net.<n>` interface that its
/// configuration text may carry besides its addresses: the command-line
/// (and `ifconfig`) form of the shell's `speed <pci> ...` and `led <pci>
/// ...`, as `mtu=N` is of `mtu <if> <n>`. E.g.
/// `net.0=dhcp,mtu=9000,speed=10G,led=beacon:30`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortItems {
    /// `speed=auto|<rate>` (rates as `speed` takes them: `10G`, `1000`).
    pub speed: Option<crate::portarg::SpeedArg>,
    /// `led=on|off|beacon[:<seconds>]`.
    pub led: Option<crate::portarg::LedArg>,
    /// The fast path's settings in `ethtool`'s words (`rx-usecs=8`,
    /// `rx_cqe_compress=on`, ...: [`crate::ethtool`]).
    pub tune: crate::ethtool::Tune,
    /// `queues=<1|2|4..64>`: receive queues of the port's own interface
    /// (RSS over them when more than one, as a VNIC's `queues:`);
    /// default 1.
    pub queues: Option<u8>,
}

impl PortItems {
    pub fn is_empty(&self) -> bool {
        self.speed.is_none() && self.led.is_none() && self.tune.is_empty() && self.queues.is_none()
    }
}

/// Take the `speed=`, `led=`, `queues=` and `ethtool` items out of an interface configuration
/// text (anywhere after its first, address item): them, and the rest for
/// cxos-net's `IfConfig`. `Err` names the bad item.
pub fn port_items(text: &str) -> Result<(PortItems, String), String> {
    use crate::portarg::{BEACON_DEFAULT_S, LedArg, SpeedArg, parse_rate};
    let mut items = PortItems::default();
    let mut rest = String::new();
    for (i, item) in text.split(',').map(str::trim).enumerate() {
        match item.split_once('=') {
            Some((k, v)) if i > 0 && crate::ethtool::Tune::is_key(k) => {
                items.tune.set(k, v)?;
            }
            Some(("speed", v)) if i > 0 => {
                if items.speed.is_some() {
                    return Err("'speed=' given twice".into());
                }
                items.speed = Some(match v {
                    "auto" => SpeedArg::Auto,
                    r => SpeedArg::Mbps(
                        parse_rate(r)
                            .ok_or_else(|| alloc::format!("'{r}' is not auto or a rate"))?,
                    ),
                });
            }
            Some(("queues", v)) if i > 0 => {
                if items.queues.is_some() {
                    return Err("'queues=' given twice".into());
                }
                let q = v
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=64).contains(q) && q.is_power_of_two());
                items.queues =
                    Some(q.ok_or_else(|| {
                        alloc::format!("'{v}' is not a queue count (1, 2, 4 .. 64)")
                    })?);
            }
            Some(("led", v)) if i > 0 => {
                if items.led.is_some() {
                    return Err("'led=' given twice".into());
                }
                items.led = Some(match v.split_once(':') {
                    None if v == "on" => LedArg::On,
                    None if v == "off" => LedArg::Off,
                    None if v == "beacon" => LedArg::Beacon(BEACON_DEFAULT_S),
                    Some(("beacon", n)) => match n.parse::<u16>() {
                        Ok(n) if (1..0xffff).contains(&n) => LedArg::Beacon(n),
                        _ => return Err(alloc::format!("'{n}' is not a beacon time in seconds")),
                    },
                    _ => {
                        return Err(alloc::format!("'{v}' is not on, off or beacon[:<seconds>]"));
                    }
                });
            }
            _ => {
                if i > 0 {
                    rest.push(',');
                }
                rest.push_str(item);
            }
        }
    }
    Ok((items, rest))
}

/// One network app of `test=`: its name and its argument line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestApp {
    pub app: String,
    pub args: String,
}

/// The network apps a `test=` value names, run one after the other:
/// `<app>:<args>` items joined by `+`, where commas in `<args>` stand for
/// spaces (the command line splits on spaces), e.g.
/// `test=ping:10.0.0.1,-c,3+ping:fd00::1,-c,3` or
/// `test=iperf3:-c,10.0.0.1,-t,2`. An item without `:` has no arguments
/// (`test=l2recv`). `None` if `value` names no network app (one of the
/// built-in suites such as `selftest`); `Err` for an empty item or
/// app name.
pub fn test_apps(value: &str, apps: &[&str]) -> Option<Result<Vec<TestApp>, String>> {
    let first = value.split(['+', ':']).next().unwrap_or("");
    if !apps.contains(&first) {
        return None;
    }
    let mut out = Vec::new();
    for item in value.split('+') {
        let (app, args) = item.split_once(':').unwrap_or((item, ""));
        if app.is_empty() {
            return Some(Err(alloc::format!("empty item in '{value}'")));
        }
        if !apps.contains(&app) {
            return Some(Err(alloc::format!("unknown app '{app}' in '{value}'")));
        }
        let args: Vec<&str> = args.split(',').filter(|a| !a.is_empty()).collect();
        out.push(TestApp {
            app: app.into(),
            args: args.join(" "),
        });
    }
    Some(Ok(out))
}

/// A problem found in the command line, printed in the contract's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diagnostic {
    UnknownKey(String),
    BadValue {
        key: String,
        value: String,
        /// What stays in force (the default or an earlier value).
        default: String,
        why: String,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey(k) => write!(f, "cmdline: unknown key '{k}' ignored"),
            Self::BadValue {
                key,
                value,
                default,
                ..
            } => write!(
                f,
                "cmdline: bad value '{value}' for '{key}', using {default}"
            ),
        }
    }
}

impl Diagnostic {
    /// Why a value was refused (printed on a second line).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::BadValue { why, .. } => Some(why),
            Self::UnknownKey(_) => None,
        }
    }
}

/// Parse the command line. Non-UTF-8 bytes are replaced before parsing.
pub fn parse(line: &str) -> (Config, Vec<Diagnostic>) {
    let mut config = Config::default();
    let mut diags = Vec::new();
    for (i, word) in line.split_ascii_whitespace().enumerate() {
        // Some loaders pass the kernel's own path first.
        if i == 0 && word.starts_with('/') {
            continue;
        }
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "test" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    diags.push(Diagnostic::BadValue {
                        key: key.into(),
                        value: value.into(),
                        default: config.test.clone().unwrap_or_else(|| "the shell".into()),
                        why: "a test name is expected".into(),
                    });
                } else {
                    config.test = Some(value.into());
                }
            }
            "log" => match LogFilter::parse(value) {
                Ok(f) if !value.is_empty() => config.log = f,
                Ok(_) => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: alloc::format!("{}", config.log),
                    why: "a level or target=level list is expected".into(),
                }),
                Err(e) => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: alloc::format!("{}", config.log),
                    why: alloc::format!("{e}"),
                }),
            },
            "attach" => match value {
                "on" => config.attach = true,
                "off" => config.attach = false,
                _ => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: (if config.attach { "on" } else { "off" }).into(),
                    why: "on or off is expected".into(),
                }),
            },
            "smp" => match value.parse::<u16>() {
                Ok(n) if n >= 1 => config.smp = Some(n),
                _ => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: config
                        .smp
                        .map_or_else(|| "all CPUs".into(), |n| alloc::format!("{n}")),
                    why: "a number of CPUs from 1 is expected".into(),
                }),
            },
            "smp-fail" => match value.parse::<u32>() {
                Ok(id) => config.smp_fail = Some(id),
                _ => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: config
                        .smp_fail
                        .map_or_else(|| "none".into(), |id| alloc::format!("{id}")),
                    why: "an APIC id is expected".into(),
                }),
            },
            "msix" => match value.parse::<u16>() {
                Ok(n) if n >= 1 => config.msix = Some(n),
                _ => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: config
                        .msix
                        .map_or_else(|| "the table's size".into(), |n| alloc::format!("{n}")),
                    why: "a number of vectors from 1 is expected".into(),
                }),
            },
            _ if key.starts_with("net.") => {
                let index = key["net.".len()..]
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < MAX_INTERFACES);
                match index {
                    None => diags.push(Diagnostic::UnknownKey(key.into())),
                    Some(_) if value.is_empty() => diags.push(Diagnostic::BadValue {
                        key: key.into(),
                        value: value.into(),
                        default: "none".into(),
                        why: "dhcp, none or an address/prefix is expected".into(),
                    }),
                    Some(i) => {
                        config.net.retain(|(j, _)| *j != i);
                        // Fits: one entry per index, indices below capacity.
                        let _ = config.net.push((i, value.into()));
                    }
                }
            }
            _ if key.starts_with("vnic.") => {
                let number = key["vnic.".len()..]
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n < MAX_VNICS);
                match number {
                    None => diags.push(Diagnostic::UnknownKey(key.into())),
                    Some(_) if value.is_empty() => diags.push(Diagnostic::BadValue {
                        key: key.into(),
                        value: value.into(),
                        default: "no VNIC".into(),
                        why: "mac:..,vlan:..,ip:..,queues:.. is expected".into(),
                    }),
                    Some(n) => {
                        config.vnic.retain(|(j, _)| *j != n);
                        // Fits: one entry per number, numbers below capacity.
                        let _ = config.vnic.push((n, value.into()));
                    }
                }
            }
            _ if key.starts_with("aggr.") => {
                match key["aggr.".len()..]
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n < MAX_AGGRS)
                {
                    None => diags.push(Diagnostic::UnknownKey(key.into())),
                    Some(n) => {
                        config.aggr.retain(|(j, _)| *j != n);
                        // Fits: one entry per number, numbers below capacity.
                        let _ = config.aggr.push((n, value.into()));
                    }
                }
            }
            _ => diags.push(Diagnostic::UnknownKey(key.into())),
        }
    }
    (config, diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portarg::{LedArg, SpeedArg};
    use log::LevelFilter;

    #[test]
    fn port_items_come_out_of_an_interface_configuration() {
        let (p, rest) = port_items("dhcp,mtu=9000,speed=10G,led=beacon:30").unwrap();
        assert_eq!(rest, "dhcp,mtu=9000");
        let (t, rest) = port_items("dhcp,rx-usecs=8,rx-frames=32,skb_tx_mpwqe=off").unwrap();
        assert_eq!(rest, "dhcp");
        assert_eq!(
            (t.tune.rx_usecs, t.tune.rx_frames, t.tune.skb_tx_mpwqe),
            (Some(8), Some(32), Some(false))
        );
        assert!(port_items("dhcp,rx_cqe_compress=maybe").is_err());
        assert_eq!(p.speed, Some(SpeedArg::Mbps(10_000)));
        assert_eq!(p.led, Some(LedArg::Beacon(30)));
        let (p, rest) = port_items("10.0.0.2/24,led=on,gw=10.0.0.1,speed=auto").unwrap();
        assert_eq!(rest, "10.0.0.2/24,gw=10.0.0.1");
        assert_eq!((p.speed, p.led), (Some(SpeedArg::Auto), Some(LedArg::On)));
        let (p, rest) = port_items("none,led=beacon").unwrap();
        assert_eq!(rest, "none");
        assert_eq!(
            p.led,
            Some(LedArg::Beacon(crate::portarg::BEACON_DEFAULT_S))
        );
        let (p, rest) = port_items("10.0.0.2/24,queues=4,gw=10.0.0.1").unwrap();
        assert_eq!(
            (p.queues, rest.as_str()),
            (Some(4), "10.0.0.2/24,gw=10.0.0.1")
        );
        assert!(!p.is_empty());
        let (p, rest) = port_items("dhcp").unwrap();
        assert!(p.is_empty());
        assert_eq!(rest, "dhcp");
        for (bad, why) in [
            ("dhcp,speed=fast", "'fast' is not auto or a rate"),
            (
                "dhcp,led=blink",
                "'blink' is not on, off or beacon[:<seconds>]",
            ),
            ("dhcp,led=beacon:0", "'0' is not a beacon time in seconds"),
            ("dhcp,speed=1G,speed=10G", "'speed=' given twice"),
            ("dhcp,led=on,led=off", "'led=' given twice"),
            ("dhcp,queues=3", "'3' is not a queue count (1, 2, 4 .. 64)"),
            (
                "dhcp,queues=128",
                "'128' is not a queue count (1, 2, 4 .. 64)",
            ),
            ("dhcp,queues=2,queues=4", "'queues=' given twice"),
        ] {
            assert_eq!(port_items(bad).unwrap_err(), why, "{bad}");
        }
        // The first item is the address part, never a port item.
        assert_eq!(port_items("speed=10G").unwrap().1, "speed=10G");
    }

    #[test]
    fn known_keys() {
        let (c, d) = parse("test=selftest log=warn,pci=trace");
        assert!(d.is_empty());
        assert_eq!(c.test.as_deref(), Some("selftest"));
        assert_eq!(c.log.level_for("pci"), LevelFilter::Trace);
        assert_eq!(c.log.level_for("x"), LevelFilter::Warn);
    }

    #[test]
    fn empty_line_gives_defaults() {
        let (c, d) = parse("   ");
        assert!(d.is_empty());
        assert_eq!(c, Config::default());
        assert_eq!(c.log.level_for("anything"), LevelFilter::Info);
    }

    #[test]
    fn unknown_keys_are_reported() {
        let (c, d) = parse("foo=1 test=selftest bar");
        assert_eq!(c.test.as_deref(), Some("selftest"));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].to_string(), "cmdline: unknown key 'foo' ignored");
        assert_eq!(d[1].to_string(), "cmdline: unknown key 'bar' ignored");
    }

    #[test]
    fn bad_values_keep_defaults() {
        let (c, d) = parse("log=loud test=");
        assert_eq!(c.log, LogFilter::default());
        assert_eq!(c.test, None);
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value 'loud' for 'log', using info"
        );
        assert!(d[0].reason().unwrap().contains("unknown level 'loud'"));
        assert_eq!(
            d[1].to_string(),
            "cmdline: bad value '' for 'test', using the shell"
        );
        let (c, d) = parse("log=");
        assert_eq!(c.log, LogFilter::default());
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn bad_value_names_what_stays_in_force() {
        let (c, d) = parse("test=selftest log=debug test log=x");
        assert_eq!(c.test.as_deref(), Some("selftest"));
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value '' for 'test', using selftest"
        );
        assert_eq!(
            d[1].to_string(),
            "cmdline: bad value 'x' for 'log', using debug"
        );
    }

    #[test]
    fn loader_path_is_skipped() {
        let (c, d) = parse("/boot/cxos test=selftest");
        assert!(d.is_empty());
        assert_eq!(c.test.as_deref(), Some("selftest"));
    }

    #[test]
    fn smp_limits_cpus() {
        assert_eq!(parse("").0.smp, None);
        assert_eq!(parse("smp=2").0.smp, Some(2));
        let (c, d) = parse("smp=3 smp=0");
        assert_eq!(c.smp, Some(3));
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value '0' for 'smp', using 3"
        );
        let (c, d) = parse("smp=many");
        assert_eq!(c.smp, None);
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value 'many' for 'smp', using all CPUs"
        );
    }

    #[test]
    fn msix_limits_vectors() {
        assert_eq!(parse("").0.msix, None);
        assert_eq!(parse("msix=3").0.msix, Some(3));
        let (c, d) = parse("msix=2 msix=0 msix=x");
        assert_eq!(c.msix, Some(2));
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value '0' for 'msix', using 2"
        );
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn smp_fail_names_an_apic_id() {
        assert_eq!(parse("").0.smp_fail, None);
        let (c, d) = parse("smp-fail=1 smp-fail=x");
        assert_eq!(c.smp_fail, Some(1));
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value 'x' for 'smp-fail', using 1"
        );
    }

    #[test]
    fn attach_is_on_unless_switched_off() {
        assert!(parse("").0.attach);
        let (c, d) = parse("attach=off");
        assert!(d.is_empty());
        assert!(!c.attach);
        assert!(parse("attach=off attach=on").0.attach);
        let (c, d) = parse("attach=off attach=maybe");
        assert!(!c.attach);
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value 'maybe' for 'attach', using off"
        );
        assert_eq!(d[0].reason(), Some("on or off is expected"));
    }

    #[test]
    fn net_keys_name_interfaces() {
        let (c, d) = parse("net.0=dhcp net.1=10.0.0.2/24,gw=10.0.0.1 net.0=none");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.net(0), Some("none"));
        assert_eq!(c.net(1), Some("10.0.0.2/24,gw=10.0.0.1"));
        assert_eq!(c.net(2), None);
        let (c, d) = parse("net.8=dhcp net.x=dhcp net.0= net=dhcp");
        assert!(c.net.is_empty());
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].to_string(), "cmdline: unknown key 'net.8' ignored");
        assert_eq!(d[1].to_string(), "cmdline: unknown key 'net.x' ignored");
        assert_eq!(
            d[2].to_string(),
            "cmdline: bad value '' for 'net.0', using none"
        );
        assert_eq!(d[3].to_string(), "cmdline: unknown key 'net' ignored");
    }

    #[test]
    fn aggr_keys_name_aggregations() {
        let (c, d) =
            parse("aggr.0=ports:net0+net1,ip:10.0.0.2/24,gw=10.0.0.1 aggr.4=x aggr.1=a aggr.1=b");
        assert_eq!(
            c.aggr.as_slice(),
            [
                (
                    0,
                    String::from("ports:net0+net1,ip:10.0.0.2/24,gw=10.0.0.1")
                ),
                (1, String::from("b"))
            ]
        );
        assert_eq!(d, [Diagnostic::UnknownKey("aggr.4".into())]);
    }

    #[test]
    fn vnic_keys_name_vnics() {
        let (c, d) = parse("vnic.0=ip:dhcp vnic.12=vlan:10,ip:10.0.10.2/24 vnic.0=mac:auto");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            c.vnic.as_slice(),
            [
                (12, String::from("vlan:10,ip:10.0.10.2/24")),
                (0, String::from("mac:auto"))
            ]
        );
        let (c, d) = parse("vnic.64=ip:dhcp vnic.x=ip:dhcp vnic.3=");
        assert!(c.vnic.is_empty());
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].to_string(), "cmdline: unknown key 'vnic.64' ignored");
        assert_eq!(d[1].to_string(), "cmdline: unknown key 'vnic.x' ignored");
        assert_eq!(
            d[2].to_string(),
            "cmdline: bad value '' for 'vnic.3', using no VNIC"
        );
    }

    #[test]
    fn every_interface_and_vnic_fits_however_often_redefined() {
        let mut line = String::new();
        for round in 0..2 {
            for i in 0..MAX_INTERFACES {
                line += &alloc::format!(" net.{i}=10.0.{i}.{round}/24");
            }
            for n in 0..MAX_VNICS {
                line += &alloc::format!(" vnic.{n}=ip:10.1.{n}.{round}/24");
            }
        }
        let (c, d) = parse(&line);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.net.len(), MAX_INTERFACES);
        assert_eq!(c.net(7), Some("10.0.7.1/24"));
        assert_eq!(c.vnic.len(), MAX_VNICS as usize);
        assert_eq!(c.vnic[63], (63, String::from("ip:10.1.63.1/24")));
    }

    #[test]
    fn test_apps_split_items_and_arguments() {
        const APPS: &[&str] = &["ping", "iperf3", "l2recv", "l2send"];
        assert_eq!(test_apps("selftest", APPS), None);
        assert_eq!(test_apps("pingx:1", APPS), None);
        let apps = test_apps("ping:10.0.0.1,-c,3+ping:fd00::1,-c,3", APPS)
            .unwrap()
            .unwrap();
        assert_eq!(
            apps,
            [
                TestApp {
                    app: "ping".into(),
                    args: "10.0.0.1 -c 3".into()
                },
                TestApp {
                    app: "ping".into(),
                    args: "fd00::1 -c 3".into()
                }
            ]
        );
        let apps = test_apps("l2recv", APPS).unwrap().unwrap();
        assert_eq!(apps[0].args, "");
        let apps = test_apps("iperf3:-c,,10.0.0.1,", APPS).unwrap().unwrap();
        assert_eq!(apps[0].args, "-c 10.0.0.1");
        assert!(test_apps("ping:1+", APPS).unwrap().is_err());
        assert!(
            test_apps("ping:1+selftest", APPS)
                .unwrap()
                .unwrap_err()
                .contains("unknown app 'selftest'")
        );
    }

    /// The fast path's generator and sink from the command line
    /// (issue 20): `test=pktgen:...+pktsink:...` names both apps of the
    /// kernel's own list, in order, each with its argument line.
    #[cfg(feature = "net")]
    #[test]
    fn test_apps_take_pktgen_and_pktsink() {
        let apps = test_apps("pktgen:-c,100,-s,64+pktsink:-c,5", crate::apps::APPS)
            .expect("network apps")
            .expect("well formed");
        assert_eq!(
            apps,
            [
                TestApp {
                    app: "pktgen".into(),
                    args: "-c 100 -s 64".into()
                },
                TestApp {
                    app: "pktsink".into(),
                    args: "-c 5".into()
                }
            ]
        );
        let apps = test_apps("pktsink", crate::apps::APPS).unwrap().unwrap();
        assert_eq!(
            (apps[0].app.as_str(), apps[0].args.as_str()),
            ("pktsink", "")
        );
        assert!(
            test_apps("pktgen:-c,1+pktgun:-c,1", crate::apps::APPS)
                .unwrap()
                .unwrap_err()
                .contains("unknown app 'pktgun'")
        );
    }

    #[test]
    fn last_value_wins() {
        let (c, _) = parse("log=debug log=error");
        assert_eq!(c.log.level_for("k"), LevelFilter::Error);
    }
}
