//! Receive queue tables (RSS indirection): CREATE/MODIFY/DESTROY/QUERY_RQT
//! (`create_rqt_in/out`, `modify_rqt_in`, `rqt_bitmask`, `destroy_rqt_in`,
//! `query_rqt_in/out`, `rqtc`, `rq_num`, mlx5_ifc.h). An indirect TIR
//! hashes a frame and takes entry `hash % rqt_actual_size` of its table.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::{reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// First RQTN handed out.
pub const FIRST_RQTN: u32 = 0x5000;

/// `rqtc` fields (bit offsets inside the context).
pub mod rqtc {
    use crate::bits::{F, f};
    pub const LIST_Q_TYPE: F = f(0xa5, 3);
    pub const RQT_MAX_SIZE: F = f(0xb0, 0x10);
    pub const RQ_VHCA_ID_FORMAT: F = f(0xc0, 1);
    pub const RQT_ACTUAL_SIZE: F = f(0xd0, 0x10);
    pub const RESERVED: [F; 4] = [f(0x0, 0xa0), f(0xa0, 5), f(0xa8, 8), f(0xc1, 0xf)];
    /// reserved_at_e0[0x6a0]: the RQ list starts at bit 0x780 (byte 0xf0).
    pub const TAIL: F = f(0xe0, 0x6a0);
    pub const LIST: usize = 0xf0;
}

/// `create_rqt_in`: context at byte 0x20; `modify_rqt_in`: bitmask at
/// bit 0x80, context at byte 0x20 as well (after reserved_at_c0[0x40]);
/// `query_rqt_out`: context at byte 0x20.
pub const CTX: usize = 0x20;
/// `rqt_bitmask.rqn_list` (bit 0x3f of the bitmask's 64 bits).
const MODIFY_RQN_LIST: u64 = 1;

#[derive(Debug, Clone)]
pub struct Rqt {
    pub rqtn: u32,
    pub max_size: u16,
    pub rqns: Vec<u32>,
    /// Indirect TIRs using the table.
    pub users: u32,
}

#[derive(Debug, Default)]
pub struct Rqts {
    map: BTreeMap<u32, Rqt>,
}

impl Rqts {
    pub fn get(&self, rqtn: u32) -> Option<&Rqt> {
        self.map.get(&rqtn)
    }
    pub fn get_mut(&mut self, rqtn: u32) -> Option<&mut Rqt> {
        self.map.get_mut(&rqtn)
    }
    pub fn count(&self) -> usize {
        self.map.len()
    }
    pub fn clear(&mut self) {
        self.map.clear();
    }
    /// Times RQ `rqn` appears in some table.
    pub fn uses_rq(&self, rqn: u32) -> bool {
        self.map.values().any(|t| t.rqns.contains(&rqn))
    }
}

fn ctx(fld: F) -> F {
    fld.at(CTX)
}

/// Parse and check a context: (max size, RQ list).
fn parse(dev: &Function, inp: &[u8], max_size: Option<u16>) -> Result<(u16, Vec<u32>), CmdError> {
    reserved_in(inp, CTX, &rqtc::RESERVED)?;
    reserved(inp, &[ctx(rqtc::TAIL)])?;
    // list_q_type 0 = RQs; rq_vhca_id_format: other functions' RQs.
    if get(inp, ctx(rqtc::LIST_Q_TYPE)) != 0 || get(inp, ctx(rqtc::RQ_VHCA_ID_FORMAT)) != 0 {
        return Err(syn::RQT_SIZE);
    }
    let limit = 1u64
        << dev
            .caps
            .general(super::caps::hca_cap::LOG_MAX_RQT_SIZE)
            .min(16);
    let max = match max_size {
        Some(m) => m,
        None => get(inp, ctx(rqtc::RQT_MAX_SIZE)) as u16,
    };
    let actual = get(inp, ctx(rqtc::RQT_ACTUAL_SIZE)) as usize;
    if max == 0 || max as u64 > limit || actual == 0 || actual > max as usize {
        return Err(syn::RQT_SIZE);
    }
    let list = CTX + rqtc::LIST;
    if inp.len() < list + 4 * actual {
        return Err(syn::CMD_LENGTHS);
    }
    let mut rqns = Vec::with_capacity(actual);
    for i in 0..actual {
        if get(inp, f(0, 8).at(list + 4 * i)) != 0 {
            return Err(syn::RESERVED_SET);
        }
        let rqn = get(inp, f(8, 0x18).at(list + 4 * i)) as u32;
        if dev.nic.rqs.get(rqn).is_none() {
            return Err(syn::UNKNOWN_RQ);
        }
        rqns.push(rqn);
    }
    Ok((max, rqns))
}

