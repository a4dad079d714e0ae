//! Enhanced multi-packet send WQEs (`sim/src/datapath/empw.rs`), written
//! by hand from the PRM layout: control segment (`opmod_idx_opcode` at 0
//! with opcode 0x29, `qpn_ds` at 4, `fm_ce_se` at 11), Ethernet segment at
//! 16 (`cs_flags` at +4, `mss` at +6, `inline_hdr.sz` / `insert` at +12),
//! then per frame a data segment (byte_count, lkey, addr) or an inline
//! data segment (byte_count | 0x8000_0000, the frame from +4, padded to
//! 16 bytes). Frames of a session go out in order, wrapping the ring;
//! malformed sessions complete with the PRM's error syndromes; parts
//! without `enhanced_multi_pkt_send_wqe` refuse the opcode.

mod common;
mod dp;

use common::*;
use cxos_drivers::DmaRegion;
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// One frame of a session.
enum Part<'a> {
    /// From transmit buffer `slot`.
    Ptr(&'a [u8], usize),
    Inline(&'a [u8]),
    /// A data segment as given: (byte_count, lkey, addr).
    Raw(u32, u32, u64),
}

/// Write an eMPW session at the producer counter (its segments wrap at
/// the ring's end like the device's fetch), with Ethernet segment `eth`;
/// returns its wqe_index.
fn post_session(n: &mut Net, eth: [u8; 16], parts: &[Part<'_>]) -> u16 {
    let mut segs: Vec<[u8; 16]> = vec![[0; 16], eth];
    for p in parts {
        match *p {
            Part::Ptr(f, slot) => {
                n.tx_bufs.write_bytes(slot * RX_BUF, f);
                let addr = n.tx_bufs.device_addr().get() + (slot * RX_BUF) as u64;
                segs.push(data_seg(f.len() as u32, n.up.resd_lkey, addr));
            }
            Part::Inline(f) => push_inline(&mut segs, &[f]),
            Part::Raw(count, lkey, addr) => segs.push(data_seg(count, lkey, addr)),
        }
    }
    n.post_session_segs(0, 0x29, segs)
}

/// An Ethernet segment: `cs_flags`, and a VLAN TCI to insert.
fn eth(cs: u8, vlan: Option<u16>) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[4] = cs;
    if let Some(tci) = vlan {
        e[12..14].copy_from_slice(&0x8000u16.to_be_bytes());
        e[14..16].copy_from_slice(&tci.to_be_bytes());
    }
    e
}

#[test]
fn sessions_of_pointed_and_inline_frames_go_out_in_order_across_the_ring_end() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let p = SimPlatform::new(Personality::ConnectX5, mode);
        let mut n = Net::open(p.clone());
        let dst = [2, 0, 0, 0, 0, 9];
        let mut expect = Vec::new();
        let mut sessions = 0;
        // 128-block ring, 5-block sessions (18 segments): the one at block
        // 125 runs across the ring's end; 60 of them wrap it twice.
        for round in 0..60u8 {
            let lens = [14usize, 60, 64, 200, 1514, 100, 33];
            let frames: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &l)| frame(dst, n.mac, l.max(14), round.wrapping_add(i as u8)))
                .collect();
            let parts: Vec<Part<'_>> = frames
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if f.len() <= 100 && i % 2 == 1 {
                        Part::Inline(f)
                    } else {
                        Part::Ptr(f, i)
                    }
                })
                .collect();
            let index = post_session(&mut n, eth(0, None), &parts);
            let e = n.tx_cq.wait(&p).expect("session CQE");
            assert_eq!(cqe_opcode(&e), 0, "requester CQE");
            assert_eq!(cqe_wqe_counter(&e), index);
            assert_eq!(
                cqe_byte_cnt(&e) as usize,
                lens.iter().map(|l| *l.max(&14)).sum::<usize>()
            );
            assert_eq!(be32(&e, 0x38), (0x29 << 24) | n.sqn, "s_wqe_opcode_qpn");
            expect.extend(frames.iter().map(|f| padded(f)));
            sessions += 1;
        }
        let mut sent = Vec::new();
        assert!(eventually(&p, || {
            sent.extend(p.take_tx());
            sent.len() >= expect.len()
        }));
        assert_eq!(sent, expect);
        assert!(n.sq_pc > 128, "the ring wrapped");
        assert_eq!(p.port_stats().tx_empw_sessions, sessions);
        assert!(p.sanitizer_violations().is_empty());
    }
}

