//! The mlx5 entry of the driver registry: every ConnectX function the
//! enumeration found is claimed (BAR0 mapped wherever firmware put it,
//! memory decoding and bus mastering on), attached from the main loop, and
//! then serviced from the main loop: EQ0 when its MSI-X vector fired (and
//! once a second as a fallback), health once a second.
//!
//! A function whose attach failed, or that the shell detached, stays
//! claimed with bus mastering off, untouched until `attach <pci>`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use cxos_drivers::PciAddress;
use mlx5::Resources;
use mlx5::port::Speed;
use mlx5::vnic::{Nic, NicConfig, Vnic, VnicSpec};
use mlx5::{Adapter, Config, PortEvent};
use spin::Mutex;

use crate::platform::KernelPlatform;
use crate::{interrupts, pcibus, println, runtime, time};

/// Health and fallback event polling period (the driver samples the
/// health counter at most every `HealthConfig::poll_interval_ms`).
const SERVICE_PERIOD_NS: u64 = 1_000_000_000;

/// An attached adapter.
pub type Adp = Adapter<KernelPlatform>;

/// The data path of one interface: a VNIC of the adapter (the port's own
/// MAC for `net<i>`, others for `vnic<N>`); the adapter steers.
pub type Port = Vnic<Adp>;

/// What an interface carries: the network stack over its VNIC (feature
/// `net`), or the bare VNIC.
#[cfg(feature = "net")]
pub type Ifc = crate::netstack::Iface;
#[cfg(not(feature = "net"))]
pub type Ifc = Port;

#[cfg(feature = "net")]
fn port_of(n: &Ifc) -> &Port {
    n.device()
}
#[cfg(feature = "net")]
fn port_of_mut(n: &mut Ifc) -> &mut Port {
    n.device_mut()
}
#[cfg(not(feature = "net"))]
fn port_of(n: &Ifc) -> &Port {
    n
}
#[cfg(not(feature = "net"))]
fn port_of_mut(n: &mut Ifc) -> &mut Port {
    n
}

#[cfg(feature = "net")]
fn into_port(n: Ifc) -> Port {
    n.into_device()
}
#[cfg(not(feature = "net"))]
fn into_port(n: Ifc) -> Port {
    n
}

/// An adapter with its data path open: the steering (`Nic`), the port's
/// own interface and the extra VNICs.
struct Opened {
    nic: Nic<Adp>,
    /// `net<i>`: the VNIC with the port's MAC, untagged.
    main: Ifc,
    /// `vnic<N>` (only on the first ConnectX function), by number.
    vnics: Vec<(u32, Ifc)>,
}

enum State {
    /// Attached, with the port's data path open.
    Open(Box<Opened>),
    /// Attached, but the data path could not be opened.
    Attached(Box<Adp>),
    /// Detached, or attach failed: the device is left alone.
    Down(KernelPlatform),
    /// Only while the platform is lent to the driver (inside attach or
    /// detach, with the slot table locked); never seen outside.
    Moving,
}

impl State {
    fn is_attached(&self) -> bool {
        matches!(self, State::Open(_) | State::Attached(_))
    }

    /// Run `f` on the adapter, if attached. Never call it from inside a
    /// VNIC call (the `Nic` lock).
    fn with_adapter<R>(&mut self, f: impl FnOnce(&mut Adp) -> R) -> Option<R> {
        match self {
            State::Open(o) => Some(o.nic.with_adapter(f)),
            State::Attached(a) => Some(f(a)),
            State::Down(_) | State::Moving => None,
        }
    }
}

struct Slot {
    addr: PciAddress,
    state: State,
    /// The fault (or failure) was already reported on the console.
    fault_reported: bool,
    /// The first link-up since boot was reported with its time.
    link_up_timed: bool,
    /// The last event-processing error printed (repeats are not).
    last_error: Option<String>,
    /// Why the latest attach failed (cleared by a successful one).
    attach_error: Option<String>,
    /// Frames received while no network stack took them.
    #[cfg_attr(feature = "net", allow(dead_code))]
    rx_unclaimed: u64,
    /// Position among the ConnectX functions: interface `net<index>`.
    index: usize,
}

static SLOTS: Mutex<Vec<Slot>> = Mutex::new(Vec::new());
static SERVICE_STARTED: AtomicBool = AtomicBool::new(false);

