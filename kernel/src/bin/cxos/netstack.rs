//! The network stack on the opened ports: one cxos-net `NetIf` per port
//! (`net<i>`, `i` = the port's index among the ConnectX functions),
//! configured from the command line (`net.<i>=`) and the shell
//! (`ifconfig`), and the apps running on them (ping, l2send/l2recv,
//! iperf3, TCP echo/discard).
//!
//! Everything runs from the main loop: [`poll`] runs after every
//! interrupt (a port's completion vector, the serial line, timers) and at
//! the earliest time the stacks or apps asked for (smoltcp's poll delay,
//! an app's timer), through [`runtime::wake_at`]; nothing spins.
//!
//! An app is either the foreground app of the shell or of the command
//! line's `test=` (one at a time; Ctrl-C aborts the shell's), or a
//! background service (`serve`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use core::sync::atomic::{AtomicU32, Ordering};

use cxos_net::app::{App, AppStatus, Verdict};
use cxos_net::config::IfConfig;
use cxos_net::smoltcp::time::Instant;
use cxos_net::{NetEvent, NetIf};
use spin::Mutex;

use crate::mlx5nic::{self, Port};
use crate::{print, println, runtime, time};

/// An interface over an opened port.
pub type Iface = NetIf<Port>;
type BoxedApp = Box<dyn App<Port> + Send>;

/// The apps `test=<app>:<args>` and the shell can run.
pub const APPS: &[&str] = &["ping", "l2send", "l2recv", "iperf3", "echo", "discard"];

/// Concurrent connections a TCP echo/discard service accepts.
const SERVICE_BACKLOG: usize = 4;

/// Who started an app and gets its verdict.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    /// The shell's foreground command (no prompt until it ends).
    Shell,
    /// The command line's `test=`.
    Test,
    /// A background service (`serve`), until stopped.
    Service,
}

struct Running {
    id: u32,
    /// The interface it runs on (`net0`, `vnic3`).
    iface: String,
    owner: Owner,
    /// What was started (`ping 10.0.0.1 -c 3`), for `serve`'s list.
    what: String,
    app: BoxedApp,
}

static APPS_RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());
/// Verdicts of finished foreground apps, for their owners.
static FINISHED: Mutex<Vec<(u32, Owner, Verdict)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// Configuration per interface index: the command line's, then the
/// shell's (`ifconfig net<i> ...`); used whenever the port opens.
static CONFIGS: Mutex<Vec<(usize, IfConfig)>> = Mutex::new(Vec::new());

/// The stacks' clock: the kernel's monotonic time.
pub fn now() -> Instant {
    Instant::from_micros((time::now_ns() / 1000) as i64)
}

/// Apps write their lines straight to the console.
struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        print!("{s}");
        Ok(())
    }
}

/// Take the command line's `net.<i>=` values (printing the contract's
/// diagnostic for a bad one) and start polling from the main loop.
pub fn init(net: &[(usize, String)]) {
    for (index, text) in net {
        match IfConfig::from_str(text) {
            Ok(cfg) => set_config(*index, cfg),
            Err(e) => {
                println!("cmdline: bad value '{text}' for 'net.{index}', using none");
                println!("cmdline: ({e})");
            }
        }
    }
    runtime::on_wake(poll);
}

fn set_config(index: usize, cfg: IfConfig) {
    let mut c = CONFIGS.lock();
    c.retain(|(i, _)| *i != index);
    c.push((index, cfg));
}

/// The configuration interface `index` starts with (`none` unless set).
pub fn config_for(index: usize) -> IfConfig {
    CONFIGS
        .lock()
        .iter()
        .find(|(i, _)| *i == index)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| IfConfig::from_str("none").expect("`none` is a configuration"))
}

/// The stack of a freshly opened port (interface `index`), or the port
/// back with why not.
pub fn open(index: usize, port: Port) -> Result<Iface, (Box<Port>, String)> {
    let cfg = config_for(index);
    let name = format!("net{index}");
    match NetIf::new(&name, port, &cfg, now()) {
        Ok(net) => {
            println!("{}", net.status_line());
            Ok(net)
        }
        Err(e) => Err((Box::new(e.device), format!("{}", e.error))),
    }
}

