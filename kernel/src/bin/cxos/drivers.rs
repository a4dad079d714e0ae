//! The PCI driver table. Every compiled-in driver (one cargo feature each,
//! Hermit style) registers from `main`; after enumeration each claims the
//! functions its id table matches. The shell reaches adapters through the
//! table, never through a driver by name, and nothing here knows a
//! driver: the dependency runs from the driver to the table.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use cxos_drivers::{PciAddress, PciId};
use cxos_kernel::shellcmd::{PortCommand, Report};
use spin::Mutex;

use crate::pcibus::{self, Device};
use crate::println;

/// A PCI driver compiled into the kernel: its id match, what it does with
/// a function it claimed, and what the shell asks of it. Calls that name
/// a PCI address answer `None` when the function is not the driver's.
pub trait PciDriver: Sync {
    /// Prefix of its console lines and owner in `lspci` (`mlx5`).
    fn name(&self) -> &'static str;
    /// The vendor/device pairs it drives.
    fn ids(&self) -> &'static [PciId];
    /// `dev` (BARs mapped, memory decoding and bus mastering on) is the
    /// driver's now: attach it unless `attach` is false (`attach=off`).
    /// The driver prints the outcome.
    fn probe(&self, dev: Device, attach: bool);
    /// Every matching function was probed.
    fn probed(&self) {}
    /// `attach <pci>`: bring a detached function up again (progress is
    /// printed as it goes).
    fn attach(&self, addr: PciAddress) -> Option<Result<(), String>>;
    /// `detach <pci>`: the report line, or why not.
    fn detach(&self, addr: PciAddress) -> Option<Result<String, String>>;
    /// Detach every attached function (before the kernel exits): one
    /// report line each.
    fn detach_all(&self) -> Vec<String>;
    /// `phys`: one line per function.
    fn phys_lines(&self) -> Vec<String>;
    /// `phys <pci>`: the full report, or why there is none.
    fn report(&self, addr: PciAddress) -> Option<Result<String, String>>;
    /// `irq`: the MSI/MSI-X lines of its functions.
    fn irq_lines(&self) -> Vec<String>;
    /// `rings` / `stats` / `flows` of its ports (or of the one at
    /// `only`): the text, `None` if it has no such function.
    fn port_report(&self, which: Report, only: Option<PciAddress>) -> Option<String>;
    /// `traninfo` / `led` / `speed`: the text, or why not; `None` if it
    /// has no such function (for `traninfo` without an address: no port).
    fn port_command(&self, cmd: PortCommand) -> Option<Result<String, String>>;
}

/// More than the kernel has drivers.
const MAX_DRIVERS: usize = 8;

static DRIVERS: Mutex<heapless::Vec<&'static dyn PciDriver, MAX_DRIVERS>> =
    Mutex::new(heapless::Vec::new());

/// Add `driver` to the table (from `main`, before [`probe_all`]).
#[cfg_attr(not(feature = "mlx5"), allow(dead_code))]
pub fn register(driver: &'static dyn PciDriver) {
    if DRIVERS.lock().push(driver).is_err() {
        panic!("more than {MAX_DRIVERS} PCI drivers compiled in");
    }
}

/// The registered drivers (copied out: their calls take their own locks
/// and may run for a while).
fn drivers() -> heapless::Vec<&'static dyn PciDriver, MAX_DRIVERS> {
    DRIVERS.lock().clone()
}

/// Hand every enumerated function some driver's ids match to that driver;
/// `attach` is the command line's `attach=`.
pub fn probe_all(attach: bool) {
    for d in drivers() {
        while let Some(claimed) = pcibus::claim(d.ids(), d.name()) {
            match claimed {
                Ok(dev) => d.probe(dev, attach),
                Err(e) => println!("{} {e}; function left alone", d.name()),
            }
        }
        d.probed();
    }
}

/// The first driver's answer about `addr`, or "no adapter".
fn at<R>(
    addr: PciAddress,
    f: impl Fn(&dyn PciDriver) -> Option<Result<R, String>>,
) -> Result<R, String> {
    drivers()
        .iter()
        .find_map(|d| f(*d))
        .unwrap_or_else(|| Err(format!("no adapter at {addr}")))
}

/// One line per network adapter function (`phys`).
pub fn phys_lines() -> Vec<String> {
    drivers().iter().flat_map(|d| d.phys_lines()).collect()
}

/// The full report of the adapter at `addr` (`phys <pci>`).
pub fn report(addr: PciAddress) -> Result<String, String> {
    at(addr, |d| d.report(addr))
}

/// Per-adapter MSI-X lines for `irq`.
pub fn irq_lines() -> Vec<String> {
    drivers().iter().flat_map(|d| d.irq_lines()).collect()
}

/// Detach the driver of `addr`: the report line, or why not.
pub fn detach(addr: PciAddress) -> Result<String, String> {
    at(addr, |d| d.detach(addr))
}

/// Detach every attached adapter; one report line each.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub fn detach_all() -> Vec<String> {
    drivers().iter().flat_map(|d| d.detach_all()).collect()
}

/// Attach the driver of a detached `addr` again (progress is printed).
pub fn attach(addr: PciAddress) -> Result<(), String> {
    at(addr, |d| d.attach(addr))
}

/// `traninfo` / `led` / `speed`: every driver's answer (`traninfo` of
/// every port), or "no adapter".
pub fn port_command(cmd: PortCommand) -> Result<String, String> {
    let mut text = String::new();
    let mut found = false;
    for d in drivers() {
        if let Some(r) = d.port_command(cmd) {
            found = true;
            text.push_str(&r?);
        }
    }
    match (found, cmd) {
        (true, _) => Ok(text),
        (false, PortCommand::Traninfo { only: None, .. }) => {
            Err(String::from("no network adapters"))
        }
        (
            false,
            PortCommand::Traninfo { only: Some(a), .. }
            | PortCommand::Led(a, _)
            | PortCommand::Speed(a, _),
        ) => Err(format!("no adapter at {a}")),
    }
}

/// `rings` / `stats` / `flows` for every port (or the one at `only`);
/// `Err` when there is no such adapter.
pub fn port_report(which: Report, only: Option<PciAddress>) -> Result<String, String> {
    let mut text = String::new();
    let mut found = false;
    for d in drivers() {
        if let Some(t) = d.port_report(which, only) {
            found = true;
            text.push_str(&t);
        }
    }
    match (found, only) {
        (true, _) => Ok(text),
        (false, Some(addr)) => Err(format!("no adapter at {addr}")),
        (false, None) => Err(String::from("no network adapters")),
    }
}
