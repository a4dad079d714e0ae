//! The interface table (feature `net`): every network interface of the
//! kernel with the apps running on it. Drivers register what they open
//! (`net<i>` on a port, `vnic<N>`, and whatever a later driver or a link
//! aggregation provides: any [`NetDevice`] under a [`NetInterface`]);
//! the network stack's main-loop poll, the shell and `test=` find
//! interfaces here, by name or by address, and never through a driver.
//!
//! An interface a driver knows of but cannot offer (its adapter detached,
//! or attached without a data path) stays in the table as a *down* entry
//! with the reason, so `ifconfig` lists it in its place.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;

use cxos_drivers::NetDevice;
use cxos_net::app::{App, AppStatus, Verdict};
use cxos_net::config::{IfConfig, Ipv4Config};
use cxos_net::smoltcp::time::Instant;
use cxos_net::smoltcp::wire::IpAddress;
use cxos_net::{NetEvent, NetIf};

use crate::apps::{AppCommand, Target};

/// An app started through the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub struct AppId(pub u32);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

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

/// Passes of the stack per poll: a flood must not starve the rest of the
/// main loop; what is left is taken on the next pass, at once.
const POLL_PASSES: usize = 8;

/// One network interface as the kernel drives it, whatever device is
/// under it (object safe: the table holds `Box<dyn Interface>`).
pub trait Interface: Send {
    /// `net0`, `vnic3`.
    fn name(&self) -> &str;
    /// The `ifconfig` line.
    fn status_line(&self) -> String;
    fn config(&self) -> &IfConfig;
    fn reconfigure(&mut self, cfg: &IfConfig);
    /// Link up and, when an IPv4 configuration is asked for, an address
    /// (a DHCP lease).
    fn ready(&self) -> bool;
    /// The interface holds `addr` (static, leased or link-local).
    fn has_address(&self, addr: IpAddress) -> bool;
    /// Start `cmd`'s app here as `id`; `Err` is a one-line message.
    fn start(&mut self, id: AppId, cmd: &AppCommand, now: Instant, run: u32) -> Result<(), String>;
    /// Run the stack and the apps (bounded work); console lines (apps,
    /// lease and link events) go to `out`, the verdicts of apps that
    /// ended to `finished`. The next time it wants a poll without input.
    fn poll(
        &mut self,
        now: Instant,
        out: &mut dyn fmt::Write,
        finished: &mut Vec<(AppId, Verdict)>,
    ) -> Option<Instant>;
    /// Stop app `id` if it runs here: its summary goes to `out`.
    fn abort(&mut self, id: AppId, now: Instant, out: &mut dyn fmt::Write) -> Option<Verdict>;
    /// The apps running here.
    fn apps(&self) -> Vec<AppId>;
    /// The concrete interface, for the driver that registered it.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// The console line of an interface event.
pub fn event_line(name: &str, ev: &NetEvent) -> String {
    let secs = |d: Option<cxos_net::smoltcp::time::Duration>| {
        d.map_or(String::new(), |d| format!(" for {} s", d.secs()))
    };
    match ev {
        NetEvent::LeaseAcquired(l) => format!(
            "{name}: dhcp lease {} gw {} from {}{}",
            l.address,
            l.router.map_or("none".to_string(), |r| r.to_string()),
            l.server,
            secs(l.duration)
        ),
        NetEvent::LeaseRenewed(l) => format!(
            "{name}: dhcp lease renewed {}{}",
            l.address,
            secs(l.duration)
        ),
        NetEvent::LeaseLost(a) => format!("{name}: dhcp lease lost {a}"),
        NetEvent::LinkUp => format!("{name}: link up"),
        NetEvent::LinkDown => format!("{name}: link down"),
    }
}

type BoxedApp<D> = Box<dyn App<D> + Send>;

/// A cxos-net stack over any [`NetDevice`], with its apps: the
/// [`Interface`] every device gets.
pub struct NetInterface<D: NetDevice> {
    net: NetIf<D>,
    apps: Vec<(AppId, BoxedApp<D>)>,
}

impl<D: NetDevice> NetInterface<D> {
    pub fn new(net: NetIf<D>) -> Self {
        Self {
            net,
            apps: Vec::new(),
        }
    }

