//! The serial shell's command lines, parsed: what to run, or the line to
//! print instead (a usage line, a refused argument). The kernel binary
//! runs the result; everything here is host-tested.
//!
//! Commands follow the stock tools they mimic: options in any order, the
//! same letters and defaults (`ping 10.0.0.1 -c 3 -I vnic2`,
//! `ifconfig net0`, `ip addr show dev net0`, `serve iperf3 -I vnic2`).

use alloc::format;
use alloc::string::String;

use cxos_drivers::PciAddress;

use crate::pci;

/// The network commands' own parsing (feature `net`).
#[cfg(feature = "net")]
pub use net::{NET_HELP, NetCommand, app_error};

/// What the shell lists for `help`, before the network commands.
pub const HELP: &str = "commands:
  help                  this list
  lspci                 PCI functions with capabilities
  mem                   heap, frame and DMA usage
  irq                   interrupt vectors and counts, per CPU (with each adapter's MSI-X)
  irq <vector> cpu <n>  deliver an MSI-X vector to CPU n
  cpus [ping <n>]       CPUs: state, APIC id, interrupts, idle %; an IPI round trip to CPU n
  cpus tlb <n>          unmap a page CPU n has cached: it must fault (TLB shootdown)
  phys                  network adapters: PCI address, part, firmware, MAC, link, MTU
  phys <pci>            one adapter in detail: capabilities, EQs, pages, commands
  detach <pci>          detach the driver from an adapter (e.g. detach 01:00.0)
  attach <pci>          attach a detached adapter again
  rings [<pci>]         each port's queues (SQ, RQ, CQs, EQ), its VNICs' queues too
  stats [<pci>]         each port's packet counters, drops and faults
  faults [-v]           each adapter's fault records: counts per class, the last ones (-v: all)
  flows [<pci>]         each port's flow tables, groups and entries as programmed, and as the adapter reports them
  traninfo [-x] [<pci>] each port's transceiver: identifier, vendor, PN, SN, media, diagnostics (-x: EEPROM hex dump)
  led <pci> on|off|beacon [s]   the port's identification LED (beacon: blink s seconds, default 15)
  speed <pci> auto|<rate>       advertise every speed, or force one (1G, 10G, 25G, 40G, 50G, 100G, 200G or Mb/s)
  uptime                time since boot";

/// The rest of `help`, after the network commands.
pub const HELP_TAIL: &str = "  log <target>=<level>  change a log level (or: log <level>)
  reboot                reset the machine
  poweroff              leave";

/// A per-port report of the network drivers (`rings`, `stats`, `flows`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Report {
    /// One line per queue and the steering table.
    Rings,
    /// Packet counters (read fresh), faults, the stack's counters.
    Stats,
    /// The flow tables, groups and entries the driver programmed, each
    /// entry next to what the adapter reports for it.
    Flows,
}

impl Report {
    /// The shell command that asks for it.
    pub fn command(self) -> &'static str {
        match self {
            Report::Rings => "rings",
            Report::Stats => "stats",
            Report::Flows => "flows",
        }
    }
}

pub use crate::portarg::{BEACON_DEFAULT_S, LedArg, SpeedArg, parse_rate};

/// A port management command (answered by the adapter's driver).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortCommand {
    /// `traninfo [-x] [<pci>]`.
    Traninfo {
        hex: bool,
        only: Option<PciAddress>,
    },
    Led(PciAddress, LedArg),
    Speed(PciAddress, SpeedArg),
}

