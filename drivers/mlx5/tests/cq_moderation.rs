//! CQ event moderation (`EthConfig::cq_moderation`, MODIFY_CQ) against the
//! model, in both model modes: the receive CQ's completion events are
//! counted in the model (its per-CQ event counter) while the driver takes
//! 32 frames one at a time, re-arming after each event. Off: an event per
//! frame. Count 8: one event per 8 frames. A period: a frame that no
//! count completes is still signalled once the period has passed (never
//! before). MODIFY_CQ changes both at run time. Every part (all five
//! report `cq_moderation`). A part without `cq_moderation` (each part
//! with the capability cleared): the option is ignored (an event per
//! frame) and MODIFY_CQ's setter refuses it. Threaded, the moderated
//! receive path allocates nothing. Every buffer back, no DMA leaked, no
//! sanitizer violation.

mod common;

use std::time::{Duration, Instant};

use common::{Port, close_port as close, eventually, open_port as open};
use cxos_drivers::NetDevice;
use mlx5::EthConfig;
use mlx5::cq::{Cqn, ModifyCq, QueryCq};
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, Mode, SimPlatform};

const BURST: usize = 32;

const PARTS: [Personality; 5] = [
    Personality::ConnectX4,
    Personality::ConnectX4Lx,
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

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
    let (ev, took, _) = one_by_one_counted(sim, b, n);
    (ev, took)
}

/// [`one_by_one`], also counting what this thread allocated inside the
/// driver's calls (the driver's allocations when the model is threaded).
fn one_by_one_counted(sim: &SimPlatform, b: &mut Port, n: usize) -> (u64, Duration, u64) {
    let cqn = rx_cqn(b);
    let before = events(sim, cqn);
    let (dst, start) = (b.mac(), Instant::now());
    let mut f = frame(dst, 0);
    let mut allocs = 0;
    for i in 0..n {
        common::fill(&mut f, dst, i as u32);
        sim.inject_rx(&f);
        let mut idle = 0;
        loop {
            let t0 = harness::thread_allocations();
            let got = b.receive(|f, _| f.len());
            allocs += harness::thread_allocations() - t0;
            if got.is_some() {
                break;
            }
            idle += 1;
            assert!(idle < 100_000, "frame {i} never arrived");
        }
        // Events seen re-arm the CQ (interrupt mode).
        let t0 = harness::thread_allocations();
        b.poll();
        allocs += harness::thread_allocations() - t0;
    }
    (events(sim, cqn) - before, start.elapsed(), allocs)
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
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        for (m, what) in [
            (None, "off"),
            (Some((0, 8)), "count 8"),
            (Some((4095, 8)), "count 8, period 4095 us"),
            (Some((50, 8)), "count 8, period 50 us"),
        ] {
            let sim = SimPlatform::new(part, mode);
            let before = sim.dma_in_use();
            let mut b = open(&sim, cfg(m));
            let what = format!("{part:?} {what}");
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
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        let sim = SimPlatform::new(part, mode);
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
            "{part:?} {mode:?}: the frame's event never came"
        );
        assert!(
            start.elapsed() >= Duration::from_micros(u64::from(PERIOD)),
            "{part:?} {mode:?}: event before the period"
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
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        let sim = SimPlatform::new(part, mode);
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
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        let sim = SimPlatform::new(part, mode);
        sim.with_model(|f| {
            f.caps
                .set_current(cap_type::GENERAL, hca_cap::CQ_MODERATION, 0)
        });
        let before = sim.dma_in_use();
        let mut b = open(&sim, cfg(Some((0, 8))));
        let q = QueryCq(rx_cqn(&b));
        let info = b.control_mut().exec(&q).expect("QUERY_CQ");
        assert_eq!(
            (info.cq_period, info.cq_max_count),
            (0, 0),
            "{part:?} {mode:?}"
        );
        assert!(!b.tuning().can_moderate, "{part:?} {mode:?}");
        assert!(
            b.set_cq_moderation(Some((0, 8))).is_err(),
            "{part:?} {mode:?}"
        );
        assert!(
            b.set_tx_cq_moderation(Some((0, 8))).is_err(),
            "{part:?} {mode:?}"
        );
        assert_eq!(
            one_by_one(&sim, &mut b, BURST).0,
            BURST as u64,
            "{part:?} {mode:?}"
        );
        close(b, &sim, before);
    }
}

/// The moderated receive path allocates nothing: threaded (the model's
/// own threads), every part, count and period moderation; what this
/// thread allocates inside the driver's receive and poll is counted.
#[test]
fn moderation_allocates_nothing() {
    for part in PARTS {
        for m in [(0u16, 8u16), (50, 8)] {
            let sim = SimPlatform::new(part, Mode::Threaded);
            let before = sim.dma_in_use();
            let mut b = open(&sim, cfg(Some(m)));
            one_by_one(&sim, &mut b, BURST);
            let (ev, _, allocs) = one_by_one_counted(&sim, &mut b, 4 * BURST);
            assert_eq!(allocs, 0, "{part:?} {m:?}: allocations on the packet path");
            assert!(ev <= (4 * BURST) as u64, "{part:?} {m:?}: {ev} events");
            if m.0 == 0 {
                assert_eq!(ev, (4 * BURST / 8) as u64, "{part:?} {m:?}");
            }
            close(b, &sim, before);
        }
    }
}

