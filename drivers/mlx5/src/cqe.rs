//! The completion queue entry (PRM "Completion Queue Entry"; `struct
//! mlx5_cqe64` and `struct mlx5_err_cqe` in device.h): 64 bytes, all
//! fields big-endian. [`Cqe`] is the one parser: [`crate::cq::Cq::pop`]
//! reads an entry from the ring through it, [`Cqe::parse`] from bytes,
//! and the queues read the fields through its named accessors.
//!
//! Every field is device input: the accessors return plain values, the
//! queue that owns the WQE checks them.

use bitfield_struct::bitfield;
use cxos_drivers::{L3Proto, L4Proto};

/// Byte offsets of the dwords the driver reads (`struct mlx5_cqe64`).
pub mod off {
    /// `tls_outer_l3_tunneled`, `rsvd0`, `wqe_id` (be16, `[15:0]`): a
    /// striding RQ's WQE index.
    pub const WQE_ID: usize = 0x00;
    /// `rss_hash_result`.
    pub const RSS_HASH: usize = 0x0c;
    /// `check_sum` (be16, `[31:16]`), `slid`.
    pub const CHECK_SUM: usize = 0x14;
    /// `hds_ip_ext` `[31:24]` ([`super::HdsIpExt`]), `l4_l3_hdr_type` `[23:16]`
    /// ([`super::HdrType`]), `vlan_info` `[15:0]`.
    pub const HDR: usize = 0x1c;
    /// `byte_cnt` (striding RQs: [`super::MpwrqByteCount`]).
    pub const BYTE_CNT: usize = 0x2c;
    /// `struct mlx5_err_cqe`: `vendor_err_synd` `[15:8]` (byte 0x36),
    /// `syndrome` `[7:0]` (byte 0x37).
    pub const ERR: usize = 0x34;
    /// `sop_drop_qpn` / `s_wqe_opcode_qpn`: QPN (SQN or RQN) `[23:0]`.
    pub const QPN: usize = 0x38;
    /// `wqe_counter` `[31:16]`, `signature` `[15:8]`, `op_own` `[7:0]`
    /// ([`super::OpOwn`]).
    pub const TAIL: usize = 0x3c;
    /// `op_own`, the byte the device writes last.
    pub const OP_OWN: usize = 0x3f;
}

/// Bytes in a CQE (`cqe_sz` 0).
pub const LEN: usize = 0x40;
/// The 64-bit words [`Cqe::from_words`] takes: everything before
/// [`off::QPN`] (the last word, QPN and the owner dword, is read apart).
pub const WORDS: usize = off::QPN / 8;
/// `op_own` of a fresh entry: invalid opcode 0xf, owner 1.
pub const INITIAL_OP_OWN: u8 = 0xf1;

/// CQE opcodes (`MLX5_CQE_*`, device.h).
pub mod opcode {
    pub const REQ: u8 = 0x0;
    pub const RESP_SEND: u8 = 0x2;
    pub const REQ_ERR: u8 = 0xd;
    pub const RESP_ERR: u8 = 0xe;
    pub const INVALID: u8 = 0xf;
}

/// Error CQE syndromes (`MLX5_CQE_SYNDROME_*`, device.h).
pub mod syndrome {
    pub const LOCAL_LENGTH_ERR: u8 = 0x01;
    pub const LOCAL_QP_OP_ERR: u8 = 0x02;
    pub const LOCAL_PROT_ERR: u8 = 0x04;
    pub const WR_FLUSH_ERR: u8 = 0x05;

    pub fn name(s: u8) -> &'static str {
        match s {
            LOCAL_LENGTH_ERR => "local length error",
            LOCAL_QP_OP_ERR => "local QP operation error",
            LOCAL_PROT_ERR => "local protection error",
            WR_FLUSH_ERR => "WR flushed",
            0x06 => "memory window bind error",
            0x10 => "bad response",
            0x11 => "local access error",
            0x12 => "remote invalid request",
            0x13 => "remote access error",
            0x14 => "remote operation error",
            _ => "unknown syndrome",
        }
    }
}