/// Claim every ConnectX function and attach it unless `attach` is off;
/// start the service timer.
pub fn attach_all(attach: bool) {
    while let Some(claimed) = pcibus::claim(mlx5::PCI_IDS, "mlx5") {
        let dev = match claimed {
            Ok(dev) => dev,
            Err(e) => {
                println!("mlx5 {e}; function left alone");
                continue;
            }
        };
        let addr = dev.addr;
        let platform = match KernelPlatform::new(dev, "mlx5") {
            Ok(p) => p,
            Err(e) => {
                println!("mlx5 {e}; function left alone");
                continue;
            }
        };
        let mut slot = Slot {
            addr,
            state: State::Down(platform),
            fault_reported: false,
            link_up_timed: false,
            last_error: None,
            attach_error: None,
            rx_unclaimed: 0,
            index: SLOTS.lock().len(),
        };
        if attach {
            attach_slot(&mut slot);
        } else {
            if let State::Down(p) = &slot.state {
                p.set_bus_master(false);
            }
            println!("mlx5 {addr}: not attached (attach=off)");
        }
        SLOTS.lock().push(slot);
    }
    if !SLOTS.lock().is_empty() && !SERVICE_STARTED.swap(true, Ordering::AcqRel) {
        runtime::periodic(SERVICE_PERIOD_NS, service_all);
    }
}

/// Run bring-up on a `Down` slot and print the outcome; true if attached.
fn attach_slot(slot: &mut Slot) -> bool {
    let platform = match core::mem::replace(&mut slot.state, State::Moving) {
        State::Down(p) => p,
        other => {
            slot.state = other;
            return false;
        }
    };
    let addr = slot.addr;
    platform.set_bus_master(true);
    match Adapter::attach(platform, Config::default()) {
        Ok(adapter) => {
            println!("{}", cxos_kernel::mlx5_report::info_line(&adapter.info()));
            let attach_ms = adapter.attach_ns() / 1_000_000;
            if adapter.link_up() && !slot.link_up_timed {
                slot.link_up_timed = true;
                println!(
                    "mlx5 {addr}: attached in {attach_ms} ms; link up {} ms after kernel entry",
                    time::now_ns() / 1_000_000
                );
            } else {
                println!("mlx5 {addr}: attached in {attach_ms} ms");
            }
            // EQ0 (command completions, page requests, port events).
            let entry = adapter.eq0().map_or(0, |(_, entry)| entry);
            if !adapter
                .platform()
                .msix_bind(entry, move || service(addr, true))
            {
                println!(
                    "mlx5 {addr}: MSI-X entry {entry} not bound; events are polled once a second"
                );
            }
            slot.fault_reported = false;
            slot.attach_error = None;
            slot.state = open_port(addr, slot.index, adapter);
            true
        }
        Err(failure) => {
            println!(
                "mlx5 {addr}: attach failed at step '{}': {}; device left alone",
                failure.error.step, failure.error.error
            );
            failure.platform.set_bus_master(false);
            slot.attach_error = Some(format!("{}", failure.error));
            slot.state = State::Down(failure.platform);
            false
        }
    }
}

