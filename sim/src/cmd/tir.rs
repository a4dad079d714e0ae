//! Transport interface receive: CREATE/DESTROY_TIR (`create_tir_in`,
//! `tirc`, `rx_hash_field_select`, `destroy_tir_in`, mlx5_ifc.h). Direct
//! TIRs (disp_type 0) send every frame to `inline_rqn`; indirect TIRs
//! (disp_type 1) hash it with Toeplitz (`rx_hash_fn` 2) over the outer
//! fields their selector names, with their key, and take the RQ from their
//! RQT ([`crate::datapath::rss`]).
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::{MIN_IN, MIN_OUT, need, reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// First TIRN handed out.
pub const FIRST_TIRN: u32 = 0x4000;
/// `MLX5_TIRC_DISP_TYPE_DIRECT` / `_INDIRECT`.
pub const DISP_DIRECT: u64 = 0;
pub const DISP_INDIRECT: u64 = 1;
/// `MLX5_RX_HASH_FN_TOEPLITZ`.
pub const HASH_TOEPLITZ: u64 = 2;
/// `rx_hash_field_select.selected_fields` bits (`MLX5_HASH_FIELD_SEL_*`).
pub mod sel {
    pub const SRC_IP: u32 = 1 << 0;
    pub const DST_IP: u32 = 1 << 1;
    pub const L4_SPORT: u32 = 1 << 2;
    pub const L4_DPORT: u32 = 1 << 3;
}

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
    /// rx_hash_toeplitz_key[10]: 40 bytes from byte 0x28.
    pub const TOEPLITZ_KEY: usize = 0x28;
    /// rx_hash_field_selector_outer (`rx_hash_field_select`): l3_prot_type
    /// bit 0x280, l4_prot_type 0x281, selected_fields 0x282..0x2a0.
    pub const OUTER_L3_V6: F = f(0x280, 1);
    pub const OUTER_L4_UDP: F = f(0x281, 1);
    pub const OUTER_FIELDS: F = f(0x282, 0x1e);
    pub const INNER_SELECTOR: F = f(0x2a0, 0x20);
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

/// An indirect TIR's hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxHash {
    pub rqtn: u32,
    pub key: [u8; 40],
    /// Selector: IPv6 (else IPv4), UDP (else TCP), `sel::*` fields.
    pub ipv6: bool,
    pub udp: bool,
    pub fields: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Tir {
    pub tirn: u32,
    /// Direct TIR: the RQ (0 for an indirect TIR).
    pub rqn: u32,
    pub hash: Option<RxHash>,
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
    pub fn iter(&self) -> impl Iterator<Item = &Tir> {
        self.map.values()
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
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, CTX + 0x58, MIN_OUT)?;
    reserved(inp, &[f(0x40, 0xc0)])?;
    reserved_in(inp, CTX, &tirc::RESERVED)?;
    reserved(inp, &[f(0x2c0, 0x4c0).at(CTX)])?;
    if get(inp, ctx(tirc::TLS_EN)) != 0
        || get(inp, ctx(tirc::LRO)) != 0
        || get(inp, ctx(tirc::TUNNELED_OFFLOAD)) != 0
    {
        return Err(syn::QUEUE_FEATURE);
    }
    let td = get(inp, ctx(tirc::TRANSPORT_DOMAIN)) as u32;
    if !dev.domains.has_td(td) {
        return Err(syn::UNKNOWN_TD);
    }
    let (rqn, hash) = match get(inp, ctx(tirc::DISP_TYPE)) {
        DISP_DIRECT => {
            let hashing = [tirc::HASH_SYMMETRIC, tirc::INDIRECT_TABLE, tirc::RX_HASH_FN];
            if hashing.iter().any(|h| get(inp, ctx(*h)) != 0)
                || !crate::bits::all_zero(inp, &[ctx(tirc::HASH_KEY_AND_FIELDS)])
            {
                return Err(syn::QUEUE_FEATURE);
            }
            let rqn = get(inp, ctx(tirc::INLINE_RQN)) as u32;
            if dev.nic.rqs.get(rqn).is_none() {
                return Err(syn::UNKNOWN_RQ);
            }
            (rqn, None)
        }
        DISP_INDIRECT => (0, Some(indirect(dev, inp)?)),
        _ => return Err(syn::TIR_DISP_TYPE),
    };
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_TIR).min(24);
    if dev.nic.tirs.map.len() as u64 >= max {
        return Err(syn::NO_TIR);
    }
    let Some(tirn) = (FIRST_TIRN..=0xff_ffff).find(|n| !dev.nic.tirs.map.contains_key(n)) else {
        return Err(syn::NO_TIR);
    };
    match hash {
        None => {
            if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
                rq.users += 1;
            }
        }
        Some(h) => {
            if let Some(t) = dev.nic.rqts.get_mut(h.rqtn) {
                t.users += 1;
            }
        }
    }
    let tir = Tir {
        tirn,
        rqn,
        hash,
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
pub fn destroy(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, MIN_IN, MIN_OUT)?;
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let tirn = get(inp, f(0x48, 0x18)) as u32;
    match dev.nic.tirs.map.get(&tirn) {
        None => return Err(syn::UNKNOWN_TIR),
        Some(t) if t.users != 0 => return Err(syn::TIR_IN_USE),
        Some(_) => {}
    }
    let Some(t) = dev.nic.tirs.map.remove(&tirn) else {
        return Ok(());
    };
    match t.hash {
        None => {
            if let Some(rq) = dev.nic.rqs.get_mut(t.rqn) {
                rq.users = rq.users.saturating_sub(1);
            }
        }
        Some(h) => {
            if let Some(r) = dev.nic.rqts.get_mut(h.rqtn) {
                r.users = r.users.saturating_sub(1);
            }
        }
    }
    Ok(())
}

/// The hashing of an indirect TIR: Toeplitz over the outer selector's
/// fields (inline_rqn, the inner selector and symmetric hashing unused).
fn indirect(dev: &Function, inp: &[u8]) -> Result<RxHash, CmdError> {
    if get(inp, ctx(tirc::INLINE_RQN)) != 0 {
        return Err(syn::QUEUE_FEATURE);
    }
    if get(inp, ctx(tirc::RX_HASH_FN)) != HASH_TOEPLITZ {
        return Err(syn::TIR_DISP_TYPE);
    }
    let fields = get(inp, ctx(tirc::OUTER_FIELDS)) as u32;
    let all = sel::SRC_IP | sel::DST_IP | sel::L4_SPORT | sel::L4_DPORT;
    let ports = sel::L4_SPORT | sel::L4_DPORT;
    if get(inp, ctx(tirc::HASH_SYMMETRIC)) != 0
        || get(inp, ctx(tirc::INNER_SELECTOR)) != 0
        || fields & !all != 0
        || (fields & ports != 0 && fields & (sel::SRC_IP | sel::DST_IP) == 0)
    {
        return Err(syn::TIR_HASH_FIELDS);
    }
    let rqtn = get(inp, ctx(tirc::INDIRECT_TABLE)) as u32;
    if dev.nic.rqts.get(rqtn).is_none() {
        return Err(syn::UNKNOWN_RQT);
    }
    let mut key = [0u8; 40];
    let at = CTX + tirc::TOEPLITZ_KEY;
    key.copy_from_slice(&inp[at..at + 40]);
    Ok(RxHash {
        rqtn,
        key,
        ipv6: get(inp, ctx(tirc::OUTER_L3_V6)) != 0,
        udp: get(inp, ctx(tirc::OUTER_L4_UDP)) != 0,
        fields,
    })
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