/// CREATE_RQT.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0xc0)])?;
    let (max_size, rqns) = parse(dev, inp, None)?;
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_RQT).min(24);
    if dev.nic.rqts.map.len() as u64 >= max {
        return Err(syn::NO_RQT);
    }
    let Some(rqtn) = (FIRST_RQTN..=0xff_ffff).find(|n| !dev.nic.rqts.map.contains_key(n)) else {
        return Err(syn::NO_RQT);
    };
    dev.nic.rqts.map.insert(
        rqtn,
        Rqt {
            rqtn,
            max_size,
            rqns,
            users: 0,
        },
    );
    // create_rqt_out: rqtn at bit 0x48.
    set(out, f(0x48, 0x18), rqtn as u64);
    Ok(())
}

/// MODIFY_RQT (`modify_rqt_in`: rqtn 0x48, bitmask 0x80..0xc0): a new RQ
/// list (up to the table's max size), taking effect for the next frame.
pub fn modify(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20), f(0xc0, 0x40)])?;
    if get(inp, f(0x80, 0x40)) != MODIFY_RQN_LIST {
        return Err(syn::RQT_MODIFY_FIELD);
    }
    let rqtn = get(inp, f(0x48, 0x18)) as u32;
    let Some(max) = dev.nic.rqts.map.get(&rqtn).map(|t| t.max_size) else {
        return Err(syn::UNKNOWN_RQT);
    };
    let (_, rqns) = parse(dev, inp, Some(max))?;
    if let Some(t) = dev.nic.rqts.map.get_mut(&rqtn) {
        t.rqns = rqns;
    }
    Ok(())
}

/// DESTROY_RQT (`destroy_rqt_in`: rqtn at bit 0x48): refused while an
/// indirect TIR uses it.
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let rqtn = get(inp, f(0x48, 0x18)) as u32;
    match dev.nic.rqts.map.get(&rqtn) {
        None => Err(syn::UNKNOWN_RQT),
        Some(t) if t.users != 0 => Err(syn::RQT_IN_USE),
        Some(_) => {
            dev.nic.rqts.map.remove(&rqtn);
            Ok(())
        }
    }
}

/// QUERY_RQT (`query_rqt_in`: rqtn at bit 0x48; out: context at 0x20 and
/// the RQ list as far as the output has room).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let Some(t) = dev.nic.rqts.map.get(&(get(inp, f(0x48, 0x18)) as u32)) else {
        return Err(syn::UNKNOWN_RQT);
    };
    set(out, ctx(rqtc::RQT_MAX_SIZE), t.max_size as u64);
    set(out, ctx(rqtc::RQT_ACTUAL_SIZE), t.rqns.len() as u64);
    for (i, rqn) in t.rqns.iter().enumerate() {
        set(out, f(8, 0x18).at(CTX + rqtc::LIST + 4 * i), *rqn as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rqtc` by hand: rqt_max_size 0x0100 (bits 0xb0..0xc0: bytes
    /// 0x16..0x18), rqt_actual_size 8 (bits 0xd0..0xe0: bytes 0x1a..0x1c),
    /// rq_num[0] = 0x002001 at
    /// bytes 0xf0..0xf4 (reserved byte then the 24-bit number).
    #[test]
    fn rqtc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0xf8];
        c[0x16] = 0x01;
        c[0x1b] = 0x08;
        c[0xf1..0xf4].copy_from_slice(&[0x00, 0x20, 0x01]);
        assert_eq!(get(&c, rqtc::RQT_MAX_SIZE), 0x100);
        assert_eq!(get(&c, rqtc::RQT_ACTUAL_SIZE), 8);
        assert_eq!(get(&c, f(8, 0x18).at(rqtc::LIST)), 0x2001);
        assert!(crate::bits::all_zero(&c, &rqtc::RESERVED));
        assert_eq!(rqtc::TAIL.bit + rqtc::TAIL.width, rqtc::LIST * 8);
    }
}
