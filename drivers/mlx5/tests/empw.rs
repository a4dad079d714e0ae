//! Transmit bursts as enhanced multi-packet send sessions
//! (`EthConfig::empw`, `drivers/mlx5/src/sq/ring/empw.rs`) against the
//! model: on every part and both ways (sessions where the part has
//! `enhanced_multi_pkt_send_wqe`, one WQE per frame where it has not or
//! the option is off), frames pointed to and frames inline, mixed sizes
//! through a 32-block ring (sessions wrap its end), both completion
//! modes; every frame intact and in order, every buffer back, no DMA
//! leaked, no sanitizer violation; a session broken by an error CQE
//! (recovered, every buffer back); no allocation on the path.

mod common;

use common::burst::{PARTS, fill, reap, send_bursts};
use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{NetDevice, TxMeta};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, CountingAlloc, Mode, SimPlatform};
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

fn has_empw(p: Personality) -> bool {
    !matches!(p, Personality::ConnectX4 | Personality::ConnectX4Lx)
}

#[test]
fn sessions_on_every_part_with_them_and_the_fallback_elsewhere() {
    // Mixed sizes, every fifth frame small enough to go inline.
    let lens: Vec<usize> = (0..600)
        .map(|i| {
            if i % 5 == 0 {
                60 + i % 41
            } else {
                60 + (i * 37) % 1455
            }
        })
        .collect();
    for part in PARTS {
        for empw in [None, Some(0), Some(100)] {
            for cq_every in [1u16, 8] {
                let (sa, sb) = SimPlatform::pair(part, Personality::ConnectX6Dx, Mode::Synchronous);
                let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
                let tx = EthConfig {
                    log_sq: 5,
                    cq_every,
                    empw,
                    ..EthConfig::default()
                };
                let mut a = open(&sa, tx);
                let mut b = open(&sb, EthConfig::default());
                let ctx = format!("{part:?} empw {empw:?} cq_every {cq_every}");
                let on = empw.is_some() && has_empw(part);
                // The ConnectX-4 Lx's sessions are legacy MPW (tests/mpw.rs).
                let sessions_on = on || (empw.is_some() && part == Personality::ConnectX4Lx);
                assert_eq!(a.sq().unwrap().empw().is_some(), sessions_on, "{ctx}");
                let got = send_bursts(&mut a, &mut b, &lens, 24);
                for (i, (seq, len)) in got.iter().enumerate() {
                    assert_eq!((*seq as usize, *len), (i, lens[i]), "{ctx}: in order");
                }
                let s = a.sq().unwrap().stats;
                assert_eq!(s.packets, lens.len() as u64, "{ctx}");
                assert_eq!(a.tx_free(), 32, "{ctx}: every buffer back");
                let sessions = sa.port_stats().tx_empw_sessions;
                if on {
                    // Bursts of 24 frames: a session or two each.
                    assert!(
                        sessions > 0 && sessions < lens.len() as u64 / 4,
                        "{ctx}: {sessions}"
                    );
                    assert!(s.completions <= sessions, "{ctx}");
                } else {
                    assert_eq!(sessions, 0, "{ctx}");
                }
                let bytes: u64 = lens.iter().map(|&l| l as u64).sum();
                assert_eq!(a.net_stats().tx_bytes, bytes, "{ctx}");
                assert_eq!(b.net_stats().rx_bytes, bytes, "{ctx}");
                assert_eq!(a.net_stats().errors + b.net_stats().errors, 0, "{ctx}");
                close(a, &sa, ba);
                close(b, &sb, bb);
            }
        }
    }
}

#[test]
fn a_session_broken_by_an_error_is_recovered_and_every_buffer_comes_back() {
    common::logger();
    for inline in [0u16, 100] {
        let (sa, sb) = SimPlatform::pair(
            Personality::ConnectX5,
            Personality::ConnectX5,
            Mode::Synchronous,
        );
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let cfg = EthConfig {
            empw: Some(inline),
            ..EthConfig::default()
        };
        let mut a = open(&sa, cfg);
        let mut b = open(&sb, cfg);
        let lens = vec![64usize; 48];
        send_bursts(&mut a, &mut b, &lens, 16);
        let sqn = a.sq().unwrap().sqn.0;
        sa.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: Some(sqn),
            count: 1,
        })
        .unwrap();
        let (dst, src) = (b.mac(), a.mac());
        let n = a
            .transmit_burst(16, TxMeta::default(), |i, buf| {
                fill(&mut buf[..64], dst, src, 1000 + i as u32);
                64
            })
            .unwrap();
        assert_eq!(n, 16);
        // The session's error CQE moves the SQ to ERR; the driver
        // recovers it and every buffer of the session comes back.
        reap(&mut a);
        assert_eq!(a.sq().unwrap().stats.recoveries, 1, "inline {inline}");
        assert_eq!(a.tx_free(), a.sq().unwrap().entries());
        let mut lost = 0;
        b.receive_burst(usize::MAX, |_, _| lost += 1);
        assert_eq!(lost, 0, "the broken session sent nothing");
        // Sessions go on after the recovery.
        let got = send_bursts(&mut a, &mut b, &lens, 16);
        assert_eq!(got.len(), lens.len());
        assert!(sa.port_stats().tx_empw_sessions >= 6);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn sessions_allocate_nothing() {
    for inline in [0u16, 100] {
        // Threaded: the model runs on its own threads, so what this
        // thread allocates is the driver's.
        let (sa, sb) = SimPlatform::pair(
            Personality::ConnectX6Dx,
            Personality::ConnectX6Dx,
            Mode::Threaded,
        );
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let cfg = EthConfig {
            empw: Some(inline),
            interrupts: false,
            ..EthConfig::default()
        };
        let mut a = open(&sa, cfg);
        let mut b = open(&sb, cfg);
        let (dst, src) = (b.mac(), a.mac());
        let window = b.rq().unwrap().entries() / 2;
        let pump = |a: &mut Port, b: &mut Port, n: usize| {
            let (mut sent, mut got) = (0, 0);
            while got < n {
                let k = 32.min(n - sent).min(window - (sent - got));
                sent += a
                    .transmit_burst(k, TxMeta::default(), |i, buf| {
                        fill(&mut buf[..64], dst, src, i as u32);
                        64
                    })
                    .unwrap();
                got += b.receive_burst(usize::MAX, |f, _| assert_eq!(f.len(), 64));
                std::thread::yield_now();
            }
        };
        pump(&mut a, &mut b, 5_000);
        let allocs = harness::thread_allocations();
        pump(&mut a, &mut b, 50_000);
        assert_eq!(
            harness::thread_allocations() - allocs,
            0,
            "allocations on the packet path (inline {inline})"
        );
        assert!(sa.port_stats().tx_empw_sessions > 0);
        reap(&mut a);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}