/// The interface is about to go (detach, `vnic delete`): abort its apps,
/// printing their summaries; the owners see them as failed.
pub fn closing(net: &mut Iface) {
    let mut apps = core::mem::take(&mut *APPS_RUNNING.lock());
    let now = now();
    apps.retain_mut(|r| {
        if r.iface != net.name() {
            return true;
        }
        let v = r.app.abort(net, now, &mut Console);
        println!("{}: stopped: interface {} going away", r.what, net.name());
        finish(r, v);
        false
    });
    let mut slot = APPS_RUNNING.lock();
    apps.append(&mut slot);
    *slot = apps;
}

fn finish(r: &Running, v: Verdict) {
    if r.owner != Owner::Service {
        FINISHED.lock().push((r.id, r.owner, v));
    }
}

/// Poll every interface and the apps on it; ask the main loop to come
/// back at the earliest deadline any of them has.
pub fn poll() {
    let mut apps = core::mem::take(&mut *APPS_RUNNING.lock());
    let mut next: Option<Instant> = None;
    let mut earliest = |t: Instant| {
        next = Some(next.map_or(t, |n: Instant| n.min(t)));
    };
    mlx5nic::for_each_iface(|net| {
        let now = now();
        // Bounded: a flood must not starve the rest of the loop; what is
        // left is taken on the next pass, at once.
        let mut busy = true;
        for _ in 0..8 {
            busy = net.poll(now);
            if !busy {
                break;
            }
        }
        if busy {
            earliest(now);
        }
        while let Some(ev) = net.next_event() {
            report_event(net.name(), &ev);
        }
        let mut app_progress = false;
        apps.retain_mut(|r| {
            if r.iface != net.name() {
                return true;
            }
            match r.app.poll(net, now, &mut Console) {
                AppStatus::Running => {
                    if let Some(t) = r.app.poll_at(now) {
                        earliest(t);
                    }
                    app_progress = true;
                    true
                }
                AppStatus::Done(v) => {
                    finish(r, v);
                    app_progress = true;
                    false
                }
            }
        });
        if app_progress {
            // Send what the apps queued without waiting for the next wake.
            net.poll(now);
        }
        if let Some(d) = net.poll_delay(now) {
            earliest(now + d);
        }
    });
    let mut slot = APPS_RUNNING.lock();
    apps.append(&mut slot);
    *slot = apps;
    drop(slot);
    if let Some(t) = next {
        let ns = (t.total_micros().max(0) as u64).saturating_mul(1000);
        runtime::wake_at(ns);
    }
}

fn report_event(name: &str, ev: &NetEvent) {
    match ev {
        NetEvent::LeaseAcquired(l) => println!(
            "{name}: dhcp lease {} gw {} from {}{}",
            l.address,
            l.router.map_or("none".to_string(), |r| r.to_string()),
            l.server,
            l.duration
                .map_or(String::new(), |d| format!(" for {} s", d.secs()))
        ),
        NetEvent::LeaseRenewed(l) => println!(
            "{name}: dhcp lease renewed {}{}",
            l.address,
            l.duration
                .map_or(String::new(), |d| format!(" for {} s", d.secs()))
        ),
        NetEvent::LeaseLost(a) => println!("{name}: dhcp lease lost {a}"),
        NetEvent::LinkUp => println!("{name}: link up"),
        NetEvent::LinkDown => println!("{name}: link down"),
    }
}

