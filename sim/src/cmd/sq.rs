//! Send queues: CREATE/MODIFY/DESTROY/QUERY_SQ (`create_sq_in`,
//! `modify_sq_in`, `query_sq_out`, `sqc`, mlx5_ifc.h). States RST (0),
//! RDY (1), ERR (3) (`MLX5_SQC_STATE_*`): created in RST; RST->RDY,
//! RDY->RDY, RDY->ERR, RDY->RST, ERR->RST, RST->RST allowed; ERR->RDY and
//! RST->ERR are not (PRM "SQ State Machine"). Moving to RST resets the
//! ring's counters. The transmit engine is [`crate::datapath::tx`].
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::wq::{self, Wq};
use super::{reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::sanitizer::Revoked;
use crate::syndrome::{self as syn, CmdError};

pub const STATE_RST: u8 = 0;
pub const STATE_RDY: u8 = 1;
pub const STATE_ERR: u8 = 3;
/// First SQN handed out.
pub const FIRST_SQN: u32 = 0x1000;
/// log2 of the send WQE basic block (`MLX5_SEND_WQE_BB` = 64).
pub const LOG_WQEBB: u8 = 6;

/// `sqc` fields (bit offsets inside the context).
pub mod sqc {
    use crate::bits::{F, f};
    /// rlky, cd_master, fre.
    pub const RLKY_CD_FRE: F = f(0x0, 3);
    pub const FLUSH_IN_ERROR_EN: F = f(0x3, 1);
    pub const ALLOW_MULTI_PKT_SEND_WQE: F = f(0x4, 1);
    pub const MIN_WQE_INLINE_MODE: F = f(0x5, 3);
    pub const STATE: F = f(0x8, 4);
    /// reg_umr, allow_swp, hairpin, non_wire.
    pub const UMR_SWP_HAIRPIN: F = f(0xc, 4);
    pub const TS_FORMAT: F = f(0x1a, 2);
    pub const USER_INDEX: F = f(0x28, 0x18);
    pub const CQN: F = f(0x48, 0x18);
    /// hairpin_peer_rq, hairpin_peer_vhca, ts_cqe_to_dest_cqn,
    /// packet_pacing_rate_limit_index, qos_queue_group_id.
    pub const HAIRPIN_PEERS: F = f(0x68, 0x18);
    pub const HAIRPIN_VHCA: F = f(0x90, 0x10);
    pub const TS_CQE_TO_DEST: F = f(0xc8, 0x18);
    pub const RATE_LIMIT_INDEX: F = f(0xf0, 0x10);
    pub const TIS_LST_SZ: F = f(0x100, 0x10);
    pub const QOS_QUEUE_GROUP: F = f(0x110, 0x10);
    pub const TIS_NUM_0: F = f(0x168, 0x18);
    pub const RESERVED: [F; 12] = [
        f(0x10, 0xa),
        f(0x1c, 4),
        f(0x20, 8),
        f(0x40, 8),
        f(0x60, 8),
        f(0x80, 0x10),
        f(0xa0, 0x20),
        f(0xc0, 8),
        f(0xe0, 0x10),
        f(0x120, 0x20),
        f(0x140, 0x20),
        f(0x160, 8),
    ];
    /// The wq context inside `sqc`.
    pub const WQ: usize = 0x30;
}

/// Byte offsets in `create_sq_in` / `modify_sq_in` / `query_sq_out`.
pub mod layout {
    pub const CTX: usize = 0x20;
}

#[derive(Debug, Clone)]
pub struct Sq {
    pub sqn: u32,
    pub state: u8,
    pub cqn: u32,
    /// The SQ's TIS (none: it can post NOPs only).
    pub tisn: Option<u32>,
    pub user_index: u32,
    pub flush_in_error: bool,
    /// `min_wqe_inline_mode` of the context (`MLX5_INLINE_MODE_*`).
    pub min_inline: u8,
    /// `allow_multi_pkt_send_wqe`: legacy MPW sessions may be posted.
    pub allow_mpw: bool,
    pub wq: Wq,
    /// WQEBBs consumed (16-bit counter, the `wqe_index` of the next WQE).
    pub consumer: u16,
    /// WQEs completed with error or flushed.
    pub errors: u64,
}

#[derive(Debug, Default)]
pub struct Sqs {
    pub(crate) map: BTreeMap<u32, Sq>,
}

impl Sqs {
    pub fn get(&self, sqn: u32) -> Option<&Sq> {
        self.map.get(&sqn)
    }
    pub fn get_mut(&mut self, sqn: u32) -> Option<&mut Sq> {
        self.map.get_mut(&sqn)
    }
    pub fn uses_uar(&self, uar: u32) -> bool {
        self.map.values().any(|s| s.wq.uar == uar)
    }
    pub fn uses_tis(&self, tisn: u32) -> bool {
        self.map.values().any(|s| s.tisn == Some(tisn))
    }
    pub fn count(&self) -> usize {
        self.map.len()
    }
}

fn ctx(fld: F) -> F {
    fld.at(layout::CTX)
}

/// CREATE_SQ.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    let wq_at = layout::CTX + sqc::WQ;
    reserved(inp, &[f(0x40, 0xc0)])?;
    reserved_in(inp, layout::CTX, &sqc::RESERVED)?;
    if get(inp, ctx(sqc::STATE)) != STATE_RST as u64 {
        return Err(syn::QUEUE_CREATE_STATE);
    }
    // `allow_multi_pkt_send_wqe` only where the part has legacy MPW
    // (`multi_pkt_send_wqe`): it is what lets the SQ post MPW sessions.
    let allow_mpw = get(inp, ctx(sqc::ALLOW_MULTI_PKT_SEND_WQE)) != 0;
    if allow_mpw && !dev.personality.caps().legacy_mpw {
        return Err(syn::QUEUE_FEATURE);
    }
    let unsupported = [
        sqc::RLKY_CD_FRE,
        sqc::UMR_SWP_HAIRPIN,
        sqc::HAIRPIN_PEERS,
        sqc::HAIRPIN_VHCA,
        sqc::TS_CQE_TO_DEST,
        sqc::RATE_LIMIT_INDEX,
        sqc::QOS_QUEUE_GROUP,
    ];
    if unsupported.iter().any(|u| get(inp, ctx(*u)) != 0) {
        return Err(syn::QUEUE_FEATURE);
    }
    // log_max_tis_per_sq is 0: at most one TIS. An SQ without one (Linux's
    // ICOSQ) posts only NOPs: its SENDs fail (`datapath::tx`).
    let tisn = match get(inp, ctx(sqc::TIS_LST_SZ)) {
        0 if get(inp, ctx(sqc::TIS_NUM_0)) != 0 => return Err(syn::TIS_LIST),
        0 => None,
        1 => {
            let tisn = get(inp, ctx(sqc::TIS_NUM_0)) as u32;
            if dev.nic.tises.get(tisn).is_none() {
                return Err(syn::UNKNOWN_TIS);
            }
            Some(tisn)
        }
        _ => return Err(syn::TIS_LIST),
    };
    let cqn = get(inp, ctx(sqc::CQN)) as u32;
    if dev.nic.cqs.get(cqn).is_none() {
        return Err(syn::UNKNOWN_CQ);
    }
    let wq = wq::parse(dev, inp, wq_at, LOG_WQEBB..=LOG_WQEBB, true)?;
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_SQ).min(24);
    if dev.nic.sqs.map.len() as u64 >= max {
        return Err(syn::NO_SQ);
    }
    let Some(sqn) = (FIRST_SQN..=0xff_ffff).find(|n| !dev.nic.sqs.map.contains_key(n)) else {
        return Err(syn::NO_SQ);
    };
    wq.grant(dev);
    if let Some(cq) = dev.nic.cqs.get_mut(cqn) {
        cq.users += 1;
    }
    let sq = Sq {
        sqn,
        state: STATE_RST,
        cqn,
        tisn,
        user_index: get(inp, ctx(sqc::USER_INDEX)) as u32,
        flush_in_error: get(inp, ctx(sqc::FLUSH_IN_ERROR_EN)) != 0,
        min_inline: get(inp, ctx(sqc::MIN_WQE_INLINE_MODE)) as u8,
        allow_mpw,
        wq,
        consumer: 0,
        errors: 0,
    };
    dev.nic.sqs.map.insert(sqn, sq);
    // create_sq_out: sqn at bit 0x48.
    set(out, f(0x48, 0x18), sqn as u64);
    Ok(())
}

