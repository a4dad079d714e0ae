//! Receive queues (cyclic): CREATE/MODIFY/DESTROY/QUERY_RQ (`create_rq_in`,
//! `modify_rq_in`, `query_rq_out`, `rqc`, mlx5_ifc.h). Same state machine
//! as SQs ([`super::sq::transition_allowed`]). A cyclic RQ WQE is a list of
//! data segments (`struct mlx5_wqe_data_seg`), one stride of 16..64 bytes;
//! a zero byte_count ends the list early. The receive engine is
//! [`crate::datapath::rx`].
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::sq::{STATE_ERR, STATE_RST, transition_allowed};
use super::wq::{self, Wq};
use super::{reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::sanitizer::Revoked;
use crate::syndrome::{self as syn, CmdError};

/// First RQN handed out.
pub const FIRST_RQN: u32 = 0x2000;
/// Strides a cyclic RQ accepts: one to four data segments.
pub const LOG_STRIDE_MIN: u8 = 4;
pub const LOG_STRIDE_MAX: u8 = 6;

/// `rqc` fields (bit offsets inside the context).
pub mod rqc {
    use crate::bits::{F, f};
    /// rlky, delay_drop_en, scatter_fcs.
    pub const RLKY_DROP_FCS: F = f(0x0, 3);
    pub const VSD: F = f(0x3, 1);
    pub const MEM_RQ_TYPE: F = f(0x4, 4);
    pub const STATE: F = f(0x8, 4);
    pub const FLUSH_IN_ERROR_EN: F = f(0xd, 1);
    pub const HAIRPIN: F = f(0xe, 1);
    pub const TS_FORMAT: F = f(0x1a, 2);
    pub const USER_INDEX: F = f(0x28, 0x18);
    pub const CQN: F = f(0x48, 0x18);
    pub const COUNTER_SET_ID: F = f(0x60, 8);
    pub const RMPN: F = f(0x88, 0x18);
    pub const HAIRPIN_PEER_SQ: F = f(0xa8, 0x18);
    pub const HAIRPIN_PEER_VHCA: F = f(0xd0, 0x10);
    /// shampo fields and reserved space 0xe0..0x180: none offered.
    pub const EXTENSIONS: F = f(0xe0, 0xa0);
    pub const RESERVED: [F; 9] = [
        f(0xc, 1),
        f(0xf, 0xb),
        f(0x1c, 4),
        f(0x20, 8),
        f(0x40, 8),
        f(0x68, 0x18),
        f(0x80, 8),
        f(0xa0, 8),
        f(0xc0, 0x10),
    ];
    pub const WQ: usize = 0x30;
}

pub mod layout {
    pub const CTX: usize = 0x20;
}

/// `MLX5_MODIFY_RQ_IN_MODIFY_BITMASK_*`.
const MODIFY_VSD: u64 = 1 << 1;
const MODIFY_COUNTER_SET_ID: u64 = 1 << 3;

#[derive(Debug, Clone)]
pub struct Rq {
    pub rqn: u32,
    pub state: u8,
    pub cqn: u32,
    pub counter_set: u8,
    pub vsd: bool,
    pub flush_in_error: bool,
    pub user_index: u32,
    pub wq: Wq,
    /// WQEs consumed (16-bit `wqe_counter`).
    pub consumer: u16,
    /// Receive counter last read from the doorbell record.
    pub posted: u16,
    /// TIRs pointing at this RQ.
    pub users: u32,
    /// Frames delivered into its WQEs.
    pub delivered: u64,
    /// Striding RQ: strides of the current WQE already used.
    pub strides_used: u32,
}

#[derive(Debug, Default)]
pub struct Rqs {
    pub(crate) map: BTreeMap<u32, Rq>,
}

impl Rqs {
    pub fn get(&self, rqn: u32) -> Option<&Rq> {
        self.map.get(&rqn)
    }
    pub fn get_mut(&mut self, rqn: u32) -> Option<&mut Rq> {
        self.map.get_mut(&rqn)
    }
    pub fn count(&self) -> usize {
        self.map.len()
    }
}

fn ctx(fld: F) -> F {
    fld.at(layout::CTX)
}

fn counter_set_ok(dev: &Function, id: u8) -> bool {
    // Set 0 is the function's default set: always valid, counted nowhere.
    id == 0 || dev.q_counters.contains(id)
}

/// CREATE_RQ.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    let wq_at = layout::CTX + rqc::WQ;
    reserved(inp, &[f(0x40, 0xc0)])?;
    reserved_in(inp, layout::CTX, &rqc::RESERVED)?;
    if get(inp, ctx(rqc::STATE)) != STATE_RST as u64 {
        return Err(syn::QUEUE_CREATE_STATE);
    }
    let unsupported = [
        rqc::RLKY_DROP_FCS,
        rqc::MEM_RQ_TYPE,
        rqc::HAIRPIN,
        rqc::RMPN,
        rqc::HAIRPIN_PEER_SQ,
        rqc::HAIRPIN_PEER_VHCA,
    ];
    if unsupported.iter().any(|u| get(inp, ctx(*u)) != 0)
        || !crate::bits::all_zero(inp, &[ctx(rqc::EXTENSIONS)])
    {
        return Err(syn::QUEUE_FEATURE);
    }
    let cqn = get(inp, ctx(rqc::CQN)) as u32;
    if dev.nic.cqs.get(cqn).is_none() {
        return Err(syn::UNKNOWN_CQ);
    }
    let counter_set = get(inp, ctx(rqc::COUNTER_SET_ID)) as u8;
    if !counter_set_ok(dev, counter_set) {
        return Err(syn::UNKNOWN_Q_COUNTER);
    }
    let wq = wq::parse(dev, inp, wq_at, LOG_STRIDE_MIN..=LOG_STRIDE_MAX, false)?;
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_RQ).min(24);
    if dev.nic.rqs.map.len() as u64 >= max {
        return Err(syn::NO_RQ);
    }
    let Some(rqn) = (FIRST_RQN..=0xff_ffff).find(|n| !dev.nic.rqs.map.contains_key(n)) else {
        return Err(syn::NO_RQ);
    };
    wq.grant(dev);
    if let Some(cq) = dev.nic.cqs.get_mut(cqn) {
        cq.users += 1;
    }
    let rq = Rq {
        rqn,
        state: STATE_RST,
        cqn,
        counter_set,
        vsd: get(inp, ctx(rqc::VSD)) != 0,
        flush_in_error: get(inp, ctx(rqc::FLUSH_IN_ERROR_EN)) != 0,
        user_index: get(inp, ctx(rqc::USER_INDEX)) as u32,
        wq,
        consumer: 0,
        posted: 0,
        users: 0,
        delivered: 0,
        strides_used: 0,
    };
    dev.nic.rqs.map.insert(rqn, rq);
    // create_rq_out: rqn at bit 0x48.
    set(out, f(0x48, 0x18), rqn as u64);
    Ok(())
}

