//! Every data-path fault class injected in the model (as the control
//! socket's `fault ...` does), in polled and interrupt mode: the driver
//! detects it, records it (`FAULT <class> ...`), recovers, traffic
//! resumes; every transmit buffer back, every DMA byte freed at detach,
//! no sanitizer violation.

mod common;

use std::time::{Duration, Instant};

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{NetDevice, TxError};
use mlx5::fault::{FaultAction, FaultClass, FaultOutcome, FaultRecord};
use mlx5::{EthConfig, TX_TIMEOUT_MS};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

struct Pair {
    sa: SimPlatform,
    sb: SimPlatform,
    a: Port,
    b: Port,
    before: ((usize, usize), (usize, usize)),
}

fn pair(interrupts: bool) -> Pair {
    common::logger();
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let before = (sa.dma_in_use(), sb.dma_in_use());
    let cfg = EthConfig {
        interrupts,
        ..EthConfig::default()
    };
    let a = open(&sa, cfg);
    let b = open(&sb, cfg);
    Pair {
        sa,
        sb,
        a,
        b,
        before,
    }
}

/// Send frames a -> b until `n` arrived (frames a fault eats are lost,
/// so sending goes on), polling and running the periodic checks on both;
/// how many b received (at least `n` unless traffic stopped for 5 s).
fn traffic(p: &mut Pair, n: usize) -> usize {
    let (dst, src) = (p.b.mac(), p.a.mac());
    let mut got = 0;
    let start = Instant::now();
    while got < n && start.elapsed() < Duration::from_secs(5) {
        match p.a.transmit(64, |b| {
            b[0..6].copy_from_slice(&dst);
            b[6..12].copy_from_slice(&src);
            b[12..14].copy_from_slice(&ETHERTYPE);
        }) {
            Ok(()) | Err(TxError::Busy) => {}
            Err(e) => panic!("transmit: {e}"),
        }
        p.a.flush();
        tick(p);
        while p.b.receive(|_, _| ()).is_some() {
            got += 1;
        }
        p.b.flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    got
}

fn tick(p: &mut Pair) {
    p.a.poll();
    p.b.poll();
    p.a.check();
    p.b.check();
}

/// Poll and check both sides until `side`'s log holds a record of
/// `class` with a final outcome.
fn wait_record(p: &mut Pair, on_a: bool, class: FaultClass) -> FaultRecord {
    let start = Instant::now();
    loop {
        tick(p);
        let port = if on_a { &p.a } else { &p.b };
        if let Some(r) = port
            .control()
            .faults()
            .records()
            .rev()
            .find(|r| r.class == class && r.outcome != FaultOutcome::Deferred)
        {
            return *r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {class} record; log: {:?}",
            port.control().faults().records().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Traffic flows, the fault is recorded and recovered, traffic flows
/// again, nothing is lost.
fn run(interrupts: bool, on_a: bool, q: QueueFault, class: FaultClass, action: FaultAction) {
    let mut p = pair(interrupts);
    assert!(traffic(&mut p, 8) >= 8, "before the fault");
    let sim = if on_a { &p.sa } else { &p.sb };
    let armed = sim.inject_queue(q).expect("armed");
    // Frames that meet the fault (and those flushed behind them) are lost.
    traffic(&mut p, 4);
    let r = wait_record(&mut p, on_a, class);
    assert_eq!(
        (r.action, r.outcome),
        (action, FaultOutcome::Recovered),
        "{armed}: {r}"
    );
    let line = format!("{r}");
    println!("{line}");
    assert!(
        line.starts_with(&format!("FAULT {} ", class.name()))
            && line.ends_with("outcome=recovered"),
        "{line}"
    );
    let port = if on_a { &p.a } else { &p.b };
    assert!(port.control().faults().count(class) >= 1);
    assert!(traffic(&mut p, 16) >= 16, "{armed}: traffic after recovery");
    let entries = p.a.sq().unwrap().entries();
    assert_eq!(p.a.tx_free(), entries, "every transmit buffer back");
    let Pair {
        sa,
        sb,
        a,
        b,
        before,
    } = p;
    close(a, &sa, before.0);
    close(b, &sb, before.1);
}

const MODES: [bool; 2] = [false, true];

#[test]
fn sq_bad_lkey_and_bad_addr() {
    for interrupts in MODES {
        for what in [BadWqe::Lkey, BadWqe::Addr] {
            let q = QueueFault::SqBad {
                what,
                sqn: None,
                count: 1,
            };
            run(
                interrupts,
                true,
                q,
                FaultClass::SqErr,
                FaultAction::QueueReset,
            );
        }
    }
}

#[test]
fn rq_bad_lkey_and_bad_addr() {
    for interrupts in MODES {
        for what in [BadWqe::Lkey, BadWqe::Addr] {
            let q = QueueFault::RqBad {
                what,
                rqn: None,
                count: 2,
            };
            run(
                interrupts,
                false,
                q,
                FaultClass::RqErr,
                FaultAction::QueueReset,
            );
        }
    }
}

#[test]
fn cq_overflow_recreates_the_cq_and_its_sq() {
    for interrupts in MODES {
        run(
            interrupts,
            true,
            QueueFault::CqOverflow { cqn: None },
            FaultClass::CqOverflow,
            FaultAction::CqRecreate,
        );
    }
}

#[test]
fn wq_catastrophic_on_sq_and_rq() {
    for interrupts in MODES {
        run(
            interrupts,
            true,
            QueueFault::WqCatastrophic {
                sqn: None,
                rqn: None,
            },
            FaultClass::WqCatastrophic,
            FaultAction::QueueReset,
        );
        let p = pair(interrupts);
        let rqn = p.b.rq().unwrap().rqn.0;
        drop_pair(p);
        run(
            interrupts,
            false,
            QueueFault::WqCatastrophic {
                sqn: None,
                rqn: Some(rqn),
            },
            FaultClass::WqCatastrophic,
            FaultAction::QueueReset,
        );
    }
}

fn drop_pair(p: Pair) {
    let Pair {
        sa,
        sb,
        a,
        b,
        before,
    } = p;
    close(a, &sa, before.0);
    close(b, &sb, before.1);
}

#[test]
fn eq_stall_is_found_and_rearmed() {
    for interrupts in MODES {
        run(
            interrupts,
            true,
            QueueFault::EqStall { eqn: None },
            FaultClass::EqStall,
            FaultAction::EqRearm,
        );
    }
}

#[test]
fn sq_stall_is_a_tx_timeout_and_the_sq_recovers() {
    for interrupts in MODES {
        let t = Instant::now();
        run(
            interrupts,
            true,
            QueueFault::SqStall { sqn: None },
            FaultClass::TxTimeout,
            FaultAction::QueueReset,
        );
        assert!(t.elapsed() >= Duration::from_millis(TX_TIMEOUT_MS));
    }
}

#[test]
fn a_fault_storm_is_deferred_then_recovered() {
    let mut p = pair(false);
    assert!(traffic(&mut p, 4) >= 4);
    let (dst, src) = (p.b.mac(), p.a.mac());
    let sqn = p.a.sq().unwrap().sqn.0;
    // Three faults on one SQ inside the grace period: one recovery, then
    // one deferred record (the SQ waits in error), recovered by the
    // periodic check once the grace period has passed.
    for _ in 0..3 {
        p.sa.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: Some(sqn),
            count: 1,
        })
        .unwrap();
        let _ = p.a.transmit(64, |b| {
            b[0..6].copy_from_slice(&dst);
            b[6..12].copy_from_slice(&src);
            b[12..14].copy_from_slice(&ETHERTYPE);
        });
        p.a.flush();
        for _ in 0..10 {
            p.a.poll();
        }
    }
    let sq: Vec<FaultRecord> =
        p.a.control()
            .faults()
            .records()
            .filter(|r| r.class == FaultClass::SqErr)
            .copied()
            .collect();
    let outcomes: Vec<_> = sq.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [FaultOutcome::Recovered, FaultOutcome::Deferred],
        "{sq:?}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let n = traffic(&mut p, 8);
    assert!(
        n >= 8,
        "recovered after the grace period: {:#?} {:?}",
        p.a.control().faults().records().collect::<Vec<_>>(),
        p.a.rings()
    );
    let last =
        p.a.control()
            .faults()
            .records()
            .rev()
            .find(|r| r.class == FaultClass::SqErr)
            .copied()
            .unwrap();
    assert_eq!(
        (last.action, last.outcome),
        (FaultAction::QueueReset, FaultOutcome::Recovered),
        "{last}"
    );
    drop_pair(p);
}