fn parse_port(cmd: &str, arg: &str) -> Result<PortCommand, String> {
    let mut pci = None;
    let mut rest = alloc::vec::Vec::new();
    let mut hex = false;
    for w in arg.split_whitespace() {
        if cmd == "traninfo" && w == "-x" {
            hex = true;
        } else if w.contains(':') {
            if pci.is_some() {
                return Err(format!("{cmd}: more than one PCI address"));
            }
            pci = Some(pci::parse_address(w).map_err(|e| format!("{cmd}: {e}"))?);
        } else {
            rest.push(w);
        }
    }
    match cmd {
        "traninfo" => match rest.first() {
            None => Ok(PortCommand::Traninfo { hex, only: pci }),
            Some(w) => Err(format!(
                "traninfo: unexpected '{w}' (usage: traninfo [-x] [<pci>])"
            )),
        },
        "led" => {
            let usage = "usage: led <pci> on|off|beacon [seconds]";
            let addr = pci.ok_or(usage)?;
            let led = match rest.as_slice() {
                ["on"] => LedArg::On,
                ["off"] => LedArg::Off,
                ["beacon"] => LedArg::Beacon(BEACON_DEFAULT_S),
                ["beacon", s] => match s.parse::<u16>() {
                    Ok(n) if (1..0xffff).contains(&n) => LedArg::Beacon(n),
                    _ => return Err(format!("led: bad seconds '{s}' (1 to 65534)")),
                },
                _ => return Err(usage.into()),
            };
            Ok(PortCommand::Led(addr, led))
        }
        _ => {
            let usage = "usage: speed <pci> auto|<rate> (e.g. 10G)";
            let addr = pci.ok_or(usage)?;
            let s = match rest.as_slice() {
                ["auto"] => SpeedArg::Auto,
                [r] => {
                    SpeedArg::Mbps(parse_rate(r).ok_or_else(|| format!("speed: bad rate '{r}'"))?)
                }
                _ => return Err(usage.into()),
            };
            Ok(PortCommand::Speed(addr, s))
        }
    }
}

