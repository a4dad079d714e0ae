//! The network stack (feature `net`): the kernel's interface table
//! ([`cxos_kernel::iface`]) and the apps running on its interfaces (ping,
//! l2send/l2recv, iperf3, TCP echo/discard). Drivers register interfaces
//! here (`net<i>` on an opened port, `vnic<N>`); the shell and `test=`
//! find them here, by name or address.
//!
//! Everything runs from the main loops: [`poll`] runs after every
//! interrupt (a port's completion vector, the serial line, timers) and at
//! the earliest time the stacks or apps asked for (smoltcp's poll delay,
//! an app's timer), through [`runtime::wake_at`]; nothing spins.
//!
//! SMP: each CPU has its own interface table ([`TABLES`]) and polls only
//! that one: an interface (its device, its smoltcp stack, its sockets and
//! apps) is owned by one CPU ([`open_on`]; the VNIC of `vnic.<N>=...,cpu=1`
//! on CPU 1). A table's lock is taken by its own CPU's poll and by the
//! control plane (shell, drivers, timers on the boot CPU) reaching that
//! interface; a CPU's poll never waits for it (`try_lock`: busy, it comes
//! back in a millisecond), so no packet path waits on a lock another CPU's
//! packet path holds. App ids are numbered per table
//! ([`APP_IDS_PER_CPU`]), so an id names its table. Table 0 (the boot
//! CPU's) also keeps the configurations interfaces start with and the
//! down entries of interfaces not running.
//!
//! An app is either the foreground app of the shell or of the command
//! line's `test=` (one at a time; Ctrl-C aborts the shell's), or a
//! background service (`serve`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use cxos_drivers::NetDevice;
use cxos_kernel::apps::AppCommand;
use cxos_kernel::cmdline::{PortItems, port_items};
pub use cxos_kernel::iface::{AppId, Owner};
use cxos_kernel::iface::{Interface, Interfaces, NetInterface, Taken};
use cxos_net::NetIf;
use cxos_net::app::Verdict;
use cxos_net::config::IfConfig;
use cxos_net::smoltcp::time::Instant;
use spin::Mutex;

use crate::smp::{self, MAX_CPUS};
use crate::{print, println, runtime, time};

/// App ids of CPU c's table start at `c * APP_IDS_PER_CPU + 1`.
const APP_IDS_PER_CPU: u32 = 100_000;

/// Per CPU, the interfaces it owns.
static TABLES: [Mutex<Interfaces>; MAX_CPUS] = [
    table(0),
    table(1),
    table(2),
    table(3),
    table(4),
    table(5),
    table(6),
    table(7),
    table(8),
    table(9),
    table(10),
    table(11),
    table(12),
    table(13),
    table(14),
    table(15),
];

const fn table(cpu: u32) -> Mutex<Interfaces> {
    Mutex::new(Interfaces::numbered_from(cpu * APP_IDS_PER_CPU + 1))
}

/// The boot CPU's table (configurations, down entries).
static INTERFACES: &Mutex<Interfaces> = &TABLES[0];

/// The tables of the CPUs that may own interfaces.
fn tables() -> &'static [Mutex<Interfaces>] {
    &TABLES[..smp::count().clamp(1, MAX_CPUS)]
}

/// The CPU whose table lists interface `name` (running or down).
pub fn owner_cpu(name: &str) -> Option<usize> {
    tables()
        .iter()
        .position(|t| t.lock().status_line(name).is_some())
}

/// The table of the CPU that owns interface `name` (table 0 if none).
fn table_of(name: &str) -> &'static Mutex<Interfaces> {
    &TABLES[owner_cpu(name).unwrap_or(0)]
}

/// The table app `id` runs in.
fn table_of_app(id: AppId) -> &'static Mutex<Interfaces> {
    let cpu = (id.0.saturating_sub(1) / APP_IDS_PER_CPU) as usize;
    &TABLES[cpu.min(MAX_CPUS - 1)]
}

/// The `speed=`/`led=` items given for `net<i>` (command line or
/// `ifconfig`), applied when its port opens.
static PORT_ITEMS: Mutex<Vec<(String, PortItems)>> = Mutex::new(Vec::new());

/// The port settings interface `name` opens with (none unless set).
pub fn port_items_for(name: &str) -> PortItems {
    PORT_ITEMS
        .lock()
        .iter()
        .find(|(n, _)| n == name)
        .map_or_else(PortItems::default, |(_, p)| *p)
}

/// Remember `items` for interface `name`'s next open (merged: an item
/// not given keeps its earlier value).
pub fn set_port_items(name: &str, items: PortItems) {
    let mut all = PORT_ITEMS.lock();
    match all.iter_mut().find(|(n, _)| n == name) {
        Some((_, p)) => {
            p.speed = items.speed.or(p.speed);
            p.led = items.led.or(p.led);
            p.queues = items.queues.or(p.queues);
            p.tune.merge(&items.tune);
        }
        None => all.push((name.into(), items)),
    }
}

/// The stacks' clock: the kernel's monotonic time.
pub fn now() -> Instant {
    Instant::from_micros((time::now_ns() / 1000) as i64)
}

