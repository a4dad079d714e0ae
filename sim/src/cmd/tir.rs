//! Transport interface receive: CREATE/DESTROY_TIR (`create_tir_in`,
//! `tirc`, `destroy_tir_in`, mlx5_ifc.h). Direct TIRs only (disp_type 0:
//! every frame to `inline_rqn`); indirect TIRs (RSS over an RQT) belong to
//! the RSS work and are refused with TIR_DISP_TYPE until then.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::{MIN_IN, MIN_OUT, need, reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::device::Device;
use crate::syndrome::{self as syn, CmdError};

/// First TIRN handed out.
pub const FIRST_TIRN: u32 = 0x4000;
/// `MLX5_TIRC_DISP_TYPE_DIRECT`.
pub const DISP_DIRECT: u64 = 0;

/// `tirc` fields (bit offsets inside the context).
pub mod tirc {
    use crate::bits::{F, f};
    pub const DISP_TYPE: F = f(0x20, 4);
    pub const TLS_EN: F = f(0x24, 1);
    /// lro_timeout_period_usecs, packet_merge_mask, lro_max_ip_payload_size.
    pub const LRO: F = f(0x84, 0x1c);
    pub const INLINE_RQN: F = f(0xe8, 0x18);
    /// rx_hash_symmetric, tunneled_offload_en, indirect_table, rx_hash_fn:
    /// indirect TIRs only.
    pub const HASH_SYMMETRIC: F = f(0x100, 1);
    pub const TUNNELED_OFFLOAD: F = f(0x102, 1);
    pub const INDIRECT_TABLE: F = f(0x108, 0x18);
    pub const RX_HASH_FN: F = f(0x120, 4);
    pub const SELF_LB_BLOCK: F = f(0x126, 2);
    pub const TRANSPORT_DOMAIN: F = f(0x128, 0x18);
    /// Toeplitz key and hash field selectors (0x140..0x2c0).
    pub const HASH_KEY_AND_FIELDS: F = f(0x140, 0x180);
    pub const RESERVED: [F; 7] = [
        f(0x0, 0x20),
        f(0x25, 0x1b),
        f(0x40, 0x40),
        f(0x80, 4),
        f(0xa0, 0x40),
        f(0xe0, 8),
        f(0x124, 2),
    ];
}

/// `create_tir_in`: context at byte 0x20 (0xf0 bytes).
pub const CTX: usize = 0x20;

#[derive(Debug, Clone, Copy)]
pub struct Tir {
    pub tirn: u32,
    pub rqn: u32,
    pub td: u32,
    pub self_lb_block: u8,
    /// Flow entries forwarding to this TIR.
    pub users: u32,
}

#[derive(Debug, Default)]
pub struct Tirs {
    map: BTreeMap<u32, Tir>,
}

impl Tirs {
    pub fn get(&self, tirn: u32) -> Option<&Tir> {
        self.map.get(&tirn)
    }
    pub fn get_mut(&mut self, tirn: u32) -> Option<&mut Tir> {
        self.map.get_mut(&tirn)
    }
    pub fn uses_td(&self, td: u32) -> bool {
        self.map.values().any(|t| t.td == td)
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

/// CREATE_TIR.
pub fn create(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, CTX + 0x58, MIN_OUT)?;
    reserved(inp, &[f(0x40, 0xc0)])?;
    reserved_in(inp, CTX, &tirc::RESERVED)?;
    reserved(inp, &[f(0x2c0, 0x4c0).at(CTX)])?;
    if get(inp, ctx(tirc::DISP_TYPE)) != DISP_DIRECT {
        return Err(syn::TIR_DISP_TYPE);
    }
    let hashing = [
        tirc::HASH_SYMMETRIC,
        tirc::TUNNELED_OFFLOAD,
        tirc::INDIRECT_TABLE,
        tirc::RX_HASH_FN,
    ];
    if get(inp, ctx(tirc::TLS_EN)) != 0
        || get(inp, ctx(tirc::LRO)) != 0
        || hashing.iter().any(|h| get(inp, ctx(*h)) != 0)
        || !crate::bits::all_zero(inp, &[ctx(tirc::HASH_KEY_AND_FIELDS)])
    {
        return Err(syn::QUEUE_FEATURE);
    }
    let td = get(inp, ctx(tirc::TRANSPORT_DOMAIN)) as u32;
    if !dev.domains.has_td(td) {
        return Err(syn::UNKNOWN_TD);
    }
    let rqn = get(inp, ctx(tirc::INLINE_RQN)) as u32;
    if dev.nic.rqs.get(rqn).is_none() {
        return Err(syn::UNKNOWN_RQ);
    }
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_TIR).min(24);
    if dev.nic.tirs.map.len() as u64 >= max {
        return Err(syn::NO_TIR);
    }
    let Some(tirn) = (FIRST_TIRN..=0xff_ffff).find(|n| !dev.nic.tirs.map.contains_key(n)) else {
        return Err(syn::NO_TIR);
    };
    if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
        rq.users += 1;
    }
    let tir = Tir {
        tirn,
        rqn,
        td,
        self_lb_block: get(inp, ctx(tirc::SELF_LB_BLOCK)) as u8,
        users: 0,
    };
    dev.nic.tirs.map.insert(tirn, tir);
    // create_tir_out: tirn at bit 0x48.
    set(out, f(0x48, 0x18), tirn as u64);
    Ok(())
}

/// DESTROY_TIR (`destroy_tir_in`: tirn at bit 0x48): refused while a flow
/// entry forwards to it.
pub fn destroy(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, MIN_IN, MIN_OUT)?;
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let tirn = get(inp, f(0x48, 0x18)) as u32;
    match dev.nic.tirs.map.get(&tirn) {
        None => return Err(syn::UNKNOWN_TIR),
        Some(t) if t.users != 0 => return Err(syn::TIR_IN_USE),
        Some(_) => {}
    }
    if let Some(t) = dev.nic.tirs.map.remove(&tirn)
        && let Some(rq) = dev.nic.rqs.get_mut(t.rqn)
    {
        rq.users = rq.users.saturating_sub(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tirc` by hand: disp_type 0 (byte 4 high nibble), inline_rqn 0x002000
    /// (bytes 0x1d..0x20), self_lb_block 3 (bits 0x126..0x128: byte 0x24,
    /// 0x03), transport_domain 0x000009 (bytes 0x25..0x28).
    #[test]
    fn tirc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0xf0];
        c[0x1e] = 0x20;
        c[0x24] = 0x03;
        c[0x27] = 0x09;
        assert_eq!(get(&c, tirc::DISP_TYPE), 0);
        assert_eq!(get(&c, tirc::INLINE_RQN), 0x2000);
        assert_eq!(get(&c, tirc::SELF_LB_BLOCK), 3);
        assert_eq!(get(&c, tirc::TRANSPORT_DOMAIN), 9);
        assert!(crate::bits::all_zero(&c, &tirc::RESERVED));
        c[0x04] = 0x10;
        assert_eq!(get(&c, tirc::DISP_TYPE), 1);
    }
}