/// Build app `app` from its argument line on `net`.
fn make_app(app: &str, args: &str, net: &mut Iface, now: Instant) -> Result<BoxedApp, String> {
    use cxos_net::tcp_service::{DISCARD_PORT, ECHO_PORT, TcpService, TcpServiceKind};
    use cxos_net::{l2, ping};
    fn parse<T: FromStr>(args: &str) -> Result<T, String>
    where
        T::Err: fmt::Display,
    {
        args.parse::<T>().map_err(|e| format!("{e}"))
    }
    let service = |net: &mut Iface, kind, default: u16| -> Result<BoxedApp, String> {
        let port = if args.is_empty() {
            default
        } else {
            args.parse().map_err(|_| format!("bad port '{args}'"))?
        };
        let s = TcpService::new(net, kind, port, SERVICE_BACKLOG).map_err(|e| format!("{e}"))?;
        Ok(Box::new(s))
    };
    Ok(match app {
        "ping" => Box::new(ping::Ping::new(net, parse(args)?, now).map_err(|e| format!("{e}"))?),
        "l2send" => {
            // The run number tells this run's frames from an earlier one's.
            let run = (time::now_ns() / 1000) as u32;
            Box::new(l2::L2Send::new(net, parse(args)?, run).map_err(|e| format!("{e}"))?)
        }
        "l2recv" => Box::new(l2::L2Recv::new(net, parse(args)?, now)),
        "iperf3" => cxos_net::iperf3::from_args(net, args, now)?,
        "echo" => service(net, TcpServiceKind::Echo, ECHO_PORT)?,
        "discard" => service(net, TcpServiceKind::Discard, DISCARD_PORT)?,
        other => return Err(format!("unknown app '{other}'")),
    })
}

/// Split a leading `-I net<i>` / `-I vnic<N>` off `args`: (interface
/// name, the rest).
fn interface_arg(args: &str) -> Result<(String, &str), String> {
    let Some(rest) = args.strip_prefix("-I ") else {
        return Ok(("net0".into(), args));
    };
    let rest = rest.trim_start();
    let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.parse::<u32>().is_ok())
    };
    if !numbered("net") && !numbered("vnic") {
        return Err(format!(
            "bad interface '{name}' (net0, net1, ..., vnic0, ...)"
        ));
    }
    Ok((name.into(), rest.trim_start()))
}

/// Start `app` with `args` (which may begin with `-I net<i>`) for
/// `owner`; its id.
pub fn start_app(app: &str, args: &str, owner: Owner) -> Result<u32, String> {
    let (iface, args) = interface_arg(args)?;
    let now = now();
    let built =
        mlx5nic::with_iface(&iface, |net| make_app(app, args, net, now)).ok_or_else(|| {
            format!("no interface {iface} (no attached port or VNIC with that name)")
        })??;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let what = if args.is_empty() {
        format!("{app} on {iface}")
    } else {
        format!("{app} {args} on {iface}")
    };
    APPS_RUNNING.lock().push(Running {
        id,
        iface,
        owner,
        what,
        app: built,
    });
    // First poll now rather than at the next interrupt.
    runtime::wake_at(0);
    Ok(id)
}

/// The verdict of app `id` once it finished.
pub fn take_result(id: u32) -> Option<Verdict> {
    let mut f = FINISHED.lock();
    let i = f.iter().position(|(x, ..)| *x == id)?;
    Some(f.swap_remove(i).2)
}

/// Abort app `id` (Ctrl-C, `serve stop`): its summary is printed and its
/// verdict recorded (as for a finished one). False if it is not running.
pub fn abort(id: u32) -> bool {
    let Some(mut r) = ({
        let mut apps = APPS_RUNNING.lock();
        apps.iter()
            .position(|r| r.id == id)
            .map(|i| apps.swap_remove(i))
    }) else {
        return false;
    };
    let now = now();
    let v = mlx5nic::with_iface(&r.iface, |net| r.app.abort(net, now, &mut Console))
        .unwrap_or_else(|| Verdict {
            ok: false,
            summary: "interface gone".into(),
        });
    finish(&r, v);
    true
}

/// `serve`: the background services, one line each.
pub fn services() -> Vec<String> {
    APPS_RUNNING
        .lock()
        .iter()
        .filter(|r| r.owner == Owner::Service)
        .map(|r| format!("service {}: {}", r.id, r.what))
        .collect()
}

