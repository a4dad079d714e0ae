//! Work queue entry segments (PRM "Send WQE Format", "Receive WQE Format";
//! `struct mlx5_wqe_ctrl_seg`, `mlx5_wqe_eth_seg`, `mlx5_wqe_data_seg` in
//! qp.h). A send WQE is a run of 64-byte basic blocks (WQEBBs) made of
//! 16-byte segments ("DS"); a cyclic receive WQE is data segments only.

/// Bytes in a send basic block.
pub const WQEBB: usize = 64;
/// Bytes in a segment (the DS unit of `qpn_ds`).
pub const DS: usize = 16;

use bitfield_struct::bitfield;

use crate::frame::Geometry;

pub mod mpw;

/// `struct mlx5_wqe_ctrl_seg` (16 bytes).
pub mod ctrl {
    /// opmod_idx_opcode: opmod `[31:24]`, wqe_index `[23:8]`, opcode `[7:0]`.
    pub const OPMOD_IDX_OPCODE: usize = 0x00;
    /// qpn_ds: SQN `[31:8]`, DS count `[5:0]` (`MLX5_WQE_CTRL_DS_MASK`).
    pub const QPN_DS: usize = 0x04;
    pub const DS_MASK: u32 = 0x3f;
    /// fm_ce_se ([`super::FmCeSe`]).
    pub const FM_CE_SE: usize = 0x0b;
    /// `MLX5_OPCODE_NOP`, `MLX5_OPCODE_SEND`, `MLX5_OPCODE_LSO` (also a
    /// legacy multi-packet send session with opmod 1: [`super::mpw`]).
    pub const OPCODE_NOP: u8 = 0x00;
    pub const OPCODE_SEND: u8 = 0x0a;
    pub const OPCODE_LSO: u8 = 0x0e;
    /// `MLX5_OPCODE_ENHANCED_MPSW` (device.h): an enhanced multi-packet
    /// send session ([`super::empw`]).
    pub const OPCODE_ENHANCED_MPSW: u8 = 0x29;
}

/// `fm_ce_se`, byte 0x0b of the control segment (`MLX5_WQE_CTRL_*` in
/// qp.h): solicited event `[1]`, completion mode `[3:2]`, fence mode
/// `[7:5]`.
#[bitfield(u8)]
#[derive(PartialEq, Eq)]
pub struct FmCeSe {
    #[bits(1)]
    __: u8,
    /// `MLX5_WQE_CTRL_SOLICITED`.
    pub se: bool,
    /// Completion mode: [`CE_CQ_UPDATE`] asks for a CQE for this WQE.
    #[bits(2)]
    pub ce: u8,
    #[bits(1)]
    __: u8,
    #[bits(3)]
    pub fm: u8,
}

/// `ce` of `MLX5_WQE_CTRL_CQ_UPDATE` (`2 << 2`): a CQE for this WQE.
pub const CE_CQ_UPDATE: u8 = 2;
/// The `fm_ce_se` byte of a WQE that asks for a completion.
pub const SIGNALLED: u8 = FmCeSe::new().with_ce(CE_CQ_UPDATE).into_bits();

/// The first 8 bytes of a control segment, as written to the ring and to
/// the send doorbell: `opmod_idx_opcode` (opmod 0, `wqe_index`, `opcode`)
/// in the high dword, `qpn_ds` (`sqn`, `ds`) in the low one.
#[inline(always)]
pub const fn ctrl_head(wqe_index: u16, opcode: u8, sqn: u32, ds: usize) -> u64 {
    let opmod_idx_opcode = ((wqe_index as u32) << 8) | opcode as u32;
    let qpn_ds = (sqn << 8) | (ds as u32 & ctrl::DS_MASK);
    ((opmod_idx_opcode as u64) << 32) | qpn_ds as u64
}

/// The second 8 bytes of a control segment (signature, reserved,
/// `fm_ce_se`, immediate), as a big-endian word: a completion asked or not.
#[inline(always)]
pub const fn ctrl_flags_word(signalled: bool) -> u64 {
    // fm_ce_se is byte 0x0b: bits 39..32 of the word at 0x08.
    (signalled as u64 * SIGNALLED as u64) << 32
}

/// The first 8 bytes of an Ethernet segment as a big-endian word:
/// `cs_flags` (byte 4) and `mss` (bytes 6..8).
#[inline(always)]
pub const fn eth_flags_word(cs: CsFlags, mss: u16) -> u64 {
    ((cs.0 as u64) << 24) | mss as u64
}

