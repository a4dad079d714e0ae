//! Legacy multi-packet send WQEs (`sim/src/datapath/mpw.rs`), written by
//! hand from the PRM layout: control segment (`opmod_idx_opcode` at 0:
//! opmod 0x01 in byte 0, opcode 0x0e in byte 3; `qpn_ds` at 4, `fm_ce_se`
//! at 11), Ethernet segment at 16 (`cs_flags` at +4, `mss` at +6 = every
//! frame's length, `inline_hdr.sz` / `insert` at +12), then one data
//! segment per frame (byte_count, lkey, addr) or one inline segment
//! (byte_count = frames × mss | 0x8000_0000, the frames back to back from
//! +4). Only the ConnectX-4 Lx model has `multi_pkt_send_wqe`, and only an
//! SQ created with `allow_multi_pkt_send_wqe` (sqc bit 27) takes the
//! sessions; frames go out in order across the ring's end; malformed
//! sessions complete with the PRM's error syndromes and send nothing.

mod common;
mod dp;

use common::*;
use cxos_drivers::DmaRegion;
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const QP_OP: u8 = 0x02;
const LENGTH: u8 = 0x01;
const PROT: u8 = 0x04;

/// The frames of a session.
enum Frames<'a> {
    /// Pointed to, frame `i` from transmit buffer `i`.
    Ptr(&'a [Vec<u8>]),
    /// One inline segment with the frames back to back.
    Inline(&'a [Vec<u8>]),
    /// Data segments as given: (byte_count, lkey, addr).
    Raw(&'a [(u32, u32, u64)]),
}

/// `Net::open`, its SQ replaced by one created with
/// `allow_multi_pkt_send_wqe` (sqc byte 0 bit 3: 0x08) when `allow`.
fn open(p: &SimPlatform, allow: bool) -> Net {
    let mut n = Net::open(p.clone());
    if !allow {
        return n;
    }
    n.modify_sq(RDY, RST);
    let mut m = Msg::new(DESTROY_SQ, 0, 0x10);
    m.be32(0x08, n.sqn);
    n.raw.ok(&m, 0x10);
    let mut m = n.sq_msg(n.tx_cq.cqn, n.tisn);
    m.u8(0x20, 0x18 | if n.inline > 0 { 1 } else { 0 });
    n.sqn = be32(&n.raw.ok(&m, 0x10), 0x08) & 0xff_ffff;
    n.modify_sq(RST, RDY);
    n
}

/// Write an MPW session at the producer counter (its segments wrap at the
/// ring's end like the device's fetch): opcode modifier `opmod` (1 for
/// MPW), Ethernet segment `eth`, then `frames`; returns its wqe_index.
fn post(n: &mut Net, opmod: u8, eth: [u8; 16], frames: Frames<'_>) -> u16 {
    let mut segs: Vec<[u8; 16]> = vec![[0; 16], eth];
    match frames {
        Frames::Ptr(fs) => {
            for (i, f) in fs.iter().enumerate() {
                n.tx_bufs.write_bytes(i * RX_BUF, f);
                let addr = n.tx_bufs.device_addr().get() + (i * RX_BUF) as u64;
                segs.push(data_seg(f.len() as u32, n.up.resd_lkey, addr));
            }
        }
        Frames::Inline(fs) => {
            let fs: Vec<&[u8]> = fs.iter().map(Vec::as_slice).collect();
            push_inline(&mut segs, &fs);
        }
        Frames::Raw(ds) => {
            for &(count, lkey, addr) in ds {
                segs.push(data_seg(count, lkey, addr));
            }
        }
    }
    n.post_session_segs(opmod, 0x0e, segs)
}

/// An Ethernet segment: `cs_flags` at +4, `mss` (the frames' length) at
/// +6.
fn eth(cs: u8, mss: u16) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[4] = cs;
    e[6..8].copy_from_slice(&mss.to_be_bytes());
    e
}

#[test]
fn pointed_and_inline_sessions_go_out_in_order_across_the_ring_end() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let p = SimPlatform::new(Personality::ConnectX4Lx, mode);
        let mut n = open(&p, true);
        let dst = [2, 0, 0, 0, 0, 9];
        let mut expect = Vec::new();
        let mut sessions = 0;
        // 128-block ring: pointer sessions of 6 frames (2 blocks), inline
        // sessions of 3 × 100 bytes (21 segments, 6 blocks); 40 rounds
        // wrap it twice, sessions running across its end.
        for round in 0..40u8 {
            for (k, (len, count, inline)) in [
                (64usize, 6usize, false),
                (100, 3, true),
                (1514, 2, false),
                (14, 1, true),
            ]
            .into_iter()
            .enumerate()
            {
                let seed = round.wrapping_mul(16).wrapping_add(k as u8 * 4);
                let frames: Vec<Vec<u8>> = (0..count)
                    .map(|i| frame(dst, n.mac, len, seed.wrapping_add(i as u8)))
                    .collect();
                let f = if inline {
                    Frames::Inline(&frames)
                } else {
                    Frames::Ptr(&frames)
                };
                let index = post(&mut n, 1, eth(0, len as u16), f);
                let e = n.tx_cq.wait(&p).expect("session CQE");
                assert_eq!(cqe_opcode(&e), 0, "requester CQE");
                assert_eq!(cqe_wqe_counter(&e), index);
                assert_eq!(cqe_byte_cnt(&e) as usize, len * count);
                assert_eq!(be32(&e, 0x38), (0x0e << 24) | n.sqn, "s_wqe_opcode_qpn");
                expect.extend(frames.iter().map(|f| padded(f)));
                sessions += 1;
            }
        }
        let mut sent = Vec::new();
        assert!(eventually(&p, || {
            sent.extend(p.take_tx());
            sent.len() >= expect.len()
        }));
        assert_eq!(sent, expect);
        assert!(n.sq_pc > 256, "the ring wrapped twice");
        assert_eq!(p.port_stats().tx_mpw_sessions, sessions);
        assert_eq!(p.port_stats().tx_empw_sessions, 0);
        assert!(p.sanitizer_violations().is_empty());
    }
}