/// MODIFY_RQ: `rq_state` (bit 0x40) must be the current state; new state
/// from `ctx.state`; vsd and counter_set_id modifiable through the bitmask.
pub fn modify(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x44, 4), f(0x60, 0x20), f(0xc0, 0x40)])?;
    let mask = get(inp, f(0x80, 0x40));
    if mask & !(MODIFY_VSD | MODIFY_COUNTER_SET_ID) != 0 {
        return Err(syn::QUEUE_MODIFY_FIELD);
    }
    let rqn = get(inp, f(0x48, 0x18)) as u32;
    let cur = get(inp, f(0x40, 4)) as u8;
    let next = get(inp, ctx(rqc::STATE)) as u8;
    let counter_set = get(inp, ctx(rqc::COUNTER_SET_ID)) as u8;
    if mask & MODIFY_COUNTER_SET_ID != 0 && !counter_set_ok(dev, counter_set) {
        return Err(syn::UNKNOWN_Q_COUNTER);
    }
    let Some(rq) = dev.nic.rqs.map.get_mut(&rqn) else {
        return Err(syn::UNKNOWN_RQ);
    };
    if rq.state != cur || !transition_allowed(cur, next) {
        return Err(syn::QUEUE_STATE);
    }
    if mask & MODIFY_VSD != 0 {
        rq.vsd = get(inp, ctx(rqc::VSD)) != 0;
    }
    if mask & MODIFY_COUNTER_SET_ID != 0 {
        rq.counter_set = counter_set;
    }
    rq.state = next;
    if next == STATE_RST {
        rq.consumer = 0;
        rq.posted = 0;
        rq.strides_used = 0;
    }
    if next == STATE_ERR && cur != STATE_ERR {
        crate::datapath::rx::flush(dev, rqn);
    }
    Ok(())
}

