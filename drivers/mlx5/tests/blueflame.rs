//! BlueFlame doorbells (`EthConfig::blueflame`, `QueueSet::set_blueflame`;
//! `drivers/mlx5/src/sq/ring.rs`) against the model, on every part with
//! `bf` and both model modes: small batches ring with the last WQE's
//! first basic block in the UAR's BlueFlame buffers (alternating), large
//! ones with the plain doorbell; the model compares every BlueFlame write
//! with the WQE in memory (`sim/src/datapath/blueflame.rs`) and saw only
//! matching ones; frames intact and in order, every buffer back, no DMA
//! leaked, no sanitizer violation. Off: no BlueFlame write at all. A write
//! that is not the WQE in memory is a sanitizer violation. A function
//! without BlueFlame (`Caps::without_blueflame`: `bf` and
//! `log_bf_reg_size` 0), on every part: the option falls back to the
//! plain doorbell, frames delivered, the model saw no BlueFlame write; a
//! BlueFlame write there is a sanitizer violation. With BlueFlame on, a
//! threaded run allocates nothing on the packet path.

mod common;

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{Mmio, TxMeta};
use mlx5::{Control, EthConfig};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::sanitizer::ViolationKind;

const PARTS: [Personality; 5] = [
    Personality::ConnectX4,
    Personality::ConnectX4Lx,
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

fn bf_counts(sim: &SimPlatform) -> (u64, u64) {
    sim.with_model(|f| {
        (
            f.nic.wire.stats.tx_bf_doorbells,
            f.nic.wire.stats.tx_bf_mismatches,
        )
    })
}

/// Send `lens` in batches of `batch` (one doorbell each: `transmit_with`
/// then `flush`); the model's wire has them all, in order.
fn send(sim: &SimPlatform, a: &mut Port, lens: &[usize], batch: usize) {
    let dst = [0x02, 0, 0, 0, 0, 0x99];
    let mut got = Vec::new();
    let mut sent = 0;
    // A stuck detector only (the threaded model may wait for a CPU).
    let start = std::time::Instant::now();
    while got.len() < lens.len() {
        let k = batch.min(lens.len() - sent);
        for i in 0..k {
            let len = lens[sent];
            if a.transmit_with(len, TxMeta::default(), |b| {
                common::fill(b, dst, sent as u32)
            })
            .is_err()
            {
                break;
            }
            sent += 1;
            let _ = i;
        }
        a.flush();
        a.poll();
        got.extend(sim.take_tx());
        assert!(
            start.elapsed().as_secs() < 30,
            "stuck at {} of {}: {:?} model {:?} pc {} cc {}",
            got.len(),
            lens.len(),
            a.sq().unwrap().stats,
            bf_counts(sim),
            a.sq().unwrap().producer_counter(),
            a.sq().unwrap().consumer_counter()
        );
    }
    for (i, f) in got.iter().enumerate() {
        let mut want = vec![0u8; lens[i]];
        common::fill(&mut want, dst, i as u32);
        assert_eq!(&f[..lens[i]], want.as_slice(), "frame {i}");
    }
    for _ in 0..1000 {
        if a.tx_free() == a.sq().unwrap().entries() {
            return;
        }
        a.flush();
        a.poll();
    }
    panic!("transmit buffers not back: {} free", a.tx_free());
}

#[test]
fn small_batches_ring_with_blueflame_and_the_model_agrees() {
    let lens: Vec<usize> = (0..300).map(|i| 60 + (i * 37) % 1455).collect();
    for part in PARTS {
        for mode in [Mode::Synchronous, Mode::Threaded] {
            for bf in [false, true] {
                let sim = SimPlatform::new(part, mode);
                let before = sim.dma_in_use();
                let mut a = open(
                    &sim,
                    EthConfig {
                        log_sq: 5,
                        blueflame: bf,
                        ..EthConfig::default()
                    },
                );
                let ctx = format!("{part:?} {mode:?} blueflame {bf}");
                assert_eq!(a.tuning().blueflame, bf, "{ctx}");
                // Single frames, pairs, then batches too large for it.
                send(&sim, &mut a, &lens[..100], 1);
                send(&sim, &mut a, &lens[100..200], 2);
                let small = a.sq().unwrap().stats.bf_doorbells;
                send(&sim, &mut a, &lens[200..], 8);
                let s = a.sq().unwrap().stats;
                let (seen, bad) = bf_counts(&sim);
                if bf {
                    // Every doorbell of the small batches (a ring of 32
                    // blocks wraps: a WQE's first block is whole anyway).
                    assert!(small >= 150, "{ctx}: {small} BlueFlame doorbells");
                    assert!(s.bf_doorbells < s.doorbells, "{ctx}: large batches too");
                } else {
                    assert_eq!(s.bf_doorbells, 0, "{ctx}");
                }
                assert_eq!((seen, bad), (s.bf_doorbells, 0), "{ctx}");
                close(a, &sim, before);
            }
        }
    }
}

#[test]
fn switched_at_run_time() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut a = open(&sim, EthConfig::default());
    let lens = [64usize; 20];
    for on in [true, false, true] {
        a.set_blueflame(on).unwrap();
        let (b0, _) = bf_counts(&sim);
        send(&sim, &mut a, &lens, 1);
        let (b1, bad) = bf_counts(&sim);
        assert_eq!(b1 - b0, if on { 20 } else { 0 }, "on {on}");
        assert_eq!(bad, 0);
    }
    close(a, &sim, before);
}

