//! Legacy multi-packet send WQEs (PRM "Multi-Packet Send WQE", the
//! ConnectX-4 Lx form that "Enhanced Multi-Packet Send WQE" replaced):
//! opcode `MLX5_OPCODE_LSO` (0x0e, device.h) with opcode modifier 1 (the
//! control segment's `opmod_idx_opcode` bits 31:24), on parts with
//! `per_protocol_networking_offload_caps.multi_pkt_send_wqe` and SQs
//! created with `sqc.allow_multi_pkt_send_wqe` (mlx5_ifc.h). One control
//! segment, one Ethernet segment whose `mss` is the length of every frame
//! of the session and whose checksum flags apply to each, then either
//!
//! - one data segment per frame (`struct mlx5_wqe_data_seg`: byte_count,
//!   lkey, addr), each `byte_count` equal to `mss`; or
//! - one inline data segment (`struct mlx5_wqe_inline_seg`: byte_count
//!   with `MLX5_INLINE_SEG` bit 31, the bytes from offset 4) holding the
//!   frames back to back, `byte_count` a multiple of `mss`.
//!
//! The rules the engine checks before any frame is sent (a malformed
//! session sends nothing): no inline headers, no VLAN insert, no
//! software-parser offsets and only the L3/L4 checksum flags in the
//! Ethernet segment; `mss` 14 bytes or more and no longer than the port
//! takes (MTU + 18); 1 to [`MAX_FRAMES`] frames; pointer and inline
//! segments never mixed, and no segment after the inline one; a segment
//! count that is exactly what the frames take. Violations complete the
//! WQE with LOCAL_QP_OP (segment layout, an offload the session cannot
//! carry, too many frames) or LOCAL_LENGTH (a length). The frames'
//! headers come from the frames themselves: the part's inline-header rule
//! (ConnectX-4 Lx: L2, from the vport context) holds for SEND WQEs only,
//! as the legacy MPW of DPDK's mlx5 PMD, which posts its sessions with no
//! inline header on that part, relies on. Then the frames go out in order;
//! an lkey or address the memory checks refuse stops the session there
//! with LOCAL_PROT (the frames before it are on the wire). The requester
//! CQE's byte count is the session's bytes.
#![deny(unsafe_code)]

use crate::cmd::cq::cqe;
use crate::function::Function;

use super::empw::{Src, send_frame};
use super::tx::{CS_L3, CS_L4, Ctx, DS, ETH_HLEN, EthSeg, INLINE_SEG};

/// Opcode modifier of an MPW WQE (`MLX5_OPC_MOD_MPW` in DPDK's mlx5_prm.h).
pub const OPC_MOD_MPW: u8 = 0x01;

/// Frames a session can hold: a pointer session's segments fill at most
/// two basic blocks (control, Ethernet and six data segments), the count
/// DPDK's mlx5 PMD sends (`MLX5_MPW_MAX_PACKETS`, also its inline bound).
pub const MAX_FRAMES: usize = 6;

/// Send the frames of the MPW session `wqe` (its `ds` segments, control
/// first) with the Ethernet segment `eth`. Returns the session's bytes,
/// or the CQE syndrome.
pub(super) fn send(dev: &mut Function, ctx: &Ctx, wqe: &[u8], eth: &EthSeg) -> Result<usize, u8> {
    if eth.swp != 0 || eth.cs_flags & !(CS_L3 | CS_L4) != 0 || eth.ihs != 0 || eth.vlan.is_some() {
        return Err(cqe::SYN_LOCAL_QP_OP);
    }
    let len = eth.mss as usize;
    if !(ETH_HLEN..=ctx.max_frame).contains(&len) {
        return Err(cqe::SYN_LOCAL_LENGTH);
    }
    let segs = &wqe[2 * DS..];
    let Some(first) = segs.get(..DS) else {
        return Err(cqe::SYN_LOCAL_QP_OP);
    };
    let word = |d: &[u8], at: usize| u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    let raw = word(first, 0);
    // Where the frames are: inline (offset in the WQE) or pointed to
    // (the data segments, checked below).
    let (count, inline) = if raw & INLINE_SEG != 0 {
        let total = (raw & !INLINE_SEG) as usize;
        if total == 0 || !total.is_multiple_of(len) {
            return Err(cqe::SYN_LOCAL_LENGTH);
        }
        let count = total / len;
        // The inline segment is the session's last: exactly the segments
        // its bytes take.
        if (4 + total).div_ceil(DS) != segs.len() / DS {
            return Err(cqe::SYN_LOCAL_LENGTH);
        }
        (count, Some(2 * DS + 4))
    } else {
        let count = segs.len() / DS;
        for d in segs.chunks_exact(DS) {
            let n = word(d, 0);
            if n & INLINE_SEG != 0 {
                return Err(cqe::SYN_LOCAL_QP_OP);
            }
            if n as usize != len {
                return Err(cqe::SYN_LOCAL_LENGTH);
            }
        }
        (count, None)
    };
    if count == 0 || count > MAX_FRAMES {
        return Err(cqe::SYN_LOCAL_QP_OP);
    }
    let up = dev.phys_port.oper_up();
    let mut bytes = 0;
    for i in 0..count {
        let src = match inline {
            Some(off) => Src::Inline(off + i * len),
            None => {
                let d = &segs[i * DS..(i + 1) * DS];
                Src::Pointer(word(d, 4), (word(d, 8) as u64) << 32 | word(d, 12) as u64)
            }
        };
        // The session was refused above if it asked for a VLAN insert.
        send_frame(dev, ctx, wqe, eth, src, len, up)?;
        bytes += len;
    }
    dev.nic.wire.stats.tx_mpw_sessions += 1;
    Ok(bytes)
}
