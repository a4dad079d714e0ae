//! Work queue entry segments (PRM "Send WQE Format", "Receive WQE Format";
//! `struct mlx5_wqe_ctrl_seg`, `mlx5_wqe_eth_seg`, `mlx5_wqe_data_seg` in
//! qp.h). A send WQE is a run of 64-byte basic blocks (WQEBBs) made of
//! 16-byte segments ("DS"); a cyclic receive WQE is data segments only.

/// Bytes in a send basic block.
pub const WQEBB: usize = 64;
/// Bytes in a segment (the DS unit of `qpn_ds`).
pub const DS: usize = 16;

/// `struct mlx5_wqe_ctrl_seg` (16 bytes).
pub mod ctrl {
    /// opmod_idx_opcode: opmod `[31:24]`, wqe_index `[23:8]`, opcode `[7:0]`.
    pub const OPMOD_IDX_OPCODE: usize = 0x00;
    /// qpn_ds: SQN `[31:8]`, DS count `[5:0]`.
    pub const QPN_DS: usize = 0x04;
    /// fm_ce_se: completion mode CE `[3:2]`.
    pub const FM_CE_SE: usize = 0x0b;
    /// `MLX5_WQE_CTRL_CQ_UPDATE`: a CQE for this WQE.
    pub const CE_CQ_UPDATE: u8 = 2 << 2;
    /// `MLX5_OPCODE_NOP`, `MLX5_OPCODE_SEND`.
    pub const OPCODE_NOP: u8 = 0x00;
    pub const OPCODE_SEND: u8 = 0x0a;
}

/// `struct mlx5_wqe_eth_seg` (16 bytes, inline headers continue after it).
pub mod eth {
    /// cs_flags (checksum offloads: issue 6).
    pub const CS_FLAGS: usize = 0x04;
    pub const MSS: usize = 0x06;
    /// inline_hdr.sz (be16) and the first two inline bytes.
    pub const INLINE_HDR_SZ: usize = 0x0c;
    pub const INLINE_HDR_START: usize = 0x0e;
    /// Inline bytes that fit in the segment itself.
    pub const INLINE_IN_SEG: usize = 2;
}

/// `struct mlx5_wqe_data_seg` (16 bytes).
pub mod data {
    pub const BYTE_COUNT: usize = 0x00;
    pub const LKEY: usize = 0x04;
    pub const ADDR: usize = 0x08;
}

/// L2 bytes inlined when the part requires L2 inlining: Ethernet header
/// plus room for one VLAN tag (the minimum the PRM asks for L2 mode).
pub const L2_INLINE: usize = 18;

/// What the transmit WQE must inline, from the Ethernet capability
/// `wqe_inline_mode` (`MLX5_CAP_INLINE_MODE_*`) and, in vport mode, the
/// NIC vport context's `min_wqe_inline_mode` (`MLX5_INLINE_MODE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InlineMode {
    /// Nothing inline (`MLX5_INLINE_MODE_NONE`).
    None,
    /// The L2 header inline (`MLX5_INLINE_MODE_L2`).
    L2,
}

impl InlineMode {
    /// Resolve the requirement, or the mode the driver does not implement
    /// yet (IP / TCP-UDP header inlining come with the offloads).
    pub fn resolve(cap_wqe_inline_mode: u8, vport_min_mode: u8) -> Result<InlineMode, u8> {
        let vport = |m: u8| match m {
            0 => Ok(InlineMode::None),
            1 => Ok(InlineMode::L2),
            other => Err(other),
        };
        match cap_wqe_inline_mode {
            0 => Ok(InlineMode::L2),
            1 => vport(vport_min_mode),
            2 => Ok(InlineMode::None),
            other => Err(other),
        }
    }

    /// Bytes to inline for a frame of `len` bytes.
    pub fn bytes(self, len: usize) -> usize {
        match self {
            InlineMode::None => 0,
            InlineMode::L2 => len.min(L2_INLINE),
        }
    }

    /// The value for the SQ context's `min_wqe_inline_mode`.
    pub fn sqc_bits(self) -> u32 {
        match self {
            InlineMode::None => 0,
            InlineMode::L2 => 1,
        }
    }
}

/// DS count of a send WQE: control + Ethernet segment, the inline bytes
/// past the two that fit in the Ethernet segment, one data segment when
/// bytes remain.
pub const fn send_ds(inline: usize, has_data: bool) -> usize {
    let extra = inline.saturating_sub(eth::INLINE_IN_SEG);
    2 + extra.div_ceil(DS) + has_data as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_mode_resolution() {
        assert_eq!(InlineMode::resolve(0, 3), Ok(InlineMode::L2));
        assert_eq!(InlineMode::resolve(2, 1), Ok(InlineMode::None));
        assert_eq!(InlineMode::resolve(1, 0), Ok(InlineMode::None));
        assert_eq!(InlineMode::resolve(1, 1), Ok(InlineMode::L2));
        assert_eq!(InlineMode::resolve(1, 2), Err(2), "IP mode: issue 6");
        assert_eq!(InlineMode::resolve(3, 0), Err(3));
        assert_eq!(InlineMode::L2.bytes(60), 18);
        assert_eq!(InlineMode::L2.bytes(10), 10);
        assert_eq!(InlineMode::None.bytes(60), 0);
    }

    #[test]
    fn ds_counts() {
        // ctrl + eth(2 inline) + 16 inline + data = 4 DS, one WQEBB.
        assert_eq!(send_ds(18, true), 4);
        assert_eq!(send_ds(0, true), 3);
        assert_eq!(send_ds(2, false), 2);
        assert_eq!(send_ds(18, false), 3);
        assert!(send_ds(18, true) * DS <= WQEBB);
    }
}