/// `op_own` (byte 0x3f): owner `[0]`, CQE format `[3:2]`, opcode `[7:4]`
/// (`get_cqe_opcode`, `mlx5_get_cqe_format` in device.h).
#[bitfield(u8)]
#[derive(PartialEq, Eq)]
pub struct OpOwn {
    pub owner: bool,
    #[bits(1)]
    __: u8,
    #[bits(2)]
    pub format: u8,
    #[bits(4)]
    pub opcode: u8,
}

/// `l4_l3_hdr_type` (byte 0x1d): stripped VLAN `[0]` (`cqe_has_vlan`), L3
/// header type `[3:2]`, L4 header type `[6:4]` (`get_cqe_l4_hdr_type`,
/// `CQE_L4_HDR_TYPE_*` in device.h).
#[bitfield(u8)]
#[derive(PartialEq, Eq)]
pub struct HdrType {
    pub vlan: bool,
    #[bits(1)]
    __: u8,
    /// 0 none, 1 IPv6, 2 IPv4.
    #[bits(2)]
    pub l3: u8,
    /// 0 none, 1 TCP without ACK, 2 UDP, 3 TCP ACK without data, 4 TCP
    /// ACK with data.
    #[bits(3)]
    pub l4: u8,
    #[bits(1)]
    __: u8,
}

/// `hds_ip_ext` (byte 0x1c): `CQE_L2_OK`, `CQE_L3_OK`, `CQE_L4_OK`
/// (device.h): the device verified those checksums and found them right.
#[bitfield(u8)]
#[derive(PartialEq, Eq)]
pub struct HdsIpExt {
    pub l2_ok: bool,
    pub l3_ok: bool,
    pub l4_ok: bool,
    #[bits(5)]
    __: u8,
}

/// `byte_cnt` of a striding RQ's CQE (`struct mpwrq_cqe_bc`, device.h):
/// frame bytes `[15:0]`, strides consumed `[30:16]`, filler `[31]`.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct MpwrqByteCount {
    pub bytes: u16,
    #[bits(15)]
    pub strides: u16,
    pub filler: bool,
}

/// One completion, copied out of the ring: the dwords the driver uses, in
/// CPU byte order. [`Cqe::from_words`] takes them from the entry's words
/// (read after the owner dword), the
/// accessors name the fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Cqe {
    /// [`off::TAIL`]: wqe_counter, signature, op_own.
    tail: u32,
    /// [`off::HDR`]: hds_ip_ext, l4_l3_hdr_type, vlan_info.
    hdr: u32,
    /// [`off::CHECK_SUM`].
    csum: u32,
    /// [`off::RSS_HASH`].
    rss_hash: u32,
    /// [`off::BYTE_CNT`].
    byte_cnt: u32,
    /// [`off::QPN`].
    qpn: u32,
    /// [`off::WQE_ID`], responder CQEs only (0 otherwise).
    wqe_id: u32,
    /// [`off::ERR`], error CQEs only (0 otherwise).
    err: u32,
}

// The data path is instantiated in the caller's crate: the accessors are
// `#[inline]` shifts over the dwords, with the layouts named by the
// bitfield types' `*_OFFSET` constants.
impl Cqe {
    /// An entry whose [`off::TAIL`] dword (`tail`, holding `op_own`) the
    /// caller already read and found software-owned, from its first seven
    /// big-endian 64-bit words `w` (bytes 0x00..0x38, loaded after the read
    /// barrier: a word at offset 8k holds the dword at 8k in its high half
    /// and the one at 8k + 4 in its low half) and the QPN (`qpn` reads the
    /// dword at [`off::QPN`]: every CQE's, as the data path checks it
    /// against the queue the CQ serves). The syndromes are kept for error
    /// CQEs only, `wqe_id` for responder CQEs only.
    #[inline(always)]
    pub fn from_words(tail: u32, w: &[u64; WORDS], qpn: impl FnOnce() -> u32) -> Cqe {
        const fn dword(w: &[u64; WORDS], off: usize) -> u32 {
            let word = w[off / 8];
            if off.is_multiple_of(8) {
                (word >> 32) as u32
            } else {
                word as u32
            }
        }
        let opcode = (tail as u8) >> OpOwn::OPCODE_OFFSET;
        Cqe {
            tail,
            hdr: dword(w, off::HDR),
            csum: dword(w, off::CHECK_SUM),
            rss_hash: dword(w, off::RSS_HASH),
            byte_cnt: dword(w, off::BYTE_CNT),
            qpn: qpn(),
            wqe_id: if opcode == opcode::RESP_SEND {
                dword(w, off::WQE_ID)
            } else {
                0
            },
            err: if is_error(opcode) {
                dword(w, off::ERR)
            } else {
                0
            },
        }
    }