/// Apps and interface events write their lines straight to the console.
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
        let name = alloc::format!("net{index}");
        let parsed = port_items(text).and_then(|(items, rest)| {
            IfConfig::from_str(&rest)
                .map(|cfg| (items, cfg))
                .map_err(|e| alloc::format!("{e}"))
        });
        match parsed {
            Ok((items, cfg)) => {
                set_port_items(&name, items);
                INTERFACES.lock().set_config(&name, cfg);
            }
            Err(e) => {
                println!("cmdline: bad value '{text}' for 'net.{index}', using none");
                println!("cmdline: ({e})");
            }
        }
    }
    runtime::on_wake_every_cpu(poll);
}

/// The configuration interface `name` starts with (`none` unless set).
pub fn config_for(name: &str) -> IfConfig {
    INTERFACES.lock().config_for(name)
}

/// Put a stack (configured as [`config_for`] says) on `dev` as interface
/// `name` and register it: its status line, or the device back with why
/// not.
pub fn open<D: NetDevice + Send + 'static>(name: &str, dev: D) -> Result<String, (D, String)> {
    open_with(name, dev, &config_for(name))
}

/// [`open`] with configuration `cfg`.
pub fn open_with<D: NetDevice + Send + 'static>(
    name: &str,
    dev: D,
    cfg: &IfConfig,
) -> Result<String, (D, String)> {
    open_on(0, name, dev, cfg)
}

/// [`open_with`], the interface owned by CPU `cpu`: only that CPU polls
/// it and runs its apps.
pub fn open_on<D: NetDevice + Send + 'static>(
    cpu: usize,
    name: &str,
    dev: D,
    cfg: &IfConfig,
) -> Result<String, (D, String)> {
    let net =
        NetIf::new(name, dev, cfg, now()).map_err(|e| (e.device, alloc::format!("{}", e.error)))?;
    let line = net.status_line();
    let cpu = if cpu < tables().len() { cpu } else { 0 };
    // One entry per name over all tables: a running one elsewhere refuses
    // it, a down one elsewhere makes way.
    for (i, t) in tables().iter().enumerate() {
        if i != cpu {
            let mut t = t.lock();
            if t.get_mut(name).is_some() {
                return Err((net.into_device(), alloc::format!("{name} exists")));
            }
            let _ = t.remove(name, now(), &mut Console);
        }
    }
    match TABLES[cpu].lock().add(Box::new(NetInterface::new(net))) {
        Ok(()) => {
            runtime::wake_at_on(cpu, 0);
            Ok(line)
        }
        Err(Taken(iface)) => Err((device_of::<D>(iface), alloc::format!("{name} exists"))),
    }
}

/// The device under an interface [`open`] made for a `D`.
fn device_of<D: NetDevice + Send + 'static>(iface: Box<dyn Interface>) -> D {
    match iface.into_any().downcast::<NetInterface<D>>() {
        Ok(n) => n.into_net().into_device(),
        // Every interface a driver takes back is one it opened with its
        // own device type: anything else is a kernel bug.
        Err(_) => panic!("interface of another device type"),
    }
}

/// Take interface `name` away (detach, `vnic delete`): its apps are
/// aborted, printing their summaries (their owners see them fail); with
/// `why`, `ifconfig` keeps listing it as `<name>: <why>`. Its device, if
/// it was running.
pub fn close<D: NetDevice + Send + 'static>(name: &str, why: Option<&str>) -> Option<D> {
    let mut table = table_of(name).lock();
    let iface = match why {
        Some(why) => table.set_down(name, why, now(), &mut Console),
        None => table.remove(name, now(), &mut Console),
    }?;
    Some(device_of::<D>(iface))
}

/// List `name` as `<name>: <why>` (a port without a data path).
pub fn set_down(name: &str, why: &str) {
    table_of(name)
        .lock()
        .set_down(name, why, now(), &mut Console);
}

/// Run `f` on the stack of interface `name` if it runs over a `D` (the
/// registering driver reaching its device).
pub fn with_net<D: NetDevice + Send + 'static, R>(
    name: &str,
    f: impl FnOnce(&mut NetIf<D>) -> R,
) -> Option<R> {
    table_of(name).lock().net_mut::<D>(name).map(f)
}

/// Run `f` on the stack of interface `name` (if it runs over a `D`) with
/// the interface lent out of the table ([`Interfaces::lend`]), so the
/// table is free while `f` waits on the device: the other interfaces keep
/// being polled, this one (and its apps) waits for `f`. `Err(true)`: it is
/// lent already (another change on it is in progress); `Err(false)`: no
/// such interface of this device type.
pub fn with_net_lent<D: NetDevice + Send + 'static, R>(
    name: &str,
    f: impl FnOnce(&mut NetIf<D>) -> R,
) -> Result<R, bool> {
    let cpu = owner_cpu(name).unwrap_or(0);
    let mut iface = {
        let mut table = TABLES[cpu].lock();
        if table.is_lent(name) {
            return Err(true);
        }
        if table.net_mut::<D>(name).is_none() {
            return Err(false);
        }
        table.lend(name).ok_or(false)?
    };
    let r = iface
        .as_any_mut()
        .downcast_mut::<NetInterface<D>>()
        .map(|n| f(n.net_mut()));
    TABLES[cpu].lock().give_back(iface);
    // Its owner polls it (and runs its apps) at once: while it was lent
    // the owner skipped it, and `f` may have taken the completions and
    // events whose interrupt would have woken it (a CPU other than the
    // boot CPU has no timer of its own to look again).
    runtime::wake_at_on(cpu, 0);
    r.ok_or(false)
}