/// Whether `from -> to` is a transition the SQ/RQ state machine allows.
pub fn transition_allowed(from: u8, to: u8) -> bool {
    matches!(
        (from, to),
        (STATE_RST, STATE_RST)
            | (STATE_RST, STATE_RDY)
            | (STATE_RDY, STATE_RDY)
            | (STATE_RDY, STATE_ERR)
            | (STATE_RDY, STATE_RST)
            | (STATE_ERR, STATE_RST)
            | (STATE_ERR, STATE_ERR)
    )
}

/// MODIFY_SQ: `sq_state` (bit 0x40) must be the current state; the new
/// state is `ctx.state`. No field is modifiable through modify_bitmask.
pub fn modify(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x44, 4), f(0x60, 0x20), f(0xc0, 0x40)])?;
    if get(inp, f(0x80, 0x40)) != 0 {
        return Err(syn::QUEUE_MODIFY_FIELD);
    }
    let sqn = get(inp, f(0x48, 0x18)) as u32;
    let cur = get(inp, f(0x40, 4)) as u8;
    let next = get(inp, ctx(sqc::STATE)) as u8;
    let Some(sq) = dev.nic.sqs.map.get_mut(&sqn) else {
        return Err(syn::UNKNOWN_SQ);
    };
    if sq.state != cur || !transition_allowed(cur, next) {
        return Err(syn::QUEUE_STATE);
    }
    sq.state = next;
    if next == STATE_RST {
        sq.consumer = 0;
        dev.faults.queues.sq_reset(sqn);
    }
    if next == STATE_ERR && cur != STATE_ERR {
        crate::datapath::tx::flush(dev, sqn);
    }
    Ok(())
}