/// Open the data path of a freshly attached adapter: the port's
/// steering (`Nic`), the VNIC with the port's own MAC (interface
/// `net<index>`, interrupt-driven on completion EQ 0) and, on the first
/// function, the configured VNICs; bind the completion vectors to
/// [`service_port`]. On failure the adapter stays attached without one.
fn open_port(addr: PciAddress, index: usize, adapter: Adp) -> State {
    let res = match Resources::of(&adapter) {
        Ok(r) => r,
        Err(e) => {
            println!("mlx5 {addr}: port not opened: {e}; attached without a data path");
            return State::Attached(Box::new(adapter));
        }
    };
    let entry = adapter
        .comp_eqs()
        .get(res.eq_index)
        .map_or(0, |&(_, entry)| entry);
    let cfg = NicConfig::default();
    let nic = match Nic::new(adapter, res, cfg) {
        Ok(nic) => nic,
        Err(failure) => {
            println!(
                "mlx5 {addr}: port not opened: {}; attached without a data path",
                failure.error
            );
            return State::Attached(Box::new(failure.control));
        }
    };
    let main = match nic.create(VnicSpec {
        mac: Some(res.mac),
        ..VnicSpec::default()
    }) {
        Ok(v) => v,
        Err(e) => {
            println!("mlx5 {addr}: port not opened: {e}; attached without a data path");
            let (adapter, _) = close_nic(nic);
            return State::Attached(Box::new(adapter));
        }
    };
    let bound = nic.with_adapter(|a| {
        let platform = a.platform();
        let bound = platform.msix_bind(entry, move || service_port(addr));
        // Receive queues spread by RSS complete on the other completion
        // EQs: their vectors wake the stacks too.
        for (_, other) in a.comp_eqs() {
            if other != entry {
                platform.msix_bind(other, move || service_port(addr));
            }
        }
        bound
    });
    println!(
        "mlx5 {addr}: port open: mtu {}, {} tx / {} rx buffers, comp eq {} on MSI-X entry {entry}{}",
        cfg.eth.mtu,
        1u32 << cfg.eth.log_sq,
        1u32 << cfg.eth.log_rq,
        res.eqn.0,
        if bound { "" } else { " (not bound: polled)" }
    );
    open_stack(addr, index, nic, main)
}

/// Take the adapter back from its steering once every VNIC is gone.
fn close_nic(nic: Nic<Adp>) -> (Adp, mlx5::CloseReport) {
    match nic.close() {
        Ok(done) => done,
        // Every VNIC is destroyed before this is called: a live handle
        // here is a kernel bug, not device input.
        Err(_) => panic!("mlx5: steering closed while a VNIC still lives"),
    }
}

/// Put the network stack (interface `net<index>`) on the port's VNIC,
/// then create the configured VNICs (first function only).
#[cfg(feature = "net")]
fn open_stack(addr: PciAddress, index: usize, nic: Nic<Adp>, main: Port) -> State {
    match crate::netstack::open(index, main) {
        Ok(net) => {
            let vnics = if index == 0 {
                crate::vnics::create_all(&nic)
            } else {
                Vec::new()
            };
            State::Open(Box::new(Opened {
                nic,
                main: net,
                vnics,
            }))
        }
        Err((port, why)) => {
            port.destroy();
            let (adapter, _) = close_nic(nic);
            println!("mlx5 {addr}: net{index} not created: {why}; attached without a data path");
            State::Attached(Box::new(adapter))
        }
    }
}

#[cfg(not(feature = "net"))]
fn open_stack(_addr: PciAddress, _index: usize, nic: Nic<Adp>, main: Port) -> State {
    State::Open(Box::new(Opened {
        nic,
        main,
        vnics: Vec::new(),
    }))
}

/// The completion vector fired: the network stacks take the frames.
#[cfg(feature = "net")]
fn service_port(_addr: PciAddress) {
    crate::netstack::poll();
}

/// The completion vector fired: reap completions; without a network
/// stack received frames are counted and dropped, so the receive ring
/// never starves.
#[cfg(not(feature = "net"))]
fn service_port(addr: PciAddress) {
    use cxos_drivers::NetDevice;
    let mut slots = SLOTS.lock();
    let Some(slot) = slots.iter_mut().find(|s| s.addr == addr) else {
        return;
    };
    if let State::Open(o) = &mut slot.state {
        let port = &mut o.main;
        port.poll();
        while port.receive(|_, _| ()).is_some() {
            slot.rx_unclaimed += 1;
        }
        port.flush();
    }
}

/// Run `f` on every interface (`net<i>` of each open port, then the
/// VNICs).
#[cfg(feature = "net")]
pub fn for_each_iface(mut f: impl FnMut(&mut Ifc)) {
    for slot in SLOTS.lock().iter_mut() {
        if let State::Open(o) = &mut slot.state {
            f(&mut o.main);
            for (_, v) in &mut o.vnics {
                f(v);
            }
        }
    }
}

/// Run `f` on the interface called `name` (`net<i>`, `vnic<N>`); `None`
/// if there is none.
#[cfg(feature = "net")]
pub fn with_iface<R>(name: &str, f: impl FnOnce(&mut Ifc) -> R) -> Option<R> {
    let mut slots = SLOTS.lock();
    for slot in slots.iter_mut() {
        if let State::Open(o) = &mut slot.state {
            if o.main.name() == name {
                return Some(f(&mut o.main));
            }
            if let Some((_, v)) = o.vnics.iter_mut().find(|(_, v)| v.name() == name) {
                return Some(f(v));
            }
        }
    }
    None
}