/// The second 8 bytes of an Ethernet segment with nothing inline and tag
/// `tci` to insert: `insert` type `MLX5_ETH_WQE_INSERT_VLAN` and the TCI
/// (bytes 12..16, sharing them with `inline_hdr`).
#[inline(always)]
pub const fn eth_insert_word(tci: u16) -> u64 {
    ((eth::INSERT_VLAN as u64) << 16) | tci as u64
}

/// The first 8 bytes of a data segment as a big-endian word: `byte_count`
/// and `lkey` (the address is the second word).
#[inline(always)]
pub const fn data_word(byte_count: u32, lkey: u32) -> u64 {
    ((byte_count as u64) << 32) | lkey as u64
}

/// [`ctrl_head`] with the SQN already shifted into place (`sqn << 8`, as
/// a queue keeps it).
#[inline(always)]
pub const fn ctrl_head_of(wqe_index: u16, opcode: u8, sqn8: u32, ds: usize) -> u64 {
    let opmod_idx_opcode = ((wqe_index as u32) << 8) | opcode as u32;
    let qpn_ds = sqn8 | (ds as u32 & ctrl::DS_MASK);
    ((opmod_idx_opcode as u64) << 32) | qpn_ds as u64
}

/// Write a control segment at the start of `wqe`: `head` ([`ctrl_head`])
/// and, when `signalled`, a request for a completion. The rest of the
/// segment stays zero.
#[inline(always)]
pub fn write_ctrl(wqe: &mut [u8], head: u64, signalled: bool) {
    wqe[ctrl::OPMOD_IDX_OPCODE..][..8].copy_from_slice(&head.to_be_bytes());
    if signalled {
        wqe[ctrl::FM_CE_SE] = SIGNALLED;
    }
}

/// `struct mlx5_wqe_eth_seg` (16 bytes, inline headers continue after it).
pub mod eth {
    /// cs_flags ([`super::CsFlags`]).
    pub const CS_FLAGS: usize = 0x04;
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

/// `cs_flags`, byte 0x04 of the Ethernet segment (`MLX5_ETH_WQE_*_CSUM`
/// in qp.h): which checksums the device fills in.
#[bitfield(u8)]
#[derive(PartialEq, Eq)]
pub struct CsFlags {
    #[bits(4)]
    __: u8,
    /// `MLX5_ETH_WQE_L3_INNER_CSUM` / `_L4_INNER_CSUM` (tunnels).
    pub l3_inner: bool,
    pub l4_inner: bool,
    /// `MLX5_ETH_WQE_L3_CSUM`: the IPv4 header checksum.
    pub l3: bool,
    /// `MLX5_ETH_WQE_L4_CSUM`: the TCP/UDP checksum.
    pub l4: bool,
}

// The fast path builds and reads these through the plain byte: the
// generated accessors are not `#[inline]`, and the queue code is
// instantiated in the caller's crate.
impl CsFlags {
    /// The flags of a frame: `l3` for an IPv4 header, `l4` for TCP/UDP.
    #[inline(always)]
    pub const fn of(l3: bool, l4: bool) -> CsFlags {
        CsFlags(((l3 as u8) << Self::L3_OFFSET) | ((l4 as u8) << Self::L4_OFFSET))
    }