    pub fn net(&self) -> &NetIf<D> {
        &self.net
    }

    pub fn net_mut(&mut self) -> &mut NetIf<D> {
        &mut self.net
    }

    /// The stack back (apps still running are dropped: the table aborts
    /// them before it lets an interface go).
    pub fn into_net(self) -> NetIf<D> {
        self.net
    }
}

impl<D: NetDevice> fmt::Debug for NetInterface<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetInterface")
            .field("name", &self.net.name())
            .field("apps", &self.apps.len())
            .finish()
    }
}

impl<D: NetDevice + Send + 'static> Interface for NetInterface<D> {
    fn name(&self) -> &str {
        self.net.name()
    }

    fn status_line(&self) -> String {
        self.net.status_line()
    }

    fn config(&self) -> &IfConfig {
        self.net.config()
    }

    fn reconfigure(&mut self, cfg: &IfConfig) {
        self.net.reconfigure(cfg);
    }

    fn ready(&self) -> bool {
        let wants_v4 = !matches!(self.net.config().ipv4, Ipv4Config::None);
        self.net.device().link().up && (!wants_v4 || self.net.ipv4().is_some())
    }

    fn has_address(&self, addr: IpAddress) -> bool {
        self.net
            .iface
            .ip_addrs()
            .iter()
            .any(|c| c.address() == addr)
    }

    fn start(&mut self, id: AppId, cmd: &AppCommand, now: Instant, run: u32) -> Result<(), String> {
        let app = cmd.build(&mut self.net, now, run)?;
        self.apps.push((id, app));
        Ok(())
    }

    fn poll(
        &mut self,
        now: Instant,
        out: &mut dyn fmt::Write,
        finished: &mut Vec<(AppId, Verdict)>,
    ) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        let net = &mut self.net;
        let mut busy = true;
        for _ in 0..POLL_PASSES {
            busy = net.poll(now);
            if !busy {
                break;
            }
        }
        if busy {
            earliest(now);
        }
        while let Some(ev) = net.next_event() {
            let _ = writeln!(out, "{}", event_line(net.name(), &ev));
        }
        let mut progress = false;
        self.apps
            .retain_mut(|(id, app)| match app.poll(net, now, out) {
                AppStatus::Running => {
                    if let Some(t) = app.poll_at(now) {
                        earliest(t);
                    }
                    progress = true;
                    true
                }
                AppStatus::Done(v) => {
                    finished.push((*id, v));
                    progress = true;
                    false
                }
            });
        if progress {
            // Send what the apps queued without waiting for the next wake.
            net.poll(now);
        }
        if let Some(d) = net.poll_delay(now) {
            earliest(now + d);
        }
        next
    }

    fn abort(&mut self, id: AppId, now: Instant, out: &mut dyn fmt::Write) -> Option<Verdict> {
        let i = self.apps.iter().position(|(x, _)| *x == id)?;
        let (_, mut app) = self.apps.remove(i);
        Some(app.abort(&mut self.net, now, out))
    }

    fn apps(&self) -> Vec<AppId> {
        self.apps.iter().map(|(id, _)| *id).collect()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

enum Entry {
    Up(Box<dyn Interface>),
    /// Known, not usable: the line `ifconfig` shows after the name.
    Down {
        name: String,
        why: String,
    },
    /// Lent to its driver for a change that waits on the device
    /// ([`Interfaces::lend`]): not polled, its status line as it was.
    Lent {
        name: String,
        line: String,
    },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Up(i) => i.name(),
            Entry::Down { name, .. } | Entry::Lent { name, .. } => name,
        }
    }
}

