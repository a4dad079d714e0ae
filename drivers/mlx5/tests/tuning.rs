//! The fast path's run-time switches (`QueueSet::set_empw`,
//! `set_cqe_compression`, `set_cq_moderation`, `set_cq_every`; what the
//! kernel's `ethtool` changes) against the model: each technique turned
//! on and off on an open queue set, traffic after each change, and the
//! model's own counters say whether it was used (eMPW sessions executed,
//! compressed CQE sessions written, moderated completion events), the
//! frames intact and in order, every buffer back, no DMA leaked, no
//! sanitizer violation. A part without a capability refuses the switch
//! and keeps the fallback.

mod common;

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{NetDevice, TxMeta};
use mlx5::EthConfig;
use mlx5::cq::QueryCq;
use mlx5::error::{Error, Unsupported};
use mlx5::queue_set::Tuning;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::wire::PortStats;

fn stats(sim: &SimPlatform) -> PortStats {
    sim.with_model(|f| f.nic.wire.stats.clone())
}

fn frame(dst: [u8; 6], len: usize, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    common::fill(&mut b, dst, seq);
    b
}

/// Send `n` frames of 100 bytes in bursts of 16; the model's wire gets
/// them all, in order; every transmit buffer comes back.
fn send(sim: &SimPlatform, a: &mut Port, n: usize) {
    let dst = [0x02, 0, 0, 0, 0, 0x99];
    let mut sent = 0;
    let mut got = Vec::new();
    let mut idle = 0;
    while got.len() < n {
        let k = 16.min(n - sent);
        let posted = a
            .transmit_burst(k, TxMeta::default(), |i, buf| {
                common::fill(&mut buf[..100], dst, (sent + i) as u32);
                100
            })
            .unwrap();
        sent += posted;
        a.poll();
        got.extend(sim.take_tx());
        idle += 1;
        assert!(idle < 10_000, "stuck at {} of {n}", got.len());
    }
    for (i, f) in got.iter().enumerate() {
        assert_eq!(
            f.as_slice(),
            frame(dst, 100, i as u32).as_slice(),
            "frame {i}"
        );
    }
    for _ in 0..1000 {
        if a.tx_free() == a.sq().unwrap().entries() {
            return;
        }
        a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
        a.poll();
    }
    panic!("transmit buffers not back: {} free", a.tx_free());
}

/// `bursts` bursts of 16 frames injected and read back in order.
fn receive(sim: &SimPlatform, b: &mut Port, bursts: usize) {
    let dst = b.mac();
    for k in 0..bursts {
        let frames: Vec<Vec<u8>> = (0..16)
            .map(|i| frame(dst, 128, (k * 16 + i) as u32))
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        sim.inject_rx_burst(&refs);
        let mut got = 0;
        let mut idle = 0;
        while got < 16 {
            b.receive_burst(usize::MAX, |f, _| {
                assert_eq!(f, frames[got].as_slice(), "burst {k} frame {got}");
                got += 1;
            });
            b.poll();
            idle += 1;
            assert!(idle < 10_000, "burst {k}: {got} of 16");
        }
    }
}

/// Frames one at a time, each taken (and the CQ re-armed) before the
/// next arrives: the completion events they raised.
fn one_by_one(sim: &SimPlatform, b: &mut Port, n: usize) -> u64 {
    let cqn = b.rx_cq().unwrap().cqn;
    let events = || sim.with_model(|f| f.nic.cqs.get(cqn.0).map_or(0, |c| c.events));
    let before = events();
    let dst = b.mac();
    for i in 0..n {
        sim.inject_rx(&frame(dst, 128, i as u32));
        let mut idle = 0;
        while b.receive(|f, _| f.len()).is_none() {
            idle += 1;
            assert!(idle < 100_000, "frame {i} never arrived");
        }
        b.poll();
    }
    events() - before
}

