//! The network apps the shell and `test=` start (feature `net`): their
//! names, which interface an argument line asks for, and building the app
//! on that interface.
//!
//! Options go anywhere, as with the stock tools: `-I <interface>` picks
//! the interface for every app (`net<i>`, `vnic<N>`, or an address the
//! interface holds, as ping's `-I` takes both); without it, iperf3's
//! `-B <address>` picks the interface holding that address (and iperf3
//! binds to it); otherwise `net0`. `serve iperf3` implies `-s`.
//!
//! `-A <cpu>` (iperf3's CPU affinity option; also taken by the other apps
//! whose stock tools do not use `-A` for something else) runs the app on
//! CPU `<cpu>`: an app runs in the main loop of the CPU that owns its
//! interface, so `-A` without `-I` picks the first interface that CPU
//! owns, and with `-I` refuses an interface another CPU owns.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use cxos_drivers::NetDevice;
use cxos_net::NetIf;
use cxos_net::app::App;
use cxos_net::smoltcp::time::Instant;
use cxos_net::smoltcp::wire::IpAddress;
use cxos_net::tcp_service::{DISCARD_PORT, ECHO_PORT, TcpService, TcpServiceKind};
use cxos_net::{iperf3, l2, ping, pktgen, snoop};

/// The apps `test=<app>:<args>` and the shell can run.
pub const APPS: &[&str] = &[
    "ping", "l2send", "l2recv", "iperf3", "echo", "discard", "snoop", "pktgen", "pktsink",
];

/// The apps `serve` runs in the background (`pktgen`/`pktsink` too, so
/// several run at once, one per VNIC and so one per CPU).
pub const SERVICES: &[&str] = &["echo", "discard", "iperf3", "pktgen", "pktsink"];

/// The apps that take `-A <cpu>` (stock ping's `-A` is adaptive pacing
/// and tcpdump's prints ASCII: those two keep the letter's meaning, and
/// ours refuse it).
pub const AFFINITY_APPS: &[&str] = &[
    "iperf3", "pktgen", "pktsink", "l2send", "l2recv", "echo", "discard",
];

/// The interface an app runs on when the arguments name none.
pub const DEFAULT_INTERFACE: &str = "net0";

/// Concurrent connections a TCP echo/discard service accepts.
const SERVICE_BACKLOG: usize = 4;

/// Which interface an app asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing asked: [`DEFAULT_INTERFACE`].
    Default,
    /// `-I net1`, `-I vnic3`.
    Name(String),
    /// `-I 10.0.0.2` or iperf3's `-B 10.0.0.2`: the interface holding it.
    Address(IpAddress),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Default => f.write_str(DEFAULT_INTERFACE),
            Target::Name(n) => f.write_str(n),
            Target::Address(a) => write!(f, "{a}"),
        }
    }
}

/// True for `net<i>` and `vnic<N>`.
pub fn is_interface_name(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && name[prefix.len()..].parse::<u32>().is_ok()
    };
    numbered("net") || numbered("vnic") || numbered("aggr")
}

/// One app to start: which, on which interface, with what arguments
/// (those of the app itself; `-I` is taken out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCommand {
    pub app: String,
    pub target: Target,
    /// `-A <cpu>`: the CPU it must run on (`None`: its interface's).
    pub cpu: Option<u16>,
    pub args: String,
}

impl AppCommand {
    /// `app` with its argument line (from the shell or `test=`).
    pub fn parse(app: &str, args: &str) -> Result<Self, String> {
        if !APPS.contains(&app) {
            return Err(format!("unknown app '{app}'"));
        }
        let mut target = Target::Default;
        let mut cpu = None;
        let mut rest: Vec<&str> = Vec::new();
        let mut words = args.split_whitespace();
        while let Some(w) = words.next() {
            if AFFINITY_APPS.contains(&app) {
                let given = match (w, w.strip_prefix("-A")) {
                    ("--affinity", _) | ("-A", _) => Some(words.next()),
                    (_, Some(attached)) if !attached.is_empty() => Some(Some(attached)),
                    _ => None,
                };
                if let Some(value) = given {
                    cpu = Some(parse_cpu(value)?);
                    continue;
                }
            }
            let value = match w.strip_prefix("-I") {
                Some("") => words.next().ok_or_else(|| {
                    String::from("option -I needs an interface (net<i>, vnic<N> or an address)")
                })?,
                Some(attached) => attached,
                None => {
                    rest.push(w);
                    continue;
                }
            };
            target = if let Ok(a) = IpAddress::from_str(value) {
                Target::Address(a)
            } else if is_interface_name(value) {
                Target::Name(value.into())
            } else {
                return Err(format!(
                    "bad interface '{value}' (net0, net1, ..., vnic0, ... or an address)"
                ));
            };
        }
        if app == "iperf3" && target == Target::Default {
            // iperf3 -B <address>: the interface holding it.
            if let Some(i) = rest.iter().position(|w| *w == "-B" || *w == "--bind")
                && let Some(Ok(a)) = rest.get(i + 1).map(|v| IpAddress::from_str(v))
            {
                target = Target::Address(a);
            }
        }
        Ok(AppCommand {
            app: app.into(),
            target,
            cpu,
            args: rest.join(" "),
        })
    }

