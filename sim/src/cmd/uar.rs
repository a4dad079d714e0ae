//! User access regions: ALLOC_UAR / DEALLOC_UAR (`alloc_uar_in/out`,
//! `dealloc_uar_in`, mlx5_ifc.h) and the doorbells written to UAR pages of
//! BAR0 (UAR n is BAR0 + n * 4 KiB).
//!
//! Indices start at [`FIRST_UAR`], so a UAR never overlaps the init segment
//! (pages 0-1) or the MSI-X table and PBA (pages 2-3).
#![deny(unsafe_code)]

use std::collections::BTreeSet;

use super::reserved;
use crate::bits::{f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// First UAR index handed out (BAR0 offset 0x10000).
pub const FIRST_UAR: u32 = 16;
/// UARs per function (BAR0 holds 8192 pages; the model offers 1024).
pub const MAX_UARS: u32 = 1024;

/// Offsets inside a UAR page (PRM "UAR Page Layout").
pub mod offset {
    /// EQ doorbell, arm: be32 eqn << 24 | consumer index.
    pub const EQ_ARM: usize = 0x40;
    /// EQ doorbell, update consumer index without arming.
    pub const EQ_UPDATE: usize = 0x48;
}

#[derive(Debug, Default)]
pub struct Uars {
    allocated: BTreeSet<u32>,
}

impl Uars {
    pub fn contains(&self, uar: u32) -> bool {
        self.allocated.contains(&uar)
    }
    pub fn clear(&mut self) {
        self.allocated.clear();
    }
    pub fn count(&self) -> usize {
        self.allocated.len()
    }
}

/// `alloc_uar_out`: uar at bit 0x48 (24 bits).
pub fn alloc(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    let free = (FIRST_UAR..FIRST_UAR + MAX_UARS).find(|u| !dev.uars.allocated.contains(u));
    let Some(uar) = free else {
        return Err(syn::NO_UAR);
    };
    dev.uars.allocated.insert(uar);
    set(out, f(0x48, 0x18), uar as u64);
    Ok(())
}

/// `dealloc_uar_in`: uar at bit 0x48.
pub fn dealloc(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x8), f(0x60, 0x20)])?;
    let uar = get(inp, f(0x48, 0x18)) as u32;
    if !dev.uars.allocated.contains(&uar) {
        return Err(syn::UNKNOWN_UAR);
    }
    if dev.eqs.uses_uar(uar) || dev.nic.uses_uar(uar) {
        return Err(syn::UAR_IN_USE);
    }
    dev.uars.allocated.remove(&uar);
    Ok(())
}

/// A 32-bit write into UAR page `page` at `within`. Writes to pages that are
/// not allocated UARs, or to offsets the model does not decode, are dropped
/// as hardware drops them. True when the write left transmit work pending
/// (data path doorbells: [`crate::datapath::doorbell32`]).
pub fn doorbell32(dev: &mut Function, page: u32, within: usize, value: u32) -> bool {
    if !dev.uars.contains(page) {
        log::debug!(target: "mlx5_sim::uar", "write {value:#x} to unallocated UAR page {page} +{within:#x} dropped");
        return false;
    }
    match within {
        offset::EQ_ARM => super::eq::doorbell(dev, page, value, true),
        offset::EQ_UPDATE => super::eq::doorbell(dev, page, value, false),
        _ => match crate::datapath::doorbell32(dev, page, within, value) {
            Some(work) => return work,
            None => {
                log::debug!(target: "mlx5_sim::uar", "write {value:#x} to UAR {page} +{within:#x} not decoded");
            }
        },
    }
    false
}
