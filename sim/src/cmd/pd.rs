//! Protection and transport domains, special contexts: ALLOC/DEALLOC_PD,
//! ALLOC/DEALLOC_TRANSPORT_DOMAIN, QUERY_SPECIAL_CONTEXTS (`alloc_pd_in/out`,
//! `alloc_transport_domain_in/out`, `query_special_contexts_out`, mlx5_ifc.h).
#![deny(unsafe_code)]

use std::collections::BTreeSet;

use super::reserved;
use crate::bits::{f, get, put_be32, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// The reserved lkey: data segments carrying it use bus addresses directly.
pub const RESERVED_LKEY: u32 = 0x100;
/// `query_special_contexts_out` length (through reserved_at_a0).
pub const SPECIAL_CONTEXTS_OUT: usize = 0x18;

#[derive(Debug, Default)]
pub struct Domains {
    pds: BTreeSet<u32>,
    tds: BTreeSet<u32>,
}

impl Domains {
    pub fn clear(&mut self) {
        self.pds.clear();
        self.tds.clear();
    }
    pub fn has_pd(&self, pd: u32) -> bool {
        self.pds.contains(&pd)
    }
    pub fn has_td(&self, td: u32) -> bool {
        self.tds.contains(&td)
    }
    /// (protection domains, transport domains) allocated.
    pub fn counts(&self) -> (usize, usize) {
        (self.pds.len(), self.tds.len())
    }
}

/// Allocate the lowest free number from `first` within a `log_max` limit.
fn alloc_in(set: &mut BTreeSet<u32>, first: u32, log_max: u64) -> Option<u32> {
    let limit = 1u64 << log_max.min(24);
    if set.len() as u64 >= limit {
        return None;
    }
    let n = (first..).find(|n| !set.contains(n))?;
    if n > 0xff_ffff {
        return None;
    }
    set.insert(n);
    Some(n)
}

/// ALLOC_PD: pd at out bit 0x48.
pub fn alloc_pd(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    let log_max = dev.caps.general(super::caps::hca_cap::LOG_MAX_PD);
    let pd = alloc_in(&mut dev.domains.pds, 1, log_max).ok_or(syn::NO_PD)?;
    set(out, f(0x48, 0x18), pd as u64);
    Ok(())
}

/// DEALLOC_PD: pd at in bit 0x48.
pub fn dealloc_pd(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let pd = get(inp, f(0x48, 0x18)) as u32;
    if dev.domains.pds.contains(&pd) && (dev.nic.uses_pd(pd) || dev.mkeys.uses_pd(pd)) {
        return Err(syn::PD_IN_USE);
    }
    if !dev.domains.pds.remove(&pd) {
        return Err(syn::UNKNOWN_PD);
    }
    Ok(())
}

/// ALLOC_TRANSPORT_DOMAIN: transport_domain at out bit 0x48.
pub fn alloc_td(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    let log_max = dev
        .caps
        .general(super::caps::hca_cap::LOG_MAX_TRANSPORT_DOMAIN);
    let td = alloc_in(&mut dev.domains.tds, 1, log_max).ok_or(syn::NO_TD)?;
    set(out, f(0x48, 0x18), td as u64);
    Ok(())
}

/// DEALLOC_TRANSPORT_DOMAIN: transport_domain at in bit 0x48.
pub fn dealloc_td(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let td = get(inp, f(0x48, 0x18)) as u32;
    if dev.domains.tds.contains(&td) && dev.nic.uses_td(td) {
        return Err(syn::TD_IN_USE);
    }
    if !dev.domains.tds.remove(&td) {
        return Err(syn::UNKNOWN_TD);
    }
    Ok(())
}

/// QUERY_SPECIAL_CONTEXTS: resd_lkey at out byte 0x0c.
pub fn query_special_contexts(inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    // dump_fill_mkey (0x08) and null_mkey (0x10) are not offered: zero.
    put_be32(out, 0x0c, RESERVED_LKEY);
    Ok(())
}