#[test]
fn the_session_s_vlan_insert_and_checksums_apply_to_every_frame() {
    let p = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // IPv4/UDP, header checksum and UDP checksum left 0.
    let mut f = frame([2, 0, 0, 0, 0, 9], n.mac, 64, 1);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f[34..42].copy_from_slice(&[0x12, 0x34, 0x56, 0x78, 0, 30, 0, 0]);
    let g = f.clone();
    post_session(
        &mut n,
        eth(0xc0, Some(0x0123)),
        &[Part::Ptr(&f, 0), Part::Inline(&g)],
    );
    assert_eq!(cqe_opcode(&n.tx_cq.wait(&p).unwrap()), 0);
    let sent = p.take_tx();
    assert_eq!(sent.len(), 2);
    for s in &sent {
        assert_eq!(&s[12..16], &[0x81, 0x00, 0x01, 0x23], "tag inserted");
        assert_eq!(&s[16..18], &[0x08, 0x00]);
        assert_ne!(&s[28..30], &[0, 0], "IPv4 header checksum filled");
        assert_ne!(&s[44..46], &[0, 0], "UDP checksum filled");
        let mut rest = s[18..].to_vec();
        rest[10..12].fill(0);
        rest[26..28].fill(0);
        assert_eq!(rest, &f[14..], "the rest as posted");
    }
}

/// Post one malformed session (built by `bad`) and expect its error CQE
/// with `syndrome`, the SQ in ERR, and the frames `sent_before` on the
/// wire.
fn broken(pers: Personality, syndrome: u8, sent_before: usize, bad: impl Fn(&mut Net) -> u16) {
    let p = SimPlatform::new(pers, Mode::Synchronous);
    let mut n = Net::open(p.clone());
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
    const QP_OP: u8 = 0x02;
    const LENGTH: u8 = 0x01;
    const PROT: u8 = 0x04;
    // The parts without the capability refuse the opcode.
    for pers in [Personality::ConnectX4, Personality::ConnectX4Lx] {
        broken(pers, QP_OP, 0, |n| {
            post_session(n, eth(0, None), &[Part::Inline(&f)])
        });
    }
    let cx5 = Personality::ConnectX5;
    // Inline headers in the Ethernet segment, an MSS: not in a session.
    broken(cx5, QP_OP, 0, |n| {
        let mut e = eth(0, None);
        e[12..14].copy_from_slice(&18u16.to_be_bytes());
        post_session(n, e, &[Part::Ptr(&f, 0)])
    });
    broken(cx5, QP_OP, 0, |n| {
        let mut e = eth(0, None);
        e[6..8].copy_from_slice(&1000u16.to_be_bytes());
        post_session(n, e, &[Part::Ptr(&f, 0)])
    });
    // No frame at all.
    broken(cx5, QP_OP, 0, |n| post_session(n, eth(0, None), &[]));
    // A zero-length, a too short and a too long frame: nothing is sent,
    // even the good frame before them.
    for count in [0u32, 13, 20_000] {
        broken(cx5, LENGTH, 0, |n| {
            let a = n.tx_bufs.device_addr().get();
            let k = n.up.resd_lkey;
            post_session(n, eth(0, None), &[Part::Ptr(&f, 0), Part::Raw(count, k, a)])
        });
    }
    // An inline frame claiming more bytes than the WQE holds.
    broken(cx5, LENGTH, 0, |n| {
        post_session(n, eth(0, None), &[Part::Raw(0x8000_0000 | 200, 0, 0)])
    });
    // A bad lkey on the third frame: the two before it went out.
    broken(cx5, PROT, 2, |n| {
        let a = n.tx_bufs.device_addr().get();
        let k = n.up.resd_lkey ^ 0x00ff_ff00;
        post_session(
            n,
            eth(0, None),
            &[Part::Ptr(&f, 0), Part::Inline(&f), Part::Raw(64, k, a)],
        )
    });
}
