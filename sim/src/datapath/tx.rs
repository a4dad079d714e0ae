//! The transmit engine. A send doorbell (UAR +0x800/+0x900, second dword
//! `sqn << 8 | ds`) makes the model read the SQ's doorbell record (dword 1:
//! the producer counter, 16 bits) and execute every WQE from its consumer
//! counter up to it.
//!
//! A WQE (PRM "Send WQE Format"; qp.h): control segment
//! (`struct mlx5_wqe_ctrl_seg`: opmod_idx_opcode, qpn_ds, fm_ce_se at byte
//! 11), Ethernet segment (`struct mlx5_wqe_eth_seg`: cs_flags 4, mss 6,
//! inline_hdr.sz 12, inline bytes from 14, continuing over the following
//! 16-byte segments), data segments (`struct mlx5_wqe_data_seg`:
//! byte_count, lkey, addr). The frame is the inline bytes followed by the
//! data segments' bytes; frames shorter than 60 bytes are padded (as the
//! MAC does).
//!
//! Errors complete the WQE with an error CQE (`MLX5_CQE_REQ_ERR`) carrying
//! `MLX5_CQE_SYNDROME_*`: LOCAL_LENGTH (0x01) for a data segment of 0
//! bytes, inline bytes beyond the WQE or a frame outside 14..=MTU+18 bytes;
//! LOCAL_QP_OP (0x02) for an opcode other than SEND, a wrong wqe_index or
//! qpn, inline data segments, LSO/MSS, or fewer inline header bytes than
//! the part's inline rule requires; LOCAL_PROT (0x04) for an lkey other
//! than the reserved lkey or a data address the bus refuses (the sanitizer
//! records it). The SQ moves to ERR; with `flush_in_error_en` every further
//! posted WQE completes with WR_FLUSH (0x05).
#![deny(unsafe_code)]

use crate::cmd::cq::{self, CQE_SIZE, cqe};
use crate::cmd::pd::RESERVED_LKEY;
use crate::cmd::sq::{LOG_WQEBB, STATE_ERR, STATE_RDY};
use crate::cmd::wq::Wq;
use crate::device::Device;
use crate::sanitizer::Purpose;

use super::frame;

/// `MLX5_OPCODE_SEND`, `MLX5_OPCODE_LSO`.
pub const OPCODE_SEND: u8 = 0x0a;
const WQEBB: usize = 1 << LOG_WQEBB;
const DS: usize = 16;
/// A WQE has at most 63 segments (ds is 6 bits).
const MAX_WQE: usize = 64 * DS;
/// `MLX5_INLINE_SEG`: data segment carrying inline data.
const INLINE_SEG: u32 = 0x8000_0000;
const MIN_FRAME: usize = 60;
const ETH_HLEN: usize = 14;

/// Record a send doorbell; true when the SQ now has work pending.
pub fn doorbell(dev: &mut Device, page: u32, qpn_ds: u32) -> bool {
    let sqn = qpn_ds >> 8;
    let Some(sq) = dev.nic.sqs.get(sqn) else {
        log::debug!(target: "mlx5_sim::tx", "send doorbell for unknown SQ {sqn:#x} dropped");
        return false;
    };
    if sq.wq.uar != page {
        log::debug!(target: "mlx5_sim::tx", "SQ {sqn:#x} rung on UAR {page}, not its UAR {}: dropped", sq.wq.uar);
        return false;
    }
    if !dev.nic.tx_pending.contains(&sqn) {
        dev.nic.tx_pending.push(sqn);
    }
    true
}

/// What went wrong with a WQE: the CQE syndrome.
struct WqeError(u8);

/// The SQ's fixed parameters, copied out so the engine can borrow the device.
struct Ctx {
    sqn: u32,
    cqn: u32,
    wq: Wq,
    /// Inline mode the part requires (`MLX5_INLINE_MODE_*`).
    inline_mode: u8,
    max_frame: usize,
}