/// Create VNIC `n` (`vnic<n>`) on the first function's adapter with the
/// stack `make` builds on it; its status line, or why not (`None`: no
/// open adapter to put it on).
#[cfg(feature = "net")]
pub fn add_vnic(
    n: u32,
    make: impl FnOnce(&Nic<Adp>) -> Result<Ifc, String>,
) -> Option<Result<String, String>> {
    let mut slots = SLOTS.lock();
    let State::Open(o) = &mut slots.first_mut()?.state else {
        return None;
    };
    if o.vnics.iter().any(|(m, _)| *m == n) {
        return Some(Err(format!("vnic{n} exists")));
    }
    Some(make(&o.nic).map(|net| {
        let line = net.status_line();
        o.vnics.push((n, net));
        line
    }))
}

/// Destroy VNIC `n`: its apps are aborted, its flow entries removed, its
/// queues freed. The driver's close report, or `None` if it is not there.
#[cfg(feature = "net")]
pub fn remove_vnic(n: u32) -> Option<mlx5::CloseReport> {
    let mut slots = SLOTS.lock();
    for slot in slots.iter_mut() {
        if let State::Open(o) = &mut slot.state
            && let Some(i) = o.vnics.iter().position(|(m, _)| *m == n)
        {
            let (_, mut net) = o.vnics.remove(i);
            crate::netstack::closing(&mut net);
            return Some(net.into_device().destroy());
        }
    }
    None
}

/// `vnics`: one line per interface of every open port: its name, the
/// driver's line (MAC, VLAN, queues, counters), its addresses and what its
/// unicast flow rule counted.
#[cfg(feature = "net")]
pub fn vnic_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for slot in SLOTS.lock().iter() {
        let State::Open(o) = &slot.state else {
            continue;
        };
        for net in core::iter::once(&o.main).chain(o.vnics.iter().map(|(_, v)| v)) {
            let dev = net.device();
            let report = cxos_kernel::mlx5_report::vnic_line(&dev.info());
            // The driver's line starts with its own id (`vnic3`).
            let rest = report.split_once(' ').map_or("", |(_, r)| r);
            let v4 = net
                .ipv4()
                .map_or_else(|| String::from("none"), |a| format!("{a}"));
            let dhcp = if matches!(net.config().ipv4, cxos_net::config::Ipv4Config::Dhcp) {
                " (dhcp)"
            } else {
                ""
            };
            let flow = match dev.flow_traffic() {
                Ok(t) => format!("flow {} pkts {} B", t.packets, t.bytes),
                Err(e) => format!("flow ? ({e})"),
            };
            lines.push(format!(
                "{} {rest} ipv4 {v4}{dhcp} ipv6 {} {flow}",
                net.name(),
                net.ipv6_link_local()
            ));
        }
    }
    lines
}

/// `ifconfig`: each function's interface status, or why it has none,
/// then the VNICs' status lines.
#[cfg(feature = "net")]
pub fn iface_status() -> Vec<String> {
    let mut lines = Vec::new();
    for s in SLOTS.lock().iter() {
        match &s.state {
            State::Open(o) => {
                lines.push(o.main.status_line());
                lines.extend(o.vnics.iter().map(|(_, v)| v.status_line()));
            }
            State::Attached(_) => {
                lines.push(format!("net{}: {} has no data path", s.index, s.addr))
            }
            State::Down(_) | State::Moving => {
                lines.push(format!("net{}: {} not attached", s.index, s.addr))
            }
        }
    }
    lines
}

