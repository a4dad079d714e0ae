//! Time from an injected data-path fault to traffic resumed, per fault
//! class (issue 17's figure for queue recovery).
//!
//! A ConnectX-4 Lx and a ConnectX-5 model back to back (synchronous
//! mode), a queue set on each (polled mode), frames flowing a -> b. Each
//! round injects one fault into the model (`mlx5_sim::queue_faults`, what
//! the control socket's `fault ...` does) and measures wall time from the
//! injection to the first frame b receives after the driver recorded the
//! fault as recovered; the owner's loop polls both sides, flushes, and
//! calls `QueueSet::check` (which does its work every
//! `mlx5::CHECK_INTERVAL_MS`). Faults found from a CQE (bad lkey or
//! address) recover within the loop; those found by the periodic check
//! (CQ overflow event, WQ error event, EQ stall) wait for it; the
//! transmit timeout waits `mlx5::TX_TIMEOUT_MS`. Rounds are 600 ms apart,
//! past the grace period.
//!
//! `cargo bench -p mlx5 --bench fault_recovery` prints
//! `bench: mlx5.fault_recovery_<kind>: <median> us (median of <n>; min <min>, max <max>)`;
//! `CXOS_FAULT_ROUNDS` sets the rounds (default 5).

use std::time::{Duration, Instant};

use cxos_drivers::{NetDevice, TxError};
use mlx5::EthConfig;
use mlx5::fault::FaultOutcome;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

type Port = mlx5::QueueSet<mlx5::Adapter<SimPlatform>>;

fn open(sim: &SimPlatform) -> Port {
    let a = mlx5::Adapter::attach(sim.clone(), mlx5::Config::default())
        .unwrap_or_else(|f| panic!("attach: {}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    mlx5::QueueSet::open(a, r, EthConfig::default()).unwrap_or_else(|f| panic!("open: {}", f.error))
}

/// One loop turn: a frame a -> b, both polled and checked; frames b got.
fn turn(a: &mut Port, b: &mut Port) -> usize {
    let (dst, src) = (b.mac(), a.mac());
    match a.transmit(64, |f| {
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
    }) {
        Ok(()) | Err(TxError::Busy) => {}
        Err(e) => panic!("transmit: {e}"),
    }
    a.flush();
    a.poll();
    b.poll();
    a.check();
    b.check();
    let mut n = 0;
    while b.receive(|_, _| ()).is_some() {
        n += 1;
    }
    b.flush();
    n
}

fn recovered_records(p: &Port) -> usize {
    p.control()
        .faults()
        .records()
        .filter(|r| r.outcome == FaultOutcome::Recovered)
        .count()
}

fn main() {
    let rounds: usize = std::env::var("CXOS_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let kinds: [(&str, bool, QueueFault); 10] = [
        (
            "sq_bad_lkey",
            true,
            QueueFault::SqBad {
                what: BadWqe::Lkey,
                sqn: None,
                count: 1,
            },
        ),
        (
            "sq_bad_addr",
            true,
            QueueFault::SqBad {
                what: BadWqe::Addr,
                sqn: None,
                count: 1,
            },
        ),
        (
            "rq_bad_lkey",
            false,
            QueueFault::RqBad {
                what: BadWqe::Lkey,
                rqn: None,
                count: 1,
            },
        ),
        (
            "rq_bad_addr",
            false,
            QueueFault::RqBad {
                what: BadWqe::Addr,
                rqn: None,
                count: 1,
            },
        ),
        ("cq_overflow", true, QueueFault::CqOverflow { cqn: None }),
        (
            "wq_catastrophic",
            true,
            QueueFault::WqCatastrophic {
                sqn: None,
                rqn: None,
            },
        ),
        (
            "eq_stall",
            true,
            QueueFault::EqStall {
                eqn: None,
                sticky: false,
            },
        ),
        // No re-arm heals it: the EQ is recreated, its CQs moved.
        (
            "eq_stall_sticky",
            true,
            QueueFault::EqStall {
                eqn: None,
                sticky: true,
            },
        ),
        // The receiving side's CQ: CQ and RQ recreated.
        ("rx_cq_overflow", false, QueueFault::RxCqOverflow),
        ("tx_timeout", true, QueueFault::SqStall { sqn: None }),
    ];
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let mut a = open(&sa);
    let mut b = open(&sb);
    while turn(&mut a, &mut b) == 0 {}
    for (name, on_a, fault) in kinds {
        let mut us = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_millis(600));
            // Traffic flowing before the fault.
            while turn(&mut a, &mut b) == 0 {}
            let before = recovered_records(if on_a { &a } else { &b });
            let sim = if on_a { &sa } else { &sb };
            let t0 = Instant::now();
            sim.inject_queue(fault).expect("armed");
            loop {
                let got = turn(&mut a, &mut b);
                let done = recovered_records(if on_a { &a } else { &b }) > before;
                if done && got > 0 {
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "{name}: no recovery"
                );
            }
            us.push(t0.elapsed().as_micros() as u64);
        }
        us.sort_unstable();
        println!(
            "bench: mlx5.fault_recovery_{name}: {} us (median of {rounds}; min {}, max {})",
            us[us.len() / 2],
            us[0],
            us[us.len() - 1]
        );
    }
    let (a, _) = a.close();
    let _ = a.detach();
    let (b, _) = b.close();
    let _ = b.detach();
}