    /// Parse the 64 bytes of a CQE.
    pub fn parse(b: &[u8; LEN]) -> Cqe {
        let be32 = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut w = [0u64; WORDS];
        for (i, x) in w.iter_mut().enumerate() {
            *x = ((be32(8 * i) as u64) << 32) | be32(8 * i + 4) as u64;
        }
        Cqe::from_words(be32(off::TAIL), &w, || be32(off::QPN))
    }

    /// Completion of a compressed session titled `self`
    /// ([`crate::cq::mini_cqe`]): the title with the mini-CQE's byte count
    /// and result (`struct mlx5_mini_cqe8`; `byte_cnt` `[31:0]` of the
    /// big-endian word; with `mini_cqe_res_format` 1 `check_sum`
    /// `[63:48]`, the RSS hash only for the session's `first` completion;
    /// with format 0 (`hash`) `rx_hash_result` `[63:32]`, the checksum
    /// the title's), `wqe_counter` `counter`, the cqe_format bits cleared.
    #[inline]
    pub fn decompressed(&self, mini: u64, counter: u16, first: bool, hash: bool) -> Cqe {
        let (csum, rss_hash) = if hash {
            (self.csum, (mini >> 32) as u32)
        } else {
            (
                ((mini >> 48) as u32) << 16 | (self.csum & 0xffff),
                if first { self.rss_hash } else { 0 },
            )
        };
        Cqe {
            tail: (counter as u32) << 16 | (self.tail & 0xfff3),
            csum,
            rss_hash,
            byte_cnt: mini as u32,
            err: 0,
            ..*self
        }
    }

    /// `op_own`.
    #[inline]
    pub fn op_own(&self) -> OpOwn {
        OpOwn::from_bits(self.tail as u8)
    }

    /// The CQE opcode ([`opcode`]).
    #[inline]
    pub fn opcode(&self) -> u8 {
        (self.tail as u8) >> OpOwn::OPCODE_OFFSET
    }

    /// A requester or responder error CQE (`struct mlx5_err_cqe`).
    #[inline]
    pub fn is_error(&self) -> bool {
        is_error(self.opcode())
    }

    /// The WQE this completes (requester: the last one; cyclic RQ: the
    /// next one; striding RQ: the first stride).
    #[inline]
    pub fn wqe_counter(&self) -> u16 {
        (self.tail >> 16) as u16
    }

    /// A striding RQ's WQE index (responder CQEs).
    #[inline]
    pub fn wqe_id(&self) -> u16 {
        self.wqe_id as u16
    }

    /// Bytes received (cyclic RQ).
    #[inline]
    pub fn byte_count(&self) -> u32 {
        self.byte_cnt
    }

    /// `byte_cnt` read as a striding RQ's (`struct mpwrq_cqe_bc`).
    #[inline]
    pub fn mpwrq(&self) -> MpwrqByteCount {
        MpwrqByteCount::from_bits(self.byte_cnt)
    }

    /// Striding RQ: the CQE only skips the rest of its WQE (filler).
    #[inline]
    pub fn is_filler(&self) -> bool {
        self.byte_cnt & (1 << MpwrqByteCount::FILLER_OFFSET) != 0
    }