/// `serve stop <id>`.
pub fn stop_service(id: u32) -> bool {
    let is_service = APPS_RUNNING
        .lock()
        .iter()
        .any(|r| r.id == id && r.owner == Owner::Service);
    is_service && abort(id)
}

/// `ifconfig` without arguments: one status line per interface.
pub fn status_lines() -> Vec<String> {
    mlx5nic::iface_status()
}

/// `ifconfig net<i> <config>`: reconfigure a running interface (and keep
/// the configuration for later opens).
pub fn reconfigure(index: usize, text: &str) -> Result<String, String> {
    let cfg = IfConfig::from_str(text).map_err(|e| format!("{e}"))?;
    set_config(index, cfg);
    let line = mlx5nic::with_iface(&format!("net{index}"), |net| {
        net.reconfigure(&cfg);
        net.status_line()
    });
    runtime::wake_at(0);
    Ok(line.unwrap_or_else(|| format!("net{index}: not attached; {cfg} used when it opens")))
}

/// Whether interface `index` can carry the test: link up and, when an
/// IPv4 configuration is asked for, an address (DHCP lease).
pub fn ready(index: usize) -> bool {
    mlx5nic::with_iface(&format!("net{index}"), |net| {
        use cxos_drivers::NetDevice;
        let wants_v4 = !matches!(net.config().ipv4, cxos_net::config::Ipv4Config::None);
        net.device().link().up && (!wants_v4 || net.ipv4().is_some())
    })
    .unwrap_or(false)
}

/// How long `test=` waits for net0 (link up, DHCP lease when asked for).
const READY_TIMEOUT_NS: u64 = 30_000_000_000;

/// The command line's `test=<app>:<args>[+...]`: wait until net0 is
/// ready, run each app to its end, detach every adapter, print the tally
/// and exit QEMU with the verdict (see KERNEL-CONTRACT.md, "Additions").
pub fn run_test(apps: &[cxos_kernel::cmdline::TestApp]) -> ! {
    let (mut passed, mut failed) = (0u32, 0u32);
    let start = time::now_ns();
    let deadline = start.saturating_add(READY_TIMEOUT_NS);
    while !ready(0) && time::now_ns() < deadline {
        runtime::wake_at(deadline);
        runtime::run_once();
    }
    let status = status_lines()
        .into_iter()
        .next()
        .unwrap_or_else(|| "no interface".into());
    if ready(0) {
        println!(
            "test: net0 ready after {} ms: {status}",
            (time::now_ns() - start) / 1_000_000
        );
        for t in apps {
            let what = if t.args.is_empty() {
                t.app.clone()
            } else {
                format!("{} {}", t.app, t.args)
            };
            println!("test: {what}");
            let verdict = match start_app(&t.app, &t.args, Owner::Test) {
                Err(e) => Verdict {
                    ok: false,
                    summary: e,
                },
                Ok(id) => loop {
                    if let Some(v) = take_result(id) {
                        break v;
                    }
                    runtime::run_once();
                },
            };
            if verdict.ok {
                passed += 1;
                println!("test: {what} ... ok: {}", verdict.summary);
            } else {
                failed += 1;
                println!("test: {what} ... FAILED: {}", verdict.summary);
                break;
            }
        }
    } else {
        failed += 1;
        println!(
            "test: net0 not ready after {} s: {status}",
            READY_TIMEOUT_NS / 1_000_000_000
        );
    }
    // The adapters' own counters (packets, drops, faults) for the record.
    if let Ok(report) = crate::registry::port_report(crate::registry::PortReport::Stats, None) {
        print!("{report}");
    }
    for line in crate::registry::detach_all() {
        println!("{line}");
    }
    println!("test: {passed} passed, {failed} failed");
    crate::arch::exit(if failed == 0 {
        crate::arch::EXIT_PASS
    } else {
        crate::arch::EXIT_FAIL
    })
}
