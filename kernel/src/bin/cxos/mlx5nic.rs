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
use mlx5::eth::{EthConfig, EthPort, Resources};
use mlx5::port::Speed;
use mlx5::{Adapter, Config, PortEvent};
use spin::Mutex;

use crate::platform::KernelPlatform;
use crate::{interrupts, pcibus, println, runtime, time};

/// Health and fallback event polling period (the driver samples the
/// health counter at most every `HealthConfig::poll_interval_ms`).
const SERVICE_PERIOD_NS: u64 = 1_000_000_000;

/// The data path of an attached function (the adapter inside).
pub type Port = EthPort<Adapter<KernelPlatform>>;

/// What an open port carries: the network stack over it (feature `net`),
/// or the bare port.
#[cfg(feature = "net")]
type Nic = crate::netstack::Iface;
#[cfg(not(feature = "net"))]
type Nic = Port;

#[cfg(feature = "net")]
fn port_of(n: &Nic) -> &Port {
    n.device()
}
#[cfg(feature = "net")]
fn port_of_mut(n: &mut Nic) -> &mut Port {
    n.device_mut()
}
#[cfg(not(feature = "net"))]
fn port_of(n: &Nic) -> &Port {
    n
}
#[cfg(not(feature = "net"))]
fn port_of_mut(n: &mut Nic) -> &mut Port {
    n
}

enum State {
    /// Attached, with the port's data path open.
    Open(Box<Nic>),
    /// Attached, but the data path could not be opened.
    Attached(Box<Adapter<KernelPlatform>>),
    /// Detached, or attach failed: the device is left alone.
    Down(KernelPlatform),
    /// Only while the platform is lent to the driver (inside attach or
    /// detach, with the slot table locked); never seen outside.
    Moving,
}

impl State {
    fn adapter(&self) -> Option<&Adapter<KernelPlatform>> {
        match self {
            State::Open(n) => Some(port_of(n).control()),
            State::Attached(a) => Some(a),
            State::Down(_) | State::Moving => None,
        }
    }