#[test]
fn a_blueflame_write_unlike_the_wqe_is_a_violation() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut a = open(&sim, EthConfig::default());
    send(&sim, &mut a, &[64], 1);
    // The WQE just sent, its data segment's length changed.
    let sq = a.sq().unwrap();
    let mut block = sq.wqebb(sq.producer_counter().wrapping_sub(1));
    block[0x23] ^= 0x01;
    let words: [u64; 8] =
        core::array::from_fn(|i| u64::from_be_bytes(block[i * 8..i * 8 + 8].try_into().unwrap()));
    let uar = a.resources().uar.bar_offset();
    a.control().mmio().bar0_write_bf(uar + 0x800, &words);
    assert_eq!(bf_counts(&sim), (0, 1));
    let v = sim.sanitizer_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::BlueFlameMismatch);
    let (ad, rep) = a.close();
    assert_eq!(rep.errors, 0);
    let _ = ad.detach();
}

fn no_blueflame(sim: &SimPlatform) {
    sim.with_model(|f| f.caps.without_blueflame());
}

#[test]
fn a_function_without_blueflame_rings_the_plain_doorbell() {
    let lens: Vec<usize> = (0..120).map(|i| 60 + (i * 37) % 1455).collect();
    for part in PARTS {
        for mode in [Mode::Synchronous, Mode::Threaded] {
            let ctx = format!("{part:?} {mode:?}");
            let sim = SimPlatform::new(part, mode);
            no_blueflame(&sim);
            let before = sim.dma_in_use();
            let mut a = open(
                &sim,
                EthConfig {
                    log_sq: 5,
                    blueflame: true,
                    ..EthConfig::default()
                },
            );
            let t = a.tuning();
            assert!(!t.can_blueflame && !t.blueflame, "{ctx}: {t:?}");
            assert!(a.set_blueflame(true).is_err(), "{ctx}");
            send(&sim, &mut a, &lens[..60], 1);
            send(&sim, &mut a, &lens[60..], 2);
            let s = a.sq().unwrap().stats;
            assert_eq!(s.bf_doorbells, 0, "{ctx}");
            assert!(s.doorbells >= 90, "{ctx}: {} doorbells", s.doorbells);
            assert_eq!(bf_counts(&sim), (0, 0), "{ctx}");
            assert_eq!(sim.with_model(|f| f.nic.bf.writes), 0, "{ctx}");
            assert_eq!(a.net_stats().tx_packets, lens.len() as u64, "{ctx}");
            close(a, &sim, before);
        }
    }
}