    /// No checksum asked for.
    #[inline(always)]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Bytes the Ethernet segment inlines for `inline` header bytes: a VLAN
/// tag the driver inserts goes into the inlined headers.
#[inline(always)]
pub const fn inline_len(inline: usize, vlan: bool) -> usize {
    if vlan && inline > 0 {
        inline + crate::frame::VLAN_HLEN
    } else {
        inline
    }
}

/// Write an Ethernet segment at the start of `seg` (the inline headers
/// continue past its 16 bytes): the checksum flags, the MSS of an LSO
/// WQE, and `hdr` (the frame's first bytes) inline with the VLAN tag
/// `vlan` after the MACs; with nothing inline, the tag goes into `insert`
/// (which shares its bytes with `inline_hdr`). Writes
/// [`inline_len`]`(hdr.len(), vlan.is_some())` inline bytes.
#[inline(always)]
pub fn write_eth(seg: &mut [u8], cs: CsFlags, mss: Option<u16>, hdr: &[u8], vlan: Option<u16>) {
    seg[eth::CS_FLAGS] = cs.0;
    if let Some(mss) = mss {
        seg[eth::MSS..][..2].copy_from_slice(&mss.to_be_bytes());
    }
    let inline = hdr.len();
    let in_wqe = inline_len(inline, vlan.is_some());
    if in_wqe > 0 {
        seg[eth::INLINE_HDR_SZ..][..2].copy_from_slice(&(in_wqe as u16).to_be_bytes());
        let at = eth::INLINE_HDR_START;
        match vlan {
            Some(tci) => {
                // dst + src, the tag, then the rest of the headers.
                let macs = 2 * 6;
                seg[at..at + macs].copy_from_slice(&hdr[..macs]);
                seg[at + macs..at + macs + 2]
                    .copy_from_slice(&crate::frame::ETHERTYPE_VLAN.to_be_bytes());
                seg[at + macs + 2..at + macs + 4].copy_from_slice(&tci.to_be_bytes());
                seg[at + macs + 4..at + in_wqe].copy_from_slice(&hdr[macs..]);
            }
            None => seg[at..at + inline].copy_from_slice(hdr),
        }
    } else if let Some(tci) = vlan {
        seg[eth::INSERT_TYPE..][..2].copy_from_slice(&eth::INSERT_VLAN.to_be_bytes());
        seg[eth::INSERT_TCI..][..2].copy_from_slice(&tci.to_be_bytes());
    }
}

/// `struct mlx5_wqe_data_seg` (16 bytes).
pub mod data {
    pub const BYTE_COUNT: usize = 0x00;
    pub const LKEY: usize = 0x04;
    pub const ADDR: usize = 0x08;
}

/// Write a data segment at the start of `seg`: `byte_count` bytes at
/// device address `addr` under `lkey` (send and cyclic receive WQEs).
#[inline(always)]
pub fn write_data(seg: &mut [u8], byte_count: u32, lkey: u32, addr: u64) {
    seg[data::BYTE_COUNT..][..4].copy_from_slice(&byte_count.to_be_bytes());
    seg[data::LKEY..][..4].copy_from_slice(&lkey.to_be_bytes());
    seg[data::ADDR..][..8].copy_from_slice(&addr.to_be_bytes());
}

/// Enhanced multi-packet send (PRM "Enhanced Multi-Packet Send WQE"):
/// control segment ([`ctrl::OPCODE_ENHANCED_MPSW`]), one Ethernet segment
/// for the whole session (checksum flags, VLAN insert; no inline headers,
/// no MSS), then per frame either a data segment ([`data_word`] and the
/// address) or an inline data segment (`struct mlx5_wqe_inline_seg`:
/// `byte_count` with [`empw::INLINE`] set, the frame from byte 4, padded
/// to the next 16 bytes).
pub mod empw {
    /// `MLX5_INLINE_SEG`: bit 31 of an inline segment's `byte_count`.
    pub const INLINE: u32 = 0x8000_0000;
    /// Segments a WQE holds (`qpn_ds`'s six bits).
    pub const MAX_DS: usize = 63;
    /// Segments the driver puts in one session: 15 basic blocks, so a
    /// full session is cache-line sized and fits `max_wqe_sz_sq` (1 KiB:
    /// 16 blocks) of every part with the capability.
    pub const SESSION_DS: usize = 60;

    /// Segments an inline frame of `len` bytes takes (4 bytes of
    /// `byte_count`, then the frame).
    #[inline(always)]
    pub const fn inline_ds(len: usize) -> usize {
        (4 + len).div_ceil(super::DS)
    }
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
    fn empw_words_golden() {
        // Control segment of an eMPW session at wqe_index 0x0102, SQN
        // 0x345, 34 segments: opmod 0, index 0x0102, opcode 0x29;
        // qpn_ds 0x000345 << 8 | 34 (0x22).
        let h = ctrl_head(0x0102, ctrl::OPCODE_ENHANCED_MPSW, 0x345, 34);
        assert_eq!(
            h.to_be_bytes(),
            [0x00, 0x01, 0x02, 0x29, 0x00, 0x03, 0x45, 0x22]
        );
        // An inline segment of 64 bytes: byte_count 0x80000040, 68 bytes
        // in 5 segments; 60 bytes in 4.
        assert_eq!((64 | empw::INLINE).to_be_bytes(), [0x80, 0, 0, 0x40]);
        assert_eq!((empw::inline_ds(64), empw::inline_ds(60)), (5, 4));
    }

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