    fn adapter_mut(&mut self) -> Option<&mut Adapter<KernelPlatform>> {
        match self {
            State::Open(n) => Some(port_of_mut(n).control_mut()),
            State::Attached(a) => Some(a),
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
            println!("{}", adapter.info_line());
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

/// Open the data path of a freshly attached adapter (completion EQ 0,
/// interrupt-driven) and bind its completion vector to [`service_port`].
/// On failure the adapter stays attached without one.
fn open_port(addr: PciAddress, index: usize, adapter: Adapter<KernelPlatform>) -> State {
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
    let cfg = EthConfig::default();
    match EthPort::open(adapter, res, cfg) {
        Ok(port) => {
            let platform = port.control().platform();
            let bound = platform.msix_bind(entry, move || service_port(addr));
            // Receive queues spread by RSS complete on the other
            // completion EQs: their vectors wake the stack too.
            for (_, other) in port.control().comp_eqs() {
                if other != entry {
                    platform.msix_bind(other, move || service_port(addr));
                }
            }
            println!(
                "mlx5 {addr}: port open: mtu {}, {} tx / {} rx buffers, comp eq {} on MSI-X entry {entry}{}",
                cfg.mtu,
                1u32 << cfg.log_sq,
                1u32 << cfg.log_rq,
                res.eqn.0,
                if bound { "" } else { " (not bound: polled)" }
            );
            open_stack(addr, index, port)
        }
        Err(failure) => {
            println!(
                "mlx5 {addr}: port not opened: {}; attached without a data path",
                failure.error
            );
            State::Attached(Box::new(failure.control))
        }
    }
}

/// Put the network stack (interface `net<index>`) on an opened port.
#[cfg(feature = "net")]
fn open_stack(addr: PciAddress, index: usize, port: Port) -> State {
    match crate::netstack::open(index, port) {
        Ok(net) => State::Open(Box::new(net)),
        Err((port, why)) => {
            let (adapter, _) = (*port).close();
            println!("mlx5 {addr}: net{index} not created: {why}; attached without a data path");
            State::Attached(Box::new(adapter))
        }
    }
}

#[cfg(not(feature = "net"))]
fn open_stack(_addr: PciAddress, _index: usize, port: Port) -> State {
    State::Open(Box::new(port))
}

/// The completion vector fired: the network stack takes the frames.
#[cfg(feature = "net")]
fn service_port(_addr: PciAddress) {
    crate::netstack::poll();
}

/// The completion vector fired: reap completions; without a network
/// stack received frames are counted and dropped, so the receive ring
/// never starves.
#[cfg(not(feature = "net"))]
fn service_port(addr: PciAddress) {
    let mut slots = SLOTS.lock();
    let Some(slot) = slots.iter_mut().find(|s| s.addr == addr) else {
        return;
    };
    if let State::Open(port) = &mut slot.state {
        port.poll();
        while port.receive(|_, _| ()).is_some() {
            slot.rx_unclaimed += 1;
        }
        port.flush();
    }
}

/// Run `f` on every interface (open port), with its index.
#[cfg(feature = "net")]
pub fn for_each_iface(mut f: impl FnMut(usize, &mut Nic)) {
    for slot in SLOTS.lock().iter_mut() {
        if let State::Open(net) = &mut slot.state {
            f(slot.index, net);
        }
    }
}

/// Run `f` on interface `index`; `None` if that port is not open.
#[cfg(feature = "net")]
pub fn with_iface<R>(index: usize, f: impl FnOnce(&mut Nic) -> R) -> Option<R> {
    let mut slots = SLOTS.lock();
    match &mut slots.get_mut(index)?.state {
        State::Open(net) => Some(f(net)),
        _ => None,
    }
}

/// `ifconfig`: each function's interface status, or why it has none.
#[cfg(feature = "net")]
pub fn iface_status() -> Vec<String> {
    SLOTS
        .lock()
        .iter()
        .map(|s| match &s.state {
            State::Open(net) => net.status_line(),
            State::Attached(_) => format!("net{}: {} has no data path", s.index, s.addr),
            State::Down(_) | State::Moving => format!("net{}: {} not attached", s.index, s.addr),
        })
        .collect()
}

/// Detach an attached slot (closing its data path first); the report
/// line, or why not.
fn detach_slot(slot: &mut Slot) -> Result<String, String> {
    #[cfg(feature = "net")]
    if let State::Open(net) = &mut slot.state {
        crate::netstack::closing(slot.index, net);
    }
    let (adapter, closed) = match core::mem::replace(&mut slot.state, State::Moving) {
        State::Open(nic) => {
            #[cfg(feature = "net")]
            let port = nic.into_device();
            #[cfg(not(feature = "net"))]
            let port = *nic;
            let (adapter, report) = port.close();
            (adapter, Some(report))
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
    let close_errors = closed.map_or(0, |c| c.errors);
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
    let addr = slot.addr;
    let Some(adapter) = slot.state.adapter_mut() else {
        return;
    };
    if slot.fault_reported {
        return;
    }
    if !events_only && let Err(fault) = adapter.poll_health() {
        println!("mlx5 {addr}: FAULT: {fault}; adapter marked failed (detach it)");
        slot.fault_reported = true;
        return;
    }
    match adapter.poll() {
        Ok(events) => {
            slot.last_error = None;
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
                    if !slot.link_up_timed {
                        slot.link_up_timed = true;
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
                slot.fault_reported = true;
            } else {
                let text = format!("{e}");
                if slot.last_error.as_deref() != Some(text.as_str()) {
                    println!("mlx5 {addr}: event processing: {text}");
                    slot.last_error = Some(text);
                }
            }
        }
    }
}

/// `phys`: one line per function (the driver's summary when attached).
pub fn phys_lines() -> Vec<String> {
    SLOTS
        .lock()
        .iter()
        .map(|s| match s.state.adapter() {
            Some(a) => a.summary(),
            None => format!("{} mlx5 detached", s.addr),
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
            State::Open(nic) => match which {
                PortReport::Rings => port_of(nic).rings(),
                PortReport::Stats => {
                    let mut text = String::new();
                    if let Err(e) = port_of_mut(nic).refresh_counters() {
                        text.push_str(&format!("q counter not read: {e}\n"));
                    }
                    text.push_str(&port_of(nic).stats_report());
                    #[cfg(feature = "net")]
                    text.push_str(&stack_stats(nic));
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
fn stack_stats(net: &Nic) -> String {
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
    let slots = SLOTS.lock();
    let slot = slots.iter().find(|s| s.addr == addr)?;
    Some(match slot.state.adapter() {
        Some(a) => Ok(a.report()),
        None => Err(format!("mlx5 {addr}: not attached")),
    })
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
        .filter(|s| s.state.adapter().is_some())
        .map(|s| detach_slot(s).unwrap_or_else(|e| e))
        .collect()
}

/// `attach <pci>`: bring a detached function up again. The outcome lines
/// are printed as attach goes.
pub fn attach(addr: PciAddress) -> Option<Result<(), String>> {
    let mut slots = SLOTS.lock();
    let slot = slots.iter_mut().find(|s| s.addr == addr)?;
    if slot.state.adapter().is_some() {
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
    for s in SLOTS.lock().iter() {
        let Some(a) = s.state.adapter() else {
            continue;
        };
        let vectors = a.platform().msix_vectors();
        let eq0 = a.eq0();
        let comp = a.comp_eqs();
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
        let Some(a) = slot.state.adapter() else {
            continue;
        };
        if !a.link_up() {
            return Err(format!("{addr}: link down after attach"));
        }
        if !matches!(slot.state, State::Open(_)) {
            return Err(format!("{addr}: data path not open"));
        }
        if a.pages_held() == 0 {
            return Err(format!("{addr}: no pages given to the device"));
        }
        let (_, entry) = a.eq0().ok_or_else(|| format!("{addr}: no EQ0"))?;
        let vectors = a.platform().msix_vectors();
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
