//! Transport interface send: CREATE/DESTROY_TIS (`create_tis_in`, `tisc`,
//! `destroy_tis_in`, mlx5_ifc.h). An SQ names one TIS; the model keeps its
//! transport domain and priority (LAG affinity and TLS are not offered).
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::{reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// First TISN handed out.
pub const FIRST_TISN: u32 = 0x3000;

/// `tisc` fields (bit offsets inside the context).
pub mod tisc {
    use crate::bits::{F, f};
    /// strict_lag_tx_port_affinity, tls_en, lag_tx_port_affinity.
    pub const LAG_TLS: F = f(0x0, 8);
    pub const PRIO: F = f(0xc, 4);
    pub const TRANSPORT_DOMAIN: F = f(0x128, 0x18);
    pub const UNDERLAY_QPN: F = f(0x148, 0x18);
    pub const PD: F = f(0x168, 0x18);
    pub const RESERVED: [F; 6] = [
        f(0x8, 4),
        f(0x10, 0x10),
        f(0x20, 0x100),
        f(0x120, 8),
        f(0x140, 8),
        f(0x160, 8),
    ];
}

/// `create_tis_in`: context at byte 0x20 (0xa0 bytes).
pub const CTX: usize = 0x20;

#[derive(Debug, Clone, Copy)]
pub struct Tis {
    pub tisn: u32,
    pub prio: u8,
    pub td: u32,
    pub pd: u32,
}

#[derive(Debug, Default)]
pub struct Tises {
    map: BTreeMap<u32, Tis>,
}

impl Tises {
    pub fn get(&self, tisn: u32) -> Option<&Tis> {
        self.map.get(&tisn)
    }
    pub fn uses_td(&self, td: u32) -> bool {
        self.map.values().any(|t| t.td == td)
    }
    pub fn uses_pd(&self, pd: u32) -> bool {
        self.map.values().any(|t| t.pd == pd)
    }
    pub fn clear(&mut self) {
        self.map.clear();
    }
    pub fn count(&self) -> usize {
        self.map.len()
    }
}

fn ctx(fld: F) -> F {
    fld.at(CTX)
}

/// CREATE_TIS.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0xc0)])?;
    reserved_in(inp, CTX, &tisc::RESERVED)?;
    reserved(inp, &[f(0x180, 0x380).at(CTX)])?;
    if get(inp, ctx(tisc::LAG_TLS)) != 0 || get(inp, ctx(tisc::UNDERLAY_QPN)) != 0 {
        return Err(syn::QUEUE_FEATURE);
    }
    let td = get(inp, ctx(tisc::TRANSPORT_DOMAIN)) as u32;
    if !dev.domains.has_td(td) {
        return Err(syn::UNKNOWN_TD);
    }
    let pd = get(inp, ctx(tisc::PD)) as u32;
    if pd != 0 && !dev.domains.has_pd(pd) {
        return Err(syn::UNKNOWN_PD);
    }
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_TIS).min(24);
    if dev.nic.tises.map.len() as u64 >= max {
        return Err(syn::NO_TIS);
    }
    let Some(tisn) = (FIRST_TISN..=0xff_ffff).find(|n| !dev.nic.tises.map.contains_key(n)) else {
        return Err(syn::NO_TIS);
    };
    let prio = get(inp, ctx(tisc::PRIO)) as u8;
    dev.nic.tises.map.insert(tisn, Tis { tisn, prio, td, pd });
    // create_tis_out: tisn at bit 0x48.
    set(out, f(0x48, 0x18), tisn as u64);
    Ok(())
}

/// DESTROY_TIS (`destroy_tis_in`: tisn at bit 0x48): refused while an SQ uses it.
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let tisn = get(inp, f(0x48, 0x18)) as u32;
    if !dev.nic.tises.map.contains_key(&tisn) {
        return Err(syn::UNKNOWN_TIS);
    }
    if dev.nic.sqs.uses_tis(tisn) {
        return Err(syn::TIS_IN_USE);
    }
    dev.nic.tises.map.remove(&tisn);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tisc` by hand: prio 3 (bits 0xc..0x10: byte 1 low nibble),
    /// transport_domain 0x000005 (bytes 0x25..0x28), pd 7 (bytes 0x2d..0x30).
    #[test]
    fn tisc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0xa0];
        c[0x01] = 0x03;
        c[0x27] = 0x05;
        c[0x2f] = 0x07;
        assert_eq!(get(&c, tisc::PRIO), 3);
        assert_eq!(get(&c, tisc::TRANSPORT_DOMAIN), 5);
        assert_eq!(get(&c, tisc::PD), 7);
        assert!(crate::bits::all_zero(&c, &tisc::RESERVED));
    }
}