    /// Striding RQ: strides the frame consumed.
    #[inline]
    pub fn strides(&self) -> u32 {
        (self.byte_cnt >> MpwrqByteCount::STRIDES_OFFSET) & 0x7fff
    }

    /// Striding RQ: bytes of the frame.
    #[inline]
    pub fn stride_bytes(&self) -> u32 {
        self.byte_cnt & 0xffff
    }

    /// The SQN or RQN.
    #[inline]
    pub fn qpn(&self) -> u32 {
        self.qpn & 0x00ff_ffff
    }

    /// `l4_l3_hdr_type`.
    #[inline]
    pub fn hdr_type(&self) -> HdrType {
        HdrType::from_bits((self.hdr >> 16) as u8)
    }

    /// The device stripped a VLAN tag into [`Cqe::vlan_tci`].
    #[inline]
    pub fn has_vlan(&self) -> bool {
        (self.hdr >> 16) & (1 << HdrType::VLAN_OFFSET) != 0
    }

    /// `vlan_info`: the stripped tag's TCI.
    #[inline]
    pub fn vlan_tci(&self) -> u16 {
        self.hdr as u16
    }

    /// The network layer the device found.
    #[inline]
    pub fn l3(&self) -> L3Proto {
        match (self.hdr >> (16 + HdrType::L3_OFFSET)) & 0x3 {
            1 => L3Proto::Ipv6,
            2 => L3Proto::Ipv4,
            _ => L3Proto::Other,
        }
    }

    /// The transport layer the device found (TCP with or without ACK or
    /// data is TCP).
    #[inline]
    pub fn l4(&self) -> L4Proto {
        match (self.hdr >> (16 + HdrType::L4_OFFSET)) & 0x7 {
            1 | 3 | 4 => L4Proto::Tcp,
            2 => L4Proto::Udp,
            _ => L4Proto::Other,
        }
    }

    /// `hds_ip_ext`.
    #[inline]
    pub fn checks(&self) -> HdsIpExt {
        HdsIpExt::from_bits((self.hdr >> 24) as u8)
    }

    /// The device verified the IPv4 header checksum and found it right.
    #[inline]
    pub fn l3_ok(&self) -> bool {
        (self.hdr >> 24) & (1 << HdsIpExt::L3_OK_OFFSET) != 0
    }

    /// The device verified the TCP/UDP checksum and found it right.
    #[inline]
    pub fn l4_ok(&self) -> bool {
        (self.hdr >> 24) & (1 << HdsIpExt::L4_OK_OFFSET) != 0
    }

    /// `check_sum`: the raw checksum of the packet.
    #[inline]
    pub fn check_sum(&self) -> u16 {
        (self.csum >> 16) as u16
    }

    /// `rss_hash_result`.
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        self.rss_hash
    }

    /// Error CQEs: the syndrome ([`syndrome`]).
    #[inline]
    pub fn syndrome(&self) -> u8 {
        self.err as u8
    }

    /// Error CQEs: the vendor syndrome.
    #[inline]
    pub fn vendor_syndrome(&self) -> u8 {
        (self.err >> 8) as u8
    }
}

/// Whether the entry whose [`off::TAIL`] dword is `tail` belongs to
/// software on pass `pass` over the ring (the consumer index shifted by
/// the ring's log size): its owner bit matches the pass's parity and its
/// opcode is not [`opcode::INVALID`] (a fresh entry).
#[inline(always)]
pub fn software_owns(tail: u32, pass: u32) -> bool {
    let op_own = tail as u8;
    (op_own & (1 << OpOwn::OWNER_OFFSET)) == (pass & 1) as u8
        && op_own >> OpOwn::OPCODE_OFFSET != opcode::INVALID
}

#[inline(always)]
fn is_error(opcode: u8) -> bool {
    matches!(opcode, opcode::REQ_ERR | opcode::RESP_ERR)
}

