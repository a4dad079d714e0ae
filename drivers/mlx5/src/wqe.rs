//! Work queue entry segments (PRM "Send WQE Format", "Receive WQE Format";
//! `struct mlx5_wqe_ctrl_seg`, `mlx5_wqe_eth_seg`, `mlx5_wqe_data_seg` in
//! qp.h). A send WQE is a run of 64-byte basic blocks (WQEBBs) made of
//! 16-byte segments ("DS"); a cyclic receive WQE is data segments only.

/// Bytes in a send basic block.
pub const WQEBB: usize = 64;
/// Bytes in a segment (the DS unit of `qpn_ds`).
pub const DS: usize = 16;

use crate::frame::Geometry;

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
    /// `MLX5_OPCODE_NOP`, `MLX5_OPCODE_SEND`, `MLX5_OPCODE_LSO`.
    pub const OPCODE_NOP: u8 = 0x00;
    pub const OPCODE_SEND: u8 = 0x0a;
    pub const OPCODE_LSO: u8 = 0x0e;
}

/// `struct mlx5_wqe_eth_seg` (16 bytes, inline headers continue after it).
pub mod eth {
    /// cs_flags: `MLX5_ETH_WQE_L3_CSUM` / `MLX5_ETH_WQE_L4_CSUM`.
    pub const CS_FLAGS: usize = 0x04;
    pub const CS_L3: u8 = 1 << 6;
    pub const CS_L4: u8 = 1 << 7;
    /// mss (be16, LSO only).
    pub const MSS: usize = 0x06;
    /// inline_hdr.sz (be16) and the first two inline bytes.
    pub const INLINE_HDR_SZ: usize = 0x0c;
    pub const INLINE_HDR_START: usize = 0x0e;
    /// Inline bytes that fit in the segment itself.
    pub const INLINE_IN_SEG: usize = 2;
    /// The same 4 bytes as `insert`: type (be16, `MLX5_ETH_WQE_INSERT_VLAN`)
    /// and vlan_tci (be16), used instead of inline headers.
    pub const INSERT_TYPE: usize = 0x0c;
    pub const INSERT_VLAN: u16 = 1 << 15;
    pub const INSERT_TCI: usize = 0x0e;
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
    /// The L2 header (with its VLAN tag) inline (`MLX5_INLINE_MODE_L2`).
    L2,
    /// L2 and the IP header (`MLX5_INLINE_MODE_IP`).
    Ip,
    /// L2, IP and the TCP/UDP header (`MLX5_INLINE_MODE_TCP_UDP`).
    TcpUdp,
}

impl InlineMode {
    /// Resolve the requirement; an unknown value is returned as the error.
    pub fn resolve(cap_wqe_inline_mode: u8, vport_min_mode: u8) -> Result<InlineMode, u8> {
        let vport = |m: u8| match m {
            0 => Ok(InlineMode::None),
            1 => Ok(InlineMode::L2),
            2 => Ok(InlineMode::Ip),
            3 => Ok(InlineMode::TcpUdp),
            other => Err(other),
        };
        match cap_wqe_inline_mode {
            0 => Ok(InlineMode::L2),
            1 => vport(vport_min_mode),
            2 => Ok(InlineMode::None),
            other => Err(other),
        }
    }

    /// Exactly the header bytes this mode requires inline for a frame of
    /// `len` bytes with headers `g`: the headers the mode names that the
    /// frame has (a non-IP frame needs only its L2 header in IP mode).
    pub fn required(self, g: &Geometry, len: usize) -> usize {
        let n = match self {
            InlineMode::None => 0,
            InlineMode::L2 => g.l2,
            InlineMode::Ip => g.l2 + g.l3,
            InlineMode::TcpUdp => g.headers(),
        };
        n.min(len)
    }

    /// Header bytes of a frame this mode needs to look at (the most any
    /// frame can require).
    pub fn lookahead(self) -> usize {
        match self {
            InlineMode::None => 0,
            InlineMode::L2 => L2_INLINE,
            InlineMode::Ip | InlineMode::TcpUdp => MAX_HEADERS,
        }
    }

    /// The value for the SQ context's `min_wqe_inline_mode`.
    pub fn sqc_bits(self) -> u32 {
        match self {
            InlineMode::None => 0,
            InlineMode::L2 => 1,
            InlineMode::Ip => 2,
            InlineMode::TcpUdp => 3,
        }
    }
}

/// Longest run of headers a frame can have: Ethernet + VLAN, IPv4 with
/// options (60) or IPv6 (40), TCP with options (60).
pub const MAX_HEADERS: usize = 18 + 60 + 60;

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
        assert_eq!(InlineMode::resolve(1, 2), Ok(InlineMode::Ip));
        assert_eq!(InlineMode::resolve(1, 3), Ok(InlineMode::TcpUdp));
        assert_eq!(InlineMode::resolve(1, 4), Err(4));
        assert_eq!(InlineMode::resolve(3, 0), Err(3));
        let g = Geometry {
            l2: 18,
            net: crate::frame::Net::Ipv4,
            l3: 20,
            transport: crate::frame::Transport::Tcp,
            l4: 32,
        };
        assert_eq!(InlineMode::None.required(&g, 100), 0);
        assert_eq!(InlineMode::L2.required(&g, 100), 18);
        assert_eq!(InlineMode::Ip.required(&g, 100), 38);
        assert_eq!(InlineMode::TcpUdp.required(&g, 100), 70);
        assert_eq!(InlineMode::TcpUdp.required(&g, 50), 50);
        for m in [
            InlineMode::None,
            InlineMode::L2,
            InlineMode::Ip,
            InlineMode::TcpUdp,
        ] {
            assert_eq!(InlineMode::resolve(1, m.sqc_bits() as u8), Ok(m));
        }
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