/// Detach an attached slot (destroying its VNICs and closing the data
/// path first); the report line, or why not.
fn detach_slot(slot: &mut Slot) -> Result<String, String> {
    #[cfg(feature = "net")]
    if let State::Open(o) = &mut slot.state {
        crate::netstack::closing(&mut o.main);
        for (_, v) in &mut o.vnics {
            crate::netstack::closing(v);
        }
    }
    let (adapter, closed) = match core::mem::replace(&mut slot.state, State::Moving) {
        State::Open(o) => {
            let Opened { nic, main, vnics } = *o;
            let mut rep = mlx5::CloseReport::default();
            let mut add = |r: mlx5::CloseReport| {
                rep.errors += r.errors;
                if rep.first_error.is_none() {
                    rep.first_error = r.first_error;
                }
            };
            for (_, v) in vnics {
                add(into_port(v).destroy());
            }
            add(into_port(main).destroy());
            let (adapter, r) = close_nic(nic);
            add(r);
            (adapter, Some(rep))
        }
        State::Attached(a) => (*a, None),
        other => {
            slot.state = other;
            return Err(format!("mlx5 {}: not attached", slot.addr));
        }
    };
    let (platform, report) = adapter.detach();
    platform.set_bus_master(false);
    slot.state = State::Down(platform);
    let close_errors = closed.as_ref().map_or(0, |c| c.errors);
    let mut line = format!(
        "mlx5 {}: detached: {} pages lost, {} errors",
        slot.addr,
        report.pages_lost,
        report.errors + close_errors
    );
    let close_error = closed.and_then(|c| c.first_error);
    if let Some(e) = close_error {
        line.push_str(&format!(" (first: closing the port: {e})"));
    } else if let Some(e) = report.first_error {
        line.push_str(&format!(" (first: {e})"));
    }
    if report.reset {
        line.push_str(", function level reset");
    }
    Ok(line)
}

/// Work for one adapter from the main loop: EQ0 (page requests, port
/// events) and, from the timer, health.
fn service(addr: PciAddress, events_only: bool) {
    let mut slots = SLOTS.lock();
    if let Some(slot) = slots.iter_mut().find(|s| s.addr == addr) {
        service_slot(slot, events_only);
    }
}

fn service_all() {
    for slot in SLOTS.lock().iter_mut() {
        service_slot(slot, false);
    }
}

fn service_slot(slot: &mut Slot, events_only: bool) {
    if slot.fault_reported {
        return;
    }
    let Slot {
        addr,
        state,
        fault_reported,
        link_up_timed,
        last_error,
        ..
    } = slot;
    let addr = *addr;
    state.with_adapter(|adapter| {
        service_adapter(
            adapter,
            addr,
            events_only,
            fault_reported,
            link_up_timed,
            last_error,
        )
    });
}

fn service_adapter(
    adapter: &mut Adp,
    addr: PciAddress,
    events_only: bool,
    fault_reported: &mut bool,
    link_up_timed: &mut bool,
    last_error: &mut Option<String>,
) {
    if !events_only && let Err(fault) = adapter.poll_health() {
        println!("mlx5 {addr}: FAULT: {fault}; adapter marked failed (detach it)");
        *fault_reported = true;
        return;
    }
    match adapter.poll() {
        Ok(events) => {
            *last_error = None;
            if events.is_empty() {
                return;
            }
            for e in &events {
                match e {
                    PortEvent::Down | PortEvent::Up => {}
                    PortEvent::Other(sub) => {
                        println!("mlx5 {addr}: port event subtype {sub:#x}");
                    }
                }
            }
            if events
                .iter()
                .any(|e| matches!(e, PortEvent::Down | PortEvent::Up))
            {
                let port = adapter.port();
                if port.oper_up {
                    println!("mlx5 {addr}: link up {}", Speed(port.speed_mbps));
                    if !*link_up_timed {
                        *link_up_timed = true;
                        println!(
                            "mlx5 {addr}: link up {} ms after kernel entry",
                            time::now_ns() / 1_000_000
                        );
                    }
                } else {
                    println!("mlx5 {addr}: link down");
                }
            }
        }
        Err(e) => {
            if adapter.is_failed() {
                match adapter.fault() {
                    Some(f) => {
                        println!("mlx5 {addr}: FAULT: {f}; adapter marked failed (detach it)")
                    }
                    None => println!("mlx5 {addr}: adapter failed: {e} (detach it)"),
                }
                *fault_reported = true;
            } else {
                let text = format!("{e}");
                if last_error.as_deref() != Some(text.as_str()) {
                    println!("mlx5 {addr}: event processing: {text}");
                    *last_error = Some(text);
                }
            }
        }
    }
}