/// Execute the SQ's posted WQEs.
pub fn process(dev: &mut Device, sqn: u32) {
    let Some(sq) = dev.nic.sqs.get(sqn) else {
        return;
    };
    let state = sq.state;
    if state != STATE_RDY && !(state == STATE_ERR && sq.flush_in_error) {
        return;
    }
    let caps = dev.personality.caps();
    let inline_mode = match caps.wqe_inline_mode {
        0 => 1,
        1 => caps.vport_min_inline,
        _ => 0,
    };
    let ctx = Ctx {
        sqn,
        cqn: sq.cqn,
        wq: sq.wq.clone(),
        inline_mode,
        max_frame: dev.port.max_mtu as usize + ETH_HLEN + 4,
    };
    let mut ci = sq.consumer;
    let Some(pc) = producer(dev, &ctx.wq) else {
        return;
    };
    if state == STATE_ERR {
        flush_range(dev, &ctx, &mut ci, pc);
    } else {
        let mut wqe = [0u8; MAX_WQE];
        while ci != pc {
            let posted = pc.wrapping_sub(ci);
            let nbb = match execute(dev, &ctx, ci, posted, &mut wqe) {
                Ok(0) => break,
                Ok(nbb) => nbb,
                Err((nbb, WqeError(syndrome))) => {
                    let nbb = nbb.min(posted);
                    let mut e = [0u8; CQE_SIZE];
                    cq::error_entry(&mut e, cqe::OP_REQ_ERR, syndrome, wqe[3], sqn, ci);
                    cq::post(dev, ctx.cqn, &mut e);
                    ci = ci.wrapping_add(nbb);
                    let flush = match dev.nic.sqs.get_mut(sqn) {
                        Some(sq) => {
                            sq.state = STATE_ERR;
                            sq.errors += 1;
                            sq.flush_in_error
                        }
                        None => false,
                    };
                    log::debug!(target: "mlx5_sim::tx", "SQ {sqn:#x} WQE {ci}: error CQE syndrome {syndrome:#x}, SQ to ERR");
                    if flush {
                        flush_range(dev, &ctx, &mut ci, pc);
                    }
                    break;
                }
            };
            ci = ci.wrapping_add(nbb);
        }
    }
    if let Some(sq) = dev.nic.sqs.get_mut(sqn) {
        sq.consumer = ci;
    }
}

/// The producer counter from the doorbell record (dword 1).
fn producer(dev: &mut Device, wq: &Wq) -> Option<u16> {
    let mut raw = [0u8; 4];
    dev.bus
        .read(wq.dbr + 4, &mut raw, Purpose::DoorbellRecord)
        .ok()?;
    Some(u32::from_be_bytes(raw) as u16)
}

/// Read WQEBB `index` of the ring into `into`.
fn read_wqebb(dev: &mut Device, wq: &Wq, index: u16, into: &mut [u8]) -> bool {
    let off = (index as u64 & (wq.entries() as u64 - 1)) << LOG_WQEBB;
    match wq.addr(off) {
        Some(a) => dev.bus.read(a, into, Purpose::WqBuffer).is_ok(),
        None => false,
    }
}

/// WQEBBs a WQE with `ds` segments occupies (at least one).
fn wqebbs(ds: usize) -> u16 {
    (ds * DS).div_ceil(WQEBB).max(1) as u16
}

/// Complete every WQE from `ci` to `pc` with WR_FLUSH error CQEs (a WQE
/// that claims more WQEBBs than are posted ends the range).
fn flush_range(dev: &mut Device, ctx: &Ctx, ci: &mut u16, pc: u16) {
    let mut ctrl = [0u8; WQEBB];
    while *ci != pc {
        if !read_wqebb(dev, &ctx.wq, *ci, &mut ctrl) {
            return;
        }
        let nbb = wqebbs((ctrl[7] & 0x3f) as usize).min(pc.wrapping_sub(*ci));
        let mut e = [0u8; CQE_SIZE];
        cq::error_entry(
            &mut e,
            cqe::OP_REQ_ERR,
            cqe::SYN_WR_FLUSH,
            ctrl[3],
            ctx.sqn,
            *ci,
        );
        cq::post(dev, ctx.cqn, &mut e);
        if let Some(sq) = dev.nic.sqs.get_mut(ctx.sqn) {
            sq.errors += 1;
        }
        *ci = ci.wrapping_add(nbb);
    }
}

/// Flush the SQ's posted WQEs (MODIFY_SQ to ERR).
pub fn flush(dev: &mut Device, sqn: u32) {
    let Some(sq) = dev.nic.sqs.get(sqn) else {
        return;
    };
    if !sq.flush_in_error {
        return;
    }
    let ctx = Ctx {
        sqn,
        cqn: sq.cqn,
        wq: sq.wq.clone(),
        inline_mode: 0,
        max_frame: 0,
    };
    let mut ci = sq.consumer;
    let Some(pc) = producer(dev, &ctx.wq) else {
        return;
    };
    flush_range(dev, &ctx, &mut ci, pc);
    if let Some(sq) = dev.nic.sqs.get_mut(sqn) {
        sq.consumer = ci;
    }
}

