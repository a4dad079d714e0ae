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

/// Mixed frame lengths (60..=1514 bytes).
fn mixed_len(i: usize) -> usize {
    60 + (i * 37) % 1455
}

/// Check a received frame against the `common::fill` pattern: its
/// sequence number is `want`, its length `len`, every byte the pattern.
fn check_frame(f: &[u8], dst: [u8; 6], want: usize, len: usize, ctx: &str) {
    let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
    assert_eq!(seq as usize, want, "{ctx}: in order");
    assert_eq!(f.len(), len, "{ctx}: frame {want} length");
    let mut w = vec![0u8; len];
    common::fill(&mut w, dst, seq);
    assert!(f == w.as_slice(), "{ctx}: frame {want} bytes");
}

/// The CQEs the model has written to CQ `cqn` (its producer counter).
fn cqes(sim: &SimPlatform, cqn: Cqn) -> u32 {
    sim.with_model(|f| f.nic.cqs.get(cqn.0).map_or(0, |c| c.producer))
}

/// Frames `base..base + n` of [`mixed_len`] lengths injected in bursts
/// of 1..=24 (`inject_rx_burst`), each burst read back with
/// `receive_burst` (limits 5 and all, in turn), then the CQ events seen
/// re-arming the CQ (`poll`, once the burst is read: an arm over unread
/// CQEs fires at once); each frame checked for order, length and bytes.
/// Returns the receive CQ's events and the CQEs written (frames, and
/// a striding RQ's filler CQEs) over the run.
fn bursts_checked(sim: &SimPlatform, b: &mut Port, base: usize, n: usize, ctx: &str) -> (u64, u64) {
    let cqn = rx_cqn(b);
    let (e0, c0) = (events(sim, cqn), cqes(sim, cqn));
    let dst = b.mac();
    let (mut sent, mut got, mut k) = (0usize, 0usize, 0usize);
    while sent < n {
        let m = (1 + (k * 7) % 24).min(n - sent);
        k += 1;
        let frames: Vec<Vec<u8>> = (sent..sent + m)
            .map(|i| {
                let mut f = vec![0u8; mixed_len(base + i)];
                common::fill(&mut f, dst, (base + i) as u32);
                f
            })
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        sim.inject_rx_burst(&refs);
        sent += m;
        let mut idle = 0u32;
        while got < sent {
            let before = got;
            let limit = if k % 2 == 0 { 5 } else { usize::MAX };
            b.receive_burst(limit, |f, _| {
                check_frame(f, dst, base + got, mixed_len(base + got), ctx);
                got += 1;
            });
            b.flush();
            if got == before {
                idle += 1;
                assert!(idle < 1_000_000, "{ctx}: stuck at {got} of {sent}");
                std::thread::yield_now();
            }
        }
        b.poll();
    }
    let written = cqes(sim, cqn).wrapping_sub(c0) & 0xff_ffff;
    (events(sim, cqn) - e0, u64::from(written))
}

/// Moderation's bound on the events of a run that wrote `cqes` CQEs in
/// `took`: one per `max_count` CQEs, one per period that ran out, and
/// one for CQEs held from before the run.
fn bound(m: (u16, u16), cqes: u64, took: Duration) -> u64 {
    let periods = if m.0 > 0 {
        took.as_micros() as u64 / u64::from(m.0)
    } else {
        0
    };
    cqes / u64::from(m.1) + periods + 1
}

/// Moderated receive keeps every frame: contents and order (each frame's
/// sequence number and bytes), mixed sizes (60..=1514), bursts and single
/// frames, through enough frames to wrap the RQ and the CQ several times
/// (cyclic: 64 buffers, a 64-entry CQ; striding where the part has it:
/// 4 WQEs of 512 strides, a 2048-entry CQ), count and period moderation,
/// every part, both model modes; the events stay within moderation's
/// bound, every buffer back (the ring keeps taking frames), no DMA
/// leaked, no sanitizer violation.
#[test]
fn moderated_receive_keeps_every_frame_through_ring_wraps() {
    use mlx5::RqChoice;
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        for rq_kind in [RqChoice::Cyclic, RqChoice::Auto] {
            for m in [(0u16, 8u16), (50, 8)] {
                let sim = SimPlatform::new(part, mode);
                let before = sim.dma_in_use();
                let mut b = open(
                    &sim,
                    EthConfig {
                        rq_kind,
                        ..cfg(Some(m))
                    },
                );
                let striding = b.rq().unwrap().is_striding();
                let ctx = format!("{part:?} {mode:?} {rq_kind:?} striding {striding} {m:?}");
                let (rq, cq) = (b.rq().unwrap().entries(), b.rx_cq().unwrap().entries());
                // Single frames once around the RQ (its WQEs, striding).
                let dst = b.mac();
                let cqn = rx_cqn(&b);
                let (start, c0, e0) = (Instant::now(), cqes(&sim, cqn), events(&sim, cqn));
                let single = if striding { 200 } else { 2 * rq + 10 };
                for i in 0..single {
                    let mut f = vec![0u8; mixed_len(i)];
                    common::fill(&mut f, dst, i as u32);
                    sim.inject_rx(&f);
                    let mut idle = 0u32;
                    while b
                        .receive(|f, _| check_frame(f, dst, i, mixed_len(i), &ctx))
                        .is_none()
                    {
                        idle += 1;
                        assert!(idle < 1_000_000, "{ctx}: frame {i} never arrived");
                        std::thread::yield_now();
                    }
                    b.poll();
                }
                // Bursts: the CQ wraps at least twice.
                let n = 2 * cq + 3 * rq + 17;
                bursts_checked(&sim, &mut b, single, n, &ctx);
                let ev = events(&sim, cqn) - e0;
                let total = (single + n) as u64;
                let written = u64::from(cqes(&sim, cqn).wrapping_sub(c0) & 0xff_ffff);
                assert!(written >= total, "{ctx}: {written} CQEs");
                assert!(written > 2 * cq as u64, "{ctx}: the CQ wraps twice");
                let bound = bound(m, written, start.elapsed());
                println!("{ctx}: {total} frames, {written} CQEs, {ev} events, cq {cq} rq {rq}");
                assert!(ev > 0, "{ctx}: no event");
                assert!(ev <= bound, "{ctx}: {ev} events > {bound}");
                assert_eq!(b.net_stats().rx_packets, total, "{ctx}");
                assert_eq!(b.net_stats().errors, 0, "{ctx}");
                close(b, &sim, before);
            }
        }
    }
}