/// `phys`: one line per function (the driver's summary when attached).
pub fn phys_lines() -> Vec<String> {
    SLOTS
        .lock()
        .iter_mut()
        .map(|s| {
            let addr = s.addr;
            s.state
                .with_adapter(|a| cxos_kernel::mlx5_report::phys_line(&a.summary()))
                .unwrap_or_else(|| format!("{addr} mlx5 detached"))
        })
        .collect()
}

/// What `rings` and `stats` show for one function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortReport {
    /// One line per queue and the steering table.
    Rings,
    /// Packet counters (the Q counter read fresh), faults.
    Stats,
    /// The flow tables, groups and entries the driver programmed, each
    /// entry next to what the adapter reports for it.
    Flows,
}

/// `rings` / `stats`: for each function (or only `only`), a header line
/// `port <pci>:` then the driver's lines indented by two spaces, or
/// `port <pci>: not attached` / `port <pci>: no data path`.
pub fn port_report(which: PortReport, only: Option<PciAddress>) -> Option<String> {
    let mut slots = SLOTS.lock();
    let mut out = String::new();
    let mut found = false;
    for slot in slots.iter_mut() {
        if only.is_some_and(|a| a != slot.addr) {
            continue;
        }
        found = true;
        let addr = slot.addr;
        let body = match &mut slot.state {
            State::Open(o) => match which {
                PortReport::Rings => {
                    let mut text = cxos_kernel::mlx5_report::rings(&port_of(&o.main).rings());
                    for (n, v) in &o.vnics {
                        text.push_str(&format!("vnic{n}:\n"));
                        for line in cxos_kernel::mlx5_report::rings(&port_of(v).rings()).lines() {
                            text.push_str("  ");
                            text.push_str(line);
                            text.push('\n');
                        }
                    }
                    text
                }
                PortReport::Flows => cxos_kernel::mlx5_report::flows(&o.nic.flows_report()),
                PortReport::Stats => {
                    let mut text = String::new();
                    if let Err(e) = port_of_mut(&mut o.main).queue_set_mut().refresh_counters() {
                        text.push_str(&format!("q counter not read: {e}\n"));
                    }
                    text.push_str(&cxos_kernel::mlx5_report::stats(
                        &port_of(&o.main).queue_set().stats_report(),
                    ));
                    #[cfg(feature = "net")]
                    text.push_str(&stack_stats(&o.main));
                    #[cfg(not(feature = "net"))]
                    text.push_str(&format!(
                        "unclaimed rx frames (no network stack) {}\n",
                        slot.rx_unclaimed
                    ));
                    text
                }
            },
            State::Attached(_) => {
                out.push_str(&format!("port {addr}: no data path\n"));
                continue;
            }
            State::Down(_) | State::Moving => {
                out.push_str(&format!("port {addr}: not attached\n"));
                continue;
            }
        };
        out.push_str(&format!("port {addr}:\n"));
        for line in body.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    found.then_some(out)
}

/// The stack's side of `stats`: what it took, sent and dropped.
#[cfg(feature = "net")]
fn stack_stats(net: &Ifc) -> String {
    let p = net.phy().stats();
    format!(
        "stack: rx {} frames {} bytes, tx {} frames {} bytes, malformed {}, bad checksum {}, \
         unsupported {}, l2 test {} (dropped {}), tx busy {}, tx errors {}\n",
        p.rx_frames,
        p.rx_bytes,
        p.tx_frames,
        p.tx_bytes,
        p.rx_malformed,
        p.rx_bad_checksum,
        p.rx_unsupported,
        p.rx_l2_test,
        p.rx_l2_dropped,
        p.tx_busy,
        p.tx_errors
    )
}

/// `phys <pci>`: the driver's full report (capabilities, EQs, pages,
/// command counters), or why there is none.
pub fn report(addr: PciAddress) -> Option<Result<String, String>> {
    let mut slots = SLOTS.lock();
    let slot = slots.iter_mut().find(|s| s.addr == addr)?;
    Some(
        slot.state
            .with_adapter(|a| cxos_kernel::mlx5_report::adapter(&a.report()))
            .ok_or_else(|| format!("mlx5 {addr}: not attached")),
    )
}

/// `detach <pci>`.
pub fn detach(addr: PciAddress) -> Option<Result<String, String>> {
    let mut slots = SLOTS.lock();
    let slot = slots.iter_mut().find(|s| s.addr == addr)?;
    Some(detach_slot(slot))
}

/// Detach every attached function (before the kernel exits); the report
/// lines.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub fn detach_all() -> Vec<String> {
    SLOTS
        .lock()
        .iter_mut()
        .filter(|s| s.state.is_attached())
        .map(|s| detach_slot(s).unwrap_or_else(|e| e))
        .collect()
}

