//! The mlx5 entry of the PCI driver table (feature `mlx5`): every
//! ConnectX function the enumeration found is claimed (BAR0 mapped
//! wherever firmware put it, memory decoding and bus mastering on),
//! attached from the main loop, and then serviced from the main loop: EQ0
//! when its MSI-X vector fired (and once a second as a fallback), health
//! once a second.
//!
//! An opened port's data path is VNICs: the one with the port's own MAC
//! and the configured extra ones (first function only). With the network
//! stack (feature `net`) each is registered in its interface table
//! (`net<i>`, `vnic<N>`); this module only registers them, takes them back
//! on detach, and formats the driver's reports for the shell.
//!
//! A function whose attach failed, or that the shell detached, stays
//! claimed with bus mastering off, untouched until `attach <pci>`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use cxos_drivers::{PciAddress, PciId};
use cxos_kernel::queue_sets;
use cxos_kernel::shellcmd::Report;
use cxos_kernel::shellcmd::{LedArg, PortCommand, SpeedArg};
use mlx5::module::{Led, ModuleState, PortError, SpeedSetting};
use mlx5::port::Speed;
use mlx5::vnic::{Nic, NicConfig, Vnic};
use mlx5::{Adapter, Config, PortEvent};
use mlx5::{CloseReport, Resources};
use spin::Mutex;

mod cmdwait;
mod reset;

use crate::drivers::PciDriver;
use crate::pcibus::Device;
use crate::platform::KernelPlatform;
use crate::{interrupts, println, runtime, time};

#[cfg(feature = "net")]
pub mod ethtool;
#[cfg(feature = "net")]
pub mod members;
#[cfg(feature = "net")]
pub mod portq;
#[cfg(feature = "net")]
use crate::print;
#[cfg(feature = "net")]
use cxos_kernel::vnic_def::Over;

/// Health and fallback event polling period (the driver samples the
/// health counter at most every `HealthConfig::poll_interval_ms`).
pub mod faults;

const SERVICE_PERIOD_NS: u64 = 1_000_000_000;

/// An attached adapter.
pub type Mlx5Adapter = Adapter<KernelPlatform>;

/// The device under one network interface: a VNIC of the adapter (the
/// port's own MAC for `net<i>`, others for `vnic<N>`); the adapter steers.
pub type Mlx5Vnic = Vnic<Mlx5Adapter>;

/// The driver's entry in the PCI driver table.
#[derive(Debug)]
pub struct Mlx5Driver;

pub static DRIVER: Mlx5Driver = Mlx5Driver;

impl PciDriver for Mlx5Driver {
    fn name(&self) -> &'static str {
        "mlx5"
    }

    fn ids(&self) -> &'static [PciId] {
        mlx5::PCI_IDS
    }

    fn probe(&self, dev: Device, attach: bool) {
        probe(dev, attach);
    }

    fn probed(&self) {
        if !SLOTS.lock().is_empty() && !SERVICE_STARTED.swap(true, Ordering::AcqRel) {
            runtime::periodic(SERVICE_PERIOD_NS, service_all);
            runtime::periodic(faults::CHECK_PERIOD_NS, faults::check_all);
            runtime::on_wake(faults::run_pending);
        }
    }

    fn attach(&self, addr: PciAddress) -> Option<Result<(), String>> {
        attach(addr)
    }

    fn detach(&self, addr: PciAddress) -> Option<Result<String, String>> {
        let mut slots = SLOTS.lock();
        #[cfg(feature = "net")]
        if let Some(i) = slots.iter().position(|s| s.addr == addr) {
            let index = slots[i].index;
            members::release_port(&mut slots, index);
        }
        let slot = slots.iter_mut().find(|s| s.addr == addr)?;
        Some(detach_slot(slot))
    }

    fn detach_all(&self) -> Vec<String> {
        let mut slots = SLOTS.lock();
        #[cfg(feature = "net")]
        members::release_all(&mut slots);
        slots
            .iter_mut()
            .filter(|s| s.state.is_attached())
            .map(|s| detach_slot(s).unwrap_or_else(|e| e))
            .collect()
    }

    fn phys_lines(&self) -> Vec<String> {
        // The summaries under the slot table (no command); the module's
        // state and memory read after, cooperatively where the port is
        // open (`on_port`).
        let summaries: Vec<(PciAddress, Option<String>)> = SLOTS
            .lock()
            .iter_mut()
            .map(|s| {
                let line = s
                    .state
                    .with_adapter(|a| cxos_kernel::mlx5_report::phys_line(&a.summary()));
                (s.addr, line)
            })
            .collect();
        summaries
            .into_iter()
            .map(|(addr, line)| match line {
                Some(line) => match on_port(addr, module_summary) {
                    Some(m) => format!("{line}, module {m}"),
                    None => format!("{addr} mlx5 detached"),
                },
                None => format!("{addr} mlx5 detached"),
            })
            .collect()
    }

    fn report(&self, addr: PciAddress) -> Option<Result<String, String>> {
        let mut slots = SLOTS.lock();
        let slot = slots.iter_mut().find(|s| s.addr == addr)?;
        Some(
            slot.state
                .with_adapter(|a| cxos_kernel::mlx5_report::adapter(&a.report()))
                .ok_or_else(|| format!("mlx5 {addr}: not attached")),
        )
    }

    fn irq_lines(&self) -> Vec<String> {
        irq_lines()
    }

    fn port_report(&self, which: Report, only: Option<PciAddress>) -> Option<String> {
        port_report(which, only)
    }

    fn port_command(&self, cmd: PortCommand) -> Option<Result<String, String>> {
        port_command(cmd)
    }
}

/// `promisc <if> on|off` on an mlx5 interface (`None`: no such
/// interface of this driver).
#[cfg(feature = "net")]
pub fn set_promisc(name: &str, on: bool) -> Option<Result<(), String>> {
    use cxos_drivers::NetDevice;
    // The steering change waits cooperatively, the interface lent out of
    // the table.
    lent(name, |net| {
        cmdwait::run(|_| net.device_mut().set_promiscuous(on)).map_err(|e| format!("{e:?}"))
    })
}

/// Run `f` on interface `name` lent out of the interface table
/// (`netstack::with_net_lent`); `None`: no such interface; lent already:
/// `busy`.
#[cfg(feature = "net")]
fn lent<R>(
    name: &str,
    f: impl FnOnce(&mut cxos_net::NetIf<Mlx5Vnic>) -> Result<R, String>,
) -> Option<Result<R, String>> {
    match crate::netstack::with_net_lent::<Mlx5Vnic, _>(name, f) {
        Ok(r) => Some(r),
        Err(true) => Some(Err(format!(
            "{name}: busy (another change on it waits for the device)"
        ))),
        Err(false) => None,
    }
}

