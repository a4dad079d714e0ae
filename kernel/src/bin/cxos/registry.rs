//! The driver registry: after PCI enumeration every compiled-in driver
//! (one cargo feature each, on by default) claims and attaches the
//! functions of its id table; the shell reaches them through here.

use alloc::string::String;
use alloc::vec::Vec;

use cxos_drivers::PciAddress;

/// Claim every function a compiled-in driver matches and, if `attach`
/// (the command line's `attach=`), attach it.
pub fn attach_all(attach: bool) {
    #[cfg(feature = "mlx5")]
    crate::mlx5nic::attach_all(attach);
    #[cfg(not(feature = "mlx5"))]
    let _ = attach;
}

/// One line per network adapter function (`phys`).
pub fn phys_lines() -> Vec<String> {
    #[allow(unused_mut)]
    let mut lines = Vec::new();
    #[cfg(feature = "mlx5")]
    lines.extend(crate::mlx5nic::phys_lines());
    lines
}

/// The full report of the adapter at `addr` (`phys <pci>`).
pub fn report(addr: PciAddress) -> Result<String, String> {
    #[cfg(feature = "mlx5")]
    if let Some(r) = crate::mlx5nic::report(addr) {
        return r;
    }
    Err(alloc::format!("no adapter at {addr}"))
}

/// Per-adapter MSI-X lines for `irq`.
pub fn irq_lines() -> Vec<String> {
    #[allow(unused_mut)]
    let mut lines = Vec::new();
    #[cfg(feature = "mlx5")]
    lines.extend(crate::mlx5nic::irq_lines());
    lines
}

/// Detach the driver of `addr`: the report line, or why not.
pub fn detach(addr: PciAddress) -> Result<String, String> {
    #[cfg(feature = "mlx5")]
    if let Some(r) = crate::mlx5nic::detach(addr) {
        return r;
    }
    Err(alloc::format!("no adapter at {addr}"))
}

/// Detach every attached adapter; one report line each.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub fn detach_all() -> Vec<String> {
    #[allow(unused_mut)]
    let mut lines = Vec::new();
    #[cfg(feature = "mlx5")]
    lines.extend(crate::mlx5nic::detach_all());
    lines
}

/// Attach the driver of a detached `addr` again (progress is printed).
pub fn attach(addr: PciAddress) -> Result<(), String> {
    #[cfg(feature = "mlx5")]
    if let Some(r) = crate::mlx5nic::attach(addr) {
        return r;
    }
    Err(alloc::format!("no adapter at {addr}"))
}

#[cfg(feature = "mlx5")]
pub use crate::mlx5nic::PortReport;

/// What `rings`, `stats` and `flows` show (without the mlx5 driver: no
/// adapters).
#[cfg(not(feature = "mlx5"))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortReport {
    Rings,
    Stats,
    Flows,
}

/// `rings` / `stats` / `flows` for every port (or the one at `only`); `Err` when
/// there is no such adapter.
pub fn port_report(which: PortReport, only: Option<PciAddress>) -> Result<String, String> {
    #[cfg(feature = "mlx5")]
    if let Some(r) = crate::mlx5nic::port_report(which, only) {
        return Ok(r);
    }
    let _ = which;
    Err(match only {
        Some(addr) => alloc::format!("no adapter at {addr}"),
        None => String::from("no network adapters"),
    })
}
