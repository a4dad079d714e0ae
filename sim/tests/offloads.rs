//! Transmit and receive offloads of the model, driven by the raw client:
//! checksums (IPv4/IPv6 x TCP/UDP, both ways, wrong ones flagged), VLAN
//! insert and strip, every part's inline rule, LSO. Checksums are checked
//! with this file's own RFC 1071 code, offsets typed in from the RFCs.

mod common;
mod dp;

use common::*;
use cxos_drivers::DmaRegion;
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const V4_SRC: [u8; 4] = [10, 0, 0, 1];
const V4_DST: [u8; 4] = [10, 0, 0, 2];
const V6_SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const TCP: u8 = 6;
const UDP: u8 = 17;

/// Ethernet + IPv4 (20 bytes, id 0x1234, DF) or IPv6 (40 bytes) + TCP (20
/// bytes, seq 0x01020304, PSH|ACK) or UDP (8 bytes) + `payload` bytes; all
/// checksums zero.
fn ip_frame(dst: [u8; 6], src: [u8; 6], v6: bool, proto: u8, payload: usize) -> Vec<u8> {
    let l4_len = if proto == TCP { 20 } else { 8 };
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&((l4_len + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&V6_SRC);
        f.extend_from_slice(&V6_DST);
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + l4_len + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&V4_SRC);
        f.extend_from_slice(&V4_DST);
    }
    if proto == TCP {
        f.extend_from_slice(&[0x04, 0xd2, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x18]);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&[0x04, 0xd2, 0, 53]);
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend((0..payload).map(|i| (i * 13 + 7) as u8));
    f
}

