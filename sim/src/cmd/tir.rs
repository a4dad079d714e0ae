//! Transport interface receive: CREATE/MODIFY/DESTROY_TIR (`create_tir_in`,
//! `modify_tir_in`, `modify_tir_bitmask`, `tirc`, `rx_hash_field_select`,
//! `destroy_tir_in`, mlx5_ifc.h). Direct TIRs (disp_type 0) send every
//! frame to `inline_rqn`; indirect TIRs (disp_type 1) hash it over the
//! outer fields their selector names (source / destination address, ports,
//! IPsec SPI) with Toeplitz (`rx_hash_fn` 2, optionally symmetric) or
//! inverted XOR8 (1), and take the RQ from their RQT
//! ([`crate::datapath::rss`]). Not offered: LRO (`lro_cap` reads 0), TLS,
//! tunneled offloads (hashing on inner headers).
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::{reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// First TIRN handed out.
pub const FIRST_TIRN: u32 = 0x4000;
/// `MLX5_TIRC_DISP_TYPE_DIRECT` / `_INDIRECT`.
pub const DISP_DIRECT: u64 = 0;
pub const DISP_INDIRECT: u64 = 1;
/// `MLX5_RX_HASH_FN_NONE` / `_INVERTED_XOR8` / `_TOEPLITZ`.
pub const HASH_NONE: u64 = 0;
pub const HASH_INVERTED_XOR8: u64 = 1;
pub const HASH_TOEPLITZ: u64 = 2;
/// `rx_hash_field_select.selected_fields` bits (`MLX5_HASH_FIELD_SEL_*`).
pub mod sel {
    pub const SRC_IP: u32 = 1 << 0;
    pub const DST_IP: u32 = 1 << 1;
    pub const L4_SPORT: u32 = 1 << 2;
    pub const L4_DPORT: u32 = 1 << 3;
    pub const IPSEC_SPI: u32 = 1 << 4;
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

/// The hash function of an indirect TIR (`rx_hash_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFn {
    /// Toeplitz with the TIR's key; `symmetric`: `rx_hash_symmetric`.
    Toeplitz { symmetric: bool },
    /// The XOR of the selected bytes, inverted (an 8-bit hash).
    InvertedXor8,
}

/// An indirect TIR's hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxHash {
    pub rqtn: u32,
    pub func: HashFn,
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

/// TLS, LRO and tunneled offloads: not offered (their capabilities read 0).
fn unoffered(inp: &[u8]) -> Result<(), CmdError> {
    if get(inp, ctx(tirc::TLS_EN)) != 0
        || get(inp, ctx(tirc::LRO)) != 0
        || get(inp, ctx(tirc::TUNNELED_OFFLOAD)) != 0
    {
        return Err(syn::QUEUE_FEATURE);
    }
    Ok(())
}

/// CREATE_TIR.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0xc0)])?;
    reserved_in(inp, CTX, &tirc::RESERVED)?;
    reserved(inp, &[f(0x2c0, 0x4c0).at(CTX)])?;
    unoffered(inp)?;
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
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
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

/// The hashing of an indirect TIR (inline_rqn unused); `rqtn` is the RQT
/// it takes the RQ from.
fn indirect(dev: &Function, inp: &[u8]) -> Result<RxHash, CmdError> {
    if get(inp, ctx(tirc::INLINE_RQN)) != 0 {
        return Err(syn::QUEUE_FEATURE);
    }
    let rqtn = get(inp, ctx(tirc::INDIRECT_TABLE)) as u32;
    let h = hashing(inp, rqtn)?;
    if dev.nic.rqts.get(rqtn).is_none() {
        return Err(syn::UNKNOWN_RQT);
    }
    Ok(h)
}

/// The hash function, key and outer field selection of a `tirc` (create,
/// or modify with the `hash` bit): Toeplitz (optionally symmetric) or
/// inverted XOR8 over source / destination address, L4 ports and the IPsec
/// SPI. Ports need an address; the SPI excludes ports; hashing on inner
/// headers needs tunneled offloads (not offered).
fn hashing(inp: &[u8], rqtn: u32) -> Result<RxHash, CmdError> {
    let symmetric = get(inp, ctx(tirc::HASH_SYMMETRIC)) != 0;
    let func = match get(inp, ctx(tirc::RX_HASH_FN)) {
        HASH_TOEPLITZ => HashFn::Toeplitz { symmetric },
        HASH_INVERTED_XOR8 if !symmetric => HashFn::InvertedXor8,
        _ => return Err(syn::TIR_DISP_TYPE),
    };
    let fields = get(inp, ctx(tirc::OUTER_FIELDS)) as u32;
    let ips = sel::SRC_IP | sel::DST_IP;
    let ports = sel::L4_SPORT | sel::L4_DPORT;
    if get(inp, ctx(tirc::INNER_SELECTOR)) != 0
        || fields & !(ips | ports | sel::IPSEC_SPI) != 0
        || (fields & ports != 0 && fields & ips == 0)
        || (fields & sel::IPSEC_SPI != 0 && fields & ports != 0)
    {
        return Err(syn::TIR_HASH_FIELDS);
    }
    let mut key = [0u8; 40];
    let at = CTX + tirc::TOEPLITZ_KEY;
    key.copy_from_slice(&inp[at..at + 40]);
    Ok(RxHash {
        rqtn,
        func,
        key,
        ipv6: get(inp, ctx(tirc::OUTER_L3_V6)) != 0,
        udp: get(inp, ctx(tirc::OUTER_L4_UDP)) != 0,
        fields,
    })
}

/// `modify_tir_in`: tirn at bit 0x48, `modify_tir_bitmask` at 0x80
/// (self_lb_en 0xbb, hash 0xbd, packet_merge 0xbf), context at byte 0x20.
mod modify_bits {
    use crate::bits::{F, f};
    pub const SELF_LB_EN: F = f(0xbb, 1);
    pub const HASH: F = f(0xbd, 1);
    pub const PACKET_MERGE: F = f(0xbf, 1);
    pub const RESERVED: [F; 6] = [
        f(0x40, 8),
        f(0x60, 0x20),
        f(0x80, 0x3b),
        f(0xbc, 1),
        f(0xbe, 1),
        f(0xc0, 0x40),
    ];
}

/// MODIFY_TIR: the self-loopback block, the hashing of an indirect TIR
/// (function, key, fields; its RQT stays) and packet merge (LRO: only "off"
/// is accepted, it is not offered). Fields the bitmask does not name are
/// ignored, as drivers send the whole context.
pub fn modify(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &modify_bits::RESERVED)?;
    let tirn = get(inp, f(0x48, 0x18)) as u32;
    let Some(tir) = dev.nic.tirs.map.get(&tirn).copied() else {
        return Err(syn::UNKNOWN_TIR);
    };
    let lb = get(inp, modify_bits::SELF_LB_EN) != 0;
    let hash = get(inp, modify_bits::HASH) != 0;
    let merge = get(inp, modify_bits::PACKET_MERGE) != 0;
    if !(lb || hash || merge) {
        return Err(syn::TIR_MODIFY_FIELD);
    }
    if merge && get(inp, ctx(tirc::LRO)) != 0 {
        return Err(syn::QUEUE_FEATURE);
    }
    let new_hash = match (hash, tir.hash) {
        (false, h) => h,
        (true, None) => return Err(syn::TIR_MODIFY_FIELD),
        (true, Some(h)) => Some(hashing(inp, h.rqtn)?),
    };
    if let Some(t) = dev.nic.tirs.map.get_mut(&tirn) {
        t.hash = new_hash;
        if lb {
            t.self_lb_block = get(inp, ctx(tirc::SELF_LB_BLOCK)) as u8;
        }
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