/// What the table knows of a running app.
struct Running {
    id: AppId,
    /// The interface it runs on.
    iface: String,
    owner: Owner,
    /// What was started (`ping 10.0.0.1 -c 3 on net0`), for `serve`.
    what: String,
}

/// Why an interface was not added.
pub struct Taken(pub Box<dyn Interface>);

impl fmt::Debug for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Taken({})", self.0.name())
    }
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interface {} exists", self.0.name())
    }
}

/// The table: interfaces in registration order, the apps on them, the
/// verdicts their owners have not collected, and the configuration each
/// interface name starts with.
#[derive(Default)]
pub struct Interfaces {
    entries: Vec<Entry>,
    running: Vec<Running>,
    finished: Vec<(AppId, Owner, Verdict)>,
    configs: Vec<(String, IfConfig)>,
    next_id: u32,
}

impl fmt::Debug for Interfaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(Entry::name).collect();
        f.debug_struct("Interfaces")
            .field("entries", &names)
            .field("apps", &self.running.len())
            .finish()
    }
}

impl Interfaces {
    pub const fn new() -> Self {
        Self::numbered_from(1)
    }

    /// A table whose apps are numbered from `first` (one table per CPU,
    /// each its own range, so an app id names its table).
    pub const fn numbered_from(first: u32) -> Self {
        Self {
            entries: Vec::new(),
            running: Vec::new(),
            finished: Vec::new(),
            configs: Vec::new(),
            next_id: first,
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name() == name)
    }

    /// Register a running interface, in the place of a down entry of its
    /// name; a running one of that name refuses it.
    pub fn add(&mut self, iface: Box<dyn Interface>) -> Result<(), Taken> {
        match self.position(iface.name()) {
            Some(i) if !matches!(self.entries[i], Entry::Down { .. }) => Err(Taken(iface)),
            Some(i) => {
                self.entries[i] = Entry::Up(iface);
                Ok(())
            }
            None => {
                self.entries.push(Entry::Up(iface));
                Ok(())
            }
        }
    }

    /// Take interface `name` out of the table: its apps are aborted
    /// (summaries and a `stopped` line to `out`; their owners see them
    /// fail). The interface, if it was running.
    pub fn remove(
        &mut self,
        name: &str,
        now: Instant,
        out: &mut dyn fmt::Write,
    ) -> Option<Box<dyn Interface>> {
        let i = self.position(name)?;
        if matches!(self.entries[i], Entry::Lent { .. }) {
            return None;
        }
        let iface = match self.entries.remove(i) {
            Entry::Up(iface) => iface,
            Entry::Down { .. } | Entry::Lent { .. } => return None,
        };
        Some(self.closing(iface, now, out))
    }

    /// Mark `name` down for `why` (`ifconfig` shows `<name>: <why>`), in
    /// its place; a running interface of that name is taken out as by
    /// [`Interfaces::remove`] and returned.
    pub fn set_down(
        &mut self,
        name: &str,
        why: &str,
        now: Instant,
        out: &mut dyn fmt::Write,
    ) -> Option<Box<dyn Interface>> {
        let down = Entry::Down {
            name: name.into(),
            why: why.into(),
        };
        let Some(i) = self.position(name) else {
            self.entries.push(down);
            return None;
        };
        if matches!(self.entries[i], Entry::Lent { .. }) {
            // Its driver has it: it comes back with `give_back`.
            return None;
        }
        match core::mem::replace(&mut self.entries[i], down) {
            Entry::Up(iface) => Some(self.closing(iface, now, out)),
            Entry::Down { .. } | Entry::Lent { .. } => None,
        }
    }