#[test]
fn each_technique_on_and_off_at_run_time() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut p = open(
        &sim,
        EthConfig {
            log_rq: 6,
            empw: None,
            ..EthConfig::default()
        },
    );
    let t = p.tuning();
    assert_eq!(
        t,
        Tuning {
            cq_every: 32,
            cq_moderation: None,
            tx_cq_moderation: None,
            cqe_compression: false,
            empw: false,
            legacy_mpw: false,
            can_moderate: true,
            can_compress: true,
            can_empw: true,
            blueflame: false,
            can_blueflame: true,
        }
    );

    // eMPW: off, on, off again; the model counts the sessions.
    for on in [false, true, false] {
        p.set_empw(on).unwrap();
        assert_eq!(p.tuning().empw, on);
        let s0 = stats(&sim).tx_empw_sessions;
        send(&sim, &mut p, 64);
        let sessions = stats(&sim).tx_empw_sessions - s0;
        assert_eq!(sessions > 0, on, "eMPW {on}: {sessions} sessions");
    }

    // The completion interval: a CQE every 4 WQEs (and at each doorbell).
    p.set_cq_every(4);
    assert_eq!(p.tuning().cq_every, 4);
    let c0 = p.sq().unwrap().stats.completions;
    send(&sim, &mut p, 64);
    assert_eq!(p.sq().unwrap().stats.completions - c0, 16);
    p.set_cq_every(32);

    // CQE compression: the receive queues are recreated each time.
    for on in [true, false, true, false] {
        let old = p.rx_cq().unwrap().cqn;
        p.set_cqe_compression(on).unwrap();
        let cqn = p.rx_cq().unwrap().cqn;
        assert_ne!(cqn, old, "a new CQ");
        assert_eq!(
            sim.with_model(|f| f.nic.cqs.get(cqn.0).unwrap().compression.is_some()),
            on
        );
        let s0 = stats(&sim).rx_compressed_sessions;
        receive(&sim, &mut p, 4);
        let sessions = stats(&sim).rx_compressed_sessions - s0;
        assert_eq!(sessions > 0, on, "compression {on}: {sessions} sessions");
    }
    // Unchanged: nothing recreated.
    let cqn = p.rx_cq().unwrap().cqn;
    p.set_cqe_compression(false).unwrap();
    assert_eq!(p.rx_cq().unwrap().cqn, cqn);

    // Moderation: count 8, then off; MODIFY_CQ on the live CQ.
    for (m, events) in [(Some((0, 8)), 4), (None, 32), (Some((0, 4)), 8)] {
        p.set_cq_moderation(m).unwrap();
        assert_eq!(p.tuning().cq_moderation, m);
        let q = QueryCq(p.rx_cq().unwrap().cqn);
        let info = p.control_mut().exec(&q).unwrap();
        assert_eq!((info.cq_period, info.cq_max_count), m.unwrap_or((0, 0)));
        let s0 = stats(&sim).cq_moderated_events;
        assert_eq!(one_by_one(&sim, &mut p, 32), events, "{m:?}");
        let moderated = stats(&sim).cq_moderated_events - s0;
        assert_eq!(moderated, if m.is_some() { events } else { 0 }, "{m:?}");
    }
    // (0, 0) is off.
    p.set_cq_moderation(Some((0, 0))).unwrap();
    assert_eq!(p.tuning().cq_moderation, None);
    // Compression and moderation together survive the recreation.
    p.set_cq_moderation(Some((0, 8))).unwrap();
    p.set_cqe_compression(true).unwrap();
    let q = QueryCq(p.rx_cq().unwrap().cqn);
    let info = p.control_mut().exec(&q).unwrap();
    assert_eq!(info.cq_max_count, 8);
    receive(&sim, &mut p, 2);
    close(p, &sim, before);
}

#[test]
fn a_part_without_the_capability_refuses_and_keeps_the_fallback() {
    let sim = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut p = open(&sim, EthConfig::default());
    let t = p.tuning();
    assert!(!t.empw && !t.cqe_compression && !t.can_empw && !t.can_compress);
    assert_eq!(
        p.set_empw(true),
        Err(Error::Unsupported(Unsupported::Capability(
            "enhanced_multi_pkt_send_wqe"
        )))
    );
    assert_eq!(
        p.set_cqe_compression(true),
        Err(Error::Unsupported(Unsupported::Capability(
            "cqe_compression"
        )))
    );
    // Off is always fine, and the traffic goes on.
    p.set_empw(false).unwrap();
    p.set_cqe_compression(false).unwrap();
    send(&sim, &mut p, 32);
    receive(&sim, &mut p, 2);
    assert_eq!(stats(&sim).tx_empw_sessions, 0);
    assert_eq!(stats(&sim).rx_compressed_sessions, 0);
    close(p, &sim, before);
}
