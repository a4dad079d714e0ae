//! Transmit bursts as legacy multi-packet send sessions
//! (`drivers/mlx5/src/sq/ring/mpw.rs`, switched by `EthConfig::empw` and
//! `QueueSet::set_empw` like eMPW) against the model: on the ConnectX-4
//! Lx (the part with `multi_pkt_send_wqe`) both ways, frames pointed to
//! and inline, mixed sizes that break sessions, through a 32-block ring
//! (sessions wrap its end), both completion modes, both model modes; every
//! frame intact and in order, every buffer back, no DMA leaked, no
//! sanitizer violation. On
//! every other part no MPW session at all (ConnectX-4: one WQE per frame;
//! ConnectX-5 and later: eMPW). Bursts the session cannot carry (a VLAN
//! insert, per-frame checksum flags) go one WQE per frame. A session
//! broken by an error CQE is recovered with every buffer back; no
//! allocation on the path.

mod common;

use common::burst::{PARTS, assert_delivered, fill, reap, send_bursts, session_error_recovered_in};
use common::{close_port as close, open_port as open};
use cxos_drivers::{NetDevice, TxMeta};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{CountingAlloc, Mode, SimPlatform};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

const LX: Personality = Personality::ConnectX4Lx;

/// Runs of equal lengths (a session's frames), every eleventh frame a
/// length of its own.
fn mixed(n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| {
            if i % 11 == 5 {
                61 + i % 40
            } else {
                [64, 128, 1514, 64, 300, 90][(i / 9) % 6]
            }
        })
        .collect()
}

#[test]
fn sessions_on_the_cx4_lx_both_ways_and_none_elsewhere() {
    let lens = mixed(600);
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        for empw in [None, Some(0), Some(100)] {
            for cq_every in [1u16, 8] {
                let (sa, sb) = SimPlatform::pair(part, Personality::ConnectX6Dx, mode);
                let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
                let tx = EthConfig {
                    log_sq: 5,
                    cq_every,
                    empw,
                    ..EthConfig::default()
                };
                let mut a = open(&sa, tx);
                let mut b = open(&sb, EthConfig::default());
                let ctx = format!("{part:?} {mode:?} empw {empw:?} cq_every {cq_every}");
                let on = empw.is_some() && part == LX;
                assert_eq!(a.tuning().legacy_mpw, part == LX, "{ctx}");
                assert_eq!(a.sq().unwrap().legacy_mpw(), part == LX, "{ctx}");
                let got = send_bursts(&mut a, &mut b, &lens, 24);
                assert_delivered(&a, &b, &got, &lens, &ctx);
                let s = a.sq().unwrap().stats;
                assert_eq!(a.tx_free(), 32, "{ctx}: every buffer back");
                let sessions = sa.port_stats().tx_mpw_sessions;
                if on {
                    // At most six frames a session, and runs of nine
                    // broken by odd lengths and bursts of 24: well under
                    // a WQE per frame.
                    // Threaded, completions come back later and bursts
                    // are cut by the ring's room (how much depends on the
                    // machine's load): still fewer sessions than frames.
                    let most = match mode {
                        Mode::Synchronous => lens.len() as u64 / 2,
                        Mode::Threaded => lens.len() as u64,
                    };
                    assert!(
                        sessions >= lens.len() as u64 / 6 && sessions < most,
                        "{ctx}: {sessions}"
                    );
                    assert!(s.completions <= sessions, "{ctx}");
                    assert_eq!(sa.port_stats().tx_empw_sessions, 0, "{ctx}");
                } else {
                    assert_eq!(sessions, 0, "{ctx}");
                }
                close(a, &sa, ba);
                close(b, &sb, bb);
            }
        }
    }
}

#[test]
fn equal_frames_fill_sessions_of_six() {
    for inline in [0u16, 100] {
        let (sa, sb) = SimPlatform::pair(LX, LX, Mode::Synchronous);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let cfg = EthConfig {
            empw: Some(inline),
            ..EthConfig::default()
        };
        let mut a = open(&sa, cfg);
        let mut b = open(&sb, EthConfig::default());
        // 20 bursts of 30 frames of 64 bytes: five sessions each.
        let lens = vec![64usize; 600];
        let got = send_bursts(&mut a, &mut b, &lens, 30);
        assert_eq!(got.len(), 600);
        let sessions = sa.port_stats().tx_mpw_sessions;
        assert!(
            (100..=110).contains(&sessions),
            "inline {inline}: {sessions}"
        );
        assert_eq!(a.tx_free(), a.sq().unwrap().entries());
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn bursts_a_session_cannot_carry_go_one_wqe_per_frame() {
    let (sa, sb) = SimPlatform::pair(LX, LX, Mode::Synchronous);
    let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
    let mut a = open(&sa, EthConfig::default());
    let mut b = open(&sb, EthConfig::default());
    let dst = b.mac();
    for meta in [
        TxMeta {
            vlan: Some(7),
            ..TxMeta::default()
        },
        // Checksums without the geometry: flags frame by frame.
        TxMeta {
            csum: true,
            ..TxMeta::default()
        },
    ] {
        let n = a
            .transmit_burst(16, meta, |i, buf| {
                fill(&mut buf[..64], dst, a_mac(), i as u32);
                64
            })
            .unwrap();
        assert_eq!(n, 16);
        reap(&mut a);
        let mut got = 0;
        for _ in 0..100 {
            got += b.receive_burst(usize::MAX, |_, _| {});
            if got == 16 {
                break;
            }
        }
        assert_eq!(got, 16, "{meta:?}");
    }
    assert_eq!(sa.port_stats().tx_mpw_sessions, 0);
    // A plain burst right after: sessions again.
    let got = send_bursts(&mut a, &mut b, &[64; 12], 12);
    assert_eq!(got.len(), 12);
    assert_eq!(sa.port_stats().tx_mpw_sessions, 2);
    assert_eq!(a.tx_free(), a.sq().unwrap().entries());
    close(a, &sa, ba);
    close(b, &sb, bb);
}

fn a_mac() -> [u8; 6] {
    [2, 0, 0, 0, 0, 9]
}

#[test]
fn switched_at_run_time_like_empw() {
    let (sa, sb) = SimPlatform::pair(LX, LX, Mode::Synchronous);
    let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
    let mut a = open(
        &sa,
        EthConfig {
            empw: None,
            ..EthConfig::default()
        },
    );
    let mut b = open(&sb, EthConfig::default());
    let t = a.tuning();
    assert!(!t.empw && t.can_empw && t.legacy_mpw);
    for on in [false, true, false, true] {
        a.set_empw(on).unwrap();
        assert_eq!(a.tuning().empw, on);
        let s0 = sa.port_stats().tx_mpw_sessions;
        send_bursts(&mut a, &mut b, &[64; 48], 24);
        let sessions = sa.port_stats().tx_mpw_sessions - s0;
        assert_eq!(sessions, if on { 8 } else { 0 }, "MPW {on}");
    }
    close(a, &sa, ba);
    close(b, &sb, bb);
}

#[test]
fn a_session_broken_by_an_error_is_recovered_and_every_buffer_comes_back() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        session_error_recovered_in(LX, mode, mpw_sessions, |before, after| after - before >= 9);
    }
}

#[test]
fn sessions_allocate_nothing() {
    common::burst::sessions_allocate_nothing(LX, mpw_sessions);
}

fn mpw_sessions(s: &SimPlatform) -> u64 {
    s.port_stats().tx_mpw_sessions
}