#[test]
fn the_session_s_checksums_apply_to_every_frame() {
    let p = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut n = open(&p, true);
    // IPv4/UDP, header checksum and UDP checksum left 0.
    let mut f = frame([2, 0, 0, 0, 0, 9], n.mac, 64, 1);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f[34..42].copy_from_slice(&[0x12, 0x34, 0x56, 0x78, 0, 30, 0, 0]);
    let frames = vec![f.clone(), f.clone()];
    for fs in [Frames::Ptr(&frames), Frames::Inline(&frames)] {
        post(&mut n, 1, eth(0xc0, 64), fs);
        assert_eq!(cqe_opcode(&n.tx_cq.wait(&p).unwrap()), 0);
        let sent = p.take_tx();
        assert_eq!(sent.len(), 2);
        for s in &sent {
            assert_ne!(&s[24..26], &[0, 0], "IPv4 header checksum filled");
            assert_ne!(&s[40..42], &[0, 0], "UDP checksum filled");
            let mut rest = s.clone();
            rest[24..26].fill(0);
            rest[40..42].fill(0);
            assert_eq!(rest, f, "the rest as posted");
        }
    }
}

#[test]
fn only_the_part_with_the_capability_takes_the_sq_bit() {
    for pers in [
        Personality::ConnectX4,
        Personality::ConnectX5,
        Personality::ConnectX6,
        Personality::ConnectX6Dx,
    ] {
        let p = SimPlatform::new(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let mut m = n.sq_msg(n.tx_cq.cqn, n.tisn);
        m.u8(0x20, 0x18 | if n.inline > 0 { 1 } else { 0 });
        let (status, _) = n.raw.fails(&m, 0x10);
        assert_ne!(status, 0, "{pers:?}: allow_multi_pkt_send_wqe refused");
    }
    // QUERY_SQ reads the bit back on the ConnectX-4 Lx.
    let p = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut n = open(&p, true);
    let mut m = Msg::new(QUERY_SQ, 0, 0x10);
    m.be32(0x08, n.sqn);
    assert_eq!(n.raw.ok(&m, 0x20 + 0x30 + 0xc0 + 8)[0x20] & 0x08, 0x08);
}

/// Post one malformed session (built by `bad`) on `pers` (an SQ with the
/// bit where `allow`) and expect its error CQE with `syndrome`, the SQ
/// in ERR, and `sent_before` frames on the wire.
fn broken(
    pers: Personality,
    allow: bool,
    syndrome: u8,
    sent_before: usize,
    bad: impl Fn(&mut Net) -> u16,
) {
    let p = SimPlatform::new(pers, Mode::Synchronous);
    let mut n = open(&p, allow);
    let index = bad(&mut n);
    let e = n.tx_cq.wait(&p).expect("error CQE");
    assert_eq!(cqe_opcode(&e), 0xd, "{pers:?}: MLX5_CQE_REQ_ERR");
    assert_eq!(cqe_syndrome(&e), syndrome, "{pers:?}");
    assert_eq!(cqe_wqe_counter(&e), index);
    assert_eq!(n.query_state(QUERY_SQ, n.sqn), ERR);
    assert_eq!(p.take_tx().len(), sent_before, "{pers:?}");
    assert!(p.sanitizer_violations().is_empty());
}

#[test]
fn malformed_sessions_complete_with_errors() {
    let f = frame([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1], 64, 3);
    let two = vec![f.clone(), f.clone()];
    let lx = Personality::ConnectX4Lx;
    // Parts without the capability, or an SQ without the bit: the
    // opcode modifier is refused.
    for pers in [Personality::ConnectX4, Personality::ConnectX5, lx] {
        broken(pers, false, QP_OP, 0, |n| {
            post(n, 1, eth(0, 64), Frames::Ptr(&two))
        });
    }
    // An opcode modifier MPW is not.
    broken(lx, true, QP_OP, 0, |n| {
        post(n, 2, eth(0, 64), Frames::Ptr(&two))
    });
    // Inline headers, a VLAN insert, software-parser offsets, a tunnel
    // checksum flag: not in a session.
    for (at, v) in [(13usize, 18u8), (12, 0x80), (0, 1), (4, 0x20)] {
        broken(lx, true, QP_OP, 0, |n| {
            let mut e = eth(0, 64);
            e[at] = v;
            post(n, 1, e, Frames::Ptr(&two))
        });
    }
    // A frame length of 0, 13 and beyond the port: nothing sent.
    for mss in [0u16, 13, 20_000] {
        broken(lx, true, LENGTH, 0, |n| {
            let a = n.tx_bufs.device_addr().get();
            let k = n.up.resd_lkey;
            post(n, 1, eth(0, mss), Frames::Raw(&[(mss as u32, k, a)]))
        });
    }
    // A data segment whose length is not the session's: nothing sent,
    // not even the good frame before it.
    broken(lx, true, LENGTH, 0, |n| {
        let a = n.tx_bufs.device_addr().get();
        let k = n.up.resd_lkey;
        post(n, 1, eth(0, 64), Frames::Raw(&[(64, k, a), (60, k, a)]))
    });
    // Seven frames: one more than a session holds; none at all.
    let seven = vec![f.clone(); 7];
    broken(lx, true, QP_OP, 0, |n| {
        post(n, 1, eth(0, 64), Frames::Ptr(&seven))
    });
    broken(lx, true, QP_OP, 0, |n| {
        post(n, 1, eth(0, 64), Frames::Raw(&[]))
    });
    broken(lx, true, QP_OP, 0, |n| {
        post(n, 1, eth(0, 64), Frames::Inline(&seven))
    });
    // An inline segment after a pointer: never mixed.
    broken(lx, true, QP_OP, 0, |n| {
        let a = n.tx_bufs.device_addr().get();
        let k = n.up.resd_lkey;
        post(
            n,
            1,
            eth(0, 64),
            Frames::Raw(&[(64, k, a), (0x8000_0000 | 64, 0, 0)]),
        )
    });
    // Inline bytes that are not whole frames; more than the WQE holds;
    // a segment after the inline one.
    let odd = vec![vec![0u8; 100]];
    broken(lx, true, LENGTH, 0, |n| {
        post(n, 1, eth(0, 64), Frames::Inline(&odd))
    });
    broken(lx, true, LENGTH, 0, |n| {
        post(n, 1, eth(0, 64), Frames::Raw(&[(0x8000_0000 | 192, 0, 0)]))
    });
    broken(lx, true, LENGTH, 0, |n| {
        // byte_count 64, then 60 bytes in its segment and four more
        // segments of 16: one too many.
        post(
            n,
            1,
            eth(0, 64),
            Frames::Raw(&[
                (0x8000_0000 | 64, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
            ]),
        )
    });
    // A bad lkey on the third frame: the two before it went out.
    broken(lx, true, PROT, 2, |n| {
        let a = n.tx_bufs.device_addr().get();
        let k = n.up.resd_lkey;
        n.tx_bufs.write_bytes(0, &f);
        post(
            n,
            1,
            eth(0, 64),
            Frames::Raw(&[(64, k, a), (64, k, a), (64, k ^ 0x00ff_ff00, a)]),
        )
    });
}