fn sum(mut acc: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        acc += (c[0] as u32) << 8 | *c.get(1).unwrap_or(&0) as u32;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// (IPv4 header checksum right, L4 checksum right) of a frame built by
/// `ip_frame` (untagged, starting at byte 14).
fn checks(f: &[u8]) -> (bool, bool) {
    let v6 = f[12] == 0x86;
    let (l3_len, proto, l4_len_total, pseudo) = if v6 {
        let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
        let p = sum(0, &f[22..54]) + f[20] as u32 + plen as u32;
        (40, f[20], plen, p)
    } else {
        let total = u16::from_be_bytes([f[16], f[17]]) as usize;
        let p = sum(0, &f[26..34]) + f[23] as u32 + (total - 20) as u32;
        (20, f[23], total - 20, p)
    };
    let l3_ok = v6 || fold(sum(0, &f[14..34])) == 0xffff;
    let l4 = 14 + l3_len;
    let seg = &f[l4..l4 + l4_len_total];
    let l4_ok = fold(sum(pseudo, seg)) == 0xffff;
    let _ = proto;
    (l3_ok, l4_ok)
}

/// Fill the checksums as a stack would (for injected frames).
fn fill(f: &mut [u8]) {
    let v6 = f[12] == 0x86;
    if !v6 {
        let c = !fold(sum(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let (l4, proto, len, pseudo) = if v6 {
        let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
        (
            54,
            f[20],
            plen,
            sum(0, &f[22..54]) + f[20] as u32 + plen as u32,
        )
    } else {
        let total = u16::from_be_bytes([f[16], f[17]]) as usize;
        (
            34,
            f[23],
            total - 20,
            sum(0, &f[26..34]) + f[23] as u32 + (total - 20) as u32,
        )
    };
    let at = l4 + if proto == TCP { 16 } else { 6 };
    f[at] = 0;
    f[at + 1] = 0;
    let c = !fold(sum(pseudo, &f[l4..l4 + len]));
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// CQE receive fields (struct mlx5_cqe64): check_sum 0x14, hds_ip_ext
/// 0x1c, l4_l3_hdr_type 0x1d, vlan_info 0x1e.
fn rx_flags(e: &[u8; 64]) -> (u8, u8, u16) {
    (e[0x1c], e[0x1d], be16(e, 0x1e))
}

#[test]
fn tx_checksums_are_filled_only_when_asked_and_the_receiver_flags_them() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa.clone());
    let mut b = Net::open(pb.clone());
    for v6 in [false, true] {
        for proto in [TCP, UDP] {
            let f = ip_frame(b.mac, a.mac, v6, proto, 301);
            // Asked: L3 | L4 (qp.h MLX5_ETH_WQE_L3_CSUM 0x40, _L4_CSUM 0x80).
            let o = TxOpts {
                cs_flags: 0xc0,
                ..TxOpts::default()
            };
            a.post_wqe(&f, o);
            a.ring_tx();
            assert_eq!(cqe_opcode(&a.tx_cq.poll().unwrap()), 0);
            let e = b.rx_cq.poll().expect("received");
            let got = b.rx_bytes(cqe_wqe_counter(&e), f.len());
            b.repost_rx();
            assert_eq!(checks(&got), (true, true), "v6 {v6} proto {proto}");
            assert_eq!(&got[..24], &f[..24], "only checksum fields change");
            let (ok, types, _) = rx_flags(&e);
            assert_eq!(ok, 0x07, "L2 | L3 | L4 ok, v6 {v6} proto {proto}");
            // l3 bits 3:2 (1 IPv6, 2 IPv4), l4 bits 6:4 (TCP with ACK and
            // data 4, UDP 2).
            let l3 = if v6 { 1 } else { 2 };
            let l4 = if proto == TCP { 4 } else { 2 };
            assert_eq!(types, l4 << 4 | l3 << 2);
            // check_sum: sum of everything after the Ethernet header.
            assert_eq!(be16(&e, 0x14), fold(sum(0, &got[14..])));
            // Not asked: the bytes go out as posted (checksums zero).
            a.post_wqe(&f, TxOpts::default());
            a.ring_tx();
            a.tx_cq.poll().unwrap();
            let e = b.rx_cq.poll().expect("received");
            let got = b.rx_bytes(cqe_wqe_counter(&e), f.len());
            b.repost_rx();
            assert_eq!(got, f);
            // A zero UDP checksum over IPv4 means "none" (fine); IPv6 has no
            // header checksum (L3 fine); everything else is wrong.
            let want =
                0x01 | if v6 { 0x02 } else { 0 } | if proto == UDP && !v6 { 0x04 } else { 0 };
            assert_eq!(rx_flags(&e).0, want, "unfilled v6 {v6} proto {proto}");
        }
    }
    assert!(pa.sanitizer_violations().is_empty() && pb.sanitizer_violations().is_empty());
}

#[test]
fn wrong_checksums_are_flagged_bad_on_receive() {
    let p = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    for v6 in [false, true] {
        for proto in [TCP, UDP] {
            let mut f = ip_frame(n.mac, [2; 6], v6, proto, 64);
            fill(&mut f);
            assert_eq!(checks(&f), (true, true));
            p.inject_rx(&f);
            assert_eq!(rx_flags(&n.rx_cq.poll().unwrap()).0, 0x07);
            n.repost_rx();
            // One payload bit flipped: L4 bad, L3 still good.
            let mut bad = f.clone();
            *bad.last_mut().unwrap() ^= 0x20;
            p.inject_rx(&bad);
            assert_eq!(
                rx_flags(&n.rx_cq.poll().unwrap()).0,
                0x03,
                "v6 {v6} proto {proto}"
            );
            n.repost_rx();
            if !v6 {
                // TTL changed without the header checksum: L3 bad.
                let mut bad = f.clone();
                bad[22] -= 1;
                p.inject_rx(&bad);
                assert_eq!(rx_flags(&n.rx_cq.poll().unwrap()).0 & 0x02, 0);
                n.repost_rx();
            }
        }
    }
    // Not IP at all: only L2 ok, no types.
    p.inject_rx(&frame(n.mac, [2; 6], 80, 1));
    let e = n.rx_cq.poll().unwrap();
    assert_eq!(rx_flags(&e), (0x01, 0x00, 0));
}

/// MODIFY_RQ RDY -> RDY with modify_bitmask vsd (bit 1 of the 64-bit mask
/// at 0x10); rqc.vsd is bit 3 of the context at 0x20 (byte 0x20, 0x10).
fn set_vsd(n: &mut Net, vsd: bool) {
    let mut m = Net::modify_msg(MODIFY_RQ, n.rqn, RDY, RDY);
    m.be64(0x10, 1 << 1);
    m.u8(0x20, if vsd { 0x10 } else { 0 });
    n.raw.ok(&m, 0x10);
}

#[test]
fn vlan_insert_on_transmit_and_strip_on_receive() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX6,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa.clone());
    let mut b = Net::open(pb.clone());
    let f = ip_frame(b.mac, a.mac, false, UDP, 50);
    let cvlan = TxOpts {
        insert: Some((0x8000, 0xa123)),
        ..TxOpts::default()
    };
    // vsd set (strip disabled): the tag arrives in the frame.
    a.post_wqe(&f, cvlan);
    a.ring_tx();
    assert_eq!(cqe_opcode(&a.tx_cq.poll().unwrap()), 0);
    let e = b.rx_cq.poll().unwrap();
    assert_eq!(cqe_byte_cnt(&e) as usize, f.len() + 4);
    let got = b.rx_bytes(cqe_wqe_counter(&e), f.len() + 4);
    b.repost_rx();
    assert_eq!(&got[..12], &f[..12]);
    assert_eq!(&got[12..16], &[0x81, 0x00, 0xa1, 0x23]);
    assert_eq!(&got[16..], &f[12..]);
    assert_eq!(rx_flags(&e).1 & 1, 0, "not stripped");
    // Strip on: the frame arrives as sent, the tag in the CQE.
    set_vsd(&mut b, false);
    a.post_wqe(&f, cvlan);
    a.ring_tx();
    a.tx_cq.poll().unwrap();
    let e = b.rx_cq.poll().unwrap();
    assert_eq!(cqe_byte_cnt(&e) as usize, f.len());
    assert_eq!(b.rx_bytes(cqe_wqe_counter(&e), f.len()), f);
    b.repost_rx();
    let (_, types, tci) = rx_flags(&e);
    assert_eq!((types & 1, tci), (1, 0xa123));
    assert_eq!(types & 0x0c, 0x08, "IPv4 seen through the tag");
    // A service tag (MLX5_ETH_WQE_SVLAN) is inserted as 0x88a8 and not stripped.
    a.post_wqe(
        &f,
        TxOpts {
            insert: Some((0x8001, 7)),
            ..TxOpts::default()
        },
    );
    a.ring_tx();
    a.tx_cq.poll().unwrap();
    let e = b.rx_cq.poll().unwrap();
    let got = b.rx_bytes(cqe_wqe_counter(&e), f.len() + 4);
    assert_eq!(&got[12..16], &[0x88, 0xa8, 0x00, 0x07]);
    assert_eq!(rx_flags(&e).1 & 1, 0);
    assert!(pa.sanitizer_violations().is_empty() && pb.sanitizer_violations().is_empty());
}

/// Post `f` with `o` and return the requester CQE's (opcode, syndrome);
/// an error moves the SQ to ERR, so recover it (ERR -> RST -> RDY).
fn try_send(n: &mut Net, f: &[u8], o: TxOpts) -> (u8, u8) {
    let index = n.post_wqe(f, o);
    n.ring_wqe(index);
    let e = n.tx_cq.poll().unwrap_or_else(|| panic!("CQE for {o:?}"));
    let r = (cqe_opcode(&e), cqe_syndrome(&e));
    if r.0 == 0xd {
        n.modify_sq(ERR, RST);
        n.modify_sq(RST, RDY);
    }
    r
}

fn inline(bytes: usize) -> TxOpts {
    TxOpts {
        inline: Some(bytes),
        ..TxOpts::default()
    }
}

#[test]
fn every_part_enforces_its_inline_rule() {
    const ERROR: (u8, u8) = (0xd, 0x02);
    const OK: (u8, u8) = (0x0, 0x0);
    for pers in Personality::ALL {
        let p = SimPlatform::new(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let f = ip_frame([2; 6], n.mac, false, TCP, 100);
        // wqe_inline_mode: per_protocol_networking_offload_caps byte 2 bits 5:4.
        let caps = n.raw.ok(&Msg::new(QUERY_HCA_CAP, 1 << 1 | 1, 0x10), 0x1010);
        let mode = (caps[0x10 + 2] >> 4) & 3;
        match pers {
            Personality::ConnectX4 => {
                assert_eq!(mode, 0, "L2 always");
                assert_eq!(try_send(&mut n, &f, inline(0)), ERROR);
                assert_eq!(try_send(&mut n, &f, inline(13)), ERROR);
                assert_eq!(try_send(&mut n, &f, inline(14)), OK);
                assert_eq!(try_send(&mut n, &f, inline(18)), OK);
                // Insert via the eth segment leaves no room for inline headers.
                let o = TxOpts {
                    insert: Some((0x8000, 5)),
                    ..TxOpts::default()
                };
                assert_eq!(try_send(&mut n, &f, o), ERROR);
                // A tagged frame needs the tag inline too.
                let mut tagged = f.clone();
                tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
                assert_eq!(try_send(&mut n, &tagged, inline(14)), ERROR);
                assert_eq!(try_send(&mut n, &tagged, inline(18)), OK);
            }
            Personality::ConnectX4Lx => {
                assert_eq!(mode, 1, "from the vport context");
                assert_eq!(try_send(&mut n, &f, inline(0)), ERROR);
                assert_eq!(try_send(&mut n, &f, inline(18)), OK);
                // Vport context min_wqe_inline_mode to 0 (none): field_select
                // min_inline (byte 0x0f, 0x80 of the 0x60 dword... bit 0x78).
                let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200);
                m.u8(0x0f, 0x80);
                n.raw.ok(&m, 0x10);
                // The SQ itself promised L2 (sqc.min_wqe_inline_mode 1): still needed.
                assert_eq!(try_send(&mut n, &f, inline(0)), ERROR);
            }
            _ => {
                assert_eq!(mode, 2, "nothing required");
                assert_eq!(try_send(&mut n, &f, inline(0)), OK);
                // An SQ created with min_wqe_inline_mode 2 (IP headers).
                let mut m = Msg::new(DESTROY_SQ, 0, 0x10);
                m.be32(0x08, n.sqn);
                n.raw.ok(&m, 0x10);
                let mut m = n.sq_msg(n.tx_cq.cqn, n.tisn);
                m.u8(0x20, 0x10 | 2);
                let out = n.raw.ok(&m, 0x10);
                n.sqn = be32(&out, 0x08) & 0xff_ffff;
                n.sq_pc = 0;
                n.sq_dbr.write_be32(4, 0);
                n.modify_sq(RST, RDY);
                assert_eq!(try_send(&mut n, &f, inline(14)), ERROR);
                assert_eq!(try_send(&mut n, &f, inline(34)), OK);
            }
        }
        assert!(p.sanitizer_violations().is_empty(), "{pers:?}");
    }
}

/// A TCP large send of `payload` bytes with MSS `mss`, over IPv4 or IPv6,
/// headers inlined; returns the frames on the wire.
fn lso(
    p: &SimPlatform,
    n: &mut Net,
    v6: bool,
    payload: usize,
    mss: u16,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut big = ip_frame([2; 6], n.mac, v6, TCP, payload);
    big[if v6 { 54 } else { 34 } + 13] = 0x19; // FIN | PSH | ACK
    let hl = if v6 { 74 } else { 54 };
    let o = TxOpts {
        opcode: 0x0e,
        cs_flags: 0xc0,
        mss,
        inline: Some(hl),
        ..TxOpts::default()
    };
    let index = n.post_wqe(&big, o);
    n.ring_wqe(index);
    let e = n.tx_cq.poll().expect("CQE");
    assert_eq!(cqe_opcode(&e), 0, "syndrome {:#x}", cqe_syndrome(&e));
    (big, p.take_tx())
}

#[test]
fn a_64k_lso_send_leaves_as_mss_segments_with_right_headers() {
    for v6 in [false, true] {
        let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let hl = if v6 { 74 } else { 54 };
        let payload = 65536 - hl;
        let (big, frames) = lso(&p, &mut n, v6, payload, 1448);
        assert_eq!(frames.len(), payload.div_ceil(1448));
        let mut data = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let last = i + 1 == frames.len();
            let len = if last { payload - 1448 * i } else { 1448 };
            assert_eq!(f.len(), hl + len, "segment {i}");
            assert_eq!(&f[..14], &big[..14]);
            if v6 {
                assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, 20 + len);
            } else {
                assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, 40 + len);
                assert_eq!(
                    u16::from_be_bytes([f[18], f[19]]),
                    0x1234 + i as u16,
                    "IP id"
                );
            }
            let tcp = hl - 20;
            let seq = u32::from_be_bytes([f[tcp + 4], f[tcp + 5], f[tcp + 6], f[tcp + 7]]);
            assert_eq!(seq, 0x0102_0304 + (1448 * i) as u32);
            // FIN and PSH only on the last segment; ACK on all.
            assert_eq!(f[tcp + 13], if last { 0x19 } else { 0x10 }, "flags of {i}");
            assert_eq!(checks(f), (true, true), "checksums of segment {i}");
            data.extend_from_slice(&f[hl..]);
        }
        assert_eq!(&data[..], &big[hl..], "payload reassembles");
        let s = p.port_stats();
        assert_eq!((s.tx_lso_sends, s.tx_frames), (1, frames.len() as u64));
        assert!(p.sanitizer_violations().is_empty());
    }
}

#[test]
fn lso_errors_are_local_qp_operation_errors() {
    let p = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let tcp = ip_frame([2; 6], n.mac, false, TCP, 4000);
    let udp = ip_frame([2; 6], n.mac, false, UDP, 4000);
    let lso = |inline: usize, mss: u16| TxOpts {
        opcode: 0x0e,
        mss,
        inline: Some(inline),
        ..TxOpts::default()
    };
    // Headers not inlined, no MSS, UDP, MSS on a SEND.
    assert_eq!(try_send(&mut n, &tcp, lso(34, 1000)), (0xd, 0x02));
    assert_eq!(try_send(&mut n, &tcp, lso(54, 0)), (0xd, 0x02));
    assert_eq!(try_send(&mut n, &udp, lso(42, 1000)), (0xd, 0x02));
    let send_mss = TxOpts {
        mss: 1000,
        ..TxOpts::default()
    };
    assert_eq!(try_send(&mut n, &tcp[..1000], send_mss), (0xd, 0x02));
    assert!(p.take_tx().is_empty());
    // Right: 4 segments of 1000.
    assert_eq!(try_send(&mut n, &tcp, lso(54, 1000)), (0, 0));
    assert_eq!(p.take_tx().len(), 4);
}