/// `attach <pci>`: bring a detached function up again. The outcome lines
/// are printed as attach goes.
pub fn attach(addr: PciAddress) -> Option<Result<(), String>> {
    let mut slots = SLOTS.lock();
    let slot = slots.iter_mut().find(|s| s.addr == addr)?;
    if slot.state.is_attached() {
        return Some(Err(format!("mlx5 {addr}: already attached")));
    }
    Some(if attach_slot(slot) {
        Ok(())
    } else {
        Err(format!("mlx5 {addr}: not attached"))
    })
}

/// `irq`: the MSI-X entries of each attached function, their CPU vectors,
/// the EQ behind each and how often it fired.
pub fn irq_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for s in SLOTS.lock().iter_mut() {
        let Some((vectors, eq0, comp)) = s
            .state
            .with_adapter(|a| (a.platform().msix_vectors(), a.eq0(), a.comp_eqs()))
        else {
            continue;
        };
        for (entry, &v) in vectors.iter().enumerate() {
            let entry = entry as u16;
            let mut eqs: Vec<String> = Vec::new();
            if let Some((eqn, _)) = eq0.filter(|&(_, ev)| ev == entry) {
                eqs.push(format!("eq0 {}", eqn.0));
            }
            for (eqn, _) in comp.iter().filter(|&&(_, ev)| ev == entry) {
                eqs.push(format!("comp eq {}", eqn.0));
            }
            let what = if eqs.is_empty() {
                String::from("unused")
            } else {
                eqs.join(", ")
            };
            lines.push(format!(
                "msix {} entry {entry} vector {v:#04x} ({what}): {}",
                s.addr,
                interrupts::count(v)
            ));
        }
    }
    lines
}

/// The `mlx5` selftest: every function attached at boot has its link up,
/// pages given to the device and EQ0's MSI-X vector counted; it detaches
/// with every page back and no error, and attaches again. `Ok(None)` when
/// there was nothing to test (and why).
pub fn selftest() -> Result<Option<&'static str>, String> {
    let mut slots = SLOTS.lock();
    if slots.is_empty() {
        return Ok(Some("no ConnectX function"));
    }
    let mut tested = 0;
    for slot in slots.iter_mut() {
        let addr = slot.addr;
        if let Some(e) = &slot.attach_error {
            return Err(format!("{addr}: attach failed: {e}"));
        }
        let Some((link_up, pages, eq0, vectors)) = slot.state.with_adapter(|a| {
            (
                a.link_up(),
                a.pages_held(),
                a.eq0(),
                a.platform().msix_vectors(),
            )
        }) else {
            continue;
        };
        if !link_up {
            return Err(format!("{addr}: link down after attach"));
        }
        if !matches!(slot.state, State::Open(_)) {
            return Err(format!("{addr}: data path not open"));
        }
        if pages == 0 {
            return Err(format!("{addr}: no pages given to the device"));
        }
        let (_, entry) = eq0.ok_or_else(|| format!("{addr}: no EQ0"))?;
        let vector = *vectors
            .get(usize::from(entry))
            .ok_or_else(|| format!("{addr}: EQ0 entry {entry} has no vector"))?;
        if interrupts::count(vector) == 0 {
            return Err(format!(
                "{addr}: EQ0's vector {vector:#04x} never fired (commands completed by polling?)"
            ));
        }
        let report = detach_slot(slot)?;
        let State::Down(_) = &slot.state else {
            return Err(format!("{addr}: still attached after detach"));
        };
        if !report.contains(": 0 pages lost, 0 errors") {
            return Err(report);
        }
        if !attach_slot(slot) {
            return Err(format!("{addr}: attach after detach failed"));
        }
        tested += 1;
    }
    Ok((tested == 0).then_some("no attached ConnectX function (attach=off)"))
}