/// `n` frames sent one at a time (a doorbell and a completion each:
/// `cq_every` 1), each completion taken before the next; returns the
/// transmit CQ's events.
fn tx_one_by_one(sim: &SimPlatform, a: &mut Port, n: usize) -> u64 {
    use cxos_drivers::TxMeta;
    let cqn = a.tx_cq().expect("transmit CQ").cqn;
    let before = events(sim, cqn);
    let dst = [0x02, 0, 0, 0, 0, 0x99];
    let mut got = 0;
    for i in 0..n {
        a.transmit_with(128, TxMeta::default(), |b| common::fill(b, dst, i as u32))
            .expect("room in the SQ");
        a.flush();
        let mut idle = 0;
        while a.tx_free() < a.sq().unwrap().entries() {
            a.poll();
            idle += 1;
            assert!(idle < 1_000_000, "frame {i} never completed");
            std::thread::yield_now();
        }
        // Threaded, the wire may get the frame just after its CQE.
        got += sim.take_tx().len();
    }
    assert!(
        eventually(|| {
            got += sim.take_tx().len();
            got == n
        }),
        "{got} of {n} frames on the wire"
    );
    events(sim, cqn) - before
}

/// Transmit CQ moderation (`EthConfig::tx_cq_moderation`, what `ethtool
/// -C tx-usecs/tx-frames` set): at open and by `set_tx_cq_moderation` at
/// run time, on every part in both modes; the receive CQ keeps its own.
#[test]
fn transmit_cq_moderation() {
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        let ctx = format!("{part:?} {mode:?}");
        let sim = SimPlatform::new(part, mode);
        let before = sim.dma_in_use();
        let mut a = open(
            &sim,
            EthConfig {
                cq_every: 1,
                tx_cq_moderation: Some((0, 8)),
                ..EthConfig::default()
            },
        );
        let txq = QueryCq(a.tx_cq().unwrap().cqn);
        let info = a.control_mut().exec(&txq).expect("QUERY_CQ");
        assert_eq!((info.cq_period, info.cq_max_count), (0, 8), "{ctx}");
        let rxq = QueryCq(rx_cqn(&a));
        let info = a.control_mut().exec(&rxq).expect("QUERY_CQ");
        assert_eq!((info.cq_period, info.cq_max_count), (0, 0), "{ctx}");
        assert_eq!(a.tuning().tx_cq_moderation, Some((0, 8)), "{ctx}");
        // Synchronous, the counts are exact. Threaded, whether the CQ is
        // armed again when a CQE arrives is a race with the driver's
        // poll (a CQE on a disarmed CQ counts toward the next event), so
        // only moderation's own bound holds: never more than one event
        // per `max_count` CQEs, and the first frame's event.
        let reach = |a: &mut Port, want: u64| {
            let cqn = a.tx_cq().unwrap().cqn;
            let start = events(&sim, cqn);
            let ev = tx_one_by_one(&sim, a, BURST);
            assert!(ev <= want, "{ctx}: {ev} events, at most {want}");
            if mode == Mode::Synchronous {
                assert_eq!(ev, want, "{ctx}");
            } else {
                assert!(
                    eventually(|| {
                        a.poll();
                        events(&sim, cqn) > start
                    }),
                    "{ctx}: no event"
                );
            }
        };
        reach(&mut a, (BURST / 8) as u64);
        a.set_tx_cq_moderation(None).expect("MODIFY_CQ");
        reach(&mut a, BURST as u64);
        a.set_tx_cq_moderation(Some((0, 4))).expect("MODIFY_CQ");
        let info = a.control_mut().exec(&txq).expect("QUERY_CQ");
        assert_eq!((info.cq_period, info.cq_max_count), (0, 4), "{ctx}");
        reach(&mut a, (BURST / 4) as u64);
        close(a, &sim, before);
    }
}

/// A lone transmit completion under a period and a count it never
/// reaches is still signalled once the period has passed (the model's
/// own thread runs the timer; synchronous, the test does).
#[test]
fn a_lone_transmit_completion_is_signalled_after_the_period() {
    use cxos_drivers::TxMeta;
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        let mut a = open(
            &sim,
            EthConfig {
                tx_cq_moderation: Some((200, 8)),
                ..EthConfig::default()
            },
        );
        let cqn = a.tx_cq().unwrap().cqn;
        a.transmit_with(128, TxMeta::default(), |b| {
            common::fill(b, [0x02, 0, 0, 0, 0, 0x99], 0)
        })
        .unwrap();
        a.flush();
        assert!(
            eventually(|| {
                tick(&sim);
                events(&sim, cqn) == 1
            }),
            "{mode:?}: the completion's event never came"
        );
        while a.tx_free() < a.sq().unwrap().entries() {
            a.poll();
        }
        sim.take_tx();
        close(a, &sim, before);
    }
}