/// An error CQE under moderation: a frame too long for a cyclic RQ's
/// buffers (the port takes 9000-byte frames, the queue 1500) completes
/// with a LOCAL_LENGTH error CQE after four good frames. The CQ's event
/// comes (moderation holds it no longer than its count or period: the
/// flushed WQEs' CQEs follow the error), the four frames arrive whole
/// and in order, the fault is recorded and recovered by the owner's
/// step, the CQ keeps its moderation, and traffic resumes (mixed sizes,
/// order and bytes checked, events within the bound); every part, both
/// model modes, count and period moderation.
#[test]
fn an_error_cqe_under_moderation_is_signalled_recorded_and_recovered() {
    use mlx5::RqChoice;
    use mlx5::fault::{FaultClass, FaultOutcome};
    for (part, mode) in PARTS
        .into_iter()
        .flat_map(|p| [(p, Mode::Synchronous), (p, Mode::Threaded)])
    {
        for m in [(0u16, 8u16), (50, 8)] {
            let ctx = format!("{part:?} {mode:?} {m:?}");
            let sim = SimPlatform::new(part, mode);
            let before = sim.dma_in_use();
            let mut a = mlx5::Adapter::attach(sim.clone(), common::config())
                .unwrap_or_else(|f| panic!("{}", f.error));
            a.set_port_mtu(9000).expect("port MTU");
            let r = mlx5::Resources::of(&a).expect("resources");
            let cfg = EthConfig {
                rq_kind: RqChoice::Cyclic,
                ..cfg(Some(m))
            };
            let mut b = mlx5::QueueSet::open(a, r, cfg).unwrap_or_else(|f| panic!("{}", f.error));
            let cqn = rx_cqn(&b);
            let dst = b.mac();
            // Warm up, then the CQ armed by the driver's polls and no
            // period running (threaded, a period may run out after the
            // last poll: its event disarms the CQ until the next).
            bursts_checked(&sim, &mut b, 0, 40, &ctx);
            assert!(
                common::eventually(|| {
                    tick(&sim);
                    b.poll();
                    sim.with_model(|f| {
                        f.nic
                            .cqs
                            .get(cqn.0)
                            .is_some_and(|c| c.armed && c.due.is_none())
                    })
                }),
                "{ctx}: the CQ is never armed"
            );
            let e0 = events(&sim, cqn);
            let lens = [100usize, 200, 300, 400, 3000, 500, 600];
            let frames: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &l)| {
                    let mut f = vec![0u8; l];
                    common::fill(&mut f, dst, 1000 + i as u32);
                    f
                })
                .collect();
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            sim.inject_rx_burst(&refs);
            // Signalled: the good frames, the error and the flushed WQEs
            // pass the count; the period runs out otherwise.
            assert!(
                common::eventually(|| {
                    tick(&sim);
                    events(&sim, cqn) > e0
                }),
                "{ctx}: the error CQE was never signalled"
            );
            let mut got = Vec::new();
            for _ in 0..4 {
                b.receive_burst(usize::MAX, |f, _| {
                    let i = got.len();
                    check_frame(f, dst, 1000 + i, lens[i], &ctx);
                    got.push(i);
                });
            }
            assert_eq!(got, [0, 1, 2, 3], "{ctx}: the frames before the error");
            assert!(b.last_fault().is_some(), "{ctx}: the error CQE was seen");
            // Recorded, then recovered by the owner's step.
            let rq_fault = |b: &Port, outcome: FaultOutcome| {
                b.control()
                    .faults()
                    .records()
                    .any(|r| r.class == FaultClass::RqErr && r.outcome == outcome)
            };
            assert!(
                rq_fault(&b, FaultOutcome::Pending) || rq_fault(&b, FaultOutcome::Recovered),
                "{ctx}: no RQ fault record"
            );
            assert!(
                common::eventually(|| {
                    b.poll();
                    b.run_pending_recoveries();
                    rq_fault(&b, FaultOutcome::Recovered)
                }),
                "{ctx}: the RQ error is not recovered"
            );
            // The CQ keeps its moderation.
            let q = QueryCq(rx_cqn(&b));
            let info = b.control_mut().exec(&q).expect("QUERY_CQ");
            assert_eq!((info.cq_period, info.cq_max_count), m, "{ctx}");
            // Traffic resumes: mixed sizes, every frame checked, events
            // within moderation's bound.
            let start = Instant::now();
            let n = 3 * b.rq().unwrap().entries();
            let (ev, written) = bursts_checked(&sim, &mut b, 2000, n, &ctx);
            assert_eq!(written, n as u64, "{ctx}: a CQE per frame");
            let bound = bound(m, written, start.elapsed());
            assert!(ev > 0 && ev <= bound, "{ctx}: {ev} events, bound {bound}");
            assert_eq!(b.net_stats().rx_packets, 40 + 4 + n as u64, "{ctx}");
            close(b, &sim, before);
        }
    }
}
