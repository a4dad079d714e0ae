//! Legacy multi-packet send WQE (PRM "Multi-Packet Send WQE", the
//! ConnectX-4 Lx form; capability
//! `per_protocol_networking_offload_caps.multi_pkt_send_wqe` and SQ
//! context bit `sqc.allow_multi_pkt_send_wqe`, mlx5_ifc.h):
//!
//! | offset | segment | contents |
//! |---|---|---|
//! | 0x00 | control (`struct mlx5_wqe_ctrl_seg`) | opmod [`OPC_MOD_MPW`] `[31:24]`, wqe_index, opcode [`ctrl::OPCODE_LSO`]; qpn_ds |
//! | 0x10 | Ethernet (`struct mlx5_wqe_eth_seg`) | cs_flags (byte 4) for every frame, `mss` (bytes 6..8) = every frame's length, nothing inline, no insert |
//! | 0x20 | pointer session: one data segment per frame | byte_count = `mss`, lkey, addr |
//! | 0x20 | inline session: one inline segment | byte_count = frames × `mss` with [`empw::INLINE`], the frames back to back from 0x24 |
//!
//! A session holds 1 to [`MAX_FRAMES`] frames of the same length, all
//! pointed to or all inline (never mixed), and carries no VLAN insert or
//! LSO; its frames need no inline headers whatever the part's inline rule
//! for SEND WQEs.

use super::{DS, ctrl, empw};

/// The opcode modifier of an MPW WQE (`MLX5_OPC_MOD_MPW`).
pub const OPC_MOD_MPW: u8 = 0x01;

/// Frames in one session: a pointer session is then at most two basic
/// blocks (control, Ethernet, six data segments).
pub const MAX_FRAMES: usize = 6;

/// Segments the driver puts in one (inline) session: as an eMPW
/// session, cache-line sized and within `max_wqe_sz_sq`.
pub const SESSION_DS: usize = empw::SESSION_DS;

/// Longest frame the driver inlines: one that fits an empty session.
pub const MAX_INLINE: usize = (SESSION_DS - 2) * DS - 4;

/// The first 8 bytes of the control segment of a session at `wqe_index`
/// with `ds` segments, the SQN shifted into place (`sqn << 8`).
#[inline(always)]
pub const fn ctrl_head_of(wqe_index: u16, sqn8: u32, ds: usize) -> u64 {
    super::ctrl_head_of(wqe_index, ctrl::OPCODE_LSO, sqn8, ds) | (OPC_MOD_MPW as u64) << 56
}

/// Segments of a session of `frames` pointed-to frames.
#[inline(always)]
pub const fn pointer_ds(frames: usize) -> usize {
    2 + frames
}

/// Segments of a session whose inline segment carries `bytes` (4 bytes
/// of `byte_count`, then the frames).
#[inline(always)]
pub const fn inline_ds(bytes: usize) -> usize {
    2 + (4 + bytes).div_ceil(DS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wqe::{CsFlags, data_word, eth_flags_word};

    #[test]
    fn session_words_golden() {
        // Control segment at wqe_index 0x0102, SQN 0x345, 7 segments:
        // byte 0 opmod 0x01, bytes 1..3 index 0x0102, byte 3 opcode 0x0e;
        // bytes 4..7 SQN 0x000345, byte 7 ds 7.
        assert_eq!(
            ctrl_head_of(0x0102, 0x345 << 8, 7).to_be_bytes(),
            [0x01, 0x01, 0x02, 0x0e, 0x00, 0x03, 0x45, 0x07]
        );
        // Ethernet segment bytes 0..8 of a session of 64-byte frames with
        // both checksums: swp offsets 0..4 zero, cs_flags byte 4 = 0xc0
        // (L3 0x40 | L4 0x80), byte 5 zero, mss bytes 6..8 = 0x0040.
        assert_eq!(
            eth_flags_word(CsFlags::of(true, true), 64).to_be_bytes(),
            [0, 0, 0, 0, 0xc0, 0, 0x00, 0x40]
        );
        // A pointer session's data segment, bytes 0..8: byte_count 64,
        // lkey 0x1234.
        assert_eq!(
            data_word(64, 0x1234).to_be_bytes(),
            [0, 0, 0, 0x40, 0, 0, 0x12, 0x34]
        );
        // An inline session of three 64-byte frames: byte_count
        // 0x800000c0 (192 | MLX5_INLINE_SEG); 196 bytes in 13 segments
        // after control and Ethernet: 15.
        assert_eq!((192 | empw::INLINE).to_be_bytes(), [0x80, 0, 0, 0xc0]);
        assert_eq!(inline_ds(192), 15);
        // Six pointed-to frames: 8 segments, two basic blocks.
        assert_eq!(pointer_ds(MAX_FRAMES), 8);
        assert_eq!(MAX_INLINE, 924);
    }
}