/// One command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Command<'a> {
    /// An empty line.
    Nothing,
    Help,
    Lspci,
    Mem,
    Irq,
    /// `irq <vector> cpu <n>`.
    IrqRoute(crate::smpcmd::IrqRoute),
    Cpus(crate::smpcmd::CpusCommand),
    Uptime,
    Poweroff,
    Reboot,
    /// `log <filter>` (the filter is checked where it applies).
    Log(&'a str),
    /// `phys` or `phys <pci>`.
    Phys(Option<PciAddress>),
    Detach(PciAddress),
    Attach(PciAddress),
    /// `rings` / `stats` / `flows`, for every port or one.
    Report(Report, Option<PciAddress>),
    /// `traninfo`, `led`, `speed`.
    Port(PortCommand),
    /// `faults [-v]`.
    Faults(bool),
    #[cfg(feature = "net")]
    Net(NetCommand<'a>),
    /// Not run: print this line (a usage line, why an argument is wrong).
    Refused(String),
    Unknown(&'a str),
}

/// Split `line` into the command word and its (trimmed) arguments.
pub fn split(line: &str) -> (&str, &str) {
    let line = line.trim();
    line.split_once(' ')
        .map_or((line, ""), |(c, a)| (c, a.trim()))
}

impl<'a> Command<'a> {
    pub fn parse(line: &'a str) -> Command<'a> {
        let (cmd, arg) = split(line);
        #[cfg(feature = "net")]
        if let Some(c) = net::parse(cmd, arg) {
            return c;
        }
        let pci_arg = |usage: &str| pci::parse_address(arg).map_err(|e| format!("{usage} ({e})"));
        let refused = Command::Refused;
        match cmd {
            "" => Command::Nothing,
            "help" => Command::Help,
            "lspci" => Command::Lspci,
            "mem" => Command::Mem,
            "irq" if arg.is_empty() => Command::Irq,
            "irq" => crate::smpcmd::parse_irq_route(arg).map_or_else(refused, Command::IrqRoute),
            "cpus" => crate::smpcmd::parse_cpus(arg).map_or_else(refused, Command::Cpus),
            "uptime" => Command::Uptime,
            "poweroff" => Command::Poweroff,
            "reboot" => Command::Reboot,
            "log" => Command::Log(arg),
            "phys" if arg.is_empty() => Command::Phys(None),
            "phys" => {
                pci_arg("usage: phys [<pci>]").map_or_else(refused, |a| Command::Phys(Some(a)))
            }
            "detach" => pci_arg("usage: detach <pci>").map_or_else(refused, Command::Detach),
            "attach" => pci_arg("usage: attach <pci>").map_or_else(refused, Command::Attach),
            "rings" | "stats" | "flows" => {
                let report = match cmd {
                    "rings" => Report::Rings,
                    "stats" => Report::Stats,
                    _ => Report::Flows,
                };
                if arg.is_empty() {
                    Command::Report(report, None)
                } else {
                    pci_arg(&format!("usage: {cmd} [<pci>]"))
                        .map_or_else(refused, |a| Command::Report(report, Some(a)))
                }
            }
            "faults" => match arg {
                "" => Command::Faults(false),
                "-v" => Command::Faults(true),
                _ => Command::Refused("usage: faults [-v]".into()),
            },
            "traninfo" | "led" | "speed" => {
                parse_port(cmd, arg).map_or_else(refused, Command::Port)
            }
            other => Command::Unknown(other),
        }
    }
}

#[cfg(feature = "net")]
mod net {
    use alloc::format;
    use alloc::string::String;

    use cxos_net::config::IfConfig;

    use super::Command;
    use crate::apps::{APPS, AppCommand, is_interface_name};
    use crate::cmdline::MAX_INTERFACES;
    use crate::iface::AppId;
    use crate::vnic_def::VnicDef;

    /// The network commands' part of `help`.
    pub const NET_HELP: &str =
        "  ifconfig [<if>]       interfaces: MAC, link, addresses, counters (also: ip [addr|link [show [dev] <if>]])
  ifconfig <if> <cfg>   set an interface: dhcp | none | 10.0.0.2/24[,gw=10.0.0.1][,ip6=fd00::2/64]
  ping [-I <if>|<addr>] <addr> [-c N] [-i s] [-W s] [-s bytes]   ICMP echo (IPv4 or IPv6), until Ctrl-C without -c
  l2send <mac> <n> [-s bytes]   send n raw test frames (ethertype 0x88b5)
  l2recv [n] [-W s]     receive raw test frames
  pktgen [-I <if>] [-s bytes] [-c n] [-t s] [-b batch] [--dst mac]   transmit frames as fast as the device takes them; pps, Gbit/s
  pktsink [-I <if>] [-c n] [-t s]   receive and drop every frame below the stack; pps, Gbit/s
  snoop [-I <if>] [-c n] [-x]   one line per received frame (time, MACs, VLAN, ethertype, ARP/IP/ICMP/TCP/UDP); -x adds hex; Ctrl-C stops
  promisc <if> on|off   receive frames for every MAC on the interface (or only its own)
  mtu <if> <n>          set the IP MTU (net<i>: the port's; vnic<N>: up to the port's)
  ethtool -c|-C <if> [rx-usecs N] [rx-frames N] [tx-usecs N] [tx-frames N]   CQ moderation (-c also: tx-cqe-every, the item ifconfig <if> ..,tx-cqe-every=N sets)
  ethtool --show-priv-flags|--set-priv-flags <if> [rx_cqe_compress|skb_tx_mpwqe|tx_blueflame on|off]   CQE compression, eMPW, BlueFlame
  iperf3 -s | -c <addr> [-p port] [-B addr] [-R] [-P n] [-t s] [-u -b rate] [-l len]   iperf3-compatible test; Ctrl-C stops
  serve echo|discard [-p port] | serve iperf3|pktgen|pktsink [args]   start a background service (serve: list them)
  serve stop <id>       stop a background service
  vnic create <def>     new VNIC vnic<N>: mac:<mac|auto>,vlan:<id>,ip:<dhcp|none|a.b.c.d/nn>[,gw=..],queues:<n>,over:net<i>,cpu:<n>
  vnic delete <N>       destroy vnic<N> (its flow entries and queues)
  vnic list             the VNIC definitions
  vnics                 every interface's VNIC: MAC, VLAN, queues, addresses, counters, flow counter
  aggr create <name> <if> <if> [lacp active|passive|off] [policy L2|L3|L4] [timer fast|slow]   link aggregation (IEEE 802.1AX)
  aggr delete <name>    the members get their own interfaces back
  aggr show [-L]        aggregations and members (-L: LACP state, partner, LACPDUs)
  (<if> is net<i>, vnic<N> or aggr<N>; every app takes -I <if> anywhere on its line)";

    /// A network command.
    #[derive(Clone, Debug, PartialEq)]
    pub enum NetCommand<'a> {
        /// `ifconfig`, `ip`, `ip addr`, `ip link`: every interface (`cmd`
        /// names the command for its messages).
        ShowAll {
            cmd: &'a str,
        },
        /// `ifconfig net0`, `ip addr show dev net0`.
        Show {
            cmd: &'a str,
            name: &'a str,
        },
        /// `ifconfig <if> <cfg>` (`ip` too): `name` is `net<i>` (below
        /// the command line's interface count) or `vnic<N>`; `port`:
        /// the `speed=`/`led=` items (`net<i>` only), applied with the
        /// MTU (`mtu=`) as `speed`, `led` and `mtu` apply them.
        Configure {
            cmd: &'a str,
            name: &'a str,
            cfg: IfConfig,
            port: crate::cmdline::PortItems,
        },
        /// A foreground app (`ping`, `iperf3`, ...).
        App(AppCommand),
        /// `serve`: list the services.
        Services,
        /// `serve <app> ...`: start one.
        Serve(AppCommand),
        /// `serve stop <id>`.
        ServeStop(AppId),
        VnicCreate(VnicDef),
        /// `vnic delete <N>` (or `vnic<N>`).
        VnicDelete(u32),
        VnicList,
        Vnics,
        /// `aggr create <name> <if> <if> ...`.
        AggrCreate {
            name: &'a str,
            def: crate::aggr_def::AggrDef,
        },
        /// `aggr delete <name>`.
        AggrDelete(&'a str),
        /// `aggr show [-L]`.
        AggrShow {
            long: bool,
        },
        /// `promisc <if> on|off`.
        Promisc {
            name: &'a str,
            on: bool,
        },
        /// `mtu <if> <n>`.
        Mtu {
            name: &'a str,
            mtu: usize,
        },
        /// `ethtool ...` ([`crate::ethtool`]).
        Ethtool(crate::ethtool::Ethtool<'a>),
    }

    /// How the shell prints an app's refusal: `<app>: <why>`, without
    /// doubling the prefix of messages that name their app already.
    pub fn app_error(app: &str, e: &str) -> String {
        let prefix = format!("{app}: ");
        format!("{app}: {}", e.strip_prefix(prefix.as_str()).unwrap_or(e))
    }

    fn usage(cmd: &str) -> String {
        if cmd == "ip" {
            String::from(
                "usage: ip [addr|link [show [dev] <if>]] | ip <if> dhcp|none|<addr>/<prefix>[,gw=<addr>][,ip6=<addr>/<prefix>]",
            )
        } else {
            format!(
                "usage: {cmd} [<if> [dhcp|none|<addr>/<prefix>[,gw=<addr>][,ip6=<addr>/<prefix>]]]"
            )
        }
    }

    /// `Some` for a network command.
    pub(super) fn parse<'a>(cmd: &'a str, arg: &'a str) -> Option<Command<'a>> {
        let net = |c| Some(Command::Net(c));
        let refused = |s: String| Some(Command::Refused(s));
        match cmd {
            "ifconfig" | "ip" => Some(ifconfig(cmd, arg)),
            _ if APPS.contains(&cmd) => match AppCommand::parse(cmd, arg) {
                Ok(c) => net(NetCommand::App(c)),
                Err(e) => refused(app_error(cmd, &e)),
            },
            "serve" => {
                let (what, rest) = super::split(arg);
                match what {
                    "" => net(NetCommand::Services),
                    "stop" => match rest.parse::<u32>() {
                        Ok(id) => net(NetCommand::ServeStop(AppId(id))),
                        Err(_) => refused("usage: serve stop <id>".into()),
                    },
                    _ => match AppCommand::service(what, rest) {
                        Ok(c) => net(NetCommand::Serve(c)),
                        Err(e) => refused(format!("serve: {e}")),
                    },
                }
            }
            "vnic" => {
                let (sub, rest) = super::split(arg);
                match sub {
                    "create" => match rest.parse::<VnicDef>() {
                        Ok(d) => net(NetCommand::VnicCreate(d)),
                        Err(e) => refused(format!("vnic: {e}")),
                    },
                    "delete" => match rest.strip_prefix("vnic").unwrap_or(rest).parse::<u32>() {
                        Ok(n) => net(NetCommand::VnicDelete(n)),
                        Err(_) => refused("usage: vnic delete <N>".into()),
                    },
                    "list" if rest.is_empty() => net(NetCommand::VnicList),
                    _ => refused("usage: vnic create <def> | vnic delete <N> | vnic list".into()),
                }
            }
            "vnics" => net(NetCommand::Vnics),
            "ethtool" => match crate::ethtool::parse(arg, is_interface_name) {
                Ok(e) => net(NetCommand::Ethtool(e)),
                Err(e) => refused(e),
            },
            "aggr" => aggr(arg),
            "promisc" => {
                let usage = || refused("usage: promisc <if> on|off".into());
                let mut words = arg.split_whitespace();
                let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) else {
                    return usage();
                };
                // Either order: `promisc net0 on`, `promisc on net0`.
                let (name, state) = if is_interface_name(a) { (a, b) } else { (b, a) };
                match (is_interface_name(name), state) {
                    (true, "on") => net(NetCommand::Promisc { name, on: true }),
                    (true, "off") => net(NetCommand::Promisc { name, on: false }),
                    _ => usage(),
                }
            }
            "mtu" => {
                let usage = || refused("usage: mtu <if> <n>".into());
                let mut words = arg.split_whitespace();
                let (Some(name), Some(n), None) = (words.next(), words.next(), words.next()) else {
                    return usage();
                };
                match (is_interface_name(name), n.parse::<usize>()) {
                    (true, Ok(mtu)) => net(NetCommand::Mtu { name, mtu }),
                    _ => usage(),
                }
            }
            _ => None,
        }
    }

    /// `aggr create|delete|show`.
    fn aggr(arg: &str) -> Option<Command<'_>> {
        use crate::aggr_def::{AggrDef, aggr_number};
        let (sub, rest) = super::split(arg);
        let (name, more) = super::split(rest);
        let c = match sub {
            "create" if aggr_number(name).is_some() => match AggrDef::from_words(more) {
                Ok(def) => Command::Net(NetCommand::AggrCreate { name, def }),
                Err(e) => Command::Refused(format!("aggr: {e}")),
            },
            "create" => Command::Refused("aggr: the name is aggr0 .. aggr3".into()),
            "delete" if aggr_number(name).is_some() && more.is_empty() => {
                Command::Net(NetCommand::AggrDelete(name))
            }
            "show" | "" if rest.is_empty() => Command::Net(NetCommand::AggrShow { long: false }),
            "show" if rest == "-L" => Command::Net(NetCommand::AggrShow { long: true }),
            _ => Command::Refused(
                "usage: aggr create <name> <if> <if> [lacp active|passive|off] [policy L2|L3|L4] [timer fast|slow] | aggr delete <name> | aggr show [-L]".into(),
            ),
        };
        Some(c)
    }

    fn ifconfig<'a>(cmd: &'a str, arg: &'a str) -> Command<'a> {
        let net = Command::Net;
        if arg.is_empty() {
            return net(NetCommand::ShowAll { cmd });
        }
        let (first, rest) = super::split(arg);
        if cmd == "ip" && matches!(first, "a" | "addr" | "address" | "l" | "link") {
            let mut words = rest.split_whitespace().peekable();
            words.next_if_eq(&"show");
            words.next_if_eq(&"dev");
            return match (words.next(), words.next()) {
                (None, _) => net(NetCommand::ShowAll { cmd }),
                (Some(name), None) if is_interface_name(name) => {
                    net(NetCommand::Show { cmd, name })
                }
                _ => Command::Refused(usage(cmd)),
            };
        }
        if !is_interface_name(first) {
            return Command::Refused(usage(cmd));
        }
        if rest.is_empty() {
            // `ifconfig <if>` shows it; `ip <if>` is no ip command.
            return if cmd == "ifconfig" {
                net(NetCommand::Show { cmd, name: first })
            } else {
                Command::Refused(usage(cmd))
            };
        }
        let index = first.strip_prefix("net").map(|n| n.parse::<usize>());
        if matches!(index, Some(Ok(i)) if i >= MAX_INTERFACES) {
            return Command::Refused(usage(cmd));
        }
        let (port, rest) = match crate::cmdline::port_items(rest) {
            Ok(r) => r,
            Err(e) => return Command::Refused(format!("{cmd}: {e}")),
        };
        if !port.is_empty() && index.is_none() {
            return Command::Refused(format!(
                "{cmd}: speed= and led= set a port: give them to its interface net<i>"
            ));
        }
        match rest.parse::<IfConfig>() {
            Ok(cfg) => net(NetCommand::Configure {
                cmd,
                name: first,
                cfg,
                port,
            }),
            Err(e) => Command::Refused(format!("{cmd}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(line: &str) -> String {
        match Command::parse(line) {
            Command::Refused(s) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn port_commands_take_options_in_any_order() {
        let a = pci::parse_address("01:00.0").unwrap();
        let t = |hex, only| Command::Port(PortCommand::Traninfo { hex, only });
        assert_eq!(Command::parse("traninfo"), t(false, None));
        assert_eq!(Command::parse("traninfo -x 01:00.0"), t(true, Some(a)));
        assert_eq!(Command::parse("traninfo 01:00.0 -x"), t(true, Some(a)));
        assert_eq!(
            Command::parse("led 01:00.0 beacon 30"),
            Command::Port(PortCommand::Led(a, LedArg::Beacon(30)))
        );
        assert_eq!(
            Command::parse("led beacon 01:00.0"),
            Command::Port(PortCommand::Led(a, LedArg::Beacon(BEACON_DEFAULT_S)))
        );
        assert_eq!(
            Command::parse("led off 01:00.0"),
            Command::Port(PortCommand::Led(a, LedArg::Off))
        );
        assert_eq!(
            Command::parse("speed 01:00.0 10G"),
            Command::Port(PortCommand::Speed(a, SpeedArg::Mbps(10_000)))
        );
        assert_eq!(
            Command::parse("speed auto 01:00.0"),
            Command::Port(PortCommand::Speed(a, SpeedArg::Auto))
        );
        assert_eq!(parse_rate("100M"), Some(100));
        assert_eq!(parse_rate("25000"), Some(25_000));
        assert_eq!(parse_rate("0G"), None);
        assert_eq!(
            refused("led on"),
            "usage: led <pci> on|off|beacon [seconds]"
        );
        assert_eq!(
            refused("led 01:00.0 beacon 0"),
            "led: bad seconds '0' (1 to 65534)"
        );
        assert_eq!(refused("speed 01:00.0 fast"), "speed: bad rate 'fast'");
        assert!(refused("traninfo -v").starts_with("traninfo: unexpected '-v'"));
        assert!(HELP.contains("traninfo [-x] [<pci>]"));
    }

    #[test]
    fn core_commands() {
        assert_eq!(Command::parse("  "), Command::Nothing);
        assert_eq!(Command::parse("uptime"), Command::Uptime);
        assert_eq!(Command::parse("log  pci=trace "), Command::Log("pci=trace"));
        assert_eq!(
            Command::parse("frobnicate now"),
            Command::Unknown("frobnicate")
        );
        let a = pci::parse_address("01:00.0").unwrap();
        assert_eq!(Command::parse("phys"), Command::Phys(None));
        assert_eq!(Command::parse("phys 01:00.0"), Command::Phys(Some(a)));
        assert_eq!(Command::parse("detach 01:00.0"), Command::Detach(a));
        assert_eq!(Command::parse("attach 0000:01:00.0"), Command::Attach(a));
        assert_eq!(
            Command::parse("flows"),
            Command::Report(Report::Flows, None)
        );
        assert_eq!(
            Command::parse("rings 01:00.0"),
            Command::Report(Report::Rings, Some(a))
        );
        assert!(refused("stats 1:0").starts_with("usage: stats [<pci>] ("));
        assert!(refused("detach").starts_with("usage: detach <pci> ("));
        assert_eq!(Command::parse("faults"), Command::Faults(false));
        assert_eq!(Command::parse("faults -v"), Command::Faults(true));
        assert_eq!(refused("faults -x"), "usage: faults [-v]");
        assert!(refused("phys x").starts_with("usage: phys [<pci>] ("));
    }

    #[test]
    fn help_names_every_command() {
        let mut help = String::from(HELP);
        help.push_str(HELP_TAIL);
        #[cfg(feature = "net")]
        help.push_str(NET_HELP);
        for line in [
            "help", "lspci", "mem", "irq", "phys", "detach", "attach", "rings", "stats", "flows",
            "uptime", "log", "reboot", "poweroff",
        ] {
            assert!(help.contains(&format!("  {line} ")), "{line}");
            assert!(
                !matches!(Command::parse(line), Command::Unknown(_)),
                "{line}"
            );
        }
        #[cfg(feature = "net")]
        for line in [
            "ifconfig", "ping", "l2send", "l2recv", "iperf3", "serve", "vnic", "vnics", "snoop",
            "promisc", "mtu", "pktgen", "pktsink", "aggr", "ethtool",
        ] {
            assert!(help.contains(&format!("  {line} ")), "{line}");
            assert!(
                !matches!(Command::parse(line), Command::Unknown(_)),
                "{line}"
            );
        }
    }

    #[cfg(feature = "net")]
    mod net {
        use super::*;
        use crate::apps::{AppCommand, Target};
        use crate::iface::AppId;

        fn net(line: &str) -> NetCommand<'_> {
            match Command::parse(line) {
                Command::Net(c) => c,
                other => panic!("{line}: {other:?}"),
            }
        }

        #[test]
        fn ifconfig_and_ip_like_the_stock_tools() {
            for line in [
                "ifconfig",
                "ip",
                "ip a",
                "ip addr",
                "ip address show",
                "ip link show",
            ] {
                assert!(matches!(net(line), NetCommand::ShowAll { .. }), "{line}");
            }
            for line in [
                "ifconfig net0",
                "ip addr show net0",
                "ip addr show dev net0",
                "ip a dev net0",
                "ip link show net0",
            ] {
                match net(line) {
                    NetCommand::Show { name, .. } => assert_eq!(name, "net0", "{line}"),
                    other => panic!("{line}: {other:?}"),
                }
            }
            match net("ifconfig vnic2 10.0.0.3/24,gw=10.0.0.1") {
                NetCommand::Configure {
                    cmd,
                    name,
                    cfg,
                    port,
                } => {
                    assert_eq!((cmd, name), ("ifconfig", "vnic2"));
                    assert_eq!(cfg, "10.0.0.3/24,gw=10.0.0.1".parse().unwrap());
                    assert!(port.is_empty());
                }
                other => panic!("{other:?}"),
            }
            // The port's settings in the command line's form.
            match net("ifconfig net0 dhcp,mtu=9000,speed=25G,led=off") {
                NetCommand::Configure {
                    name, cfg, port, ..
                } => {
                    assert_eq!(name, "net0");
                    assert_eq!(cfg, "dhcp,mtu=9000".parse().unwrap());
                    assert_eq!(port.speed, Some(SpeedArg::Mbps(25_000)));
                    assert_eq!(port.led, Some(LedArg::Off));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                refused("ifconfig vnic2 dhcp,speed=10G"),
                "ifconfig: speed= and led= set a port: give them to its interface net<i>"
            );
            assert_eq!(
                refused("ifconfig net0 dhcp,led=bright"),
                "ifconfig: 'bright' is not on, off or beacon[:<seconds>]"
            );
            assert!(matches!(net("ip net1 dhcp"), NetCommand::Configure { .. }));
            assert!(refused("ip net0").starts_with("usage: ip "));
            assert!(refused("ip addr show eth0").starts_with("usage: ip "));
            assert!(refused("ip route").starts_with("usage: ip "));
            assert!(refused("ifconfig net8 dhcp").starts_with("usage: ifconfig "));
            assert!(refused("ifconfig eth0").starts_with("usage: ifconfig "));
            assert!(refused("ifconfig net0 10.0.0.300/24").starts_with("ifconfig: "));
        }

        #[test]
        fn apps_take_their_options_anywhere() {
            let want = AppCommand {
                app: "ping".into(),
                target: Target::Name("vnic2".into()),
                cpu: None,
                args: "10.0.0.1 -c 3".into(),
            };
            for line in [
                "ping -I vnic2 10.0.0.1 -c 3",
                "ping 10.0.0.1 -I vnic2 -c 3",
                "ping 10.0.0.1 -c 3 -I vnic2",
            ] {
                assert_eq!(net(line), NetCommand::App(want.clone()), "{line}");
            }
            assert_eq!(
                refused("ping -I eth0 10.0.0.1"),
                "ping: bad interface 'eth0' (net0, net1, ..., vnic0, ... or an address)"
            );
        }

        #[test]
        fn serve_iperf3_with_or_without_s_and_i_anywhere() {
            for line in [
                "serve iperf3",
                "serve iperf3 -s",
                "serve iperf3 -I vnic2",
                "serve iperf3 -s -I vnic2",
                "serve iperf3 -I vnic2 -s",
            ] {
                match net(line) {
                    NetCommand::Serve(c) => assert_eq!(c.args, "-s", "{line}"),
                    other => panic!("{line}: {other:?}"),
                }
            }
            match net("serve echo -I vnic1 -p 7007") {
                NetCommand::Serve(c) => {
                    assert_eq!(c.describe("vnic1"), "echo -p 7007 on vnic1");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(net("serve"), NetCommand::Services);
            assert_eq!(net("serve stop 3"), NetCommand::ServeStop(AppId(3)));
            assert_eq!(refused("serve stop x"), "usage: serve stop <id>");
            assert_eq!(
                refused("serve ping 10.0.0.1"),
                "serve: unknown service 'ping' (echo, discard, iperf3, pktgen, pktsink)"
            );
        }

        #[test]
        fn vnic_commands() {
            assert!(matches!(
                net("vnic create vlan:10,ip:dhcp"),
                NetCommand::VnicCreate(_)
            ));
            assert_eq!(
                refused("vnic create vlan:0"),
                "vnic: bad VLAN id '0' (1..=4094)"
            );
            assert_eq!(net("vnic delete 3"), NetCommand::VnicDelete(3));
            assert_eq!(net("vnic delete vnic3"), NetCommand::VnicDelete(3));
            assert_eq!(refused("vnic delete"), "usage: vnic delete <N>");
            assert_eq!(net("vnic list"), NetCommand::VnicList);
            assert!(refused("vnic list all").starts_with("usage: vnic create"));
            assert_eq!(net("vnics"), NetCommand::Vnics);
            assert_eq!(
                net("promisc net0 on"),
                NetCommand::Promisc {
                    name: "net0",
                    on: true
                }
            );
            assert_eq!(
                net("promisc off vnic2"),
                NetCommand::Promisc {
                    name: "vnic2",
                    on: false
                }
            );
            assert_eq!(refused("promisc net0"), "usage: promisc <if> on|off");
            assert_eq!(refused("promisc eth0 on"), "usage: promisc <if> on|off");
            assert_eq!(
                net("mtu net0 9000"),
                NetCommand::Mtu {
                    name: "net0",
                    mtu: 9000
                }
            );
            assert_eq!(
                net("mtu vnic2 1400"),
                NetCommand::Mtu {
                    name: "vnic2",
                    mtu: 1400
                }
            );
            assert_eq!(refused("mtu net0"), "usage: mtu <if> <n>");
            assert_eq!(refused("mtu net0 big"), "usage: mtu <if> <n>");
            assert_eq!(refused("mtu 9000 net0"), "usage: mtu <if> <n>");
        }

        #[test]
        fn aggr_commands_like_dladm() {
            use crate::aggr_def::AggrDef;
            match net("aggr create aggr0 net0 net1 lacp passive policy L3 timer slow") {
                NetCommand::AggrCreate { name, def } => {
                    assert_eq!(name, "aggr0");
                    assert_eq!(
                        def,
                        AggrDef::from_words("net0 net1 timer slow policy l3 lacp passive").unwrap()
                    );
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(net("aggr delete aggr0"), NetCommand::AggrDelete("aggr0"));
            assert_eq!(net("aggr show"), NetCommand::AggrShow { long: false });
            assert_eq!(net("aggr"), NetCommand::AggrShow { long: false });
            assert_eq!(net("aggr show -L"), NetCommand::AggrShow { long: true });
            let refused = |l: &str| match Command::parse(l) {
                Command::Refused(why) => why,
                other => panic!("{l}: {other:?}"),
            };
            assert!(refused("aggr create bond0 net0 net1").contains("aggr0 .. aggr3"));
            assert!(refused("aggr create aggr0 net0").starts_with("aggr: bad ports"));
            assert!(refused("aggr delete").starts_with("usage: aggr"));
            assert!(refused("aggr show -x").starts_with("usage: aggr"));
            // The aggregation is an interface like any other.
            match net("ping -I aggr0 10.0.0.1 -c 1") {
                NetCommand::App(a) => assert_eq!(a.target, Target::Name("aggr0".into())),
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn app_errors_name_the_app_once() {
            assert_eq!(
                app_error("ping", "ping: missing address"),
                "ping: missing address"
            );
            assert_eq!(
                app_error("l2send", "missing frame count"),
                "l2send: missing frame count"
            );
        }
    }
}