/// `mtu <if> <n>` on an mlx5 interface (`None`: no such interface of
/// this driver). `net<i>` sets the port's MTU: PMTU (+22) and the
/// receive buffers of every interface on the port (raised before PMTU
/// goes up, shrunk after it comes down, so no frame the MAC lets through
/// overflows a buffer); a VNIC takes at most the port's MTU.
#[cfg(feature = "net")]
pub fn set_mtu(name: &str, mtu: usize) -> Option<Result<String, String>> {
    use crate::netstack::with_net;
    use cxos_drivers::NetDevice;
    let overhead = mlx5::module::PORT_MTU_OVERHEAD;
    let (max, port_mtu, old) = with_net::<Mlx5Vnic, _>(name, |net| {
        let v = net.device();
        let (max, admin) = v
            .nic()
            .with_adapter(|a| (a.port().max_mtu, a.port().admin_mtu));
        let max = usize::from(max).saturating_sub(overhead);
        let limit = (mlx5::sq::MAX_FRAME - mlx5::queue_set::L2_OVERHEAD).min(max);
        (limit, usize::from(admin).saturating_sub(overhead), v.mtu())
    })?;
    // The interface always has an IPv6 link-local address: 1280 at least.
    if !(1280..=max).contains(&mtu) {
        return Some(Err(format!(
            "MTU {mtu} out of range: this port takes 1280 to {max}"
        )));
    }
    // Each interface's queues change with it lent out of the table, the
    // commands waiting cooperatively (the other interfaces keep running).
    let resize = |iface: &str, m: usize, rx: usize| {
        lent(iface, |net| {
            let now = crate::netstack::now();
            cmdwait::run(|_| net.change_mtu(now, |d| d.set_mtu(m, rx)))
                .map_err(|e| format!("{iface}: {e}"))
        })
        .unwrap_or(Ok(()))
    };
    if !name.starts_with("net") {
        if mtu > port_mtu {
            return Some(Err(format!(
                "MTU {mtu} above the port's {port_mtu} (raise the port's first: mtu net<i> <n>)"
            )));
        }
        return Some(resize(name, mtu, port_mtu).map(|()| format!("{name}: mtu {old} -> {mtu}")));
    }
    let vnics: Vec<String> = {
        let slots = SLOTS.lock();
        slots
            .iter()
            .find(|s| s.iface() == name)
            .and_then(|s| match &s.state {
                State::Open(o) => Some(o.vnics.iter().map(|n| format!("vnic{n}")).collect()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let nic = with_net::<Mlx5Vnic, _>(name, |net| net.device().nic().clone());
    // PMTU and the port state read after, cooperatively.
    let pmtu = || {
        nic.as_ref()
            .map_or(Ok(0), |nic| {
                cmdwait::run(|idle| nic.set_port_mtu_with(mtu, idle))
            })
            .map_err(|e| format!("{e}"))
    };
    let raise = mtu > port_mtu;
    let mut oper = 0;
    if !raise {
        oper = match pmtu() {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
    }
    let resized = (|| {
        resize(name, mtu, mtu)?;
        for v in &vnics {
            let m = with_net::<Mlx5Vnic, _>(v, |net| net.device().mtu()).unwrap_or(mtu);
            resize(v, m.min(mtu), mtu)?;
        }
        Ok::<(), String>(())
    })();
    if let Err(e) = resized {
        return Some(Err(e));
    }
    if raise {
        oper = match pmtu() {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
    }
    Some(Ok(format!("{name}: mtu {old} -> {mtu} (port MTU {oper})")))
}

/// What the cage holds, for `phys`: `FINISAR CORP. FCLF8522P2BTL
/// (1000BASE-T)`, `unplugged`, or why it cannot be read.
fn module_summary(a: &mut dyn PortOps) -> String {
    match a.module_state() {
        Ok(ModuleState::Plugged) => match a
            .read_module()
            .and_then(|m| m.decode().map_err(PortError::Sff))
        {
            Ok(t) => format!("{} {} ({})", t.vendor, t.pn, t.media),
            Err(e) => format!("unreadable ({e})"),
        },
        Ok(s) => format!("{s}"),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Where a port command runs: an open port through its `Nic`, the
/// commands waiting cooperatively ([`cmdwait::run`], the slot table not
/// held); an adapter without a data path under the slot table as before.
enum PortTarget {
    Nic(Nic<Mlx5Adapter>),
    Held,
    NotAttached,
}

/// The target of the port command on `addr` (the slot table is let go
/// before any command goes out).
fn port_target(slots: &[Slot], addr: PciAddress) -> PortTarget {
    match slots.iter().find(|s| s.addr == addr).map(|s| &s.state) {
        Some(State::Open(o)) => PortTarget::Nic(o.nic.clone()),
        Some(State::Attached(_)) => PortTarget::Held,
        _ => PortTarget::NotAttached,
    }
}

/// The port sequences a port command runs, on an adapter held or through
/// a `Nic` with the idle work.
trait PortOps {
    fn module_state(&mut self) -> Result<ModuleState, PortError>;
    fn read_module(&mut self) -> Result<mlx5::module::ModuleImage, PortError>;
    fn set_led(&mut self, led: Led) -> Result<(), PortError>;
    fn led(&mut self) -> Result<(u16, u16), PortError>;
    fn set_speed(&mut self, s: SpeedSetting) -> Result<(), PortError>;
}

impl PortOps for Mlx5Adapter {
    fn module_state(&mut self) -> Result<ModuleState, PortError> {
        Mlx5Adapter::module_state(self)
    }
    fn read_module(&mut self) -> Result<mlx5::module::ModuleImage, PortError> {
        Mlx5Adapter::read_module(self)
    }
    fn set_led(&mut self, led: Led) -> Result<(), PortError> {
        Mlx5Adapter::set_led(self, led)
    }
    fn led(&mut self) -> Result<(u16, u16), PortError> {
        Mlx5Adapter::led(self)
    }
    fn set_speed(&mut self, s: SpeedSetting) -> Result<(), PortError> {
        Mlx5Adapter::set_speed(self, s)
    }
}

/// A `Nic` and the idle work of a [`cmdwait::run`] scope.
struct CoopPort<'a> {
    nic: &'a Nic<Mlx5Adapter>,
    idle: &'a mut dyn FnMut(),
}

impl PortOps for CoopPort<'_> {
    fn module_state(&mut self) -> Result<ModuleState, PortError> {
        self.nic.module_state_with(&mut *self.idle)
    }
    fn read_module(&mut self) -> Result<mlx5::module::ModuleImage, PortError> {
        self.nic.read_module_with(&mut *self.idle)
    }
    fn set_led(&mut self, led: Led) -> Result<(), PortError> {
        self.nic.set_led_with(led, &mut *self.idle)
    }
    fn led(&mut self) -> Result<(u16, u16), PortError> {
        self.nic.led_with(&mut *self.idle)
    }
    fn set_speed(&mut self, s: SpeedSetting) -> Result<(), PortError> {
        self.nic.set_speed_with(s, &mut *self.idle)
    }
}

/// Run `f` on the port of `addr`: through its `Nic`, cooperatively, or on
/// the adapter under the slot table; `None` if it is not attached.
fn on_port<R>(addr: PciAddress, f: impl FnOnce(&mut dyn PortOps) -> R) -> Option<R> {
    let target = port_target(&SLOTS.lock(), addr);
    match target {
        PortTarget::Nic(nic) => Some(cmdwait::run(|idle| f(&mut CoopPort { nic: &nic, idle }))),
        PortTarget::Held => SLOTS
            .lock()
            .iter_mut()
            .find(|s| s.addr == addr)?
            .state
            .with_adapter(|a| f(a)),
        PortTarget::NotAttached => None,
    }
}

/// `traninfo`, `led`, `speed` on this driver's functions.
fn port_command(cmd: PortCommand) -> Option<Result<String, String>> {
    let not_attached = |addr: PciAddress| format!("mlx5 {addr}: not attached");
    let addrs: Vec<PciAddress> = SLOTS.lock().iter().map(|s| s.addr).collect();
    match cmd {
        PortCommand::Traninfo { hex, only } => {
            let mut text = String::new();
            let mut any = false;
            for addr in addrs.into_iter().filter(|a| only.is_none_or(|o| o == *a)) {
                any = true;
                let t = on_port(addr, |p| {
                    let state = p.module_state();
                    let image = match state {
                        Ok(ModuleState::Unplugged) => None,
                        _ => Some(p.read_module()),
                    };
                    cxos_kernel::traninfo::traninfo(addr, state, image, hex)
                })
                .unwrap_or_else(|| format!("{}\n", not_attached(addr)));
                text.push_str(&t);
            }
            any.then_some(Ok(text))
        }
        PortCommand::Led(addr, l) => {
            if !addrs.contains(&addr) {
                return None;
            }
            Some(
                on_port(addr, |p| set_led(p, addr, l))
                    .ok_or_else(|| not_attached(addr))
                    .and_then(|r| r),
            )
        }
        PortCommand::Speed(addr, sp) => {
            if !addrs.contains(&addr) {
                return None;
            }
            Some(
                on_port(addr, |p| set_speed(p, addr, sp))
                    .ok_or_else(|| not_attached(addr))
                    .and_then(|r| r),
            )
        }
    }
}

/// `led`: set the LED, read it back; the shell's line.
fn set_led(a: &mut dyn PortOps, addr: PciAddress, l: LedArg) -> Result<String, String> {
    let led = match l {
        LedArg::Off => Led::Off,
        LedArg::On => Led::On,
        LedArg::Beacon(n) => Led::Beacon(n),
    };
    a.set_led(led)
        .and_then(|()| a.led())
        .map_err(|e| format!("{e}"))
        .map(|(duration, remain)| match duration {
            0 => format!("mlx5 {addr}: led off\n"),
            0xffff => format!("mlx5 {addr}: led on\n"),
            _ => format!("mlx5 {addr}: led beacon {remain}s\n"),
        })
}

/// `speed`: advertise every speed or one; the shell's line.
fn set_speed(a: &mut dyn PortOps, addr: PciAddress, sp: SpeedArg) -> Result<String, String> {
    let setting = match sp {
        SpeedArg::Auto => SpeedSetting::Auto,
        SpeedArg::Mbps(m) => SpeedSetting::Forced(m),
    };
    a.set_speed(setting)
        .map_err(|e| format!("{e}"))
        .map(|()| match sp {
            SpeedArg::Auto => format!("mlx5 {addr}: advertising every speed\n"),
            SpeedArg::Mbps(m) => format!("mlx5 {addr}: advertising {} only\n", Speed(m)),
        })
}

/// The `speed=`/`led=` items of a `net<i>` configuration on its adapter,
/// as `speed` and `led` apply them: one line (or why not) per item.
#[cfg(feature = "net")]
fn apply_port_items(
    a: &mut dyn PortOps,
    addr: PciAddress,
    items: cxos_kernel::cmdline::PortItems,
) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    if let Some(sp) = items.speed {
        out.push(set_speed(a, addr, sp).map_err(|e| format!("speed: {e}")));
    }
    if let Some(l) = items.led {
        out.push(set_led(a, addr, l).map_err(|e| format!("led: {e}")));
    }
    out
}

/// [`apply_port_items`] on the adapter under interface `name`; `None`
/// when no attached adapter has that interface.
#[cfg(feature = "net")]
pub fn port_items(
    name: &str,
    items: cxos_kernel::cmdline::PortItems,
) -> Option<Vec<Result<String, String>>> {
    let addr = SLOTS.lock().iter().find(|s| s.iface() == name)?.addr;
    on_port(addr, |p| apply_port_items(p, addr, items))
}

/// An adapter with its data path open: the port's steering (`Nic`) and
/// its VNICs.
struct Opened {
    nic: Nic<Mlx5Adapter>,
    /// The port's own VNIC (`net<i>`); with the network stack it lives in
    /// the interface table.
    #[cfg(not(feature = "net"))]
    main: Mlx5Vnic,
    /// The VNICs created on this function (interfaces `vnic<N>`), by
    /// number.
    #[cfg(feature = "net")]
    vnics: Vec<u32>,
}

enum State {
    /// Attached, with the port's data path open.
    Open(Box<Opened>),
    /// Attached, but the data path could not be opened.
    Attached(Box<Mlx5Adapter>),
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
    fn with_adapter<R>(&mut self, f: impl FnOnce(&mut Mlx5Adapter) -> R) -> Option<R> {
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
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    index: usize,
}

#[cfg(feature = "net")]
impl Slot {
    /// The name of the port's own interface.
    fn iface(&self) -> String {
        format!("net{}", self.index)
    }
}

static SLOTS: Mutex<Vec<Slot>> = Mutex::new(Vec::new());
static SERVICE_STARTED: AtomicBool = AtomicBool::new(false);

/// Take a claimed ConnectX function and attach it unless `attach` is off.
fn probe(dev: Device, attach: bool) {
    let addr = dev.addr;
    let mut platform = match KernelPlatform::new(dev, "mlx5") {
        Ok(p) => p,
        Err(e) => {
            println!("mlx5 {e}; function left alone");
            return;
        }
    };
    match crate::smpboot::pat_check().and_then(|cpus| Ok((cpus, platform.map_blueflame()?))) {
        Ok((cpus, v)) => println!(
            "mlx5 {addr}: BlueFlame area mapped write-combining at {v:#x} (PAT entry {}; IA32_PAT {:#018x} on every online CPU: {cpus})",
            cxos_kernel::paging::PAT_WC_INDEX,
            cxos_kernel::paging::PAT_VALUE
        ),
        Err(e) => println!("mlx5 {addr}: BlueFlame area not mapped write-combining: {e}"),
    }
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
    #[cfg(feature = "net")]
    crate::netstack::set_down(&slot.iface(), &format!("{addr} not attached"));
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

/// The driver's settings: firmware may hold at most a quarter of the
/// machine's memory (the driver refuses page requests beyond it); one
/// completion EQ (queue set) per online CPU, as many as the function's
/// vectors and EQ limit allow.
fn attach_config() -> Config {
    let quarter = crate::memory::frame_stats().usable_bytes / 4 / mlx5::pages::PAGE_SIZE as u64;
    Config {
        max_total_pages: (quarter as u32).min(mlx5::adapter::DEFAULT_MAX_TOTAL_PAGES),
        comp_eqs: queue_sets::wanted(crate::smp::count(), MAX_QUEUE_SETS),
        ..Config::default()
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
    match Adapter::attach(platform, attach_config()) {
        Ok(adapter) => {
            println!("{}", cxos_kernel::mlx5_report::info_line(&adapter.info()));
            if let Some(l) = queue_sets::sharing(crate::smp::count(), adapter.comp_eqs().len()) {
                println!("mlx5 {addr}: {l}");
            }
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
            bind_eq0(&adapter, addr);
            slot.fault_reported = false;
            slot.attach_error = None;
            slot.state = open_port(slot, adapter);
            #[cfg(feature = "net")]
            if matches!(slot.state, State::Attached(_)) {
                crate::netstack::set_down(&slot.iface(), &format!("{addr} has no data path"));
            }
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

/// Bind EQ0's vector (command completions, page requests, port events)
/// to [`service`].
fn bind_eq0(adapter: &Mlx5Adapter, addr: PciAddress) {
    let entry = adapter.eq0().map_or(0, |(_, entry)| entry);
    if !adapter
        .platform()
        .msix_bind(entry, move || service(addr, true))
    {
        println!("mlx5 {addr}: MSI-X entry {entry} not bound; events are polled once a second");
    }
}

/// Open the data path of a freshly attached adapter: the port's
/// steering (`Nic`), the VNIC with the port's own MAC (interface
/// `net<index>`, interrupt-driven on completion EQ 0) and, on the first
/// function, the configured VNICs; bind the completion vectors to
/// [`service_port`]. On failure the adapter stays attached without one.
fn open_port(slot: &Slot, mut adapter: Mlx5Adapter) -> State {
    let addr = slot.addr;
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
    #[allow(unused_mut)]
    let mut cfg = NicConfig::default();
    // `net.<i>=...,mtu=N` on the command line.
    #[cfg(feature = "net")]
    if let Some(m) = crate::netstack::config_for(&slot.iface()).mtu {
        cfg.eth.mtu = usize::from(m);
    }
    // `net.<i>=...,rx-usecs=..,skb_tx_mpwqe=..` (ethtool's settings).
    #[cfg(feature = "net")]
    ethtool::eth_config(
        &mut cfg.eth,
        &crate::netstack::port_items_for(&slot.iface()).tune,
    );
    // The MAC drops frames longer than the data path's MTU (PMTU) rather
    // than let them overflow a receive buffer.
    if let Err(e) = adapter.set_port_mtu(cfg.eth.mtu) {
        println!(
            "mlx5 {addr}: port MTU {} not set: {e}; using 1500",
            cfg.eth.mtu
        );
        cfg.eth.mtu = 1500;
        if let Err(e) = adapter.set_port_mtu(cfg.eth.mtu) {
            println!("mlx5 {addr}: port MTU not set: {e}");
        }
    }
    // `net.<i>=...,speed=..,led=..` on the command line (or an earlier
    // `ifconfig`).
    #[cfg(feature = "net")]
    for r in apply_port_items(
        &mut adapter,
        addr,
        crate::netstack::port_items_for(&slot.iface()),
    ) {
        match r {
            Ok(line) => print!("{line}"),
            Err(e) => println!("mlx5 {addr}: {e}"),
        }
    }
    let nic = match Nic::new(adapter, res, cfg) {
        Ok(nic) => {
            nic.set_idle(cmdwait::idle_work());
            nic.set_recovery_wake(faults::recovery_wanted);
            // MANAGE_PAGES waits cooperatively in EQ0's work (`service_open`).
            nic.with_adapter(|a| a.defer_page_requests(true));
            nic
        }
        Err(failure) => {
            println!(
                "mlx5 {addr}: port not opened: {}; attached without a data path",
                failure.error
            );
            return State::Attached(Box::new(failure.control));
        }
    };
    // With the network stack: its `queues=` item (`portq`).
    #[cfg(feature = "net")]
    let main = portq::create(&nic, slot.index, res.mac);
    #[cfg(not(feature = "net"))]
    let main = nic.create(mlx5::vnic::VnicSpec {
        mac: Some(res.mac),
        ..mlx5::vnic::VnicSpec::default()
    });
    let main = match main {
        Ok(v) => v,
        Err(e) => {
            println!("mlx5 {addr}: port not opened: {e}; attached without a data path");
            let (adapter, _) = close_nic(nic);
            return State::Attached(Box::new(adapter));
        }
    };
    let bound = nic.with_adapter(|a| bind_comp_vectors(a, slot.index, addr));
    println!(
        "mlx5 {addr}: port open: mtu {}, {} tx / {} rx buffers, comp eq {} on MSI-X entry {entry}{}",
        cfg.eth.mtu,
        1u32 << cfg.eth.log_sq,
        1u32 << cfg.eth.log_rq,
        res.eqn.0,
        if bound { "" } else { " (not bound: polled)" }
    );
    open_interfaces(slot, nic, main)
}

/// Per port, per completion EQ (queue set): the CPUs polling a VNIC with
/// a CQ on it, which its vector's work wakes (bit c: CPU c).
static EQ_CPUS: [[AtomicU32; MAX_QUEUE_SETS]; MAX_PORTS] =
    [const { [const { AtomicU32::new(0) }; MAX_QUEUE_SETS] }; MAX_PORTS];
/// One queue set per CPU at most (bit c of an `EQ_CPUS` mask: CPU c).
const MAX_QUEUE_SETS: usize = crate::smp::MAX_CPUS;
const MAX_PORTS: usize = cxos_kernel::cmdline::MAX_INTERFACES;

/// The CPU queue set `set` belongs to: set i to CPU i (one set per CPU,
/// [`attach_config`]).
fn queue_set_cpu(set: usize) -> usize {
    let cpu = queue_sets::cpu_of_set(set, crate::smp::count());
    if crate::smp::apic_id(cpu).is_some() {
        cpu
    } else {
        0
    }
}

/// One queue set per CPU: completion EQ i's vector is delivered to, and
/// its work run on, [`queue_set_cpu`]`(i)` (the platform's target-CPU
/// binding); whether EQ 0's vector was bound.
pub(crate) fn bind_comp_vectors(a: &Mlx5Adapter, port: usize, addr: PciAddress) -> bool {
    let platform = a.platform();
    let mut bound = true;
    for (i, (_, entry)) in a.comp_eqs().into_iter().enumerate() {
        let cpu = queue_set_cpu(i);
        if let Some(m) = EQ_CPUS.get(port).and_then(|p| p.get(i)) {
            m.store(1 << cpu, Ordering::Release);
        }
        let ok = platform.msix_bind_on(entry, cpu, move || service_port(addr, port, i));
        if i == 0 {
            bound = ok;
        }
    }
    bound
}

/// CPU `cpu` polls a VNIC whose CQs report to EQs `eqs` of port `port`:
/// their vectors wake it.
#[cfg(feature = "net")]
fn note_poller(port: usize, eqs: &[usize], cpu: usize) {
    for &e in eqs {
        if let Some(m) = EQ_CPUS.get(port).and_then(|p| p.get(e)) {
            m.fetch_or(1 << cpu, Ordering::AcqRel);
        }
    }
}

/// Take the adapter back from its steering once every VNIC is gone.
fn close_nic(nic: Nic<Mlx5Adapter>) -> (Mlx5Adapter, CloseReport) {
    match nic.close() {
        Ok(done) => done,
        // Every VNIC is destroyed before this is called: a live handle
        // here is a kernel bug, not device input.
        Err(_) => panic!("mlx5: steering closed while a VNIC still lives"),
    }
}

/// Register the port's VNIC as interface `net<index>` with the network
/// stack, then create the defined VNICs (first function only).
#[cfg(feature = "net")]
fn open_interfaces(slot: &Slot, nic: Nic<Mlx5Adapter>, main: Mlx5Vnic) -> State {
    let name = slot.iface();
    match crate::netstack::open(&name, main) {
        Ok(status) => {
            println!("{status}");
            let mut vnics = Vec::new();
            {
                for (n, def) in crate::vnics::list()
                    .into_iter()
                    .filter(|(_, d)| d.over == Over::Port(slot.index as u8))
                {
                    match create_vnic(&nic, slot.index, n, &def) {
                        Ok(status) => {
                            println!("{status}");
                            vnics.push(n);
                        }
                        Err(e) => println!("vnic{n}: not created: {e}"),
                    }
                }
            }
            State::Open(Box::new(Opened { nic, vnics }))
        }
        Err((main, why)) => {
            main.destroy();
            let (adapter, _) = close_nic(nic);
            println!(
                "mlx5 {}: {name} not created: {why}; attached without a data path",
                slot.addr
            );
            State::Attached(Box::new(adapter))
        }
    }
}

#[cfg(not(feature = "net"))]
fn open_interfaces(_slot: &Slot, nic: Nic<Mlx5Adapter>, main: Mlx5Vnic) -> State {
    State::Open(Box::new(Opened { nic, main }))
}

/// Create VNIC `n` on `nic` and register it as interface `vnic<n>`; its
/// status line, or why not.
#[cfg(feature = "net")]
fn create_vnic(
    nic: &Nic<Mlx5Adapter>,
    port: usize,
    n: u32,
    def: &cxos_kernel::vnic_def::VnicDef,
) -> Result<String, String> {
    let cpu = owner_cpu(n, def)?;
    // Its queue set is its CPU's: the CPU's EQ, whose vector goes to it.
    let mut vnic = nic.create_on(def.spec, cpu).map_err(|e| format!("{e}"))?;
    note_poller(port, vnic.queue_set().eq_indexes(), cpu);
    // Receive buffers for the port's MTU (which `mtu net<i>` may have
    // raised since the port opened): every frame PMTU lets through fits.
    // The VNIC's own MTU (`ip:...,mtu=N`) is at most the port's.
    let port_mtu = nic.with_adapter(|a| {
        usize::from(a.port().admin_mtu).saturating_sub(mlx5::module::PORT_MTU_OVERHEAD)
    });
    let own = vnic.queue_set().config().mtu;
    // PMTU unread or unset: the VNIC's own size.
    let port_mtu = if port_mtu >= 68 { port_mtu } else { own };
    let mtu = def.ip.mtu.map_or(own.min(port_mtu), usize::from);
    let sized = if mtu > port_mtu {
        Err(format!(
            "MTU {mtu} above the port's {port_mtu} (raise the port's first: mtu net<i> <n>)"
        ))
    } else {
        vnic.queue_set_mut()
            .set_mtu(mtu, port_mtu.max(own))
            .map_err(|e| format!("{e}"))
    };
    if let Err(e) = sized {
        vnic.destroy();
        return Err(e);
    }
    // RSS queues 1.. to the CPUs after its owner (`queues:<n>`).
    crate::rxspread::spread(nic, &mut vnic, n, cpu);
    crate::netstack::open_on(cpu, &format!("vnic{n}"), vnic, &def.ip).map_err(|(vnic, why)| {
        vnic.destroy();
        why
    })
}

/// The CPU that owns VNIC `n` (its stack, apps and queues): the one its
/// `cpu:` names if online, or round-robin from CPU 1 (the port's own
/// interface is on CPU 0).
#[cfg(feature = "net")]
fn owner_cpu(n: u32, def: &cxos_kernel::vnic_def::VnicDef) -> Result<usize, String> {
    def.owner_cpu(n, crate::smp::count(), |c| crate::smp::apic_id(c).is_some())
}

/// Completion EQ `eq` of port `port` fired (on the CPU its work is bound
/// to): this CPU's stacks take their frames, and any other CPU polling a
/// VNIC with a CQ on that EQ is woken to take its own.
#[cfg(feature = "net")]
fn service_port(_addr: PciAddress, port: usize, eq: usize) {
    let me = crate::smp::current();
    let mask = EQ_CPUS
        .get(port)
        .and_then(|p| p.get(eq))
        .map_or(0, |m| m.load(Ordering::Acquire));
    for cpu in (0..crate::smp::count()).filter(|&c| c != me && mask & (1 << c) != 0) {
        crate::runtime::wake_at_on(cpu, 0);
    }
    crate::netstack::poll();
}

/// The completion vector fired: reap completions; without a network
/// stack received frames are counted and dropped, so the receive ring
/// never starves.
#[cfg(not(feature = "net"))]
fn service_port(addr: PciAddress, _port: usize, _eq: usize) {
    use cxos_drivers::NetDevice;
    let mut slots = SLOTS.lock();
    let Some(slot) = slots.iter_mut().find(|s| s.addr == addr) else {
        return;
    };
    if let State::Open(o) = &mut slot.state {
        let vnic = &mut o.main;
        vnic.poll();
        while vnic.receive(|_, _| ()).is_some() {
            slot.rx_unclaimed += 1;
        }
        vnic.flush();
    }
}

/// `vnic create`: create VNIC `n` on the open adapter of the port it is
/// over (or on every member of the aggregation it is over); its status
/// line, or why not (`None`: nothing open to put it on).
#[cfg(feature = "net")]
pub fn add_vnic(n: u32, def: &cxos_kernel::vnic_def::VnicDef) -> Option<Result<String, String>> {
    let port = match def.over {
        Over::Port(i) => usize::from(i),
        Over::Aggr(a) => return members::add_vnic(n, a, def),
    };
    // The slot table is let go while the VNIC's commands wait
    // (cooperatively: `cmdwait::run`).
    let nic = {
        let slots = SLOTS.lock();
        let slot = slots.iter().find(|s| s.index == port)?;
        let State::Open(o) = &slot.state else {
            return None;
        };
        if o.vnics.contains(&n) {
            return Some(Err(format!("vnic{n} exists")));
        }
        o.nic.clone()
    };
    let created = cmdwait::run(|_| create_vnic(&nic, port, n, def));
    if created.is_ok() {
        let mut slots = SLOTS.lock();
        match slots
            .iter_mut()
            .find(|s| s.index == port)
            .map(|s| &mut s.state)
        {
            Some(State::Open(o)) if !o.vnics.contains(&n) => o.vnics.push(n),
            _ => {
                // Its port went while it was made (not from the shell, which
                // waited): take it back.
                drop(slots);
                if let Some(v) = crate::netstack::close::<Mlx5Vnic>(&format!("vnic{n}"), None) {
                    cmdwait::run(|_| v.destroy());
                }
                return Some(Err(format!("vnic{n}: its port went meanwhile")));
            }
        }
    }
    Some(created)
}

/// Destroy VNIC `n`: its apps are aborted, its flow entries removed, its
/// queues freed. The driver's close report, or `None` if it is not there.
#[cfg(feature = "net")]
pub fn remove_vnic(n: u32) -> Option<CloseReport> {
    let mut slots = SLOTS.lock();
    for slot in slots.iter_mut() {
        if let State::Open(o) = &mut slot.state
            && let Some(i) = o.vnics.iter().position(|m| *m == n)
        {
            o.vnics.remove(i);
            let vnic = crate::netstack::close::<Mlx5Vnic>(&format!("vnic{n}"), None)?;
            drop(slots);
            // Its rules and queues go cooperatively, the tables free.
            return Some(cmdwait::run(|_| vnic.destroy()));
        }
    }
    drop(slots);
    members::remove_vnic(n)
}

/// `vnics`: one line per interface of every open port: its name, the
/// driver's line (MAC, VLAN, queues, counters), its addresses and what its
/// unicast flow rule counted (read cooperatively, with neither the slot
/// table nor the interface table held: [`cmdwait::run`]).
#[cfg(feature = "net")]
pub fn vnic_lines() -> Vec<String> {
    let mut found = Vec::new();
    for slot in SLOTS.lock().iter() {
        let State::Open(o) = &slot.state else {
            continue;
        };
        let names =
            core::iter::once(slot.iface()).chain(o.vnics.iter().map(|n| format!("vnic{n}")));
        for name in names {
            let cpu = crate::netstack::owner_cpu(&name).unwrap_or(0);
            if let Some(x) = crate::netstack::with_net::<Mlx5Vnic, _>(&name, |net| {
                (
                    vnic_line(net),
                    net.device().nic().clone(),
                    net.device().id(),
                    cpu,
                )
            }) {
                found.push(x);
            }
        }
    }
    let mut lines: Vec<String> = found
        .into_iter()
        .map(|(line, nic, id, cpu)| {
            let flow = match cmdwait::run(|idle| nic.flow_traffic_with(id, idle)) {
                Ok(t) => format!("flow {} pkts {} B", t.packets, t.bytes),
                Err(e) => format!("flow ? ({e})"),
            };
            format!("{line} {flow} cpu {cpu}")
        })
        .collect();
    lines.extend(members::vnic_lines());
    lines
}

/// [`vnic_lines`]' line of one interface, without its flow counter.
#[cfg(feature = "net")]
fn vnic_line(net: &cxos_net::NetIf<Mlx5Vnic>) -> String {
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
    format!(
        "{} {rest} ipv4 {v4}{dhcp} ipv6 {}",
        net.name(),
        net.ipv6_link_local()
    )
}

/// Run `f` on the port's own VNIC of an open slot.
#[cfg(feature = "net")]
fn with_port_vnic<R>(slot: &mut Slot, f: impl FnOnce(&mut Mlx5Vnic) -> R) -> Option<R> {
    crate::netstack::with_net::<Mlx5Vnic, _>(&slot.iface(), |net| f(net.device_mut()))
}

#[cfg(not(feature = "net"))]
fn with_port_vnic<R>(slot: &mut Slot, f: impl FnOnce(&mut Mlx5Vnic) -> R) -> Option<R> {
    match &mut slot.state {
        State::Open(o) => Some(f(&mut o.main)),
        _ => None,
    }
}

/// Detach an attached slot (destroying its VNICs and closing the data
/// path first); the report line, or why not.
fn detach_slot(slot: &mut Slot) -> Result<String, String> {
    let addr = slot.addr;
    let (adapter, closed) = match core::mem::replace(&mut slot.state, State::Moving) {
        State::Open(o) => {
            let mut rep = CloseReport::default();
            let mut add = |r: CloseReport| {
                rep.errors += r.errors;
                if rep.first_error.is_none() {
                    rep.first_error = r.first_error;
                }
            };
            #[cfg(feature = "net")]
            let (nic, main) = {
                let Opened { nic, vnics } = *o;
                // Out of the interface table first (their apps stop),
                // then destroyed, VNICs before the port's own.
                let main = crate::netstack::close::<Mlx5Vnic>(
                    &slot.iface(),
                    Some(&format!("{addr} not attached")),
                );
                let vnics: Vec<Mlx5Vnic> = vnics
                    .iter()
                    .filter_map(|n| crate::netstack::close::<Mlx5Vnic>(&format!("vnic{n}"), None))
                    .collect();
                for v in vnics {
                    add(v.destroy());
                }
                (nic, main)
            };
            #[cfg(not(feature = "net"))]
            let (nic, main) = {
                let Opened { nic, main } = *o;
                (nic, Some(main))
            };
            if let Some(main) = main {
                add(main.destroy());
            }
            let (adapter, r) = close_nic(nic);
            add(r);
            (adapter, Some(rep))
        }
        State::Attached(a) => {
            #[cfg(feature = "net")]
            crate::netstack::set_down(&slot.iface(), &format!("{addr} not attached"));
            (*a, None)
        }
        other => {
            slot.state = other;
            return Err(format!("mlx5 {addr}: not attached"));
        }
    };
    let (platform, report) = adapter.detach();
    platform.set_bus_master(false);
    slot.state = State::Down(platform);
    let close_errors = closed.as_ref().map_or(0, |c| c.errors);
    let mut line = format!(
        "mlx5 {addr}: detached: {} pages lost, {} errors",
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
/// events) and, from the timer, health; then a function reset where one
/// is asked for ([`reset::recover_all`]). An open port's port events are
/// read cooperatively ([`service_open`]), the slot table let go.
fn service(addr: PciAddress, events_only: bool) {
    let Some(mut slots) = cmdwait::slots_for_background() else {
        return;
    };
    let open = slots
        .iter_mut()
        .find(|s| s.addr == addr)
        .and_then(|slot| service_slot(slot, events_only));
    drop(slots);
    if let Some(nic) = open {
        service_open(addr, nic);
    }
    reset::recover_all();
}

fn service_all() {
    let Some(mut slots) = cmdwait::slots_for_background() else {
        return;
    };
    let open: Vec<(PciAddress, Nic<Mlx5Adapter>)> = slots
        .iter_mut()
        .filter_map(|slot| Some((slot.addr, service_slot(slot, false)?)))
        .collect();
    drop(slots);
    for (addr, nic) in open {
        service_open(addr, nic);
    }
    reset::recover_all();
}

/// Health (unless `events_only`) and, for an adapter without a data
/// path, its events; an open port's `Nic` for [`service_open`].
fn service_slot(slot: &mut Slot, events_only: bool) -> Option<Nic<Mlx5Adapter>> {
    if slot.fault_reported {
        return None;
    }
    let Slot {
        addr,
        state,
        link_up_timed,
        last_error,
        ..
    } = slot;
    let addr = *addr;
    if let State::Open(o) = state {
        // A health fault (its FAULT record on the console already):
        // `reset::recover_all` resets the function.
        let failed = !events_only && o.nic.with_adapter(|a| a.poll_health().is_err());
        return (!failed).then(|| o.nic.clone());
    }
    state.with_adapter(|adapter| {
        service_adapter(adapter, addr, events_only, link_up_timed, last_error)
    });
    None
}

/// An open port's EQ0 work inside a cooperative wait, the slot table not
/// held: the page requests' MANAGE_PAGES, the register reads after a port
/// event and the module read after a plug event wait with the rest of
/// the kernel running
/// ([`Nic::poll_with`], [`Nic::transceiver_with`]); the slot's notes are
/// updated after.
fn service_open(addr: PciAddress, nic: Nic<Mlx5Adapter>) {
    let (polled, plugged) = cmdwait::run(|idle| {
        let polled = nic.poll_with(&mut *idle);
        let plugged = match &polled {
            Ok(ev)
                if ev
                    .iter()
                    .any(|e| *e == PortEvent::Module(ModuleState::Plugged)) =>
            {
                Some(nic.transceiver_with(&mut *idle))
            }
            _ => None,
        };
        (polled, plugged)
    });
    let port = nic.with_adapter(|a| *a.port());
    let Some(mut slots) = cmdwait::slots_for_background() else {
        return;
    };
    let Some(slot) = slots.iter_mut().find(|s| s.addr == addr) else {
        return;
    };
    let events = match polled {
        Ok(events) => {
            slot.last_error = None;
            events
        }
        Err(e) => {
            if !nic.with_adapter(|a| a.is_failed()) {
                let text = format!("{e}");
                if slot.last_error.as_deref() != Some(text.as_str()) {
                    println!("mlx5 {addr}: event processing: {text}");
                    slot.last_error = Some(text);
                }
            }
            return;
        }
    };
    report_events(addr, &events, &port, &mut slot.link_up_timed, &mut || {
        plugged
            .clone()
            .unwrap_or(Err(PortError::Adapter(mlx5::Error::AdapterFailed)))
    });
}

fn service_adapter(
    adapter: &mut Mlx5Adapter,
    addr: PciAddress,
    events_only: bool,
    link_up_timed: &mut bool,
    last_error: &mut Option<String>,
) {
    // A health fault (its FAULT record on the console already): the
    // caller resets the function.
    if !events_only && adapter.poll_health().is_err() {
        return;
    }
    match adapter.poll() {
        Ok(events) => {
            *last_error = None;
            let port = *adapter.port();
            report_events(addr, &events, &port, link_up_timed, &mut || {
                adapter.transceiver()
            });
        }
        Err(e) => {
            if adapter.is_failed() {
                // The caller resets the function.
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

/// The console lines of EQ0's port events; `plugged` reads the module a
/// plug event announces.
fn report_events(
    addr: PciAddress,
    events: &mlx5::PortEvents,
    port: &mlx5::port::PortInfo,
    link_up_timed: &mut bool,
    plugged: &mut dyn FnMut() -> Result<mlx5::sff::Transceiver, PortError>,
) {
    for e in events {
        match e {
            PortEvent::Down | PortEvent::Up => {}
            PortEvent::Other(sub) => {
                println!("mlx5 {addr}: port event subtype {sub:#x}");
            }
            PortEvent::Module(ModuleState::Plugged) => match plugged() {
                Ok(t) => println!(
                    "mlx5 {addr}: module plugged: {} {} ({})",
                    t.vendor, t.pn, t.media
                ),
                Err(e) => println!("mlx5 {addr}: module plugged: unreadable ({e})"),
            },
            PortEvent::Module(state) => println!("mlx5 {addr}: module {state}"),
        }
    }
    if events
        .iter()
        .any(|e| matches!(e, PortEvent::Down | PortEvent::Up))
    {
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

/// `rings` / `stats` / `flows`: for each function (or only `only`), a
/// header line `port <pci>:` then the driver's lines indented by two
/// spaces, or `port <pci>: not attached` / `port <pci>: no data path`.
fn port_report(which: Report, only: Option<PciAddress>) -> Option<String> {
    // The counter queries wait cooperatively, without the slot table.
    #[cfg(feature = "net")]
    if which == Report::Stats {
        return cmdwait::stats(only);
    }
    if which == Report::Flows {
        return cmdwait::flows(only);
    }
    let mut slots = SLOTS.lock();
    let mut out = String::new();
    let mut found = false;
    for slot in slots.iter_mut() {
        if only.is_some_and(|a| a != slot.addr) {
            continue;
        }
        found = true;
        let addr = slot.addr;
        match &slot.state {
            State::Open(_) => {}
            State::Attached(_) => {
                out.push_str(&format!("port {addr}: no data path\n"));
                continue;
            }
            State::Down(_) | State::Moving => {
                out.push_str(&format!("port {addr}: not attached\n"));
                continue;
            }
        }
        let body = match which {
            Report::Rings => {
                let text = with_port_vnic(slot, |v| cxos_kernel::mlx5_report::rings(&v.rings()))
                    .unwrap_or_default();
                #[cfg(feature = "net")]
                let text = text + &vnic_rings(slot);
                text
            }
            // Answered by `cmdwait::flows` above.
            Report::Flows => String::new(),
            Report::Stats => {
                #[cfg(not(feature = "net"))]
                let unclaimed = slot.rx_unclaimed;
                with_port_vnic(slot, |vnic| {
                    let mut text = String::new();
                    if let Err(e) = vnic.queue_set_mut().refresh_counters() {
                        text.push_str(&format!("q counter not read: {e}\n"));
                    }
                    text.push_str(&cxos_kernel::mlx5_report::stats(
                        &vnic.queue_set().stats_report(),
                    ));
                    #[cfg(not(feature = "net"))]
                    text.push_str(&format!(
                        "unclaimed rx frames (no network stack) {unclaimed}\n"
                    ));
                    text
                })
                .unwrap_or_default()
            }
        };
        // The MAC's own IEEE 802.3 counters (PPCNT), read fresh.
        let body = if which == Report::Stats {
            let ppcnt = slot
                .state
                .with_adapter(|a| a.port_counters())
                .map(ppcnt_text)
                .unwrap_or_default();
            body + &ppcnt
        } else {
            body
        };
        #[cfg(feature = "net")]
        let body = if which == Report::Stats {
            let stack =
                crate::netstack::with_net::<Mlx5Vnic, _>(&slot.iface(), |net| stack_stats(net));
            body + &stack.unwrap_or_default()
        } else {
            body
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

/// The MAC's own IEEE 802.3 counters (PPCNT) as `stats` shows them.
fn ppcnt_text(r: Result<mlx5::module::Ieee8023, mlx5::module::PortError>) -> String {
    match r {
        Ok(c) => format!(
            "802.3: rx frames {} octets {} multicast {} broadcast {} too-long {} fcs-errors {}\n802.3: tx frames {} octets {} multicast {} broadcast {}\n",
            c.frames_rx,
            c.octets_rx,
            c.multicast_rx,
            c.broadcast_rx,
            c.too_long,
            c.fcs_errors,
            c.frames_tx,
            c.octets_tx,
            c.multicast_tx,
            c.broadcast_tx
        ),
        Err(e) => format!("802.3: not read: {e}\n"),
    }
}

/// `rings` of the VNICs of an open slot: `vnic<N>:`, then the driver's
/// lines indented.
#[cfg(feature = "net")]
fn vnic_rings(slot: &Slot) -> String {
    let mut text = String::new();
    let State::Open(o) = &slot.state else {
        return text;
    };
    for n in &o.vnics {
        let Some(rings) = crate::netstack::with_net::<Mlx5Vnic, _>(&format!("vnic{n}"), |net| {
            cxos_kernel::mlx5_report::rings(&net.device().rings())
        }) else {
            continue;
        };
        text.push_str(&format!("vnic{n}:\n"));
        for line in rings.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// The stack's side of `stats`: what it took, sent and dropped.
#[cfg(feature = "net")]
fn stack_stats(net: &cxos_net::NetIf<Mlx5Vnic>) -> String {
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

/// `attach <pci>`: bring a detached function up again. The outcome lines
/// are printed as attach goes.
fn attach(addr: PciAddress) -> Option<Result<(), String>> {
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
fn irq_lines() -> Vec<String> {
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
            for (i, (eqn, _)) in comp.iter().enumerate().filter(|(_, (_, ev))| *ev == entry) {
                if crate::smp::count() > 1 {
                    // One queue set per CPU: the CPU its work runs on.
                    let cpu = interrupts::work_cpu(v).unwrap_or(0);
                    eqs.push(format!("comp eq {} queue set {i} cpu {cpu}", eqn.0));
                } else {
                    eqs.push(format!("comp eq {}", eqn.0));
                }
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