#[test]
fn a_blueflame_write_to_a_function_without_it_is_a_violation() {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    no_blueflame(&sim);
    let mut a = open(&sim, EthConfig::default());
    send(&sim, &mut a, &[64], 1);
    let sq = a.sq().unwrap();
    let block = sq.wqebb(sq.producer_counter().wrapping_sub(1));
    let words: [u64; 8] =
        core::array::from_fn(|i| u64::from_be_bytes(block[i * 8..i * 8 + 8].try_into().unwrap()));
    let uar = a.resources().uar.bar_offset();
    a.control().mmio().bar0_write_bf(uar + 0x800, &words);
    assert_eq!(bf_counts(&sim), (0, 0));
    assert_eq!(
        sim.with_model(|f| f.nic.bf.writes),
        14,
        "dwords past the doorbell's 8 bytes"
    );
    let v = sim.sanitizer_violations();
    assert_eq!(v.len(), 14, "{v:?}");
    assert!(
        v.iter()
            .all(|v| v.kind == ViolationKind::BlueFlameWithoutCap),
        "{v:?}"
    );
    let (ad, rep) = a.close();
    assert_eq!(rep.errors, 0);
    let _ = ad.detach();
}

/// BlueFlame doorbells allocate nothing on the packet path: a threaded
/// model (its own threads), single-frame batches of mixed sizes on every
/// part; what this thread allocates in the driver's calls is counted
/// (taking the model's wire log is the test's, not counted).
#[test]
fn blueflame_allocates_nothing() {
    use mlx5_sim::harness;
    for part in PARTS {
        let sim = SimPlatform::new(part, Mode::Threaded);
        let before = sim.dma_in_use();
        let mut a = open(
            &sim,
            EthConfig {
                log_sq: 6,
                blueflame: true,
                interrupts: false,
                ..EthConfig::default()
            },
        );
        let dst = [0x02, 0, 0, 0, 0, 0x99];
        let len = |i: usize| 60 + (i * 37) % 1455;
        let mut driver = 0u64;
        let (mut sent, mut seen) = (0usize, 0usize);
        const N: usize = 5_000;
        let mut idle = 0u32;
        while seen < N {
            let t0 = harness::thread_allocations();
            if sent < N
                && a.transmit_with(len(sent), TxMeta::default(), |b| {
                    common::fill(b, dst, sent as u32)
                })
                .is_ok()
            {
                sent += 1;
            }
            a.flush();
            a.poll();
            driver += harness::thread_allocations() - t0;
            let got = sim.take_tx();
            for f in &got {
                let want = u32::from_be_bytes(f[14..18].try_into().unwrap());
                assert_eq!(want as usize, seen, "{part:?}: order");
                assert!(f.len() >= len(seen), "{part:?}: length");
                seen += 1;
            }
            if got.is_empty() {
                idle += 1;
                assert!(idle < 1_000_000, "{part:?}: stuck at {seen} of {sent}");
                std::thread::yield_now();
            } else {
                idle = 0;
            }
        }
        assert_eq!(driver, 0, "{part:?}: allocations on the packet path");
        let s = a.sq().unwrap().stats;
        assert!(s.bf_doorbells >= (N / 2) as u64, "{part:?}: {s:?}");
        assert_eq!(bf_counts(&sim).1, 0, "{part:?}");
        while a.tx_free() < a.sq().unwrap().entries() {
            a.flush();
            a.poll();
        }
        close(a, &sim, before);
    }
}