    /// `MLX5_WQE_CTRL_CQ_UPDATE` (`2 << 2`), `MLX5_WQE_CTRL_SOLICITED`
    /// (`1 << 1`), `MLX5_ETH_WQE_L3_CSUM` (`1 << 6`) / `_L4_CSUM`
    /// (`1 << 7`) / `_L3_INNER_CSUM` (`1 << 4`) in qp.h.
    #[test]
    fn flag_bytes_where_qp_h_puts_them() {
        assert_eq!(SIGNALLED, 0x08);
        assert_eq!(FmCeSe::new().with_se(true).into_bits(), 0x02);
        assert_eq!(FmCeSe::new().with_fm(7).into_bits(), 0xe0);
        assert_eq!(CsFlags::new().with_l3(true).into_bits(), 0x40);
        assert_eq!(CsFlags::new().with_l4(true).into_bits(), 0x80);
        assert_eq!(CsFlags::new().with_l3_inner(true).into_bits(), 0x10);
        assert_eq!(
            CsFlags::from_bits(0xc0),
            CsFlags::new().with_l3(true).with_l4(true)
        );
    }

    #[test]
    fn segment_writers_golden_bytes() {
        let mut w = [0u8; 64];
        // ctrl: wqe_index 0x1234 [23:8] + SEND 0x0a; sqn 0xabcde [31:8] +
        // ds 4 [5:0]; fm_ce_se at 0x0b.
        let head = ctrl_head(0x1234, ctrl::OPCODE_SEND, 0xa_bcde, 4);
        assert_eq!(head, 0x0012_340a_0abc_de04);
        write_ctrl(&mut w, head, true);
        #[rustfmt::skip]
        assert_eq!(
            w[..16],
            [0x00, 0x12, 0x34, 0x0a,  0x0a, 0xbc, 0xde, 0x04,  0, 0, 0, 0x08,  0, 0, 0, 0]
        );
        // eth seg at 0x10: cs_flags 0x14, mss 0x16, inline_hdr.sz 0x1c,
        // inline bytes from 0x1e: the MACs, 0x8100 + TCI, the ethertype.
        let hdr: [u8; 14] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00];
        let cs = CsFlags::new().with_l3(true).with_l4(true);
        write_eth(&mut w[DS..], cs, Some(1460), &hdr, Some(0x2064));
        #[rustfmt::skip]
        assert_eq!(
            w[0x10..0x30],
            [
                0, 0, 0, 0,  0xc0, 0, 0x05, 0xb4,  0, 0, 0, 0,  0x00, 0x12, 1, 2,
                3, 4, 5, 6,  7, 8, 9, 10,  11, 12, 0x81, 0x00,  0x20, 0x64, 0x08, 0x00,
            ]
        );
        assert_eq!(inline_len(14, true), 18);
        // Nothing inline: the tag goes into `insert` (type 0x8000, TCI).
        let mut e = [0u8; 16];
        write_eth(&mut e, CsFlags::new(), None, &[], Some(0x0005));
        assert_eq!(
            e,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0x00, 0x05]
        );
        // data seg: byte_count 0x00, lkey 0x04, addr 0x08 (all big-endian).
        let mut d = [0u8; 16];
        write_data(&mut d, 0x5ea, 0x100, 0x1_2345_6780);
        #[rustfmt::skip]
        assert_eq!(
            d,
            [0, 0, 0x05, 0xea,  0, 0, 0x01, 0x00,  0, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x80]
        );
    }

    /// The words of a WQE built in registers are the bytes the segment
    /// writers produce (golden bytes above), stored big-endian.
    #[test]
    fn segment_words_golden_bytes() {
        let be = |w: u64| w.to_be_bytes();
        // fm_ce_se 0x08 at byte 0x0b of the control segment (3 of word 1).
        assert_eq!(be(ctrl_flags_word(true)), [0, 0, 0, 0x08, 0, 0, 0, 0]);
        assert_eq!(ctrl_flags_word(false), 0);
        // cs_flags at eth 0x04, mss 1460 at 0x06.
        let cs = CsFlags::new().with_l3(true).with_l4(true);
        assert_eq!(
            be(eth_flags_word(cs, 1460)),
            [0, 0, 0, 0, 0xc0, 0, 0x05, 0xb4]
        );
        // insert at eth 0x0c: type 0x8000, TCI 0x0005.
        assert_eq!(be(eth_insert_word(5)), [0, 0, 0, 0, 0x80, 0x00, 0x00, 0x05]);
        // byte_count 0x5ea, lkey 0x100.
        assert_eq!(
            be(data_word(0x5ea, 0x100)),
            [0, 0, 0x05, 0xea, 0, 0, 0x01, 0x00]
        );
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
