//! CQ event moderation (`EthConfig::cq_moderation`, MODIFY_CQ) against the
//! model, in both model modes: the receive CQ's completion events are
//! counted in the model (its per-CQ event counter) while the driver takes
//! 32 frames one at a time, re-arming after each event. Off: an event per
//! frame. Count 8: one event per 8 frames. A period: a frame that no
//! count completes is still signalled once the period has passed (never
//! before). MODIFY_CQ changes both at run time. A part without
//! `cq_moderation`: the option is ignored (an event per frame). Every
//! buffer back, no DMA leaked, no sanitizer violation.

mod common;

use std::time::{Duration, Instant};

use common::{Port, close_port as close, eventually, open_port as open};
use cxos_drivers::NetDevice;
use mlx5::EthConfig;
use mlx5::cq::{Cqn, ModifyCq, QueryCq};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const BURST: usize = 32;

fn frame(dst: [u8; 6], seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    common::fill(&mut b, dst, seq);
    b
}

fn events(sim: &SimPlatform, cqn: Cqn) -> u64 {
    sim.with_model(|f| f.nic.cqs.get(cqn.0).map_or(0, |c| c.events))
}

fn rx_cqn(b: &Port) -> Cqn {
    b.rx_cq().expect("receive CQ").cqn
}

/// `n` frames, each taken by the driver before the next arrives; returns
/// the completion events they raised and the time they took.
fn one_by_one(sim: &SimPlatform, b: &mut Port, n: usize) -> (u64, Duration) {
    let cqn = rx_cqn(b);
    let before = events(sim, cqn);
    let (dst, start) = (b.mac(), Instant::now());
    for i in 0..n {
        sim.inject_rx(&frame(dst, i as u32));
        let mut idle = 0;
        while b.receive(|f, _| f.len()).is_none() {
            idle += 1;
            assert!(idle < 100_000, "frame {i} never arrived");
        }
        // Events seen re-arm the CQ (interrupt mode).
        b.poll();
    }
    (events(sim, cqn) - before, start.elapsed())
}

/// Let time pass for the model: its thread does that by itself
/// (threaded); synchronous, the model runs only when the driver touches
/// the device or the test asks, so the test runs its timers.
fn tick(sim: &SimPlatform) {
    if sim.mode() == Mode::Synchronous {
        sim.with_model(|f| f.cq_timers());
    }
}

fn cfg(m: Option<(u16, u16)>) -> EthConfig {
    EthConfig {
        log_rq: 6,
        cq_moderation: m,
        ..EthConfig::default()
    }
}

#[test]
fn a_burst_raises_fewer_events() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        for (m, what) in [
            (None, "off"),
            (Some((0, 8)), "count 8"),
            (Some((4095, 8)), "count 8, period 4095 us"),
            (Some((50, 8)), "count 8, period 50 us"),
        ] {
            let sim = SimPlatform::new(Personality::ConnectX5, mode);
            let before = sim.dma_in_use();
            let mut b = open(&sim, cfg(m));
            let q = QueryCq(rx_cqn(&b));
            let info = b.control_mut().exec(&q).expect("QUERY_CQ");
            let (p, c) = m.unwrap_or((0, 0));
            assert_eq!(
                (info.cq_period, info.cq_max_count),
                (p, c),
                "{mode:?} {what}"
            );
            let (ev, took) = one_by_one(&sim, &mut b, BURST);
            println!("{mode:?} {what}: {ev} events for {BURST} frames ({took:?})");
            match m {
                None => assert_eq!(ev, BURST as u64, "{mode:?} {what}"),
                Some((0, n)) => assert_eq!(ev, (BURST / n as usize) as u64, "{mode:?} {what}"),
                Some((p, n)) => {
                    // Each event beyond the count's needs a whole period.
                    let bound =
                        (BURST / n as usize) as u64 + took.as_micros() as u64 / u64::from(p) + 1;
                    assert!(ev <= bound, "{mode:?} {what}: {ev} > {bound}");
                }
            }
            // Nothing left unsignalled: the CQ's last CQEs raise their event.
            let cqn = rx_cqn(&b);
            if m.is_some_and(|(p, _)| p > 0) {
                assert!(
                    eventually(|| {
                        tick(&sim);
                        b.poll();
                        sim.with_model(|f| f.nic.cqs.get(cqn.0).is_some_and(|c| c.due.is_none()))
                    }),
                    "{mode:?} {what}: a period never ran out"
                );
            }
            assert_eq!(b.net_stats().rx_packets, BURST as u64);
            close(b, &sim, before);
        }
    }
}

#[test]
fn a_lone_frame_is_signalled_after_the_period() {
    const PERIOD: u16 = 2000;
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
        let before = sim.dma_in_use();
        let mut b = open(&sim, cfg(Some((PERIOD, 8))));
        let cqn = rx_cqn(&b);
        let start = Instant::now();
        sim.inject_rx(&frame(b.mac(), 0));
        if mode == Mode::Synchronous {
            // Nothing runs the model between the frame and this look.
            assert_eq!(events(&sim, cqn), 0, "no event before the period");
        }
        // Threaded: the model's own thread raises it.
        assert!(
            eventually(|| {
                tick(&sim);
                events(&sim, cqn) == 1
            }),
            "{mode:?}: the frame's event never came"
        );
        assert!(
            start.elapsed() >= Duration::from_micros(u64::from(PERIOD)),
            "{mode:?}: event before the period"
        );
        while b.net_stats().rx_packets < 1 {
            b.receive(|_, _| ());
        }
        b.poll();
        close(b, &sim, before);
    }
}

#[test]
fn modify_cq_changes_moderation_at_run_time() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX4Lx, mode);
        let before = sim.dma_in_use();
        let mut b = open(&sim, cfg(None));
        let cqn = rx_cqn(&b);
        assert_eq!(one_by_one(&sim, &mut b, BURST).0, BURST as u64, "{mode:?}");
        let set = |b: &mut Port, period_us, max_count| {
            b.control_mut()
                .exec(&ModifyCq::moderation(cqn, period_us, max_count))
                .expect("MODIFY_CQ");
        };
        set(&mut b, 0, 4);
        assert_eq!(
            one_by_one(&sim, &mut b, BURST).0,
            (BURST / 4) as u64,
            "{mode:?}"
        );
        set(&mut b, 0, 0);
        assert_eq!(one_by_one(&sim, &mut b, BURST).0, BURST as u64, "{mode:?}");
        close(b, &sim, before);
    }
}

#[test]
fn a_part_without_the_capability_ignores_the_option() {
    use mlx5_sim::cmd::caps::{cap_type, hca_cap};
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        sim.with_model(|f| {
            f.caps
                .set_current(cap_type::GENERAL, hca_cap::CQ_MODERATION, 0)
        });
        let before = sim.dma_in_use();
        let mut b = open(&sim, cfg(Some((0, 8))));
        let q = QueryCq(rx_cqn(&b));
        let info = b.control_mut().exec(&q).expect("QUERY_CQ");
        assert_eq!((info.cq_period, info.cq_max_count), (0, 0), "{mode:?}");
        assert_eq!(one_by_one(&sim, &mut b, BURST).0, BURST as u64, "{mode:?}");
        close(b, &sim, before);
    }
}