fn release(dev: &mut Function, rq: &Rq, why: Revoked) {
    rq.wq.revoke(dev, why);
    if let Some(cq) = dev.nic.cqs.get_mut(rq.cqn) {
        cq.users = cq.users.saturating_sub(1);
    }
}

/// DESTROY_RQ (`destroy_rq_in`: rqn at bit 0x48): refused while a TIR points at it.
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let rqn = get(inp, f(0x48, 0x18)) as u32;
    match dev.nic.rqs.map.get(&rqn) {
        None => return Err(syn::UNKNOWN_RQ),
        Some(rq) if rq.users != 0 || dev.nic.rqts.uses_rq(rqn) => return Err(syn::RQ_IN_USE),
        Some(_) => {}
    }
    if let Some(rq) = dev.nic.rqs.map.remove(&rqn) {
        release(dev, &rq, Revoked::TakenBack);
    }
    dev.faults.queues.rq_gone(rqn);
    Ok(())
}

pub fn destroy_all(dev: &mut Function) {
    let rqs = std::mem::take(&mut dev.nic.rqs.map);
    for rq in rqs.values() {
        release(dev, rq, Revoked::Disabled);
    }
    dev.faults.queues.queues_gone();
}

/// QUERY_RQ (`query_rq_out`: context at 0x20).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    let wq_at = layout::CTX + rqc::WQ;
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let Some(rq) = dev.nic.rqs.map.get(&(get(inp, f(0x48, 0x18)) as u32)) else {
        return Err(syn::UNKNOWN_RQ);
    };
    set(out, ctx(rqc::VSD), rq.vsd as u64);
    set(out, ctx(rqc::STATE), rq.state as u64);
    set(out, ctx(rqc::FLUSH_IN_ERROR_EN), rq.flush_in_error as u64);
    set(out, ctx(rqc::USER_INDEX), rq.user_index as u64);
    set(out, ctx(rqc::CQN), rq.cqn as u64);
    set(out, ctx(rqc::COUNTER_SET_ID), rq.counter_set as u64);
    rq.wq.write(out, wq_at, rq.consumer as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rqc` written by hand (mlx5_ifc.h `mlx5_ifc_rqc_bits`): vsd (bit 3:
    /// byte 0, 0x10), state 3 (byte 1, 0x30), flush_in_error_en (bit 0xd:
    /// byte 1, 0x04), cqn 0x81 (bytes 0x09..0x0c), counter_set_id 2 (byte 0x0c).
    #[test]
    fn rqc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0x30];
        c[0x00] = 0x10;
        c[0x01] = 0x34;
        c[0x0b] = 0x81;
        c[0x0c] = 0x02;
        assert_eq!(get(&c, rqc::VSD), 1);
        assert_eq!(get(&c, rqc::STATE), 3);
        assert_eq!(get(&c, rqc::FLUSH_IN_ERROR_EN), 1);
        assert_eq!(get(&c, rqc::CQN), 0x81);
        assert_eq!(get(&c, rqc::COUNTER_SET_ID), 2);
        assert!(crate::bits::all_zero(&c, &rqc::RESERVED));
    }
}