/// An error CQE with BlueFlame on: the model refuses the lkey of the next
/// WQE (`sq-bad-lkey`, as the control socket's `fault sq-bad-lkey`), the
/// SQ goes to ERR; the owner's recovery step resets it (recorded,
/// recovered), every buffer comes back, and traffic resumes with
/// BlueFlame doorbells that still match the WQEs in memory (the ring
/// restarts at 0, the BlueFlame buffers keep alternating) on a few parts
/// in both model modes; no DMA leaked, no sanitizer violation.
#[test]
fn an_error_cqe_with_blueflame_on_is_recovered() {
    use mlx5::fault::{FaultClass, FaultOutcome};
    use mlx5_sim::queue_faults::{BadWqe, QueueFault};
    let lens: Vec<usize> = (0..80).map(|i| 60 + (i * 37) % 1455).collect();
    for part in [
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Personality::ConnectX6Dx,
    ] {
        for mode in [Mode::Synchronous, Mode::Threaded] {
            let ctx = format!("{part:?} {mode:?}");
            let sim = SimPlatform::new(part, mode);
            let before = sim.dma_in_use();
            let mut a = open(
                &sim,
                EthConfig {
                    log_sq: 5,
                    blueflame: true,
                    ..EthConfig::default()
                },
            );
            // Enough single-frame doorbells to wrap the 32-block ring.
            send(&sim, &mut a, &lens[..40], 1);
            let bf0 = a.sq().unwrap().stats.bf_doorbells;
            assert!(bf0 >= 30, "{ctx}: {bf0} BlueFlame doorbells");
            let sqn = a.sq().unwrap().sqn.0;
            sim.inject_queue(QueueFault::SqBad {
                what: BadWqe::Lkey,
                sqn: Some(sqn),
                count: 1,
            })
            .expect("armed");
            let dst = [0x02, 0, 0, 0, 0, 0x99];
            a.transmit_with(200, TxMeta::default(), |b| common::fill(b, dst, 9999))
                .expect("room");
            a.flush();
            assert_eq!(
                a.sq().unwrap().stats.bf_doorbells,
                bf0 + 1,
                "{ctx}: the bad WQE rang with BlueFlame"
            );
            let recovered = |a: &Port| {
                a.control()
                    .faults()
                    .records()
                    .any(|r| r.class == FaultClass::SqErr && r.outcome == FaultOutcome::Recovered)
            };
            assert!(
                common::eventually(|| {
                    a.poll();
                    a.run_pending_recoveries();
                    recovered(&a)
                }),
                "{ctx}: the SQ error is recovered"
            );
            assert_eq!(a.sq().unwrap().stats.recoveries, 1, "{ctx}");
            assert!(
                common::eventually(|| {
                    a.flush();
                    a.poll();
                    a.tx_free() == a.sq().unwrap().entries()
                }),
                "{ctx}: buffers not back: {} free",
                a.tx_free()
            );
            assert!(
                sim.take_tx().is_empty(),
                "{ctx}: the refused frame went out"
            );
            // Traffic again, single frames and pairs: every doorbell a
            // BlueFlame write from the first on, each the WQE in memory.
            let s0 = a.sq().unwrap().stats;
            send(&sim, &mut a, &lens[..40], 1);
            send(&sim, &mut a, &lens[40..], 2);
            let s = a.sq().unwrap().stats;
            let (rung, bf) = (s.doorbells - s0.doorbells, s.bf_doorbells - s0.bf_doorbells);
            assert!(rung >= 60, "{ctx}: {rung} doorbells after recovery");
            assert_eq!(bf, rung, "{ctx}: BlueFlame doorbells after recovery");
            // Nor a plain doorbell in between (batches this small ring
            // with BlueFlame only, the recovery rings nothing).
            assert_eq!(s.bf_doorbells, s.doorbells, "{ctx}: {s:?}");
            let (seen, bad) = bf_counts(&sim);
            assert_eq!(bad, 0, "{ctx}: tx_bf_mismatches");
            assert_eq!(seen, s.bf_doorbells, "{ctx}");
            assert_eq!(a.tx_free(), a.sq().unwrap().entries(), "{ctx}");
            close(a, &sim, before);
        }
    }
}