/// Execute the WQE at `ci` (`posted` WQEBBs are posted from it): gather
/// the frame, send it, write the CQE it asks for. Returns its WQEBB count
/// (0: the WQE is not fully posted yet, nothing done), or that count and
/// the error.
fn execute(
    dev: &mut Device,
    ctx: &Ctx,
    ci: u16,
    posted: u16,
    wqe: &mut [u8; MAX_WQE],
) -> Result<u16, (u16, WqeError)> {
    if !read_wqebb(dev, &ctx.wq, ci, &mut wqe[..WQEBB]) {
        wqe[..WQEBB].fill(0);
        return Err((1, WqeError(cqe::SYN_LOCAL_PROT)));
    }
    let ds = (wqe[7] & 0x3f) as usize;
    let nbb = wqebbs(ds);
    if nbb > posted {
        return Ok(0);
    }
    let fail = |s: u8| Err((nbb, WqeError(s)));
    for k in 1..nbb {
        let at = k as usize * WQEBB;
        if !read_wqebb(dev, &ctx.wq, ci.wrapping_add(k), &mut wqe[at..at + WQEBB]) {
            return fail(cqe::SYN_LOCAL_PROT);
        }
    }
    let opcode = wqe[3];
    let wqe_index = u16::from_be_bytes([wqe[1], wqe[2]]);
    let qpn = u32::from_be_bytes([0, wqe[4], wqe[5], wqe[6]]);
    if opcode != OPCODE_SEND || wqe[0] != 0 || wqe_index != ci || qpn != ctx.sqn || ds < 2 {
        return fail(cqe::SYN_LOCAL_QP_OP);
    }
    let eth = &wqe[DS..2 * DS];
    // mss (LSO) belongs to the LSO opcode, not modelled yet.
    if eth[6] != 0 || eth[7] != 0 {
        return fail(cqe::SYN_LOCAL_QP_OP);
    }
    let ihs = u16::from_be_bytes([eth[12], eth[13]]) as usize;
    let inline_start = DS + 14;
    let wqe_len = ds * DS;
    if inline_start + ihs > wqe_len {
        return fail(cqe::SYN_LOCAL_LENGTH);
    }
    let eth_len = if ihs > 2 {
        DS + (ihs - 2).div_ceil(DS) * DS
    } else {
        DS
    };
    let mut buf = dev.nic.wire.buffer();
    buf.extend_from_slice(&wqe[inline_start..inline_start + ihs]);
    let mut seg = DS + eth_len;
    while seg + DS <= wqe_len {
        let d = &wqe[seg..seg + DS];
        let raw_count = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let lkey = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let addr = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
        seg += DS;
        let err = if raw_count & INLINE_SEG != 0 {
            Some(cqe::SYN_LOCAL_QP_OP)
        } else if lkey != RESERVED_LKEY {
            Some(cqe::SYN_LOCAL_PROT)
        } else if raw_count == 0 || buf.len() + raw_count as usize > ctx.max_frame {
            Some(cqe::SYN_LOCAL_LENGTH)
        } else {
            None
        };
        if let Some(s) = err {
            dev.nic.wire.recycle_one(buf);
            return fail(s);
        }
        let start = buf.len();
        buf.resize(start + raw_count as usize, 0);
        if dev
            .bus
            .read(addr, &mut buf[start..], Purpose::Packet)
            .is_err()
        {
            dev.nic.wire.recycle_one(buf);
            return fail(cqe::SYN_LOCAL_PROT);
        }
    }
    if buf.len() < ETH_HLEN || buf.len() > ctx.max_frame {
        dev.nic.wire.recycle_one(buf);
        return fail(cqe::SYN_LOCAL_LENGTH);
    }
    if ctx.inline_mode != 0 {
        let h = frame::parse(&buf);
        if ihs < frame::required_inline(&h, ctx.inline_mode) {
            dev.nic.wire.recycle_one(buf);
            return fail(cqe::SYN_LOCAL_QP_OP);
        }
    }
    let len = buf.len();
    if len < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
    let up = dev.port.oper_up();
    dev.nic.wire.send(buf, up);
    // fm_ce_se bits 3:2: 2 = CQE always, 3 = CQE and event (qp.h
    // MLX5_WQE_CTRL_CQ_UPDATE / _AND_EQE); 0 = only on error.
    if (wqe[11] >> 2) & 3 >= 2 {
        let mut e = [0u8; CQE_SIZE];
        e[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&(len as u32).to_be_bytes());
        e[cqe::QPN..cqe::QPN + 4]
            .copy_from_slice(&(((opcode as u32) << 24) | ctx.sqn).to_be_bytes());
        e[cqe::WQE_COUNTER..cqe::WQE_COUNTER + 2].copy_from_slice(&ci.to_be_bytes());
        e[cqe::OP_OWN] = cqe::OP_REQ << 4;
        cq::post(dev, ctx.cqn, &mut e);
    }
    Ok(nbb)
}