    /// Where `-A <cpu>` runs it: on that CPU (`online`: whether it is),
    /// on the interface asked for if that CPU owns it (`owner`: the name
    /// a target resolves to and the CPU owning it), on the first one the
    /// CPU owns without `-I`/`-B` (`first_on`). The CPU and the command
    /// with its interface named; `self` as it is without `-A`.
    pub fn pinned(
        &self,
        online: impl Fn(usize) -> bool,
        owner: impl Fn(&Target) -> Option<(String, usize)>,
        first_on: impl Fn(usize) -> Option<String>,
    ) -> Result<Option<(usize, AppCommand)>, String> {
        let Some(cpu) = self.cpu.map(usize::from) else {
            return Ok(None);
        };
        if !online(cpu) {
            return Err(format!("-A {cpu}: no CPU {cpu} online (see `cpus`)"));
        }
        let name = match (&self.target, owner(&self.target)) {
            (Target::Default, _) => first_on(cpu).ok_or_else(|| {
                format!("-A {cpu}: CPU {cpu} owns no interface (pin a VNIC to it: vnic create cpu {cpu})")
            })?,
            (_, Some((name, o))) if o != cpu => {
                return Err(format!("-A {cpu}: {name} is owned by CPU {o}"));
            }
            (_, Some((name, _))) => name,
            // Unknown: the table says so as without `-A`.
            (t, None) => t.to_string(),
        };
        Ok(Some((
            cpu,
            AppCommand {
                target: Target::Name(name),
                ..self.clone()
            },
        )))
    }

    /// `serve <app> <args>`: a background service; iperf3 serves (`-s`)
    /// whether or not it was written.
    pub fn service(app: &str, args: &str) -> Result<Self, String> {
        if !SERVICES.contains(&app) {
            return Err(format!("unknown service '{app}' ({})", SERVICES.join(", ")));
        }
        let mut cmd = Self::parse(app, args)?;
        if app == "iperf3"
            && !cmd
                .args
                .split_whitespace()
                .any(|w| w == "-s" || w == "--server")
        {
            cmd.args = if cmd.args.is_empty() {
                "-s".into()
            } else {
                format!("-s {}", cmd.args)
            };
        }
        Ok(cmd)
    }

    /// How `serve` lists it once it runs on `iface`: `iperf3 -s on vnic2`.
    pub fn describe(&self, iface: &str) -> String {
        if self.args.is_empty() {
            format!("{} on {iface}", self.app)
        } else {
            format!("{} {} on {iface}", self.app, self.args)
        }
    }

    /// Build the app on `net`; `run` tells one l2send run's frames from
    /// another's (the kernel passes its clock). `Err` is a one-line
    /// message.
    pub fn build<D: NetDevice + 'static>(
        &self,
        net: &mut NetIf<D>,
        now: Instant,
        run: u32,
    ) -> Result<Box<dyn App<D> + Send>, String> {
        fn parse<T: FromStr>(args: &str) -> Result<T, String>
        where
            T::Err: fmt::Display,
        {
            args.parse::<T>().map_err(|e| format!("{e}"))
        }
        let args = self.args.as_str();
        Ok(match self.app.as_str() {
            "ping" => {
                Box::new(ping::Ping::new(net, parse(args)?, now).map_err(|e| format!("{e}"))?)
            }
            "l2send" => {
                Box::new(l2::L2Send::new(net, parse(args)?, run).map_err(|e| format!("{e}"))?)
            }
            "l2recv" => Box::new(l2::L2Recv::new(net, parse(args)?, now)),
            "snoop" => Box::new(snoop::Snoop::new(net, parse(args)?)),
            "pktgen" => {
                Box::new(pktgen::PktGen::new(net, parse(args)?).map_err(|e| format!("{e}"))?)
            }
            "pktsink" => Box::new(pktgen::PktSink::new(net, parse(args)?, now)),
            "iperf3" => iperf3::from_args(net, args, now)?,
            "echo" => service(net, TcpServiceKind::Echo, service_port(args, ECHO_PORT)?)?,
            "discard" => service(
                net,
                TcpServiceKind::Discard,
                service_port(args, DISCARD_PORT)?,
            )?,
            other => return Err(format!("unknown app '{other}'")),
        })
    }
}

