//! The receive burst's fast path (`QueueSet::receive_burst`: runs of
//! common completions read through one plain view, compressed sessions an
//! array at a time, a striding WQE's strides as one window) against a
//! device that lies. Good frames arrive from the model; the test then
//! rewrites one completion in the CQ ring as a hostile device would (a
//! bad opcode, another queue, a `wqe_id` or `wqe_counter` out of range, a
//! byte count past its strides or past the WQE, the filler bit, a
//! compressed session's count running past the ring, a mini-CQE with a
//! bad byte count) and reads with `receive_burst`. Each lie is refused —
//! the frame is not handed out, and the queue records a typed fault
//! (`FaultCause`) or counts a length error — the frames before it arrive,
//! and the queue takes traffic again after.
//!
//! CQE layout: `struct mlx5_cqe64` (offsets in `mlx5::cqe::off`: `wqe_id`
//! low half at 0x02, `byte_cnt` 0x2c, QPN 0x39..0x3c, `wqe_counter`
//! 0x3c, `op_own` 0x3f; a striding RQ's `byte_cnt` is `mpwrq_cqe_bc`:
//! filler `[31]`, strides `[30:16]`, bytes `[15:0]`).

mod common;

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::NetDevice;
use mlx5::fault::{FaultAction, FaultOutcome};
use mlx5::queue_set::FaultCause;
use mlx5::{EthConfig, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::sanitizer::Purpose;

fn frame(dst: [u8; 6], len: usize, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    b
}

/// The model's address of CQ `cqn`'s slot for producer counter `at`, and
/// the CQ's size.
fn slot_addr(sim: &SimPlatform, cqn: u32, at: u32) -> (u64, u32) {
    sim.with_model(|f| {
        let cq = f.nic.cqs.get(cqn).expect("cq");
        let nent = 1u32 << cq.log_size;
        let byte = (at & (nent - 1)) as u64 * 64;
        (cq.pas[(byte / 4096) as usize] + byte % 4096, nent)
    })
}

fn producer(sim: &SimPlatform, cqn: u32) -> u32 {
    sim.with_model(|f| f.nic.cqs.get(cqn).expect("cq").producer)
}

/// Rewrite the entry for producer counter `at` with `edit` (the owner
/// bit kept as the device wrote it).
fn tamper(sim: &SimPlatform, cqn: u32, at: u32, edit: impl FnOnce(&mut [u8; 64])) {
    let (addr, _) = slot_addr(sim, cqn, at);
    sim.with_model(|f| {
        let mut e = [0u8; 64];
        f.bus.read(addr, &mut e, Purpose::CqBuffer).expect("read");
        edit(&mut e);
        f.bus.write(addr, &e, Purpose::CqBuffer).expect("write");
    });
}

fn rx_cqn(p: &Port) -> u32 {
    p.rx_cq().expect("rx cq").cqn.0
}

/// Seqs `receive_burst` hands out until it hands out nothing.
fn drain(p: &mut Port) -> Vec<u32> {
    let mut got = Vec::new();
    for _ in 0..8 {
        p.receive_burst(usize::MAX, |f, _| {
            got.push(u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
        });
    }
    p.flush();
    // The owner's recovery step (the burst only records a fault).
    while p.run_pending_recoveries() != 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    got
}

/// What the burst did with the lie.
#[derive(Debug, PartialEq)]
enum Refused {
    Fault(FaultCause),
    /// Dropped and counted (`EthStats::rx_length_errors`).
    LengthError,
    /// A filler completion (PRM: the rest of a striding WQE skipped):
    /// no frame, nothing wrong.
    Filler,
}

fn refusal(p: &Port, name: &str, faults_before: u64, len_errs_before: u64) -> Refused {
    let s = p.eth_stats();
    if s.faults > faults_before {
        let f = p.last_fault().expect("a fault record");
        assert!(f.recovered, "{f}");
        Refused::Fault(f.cause)
    } else if s.rx_length_errors > len_errs_before {
        assert_eq!(s.rx_length_errors, len_errs_before + 1, "{name}");
        Refused::LengthError
    } else {
        Refused::Filler
    }
}

/// One plain-CQE lie: frames 0 and 1 arrive as single CQEs, frame 1's is
/// rewritten by `edit`; frame 0 arrives, frame 1 is refused as `want`
/// says, and after it the queue delivers new frames again.
fn plain_lie(
    mode: Mode,
    compress: bool,
    name: &str,
    edit: impl FnOnce(&mut [u8; 64]),
    want: impl FnOnce(&Refused) -> bool,
) {
    let sim = SimPlatform::new(Personality::ConnectX5, mode);
    let before = sim.dma_in_use();
    let cfg = EthConfig {
        cqe_compression: compress,
        rq_kind: RqChoice::Auto,
        ..EthConfig::default()
    };
    let mut p = open(&sim, cfg);
    let dst = p.mac();
    let cqn = rx_cqn(&p);
    let at = producer(&sim, cqn);
    sim.inject_rx(&frame(dst, 60, 0));
    sim.inject_rx(&frame(dst, 60, 1));
    assert!(common::eventually(|| producer(&sim, cqn) == at + 2));
    tamper(&sim, cqn, at + 1, edit);
    let (faults, lens) = (p.eth_stats().faults, p.eth_stats().rx_length_errors);
    let got = drain(&mut p);
    assert_eq!(
        got,
        [0],
        "{name} ({mode:?}, compress {compress}): frame 1 refused"
    );
    let r = refusal(&p, name, faults, lens);
    assert!(want(&r), "{name} ({mode:?}): refused as {r:?}");
    // The queue takes traffic again.
    let again = [frame(dst, 100, 10), frame(dst, 200, 11), frame(dst, 64, 12)];
    for f in &again {
        sim.inject_rx(f);
    }
    let mut got = Vec::new();
    assert!(
        common::eventually(|| {
            got.extend(drain(&mut p));
            got.len() >= 3
        }),
        "{name}: traffic after the lie, got {got:?}"
    );
    assert_eq!(got, [10, 11, 12], "{name}");
    close(p, &sim, before);
}

#[test]
fn malformed_cqes_are_refused_by_the_burst() {
    let bad_counter = |r: &Refused| matches!(r, Refused::Fault(FaultCause::BadCompletion { .. }));
    // A typed fault or a counted length error, not a quiet drop.
    let refused = |r: &Refused| *r != Refused::Filler;
    for mode in [Mode::Synchronous, Mode::Threaded] {
        for compress in [false, true] {
            // op_own [7:4] = 7: no opcode a receive queue gets.
            plain_lie(
                mode,
                compress,
                "bad opcode",
                |e| e[0x3f] = (7 << 4) | (e[0x3f] & 1),
                |r| *r == Refused::Fault(FaultCause::BadOpcode(7)),
            );
            plain_lie(
                mode,
                compress,
                "another queue",
                |e| e[0x3b] ^= 0x5a,
                |r| matches!(r, Refused::Fault(FaultCause::WrongQueue { .. })),
            );
            plain_lie(
                mode,
                compress,
                "wqe_counter out of range",
                |e| e[0x3c] ^= 0x40,
                bad_counter,
            );
            plain_lie(
                mode,
                compress,
                "wqe_id of another WQE",
                |e| e[0x03] ^= 0x11,
                refused,
            );
            // One stride, more bytes than a stride holds (the model's
            // strides are 64 bytes or more, the frame 60: one stride).
            plain_lie(
                mode,
                compress,
                "byte_cnt past its strides",
                |e| {
                    let bc = (1u32 << 16) | 0xffff;
                    e[0x2c..0x30].copy_from_slice(&bc.to_be_bytes());
                },
                refused,
            );
            // More strides than the WQE has.
            plain_lie(
                mode,
                compress,
                "strides past the WQE",
                |e| {
                    let bc = (0x7fffu32 << 16) | 60;
                    e[0x2c..0x30].copy_from_slice(&bc.to_be_bytes());
                },
                refused,
            );
            plain_lie(
                mode,
                compress,
                "zero bytes",
                |e| {
                    let bc = 1u32 << 16;
                    e[0x2c..0x30].copy_from_slice(&bc.to_be_bytes());
                },
                refused,
            );
            plain_lie(
                mode,
                compress,
                "filler bit",
                |e| e[0x2c] |= 0x80,
                |r| *r == Refused::Filler,
            );
        }
    }
}

/// A compressed session of `n` frames whose title (slot `at`) or first
/// mini-CQE array (slot `at + 1`: eight 8-byte entries, result word then
/// `byte_cnt`) `edit` rewrites: the frames before the lie arrive, the rest
/// of the session is refused with a typed fault, the CQ is recreated,
/// traffic resumes.
fn session_lie(
    mode: Mode,
    name: &str,
    n: usize,
    edit: impl FnOnce(&SimPlatform, u32, u32),
) -> Vec<u32> {
    let sim = SimPlatform::new(Personality::ConnectX5, mode);
    let before = sim.dma_in_use();
    let cfg = EthConfig {
        cqe_compression: true,
        log_rq: 6,
        ..EthConfig::default()
    };
    let mut p = open(&sim, cfg);
    let dst = p.mac();
    let cqn = rx_cqn(&p);
    let at = producer(&sim, cqn);
    let frames: Vec<Vec<u8>> = (0..n).map(|i| frame(dst, 60, i as u32)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    sim.inject_rx_burst(&refs);
    assert!(common::eventually(|| producer(&sim, cqn) == at + n as u32));
    edit(&sim, cqn, at);
    let faults = p.eth_stats().faults;
    let got = drain(&mut p);
    // Refused inside the session: its ring cannot be drained back into
    // step with the device, so the CQ (and its RQ) was recreated.
    assert_ne!(rx_cqn(&p), cqn, "{name} ({mode:?}): a new CQ");
    assert!(
        p.control().faults().records().any(|r| {
            r.action == FaultAction::CqRecreate && r.outcome == FaultOutcome::Recovered
        }),
        "{name} ({mode:?}): recovered by recreating the CQ"
    );
    assert!(
        p.eth_stats().faults > faults,
        "{name} ({mode:?}): a fault recorded"
    );
    let f = p.last_fault().expect("a fault record");
    assert!(
        matches!(f.cause, FaultCause::BadCompletion { .. }),
        "{name} ({mode:?}): {f}"
    );
    assert!(f.recovered, "{f}");
    for f in [frame(dst, 100, 100), frame(dst, 64, 101)] {
        sim.inject_rx(&f);
    }
    let mut after = Vec::new();
    assert!(
        common::eventually(|| {
            p.poll();
            after.extend(drain(&mut p));
            after.len() >= 2
        }),
        "{name}: traffic after the lie, got {after:?}"
    );
    assert_eq!(after, [100, 101], "{name}");
    close(p, &sim, before);
    got
}

#[test]
fn malformed_sessions_are_refused_by_the_burst() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        // The title claims more completions than the ring holds (the
        // model wrote 12): the count is cut to one ring, and the
        // completions past the real ones are slots the device never
        // wrote (byte count 0): refused at the first. Draining the
        // session would leave the consumer index a ring ahead of what
        // the device wrote; the recovery recreates the CQ instead, and
        // the queue takes traffic again.
        let got = session_lie(mode, "title count past the ring", 12, |sim, cqn, at| {
            let (_, nent) = slot_addr(sim, cqn, at);
            tamper(sim, cqn, at, |e| {
                e[0x2c..0x30].copy_from_slice(&(nent * 4 + 3).to_be_bytes())
            });
        });
        assert_eq!(
            got,
            (0..12).collect::<Vec<u32>>(),
            "{mode:?}: the real frames arrive"
        );
        // Mini-CQE 3 of array 0 says more bytes than its strides hold.
        let got = session_lie(
            mode,
            "mini-CQE byte count past its strides",
            12,
            |sim, cqn, at| {
                tamper(sim, cqn, at + 1, |e| {
                    let bc = (1u32 << 16) | 0xffff;
                    e[3 * 8 + 4..3 * 8 + 8].copy_from_slice(&bc.to_be_bytes());
                });
            },
        );
        assert_eq!(got, [0, 1, 2], "{mode:?}");
        // Mini-CQE 5 claims more strides than the WQE has.
        let got = session_lie(mode, "mini-CQE strides past the WQE", 12, |sim, cqn, at| {
            tamper(sim, cqn, at + 1, |e| {
                let bc = (0x7fffu32 << 16) | 60;
                e[5 * 8 + 4..5 * 8 + 8].copy_from_slice(&bc.to_be_bytes());
            });
        });
        assert_eq!(got, [0, 1, 2, 3, 4], "{mode:?}");
        // The title names another stride than the RQ's next.
        let got = session_lie(
            mode,
            "title wqe_counter out of range",
            12,
            |sim, cqn, at| {
                tamper(sim, cqn, at, |e| e[0x3c] ^= 0x40);
            },
        );
        assert!(got.is_empty(), "{mode:?}: {got:?}");
    }
}

/// A run longer than a striding WQE (40 frames of 16 strides: the first
/// WQE's 512 strides hold 32) with one lie: at the first completion of
/// the second WQE (`past` 0: where the burst's window moves on to the
/// next WQE) or `past` completions after it (inside a scan chunk; before
/// it when negative). The
/// frames before it arrive in one burst, the lie is refused as `want`
/// says (a length error drops only its frame), and the queue takes
/// traffic again.
fn run_lie(
    mode: Mode,
    name: &str,
    past: i32,
    edit: impl FnOnce(&mut [u8; 64]),
    want: impl FnOnce(&Refused) -> bool,
) {
    run_lie_with(mode, name, past, Edit::Lie, edit, want);
}

/// Which completions [`run_lie_with`] sets up and rewrites.
#[derive(Clone, Copy, PartialEq)]
enum Edit {
    /// The lie itself, on a fresh queue (its first burst: the run's
    /// `wqe_counter`s checked one by one).
    Lie,
    /// The lie itself, after a burst of frames of the same size (the
    /// next burst's scan checks the counters of frames of their strides).
    Warm,
    /// Warm, and the completion before the lie rewritten (its lie makes
    /// the next one's `wqe_counter` wrong).
    WarmBefore,
}

fn run_lie_with(
    mode: Mode,
    name: &str,
    past: i32,
    how: Edit,
    edit: impl FnOnce(&mut [u8; 64]),
    want: impl FnOnce(&Refused) -> bool,
) {
    let sim = SimPlatform::new(Personality::ConnectX5, mode);
    let before = sim.dma_in_use();
    let mut p = open(&sim, EthConfig::default());
    assert!(p.rq().expect("rq").is_striding(), "{name}: a striding RQ");
    let dst = p.mac();
    let cqn = rx_cqn(&p);
    if how != Edit::Lie {
        let warm: Vec<Vec<u8>> = (200..208).map(|i| frame(dst, 1024, i)).collect();
        let refs: Vec<&[u8]> = warm.iter().map(|f| f.as_slice()).collect();
        sim.inject_rx_burst(&refs);
        let mut got = Vec::new();
        assert!(common::eventually(|| {
            got.extend(drain(&mut p));
            got.len() >= 8
        }));
        assert_eq!(got, (200..208).collect::<Vec<u32>>(), "{name}: warm-up");
    }
    let at = producer(&sim, cqn);
    let frames: Vec<Vec<u8>> = (0..40).map(|i| frame(dst, 1024, i)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    sim.inject_rx_burst(&refs);
    assert!(common::eventually(|| producer(&sim, cqn) == at + 40));
    // The second WQE's first completion: `wqe_counter` 0 again.
    let first = (1..40)
        .find(|&i| {
            let (addr, _) = slot_addr(&sim, cqn, at + i);
            let mut e = [0u8; 64];
            sim.with_model(|f| f.bus.read(addr, &mut e, Purpose::CqBuffer))
                .expect("read");
            e[0x3c..0x3e] == [0, 0]
        })
        .expect("a run across two WQEs");
    let lie = first.checked_add_signed(past).expect("a lie in the run");
    let edited = if how == Edit::WarmBefore {
        lie - 1
    } else {
        lie
    };
    tamper(&sim, cqn, at + edited, edit);
    let (faults, lens) = (p.eth_stats().faults, p.eth_stats().rx_length_errors);
    let got = drain(&mut p);
    let r = refusal(&p, name, faults, lens);
    assert!(want(&r), "{name} ({mode:?}): refused as {r:?}");
    // A length error drops that frame only; a fault recovers the queue
    // (the completions after the lie go with it).
    let arrive: Vec<u32> = match r {
        Refused::LengthError => (0..40).filter(|&i| i != lie).collect(),
        _ => (0..lie).collect(),
    };
    assert_eq!(got, arrive, "{name} ({mode:?}): refused as {r:?}");
    let again = [frame(dst, 100, 100), frame(dst, 1024, 101)];
    for f in &again {
        sim.inject_rx(f);
    }
    let mut after = Vec::new();
    assert!(
        common::eventually(|| {
            after.extend(drain(&mut p));
            after.len() >= 2
        }),
        "{name}: traffic after the lie, got {after:?}"
    );
    assert_eq!(after, [100, 101], "{name}");
    close(p, &sim, before);
}

#[test]
fn lies_in_a_run_across_wqes_are_refused() {
    let refused = |r: &Refused| *r != Refused::Filler;
    for mode in [Mode::Synchronous, Mode::Threaded] {
        for past in [0, 3] {
            // The previous WQE's `wqe_id` (compared as stored, per window).
            run_lie(
                mode,
                "wqe_id of the WQE before",
                past,
                |e| e[0x03] = e[0x03].wrapping_sub(1),
                refused,
            );
            run_lie(
                mode,
                "wqe_counter off by one",
                past,
                |e| e[0x3d] ^= 1,
                refused,
            );
            run_lie(
                mode,
                "zero bytes",
                past,
                |e| e[0x2e..0x30].copy_from_slice(&[0, 0]),
                refused,
            );
            run_lie(
                mode,
                "bytes past the strides",
                past,
                |e| e[0x2e..0x30].copy_from_slice(&[0x04, 0x01]),
                refused,
            );
            run_lie(
                mode,
                "another queue",
                past,
                |e| e[0x3b] ^= 0x5a,
                |r| matches!(r, Refused::Fault(FaultCause::WrongQueue { .. })),
            );
        }
    }
}

#[test]
fn lies_in_a_run_of_one_frame_size_are_refused() {
    // After a burst of frames of 1024 bytes (17 strides of 64: the RQ's
    // step), the scan checks each completion's `wqe_counter` against
    // frames of that many strides and each byte count against it.
    let refused = |r: &Refused| *r != Refused::Filler;
    let bad = |r: &Refused| matches!(r, Refused::Fault(FaultCause::BadCompletion { .. }));
    for mode in [Mode::Synchronous, Mode::Threaded] {
        // Inside the first WQE's part of the run (its counters checked by
        // the scan), where the window moves on, inside a chunk after it.
        for past in [-5, 0, 3] {
            let lie = |name, edit: fn(&mut [u8; 64]), want: &dyn Fn(&Refused) -> bool| {
                run_lie_with(mode, name, past, Edit::Warm, edit, want)
            };
            lie(
                "wqe_id of the WQE before",
                |e| e[0x03] = e[0x03].wrapping_sub(1),
                &refused,
            );
            lie("wqe_counter off by one", |e| e[0x3d] ^= 1, &refused);
            lie(
                "zero bytes",
                |e| e[0x2e..0x30].copy_from_slice(&[0, 0]),
                &refused,
            );
            lie(
                "bytes past the strides",
                |e| e[0x2e..0x30].copy_from_slice(&[0x04, 0x41]),
                &refused,
            );
            lie("another queue", |e| e[0x3b] ^= 0x5a, &|r| {
                matches!(r, Refused::Fault(FaultCause::WrongQueue { .. }))
            });
        }
        // The second WQE's first completion saying the first WQE's
        // `wqe_id` and the stride its run would go on with (past its
        // strides): the scan takes it, the WQE's strides bound the run,
        // the next WQE refuses it.
        run_lie_with(
            mode,
            "the first WQE going on past its strides",
            0,
            Edit::Warm,
            |e| {
                let c = u16::from_be_bytes([e[0x3c], e[0x3d]]);
                assert_eq!(c, 0, "the second WQE's first completion");
                e[0x3c..0x3e].copy_from_slice(&512u16.to_be_bytes());
                e[0x03] = e[0x03].wrapping_sub(1);
            },
            bad,
        );
        // A completion saying one stride more than the scan's step, the
        // next one's `wqe_counter` the step's: taken with its strides,
        // the next refused (its counter is not the WQE's next stride).
        for past in [-5, 1, 3] {
            run_lie_with(
                mode,
                "strides one more than the next counter says",
                past,
                Edit::WarmBefore,
                |e| e[0x2d] += 1,
                bad,
            );
        }
    }
}

#[test]
fn frames_of_other_sizes_in_a_run_arrive() {
    // Not a lie: frames of another size between frames of the step's
    // (and of one stride: a step the scan learns back) arrive whole.
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut p = open(&sim, EthConfig::default());
    let dst = p.mac();
    let lens: Vec<usize> = (0..120)
        .map(|i| match i {
            0..40 => 1024,
            40..55 | 90..100 => 60,
            55..60 => 300,
            _ => 1024 - (i % 3) * 64,
        })
        .collect();
    for round in 0..2 {
        let frames: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| frame(dst, l, i as u32))
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        sim.inject_rx_burst(&refs);
        let mut got = Vec::new();
        assert!(common::eventually(|| {
            for _ in 0..4 {
                p.receive_burst(usize::MAX, |f, _| {
                    let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
                    got.push((seq, f.len()));
                });
            }
            got.len() >= lens.len()
        }));
        let want: Vec<(u32, usize)> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        assert_eq!(got, want, "round {round}");
    }
    assert_eq!(p.eth_stats().faults, 0);
    close(p, &sim, before);
}