    fn closing(
        &mut self,
        mut iface: Box<dyn Interface>,
        now: Instant,
        out: &mut dyn fmt::Write,
    ) -> Box<dyn Interface> {
        for id in iface.apps() {
            let verdict = iface.abort(id, now, out);
            if let Some(r) = self.take_running(id) {
                let _ = writeln!(
                    out,
                    "{}: stopped: interface {} going away",
                    r.what,
                    iface.name()
                );
                self.finish(
                    &r,
                    verdict.unwrap_or_else(|| Verdict::fail("interface gone")),
                );
            }
        }
        iface
    }

    fn take_running(&mut self, id: AppId) -> Option<Running> {
        let i = self.running.iter().position(|r| r.id == id)?;
        Some(self.running.remove(i))
    }

    fn finish(&mut self, r: &Running, v: Verdict) {
        if r.owner != Owner::Service {
            self.finished.push((r.id, r.owner, v));
        }
    }

    /// The running interface `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut (dyn Interface + 'static)> {
        self.entries.iter_mut().find_map(|e| match e {
            Entry::Up(i) if i.name() == name => Some(&mut **i),
            _ => None,
        })
    }

    /// The stack of interface `name` if a [`NetInterface<D>`] runs it
    /// (the driver that registered it reaching its device).
    pub fn net_mut<D: NetDevice + Send + 'static>(&mut self, name: &str) -> Option<&mut NetIf<D>> {
        let iface = self.get_mut(name)?;
        let any = iface.as_any_mut();
        any.downcast_mut::<NetInterface<D>>().map(|n| n.net_mut())
    }

    /// The first running interface (in registration order): where an app
    /// pinned to this table's CPU without an interface runs.
    pub fn first_up(&self) -> Option<String> {
        self.entries.iter().find_map(|e| match e {
            Entry::Up(i) => Some(i.name().to_string()),
            Entry::Down { .. } | Entry::Lent { .. } => None,
        })
    }

    /// The interface an app asked for, by name.
    pub fn resolve(&self, target: &Target) -> Result<String, String> {
        let up = || {
            self.entries.iter().filter_map(|e| match e {
                Entry::Up(i) => Some(i),
                Entry::Down { .. } | Entry::Lent { .. } => None,
            })
        };
        match target {
            Target::Address(a) => up()
                .find(|i| i.has_address(*a))
                .map(|i| i.name().to_string())
                .ok_or_else(|| format!("no interface with address {a}")),
            Target::Default | Target::Name(_) => {
                let name = target.to_string();
                if up().any(|i| i.name() == name) {
                    Ok(name)
                } else {
                    Err(format!(
                        "no interface {name} (no attached port or VNIC with that name)"
                    ))
                }
            }
        }
    }

    /// Start `cmd` for `owner`; its id.
    pub fn start(
        &mut self,
        cmd: &AppCommand,
        owner: Owner,
        now: Instant,
        run: u32,
    ) -> Result<AppId, String> {
        let name = self.resolve(&cmd.target)?;
        let id = AppId(self.next_id);
        let iface = self
            .get_mut(&name)
            .expect("resolved to a running interface");
        iface.start(id, cmd, now, run)?;
        self.next_id += 1;
        self.running.push(Running {
            id,
            what: cmd.describe(&name),
            iface: name,
            owner,
        });
        Ok(id)
    }

    /// Poll every running interface and its apps (console lines to
    /// `out`); the earliest time any of them wants the next poll.
    pub fn poll(&mut self, now: Instant, out: &mut dyn fmt::Write) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut finished = Vec::new();
        for e in &mut self.entries {
            if let Entry::Up(iface) = e
                && let Some(t) = iface.poll(now, out, &mut finished)
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        for (id, v) in finished {
            if let Some(r) = self.take_running(id) {
                self.finish(&r, v);
            }
        }
        next
    }

    /// Abort app `id` (Ctrl-C, `serve stop`): its summary goes to `out`
    /// and its verdict is recorded as for a finished one. False if it is
    /// not running.
    pub fn abort(&mut self, id: AppId, now: Instant, out: &mut dyn fmt::Write) -> bool {
        let Some(r) = self.take_running(id) else {
            return false;
        };
        let verdict = self
            .get_mut(&r.iface)
            .and_then(|i| i.abort(id, now, out))
            .unwrap_or_else(|| Verdict::fail("interface gone"));
        self.finish(&r, verdict);
        true
    }

    /// The verdict of app `id` once it finished (collected once).
    pub fn take_result(&mut self, id: AppId) -> Option<Verdict> {
        let i = self.finished.iter().position(|(x, ..)| *x == id)?;
        Some(self.finished.swap_remove(i).2)
    }

    /// `serve`: the background services, one line each.
    pub fn services(&self) -> Vec<String> {
        self.running
            .iter()
            .filter(|r| r.owner == Owner::Service)
            .map(|r| format!("service {}: {}", r.id, r.what))
            .collect()
    }

    /// `serve stop <id>`: false if `id` is no service.
    pub fn stop_service(&mut self, id: AppId, now: Instant, out: &mut dyn fmt::Write) -> bool {
        let is_service = self
            .running
            .iter()
            .any(|r| r.id == id && r.owner == Owner::Service);
        is_service && self.abort(id, now, out)
    }

    /// `ifconfig`: one line per interface, down ones with their reason.
    pub fn status_lines(&self) -> Vec<String> {
        self.entries.iter().map(Self::line).collect()
    }

    /// `ifconfig <name>`.
    pub fn status_line(&self, name: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|e| e.name() == name)
            .map(Self::line)
    }

    fn line(e: &Entry) -> String {
        match e {
            Entry::Up(i) => i.status_line(),
            Entry::Down { name, why } => format!("{name}: {why}"),
            Entry::Lent { line, .. } => line.clone(),
        }
    }

    /// Lend running interface `name` to its driver for a change that
    /// waits on the device (an MTU change, promiscuous mode), so the table
    /// need not stay locked meanwhile: the interface keeps its place and
    /// status line, is not polled (its apps pause), cannot be removed or
    /// set down, and comes back with [`Interfaces::give_back`]. `None` if
    /// it is not running (or lent already).
    pub fn lend(&mut self, name: &str) -> Option<Box<dyn Interface>> {
        let i = self
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Up(x) if x.name() == name))?;
        let line = Self::line(&self.entries[i]);
        let lent = Entry::Lent {
            name: name.into(),
            line,
        };
        match core::mem::replace(&mut self.entries[i], lent) {
            Entry::Up(iface) => Some(iface),
            other => {
                self.entries[i] = other;
                None
            }
        }
    }

    /// Whether interface `name` is lent out ([`Interfaces::lend`]).
    pub fn is_lent(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Lent { name: n, .. } if n == name))
    }

    /// Put a lent interface back in its place.
    pub fn give_back(&mut self, iface: Box<dyn Interface>) {
        match self
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Lent { name, .. } if name == iface.name()))
        {
            Some(i) => self.entries[i] = Entry::Up(iface),
            None => self.entries.push(Entry::Up(iface)),
        }
    }

    /// Give running interface `name` new addresses; its status line, or
    /// `None` if it is not running.
    pub fn reconfigure(&mut self, name: &str, cfg: &IfConfig) -> Option<String> {
        let iface = self.get_mut(name)?;
        iface.reconfigure(cfg);
        Some(iface.status_line())
    }

    /// Remember the configuration interface `name` starts with.
    pub fn set_config(&mut self, name: &str, cfg: IfConfig) {
        self.configs.retain(|(n, _)| n != name);
        self.configs.push((name.into(), cfg));
    }

    /// The configuration interface `name` starts with (`none` unless set).
    pub fn config_for(&self, name: &str) -> IfConfig {
        self.configs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    /// Interface `name` runs and is [`Interface::ready`].
    pub fn ready(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Up(i) if i.name() == name && i.ready()))
    }
}

#[cfg(test)]
mod tests;