/// The value of `-A`: one CPU index. iperf3's `-A n,m` also sets the
/// server's affinity, which a cxos client cannot set: refused rather
/// than ignored.
fn parse_cpu(value: Option<&str>) -> Result<u16, String> {
    let value = value.ok_or_else(|| String::from("option -A needs a CPU number"))?;
    if value.contains(',') {
        return Err(format!(
            "-A {value}: only this side's CPU can be chosen (-A <cpu>)"
        ));
    }
    value
        .parse()
        .map_err(|_| format!("bad CPU '{value}' for -A (a CPU number: see `cpus`)"))
}

/// The port of an echo/discard service: `[<port>]` or `-p <port>`.
pub fn service_port(args: &str, default: u16) -> Result<u16, String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let value = match words.as_slice() {
        [] => return Ok(default),
        ["-p", v] | [v] => *v,
        _ => return Err(format!("bad port '{args}'")),
    };
    value
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("bad port '{value}'"))
}

fn service<D: NetDevice + 'static>(
    net: &mut NetIf<D>,
    kind: TcpServiceKind,
    port: u16,
) -> Result<Box<dyn App<D> + Send>, String> {
    let s = TcpService::new(net, kind, port, SERVICE_BACKLOG).map_err(|e| e.to_string())?;
    Ok(Box::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(app: &str, args: &str) -> AppCommand {
        AppCommand::parse(app, args).unwrap_or_else(|e| panic!("{app} {args}: {e}"))
    }

    #[test]
    fn interface_option_goes_anywhere() {
        for args in [
            "-I vnic2 10.0.0.1 -c 3",
            "10.0.0.1 -I vnic2 -c 3",
            "10.0.0.1 -c 3 -I vnic2",
            "10.0.0.1 -c 3 -Ivnic2",
        ] {
            let c = cmd("ping", args);
            assert_eq!(c.target, Target::Name("vnic2".into()), "{args}");
            assert_eq!(c.args, "10.0.0.1 -c 3", "{args}");
        }
        let c = cmd("ping", "10.0.0.1");
        assert_eq!((c.target, c.args.as_str()), (Target::Default, "10.0.0.1"));
        // ping -I takes an address as well.
        let c = cmd("ping", "-I 10.0.0.2 10.0.0.1");
        assert_eq!(c.target, Target::Address("10.0.0.2".parse().unwrap()));
        let c = cmd("ping", "fd00::1 -I fd00::2");
        assert_eq!(c.target, Target::Address("fd00::2".parse().unwrap()));
    }

    #[test]
    fn bad_interfaces_are_refused() {
        for (args, want) in [
            ("10.0.0.1 -I", "option -I needs an interface"),
            ("-I eth0 10.0.0.1", "bad interface 'eth0'"),
            ("-I net 10.0.0.1", "bad interface 'net'"),
            ("-I vnicx 10.0.0.1", "bad interface 'vnicx'"),
            ("-I net+1 10.0.0.1", "bad interface 'net+1'"),
        ] {
            let e = AppCommand::parse("ping", args).unwrap_err();
            assert!(e.starts_with(want), "{args}: {e}");
        }
        assert!(AppCommand::parse("selftest", "").is_err());
        assert!(is_interface_name("net0") && is_interface_name("vnic63"));
        assert!(!is_interface_name("net") && !is_interface_name("vnic-1"));
    }

    #[test]
    fn iperf3_bind_address_picks_the_interface() {
        let c = cmd("iperf3", "-s -B 10.0.0.2");
        assert_eq!(c.target, Target::Address("10.0.0.2".parse().unwrap()));
        assert_eq!(c.args, "-s -B 10.0.0.2", "iperf3 binds to it as well");
        // -I wins for the interface.
        let c = cmd("iperf3", "-c 10.0.0.1 -B 10.0.0.2 -I vnic1");
        assert_eq!(c.target, Target::Name("vnic1".into()));
        assert_eq!(cmd("iperf3", "-c 10.0.0.1 -B").target, Target::Default);
    }

    #[test]
    fn serve_iperf3_implies_server() {
        for (args, want) in [
            ("", "-s"),
            ("-I vnic2", "-s"),
            ("-s -I vnic2", "-s"),
            ("-I vnic2 -s", "-s"),
            ("-p 5202 -I vnic2", "-s -p 5202"),
            ("--server -1", "--server -1"),
        ] {
            let c = AppCommand::service("iperf3", args).unwrap();
            assert_eq!(c.args, want, "{args}");
            assert_eq!(
                c.describe("vnic2"),
                format!("iperf3 {want} on vnic2"),
                "{args}"
            );
        }
        let c = AppCommand::service("echo", "").unwrap();
        assert_eq!(c.describe("net0"), "echo on net0");
        assert_eq!(
            AppCommand::service("ping", "10.0.0.1").unwrap_err(),
            "unknown service 'ping' (echo, discard, iperf3, pktgen, pktsink)"
        );
    }

    #[test]
    fn affinity_option_goes_anywhere() {
        for args in [
            "-c 10.0.0.1 -P 2 -A 1",
            "-A 1 -c 10.0.0.1 -P 2",
            "-c 10.0.0.1 -A1 -P 2",
            "--affinity 1 -c 10.0.0.1 -P 2",
        ] {
            let c = cmd("iperf3", args);
            assert_eq!(c.cpu, Some(1), "{args}");
            assert_eq!(c.target, Target::Default, "{args}");
            assert_eq!(c.args, "-c 10.0.0.1 -P 2", "{args}");
        }
        let c = cmd("pktsink", "-A 0 -I vnic1 -c 10");
        assert_eq!((c.cpu, c.target), (Some(0), Target::Name("vnic1".into())));
        assert_eq!(c.args, "-c 10");
        let c = AppCommand::service("iperf3", "-A 1").unwrap();
        assert_eq!((c.cpu, c.args.as_str()), (Some(1), "-s"));
        assert_eq!(cmd("pktgen", "-c 5").cpu, None);
        // ping's and snoop's -A are not ours: their parsers see it.
        let c = cmd("ping", "-A 10.0.0.1");
        assert_eq!((c.cpu, c.args.as_str()), (None, "-A 10.0.0.1"));
        for (args, want) in [
            ("-c 10.0.0.1 -A", "option -A needs a CPU number"),
            ("-c 10.0.0.1 -A x", "bad CPU 'x' for -A"),
            ("-c 10.0.0.1 -A -1", "bad CPU '-1' for -A"),
            ("-c 10.0.0.1 -A 1,2", "-A 1,2: only this side's CPU"),
        ] {
            let e = AppCommand::parse("iperf3", args).unwrap_err();
            assert!(e.starts_with(want), "{args}: {e}");
        }
    }

    #[test]
    fn affinity_picks_or_checks_the_interface() {
        // vnic0 on CPU 1, net0 and vnic1 on CPU 0; CPUs 0 and 1 online.
        let online = |c: usize| c < 2;
        let owner = |t: &Target| match t.to_string().as_str() {
            "net0" | "10.0.0.2" => Some(("net0".to_string(), 0)),
            "vnic1" => Some(("vnic1".to_string(), 0)),
            "vnic0" | "10.0.0.60" => Some(("vnic0".to_string(), 1)),
            _ => None,
        };
        let first_on = |c: usize| ["net0", "vnic0"].get(c).map(|n| n.to_string());
        let place = |args: &str| {
            cmd("iperf3", args)
                .pinned(online, owner, first_on)
                .map(|p| p.map(|(c, cmd)| (c, cmd.target.to_string(), cmd.args)))
        };
        let on = |c: usize, i: &str| Ok(Some((c, i.to_string(), "-s".to_string())));
        assert_eq!(place("-s"), Ok(None));
        assert_eq!(place("-s -A 1"), on(1, "vnic0"));
        assert_eq!(place("-s -A 0"), on(0, "net0"));
        assert_eq!(place("-s -A 1 -I vnic0"), on(1, "vnic0"));
        assert_eq!(place("-s -A 0 -I vnic1"), on(0, "vnic1"));
        assert_eq!(
            place("-A 1 -s -B 10.0.0.60"),
            Ok(Some((1, "vnic0".into(), "-s -B 10.0.0.60".into())))
        );
        assert_eq!(
            place("-s -A 0 -I vnic0"),
            Err("-A 0: vnic0 is owned by CPU 1".into())
        );
        assert_eq!(
            place("-s -A 1 -B 10.0.0.2"),
            Err("-A 1: net0 is owned by CPU 0".into())
        );
        assert_eq!(
            place("-s -A 2"),
            Err("-A 2: no CPU 2 online (see `cpus`)".into())
        );
        assert_eq!(place("-s -A 1 -I vnic7"), on(1, "vnic7"));
        let none = cmd("pktgen", "-A 1").pinned(online, owner, |_| None);
        assert!(none.unwrap_err().contains("CPU 1 owns no interface"));
    }

    #[test]
    fn service_ports() {
        assert_eq!(service_port("", ECHO_PORT), Ok(ECHO_PORT));
        assert_eq!(service_port("7007", ECHO_PORT), Ok(7007));
        assert_eq!(service_port("-p 7007", ECHO_PORT), Ok(7007));
        assert_eq!(service_port("0", ECHO_PORT), Err("bad port '0'".into()));
        assert_eq!(service_port("x", ECHO_PORT), Err("bad port 'x'".into()));
        assert_eq!(service_port("7 8", ECHO_PORT), Err("bad port '7 8'".into()));
    }
}
