//! Transmit bursts as enhanced multi-packet send sessions
//! (`EthConfig::empw`, `drivers/mlx5/src/sq/ring/empw.rs`) against the
//! model: on every part and both ways (sessions where the part has
//! `enhanced_multi_pkt_send_wqe`, one WQE per frame where it has not or
//! the option is off), frames pointed to and frames inline, mixed sizes
//! through a 32-block ring (sessions wrap its end), both completion
//! modes; every frame intact and in order, every buffer back, no DMA
//! leaked, no sanitizer violation, in both model modes; a session
//! broken by an error CQE (recovered, every buffer back) and no
//! allocation on the path, on every part with eMPW.

mod common;

use common::burst::{PARTS, assert_delivered, send_bursts, session_error_recovered_in};
use common::{close_port as close, open_port as open};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{CountingAlloc, Mode, SimPlatform};

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
                let on = empw.is_some() && has_empw(part);
                // The ConnectX-4 Lx's sessions are legacy MPW (tests/mpw.rs).
                let sessions_on = on || (empw.is_some() && part == Personality::ConnectX4Lx);
                assert_eq!(a.sq().unwrap().empw().is_some(), sessions_on, "{ctx}");
                let got = send_bursts(&mut a, &mut b, &lens, 24);
                assert_delivered(&a, &b, &got, &lens, &ctx);
                let s = a.sq().unwrap().stats;
                assert_eq!(a.tx_free(), 32, "{ctx}: every buffer back");
                let sessions = sa.port_stats().tx_empw_sessions;
                if on {
                    // Bursts of 24 frames: a session or two each.
                    // Threaded, completions come back later and bursts
                    // are cut by the ring's room (how much depends on
                    // the machine's load): still fewer sessions than
                    // frames.
                    let most = match mode {
                        Mode::Synchronous => lens.len() as u64 / 4,
                        Mode::Threaded => lens.len() as u64,
                    };
                    assert!(sessions > 0 && sessions < most, "{ctx}: {sessions}");
                    assert!(s.completions <= sessions, "{ctx}");
                } else {
                    assert_eq!(sessions, 0, "{ctx}");
                }
                close(a, &sa, ba);
                close(b, &sb, bb);
            }
        }
    }
}

/// The parts with `enhanced_multi_pkt_send_wqe`.
const EMPW_PARTS: [Personality; 3] = [
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

#[test]
fn a_session_broken_by_an_error_is_recovered_and_every_buffer_comes_back() {
    for part in EMPW_PARTS {
        assert!(has_empw(part));
        for mode in [Mode::Synchronous, Mode::Threaded] {
            session_error_recovered_in(part, mode, empw_sessions, |_, after| after >= 6);
        }
    }
}

#[test]
fn sessions_allocate_nothing() {
    for part in EMPW_PARTS {
        common::burst::sessions_allocate_nothing(part, empw_sessions);
    }
}

fn empw_sessions(s: &SimPlatform) -> u64 {
    s.port_stats().tx_empw_sessions
}