fn release(dev: &mut Function, sq: &Sq, why: Revoked) {
    sq.wq.revoke(dev, why);
    if let Some(cq) = dev.nic.cqs.get_mut(sq.cqn) {
        cq.users = cq.users.saturating_sub(1);
    }
}

/// DESTROY_SQ (`destroy_sq_in`: sqn at bit 0x48).
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let sqn = get(inp, f(0x48, 0x18)) as u32;
    let Some(sq) = dev.nic.sqs.map.remove(&sqn) else {
        return Err(syn::UNKNOWN_SQ);
    };
    release(dev, &sq, Revoked::TakenBack);
    dev.nic.tx_pending.retain(|n| *n != sqn);
    dev.faults.queues.sq_gone(sqn);
    Ok(())
}

pub fn destroy_all(dev: &mut Function) {
    let sqs = std::mem::take(&mut dev.nic.sqs.map);
    for sq in sqs.values() {
        release(dev, sq, Revoked::Disabled);
    }
    dev.nic.tx_pending.clear();
    dev.faults.queues.queues_gone();
}

/// QUERY_SQ (`query_sq_out`: context at 0x20).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    let wq_at = layout::CTX + sqc::WQ;
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let Some(sq) = dev.nic.sqs.map.get(&(get(inp, f(0x48, 0x18)) as u32)) else {
        return Err(syn::UNKNOWN_SQ);
    };
    set(out, ctx(sqc::FLUSH_IN_ERROR_EN), sq.flush_in_error as u64);
    set(out, ctx(sqc::MIN_WQE_INLINE_MODE), sq.min_inline as u64);
    set(out, ctx(sqc::ALLOW_MULTI_PKT_SEND_WQE), sq.allow_mpw as u64);
    set(out, ctx(sqc::STATE), sq.state as u64);
    set(out, ctx(sqc::USER_INDEX), sq.user_index as u64);
    set(out, ctx(sqc::CQN), sq.cqn as u64);
    set(out, ctx(sqc::TIS_LST_SZ), sq.tisn.is_some() as u64);
    set(out, ctx(sqc::TIS_NUM_0), sq.tisn.unwrap_or(0) as u64);
    sq.wq.write(out, wq_at, sq.consumer as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sqc` written by hand (mlx5_ifc.h `mlx5_ifc_sqc_bits`):
    /// flush_in_error_en (bit 3: byte 0, 0x10), min_wqe_inline_mode 1
    /// (bits 5..8: byte 0, 0x01), state 1 (bits 8..0xc: byte 1, 0x10),
    /// cqn 0x80 (bytes 0x09..0x0c), tis_lst_sz 1 (bytes 0x20..0x22),
    /// tis_num_0 0x3000 (bytes 0x2d..0x30).
    #[test]
    fn sqc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0x30];
        c[0x00] = 0x11;
        c[0x01] = 0x10;
        c[0x0b] = 0x80;
        c[0x21] = 0x01;
        c[0x2e] = 0x30;
        assert_eq!(get(&c, sqc::FLUSH_IN_ERROR_EN), 1);
        assert_eq!(get(&c, sqc::MIN_WQE_INLINE_MODE), 1);
        assert_eq!(get(&c, sqc::STATE), 1);
        assert_eq!(get(&c, sqc::CQN), 0x80);
        assert_eq!(get(&c, sqc::TIS_LST_SZ), 1);
        assert_eq!(get(&c, sqc::TIS_NUM_0), 0x3000);
        assert!(crate::bits::all_zero(&c, &sqc::RESERVED));
    }

    #[test]
    fn state_machine() {
        assert!(transition_allowed(STATE_RST, STATE_RDY));
        assert!(transition_allowed(STATE_ERR, STATE_RST));
        assert!(!transition_allowed(STATE_ERR, STATE_RDY));
        assert!(!transition_allowed(STATE_RST, STATE_ERR));
        assert!(!transition_allowed(STATE_RDY, 2));
    }
}