/// CQEs as the device writes them, for the queues' unit tests (fields at
/// the offsets of `struct mlx5_cqe64`).
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    /// A requester CQE (opcode REQ) completing `wqe_counter`.
    pub fn requester(wqe_counter: u16) -> Cqe {
        let mut raw = [0u8; LEN];
        raw[0x3c..0x3e].copy_from_slice(&wqe_counter.to_be_bytes());
        raw[0x3f] = opcode::REQ << 4;
        Cqe::parse(&raw)
    }

    /// A responder CQE (RESP_SEND): `wqe_counter`, `byte_cnt`, and a
    /// striding RQ's `wqe_id`.
    pub fn responder(wqe_id: u16, wqe_counter: u16, byte_cnt: u32) -> Cqe {
        let mut raw = [0u8; LEN];
        raw[0x02..0x04].copy_from_slice(&wqe_id.to_be_bytes());
        raw[0x2c..0x30].copy_from_slice(&byte_cnt.to_be_bytes());
        raw[0x3c..0x3e].copy_from_slice(&wqe_counter.to_be_bytes());
        raw[0x3f] = opcode::RESP_SEND << 4;
        Cqe::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responder_cqe_golden() {
        #[rustfmt::skip]
        let raw: [u8; 64] = [
            // 0x00 wqe_id 0x0007 (be16 at 0x02); 0x0c rss_hash_result
            0, 0, 0x00, 0x07,  0, 0, 0, 0,  0, 0, 0, 0,  0xde, 0xad, 0xbe, 0xef,
            // 0x14 check_sum 0x1234; 0x1c hds_ip_ext 0x06 (L3, L4 OK),
            // 0x1d l4_l3_hdr_type 0x49 (TCP ACK+data 4 [6:4], IPv4 2 [3:2],
            // VLAN [0]), 0x1e vlan_info 0x000a
            0, 0, 0, 0,  0x12, 0x34, 0, 0,  0, 0, 0, 0,  0x06, 0x49, 0x00, 0x0a,
            // 0x2c byte_cnt 1514
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0x00, 0x00, 0x05, 0xea,
            // 0x38 qpn 0x11, 0x3c wqe_counter 0x0102, 0x3f op_own 0x21
            // (RESP_SEND, owner 1)
            0, 0, 0, 0,  0, 0, 0, 0,  0x00, 0x00, 0x00, 0x11,  0x01, 0x02, 0x00, 0x21,
        ];
        let c = Cqe::parse(&raw);
        assert_eq!(c.opcode(), opcode::RESP_SEND);
        assert!(c.op_own().owner());
        assert_eq!(c.op_own().opcode(), opcode::RESP_SEND);
        assert_eq!(c.byte_count(), 1514);
        assert_eq!(c.qpn(), 0x11);
        assert_eq!(c.wqe_counter(), 0x0102);
        assert_eq!(c.wqe_id(), 7);
        assert_eq!(c.rss_hash(), 0xdead_beef);
        assert_eq!(c.check_sum(), 0x1234);
        assert_eq!(
            c.hdr_type(),
            HdrType::new().with_vlan(true).with_l3(2).with_l4(4)
        );
        assert!(c.has_vlan());
        assert_eq!(c.vlan_tci(), 0x000a);
        assert_eq!((c.l3(), c.l4()), (L3Proto::Ipv4, L4Proto::Tcp));
        assert!(c.l3_ok() && c.l4_ok());
        assert_eq!(
            c.checks(),
            HdsIpExt::new().with_l3_ok(true).with_l4_ok(true)
        );
        assert!(!c.is_error());
        assert_eq!((c.syndrome(), c.vendor_syndrome()), (0, 0));
    }

    #[test]
    fn header_types_of_device_h() {
        // (l4_l3_hdr_type at 0x1d, l3, l4): IPv6 (1) UDP (2); TCP without
        // ACK (1) and ACK without data (3) are TCP; none.
        for (ht, l3, l4) in [
            (0x24u8, L3Proto::Ipv6, L4Proto::Udp),
            (0x18, L3Proto::Ipv4, L4Proto::Tcp),
            (0x38, L3Proto::Ipv4, L4Proto::Tcp),
            (0x00, L3Proto::Other, L4Proto::Other),
            (0x0c, L3Proto::Other, L4Proto::Other),
        ] {
            let mut raw = [0u8; 64];
            raw[0x1d] = ht;
            raw[0x3f] = 0x20;
            let c = Cqe::parse(&raw);
            assert_eq!((c.l3(), c.l4(), c.has_vlan()), (l3, l4, false), "{ht:#x}");
            assert_eq!(c.hdr_type().into_bits(), ht);
        }
    }

    #[test]
    fn error_cqe_golden() {
        // struct mlx5_err_cqe: vendor_err_synd 0x36, syndrome 0x37,
        // s_wqe_opcode_qpn 0x38, wqe_counter 0x3c, op_own 0x3f (0xd0:
        // REQ_ERR, owner 0).
        let mut raw = [0u8; 64];
        raw[0x36] = 0x33;
        raw[0x37] = 0x04;
        raw[0x38..0x3c].copy_from_slice(&[0x0a, 0x00, 0x00, 0x09]);
        raw[0x3c..0x3e].copy_from_slice(&[0x00, 0x07]);
        raw[0x3f] = 0xd0;
        let c = Cqe::parse(&raw);
        assert!(c.is_error());
        assert_eq!(c.opcode(), opcode::REQ_ERR);
        assert_eq!(c.syndrome(), syndrome::LOCAL_PROT_ERR);
        assert_eq!(syndrome::name(c.syndrome()), "local protection error");
        assert_eq!(c.vendor_syndrome(), 0x33);
        assert_eq!(c.qpn(), 9);
        assert_eq!(c.wqe_counter(), 7);
        assert!(!c.op_own().owner());
    }

    #[test]
    fn fields_only_their_opcode_has_read_as_zero() {
        // A requester CQE's bytes 0x00..0x04 and 0x34..0x38 are not
        // wqe_id / syndromes the driver looks at; its QPN [23:0] is.
        let mut raw = [0xffu8; 64];
        raw[0x3f] = 0x00;
        let c = Cqe::parse(&raw);
        assert_eq!((c.wqe_id(), c.syndrome(), c.vendor_syndrome()), (0, 0, 0));
        assert_eq!(c.qpn(), 0x00ff_ffff);
        // Each word's two dwords land in their fields (high half first).
        raw[0x3f] = 0x20;
        raw[0x2c..0x30].copy_from_slice(&[0, 0, 0x01, 0x02]);
        raw[0x28..0x2c].copy_from_slice(&[0xaa; 4]);
        let c = Cqe::parse(&raw);
        assert_eq!((c.byte_count(), c.wqe_id()), (0x0102, 0xffff));
    }

    #[test]
    fn ownership_by_pass() {
        // op_own 0x20: RESP_SEND, owner 0 -> software's on even passes.
        assert!(software_owns(0x0000_0020, 0));
        assert!(!software_owns(0x0000_0020, 1));
        assert!(software_owns(0x0000_0021, 3));
        // A fresh entry (0xf1) is never software's.
        assert!(!software_owns(INITIAL_OP_OWN as u32, 1));
        assert!(!software_owns(0xf0, 0));
    }

    #[test]
    fn striding_byte_count_golden() {
        // byte_cnt at 0x2c: filler [31], strides [30:16], bytes [15:0].
        let mut raw = [0u8; 64];
        raw[0x2c..0x30].copy_from_slice(&[0x80, 0x03, 0x00, 0x40]);
        raw[0x3f] = 0x20;
        let c = Cqe::parse(&raw);
        let b = c.mpwrq();
        assert!(b.filler());
        assert_eq!((b.strides(), b.bytes()), (3, 0x40));
        assert_eq!(
            (c.is_filler(), c.strides(), c.stride_bytes()),
            (true, 3, 0x40)
        );
        raw[0x2c..0x30].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        let b = Cqe::parse(&raw).mpwrq();
        assert_eq!(
            (b.filler(), b.strides(), b.bytes()),
            (false, 0x7fff, 0xffff)
        );
    }
}