/// How soon a CPU whose table was busy looks again.
const BUSY_RETRY_NS: u64 = 1_000_000;

/// Poll every interface this CPU owns and the apps on them; ask its main
/// loop to come back at the earliest deadline any of them has. The table
/// held elsewhere (the shell or a driver reaching one of its interfaces):
/// nothing this round, again shortly.
pub fn poll() {
    // Receive queues this CPU polls for interfaces other CPUs own.
    crate::rxspread::poll();
    let Some(mut table) = TABLES[smp::current()].try_lock() else {
        runtime::wake_at(time::now_ns().saturating_add(BUSY_RETRY_NS));
        return;
    };
    let next = table.poll(now(), &mut Console);
    drop(table);
    wake_for(next);
}

fn wake_for(next: Option<Instant>) {
    if let Some(t) = next {
        let ns = (t.total_micros().max(0) as u64).saturating_mul(1000);
        runtime::wake_at(ns);
    }
}

/// Start `cmd` for `owner`; its id.
pub fn start_app(cmd: &AppCommand, owner: Owner) -> Result<AppId, String> {
    // The run number tells one l2send run's frames from another's.
    let run = (time::now_ns() / 1000) as u32;
    // It runs on the CPU that owns its interface (`-A <cpu>`: that one).
    let pinned = cmd.pinned(
        |c| smp::apic_id(c).is_some() && c < tables().len(),
        |t| (0..tables().len()).find_map(|i| Some((TABLES[i].lock().resolve(t).ok()?, i))),
        |c| TABLES.get(c)?.lock().first_up(),
    )?;
    let (cpu, cmd) = match &pinned {
        Some((cpu, cmd)) => (*cpu, cmd),
        None => (owner_cpu_of(&cmd.target), cmd),
    };
    let id = TABLES[cpu].lock().start(cmd, owner, now(), run)?;
    // First poll now rather than at the next interrupt.
    runtime::wake_at_on(cpu, 0);
    Ok(id)
}

/// The CPU owning the interface `target` names (0 if none does).
fn owner_cpu_of(target: &cxos_kernel::apps::Target) -> usize {
    tables()
        .iter()
        .position(|t| t.lock().resolve(target).is_ok())
        .unwrap_or(0)
}

/// The verdict of app `id` once it finished.
pub fn take_result(id: AppId) -> Option<Verdict> {
    table_of_app(id).lock().take_result(id)
}

/// Abort app `id` (Ctrl-C): its summary is printed and its verdict
/// recorded (as for a finished one). False if it is not running.
pub fn abort(id: AppId) -> bool {
    table_of_app(id).lock().abort(id, now(), &mut Console)
}

/// `serve`: the background services, one line each.
pub fn services() -> Vec<String> {
    tables().iter().flat_map(|t| t.lock().services()).collect()
}

/// `serve stop <id>`.
pub fn stop_service(id: AppId) -> bool {
    table_of_app(id)
        .lock()
        .stop_service(id, now(), &mut Console)
}

/// `ifconfig`: one status line per interface.
pub fn status_lines() -> Vec<String> {
    tables()
        .iter()
        .flat_map(|t| t.lock().status_lines())
        .collect()
}

/// `ifconfig <name>`.
pub fn status_line(name: &str) -> Option<String> {
    tables().iter().find_map(|t| t.lock().status_line(name))
}

/// Give interface `name` the addresses of `cfg` now (its status line) and
/// whenever it opens again; `None` if it is not running.
pub fn reconfigure(name: &str, cfg: &IfConfig) -> Option<String> {
    INTERFACES.lock().set_config(name, *cfg);
    reconfigure_now(name, cfg)
}

/// Remember `cfg` for interface `name` (its next open) without touching
/// the running interface: for a change of its MTU or port settings only.
pub fn set_config(name: &str, cfg: &IfConfig) {
    INTERFACES.lock().set_config(name, *cfg);
}

/// Give a running interface `name` the addresses of `cfg` now, without
/// remembering them for a later open (the VNICs keep theirs in their
/// definition); its status line, or `None` if it is not running.
pub fn reconfigure_now(name: &str, cfg: &IfConfig) -> Option<String> {
    let cpu = owner_cpu(name).unwrap_or(0);
    let line = TABLES[cpu].lock().reconfigure(name, cfg);
    runtime::wake_at_on(cpu, 0);
    line
}

/// Whether interface `name` can carry a test: link up and, when an IPv4
/// configuration is asked for, an address (DHCP lease).
pub fn ready(name: &str) -> bool {
    tables().iter().any(|t| t.lock().ready(name))
}
