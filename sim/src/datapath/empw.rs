//! Enhanced multi-packet send WQEs (PRM "Enhanced Multi-Packet Send WQE";
//! opcode `MLX5_OPCODE_ENHANCED_MPSW` 0x29, device.h; capability
//! `per_protocol_networking_offload_caps.enhanced_multi_pkt_send_wqe`,
//! mlx5_ifc.h): one control segment, one Ethernet segment whose offloads
//! apply to every frame of the session, then one segment run per frame:
//!
//! - a data segment (`struct mlx5_wqe_data_seg`, 16 bytes: byte_count,
//!   lkey, addr) points at a whole frame;
//! - an inline data segment (`struct mlx5_wqe_inline_seg`: byte_count with
//!   `MLX5_INLINE_SEG` bit 31 set, the frame's bytes from offset 4) carries
//!   a whole frame in the WQE, padded to the next 16 bytes.
//!
//! The session rules the engine checks, before any frame is sent (a
//! malformed session sends nothing): the Ethernet segment has no inline
//! headers, no MSS (no LSO in a session), no software-parser offsets, and
//! only the L3/L4 checksum flags; at least one frame; every frame 14 bytes
//! or more and no longer than the port takes (MTU + 18, less the tag the
//! engine inserts); an inline frame lies inside the WQE; a pointed-to
//! frame only when the inline rule asks for no inline headers (a part or
//! SQ that requires them can send only inline frames in a session).
//! Violations complete the WQE with LOCAL_QP_OP (segment layout, rule) or
//! LOCAL_LENGTH (a length). Then the frames go out in order, each with the
//! session's VLAN insert and checksums; an lkey or address the memory
//! checks refuse stops the session there with LOCAL_PROT (the frames
//! before it are on the wire, as a device that fetches frame by frame
//! does). The requester CQE's byte count is the session's bytes.
#![deny(unsafe_code)]

use crate::cmd::cq::cqe;
use crate::function::Function;
use crate::sanitizer::Purpose;

use super::tx::{
    CS_L3, CS_L4, Ctx, DS, ETH_HLEN, EthSeg, INLINE_SEG, MIN_FRAME, VLAN_HLEN, insert_vlan,
};
use super::{csum, frame};

/// One frame of a session: inline (offset of its bytes in the WQE) or
/// pointed to (lkey, address).
#[derive(Clone, Copy)]
pub(super) enum Src {
    Inline(usize),
    Pointer(u32, u64),
}

/// Frames a session can hold: a WQE has at most 63 segments, two of them
/// control and Ethernet.
const MAX_FRAMES: usize = 61;

/// Send the frames of the session `wqe` (its `ds` segments, control first)
/// with the Ethernet segment `eth`. Returns the session's bytes, or the
/// CQE syndrome.
pub(super) fn send(dev: &mut Function, ctx: &Ctx, wqe: &[u8], eth: &EthSeg) -> Result<usize, u8> {
    if eth.swp != 0 || eth.cs_flags & !(CS_L3 | CS_L4) != 0 || eth.mss != 0 || eth.ihs != 0 {
        return Err(cqe::SYN_LOCAL_QP_OP);
    }
    let limit = ctx.max_frame - if eth.vlan.is_some() { VLAN_HLEN } else { 0 };
    let mut frames = [(Src::Inline(0), 0usize); MAX_FRAMES];
    let mut count = 0;
    let mut at = 2 * DS;
    while at + DS <= wqe.len() {
        let raw = u32::from_be_bytes([wqe[at], wqe[at + 1], wqe[at + 2], wqe[at + 3]]);
        let len = (raw & !INLINE_SEG) as usize;
        if !(ETH_HLEN..=limit).contains(&len) {
            return Err(cqe::SYN_LOCAL_LENGTH);
        }
        let src = if raw & INLINE_SEG != 0 {
            let span = (4 + len).div_ceil(DS) * DS;
            if at + span > wqe.len() {
                return Err(cqe::SYN_LOCAL_LENGTH);
            }
            let src = Src::Inline(at + 4);
            at += span;
            src
        } else {
            if ctx.inline_mode != 0 {
                return Err(cqe::SYN_LOCAL_QP_OP);
            }
            let d = &wqe[at..at + DS];
            let lkey = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
            let addr = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
            at += DS;
            Src::Pointer(lkey, addr)
        };
        // 63 segments leave room for 61 frames.
        let Some(slot) = frames.get_mut(count) else {
            return Err(cqe::SYN_LOCAL_QP_OP);
        };
        *slot = (src, len);
        count += 1;
    }
    if count == 0 {
        return Err(cqe::SYN_LOCAL_QP_OP);
    }
    let up = dev.phys_port.oper_up();
    let mut bytes = 0;
    for &(src, len) in &frames[..count] {
        send_frame(dev, ctx, wqe, eth, src, len, up)?;
        bytes += len;
    }
    dev.nic.wire.stats.tx_empw_sessions += 1;
    Ok(bytes)
}

/// Send one frame of a session (this module's or a legacy MPW one,
/// [`super::mpw`]): fetch or copy its `len` bytes, apply the session's VLAN
/// insert and checksums, pad and count it. A fetch the memory checks refuse
/// is the CQE syndrome LOCAL_PROT.
pub(super) fn send_frame(
    dev: &mut Function,
    ctx: &Ctx,
    wqe: &[u8],
    eth: &EthSeg,
    src: Src,
    len: usize,
    up: bool,
) -> Result<(), u8> {
    let mut buf = dev.nic.wire.buffer();
    buf.clear();
    match src {
        Src::Inline(off) => buf.extend_from_slice(&wqe[off..off + len]),
        Src::Pointer(lkey, addr) => {
            let fetched = dev
                .mkeys
                .translate(lkey, ctx.wq.pd, addr, len as u64, false)
                .ok()
                .and_then(|a| {
                    buf.resize(len, 0);
                    dev.bus.read(a, &mut buf, Purpose::Packet).ok()
                });
            if fetched.is_none() {
                dev.nic.wire.recycle_one(buf);
                return Err(cqe::SYN_LOCAL_PROT);
            }
        }
    }
    if let Some((tpid, tci)) = eth.vlan {
        insert_vlan(&mut buf, tpid, tci);
    }
    if eth.cs_flags != 0 {
        let h = frame::parse(&buf);
        if eth.cs_flags & CS_L3 != 0 {
            csum::fill_ipv4(&mut buf, &h);
        }
        if eth.cs_flags & CS_L4 != 0 {
            csum::fill_l4(&mut buf, &h);
        }
    }
    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
    dev.vport.counters.count_tx(&buf);
    dev.nic.wire.send(buf, up);
    Ok(())
}
